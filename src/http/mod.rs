//! The HTTP surface. Each resource has its own `router()`; `app` merges them
//! and adds the layers every request gets (tracing, panic guard).

pub(crate) mod api;
pub mod dashboard;
pub mod error;
pub(crate) mod extract;
pub mod guard;
mod hooks;
mod metrics;
pub mod serve;
mod state;

pub use state::{AppState, Shared};

use api::{activity, errors, events, health, identity, mapping, never_merge, profiles, sources};

use crate::http::error::AppError;
use crate::http::guard::{Locked, PeerAddr};
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::net::{IpAddr, Ipv4Addr};
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
        .merge(never_merge::router())
        .merge(activity::router())
        .merge(identity::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            body_within_deadline,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .nest("/api", api)
        .merge(hooks::router().route_layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track_hooks,
        )))
        .merge(metrics::router())
        .merge(health::router())
        .merge(
            crate::http::dashboard::router()
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    body_within_deadline,
                ))
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    crate::http::dashboard::error_pages_keep_the_nav,
                )),
        )
        .fallback(not_found_for)
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
/// in constant time, behind the failed-attempt limit (`guard`): a locked
/// address or account is answered 429 before the token is looked at.
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = presented else {
        // No token is not a guess: not counted.
        return AppError::Unauthorized(
            "send the admin token as `Authorization: Bearer <token>`".into(),
        )
        .into_response();
    };
    let addr = peer_addr(&req);
    if let Err(locked) = state.auth_guard.check(addr) {
        return too_many_attempts(locked).into_response();
    }
    if state.admin_token.matches(token.as_bytes()) {
        state.auth_guard.succeeded(addr);
        next.run(req).await
    } else {
        state.auth_guard.failed(addr, "api");
        AppError::Unauthorized("the admin token is not valid".into()).into_response()
    }
}

/// The client's address as the accept loop saw it; unspecified when the
/// router is driven without it (then every such caller shares one bucket).
pub(crate) fn peer_addr(req: &Request) -> IpAddr {
    req.extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0)
}

pub(crate) fn too_many_attempts(locked: Locked) -> AppError {
    AppError::TooManyAttempts {
        retry_after_secs: locked.retry_after_secs(),
    }
}

/// The largest body the API and dashboard take: axum's default extractor
/// limit, which their handlers run under today.
const API_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// API and dashboard bodies must arrive whole within `body_timeout_secs`
/// (the hook path has its own check in `hooks::read_body`): the body is
/// read here, under the deadline and the size limit, and handed on as
/// bytes. Requests without a body pass untouched.
async fn body_within_deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        state.services.config.body_timeout(),
        Limited::new(body, API_BODY_LIMIT).collect(),
    )
    .await;
    match read {
        Ok(Ok(collected)) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => AppError::PayloadTooLarge(
            format!("the body is larger than the limit of {API_BODY_LIMIT} bytes"),
        )
        .into_response(),
        Ok(Err(e)) => {
            AppError::bad_request(format!("the body could not be read: {e}")).into_response()
        }
        Err(_) => body_timeout(state.services.config.body_timeout_secs).into_response(),
    }
}

pub(crate) fn body_timeout(secs: u64) -> AppError {
    AppError::BodyTimeout(body_timeout_message(secs))
}

/// What a sender whose body did not arrive in time is told (API, dashboard
/// and hooks alike).
pub(crate) fn body_timeout_message(secs: u64) -> String {
    format!("the body did not arrive within {secs} s; send it whole, without pauses")
}

async fn not_found() -> AppError {
    AppError::not_found("no such endpoint; see docs/api.md")
}

/// The answer for a path nothing serves: a page for a browser (it asks for
/// HTML) outside `/api` and `/hooks`, with the dashboard's navigation when
/// it is logged in; the JSON error for everyone else.
async fn not_found_for(State(state): State<AppState>, req: Request) -> Response {
    let path = req.uri().path();
    let program_path = path.starts_with("/api/") || path.starts_with("/hooks/");
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !program_path {
        return crate::http::dashboard::not_found_page(&state, req.headers());
    }
    not_found().await.into_response()
}

/// The answer when a handler panicked: the same 500 body as every internal
/// error, `code` included, so a client parses it like any other.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked; the server keeps running");
    let error = AppError::internal("a handler panicked");
    (error.status(), Json(error.body())).into_response()
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
            .ok_or_else(|| AppError::bad_request(expected(&v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;
    use tower::ServiceExt;

    async fn answer(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("json body"))
    }

    /// The layers `app` puts around every route, around a route that panics.
    fn guarded() -> Router {
        async fn panics() -> &'static str {
            panic!("a handler bug")
        }
        Router::new()
            .route("/panics", get(panics))
            .fallback(not_found)
            .layer(CatchPanicLayer::custom(panic_response))
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500_with_a_code() {
        let (status, body) = answer(guarded(), "/panics").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": "internal error; the server log has details", "code": "internal"})
        );
    }

    #[tokio::test]
    async fn an_unknown_path_is_answered_404_with_a_code() {
        let (status, body) = answer(guarded(), "/nothing/here").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": "no such endpoint; see docs/api.md", "code": "not_found"})
        );
    }
}
