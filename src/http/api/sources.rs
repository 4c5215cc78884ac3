//! `/api/sources`: create, list, read, update, delete and rotate sources.
//! Each handler parses, calls `service::sources`, and answers its typed
//! result as JSON.

use crate::domain::ids::SourceId;
use crate::domain::signature::VerifyInput;
use crate::domain::source::{ApiKeyInput, RateLimit};
use crate::domain::source_view::{SourceView, WithToken};
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use crate::service::sources::{
    parse_source_id, CreatedSource, NewSource, SourceDetail, SourceList, SourceUpdate, TestEvent,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sources", get(list).post(create))
        .route("/sources/{id}", get(read).patch(update).delete(remove))
        .route("/sources/{id}/rotate", post(rotate))
        .route("/sources/{id}/test-event", post(test_event))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSource {
    #[serde(default)]
    name: Option<String>,
    /// Start from a preset: its records_path and mapping (version 1).
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    blocked_values: Option<Vec<String>>,
    #[serde(default)]
    api_key: Option<ApiKeyInput>,
    #[serde(default)]
    records_path: Option<String>,
    /// Absent: the preset's scheme, if any (waiting for its secret); `null`:
    /// no verification.
    #[serde(default, deserialize_with = "present")]
    verify: Option<Option<VerifyInput>>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
}

/// PATCH body: a field that is absent stays; `null` clears api_key / records_path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    api_key: Option<Option<ApiKeyInput>>,
    #[serde(default, deserialize_with = "present")]
    records_path: Option<Option<String>>,
    #[serde(default)]
    blocked_values: Option<Vec<String>>,
    /// `null` stops verifying; an object changes the setting.
    #[serde(default, deserialize_with = "present")]
    verify: Option<Option<VerifyInput>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<RateLimit>>,
}

/// `POST /sources/{id}/rotate` body, optional: how long the old URL keeps
/// working.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    grace_s: u64,
}

/// Distinguishes "field absent" (outer None) from "field is null" (Some(None)).
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parses a JSON body, turning serde's message into a 400 that names the field.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> AppResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("the request body is not valid: {e}")))
}

/// The source id of a `/sources/{id}/...` path.
pub(crate) fn source_id(id: &str) -> AppResult<SourceId> {
    Ok(parse_source_id(id)?)
}

/// A body's parse error for one source's route: when the source does not
/// exist that is what the answer says (404 before 400, as these routes
/// have always looked the source up first). Only costs a read on a bad body.
pub(crate) async fn body_error<T>(state: &AppState, id: SourceId, e: AppError) -> AppResult<T> {
    state.services.source(id).await?;
    Err(e)
}

async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> AppResult<(StatusCode, Json<CreatedSource>)> {
    let input: CreateSource = parse_body(&body)?;
    let created = state
        .services
        .create_source(NewSource {
            name: input.name,
            preset: input.preset,
            api_key: input.api_key,
            records_path: input.records_path,
            blocked_values: input.blocked_values,
            verify: input.verify,
            rate_limit: input.rate_limit,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(State(state): State<AppState>) -> AppResult<Json<SourceList>> {
    Ok(Json(state.services.list_sources().await?))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<SourceDetail>> {
    Ok(Json(state.services.source_detail(source_id(&id)?).await?))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<SourceView>> {
    let id = source_id(&id)?;
    let input: UpdateSource = match parse_body(&body) {
        Ok(input) => input,
        Err(e) => return body_error(&state, id, e).await,
    };
    let update = SourceUpdate {
        name: input.name,
        api_key: input.api_key,
        records_path: input.records_path,
        blocked_values: input.blocked_values,
        verify: input.verify,
        rate_limit: input.rate_limit,
    };
    Ok(Json(state.services.update_source(id, update).await?))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<StatusCode> {
    state.services.delete_source(source_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// No body (or an empty one) is a rotation without grace, as before
/// `grace_s` existed.
async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<WithToken>> {
    let id = source_id(&id)?;
    let input: Rotate = if body.iter().all(u8::is_ascii_whitespace) {
        Rotate::default()
    } else {
        match parse_body(&body) {
            Ok(input) => input,
            Err(e) => return body_error(&state, id, e).await,
        }
    };
    Ok(Json(state.services.rotate_source(id, input.grace_s).await?))
}

/// 202 as a hook answers: the event is stored and on its way through the
/// pipeline, not yet mapped.
async fn test_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<TestEvent>)> {
    let sent = state.services.send_test_event(source_id(&id)?).await?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}
