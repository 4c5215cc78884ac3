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

/// Which stored events a replay re-runs. Serialized as the status name
/// (`"failed"`, `"unmapped"`, `"resolved"`) or `"all"`, so jobs stored when
/// only an [`EventStatus`] was kept read back unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayScope {
    Failed,
    Unmapped,
    /// Events that resolved before: re-mapped through the current version
    /// so profiles get what a newer mapping adds (idempotently).
    Resolved,
    /// Failed, unmapped and resolved alike.
    All,
}

impl ReplayScope {
    /// Parses what the API and the form send.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "failed" => Some(Self::Failed),
            "unmapped" => Some(Self::Unmapped),
            "resolved" => Some(Self::Resolved),
            "all" => Some(Self::All),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Unmapped => "unmapped",
            Self::Resolved => "resolved",
            Self::All => "all",
        }
    }

    /// Whether an event of `status` is re-run (never pending ones, which
    /// the processor has yet to take, nor duplicates, which another event
    /// stands for).
    pub fn takes(self, status: EventStatus) -> bool {
        match self {
            Self::Failed => status == EventStatus::Failed,
            Self::Unmapped => status == EventStatus::Unmapped,
            Self::Resolved => status == EventStatus::Resolved,
            Self::All => matches!(
                status,
                EventStatus::Failed | EventStatus::Unmapped | EventStatus::Resolved
            ),
        }
    }
}

impl From<EventStatus> for ReplayScope {
    /// The scope of one status (a status that is never replayed maps to
    /// `All`, which takes none of its events).
    fn from(status: EventStatus) -> Self {
        match status {
            EventStatus::Failed => Self::Failed,
            EventStatus::Unmapped => Self::Unmapped,
            EventStatus::Resolved => Self::Resolved,
            _ => Self::All,
        }
    }
}

/// A background re-run of the current mapping over stored events of one
/// scope. Persisted, so it resumes after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub source_id: SourceId,
    pub status: ReplayScope,
    /// Only events received at or after this time (`None`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// The mapping version the job runs (`None` in jobs stored before it
    /// was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Position in the source's events (oldest first): the last id examined.
    pub after: Option<EventId>,
    /// Events of that scope when the job started (for a progress bar).
    pub total: u64,
    /// Events re-run so far.
    pub done: u64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ReplayJob {
    /// Whether the job re-runs an event of `status` received at `received`.
    pub fn takes(&self, status: EventStatus, received: DateTime<Utc>) -> bool {
        self.status.takes(status) && self.since.is_none_or(|since| received >= since)
    }
}
