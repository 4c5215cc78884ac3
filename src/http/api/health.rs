//! Liveness, and whether the store answers: a load balancer takes a node
//! whose database is away out of rotation (503) and back when it returns.

use crate::http::error::STORE_RETRY_AFTER_SECS;
use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// 200 `{"status":"ok","backend","processing"}` (`processing`: this node
/// holds the processing lease now; always true on the embedded backend), or 503 `{"status":"unavailable",
/// "backend","error"}` with `Retry-After` when the store does not answer
/// (PostgreSQL's `SELECT 1`, checked at most about once a second).
async fn healthz(State(state): State<AppState>) -> Response {
    let services = state.services.clone();
    let health = match tokio::task::spawn_blocking(move || services.health()).await {
        Ok(health) => health,
        Err(e) => crate::service::Health {
            backend: state.services.store.backend_name(),
            processing: false,
            unreachable: Some(format!("the check did not finish: {e}")),
        },
    };
    let backend = health.backend;
    match health.unreachable {
        None => Json(json!({"status": "ok", "backend": backend, "processing": health.processing}))
            .into_response(),
        Some(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, STORE_RETRY_AFTER_SECS.to_string())],
            Json(json!({"status": "unavailable", "backend": backend, "error": error})),
        )
            .into_response(),
    }
}
