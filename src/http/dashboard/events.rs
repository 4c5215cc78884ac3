//! `/`: recent events across sources, and `/events/{id}`: one event, raw and
//! mapped side by side.

use super::csrf;
use super::display::{
    self, event_row, options, pretty, query, short_id, source_names, source_options,
};
use super::render::{page, PageResult};
use super::session::Authed;
use crate::domain::events::{parse_range_bound, EventFilter, RangeEnd};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::EventStatus;
use crate::domain::summary::Shown;
use crate::domain::views::{EventView, Part};
use crate::http::error::AppError;
use crate::http::AppState;
use crate::service::events::ListEvents;
use crate::service::sources::TEST_EVENT_HEADER;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use chrono::{DateTime, Utc};
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
    #[serde(default)]
    pub name: String,
    /// `YYYY-MM-DD` (the form's date inputs) or RFC 3339.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
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

    fn name(&self) -> Option<String> {
        Some(self.name.trim().to_string()).filter(|n| !n.is_empty())
    }

    fn range(&self, end: RangeEnd) -> Option<DateTime<Utc>> {
        let text = match end {
            RangeEnd::From => &self.from,
            RangeEnd::To => &self.to,
        };
        parse_range_bound(text, end)
    }

    /// The range fields that hold something that is not a date: named on
    /// the page, since they are ignored rather than refused.
    fn bad_range(&self) -> Vec<&'static str> {
        [
            ("from", &self.from, RangeEnd::From),
            ("to", &self.to, RangeEnd::To),
        ]
        .into_iter()
        .filter(|(_, text, end)| !text.trim().is_empty() && parse_range_bound(text, *end).is_none())
        .map(|(param, _, _)| param)
        .collect()
    }

    fn to_filter(&self, limit: usize) -> EventFilter {
        EventFilter {
            source_id: self.source(),
            status: self.status(),
            search: self.search(),
            limit,
            before: self.before.parse().ok(),
            name: self.name(),
            from: self.range(RangeEnd::From),
            to: self.range(RangeEnd::To),
        }
    }

    fn is_filtered(&self) -> bool {
        self.source().is_some()
            || self.status().is_some()
            || self.search().is_some()
            || self.name().is_some()
            || self.range(RangeEnd::From).is_some()
            || self.range(RangeEnd::To).is_some()
    }
}

pub async fn list(
    State(state): State<AppState>,
    session: Authed,
    Query(filters): Query<Filters>,
) -> PageResult {
    let input = ListEvents {
        filter: filters.to_filter(PAGE),
        scan: None,
    };
    let found = state.services.list_events(input).await?;
    let (events, next, partial) = (found.events, found.next, found.partial);
    let names = source_names(&state).await?;
    let rows: Vec<Value> = events.iter().map(|e| event_row(e, &names)).collect();
    let keep = |extra: (&'static str, String)| {
        let mut pairs = vec![
            ("source_id", filters.source_id.clone()),
            ("status", filters.status.clone()),
            ("q", filters.q.clone()),
            ("name", filters.name.clone()),
            ("from", filters.from.clone()),
            ("to", filters.to.clone()),
        ];
        pairs.push(extra);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        query(&pairs)
    };
    let next_url = next.map(|id| format!("/events?{}", keep(("before", id.to_string()))));
    // The live tail runs on the first page only: later pages are history.
    let newest = events.first().map(|e| e.id.to_string()).unwrap_or_default();
    // The tail applies source, status and search only: with a name or a
    // date range the page is a fixed result, not a live one.
    let live = filters.before.is_empty()
        && filters.name().is_none()
        && filters.range(RangeEnd::From).is_none()
        && filters.range(RangeEnd::To).is_none();
    let stream_url = live.then(|| format!("/events/stream?{}", keep(("after", newest))));
    let data = json!({
        "title": "Events", "nav": "events", "csrf": session.csrf,
        "events": rows,
        "filters": {
            "source_id": filters.source_id, "status": filters.status, "q": filters.q,
            "name": filters.name, "from": filters.from, "to": filters.to,
        },
        "bad_range": filters.bad_range(),
        "filtered": filters.is_filtered(),
        "sources": source_options(&names, &filters.source_id),
        "statuses": options(EventStatus::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().to_string())), &filters.status),
        "next_url": next_url,
        "partial": partial,
        "stream_url": stream_url,
        "refresh_url": format!("/events?{}", keep(("", String::new()))),
    });
    page(StatusCode::OK, "events", &data)
}

