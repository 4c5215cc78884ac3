//! `/api/events`: recent events, newest first, as bounded views; one
//! event (bounded) and its whole stored record (`/raw`).
//!
//! A list answers `{"events", "next", "partial", "scan_truncated",
//! "scanned"}`. `q` finds ids, mapped identifiers and any whole scalar
//! value of the payload (an email in a failed event, an order number);
//! `name` the mapped event name; `from`/`to` a received-time range. A
//! filtered list (`q`, `status`, `name` or `from`) scans at most `scan` events (default and
//! most 5,000), 16 MiB of stored state and 250 ms; when the budget runs out
//! before the page fills it answers what it found with `"partial": true`
//! and `next`, from which `before=` continues the scan. At most two such
//! scans run at once (on blocking threads); a third waits up to 2 s, then
//! gets 503 `search_busy`.

use super::{page_limit, query_param};
use crate::domain::events::{parse_range_bound, EventFilter, RangeEnd};
use crate::domain::ids::EventId;
use crate::domain::model::EventStatus;
use crate::domain::views::EventView;
use crate::http::error::{AppError, AppResult};
use crate::http::extract::Query;
use crate::http::AppState;
use crate::service::events::{EventPage, ListEvents, RetryQueued};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/{id}", get(read))
        .route("/events/{id}/raw", get(raw))
        .route("/events/{id}/retry", post(retry))
}

#[derive(Deserialize)]
struct ListQuery {
    source_id: Option<String>,
    status: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
    /// Most events a filtered page scans (1 to 5,000).
    scan: Option<usize>,
    /// The mapped event name.
    name: Option<String>,
    /// Received at or after / at or before: RFC 3339 or `YYYY-MM-DD`.
    from: Option<String>,
    to: Option<String>,
}

/// A `from=` / `to=` value, or 400 `invalid_query` naming it.
fn range_bound(
    param: &'static str,
    value: Option<String>,
    end: RangeEnd,
) -> AppResult<Option<DateTime<Utc>>> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(v) => parse_range_bound(&v, end).map(Some).ok_or_else(|| AppError::Coded {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_query",
            message: format!(
                "{param} `{v}` is not a time: give RFC 3339 (2026-12-01T10:00:00Z) or a date (2026-12-01)"
            ),
        }),
    }
}

impl ListQuery {
    fn into_input(self) -> AppResult<ListEvents> {
        let source_id = query_param(
            self.source_id,
            |s| s.parse().ok(),
            |s| format!("source_id `{s}` is not a source id"),
        )?;
        let status = query_param(self.status, EventStatus::parse, |s| {
            format!("status `{s}` is not one of pending, unmapped, resolved, failed, duplicate")
        })?;
        let before = query_param(
            self.before,
            |s| s.parse::<EventId>().ok(),
            |s| format!("before `{s}` is not an event id"),
        )?;
        let filter = EventFilter {
            source_id,
            status,
            search: self.q.filter(|q| !q.trim().is_empty()),
            limit: page_limit(self.limit, 50, 500),
            before,
            name: self.name.filter(|n| !n.trim().is_empty()),
            from: range_bound("from", self.from, RangeEnd::From)?,
            to: range_bound("to", self.to, RangeEnd::To)?,
        };
        Ok(ListEvents {
            filter,
            scan: self.scan,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> AppResult<Json<EventPage>> {
    let input = query.into_input()?;
    Ok(Json(state.services.list_events(input).await?))
}

fn parse_event_id(id: &str) -> AppResult<EventId> {
    id.parse()
        .map_err(|_| AppError::not_found(format!("no event `{id}`")))
}

/// One event, bounded by `Bounds::PAGE` (1 MiB of payload shown).
async fn read(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<EventView>> {
    let event_id = parse_event_id(&id)?;
    Ok(Json(state.services.event(event_id).await?))
}

/// The whole stored record of an event (its JSON: payload, envelope,
/// headers), as stored.
async fn raw(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    let event_id = parse_event_id(&id)?;
    let body = state.services.raw_event(event_id).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Re-runs one event through its source's current mapping, in the
/// background: 202 `{"event_id", "version", "queued": true}`; 409 when it
/// cannot be (pending, duplicate, source deleted, no mapping).
async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<(axum::http::StatusCode, Json<RetryQueued>)> {
    let event_id = parse_event_id(&id)?;
    let queued = state.services.retry_event(event_id).await?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(queued)))
}
