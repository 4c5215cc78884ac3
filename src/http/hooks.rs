//! `/hooks/{token}`: the request path, steps 1–7 of the data-flow line.
//!
//! authenticate → read body under the limit → decode → explode records →
//! durable log → group flush → 202. Every refusal at a known source is
//! written to the error log with its stage; nothing here maps or resolves.

use crate::domain::decode::{self, DecodeError};
use crate::domain::ids::{EventId, RequestId, SourceId};
use crate::domain::model::{ErrorEntry, Level, RawEvent, Stage};
use crate::domain::records::{self, Exploded, Limits, RecordsError};
use crate::domain::source::{SecretHash, Source};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::{EventLog, StateStore};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new().route("/hooks/{token}", get(receive).post(receive))
}

/// A refusal: the error the sender sees, plus where it is logged.
struct Refusal {
    error: AppError,
    stage: Stage,
    code: &'static str,
    excerpt: Option<String>,
}

impl Refusal {
    /// The answer to the sender: client errors carry the code in the body.
    fn into_error(self) -> AppError {
        let status = self.error.status();
        if status.is_server_error() {
            return self.error;
        }
        AppError::Coded {
            status,
            code: self.code,
            message: self.error.to_string(),
        }
    }

    fn new(error: AppError, stage: Stage, code: &'static str) -> Self {
        Self {
            error,
            stage,
            code,
            excerpt: None,
        }
    }

    fn with_excerpt(mut self, bytes: &[u8]) -> Self {
        self.excerpt = decode::excerpt(bytes);
        self
    }
}

/// The 202 body: how many records were stored, and their event ids in
/// record order.
#[derive(Serialize)]
struct Accepted {
    accepted: usize,
    ids: Vec<EventId>,
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
    let source = find_source(&state, &token)?;
    if request.method() == Method::HEAD {
        return Ok(StatusCode::OK.into_response());
    }
    // Into the request's span (see `routes::trace_layer`): a second span per
    // hook request was 1.5% of all CPU under load.
    tracing::Span::current().record("source", tracing::field::display(source.id));
    let (parts, body) = request.into_parts();
    let accepted = accept(
        &state,
        &source,
        &parts.method,
        &parts.headers,
        parts.uri.query(),
        body,
    )
    .await;
    match accepted {
        Ok(ids) => Ok((
            StatusCode::ACCEPTED,
            Json(Accepted {
                accepted: ids.len(),
                ids,
            }),
        )
            .into_response()),
        Err(refusal) => {
            log_refusal(&state, source.id, &refusal);
            Err(refusal.into_error())
        }
    }
}

fn find_source(state: &AppState, token: &str) -> Result<Arc<Source>, AppError> {
    let unknown = || {
        AppError::NotFound(
            "unknown webhook URL: no source has this token (it may have been rotated or deleted)"
                .into(),
        )
    };
    if token.len() > 128 {
        return Err(unknown());
    }
    state
        .store
        .cached_source_by_token(&SecretHash::of(token.as_bytes()))?
        .ok_or_else(unknown)
}

