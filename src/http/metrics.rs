//! `GET /metrics` (Prometheus text, no auth: it exposes counts and
//! latencies only, no ids or secrets; firewall it like any metrics port),
//! and the layer that times every hook request.

use crate::http::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::time::Instant;

/// OpenMetrics text, which Prometheus negotiates and parses.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(scrape))
}

async fn scrape(State(state): State<AppState>) -> Response {
    let text = state
        .metrics
        .render(&state.services.counters, state.services.commit.stats());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Counts and times a hook request, whatever its outcome (404s included).
pub(crate) async fn track_hooks(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .ingest_observed(response.status().as_u16(), started.elapsed());
    response
}
