//! `/login` and `/logout`: the admin token, typed once, buys a session.

use super::csrf;
use super::render::{page, PageResult};
use super::session::{self, Authed};
use crate::http::guard::{Locked, PeerAddr};
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};

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

/// Checks the token behind the failed-attempt limit (`guard`, shared with
/// the API's bearer check: the same secret).
pub async fn submit(
    State(state): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    Form(input): Form<LoginForm>,
) -> PageResult {
    let token = input.token.trim();
    let addr = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(p)| p.0);
    if let Err(locked) = state.auth_guard.check(addr) {
        return locked_out(locked);
    }
    if token.is_empty() || !state.admin_token.matches(token.as_bytes()) {
        // An empty form is not a guess: not counted.
        if !token.is_empty() {
            state.auth_guard.failed(addr, "login");
        }
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token. It is in the data dir's admin_token file or INLET_ADMIN_TOKEN."),
        );
    }
    state.auth_guard.succeeded(addr);
    let id = state.sessions.start(state.services.config.session_minutes);
    let mut response = Redirect::to("/").into_response();
    if let Some(cookie) = session::set_cookie(
        &id,
        state.services.config.session_minutes,
        super::is_https(&headers),
    ) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// 429 with `Retry-After` and a message a person can act on.
fn locked_out(locked: Locked) -> PageResult {
    let secs = locked.retry_after_secs();
    let message = format!(
        "Too many wrong tokens. Wait {secs} seconds, then try again with the token from the data dir's admin_token file or INLET_ADMIN_TOKEN."
    );
    let mut response = login_page(StatusCode::TOO_MANY_REQUESTS, Some(&message))?;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
