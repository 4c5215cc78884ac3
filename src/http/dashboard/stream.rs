//! `GET /events/stream`: the live tail, as server-sent events.
//!
//! Polls the store once a second for events the client has not been sent
//! (newer than `after`, or `Last-Event-ID` on reconnect). Polling keeps the
//! request path untouched: no broadcast to feed, nothing lost if a client is
//! slow, and it works the same on every node of a cluster, where a NOTIFY
//! would only say "something changed" anyway.
//!
//! "Not sent" is not "newer than the newest sent": with several nodes on
//! PostgreSQL, event ids come from each node's clock before the commit, so
//! an event can commit after one with a larger id from another node. The
//! tail ([`Sent`]) therefore remembers what it sent over the last
//! [`LOOKBACK_MS`] of ids and takes any unsent event in that window (node
//! clocks must agree to well within that).
//!
//! Each message carries the event (`views::EventView`, bounded like every
//! list) and its table row rendered by the server, so escaping stays in
//! one place.
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
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

const POLL: Duration = Duration::from_secs(1);
/// Events read per page; a poll reads up to [`PAGES`] pages while every
/// event on a page is new, so a burst of up to 1,000 a second is shown
/// whole (a larger one shows its newest).
const BATCH: usize = 200;
const PAGES: usize = 5;
/// A pending event is held back this long so the tail shows it processed
/// (the processor normally takes milliseconds); after that it is sent as is.
const PENDING_GRACE_MS: i64 = 3_000;
/// How far behind the newest event sent a late commit is still shown. An
/// append commits within milliseconds, or fails and is answered 503; a
/// minute covers a stalled database that then recovers.
const LOOKBACK_MS: i64 = 60_000;

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
        sent: Sent::after(resume.or_else(|| query.after.parse().ok())),
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
    sent: Sent,
    first: bool,
}

/// The events a tail has sent, as far back as a late commit can land.
struct Sent {
    /// Nothing at or below this is sent: where the client started, or
    /// [`LOOKBACK_MS`] before the newest event sent.
    floor: Option<EventId>,
    /// The ids sent above `floor`.
    recent: BTreeSet<EventId>,
}

impl Sent {
    fn after(after: Option<EventId>) -> Self {
        Self {
            floor: after,
            recent: BTreeSet::new(),
        }
    }

    /// Once the first poll is read: from then on the floor is set, so a
    /// poll reads back through every page of new events (see `unsent`).
    fn begin(&mut self, now_ms: i64) {
        if self.floor.is_none() {
            self.floor = Some(EventId::first_at(now_ms - LOOKBACK_MS));
        }
    }

    fn is_new(&self, id: EventId) -> bool {
        self.floor.is_none_or(|floor| id > floor) && !self.recent.contains(&id)
    }

    /// The newest id sent: what a reconnecting client resumes after (not
    /// the last one sent, which may be a late commit with a smaller id).
    fn newest(&self) -> Option<EventId> {
        self.recent.last().copied().or(self.floor)
    }

    fn mark(&mut self, id: EventId) {
        self.recent.insert(id);
        let newest = self.newest().unwrap_or(id);
        let floor = EventId::first_at(newest.millis() - LOOKBACK_MS);
        if self.floor.is_none_or(|old| floor > old) {
            self.floor = Some(floor);
            self.recent = self.recent.split_off(&floor);
            self.recent.remove(&floor);
        }
    }
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
    /// Events not sent yet, oldest first, but for freshly stored pending
    /// ones: they wait for a later poll, to be shown processed.
    async fn poll(&mut self) -> ServiceResult<Vec<Event>> {
        let fresh = self.unsent().await?;
        let names = source_names(&self.state).await?;
        let now = Utc::now();
        // After the first poll everything new is wanted, however many.
        self.sent.begin(now.timestamp_millis());
        let mut out = Vec::new();
        for event in fresh {
            let young = (now - event.received_at).num_milliseconds() < PENDING_GRACE_MS;
            if event.status == EventStatus::Pending && young {
                continue;
            }
            self.sent.mark(event.id);
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
                    .id(self.sent.newest().unwrap_or(event.id).to_string())
                    .data(data.to_string()),
            );
        }
        Ok(out)
    }

    /// The events not sent yet, oldest first. The first poll of a new
    /// client reads one page (the newest); later polls go on to older
    /// pages while a whole page is new.
    async fn unsent(&self) -> ServiceResult<Vec<EventView>> {
        let mut filter = self.filter.clone();
        let mut fresh = Vec::new();
        for _ in 0..PAGES {
            let page = self.state.services.tail_events(filter.clone()).await?;
            let full = page.len() >= filter.limit;
            let oldest = page.last().map(|e| e.id);
            fresh.extend(page.into_iter().filter(|e| self.sent.is_new(e.id)));
            match oldest {
                Some(oldest) if full && self.sent.floor.is_some() && self.sent.is_new(oldest) => {
                    filter.before = Some(oldest);
                }
                _ => break,
            }
        }
        fresh.reverse();
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_at(millis: i64, n: u128) -> EventId {
        EventId(uuid::Uuid::from_u128(
            EventId::first_at(millis).0.as_u128() + n,
        ))
    }

    #[test]
    fn a_late_commit_with_a_smaller_id_is_still_new() {
        let mut sent = Sent::after(None);
        // Node B's event commits first, though node A took its id earlier.
        let (a, b) = (id_at(1_000_000, 1), id_at(1_000_005, 1));
        sent.mark(b);
        assert!(sent.is_new(a));
        sent.mark(a);
        assert!(!sent.is_new(a) && !sent.is_new(b));
        assert_eq!(
            sent.newest(),
            Some(b),
            "a reconnect resumes after the newest"
        );
    }

    #[test]
    fn what_is_remembered_stays_within_the_lookback() {
        let mut sent = Sent::after(None);
        for step in 0..1_000 {
            sent.mark(id_at(step * 1_000, 0));
        }
        assert!(sent.recent.len() <= 61, "{}", sent.recent.len());
        assert!(!sent.is_new(id_at(950_000, 0)), "sent, still remembered");
        assert!(!sent.is_new(id_at(1_000, 0)), "older than the lookback");
        assert!(
            sent.is_new(id_at(998_500, 7)),
            "unsent, inside the lookback"
        );
    }

    #[test]
    fn a_tail_that_opened_on_nothing_wants_all_that_comes() {
        let mut sent = Sent::after(None);
        sent.begin(2_000_000);
        assert!(sent.floor.is_some());
        assert!(sent.is_new(id_at(2_000_001, 0)));
        assert!(
            sent.is_new(id_at(1_990_000, 0)),
            "a late commit from before"
        );
    }

    #[test]
    fn a_resumed_tail_starts_after_the_clients_last_event() {
        let last = id_at(5_000_000, 3);
        let sent = Sent::after(Some(last));
        assert!(!sent.is_new(last));
        assert!(!sent.is_new(id_at(5_000_000, 2)));
        assert!(sent.is_new(id_at(5_000_000, 4)));
    }
}
