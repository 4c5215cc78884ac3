//! `/sources`: list, create, and one source's settings (rotate, delete,
//! api key). A webhook URL is shown only in the answer to create or rotate:
//! the token is stored as a hash, so no later page could show it.

use super::csrf;
use super::display::time;
use super::render::{page, PageError, PageResult};
use super::session::Authed;
use crate::app::AppState;
use crate::error::AppError;
use crate::source::{ApiKeyInput, Source};
use crate::views::source_json;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    api_key_header: String,
    #[serde(default)]
    api_key_value: String,
    #[serde(default)]
    records_path: String,
}

pub async fn list(State(state): State<AppState>, session: Authed) -> PageResult {
    list_page(
        &state,
        &session,
        StatusCode::OK,
        None,
        &CreateForm::default(),
    )
}

/// The list with the create form; on a refused create the form keeps what
/// was typed (except the api-key value, a secret) and says what to fix.
fn list_page(
    state: &AppState,
    session: &Authed,
    status: StatusCode,
    error: Option<String>,
    form: &CreateForm,
) -> PageResult {
    let mut sources = state.store.sources()?;
    sources.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let rows: Vec<Value> = sources
        .iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "name": s.name,
                "created": time(&s.created_at),
                "counts": state.counters.view(s.id),
                "mapping_version": s.mapping_version,
            })
        })
        .collect();
    let data = json!({
        "title": "Sources", "nav": "sources", "csrf": session.csrf,
        "sources": rows, "error": error,
        "form": {"name": form.name, "api_key_header": form.api_key_header, "records_path": form.records_path},
    });
    page(status, "sources", &data)
}

pub async fn create(
    State(state): State<AppState>,
    session: Authed,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let api_key = api_key_input(&form.api_key_header, &form.api_key_value);
    let records_path = Some(form.records_path.clone());
    let (source, token) = match Source::create(&form.name, api_key, records_path) {
        Ok(created) => created,
        Err(e) => {
            return list_page(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some(e.to_string()),
                &form,
            )
        }
    };
    state.store.put_source(&source)?;
    tracing::info!(source = %source.id, "source created from the dashboard");
    let url = webhook_url(&headers, &token);
    source_page(&state, &session, &source, Some(url), None, StatusCode::OK)
}

/// The api-key pair, or `None` when both fields were left empty.
fn api_key_input(header: &str, value: &str) -> Option<ApiKeyInput> {
    (!header.trim().is_empty() || !value.is_empty()).then(|| ApiKeyInput {
        header: header.to_string(),
        value: value.to_string(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
) -> PageResult {
    let source = load(&state, &id)?;
    source_page(&state, &session, &source, None, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn rotate(
    State(state): State<AppState>,
    session: Authed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let mut source = load(&state, &id)?;
    let token = source.rotate();
    state.store.put_source(&source)?;
    tracing::info!(source = %source.id, "source token rotated from the dashboard");
    let url = webhook_url(&headers, &token);
    source_page(&state, &session, &source, Some(url), None, StatusCode::OK)
}

pub async fn delete(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let source = load(&state, &id)?;
    state.store.delete_source(source.id)?;
    tracing::info!(source = %source.id, "source deleted from the dashboard");
    Ok(Redirect::to("/sources").into_response())
}

#[derive(Deserialize)]
pub struct ApiKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    header: String,
    #[serde(default)]
    value: String,
    /// Present when the "Remove" button was pressed.
    #[serde(default)]
    clear: Option<String>,
}

pub async fn api_key(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<ApiKeyForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let mut source = load(&state, &id)?;
    let key = match form.clear {
        Some(_) => None,
        None => Some(ApiKeyInput {
            header: form.header,
            value: form.value,
        }),
    };
    if let Err(e) = source.set_api_key(key) {
        let error = Some(e.to_string());
        return source_page(
            &state,
            &session,
            &source,
            None,
            error,
            StatusCode::BAD_REQUEST,
        );
    }
    source.updated_at = chrono::Utc::now();
    state.store.put_source(&source)?;
    Ok(Redirect::to(&format!("/sources/{}", source.id)).into_response())
}

fn load(state: &AppState, id: &str) -> Result<Source, PageError> {
    let not_found = || AppError::NotFound(format!("no source `{id}`"));
    let id = id.parse().map_err(|_| not_found())?;
    Ok(state.store.source(id)?.ok_or_else(not_found)?)
}

/// One source's page. `webhook_url` is set only right after create/rotate.
/// The `mapping_section` partial gets `mapping`: `{source_id,
/// mapping_version}` for now (the mapping module will extend it).
fn source_page(
    state: &AppState,
    session: &Authed,
    source: &Source,
    webhook_url: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> PageResult {
    let data = json!({
        "title": source.name, "nav": "sources", "csrf": session.csrf,
        "source": source_json(source, state.counters.view(source.id), None),
        "created": time(&source.created_at),
        "updated": time(&source.updated_at),
        "webhook_url": webhook_url,
        "error": error,
        "mapping": {"source_id": source.id.to_string(), "mapping_version": source.mapping_version},
    });
    page(status, "source", &data)
}

/// `{scheme}://{host}/hooks/{token}` as the browser reached us. A Host
/// header with unexpected characters is not echoed (it only reaches the
/// admin's own page, but there is no reason to trust it).
fn webhook_url(headers: &HeaderMap, token: &str) -> String {
    let scheme = if super::is_https(headers) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}/hooks/{token}")
}
