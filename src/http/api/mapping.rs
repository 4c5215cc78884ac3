//! `/api/sources/{id}/...`: the learned schema, samples, suggested mapping,
//! mapping versions, preview and replay. Each handler parses, calls
//! `service::mappings`, and answers its typed result as JSON.

use super::page_limit;
use super::sources::{body_error, parse_body, source_id};
use crate::domain::preview::PreviewResult;
use crate::domain::replay::MappingVersion;
use crate::domain::schema_view::SchemaView;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::mappings::{
    MappingInput, MappingVersions, PastedBody, PresetList, PreviewInput, Samples, SavedMapping,
    SuggestedMapping,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sources/{id}/schema", get(schema))
        .route("/sources/{id}/samples", get(samples))
        .route("/sources/{id}/mapping", get(current).put(save))
        .route("/sources/{id}/mapping/versions", get(versions))
        .route("/sources/{id}/mapping/suggest", get(suggest))
        .route("/sources/{id}/mapping/preview", post(preview))
        .route("/sources/{id}/replay", post(replay))
        .route("/presets", get(list_presets))
}

/// The schema; a source that has seen nothing answers an empty one.
async fn schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<SchemaView>> {
    let schema = state.services.schema(source_id(&id)?).await?;
    Ok(Json(schema.unwrap_or_else(SchemaView::empty)))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn samples(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> AppResult<Json<Samples>> {
    let limit = page_limit(q.limit, 10, 100);
    Ok(Json(state.services.samples(source_id(&id)?, limit).await?))
}

async fn suggest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<SuggestedMapping>> {
    Ok(Json(state.services.suggest_mapping(source_id(&id)?).await?))
}

async fn current(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<MappingVersion>> {
    Ok(Json(state.services.current_mapping(source_id(&id)?).await?))
}

async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Json<MappingVersions>> {
    Ok(Json(
        state.services.mapping_versions(source_id(&id)?).await?,
    ))
}

/// A mapping body: the spec itself, or `{"preset": "stripe"}`.
fn mapping_input(value: Value) -> AppResult<MappingInput> {
    if let Some(name) = value.get("preset") {
        // A preset that is not a string is named `` and refused as unknown.
        let name = name.as_str().unwrap_or_default();
        return Ok(MappingInput::Preset(name.to_string()));
    }
    let spec = serde_json::from_value(value)
        .map_err(|e| AppError::bad_request(format!("the mapping is not valid: {e}")))?;
    Ok(MappingInput::Spec(Box::new(spec)))
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<SavedMapping>> {
    let id = source_id(&id)?;
    let input = match parse_body(&body).and_then(mapping_input) {
        Ok(input) => input,
        Err(e) => return body_error(&state, id, e).await,
    };
    Ok(Json(state.services.save_mapping(id, input).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    #[serde(default)]
    mapping: Option<Value>,
    #[serde(default)]
    payload: Option<Value>,
    /// Stored events to run, by id.
    #[serde(default)]
    samples: Option<Vec<String>>,
    /// With a string `payload`: how to read it, as a hook's `Content-Type`.
    #[serde(default)]
    content_type: Option<String>,
}

impl PreviewBody {
    /// A string `payload` is pasted text, read as a hook body of
    /// `content_type`; any other payload is the JSON body itself.
    fn into_input(self) -> AppResult<PreviewInput> {
        let (payload, pasted) = match (self.payload, self.content_type) {
            (Some(Value::String(text)), content_type) => {
                (None, Some(PastedBody { content_type, text }))
            }
            (payload, None) => (payload, None),
            (_, Some(_)) => {
                return Err(AppError::bad_request(
                    "`content_type` says how to read a text `payload`; send the payload as a \
                     string, or drop `content_type` for a JSON payload",
                ))
            }
        };
        Ok(PreviewInput {
            mapping: self.mapping.map(mapping_input).transpose()?,
            payload,
            samples: self.samples.unwrap_or_default(),
            pasted,
        })
    }
}

/// Runs a mapping (given, or the saved one) over a payload (given, or the
/// latest samples); stores nothing. The answer is bounded (`domain::preview`).
async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<PreviewResult>> {
    let id = source_id(&id)?;
    let parsed = if body.is_empty() {
        Ok(PreviewInput::default())
    } else {
        parse_body::<PreviewBody>(&body).and_then(PreviewBody::into_input)
    };
    let input = match parsed {
        Ok(input) => input,
        Err(e) => return body_error(&state, id, e).await,
    };
    Ok(Json(state.services.preview_mapping(id, input).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    status: String,
    /// RFC 3339: only events received at or after it.
    #[serde(default)]
    since: Option<String>,
    /// Say what the replay would do (`{"would_touch", ...}`) without it.
    #[serde(default)]
    dry_run: bool,
}

/// Starts a background replay of `failed`, `unmapped` or `resolved` events
/// (or `all`), from `since` if given: 202 with the job. With `dry_run`, 200
/// with what it would do instead.
async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = source_id(&id)?;
    let body: ReplayBody = match parse_body(&body) {
        Ok(body) => body,
        Err(e) => return body_error(&state, id, e).await,
    };
    let request = crate::service::mappings::ReplayRequest {
        status: body.status,
        since: body.since,
    };
    if body.dry_run {
        let plan = state.services.replay_plan(id, request).await?;
        return Ok(Json(plan).into_response());
    }
    let job = state.services.start_replay(id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

async fn list_presets(State(state): State<AppState>) -> Json<PresetList> {
    Json(state.services.presets().await)
}
