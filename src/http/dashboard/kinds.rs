//! `/identity/kinds`: the team's identifier kinds as a page: the list in
//! priority order, a form to define one, and per kind a form to change its
//! priority, limit, normalisation and blocked values, a disable/enable
//! button and a delete button (refused, with the reason shown, while the
//! kind is in use).
//!
//! Every form calls the same use cases as `/api/identity/kinds`
//! (`service::identity_kinds`); a refusal shows the page again with the
//! service's message and the typed values kept.

use super::csrf;
use super::render::{page, PageResult};
use super::session::Authed;
use super::sources::failed;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::identity_kinds::{KindInput, KindPatch, KindView};
use crate::service::ServiceError;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

/// The page's address, where every form redirects back to.
const PAGE: &str = "/identity/kinds";

/// The create form, and the edit form (which has no name field: the name is
/// in the path). Numbers arrive as text so an empty field means "default"
/// or "unchanged", and a non-number is the service's to refuse.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KindForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    limit: String,
    #[serde(default)]
    normalise: String,
    /// One value per line.
    #[serde(default)]
    blocked_values: String,
}

/// The disable/enable and delete buttons' forms.
#[derive(Deserialize)]
pub struct ButtonForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

pub async fn show(State(state): State<AppState>, session: Authed) -> PageResult {
    kinds_page(&state, &session, StatusCode::OK, None, &KindForm::default()).await
}

pub async fn create(
    State(state): State<AppState>,
    session: Authed,
    Form(form): Form<KindForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let input = match create_input(&form) {
        Ok(input) => input,
        Err(message) => return refused_page(&state, &session, message, &form).await,
    };
    let done = state.services.create_identity_kind(input).await;
    answer(&state, &session, done.map(|_| ()), &form).await
}

pub async fn update(
    State(state): State<AppState>,
    session: Authed,
    Path(name): Path<String>,
    Form(form): Form<KindForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let patch = match edit_patch(&form) {
        Ok(patch) => patch,
        Err(message) => return refused_page(&state, &session, message, &KindForm::default()).await,
    };
    let done = state.services.update_identity_kind(&name, patch).await;
    answer(&state, &session, done.map(|_| ()), &KindForm::default()).await
}

pub async fn set_enabled(
    State(state): State<AppState>,
    session: Authed,
    Path(name): Path<String>,
    Form(form): Form<ButtonForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let patch = KindPatch {
        enabled: Some(form.enabled == "true"),
        ..KindPatch::default()
    };
    let done = state.services.update_identity_kind(&name, patch).await;
    answer(&state, &session, done.map(|_| ()), &KindForm::default()).await
}

pub async fn delete(
    State(state): State<AppState>,
    session: Authed,
    Path(name): Path<String>,
    Form(form): Form<ButtonForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let done = state.services.delete_identity_kind(&name).await;
    answer(&state, &session, done, &KindForm::default()).await
}

/// Back to the page on success (so a reload repeats nothing); the page
/// again with the refusal otherwise.
async fn answer(
    state: &AppState,
    session: &Authed,
    done: Result<(), ServiceError>,
    form: &KindForm,
) -> PageResult {
    match done {
        Ok(()) => Ok(Redirect::to(PAGE).into_response()),
        Err(e @ (ServiceError::Store(_) | ServiceError::Internal(_))) => Err(failed(e)),
        Err(e) => {
            let app = AppError::from(e);
            let message = app.body()["error"]
                .as_str()
                .unwrap_or("refused")
                .to_string();
            kinds_page(state, session, app.status(), Some(message), form).await
        }
    }
}

async fn refused_page(
    state: &AppState,
    session: &Authed,
    message: String,
    form: &KindForm,
) -> PageResult {
    kinds_page(state, session, StatusCode::BAD_REQUEST, Some(message), form).await
}

fn create_input(form: &KindForm) -> Result<KindInput, String> {
    Ok(KindInput {
        name: form.name.trim().to_string(),
        priority: number("priority", &form.priority)?,
        limit: number("limit", &form.limit)?,
        normalise: text(&form.normalise),
        blocked_values: Some(blocked(&form.blocked_values)),
    })
}

fn edit_patch(form: &KindForm) -> Result<KindPatch, String> {
    Ok(KindPatch {
        priority: number("priority", &form.priority)?,
        limit: number("limit", &form.limit)?,
        normalise: text(&form.normalise),
        blocked_values: Some(blocked(&form.blocked_values)),
        enabled: None,
    })
}

/// A number field: empty is "not given".
fn number(field: &str, value: &str) -> Result<Option<u32>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("{field} `{value}` is not a whole number"))
}

fn text(value: &str) -> Option<String> {
    Some(value.trim().to_string()).filter(|v| !v.is_empty())
}

fn blocked(lines: &str) -> Vec<String> {
    lines.lines().map(str::to_string).collect()
}

async fn kinds_page(
    state: &AppState,
    session: &Authed,
    status: StatusCode,
    error: Option<String>,
    form: &KindForm,
) -> PageResult {
    let kinds = state.services.identity_kinds().await.map_err(failed)?.kinds;
    let lowest = kinds.len() + 1;
    let rows: Vec<Value> = kinds.iter().map(kind_row).collect();
    let data = json!({
        "title": "Identifier kinds", "nav": "kinds", "csrf": session.csrf,
        "kinds": rows,
        "error": error,
        "form": {
            "name": form.name, "priority": form.priority, "limit": form.limit,
            "normalise": if form.normalise.is_empty() { "trim" } else { form.normalise.as_str() },
            "blocked_values": form.blocked_values,
        },
        "lowest": lowest,
    });
    page(status, "kinds", &data)
}

fn kind_row(kind: &KindView) -> Value {
    json!({
        "name": kind.name.as_str(),
        "priority": kind.priority,
        "limit": kind.limit,
        "normalise": kind.normalise,
        "blocked_values": kind.blocked_values.join("\n"),
        "blocked_shown": kind.blocked_values.join(", "),
        "enabled": kind.enabled,
        "builtin": kind.builtin,
        "in_use": kind.in_use,
        "created_at": kind.created_at.as_ref().map(super::display::time),
    })
}
