//! Saved mapping versions and replay jobs: what the store keeps of a
//! source's mapping history and of a background re-run.

use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{EventStatus, MappingSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One saved version of a source's mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappingVersion {
    pub version: u32,
    pub mapping: MappingSpec,
    pub created_at: DateTime<Utc>,
    /// The preset it was started from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// A background re-run of the current mapping over stored events of one
/// status. Persisted, so it resumes after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub source_id: SourceId,
    pub status: EventStatus,
    /// Position in the source's events (oldest first): the last id examined.
    pub after: Option<EventId>,
    /// Events of that status when the job started (for a progress bar).
    pub total: u64,
    /// Events re-run so far.
    pub done: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
