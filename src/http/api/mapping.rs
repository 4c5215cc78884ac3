//! `/api/sources/{id}/...`: the learned schema, samples, suggested mapping,
//! mapping versions, preview and replay.

use super::page_limit;
use super::sources::{load_source, parse_body};
use crate::domain::events::EventFilter;
use crate::domain::ids::{EventId, RequestId};
use crate::domain::mapping::{presets, CompiledMapping};
use crate::domain::model::{EventStatus, MappingSpec, RawEvent};
use crate::domain::source::Source;
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use crate::store::StateStore;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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

async fn schema(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let view = state
        .processor
        .schemas
        .snapshot(source.id)
        .map(|s| s.view())
        .unwrap_or_else(|| json!({"samples": 0, "fields": [], "drift": [], "truncated": {"paths": 0, "depth": 0}}));
    Ok(Json(view))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

/// The latest raw events of a source, newest first.
pub(crate) fn latest_samples(
    state: &AppState,
    source: &Source,
    limit: usize,
) -> AppResult<Vec<RawEvent>> {
    let (events, _) = state.store.events_page(&EventFilter {
        source_id: Some(source.id),
        limit,
        ..EventFilter::default()
    })?;
    Ok(events.into_iter().map(|e| e.raw).collect())
}

async fn samples(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let samples = latest_samples(&state, &source, page_limit(q.limit, 10, 100))?;
    let records: Vec<Value> = samples
        .iter()
        .map(|raw| json!({"event_id": raw.id, "received_at": raw.received_at, "record": raw.payload, "envelope": raw.envelope}))
        .collect();
    Ok(Json(json!({"samples": records})))
}

async fn suggest(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let schema = state
        .processor
        .schemas
        .snapshot(source.id)
        .unwrap_or_default();
    let suggestion = crate::domain::sniff::suggest(&schema, &source.name);
    Ok(Json(json!({
        "mapping": suggestion.mapping,
        "reasons": suggestion.reasons,
        "samples": schema.samples,
    })))
}

async fn current(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let version = source
        .mapping_version
        .map(|v| state.store.mapping_version(source.id, v))
        .transpose()?
        .flatten()
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "source `{}` has no mapping yet; PUT one, or start from GET /api/sources/{}/mapping/suggest",
                source.name, source.id
            ))
        })?;
    Ok(Json(json!(version)))
}

async fn versions(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let versions = state.store.mapping_versions(source.id)?;
    Ok(Json(
        json!({"current": source.mapping_version, "versions": versions}),
    ))
}

/// A mapping body: the spec itself, or `{"preset": "stripe"}`.
pub(crate) fn spec_from_body(body: &[u8]) -> AppResult<(MappingSpec, Option<String>)> {
    let value: Value = parse_body(body)?;
    if let Some(name) = value.get("preset") {
        let name = name.as_str().unwrap_or_default();
        let preset = presets::preset(name).ok_or_else(|| unknown_preset(name))?;
        return Ok((preset.mapping.clone(), Some(preset.name.clone())));
    }
    let spec = serde_json::from_value(value)
        .map_err(|e| AppError::BadRequest(format!("the mapping is not valid: {e}")))?;
    Ok((spec, None))
}

pub(crate) fn unknown_preset(name: &str) -> AppError {
    let known: Vec<&str> = presets::presets().iter().map(|p| p.name.as_str()).collect();
    AppError::BadRequest(format!(
        "unknown preset `{name}`; known presets: {}",
        known.join(", ")
    ))
}

/// Compiles a spec or answers 400 with one message per field.
pub(crate) fn compile(spec: MappingSpec, version: u32) -> AppResult<CompiledMapping> {
    CompiledMapping::compile(spec, version).map_err(|e| AppError::Invalid {
        message: "the mapping is not valid; see `fields` for what to fix".into(),
        fields: e.fields,
        code: e.code,
    })
}