async fn accept(
    state: &AppState,
    source: &Source,
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: Body,
) -> Result<Vec<EventId>, Refusal> {
    authenticate(source, headers)?;
    // A sender that stops mid-body is answered 408 (the connection then
    // closes) instead of holding it open.
    let bytes = tokio::time::timeout(
        state.config.body_timeout(),
        read_body(headers, body, state.config.max_body_bytes),
    )
    .await
    .unwrap_or_else(|_| Err(body_timeout(state.config.body_timeout_secs)))?;
    let request = Received {
        from_query: method == Method::GET && bytes.is_empty(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        query,
        bytes,
        records_path: source.records_path.as_deref(),
    };
    let limits = Limits {
        max_records: state.config.max_records,
        max_record_bytes: state
            .config
            .max_stored_factor
            .saturating_mul(request.size()),
    };
    let exploded = decode_and_explode(request, limits).await?;
    let safe_headers = decode::safe_headers(
        headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
        source.api_key.as_ref().map(|k| k.header.as_str()),
    );
    let events = to_raw_events(source.id, exploded, safe_headers);
    store_durably(state, source.id, events).await
}

fn body_timeout(secs: u64) -> Refusal {
    Refusal::new(super::body_timeout(secs), Stage::Limit, "body_timeout")
}

fn authenticate(source: &Source, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(key) = &source.api_key else {
        return Ok(());
    };
    let presented = headers.get(key.header.as_str()).map(|v| v.as_bytes());
    if source.accepts_key(presented) {
        return Ok(());
    }
    let (code, message) = match presented {
        None => (
            "missing_api_key",
            format!("this source requires the `{}` header", key.header),
        ),
        Some(_) => (
            "bad_api_key",
            format!(
                "the `{}` header does not hold this source's api key",
                key.header
            ),
        ),
    };
    Err(Refusal::new(
        AppError::Unauthorized(message),
        Stage::Auth,
        code,
    ))
}

/// Reads the body, refusing it as soon as it passes the limit: the limit is
/// enforced on the stream itself, so a lying or absent Content-Length cannot
/// make the server buffer more.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::new(
            AppError::PayloadTooLarge(format!(
                "the body is larger than the limit of {limit} bytes; split it into smaller requests"
            )),
            Stage::Limit,
            "body_too_large",
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
            AppError::BadRequest(format!("the body could not be read: {e}")),
            Stage::Decode,
            "body_read_failed",
        )),
    }
}

/// What decoding and explosion need of a request. Borrowed: nearly every
/// request is decoded in place, and only a large one is copied to move to
/// the blocking pool (`decode_and_explode`).
struct Received<'a> {
    /// A GET with no body: the query string is the record.
    from_query: bool,
    content_type: Option<&'a str>,
    query: Option<&'a str>,
    bytes: Bytes,
    records_path: Option<&'a str>,
}

impl Received<'_> {
    /// Bytes received: the body, or the query string it was decoded from.
    fn size(&self) -> usize {
        if self.from_query {
            self.query.map_or(0, str::len)
        } else {
            self.bytes.len()
        }
    }
}

/// Requests at most this large are decoded and exploded on the request's
/// own thread: nearly every hook request, for which a hop to the blocking
/// pool would cost more than the work. Larger ones (up to
/// `max_body_bytes`, a few ms of parsing and explosion) run on the blocking
/// pool, so they cannot stall the async workers and every other sender.
const INLINE_BYTES: usize = 64 << 10;

async fn decode_and_explode(request: Received<'_>, limits: Limits) -> Result<Exploded, Refusal> {
    if request.size() <= INLINE_BYTES {
        return decode_and_explode_now(&request, limits);
    }
    let owned = |s: Option<&str>| s.map(str::to_owned);
    let (content_type, query, records_path) = (
        owned(request.content_type),
        owned(request.query),
        owned(request.records_path),
    );
    let (from_query, bytes) = (request.from_query, request.bytes);
    tokio::task::spawn_blocking(move || {
        let request = Received {
            from_query,
            content_type: content_type.as_deref(),
            query: query.as_deref(),
            bytes,
            records_path: records_path.as_deref(),
        };
        decode_and_explode_now(&request, limits)
    })
    .await
    .map_err(|e| {
        Refusal::new(
            AppError::Internal(format!("decoding the body failed: {e}")),
            Stage::Decode,
            "decode_failed",
        )
    })?
}

fn decode_and_explode_now(request: &Received, limits: Limits) -> Result<Exploded, Refusal> {
    let value = decode(request)?;
    records::explode_within(value, request.records_path, limits)
        .map_err(|e| records_refusal(e, &request.bytes))
}

