//! `/api/sources`: create, list, read, update, delete and rotate sources.

use crate::domain::ids::SourceId;
use crate::domain::mapping::presets;
use crate::domain::source::{ApiKeyInput, Source, SourceError};
use crate::domain::views::source_json;
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use crate::store::StateStore;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sources", get(list).post(create))
        .route("/sources/{id}", get(read).patch(update).delete(remove))
        .route("/sources/{id}/rotate", post(rotate))
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
}

/// Distinguishes "field absent" (outer None) from "field is null" (Some(None)).
fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl From<SourceError> for AppError {
    fn from(e: SourceError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

/// Parses a JSON body, turning serde's message into a 400 that names the field.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> AppResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid: {e}")))
}

pub(crate) fn parse_source_id(id: &str) -> AppResult<SourceId> {
    id.parse()
        .map_err(|_| AppError::NotFound(format!("no source `{id}`")))
}

pub(crate) fn load_source(state: &AppState, id: &str) -> AppResult<Source> {
    let id = parse_source_id(id)?;
    state
        .store
        .source(id)?
        .ok_or_else(|| AppError::NotFound(format!("no source `{id}`")))
}

async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> AppResult<(StatusCode, Json<Value>)> {
    let input: CreateSource = parse_body(&body)?;
    let preset = input
        .preset
        .as_deref()
        .map(|name| presets::preset(name).ok_or_else(|| super::mapping::unknown_preset(name)))
        .transpose()?;
    let name = input
        .name
        .or_else(|| preset.map(|p| p.name.clone()))
        .unwrap_or_default();
    let records_path = input
        .records_path
        .or_else(|| preset.and_then(|p| p.records_path.clone()));
    let (mut source, token) = Source::create(&name, input.api_key, records_path)?;
    source.set_blocked_values(input.blocked_values.unwrap_or_default());
    state.store.put_source(&source)?;
    tracing::info!(source = %source.id, "source created");
    let mut out = source_json(&source, state.counters.view(source.id), Some(&token));
    if let Some(preset) = preset {
        let saved = super::mapping::save_mapping(
            &state,
            &source,
            preset.mapping.clone(),
            Some(preset.name.clone()),
        )?;
        out["mapping_version"] = saved["version"].clone();
        out["mapping"] = saved;
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn list(State(state): State<AppState>) -> AppResult<Json<Value>> {
    let sources: Vec<Value> = state
        .store
        .sources()?
        .iter()
        .map(|s| source_json(s, state.counters.view(s.id), None))
        .collect();
    Ok(Json(json!({ "sources": sources })))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let source = load_source(&state, &id)?;
    let mut out = source_json(&source, state.counters.view(source.id), None);
    out["replay"] = json!(state.store.replay(source.id)?);
    Ok(Json(out))
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<Value>> {
    let mut source = load_source(&state, &id)?;
    let input: UpdateSource = parse_body(&body)?;
    if let Some(name) = input.name {
        source.set_name(&name)?;
    }
    if let Some(key) = input.api_key {
        source.set_api_key(key)?;
    }
    if let Some(path) = input.records_path {
        source.set_records_path(path)?;
    }
    if let Some(values) = input.blocked_values {
        source.set_blocked_values(values);
    }
    source.updated_at = chrono::Utc::now();
    state.store.put_source(&source)?;
    Ok(Json(source_json(
        &source,
        state.counters.view(source.id),
        None,
    )))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<StatusCode> {
    let id = parse_source_id(&id)?;
    match state.store.delete_source(id)? {
        Some(_) => {
            tracing::info!(source = %id, "source deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(AppError::NotFound(format!("no source `{id}`"))),
    }
}

async fn rotate(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let mut source = load_source(&state, &id)?;
    let token = source.rotate();
    state.store.put_source(&source)?;
    tracing::info!(source = %source.id, "source token rotated");
    Ok(Json(source_json(
        &source,
        state.counters.view(source.id),
        Some(&token),
    )))
}
