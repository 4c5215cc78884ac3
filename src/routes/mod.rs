//! The HTTP surface. Each resource has its own `router()`; `app` merges them
//! and adds the layers every request gets (tracing, panic guard).

mod errors;
pub(crate) mod events;
mod health;
mod hooks;
pub(crate) mod mapping;
mod metrics;
pub(crate) mod profiles;
pub(crate) mod sources;

use crate::app::AppState;
use crate::error::AppError;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// The whole application router.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(sources::router())
        .merge(events::router())
        .merge(errors::router())
        .merge(mapping::router())
        .merge(profiles::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .nest("/api", api)
        .merge(hooks::router().route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_hooks,
        )))
        .merge(metrics::router())
        .merge(health::router())
        .merge(crate::dashboard::router())
        .fallback(not_found)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(trace_layer())
        .with_state(state)
}

/// One span per request. The URI is logged without its path tail for hooks:
/// the path of a hook *is* the source's secret; a hook request records its
/// source id instead.
fn trace_layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    impl Fn(&Request) -> tracing::Span + Clone,
> {
    TraceLayer::new_for_http().make_span_with(|req: &Request| {
        let path = req.uri().path();
        let shown = if path.starts_with("/hooks/") {
            "/hooks/{token}"
        } else {
            path
        };
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %shown,
            source = tracing::field::Empty
        )
    })
}

/// Admin API guard: `Authorization: Bearer <admin token>`, compared by hash
/// in constant time.
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.admin_token.matches(token.as_bytes()) => next.run(req).await,
        Some(_) => AppError::Unauthorized("the admin token is not valid".into()).into_response(),
        None => {
            AppError::Unauthorized("send the admin token as `Authorization: Bearer <token>`".into())
                .into_response()
        }
    }
}

async fn not_found() -> AppError {
    AppError::NotFound("no such endpoint; see docs/api.md".into())
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked; the server keeps running");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal error; the server log has details"})),
    )
        .into_response()
}

/// Parses a `limit` query parameter with a default and a ceiling.
pub(crate) fn page_limit(limit: Option<usize>, default: usize, max: usize) -> usize {
    limit.unwrap_or(default).clamp(1, max)
}

/// Parses an optional query parameter: absent or empty is `None`; a value
/// that does not parse is a 400 saying what was expected.
pub(crate) fn query_param<T>(
    value: Option<String>,
    parse: impl Fn(&str) -> Option<T>,
    expected: impl Fn(&str) -> String,
) -> Result<Option<T>, AppError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse(&v)
            .map(Some)
            .ok_or_else(|| AppError::BadRequest(expected(&v))),
    }
}
