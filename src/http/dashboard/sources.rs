//! `/sources`: list, create, and one source's settings (rotate, delete,
//! api key, test event). Every successful form POST answers 303 (post/
//! redirect/get), so a reload repeats nothing. A webhook URL exists only in
//! the answer to create or rotate (the token is stored as a hash): it is
//! kept as the session's flash and shown once, on the page the redirect
//! lands on.
//!
//! Every action calls `service::sources`; this file turns forms into its
//! inputs and its views into pages.

use super::charts;
use super::csrf;
use super::display::{options, time};
use super::mapping::Editor;
use super::render::{page, PageError, PageResult};
use super::session::{Authed, Flash};
use crate::domain::ids::SourceId;
use crate::domain::signature::{SchemeName, VerifyInput};
use crate::domain::source::ApiKeyInput;
use crate::domain::source_view::SourceView;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::sources::{parse_source_id, NewSource, SourceUpdate};
use crate::service::ServiceError;
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
    /// A preset's name: its name and records path (unless typed) and mapping.
    #[serde(default)]
    preset: String,
}

/// A use case's failure as a page error (its status and message, as the
/// API would answer them).
pub(super) fn failed(e: ServiceError) -> PageError {
    PageError::App(AppError::from(e))
}

pub async fn list(State(state): State<AppState>, session: Authed) -> PageResult {
    list_page(
        &state,
        &session,
        StatusCode::OK,
        None,
        &CreateForm::default(),
    )
    .await
}

/// The list with the create form; on a refused create the form keeps what
/// was typed (except the api-key value, a secret) and says what to fix.
async fn list_page(
    state: &AppState,
    session: &Authed,
    status: StatusCode,
    error: Option<String>,
    form: &CreateForm,
) -> PageResult {
    let overview = state
        .services
        .sources_with_activity()
        .await
        .map_err(failed)?;
    let mut sources = overview.list.sources;
    sources.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    let rows: Vec<Value> = sources
        .iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "name": s.name,
                "created": time(&s.created_at),
                "counts": s.counts,
                "mapping_version": s.mapping_version,
                "spark": overview.last_day.get(&s.id).map(|b| charts::sparkline(b)),
            })
        })
        .collect();
    let presets = state.services.presets().await.presets;
    let data = json!({
        "title": "Sources", "nav": "sources", "csrf": session.csrf,
        "sources": rows, "error": error,
        "form": {"name": form.name, "api_key_header": form.api_key_header, "records_path": form.records_path},
        "presets": options(presets.iter().map(|p| (p.name.clone(), format!("{} — {}", p.name, p.description))), &form.preset),
    });
    page(status, "sources", &data)
}

/// A field left empty in the form: not given (so a preset's value applies).
fn typed(value: &str) -> Option<String> {
    Some(value.to_string()).filter(|v| !v.trim().is_empty())
}

pub async fn create(
    State(state): State<AppState>,
    session: Authed,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let input = NewSource {
        name: typed(&form.name),
        preset: typed(&form.preset).map(|p| p.trim().to_string()),
        api_key: api_key_input(&form.api_key_header, &form.api_key_value),
        records_path: typed(&form.records_path),
        blocked_values: None,
        // A preset's scheme applies; its secret is set on the source page.
        verify: None,
        rate_limit: None,
    };
    match state.services.create_source(input).await {
        Ok(created) => {
            let id = created.source.source.id;
            Ok(to_new_url(
                &state,
                &session,
                &headers,
                id,
                &created.source.token,
            ))
        }
        // An unknown preset or a refused setting: the form again, saying what to fix.
        Err(ServiceError::BadRequest(message)) => {
            list_page(
                &state,
                &session,
                StatusCode::BAD_REQUEST,
                Some(message),
                &form,
            )
            .await
        }
        Err(e) => Err(failed(e)),
    }
}

/// After create or rotate: the new URL waits in the session, and the
/// browser is sent to the source's page, which shows it once.
fn to_new_url(
    state: &AppState,
    session: &Authed,
    headers: &HeaderMap,
    id: SourceId,
    token: &str,
) -> axum::response::Response {
    let flash = Flash::WebhookUrl {
        source_id: id.to_string(),
        url: webhook_url(headers, token),
    };
    state.sessions.set_flash(&session.session_id, flash);
    Redirect::to(&format!("/sources/{id}#webhook")).into_response()
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

/// The rotate form: the grace chosen (seconds; absent or 0: none).
#[derive(Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    grace_s: u64,
}

pub async fn rotate(
    State(state): State<AppState>,
    session: Authed,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let id = page_source_id(&id)?;
    let rotated = state
        .services
        .rotate_source(id, form.grace_s)
        .await
        .map_err(failed)?;
    Ok(to_new_url(&state, &session, &headers, id, &rotated.token))
}

