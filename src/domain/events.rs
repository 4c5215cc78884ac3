//! Which events a list or search asks for.

use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{EventState, EventStatus, RawEvent};

/// What to list from the event log.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub status: Option<EventStatus>,
    /// Matches an email, external id, visitor id, event id or profile id.
    pub search: Option<String>,
    pub limit: usize,
    pub before: Option<EventId>,
}

impl EventFilter {
    /// Whether an event (its id and, once processed, its state) passes the
    /// filter. Looks at the status, the event and profile ids and the mapped
    /// identifiers only: never the payload, so a search costs one state read
    /// per candidate, whatever the backend, and cannot find a person by text
    /// in a payload it was never told about.
    pub fn matches(&self, id: EventId, state: Option<&EventState>) -> bool {
        let status = state.and_then(|s| s.status).unwrap_or(EventStatus::Pending);
        if self.status.is_some_and(|s| status != s) {
            return false;
        }
        let Some(needle) = self.search.as_deref() else {
            return true;
        };
        let needle = needle.trim();
        if id.to_string() == needle {
            return true;
        }
        let Some(state) = state else {
            return false;
        };
        let profile_hit = state.profile_id.is_some_and(|p| p.to_string() == needle);
        let mapped_hit = state.mapped.as_ref().is_some_and(|m| {
            m.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(needle))
                || m.external_id.as_deref() == Some(needle)
                || m.visitor_id.as_deref() == Some(needle)
                || m.event_id.as_deref() == Some(needle)
        });
        profile_hit || mapped_hit
    }
}

/// A stored event with whatever the processor has decided about it.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub raw: RawEvent,
    /// `None` while the event waits for the processor.
    pub state: Option<EventState>,
}

impl StoredEvent {
    pub fn status(&self) -> EventStatus {
        self.state
            .as_ref()
            .and_then(|s| s.status)
            .unwrap_or(EventStatus::Pending)
    }
}