fn decode(request: &Received) -> Result<Value, Refusal> {
    let result = if request.from_query {
        decode::decode_query(request.query.unwrap_or(""))
    } else {
        decode::body_format(request.content_type)
            .and_then(|format| decode::decode_body(format, &request.bytes))
    };
    result.map_err(|e| {
        let code = e.code();
        let error = match e {
            DecodeError::UnsupportedType(_) => AppError::UnsupportedMediaType(e.to_string()),
            _ => AppError::BadRequest(e.to_string()),
        };
        Refusal::new(error, Stage::Decode, code).with_excerpt(&request.bytes)
    })
}

fn records_refusal(e: RecordsError, bytes: &[u8]) -> Refusal {
    match e {
        RecordsError::TooMany { .. } => Refusal::new(
            AppError::PayloadTooLarge(e.to_string()),
            Stage::Records,
            "too_many_records",
        ),
        RecordsError::TooLarge { .. } => Refusal::new(
            AppError::PayloadTooLarge(e.to_string()),
            Stage::Records,
            "explosion_too_large",
        ),
        RecordsError::TooDeep(_) => Refusal::new(
            AppError::BadRequest(e.to_string()),
            Stage::Records,
            "too_deep",
        )
        .with_excerpt(bytes),
        other => Refusal::new(
            AppError::BadRequest(other.to_string()),
            Stage::Records,
            "bad_records",
        )
        .with_excerpt(bytes),
    }
}

/// One `RawEvent` per record. What the records share (envelope, headers)
/// is one `Arc` for all of them: a 10,000-row request holds one copy.
fn to_raw_events(
    source_id: SourceId,
    exploded: records::Exploded,
    headers: serde_json::Map<String, Value>,
) -> Vec<RawEvent> {
    let request_id = RequestId::new();
    let received_at = Utc::now();
    let records::Exploded {
        records,
        envelope,
        not_mappable,
    } = exploded;
    let envelope = envelope.map(Arc::new);
    let headers = Arc::new(headers);
    records
        .into_iter()
        .map(|payload| RawEvent {
            // Replaced by the store under its append lock (id order = commit order).
            id: EventId(uuid::Uuid::nil()),
            source_id,
            request_id,
            received_at,
            payload,
            envelope: envelope.clone(),
            headers: headers.clone(),
            not_mappable: not_mappable.clone(),
        })
        .collect()
}

/// Appends the records and waits for the group flush that covers them;
/// returns their event ids.
///
/// The append itself runs inline: it is a memcpy into the log buffer,
/// cheaper than a hop to the blocking pool. Only the flush
/// waits, and it waits asynchronously.
async fn store_durably(
    state: &AppState,
    source_id: SourceId,
    events: Vec<RawEvent>,
) -> Result<Vec<EventId>, Refusal> {
    let unavailable = |detail: String| {
        tracing::error!(error = %detail, "append failed");
        Refusal::new(AppError::Internal(detail), Stage::Store, "store_failed")
    };
    let ids: Vec<EventId> = state
        .store
        .append_events(events)
        .map_err(|e| unavailable(e.to_string()))?
        .iter()
        .map(|e| e.id)
        .collect();
    // Counted as soon as they are in the log, before the await: the
    // processor sees them from now on, and a sender that hangs up during the
    // flush cancels this future, which must not leave them uncounted.
    state.counters.add_received(source_id, ids.len() as u64);
    state
        .commit
        .durable()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    // The processor takes durable events only: wake it now that these are.
    state.new_events.notify_one();
    Ok(ids)
}

fn log_refusal(state: &AppState, source: SourceId, refusal: &Refusal) {
    tracing::info!(
        stage = refusal.stage.as_str(),
        code = refusal.code,
        "refused"
    );
    let entry = ErrorEntry::new(
        Some(source),
        refusal.stage,
        Level::Error,
        refusal.code,
        refusal.error.to_string(),
    )
    .with_excerpt(refusal.excerpt.clone());
    if let Err(e) = state.store.log_error(&entry) {
        tracing::error!(error = %e, "could not write the error log");
    }
}
