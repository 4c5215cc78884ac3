//! `/sources`: list, create, and one source's settings (rotate, delete,
//! api key). A webhook URL is shown only in the answer to create or rotate:
//! the token is stored as a hash, so no later page could show it.

use super::csrf;
use super::display::{options, time};
use super::mapping::Editor;
use super::render::{page, PageError, PageResult};
use super::session::Authed;
use crate::domain::mapping::presets;
use crate::domain::source::{ApiKeyInput, Source};
use crate::domain::views::source_json;
use crate::http::api::mapping::{save_mapping, unknown_preset};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::StateStore;
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
    /// A preset's name: its records path (unless one is typed) and mapping.
    #[serde(default)]
    preset: String,
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
        "presets": options(presets::presets().iter().map(|p| (p.name.clone(), format!("{} — {}", p.name, p.description))), &form.preset),
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
    let refuse = |message: String| {
        list_page(
            &state,
            &session,
            StatusCode::BAD_REQUEST,
            Some(message),
            &form,
        )
    };
    let preset = match form.preset.trim() {
        "" => None,
        name => match presets::preset(name) {
            Some(p) => Some(p),
            None => return refuse(unknown_preset(name).to_string()),
        },
    };
    let records_path = Some(form.records_path.clone())
        .filter(|p| !p.trim().is_empty())
        .or_else(|| preset.and_then(|p| p.records_path.clone()));
    let (source, token) = match Source::create(&form.name, api_key, records_path) {
        Ok(created) => created,
        Err(e) => return refuse(e.to_string()),
    };
    state.store.put_source(&source)?;
    tracing::info!(source = %source.id, "source created from the dashboard");
    if let Some(preset) = preset {
        save_mapping(
            &state,
            &source,
            preset.mapping.clone(),
            Some(preset.name.clone()),
        )?;
    }
    page_with_new_url(&state, &session, &headers, source, &token)
}

/// The source page right after its token was made (create or rotate): the
/// only time the full webhook URL is shown.
fn page_with_new_url(
    state: &AppState,
    session: &Authed,
    headers: &HeaderMap,
    source: Source,
    token: &str,
) -> PageResult {
    let url = webhook_url(headers, token);
    let source = state.store.source(source.id)?.unwrap_or(source);
    source_page(
        state,
        session,
        &source,
        SourcePage {
            webhook_url: Some(url),
            ..SourcePage::default()
        },
    )
}

/// The api-key pair, or `None` when both fields were left empty.
fn api_key_input(header: &str, value: &str) -> Option<ApiKeyInput> {
    (!header.trim().is_empty() || !value.is_empty()).then(|| ApiKeyInput {
        header: header.to_string(),
        value: value.to_string(),
    })
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
    page_with_new_url(&state, &session, &headers, source, &token)
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
        return source_page(
            &state,
            &session,
            &source,
            SourcePage {
                status: StatusCode::BAD_REQUEST,
                error: Some(e.to_string()),
                ..SourcePage::default()
            },
        );
    }
    source.updated_at = chrono::Utc::now();
    state.store.put_source(&source)?;
    Ok(Redirect::to(&format!("/sources/{}", source.id)).into_response())
}

pub(super) fn load(state: &AppState, id: &str) -> Result<Source, PageError> {
    let not_found = || AppError::NotFound(format!("no source `{id}`"));
    let id = id.parse().map_err(|_| not_found())?;
    Ok(state.store.source(id)?.ok_or_else(not_found)?)
}

/// What a source page shows beyond the source itself.
pub(super) struct SourcePage {
    pub status: StatusCode,
    /// Set only right after create/rotate.
    pub webhook_url: Option<String>,
    pub error: Option<String>,
    pub editor: Editor,
}

impl Default for SourcePage {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            webhook_url: None,
            error: None,
            editor: Editor::default(),
        }
    }
}

/// One source's page; the `mapping_section` partial gets `mapping` (see
/// `mapping::section`).
pub(super) fn source_page(
    state: &AppState,
    session: &Authed,
    source: &Source,
    page_opts: SourcePage,
) -> PageResult {
    let mapping = super::mapping::section(state, session, source, page_opts.editor)?;
    let data = json!({
        "title": source.name, "nav": "sources", "csrf": session.csrf,
        "source": source_json(source, state.counters.view(source.id), None),
        "created": time(&source.created_at),
        "updated": time(&source.updated_at),
        "webhook_url": page_opts.webhook_url,
        "error": page_opts.error,
        "mapping": mapping,
    });
    page(page_opts.status, "source", &data)
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
