//! `GET /events/stream`: the live tail, as server-sent events.
//!
//! Polls the store once a second for events newer than the newest the
//! client has (`after`, or `Last-Event-ID` on reconnect). Polling keeps the
//! request path untouched: no broadcast to feed, nothing lost if a client is
//! slow. Each message carries the event (`views::EventView`, bounded
//! like every list) and its table
//! row rendered by the server, so escaping stays in one place.
//!
//! The session is checked before every poll, not only when the stream
//! opens: after a logout (or the session's expiry) the stream sends one
//! `end` event and closes, so a screen left open stops showing customers'
//! data. The browser's reconnect then meets the login redirect.

use super::display::{event_row, source_names};
use super::events::Filters;
use super::render::render;
use super::session::Authed;
use crate::domain::events::EventFilter;
use crate::domain::ids::EventId;
use crate::domain::model::EventStatus;
use crate::domain::views::EventView;
use crate::http::AppState;
use crate::service::ServiceResult;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::convert::Infallible;
use std::time::Duration;

const POLL: Duration = Duration::from_secs(1);
/// Events read per poll; a burst larger than this arrives over a few polls.
const BATCH: usize = 200;
/// A pending event is held back this long so the tail shows it processed
/// (the processor normally takes milliseconds); after that it is sent as is.
const PENDING_GRACE_MS: i64 = 3_000;

#[derive(Deserialize)]
pub struct TailQuery {
    #[serde(flatten)]
    filters: Filters,
    #[serde(default)]
    after: String,
}

pub async fn tail(
    State(state): State<AppState>,
    session: Authed,
    headers: HeaderMap,
    Query(query): Query<TailQuery>,
) -> Response {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<EventId>().ok());
    let tail = Tail {
        state,
        session_id: session.session_id,
        status: query.filters.status(),
        filter: EventFilter {
            source_id: query.filters.source(),
            status: None,
            search: query.filters.search(),
            limit: BATCH,
            before: None,
            ..EventFilter::default()
        },
        after: resume.or_else(|| query.after.parse().ok()),
        first: true,
    };
    Sse::new(events(tail))
        .keep_alive(KeepAlive::default())
        .into_response()
}

struct Tail {
    state: AppState,
    /// The session that opened the stream; it ends with it.
    session_id: String,
    filter: EventFilter,
    /// Checked here, not in the store: an event's status changes after it is
    /// stored, and the cursor must move past events that do not match.
    status: Option<EventStatus>,
    after: Option<EventId>,
    first: bool,
}

fn events(tail: Tail) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(Some(tail), |tail| async move {
        let mut tail = tail?;
        if !tail.first {
            tokio::time::sleep(POLL).await;
        }
        tail.first = false;
        if !tail.state.sessions.is_live(&tail.session_id) {
            let end = Event::default()
                .event("end")
                .data("the session ended; log in again");
            return Some((vec![end], None));
        }
        let batch = tail.poll().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "live tail poll failed");
            Vec::new()
        });
        Some((batch, Some(tail)))
    })
    .flat_map(|batch| stream::iter(batch.into_iter().map(Ok)))
}

impl Tail {
    /// New events, oldest first, stopping at a freshly stored pending one
    /// (the processor works in order, so everything after it waits too).
    async fn poll(&mut self) -> ServiceResult<Vec<Event>> {
        let page = self.state.services.tail_events(self.filter.clone()).await?;
        let mut fresh: Vec<EventView> = page
            .into_iter()
            .filter(|e| self.after.is_none_or(|a| e.id > a))
            .collect();
        fresh.reverse();
        let names = source_names(&self.state).await?;
        let now = Utc::now();
        let mut out = Vec::new();
        for event in fresh {
            let young = (now - event.received_at).num_milliseconds() < PENDING_GRACE_MS;
            if event.status == EventStatus::Pending && young {
                break;
            }
            self.after = Some(event.id);
            if self.status.is_some_and(|s| s != event.status) {
                continue;
            }
            // A row that cannot render is a bug in our template, not the
            // event: say so in the log and leave the row out of the tail.
            let row = match render("event_row", &event_row(&event, &names)) {
                Ok(row) => row,
                Err(e) => {
                    tracing::error!(event = %event.id, error = ?e, "live-tail row did not render");
                    continue;
                }
            };
            let data = json!({"id": event.id, "event": event, "row": row});
            out.push(
                Event::default()
                    .event("event")
                    .id(event.id.to_string())
                    .data(data.to_string()),
            );
        }
        Ok(out)
    }
}
