//! `/api/identity/kinds`: the team's identifier kinds (list, define,
//! change, delete). The service checks every rule; this only reads bodies.

use super::sources::parse_body;
use crate::http::error::AppResult;
use crate::http::AppState;
use crate::service::identity_kinds::{KindInput, KindList, KindPatch, KindView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/identity/kinds", get(list).post(create))
        .route("/identity/kinds/{name}", patch(update).delete(delete))
}

async fn list(State(state): State<AppState>) -> AppResult<Json<KindList>> {
    Ok(Json(state.services.identity_kinds().await?))
}

/// 201 with the kind as defined (its priority where it landed).
async fn create(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> AppResult<(StatusCode, Json<KindView>)> {
    let input: KindInput = parse_body(&body)?;
    let created = state.services.create_identity_kind(input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<KindView>> {
    let patch: KindPatch = parse_body(&body)?;
    Ok(Json(
        state.services.update_identity_kind(&name, patch).await?,
    ))
}

/// 204; 409 `kind_in_use` when a mapping or a profile uses it.
async fn delete(State(state): State<AppState>, Path(name): Path<String>) -> AppResult<StatusCode> {
    state.services.delete_identity_kind(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
