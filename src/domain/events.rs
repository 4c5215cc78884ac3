//! Which events a list or search asks for.

use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::EventStatus;

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