/// Warnings for template paths the learned schema has never seen.
pub(crate) fn unseen_paths(
    state: &AppState,
    source: &Source,
    mapping: &CompiledMapping,
) -> Vec<String> {
    let Some(schema) = state
        .processor
        .schemas
        .snapshot(source.id)
        .filter(|s| s.samples > 0)
    else {
        return Vec::new();
    };
    mapping
        .referenced_paths()
        .into_iter()
        .filter(|p| !schema.has_path(&crate::domain::sniff::schema_path_of(p)))
        .map(|p| {
            format!(
                "`{p}` has never been seen in this source's {} events",
                schema.samples
            )
        })
        .collect()
}

/// Saves a new version; the first version also maps every event that
/// arrived before it (a replay of `unmapped`).
pub(crate) fn save_mapping(
    state: &AppState,
    source: &Source,
    spec: MappingSpec,
    preset: Option<String>,
) -> AppResult<Value> {
    let checked = compile(spec, 0)?;
    let warnings = unseen_paths(state, source, &checked);
    let saved = state.store.save_mapping(source.id, &checked.spec, preset)?;
    let compiled = compile(saved.mapping.clone(), saved.version)?;
    state
        .processor
        .mappings
        .install(source.id, Arc::new(compiled));
    let replay = if source.mapping_version.is_none() {
        Some(
            state
                .processor
                .start_replay(source.id, EventStatus::Unmapped)?,
        )
    } else {
        None
    };
    state.new_events.notify_one();
    let mut out = json!(saved);
    out["warnings"] = json!(warnings);
    out["replay"] = json!(replay);
    Ok(out)
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let (spec, preset) = spec_from_body(&body)?;
    let saved = off_async_threads(move || save_mapping(&state, &source, spec, preset)).await?;
    Ok(Json(saved))
}

/// Compiling a mapping at the limits takes up to a few hundred ms
/// (measured: docs/notes/templates.md), so it runs on the blocking pool,
/// not on a request worker other senders share.
pub(crate) async fn off_async_threads<T: Send + 'static>(
    work: impl FnOnce() -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Internal(format!("mapping work stopped: {e}")))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    #[serde(default)]
    mapping: Option<Value>,
    #[serde(default)]
    payload: Option<Value>,
}

/// Records one preview maps; the rest are counted in `omitted`.
pub const PREVIEW_MAX_SAMPLES: usize = 20;
/// Bytes of one previewed result (as JSON) before its properties and
/// traits are replaced by a marker.
pub const PREVIEW_MAX_RESULT_BYTES: usize = 16 * 1024;
/// Bytes of all results of one preview; results past it are omitted.
pub const PREVIEW_MAX_BYTES: usize = 256 * 1024;