/// `?retried=1`: the page a retry redirects to says it was queued.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default)]
    retried: String,
}

pub async fn detail(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> PageResult {
    let event_id: EventId = id
        .parse()
        .map_err(|_| AppError::not_found(format!("no event `{id}`")))?;
    let event = state.services.event(event_id).await?;
    let names = source_names(&state).await?;
    let source_deleted = !names.contains_key(&event.source_id);
    let source_name = names
        .get(&event.source_id)
        .cloned()
        .unwrap_or_else(|| "(deleted source)".into());
    let failed = event.status == EventStatus::Failed;
    let traits = event.traits.as_ref().and_then(|part| match &part.shown {
        Some(Shown::Whole(traits)) => Some(pretty(&json!(traits))),
        _ => part.excerpt().map(str::to_string),
    });
    let data = json!({
        "title": format!("Event {}", short_id(&id)["short"].as_str().unwrap_or("")),
        "nav": "events", "csrf": session.csrf,
        "time": display::time(&event.received_at),
        "source": {
            "id": event.source_id.to_string(),
            "name": source_name,
        },
        "payload": shown_pretty(&event.payload),
        "envelope": event.envelope.as_deref().filter(|v| !v.is_null()).map(pretty),
        "headers": (!event.headers.is_empty()).then(|| pretty(&json!(event.headers))),
        "test_event": event.headers.contains_key(TEST_EVENT_HEADER),
        "properties": event.properties.shown.is_some().then(|| shown_pretty(&event.properties)),
        "traits": traits,
        "truncated": event.truncated,
        "raw_url": event.raw_url,
        "mapped_time": event.mapped.timestamp.as_ref().map(display::time),
        "processed_time": event.processed_at.as_ref().map(display::time),
        "profile": event.profile_id.map(|p| short_id(&p.to_string())),
        "via_profile": event.via_profile_id.map(|p| short_id(&p.to_string())),
        "source_deleted": source_deleted,
        "retried": !query.retried.is_empty(),
        "failed": failed,
        // Retry only what can be retried: a failed event whose source still
        // exists and whose record could be mapped at all.
        "can_retry": failed && !source_deleted && event.not_mappable.is_none(),
        "identity_refused": event.identity_was_refused().then_some(&event.identity_refused),
        // Each refusal is said once, in the identity block, not again here.
        "warnings": other_warnings(&event),
        // The team's own kinds the mapping read, beside the built-in slots.
        "own_identifiers": event.mapped.identifiers.iter()
            .map(|(kind, value)| json!({"kind": kind.as_str(), "value": value}))
            .collect::<Vec<_>>(),
        "e": event,
    });
    page(StatusCode::OK, "event", &data)
}

/// The event's warnings less its identity refusals (shown on their own).
fn other_warnings(event: &EventView) -> Vec<&String> {
    event
        .warnings
        .iter()
        .filter(|w| !event.identity_refused.contains(w))
        .collect()
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /events/{id}/retry`: re-runs the event through its source's
/// current mapping (in the background), then back to the event's page.
pub async fn retry(
    State(state): State<AppState>,
    session: Authed,
    Path(id): Path<String>,
    Form(form): Form<RetryForm>,
) -> PageResult {
    csrf::check(&session, &form.csrf)?;
    let event_id: EventId = id
        .parse()
        .map_err(|_| AppError::not_found(format!("no event `{id}`")))?;
    state.services.retry_event(event_id).await?;
    Ok(Redirect::to(&format!("/events/{event_id}?retried=1")).into_response())
}

/// A part for a `<pre>`: pretty JSON when whole, its excerpt and a note
/// when cut (the whole record is one click away at the raw link).
fn shown_pretty<T: serde::Serialize>(part: &Part<T>) -> String {
    match &part.shown {
        None => pretty(&Value::Null),
        Some(Shown::Whole(value)) => pretty(&json!(value)),
        Some(Shown::Cut { excerpt, bytes }) => {
            format!(
                "{}… (first {} of {bytes} bytes)",
                excerpt.text,
                excerpt.text.len()
            )
        }
    }
}
