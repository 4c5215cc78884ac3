//! Events: a page of recent or matching events, one event's view, its
//! whole stored record.
//!
//! A filtered page (search, status, name or date range) scans at most its
//! budget (events, bytes of state and of payloads a search reads, time) and answers what it found with `partial` and
//! `next` when the budget runs out first. At most the store's scan permits
//! run at once (on blocking threads); one more waits up to 2 s, then fails
//! with `search_busy`.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::events::EventFilter;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::replay::ReplayScope;
use crate::domain::summary::Bounds;
use crate::domain::views::EventView;
use crate::store::ScanBudget;
use crate::store::StateStore;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// How long a search waits for a scan permit before giving up.
const SCAN_WAIT: Duration = Duration::from_secs(2);

/// What page of events to list.
#[derive(Clone, Debug)]
pub struct ListEvents {
    pub filter: EventFilter,
    /// Most events a filtered page scans (clamped to 1 ..= the default of
    /// 5,000); `None` for the default.
    pub scan: Option<usize>,
}

/// A page of bounded event views, newest first: the API's
/// `{"events", "next", "partial", "scan_truncated", "scanned"}`.
#[derive(Clone, Debug, Serialize)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// `before=` of the next page: after a full page, or where a partial
    /// scan stopped.
    pub next: Option<EventId>,
    /// The scan budget ran out before the page filled.
    pub partial: bool,
    /// The same as `partial`, under the name the search docs use: the scan
    /// stopped at its bound (`scan=`, bytes or time) and `next` continues it.
    pub scan_truncated: bool,
    pub scanned: usize,
}

/// A retry taken: `{"event_id", "version", "queued": true}`; the event's
/// page (or `GET /api/events/{id}`) shows the outcome once it has run.
#[derive(Clone, Debug, Serialize)]
pub struct RetryQueued {
    pub event_id: EventId,
    /// The mapping version it is re-run through.
    pub version: u32,
    pub queued: bool,
}

impl ListEvents {
    fn budget(&self) -> ScanBudget {
        let most = ScanBudget::DEFAULT.events;
        ScanBudget {
            events: self.scan.unwrap_or(most).clamp(1, most),
            ..ScanBudget::DEFAULT
        }
    }
}

impl Services {
    /// A page of events as list views (`Bounds::LIST`), off the async
    /// threads; a filter that may scan past the page takes a scan permit.
    pub async fn list_events(&self, input: ListEvents) -> ServiceResult<EventPage> {
        let budget = input.budget();
        let filter = input.filter;
        let scans = filter.scans();
        let _permit = if scans {
            let permits = self.store.scan_permits();
            match tokio::time::timeout(SCAN_WAIT, permits.acquire_owned()).await {
                Ok(Ok(permit)) => Some(permit),
                _ => {
                    return Err(ServiceError::Unavailable {
                        code: "search_busy",
                        message: "too many searches at once; retry in a moment".into(),
                    })
                }
            }
        } else {
            None
        };
        let store = self.store.clone();
        let page = tokio::task::spawn_blocking(move || {
            store.summaries_page(&filter, Bounds::LIST, budget)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))??;
        Ok(EventPage {
            events: page.events.into_iter().map(EventView::of).collect(),
            next: page.next,
            partial: page.partial,
            scan_truncated: page.partial,
            scanned: page.scanned,
        })
    }

    /// The newest page of events for the dashboard's live tail, which polls
    /// once a second: read inline and without a scan permit, as the tail
    /// always has (a busy search must not stall an open tail).
    pub async fn tail_events(&self, filter: EventFilter) -> ServiceResult<Vec<EventView>> {
        let page = self
            .store
            .summaries_page(&filter, Bounds::LIST, ScanBudget::DEFAULT)?;
        Ok(page.events.into_iter().map(EventView::of).collect())
    }

    /// One event, bounded by `Bounds::PAGE` (1 MiB of payload shown).
    pub async fn event(&self, id: EventId) -> ServiceResult<EventView> {
        let store = self.store.clone();
        let event = tokio::task::spawn_blocking(move || store.event_summary(id, Bounds::PAGE))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
            .ok_or_else(|| no_event(id))?;
        let view = EventView::of(event);
        // The stored profile may have been merged since: name the live one.
        match view.profile_id {
            Some(stored) => match self.store.profile(stored)? {
                Some(live) => Ok(view.under_live_profile(live.id)),
                None => Ok(view),
            },
            None => Ok(view),
        }
    }

    /// Re-runs one event through its source's current mapping (the event
    /// page's "retry with the current version"), in the background like a
    /// replay: a failed, unmapped or resolved event; resolved ones are
    /// resolved again idempotently. Refused when the event cannot be re-run
    /// (pending, a duplicate, its source deleted, no mapping saved).
    pub async fn retry_event(&self, id: EventId) -> ServiceResult<RetryQueued> {
        let event = self.store.event(id)?.ok_or_else(|| no_event(id))?;
        let status = event.status();
        if !ReplayScope::All.takes(status) {
            return Err(ServiceError::Conflict(format!(
                "a {} event cannot be retried; only failed, unmapped and resolved ones",
                status.as_str()
            )));
        }
        if let Some(reason) = &event.raw.not_mappable {
            return Err(ServiceError::Conflict(format!(
                "the event's record cannot be mapped ({reason}); send it again in a form that can"
            )));
        }
        let source = self.store.source(event.raw.source_id)?.ok_or_else(|| {
            ServiceError::Conflict(
                "the event's source was deleted; there is no mapping to retry it with".into(),
            )
        })?;
        let Some(version) = source.mapping_version else {
            return Err(ServiceError::Conflict(
                "the source has no mapping yet; save one to map this event".into(),
            ));
        };
        self.processor.retry(id)?;
        Ok(RetryQueued {
            event_id: id,
            version,
            queued: true,
        })
    }

    /// The whole stored record of an event (its JSON: payload, envelope,
    /// headers), as stored. It costs what it shows: one record, at most the
    /// body limit.
    pub async fn raw_event(&self, id: EventId) -> ServiceResult<Vec<u8>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.raw_record(id))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
            .ok_or_else(|| no_event(id))
    }

    /// Source names by id, for showing events and errors with the name of
    /// their source (a deleted source keeps its events, and has no name).
    pub async fn source_names(&self) -> ServiceResult<HashMap<SourceId, String>> {
        Ok(self
            .store
            .sources()?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect())
    }
}

fn no_event(id: EventId) -> ServiceError {
    ServiceError::NotFound(format!("no event `{id}`"))
}
