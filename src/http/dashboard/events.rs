//! `/`: recent events across sources, and `/events/{id}`: one event, raw and
//! mapped side by side.

use super::display::{
    self, event_row, options, pretty, query, short_id, source_names, source_options,
};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::events::EventFilter;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::EventStatus;
use crate::domain::summary::{Bounds, Shown};
use crate::domain::views::summary_json;
use crate::http::api::events::summaries;
use crate::http::error::AppError;
use crate::http::AppState;
use crate::store::ScanBudget;
use crate::store::StateStore;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

/// Rows per page.
const PAGE: usize = 50;

/// The filter form's fields. A value that does not parse (a hand-edited
/// URL) is treated as "any" rather than refused: the form shows what applied.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub source_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub before: String,
}

impl Filters {
    pub fn source(&self) -> Option<SourceId> {
        self.source_id.parse().ok()
    }

    pub fn status(&self) -> Option<EventStatus> {
        EventStatus::parse(&self.status)
    }

    pub fn search(&self) -> Option<String> {
        Some(self.q.trim().to_string()).filter(|q| !q.is_empty())
    }

    fn to_filter(&self, limit: usize) -> EventFilter {
        EventFilter {
            source_id: self.source(),
            status: self.status(),
            search: self.search(),
            limit,
            before: self.before.parse().ok(),
        }
    }

    fn is_filtered(&self) -> bool {
        self.source().is_some() || self.status().is_some() || self.search().is_some()
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Authed,
    Query(filters): Query<Filters>,
) -> PageResult {
    let found = summaries(
        &state,
        filters.to_filter(PAGE),
        Bounds::LIST,
        ScanBudget::DEFAULT,
    )
    .await?;
    let (events, next, partial) = (found.events, found.next, found.partial);
    let names = source_names(&state)?;
    let rows: Vec<Value> = events.iter().map(|e| event_row(e, &names)).collect();
    let keep = |extra: (&'static str, String)| {
        let mut pairs = vec![
            ("source_id", filters.source_id.clone()),
            ("status", filters.status.clone()),
            ("q", filters.q.clone()),
        ];
        pairs.push(extra);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query(&pairs)
    };
    let next_url = next.map(|id| format!("/?{}", keep(("before", id.to_string()))));
    // The live tail runs on the first page only: later pages are history.
    let newest = events.first().map(|e| e.id.to_string()).unwrap_or_default();
    let stream_url = filters
        .before
        .is_empty()
        .then(|| format!("/events/stream?{}", keep(("after", newest))));
    let data = json!({
        "title": "Events", "nav": "events", "csrf": session.csrf,
        "events": rows,
        "filters": {"source_id": filters.source_id, "status": filters.status, "q": filters.q},
        "filtered": filters.is_filtered(),
        "sources": source_options(&names, &filters.source_id),
        "statuses": options(EventStatus::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().to_string())), &filters.status),
        "next_url": next_url,
        "partial": partial,
        "stream_url": stream_url,
        "refresh_url": format!("/?{}", keep(("", String::new()))),
    });
    page(StatusCode::OK, "events", &data)
}

pub async fn detail(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
) -> PageResult {
    let not_found = || AppError::NotFound(format!("no event `{id}`"));
    let event_id: EventId = id.parse().map_err(|_| not_found())?;
    let store = state.store.clone();
    let event = tokio::task::spawn_blocking(move || store.event_summary(event_id, Bounds::PAGE))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??
        .ok_or_else(not_found)?;
    let view = summary_json(&event);
    let source = state.store.source(event.source_id)?;
    let optional_pretty = |key: &str| view.get(key).filter(|v| !v.is_null()).map(pretty);
    let mapped = event.state.as_ref().and_then(|s| s.mapped.as_ref());
    let data = json!({
        "title": format!("Event {}", short_id(&id)["short"].as_str().unwrap_or("")),
        "nav": "events", "csrf": session.csrf,
        "e": view,
        "time": display::time(&event.received_at),
        "source": {
            "id": event.source_id.to_string(),
            "name": source.map(|s| s.name).unwrap_or_else(|| "(deleted source)".into()),
        },
        "payload": shown_pretty(&event.payload),
        "envelope": optional_pretty("envelope"),
        "headers": optional_pretty("headers"),
        "properties": mapped.map(|_| shown_pretty(&event.properties)),
        "traits": optional_pretty("traits").or_else(|| view.get("traits_excerpt").and_then(Value::as_str).map(str::to_string)),
        "truncated": event.truncated(),
        "raw_url": view["raw_url"],
        "mapped_time": mapped.map(|m| display::time(&m.timestamp)),
        "processed_time": event.state.as_ref().and_then(|s| s.processed_at.as_ref()).map(display::time),
        "profile": view["profile_id"].as_str().map(short_id),
    });
    page(StatusCode::OK, "event", &data)
}

/// A part for a `<pre>`: pretty JSON when whole, its excerpt and a note
/// when cut (the whole record is one click away at the raw link).
fn shown_pretty<T: serde::Serialize>(part: &Shown<T>) -> String {
    match part {
        Shown::Whole(value) => pretty(&json!(value)),
        Shown::Cut { excerpt, bytes } => {
            format!(
                "{}… (first {} of {bytes} bytes)",
                excerpt.text,
                excerpt.text.len()
            )
        }
    }
}