/// "Send a test event": through the hook path, then to the event it made.
pub async fn test_event(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let id = page_source_id(&id)?;
    let sent = state.services.send_test_event(id).await.map_err(failed)?;
    Ok(Redirect::to(&format!("/events/{}", sent.id)).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let id = page_source_id(&id)?;
    state.services.delete_source(id).await.map_err(failed)?;
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
    let id = page_source_id(&id)?;
    let key = match form.clear {
        Some(_) => None,
        None => Some(ApiKeyInput {
            header: form.header,
            value: form.value,
        }),
    };
    match state.services.set_source_api_key(id, key).await {
        Ok(source) => Ok(Redirect::to(&format!("/sources/{}", source.id)).into_response()),
        // A refused key: the page again (the source unchanged), saying why.
        Err(ServiceError::BadRequest(message)) => {
            refused_again(&state, &session, id, message).await
        }
        Err(e) => Err(failed(e)),
    }
}

#[derive(Deserialize)]
pub struct VerifyForm {
    #[serde(default)]
    csrf: String,
    /// A scheme name; empty leaves the scheme as it is.
    #[serde(default)]
    scheme: String,
    /// The hmac scheme's header (other schemes know theirs).
    #[serde(default)]
    header: String,
    #[serde(default)]
    add_secret: String,
    /// The position of the secret whose "Remove" button was pressed.
    #[serde(default)]
    remove_secret: Option<usize>,
    /// Present when "Stop verifying" was pressed.
    #[serde(default)]
    clear: Option<String>,
}

impl VerifyForm {
    /// The change the form asks for: `None` stops verifying.
    fn change(self) -> Option<VerifyInput> {
        if self.clear.is_some() {
            return None;
        }
        let scheme = serde_json::from_value::<SchemeName>(Value::String(self.scheme)).ok();
        Some(VerifyInput {
            scheme,
            header: typed(&self.header).filter(|_| scheme == Some(SchemeName::Hmac)),
            add_secret: Some(self.add_secret).filter(|s| !s.is_empty()),
            remove_secret: self.remove_secret,
            ..VerifyInput::default()
        })
    }
}

/// "Signatures": set the scheme, add or remove a secret, stop verifying.
pub async fn verify(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<VerifyForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let id = page_source_id(&id)?;
    let update = SourceUpdate {
        verify: Some(form.change()),
        ..SourceUpdate::default()
    };
    match state.services.update_source(id, update).await {
        Ok(source) => {
            Ok(Redirect::to(&format!("/sources/{}#signatures", source.id)).into_response())
        }
        Err(ServiceError::BadRequest(message)) => {
            refused_again(&state, &session, id, message).await
        }
        Err(e) => Err(failed(e)),
    }
}

/// What the "Signatures" part of a source page shows: the scheme, when
/// each secret was set (never the secret), and the scheme choices.
fn signatures_section(source: &SourceView) -> Value {
    let current = source.verify.as_ref();
    let selected = current
        .and_then(|v| serde_json::to_value(v.scheme).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let schemes = [
        ("stripe", "Stripe (Stripe-Signature)"),
        ("github", "GitHub (X-Hub-Signature-256)"),
        ("shopify", "Shopify (X-Shopify-Hmac-Sha256)"),
        ("standard_webhooks", "Standard Webhooks (webhook-signature)"),
        ("hmac", "Another sender's HMAC-SHA256 (hex)"),
    ];
    json!({
        "verify": current,
        "secrets": current.map(|v| v.secrets.iter().enumerate().map(|(i, s)| json!({
            "index": i, "set_at": time(&s.set_at),
        })).collect::<Vec<_>>()),
        "hmac_header": current.and_then(|v| v.hmac.as_ref()).map_or("", |h| h.header.as_str()),
        "schemes": options(schemes.iter().map(|(v, l)| (v.to_string(), l.to_string())), &selected),
    })
}

/// The source id of a `/sources/{id}/...` page.
pub(super) fn page_source_id(id: &str) -> Result<SourceId, PageError> {
    parse_source_id(id).map_err(failed)
}

pub(super) async fn load(state: &AppState, id: SourceId) -> Result<SourceView, PageError> {
    state.services.source(id).await.map_err(failed)
}

/// A change the service refused: the source's page again (the source
/// unchanged), a 400 saying why.
async fn refused_again(
    state: &AppState,
    session: &Authed,
    id: SourceId,
    message: String,
) -> PageResult {
    let source = load(state, id).await?;
    let page_opts = SourcePage {
        status: StatusCode::BAD_REQUEST,
        error: Some(message),
        ..SourcePage::default()
    };
    source_page(state, session, &source, page_opts).await
}

/// What a source page shows beyond the source itself.
pub(super) struct SourcePage {
    pub status: StatusCode,
    pub error: Option<String>,
    pub editor: Editor,
}

impl Default for SourcePage {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            error: None,
            editor: Editor::default(),
        }
    }
}

/// One source's page; the `mapping_section` partial gets `mapping` (see
/// `mapping::section`). A webhook URL waiting in the session's flash for
/// this source is shown, and so consumed: a reload shows it no more.
pub(super) async fn source_page(
    state: &AppState,
    session: &Authed,
    source: &SourceView,
    page_opts: SourcePage,
) -> PageResult {
    let mapping = super::mapping::section(state, session, source, page_opts.editor).await?;
    let webhook_url = state
        .sessions
        .take_webhook_url(&session.session_id, &source.id.to_string());
    let data = json!({
        "title": source.name, "nav": "sources", "csrf": session.csrf,
        "source": source,
        "created": time(&source.created_at),
        "updated": time(&source.updated_at),
        "webhook_url": webhook_url,
        "previous_url": source.previous_url.as_ref().map(|old| json!({
            "url_hint": old.url_hint,
            "active": old.active,
            "stops": time(&old.stops_at),
            "requests": old.requests,
            "last_used": old.last_used_at.as_ref().map(time),
        })),
        "error": page_opts.error,
        "mapping": mapping,
        "signatures": signatures_section(source),
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
