//! `/api/events`: recent events, newest first.

use super::{page_limit, query_param};
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::ids::EventId;
use crate::model::EventStatus;
use crate::store::events::EventFilter;
use crate::views::event_json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list))
        .route("/events/{id}", get(read))
}

#[derive(Deserialize)]
struct ListQuery {
    source_id: Option<String>,
    status: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

impl ListQuery {
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
    let filter = query.into_filter()?;
    let (events, next) = state.store.events_page(&filter)?;
    let events: Vec<Value> = events.iter().map(event_json).collect();
    Ok(Json(json!({"events": events, "next": next})))
}

async fn read(State(state): State<AppState>, Path(id): Path<String>) -> AppResult<Json<Value>> {
    let not_found = || AppError::NotFound(format!("no event `{id}`"));
    let event_id: EventId = id.parse().map_err(|_| not_found())?;
    let event = state.store.event(event_id)?.ok_or_else(not_found)?;
    Ok(Json(event_json(&event)))
}
