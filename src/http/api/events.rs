//! `/api/events`: recent events, newest first, as bounded views; one
//! event (bounded) and its whole stored record (`/raw`).
//!
//! A list answers `{"events", "next", "partial", "scanned"}`. A filtered
//! list (search `q` or `status`) scans at most `scan` events (default and
//! most 5,000), 16 MiB of stored state and 250 ms; when the budget runs out
//! before the page fills it answers what it found with `"partial": true`
//! and `next`, from which `before=` continues the scan. At most two such
//! scans run at once (on blocking threads); a third waits up to 2 s, then
//! gets 503 `search_busy`.

use super::{page_limit, query_param};
use crate::domain::events::EventFilter;
use crate::domain::ids::EventId;
use crate::domain::model::EventStatus;
use crate::domain::summary::Bounds;
use crate::domain::views::summary_json;
use crate::http::error::{AppError, AppResult};
use crate::http::AppState;
use crate::store::StateStore;
use crate::store::{ScanBudget, SummaryPage};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/{id}", get(read))
        .route("/events/{id}/raw", get(raw))
}

/// How long a search waits for a permit before answering 503.
const SCAN_WAIT: Duration = Duration::from_secs(2);

/// A page of bounded event views, off the async threads; filters that may
/// scan past the page take one of the store's scan permits first.
pub(crate) async fn summaries(
    state: &AppState,
    filter: EventFilter,
    bounds: Bounds,
    budget: ScanBudget,
) -> AppResult<SummaryPage> {
    let scans = filter.search.is_some() || filter.status.is_some();
    let _permit = if scans {
        let permits = state.store.scan_permits();
        let permit = tokio::time::timeout(SCAN_WAIT, permits.acquire_owned()).await;
        match permit {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return Err(AppError::Unavailable {
                    code: "search_busy",
                    message: "too many searches at once; retry in a moment".into(),
                })
            }
        }
    } else {
        None
    };
    let store = state.store.clone();
    let page = tokio::task::spawn_blocking(move || store.summaries_page(&filter, bounds, budget))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(page)
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
}

impl ListQuery {
    fn budget(&self) -> ScanBudget {
        let most = ScanBudget::DEFAULT.events;
        ScanBudget {
            events: self.scan.unwrap_or(most).clamp(1, most),
            ..ScanBudget::DEFAULT
        }
    }

    fn into_filter(self) -> AppResult<EventFilter> {
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
        Ok(EventFilter {
            source_id,
            status,
            search: self.q.filter(|q| !q.trim().is_empty()),
            limit: page_limit(self.limit, 50, 500),
            before,
        })
    }
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> AppResult<Json<Value>> {
    let budget = query.budget();
    let filter = query.into_filter()?;
    let page = summaries(&state, filter, Bounds::LIST, budget).await?;
    let events: Vec<Value> = page.events.iter().map(summary_json).collect();
    Ok(Json(json!({
        "events": events,
        "next": page.next,
        "partial": page.partial,
        "scanned": page.scanned,
    })))
}

fn parse_event_id(id: &str) -> AppResult<EventId> {
    id.parse()
        .map_err(|_| AppError::NotFound(format!("no event `{id}`")))
}

/// One event, bounded by `Bounds::PAGE` (1 MiB of payload shown).
async fn read(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let event_id = parse_event_id(&id)?;
    let store = state.store.clone();
    let event = tokio::task::spawn_blocking(move || store.event_summary(event_id, Bounds::PAGE))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??
        .ok_or_else(|| AppError::NotFound(format!("no event `{id}`")))?;
    Ok(Json(summary_json(&event)))
}

/// The whole stored record of an event (its JSON: payload, envelope,
/// headers), as stored. It costs what it shows: one record, at most the
/// body limit.
async fn raw(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Response> {
    let event_id = parse_event_id(&id)?;
    let store = state.store.clone();
    let body = tokio::task::spawn_blocking(move || store.raw_record(event_id))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??
        .ok_or_else(|| AppError::NotFound(format!("no event `{id}`")))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
