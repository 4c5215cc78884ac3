//! `/hooks/{token}`: the HTTP side of accepting a hook request. The use case
//! (authenticate, decode, explode, store durably, log refusals) is
//! `service::ingest`; here is only what HTTP owns: reading the body under
//! the size limit and the body deadline, handing the service the request's
//! parts borrowed, and answering a refusal with its status and
//! `{"error", "code"}`. The `metrics` layer times every request.

use crate::domain::decode::{Refusal, RefusalKind};
use crate::domain::model::Stage;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::ingest::{Headers, HookRequest};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

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
    let body = async {
        tokio::time::timeout(
            config.body_timeout(),
            read_body(&parts.headers, body, config.max_body_bytes),
        )
        .await
        .unwrap_or_else(|_| Err(body_timeout(config.body_timeout_secs)))
    };
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
        Err(refusal) => Err(refusal.into()),
    }
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

/// Reads the body, refusing it as soon as it passes the limit: the limit is
/// enforced on the stream itself, so a lying or absent Content-Length cannot
/// make the server buffer more.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            RefusalKind::TooLarge,
            Stage::Limit,
            "body_too_large",
            format!(
                "the body is larger than the limit of {limit} bytes; split it into smaller requests"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(e) => Err(Refusal::new(
            RefusalKind::BadInput,
            Stage::Decode,
            "body_read_failed",
            format!("the body could not be read: {e}"),
        )),
    }
}
