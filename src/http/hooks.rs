//! `/hooks/{token}`: the HTTP side of accepting a hook request. The use case
//! (authenticate, decode, explode, store durably, log refusals) is
//! `service::ingest`; here is only what HTTP owns: reading the body under
//! the size limit and the body deadline, handing the service the request's
//! parts borrowed, and answering a refusal with its status and
//! `{"error", "code"}`. The `metrics` layer times every request.

use crate::config::Config;
use crate::domain::decode::{Refusal, RefusalKind};
use crate::domain::model::Stage;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::ingest::{Headers, HookRequest};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new().route("/hooks/{token}", get(receive).post(receive))
}

/// Takes the whole request rather than the `HeaderMap`, `Method` and
/// `RawQuery` extractors, which clone their parts: the headers are only
/// read, and this runs on every hook request.
///
/// `HEAD` (axum routes it here with GET) answers 200 with no body and
/// stores and logs nothing: senders probe the URL that way before they
/// send, and an empty query is no refusal to log.
async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, AppError> {
    let services = &state.services;
    let source = services.hook_source(&token).await?;
    if request.method() == Method::HEAD {
        return Ok(StatusCode::OK.into_response());
    }
    // Into the request's span (see `http::trace_layer`): a second span per
    // hook request was 1.5% of all CPU under load.
    tracing::Span::current().record("source", tracing::field::display(source.id));
    let (parts, body) = request.into_parts();
    let config = &services.config;
    // A sender that stops mid-body is answered 408 (the connection then
    // closes) instead of holding it open. Lazy: the service awaits it only
    // once the sender is authenticated.
    let body = read_body(&parts.headers, body, config);
    let request = HookRequest {
        is_get: parts.method == Method::GET,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        query: parts.uri.query(),
        headers: &parts.headers,
    };
    match services.accept_hook(&source, request, body).await {
        Ok(accepted) => Ok((StatusCode::ACCEPTED, Json(accepted)).into_response()),
        Err(refusal) if refusal.code == BODY_TOO_LARGE => Ok(closing(refusal.into())),
        Err(refusal) => Err(refusal.into()),
    }
}

/// An answer after which the connection closes: what is left of an
/// oversized body (past the drain's bound) must not be read as the next
/// request, and a sender that sends too much is not kept.
fn closing(error: AppError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The service reads headers through this; `HeaderMap` names are lowercase
/// already, and values are handed over as the bytes received.
impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&[u8]> {
        HeaderMap::get(self, name).map(|v| v.as_bytes())
    }

    fn each(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
    }
}

fn body_timeout(secs: u64) -> Refusal {
    Refusal::new(
        RefusalKind::TooSlow,
        Stage::Limit,
        "body_timeout",
        super::body_timeout_message(secs),
    )
}

const BODY_TOO_LARGE: &str = "body_too_large";

/// An oversized body is read and thrown away up to this many times the
/// limit, and for at most [`DRAIN_TIME`], before the 413 goes out (see
/// `read_body`).
const DRAIN_FACTOR: usize = 4;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads the body within the body deadline, refusing it once it passes the
/// limit: the limit is enforced on the stream itself, so a lying or absent
/// Content-Length cannot make the server buffer more.
///
/// A refused body is then drained, as nginx's lingering close does: many
/// clients (Python's `http.client` and `requests`, most SDKs) write the
/// whole body before they read, and closing on them while they write gives
/// them a broken pipe instead of the 413, so they retry without knowing
/// why. Reading the rest (up to `DRAIN_FACTOR` times the limit, for at most
/// `DRAIN_TIME`, without keeping it) lets the answer reach them; a body
/// past that bound, or a declared length past it, is answered at once and
/// the connection closed, so a sender cannot keep it busy for ever.
async fn read_body(headers: &HeaderMap, mut body: Body, config: &Config) -> Result<Bytes, Refusal> {
    let limit = config.max_body_bytes;
    let bound = limit.saturating_mul(DRAIN_FACTOR);
    let too_large = || {
        Refusal::new(
            RefusalKind::TooLarge,
            Stage::Limit,
            BODY_TOO_LARGE,
            format!(
                "the body is larger than the limit of {limit} bytes; split it into smaller requests"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|n| *n > limit as u64) {
        if declared <= bound as u64 {
            drain(&mut body, bound).await;
        }
        return Err(too_large());
    }
    let collected = tokio::time::timeout(
        config.body_timeout(),
        Limited::new(&mut body, limit).collect(),
    )
    .await
    .map_err(|_| body_timeout(config.body_timeout_secs))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            drain(&mut body, bound).await;
            Err(too_large())
        }
        Err(e) => Err(Refusal::new(
            RefusalKind::BadInput,
            Stage::Decode,
            "body_read_failed",
            format!("the body could not be read: {e}"),
        )),
    }
}

/// Reads and drops what is left of `body`, up to `bound` bytes in all and
/// for at most `DRAIN_TIME`; whether it ended within both.
async fn drain(body: &mut Body, bound: usize) -> bool {
    let read_rest = async {
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > bound {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_rest)
        .await
        .unwrap_or(false)
}