/// Runs a compiled mapping over stored or given records, with what the
/// resolver would do for each; stores nothing. The answer is bounded: at
/// most [`PREVIEW_MAX_SAMPLES`] records, each result clipped to
/// [`PREVIEW_MAX_RESULT_BYTES`], all to [`PREVIEW_MAX_BYTES`];
/// `omitted` says how many records were left out.
pub(crate) fn run_preview(
    state: &AppState,
    source: &Source,
    mapping: &CompiledMapping,
    records: &[RawEvent],
) -> AppResult<Value> {
    let mut results = Vec::new();
    let mut total = 0usize;
    for raw in records.iter().take(PREVIEW_MAX_SAMPLES) {
        let result = clip_result(state.processor.preview(source, mapping, raw)?);
        let bytes = json_len(&result);
        if total + bytes > PREVIEW_MAX_BYTES {
            break;
        }
        total += bytes;
        results.push(result);
    }
    let omitted = records.len() - results.len();
    Ok(json!({
        "results": results,
        "omitted": omitted,
        "warnings": unseen_paths(state, source, mapping),
    }))
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// A result too large to show: its event's `properties` and `traits`
/// become a marker saying how large they were, and long texts are cut.
fn clip_result(mut result: Value) -> Value {
    let bytes = json_len(&result);
    if bytes <= PREVIEW_MAX_RESULT_BYTES {
        return result;
    }
    if let Some(event) = result.get_mut("event").and_then(Value::as_object_mut) {
        for key in ["properties", "traits"] {
            if let Some(value) = event.get_mut(key) {
                let size = json_len(value);
                *value = json!(format!("(truncated: {size} bytes; the preview shows at most {PREVIEW_MAX_RESULT_BYTES} per result)"));
            }
        }
        for value in event.values_mut() {
            if let Some(text) = value.as_str().filter(|t| t.len() > 1024) {
                let cut = text.char_indices().nth(1024).map_or(text.len(), |(i, _)| i);
                *value = json!(format!(
                    "{}… (truncated: {} bytes)",
                    &text[..cut],
                    text.len()
                ));
            }
        }
    }
    if let Some(error) = result
        .get("error")
        .and_then(Value::as_str)
        .filter(|e| e.len() > 1024)
    {
        let cut = error
            .char_indices()
            .nth(1024)
            .map_or(error.len(), |(i, _)| i);
        result["error"] = json!(format!("{}… (truncated)", &error[..cut]));
    }
    result["truncated"] = json!(true);
    result
}

/// The mapping a preview runs: the one given (compiled, not saved), else
/// the source's current one as already compiled for the processor.
fn preview_mapping(
    state: &AppState,
    source: &Source,
    given: Option<Value>,
) -> AppResult<Arc<CompiledMapping>> {
    if let Some(m) = given {
        let (spec, _) = spec_from_body(&serde_json::to_vec(&m).unwrap_or_default())?;
        return Ok(Arc::new(compile(spec, 0)?));
    }
    match state
        .processor
        .mappings
        .current_or_broken(&state.store, source)?
    {
        Some(Ok(mapping)) => Ok(mapping),
        Some(Err(broken)) => Err(AppError::Invalid {
            message: broken.reason.clone(),
            fields: BTreeMap::new(),
            code: Some(broken.code),
        }),
        None => Err(AppError::BadRequest(
            "no mapping given and the source has none saved yet".into(),
        )),
    }
}

fn preview_records(source: &Source, body: Value, max_records: usize) -> AppResult<Vec<RawEvent>> {
    let exploded =
        crate::domain::records::explode(body, source.records_path.as_deref(), max_records)
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let request_id = RequestId::new();
    let received_at = chrono::Utc::now();
    let envelope = exploded.envelope.map(std::sync::Arc::new);
    Ok(exploded
        .records
        .into_iter()
        .map(|payload| RawEvent {
            id: EventId::new(),
            source_id: source.id,
            request_id,
            received_at,
            payload,
            envelope: envelope.clone(),
            headers: Default::default(),
            not_mappable: exploded.not_mappable.clone(),
        })
        .collect())
}

async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let body: PreviewBody = if body.is_empty() {
        PreviewBody {
            mapping: None,
            payload: None,
        }
    } else {
        parse_body(&body)?
    };
    let answer = off_async_threads(move || {
        let mapping = preview_mapping(&state, &source, body.mapping)?;
        let records = match body.payload {
            Some(payload) => preview_records(&source, payload, state.config.max_records)?,
            None => latest_samples(&state, &source, 5)?,
        };
        run_preview(&state, &source, &mapping, &records)
    })
    .await?;
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    status: String,
}

/// Starts a background replay of `failed` or `unmapped` events.
pub(crate) fn start_replay(state: &AppState, source: &Source, status: &str) -> AppResult<Value> {
    let status = match EventStatus::parse(status) {
        Some(s @ (EventStatus::Failed | EventStatus::Unmapped)) => s,
        _ => {
            return Err(AppError::BadRequest(format!(
                "status `{status}` cannot be replayed; use \"failed\" or \"unmapped\""
            )))
        }
    };
    if source.mapping_version.is_none() {
        return Err(AppError::Conflict(
            "save a mapping before replaying events".into(),
        ));
    }
    let job = state.processor.start_replay(source.id, status)?;
    state.new_events.notify_one();
    Ok(json!(job))
}

async fn replay(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<(StatusCode, Json<Value>)> {
    let source = load_source(&state, &id)?;
    let body: ReplayBody = parse_body(&body)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(start_replay(&state, &source, &body.status)?),
    ))
}

async fn list_presets() -> Json<Value> {
    Json(json!({"presets": presets::presets()}))
}
