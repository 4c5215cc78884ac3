//! `/login` and `/logout`: the admin token, typed once, buys a session.

use super::csrf;
use super::render::{page, PageResult};
use super::session::{self, Authed};
use crate::app::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

fn login_page(status: StatusCode, error: Option<&str>) -> PageResult {
    let data: Value = json!({"title": "Log in", "nav": "", "csrf": null, "error": error});
    page(status, "login", &data)
}

pub async fn form() -> PageResult {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(input): Form<LoginForm>,
) -> PageResult {
    let token = input.token.trim();
    if token.is_empty() || !state.admin_token.matches(token.as_bytes()) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token. It is in the data dir's admin_token file or INLET_ADMIN_TOKEN."),
        );
    }
    let id = state.sessions.start(state.config.session_minutes);
    let mut response = Redirect::to("/").into_response();
    if let Some(cookie) =
        session::set_cookie(&id, state.config.session_minutes, super::is_https(&headers))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    session: Authed,
    Form(input): Form<LogoutForm>,
) -> PageResult {
    csrf::check(&session, &input.csrf)?;
    state.sessions.end(&session.session_id);
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    Ok(response)
}
