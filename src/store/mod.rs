//! Storage: the seam the pipeline and the services use (`seam`: the
//! [`EventLog`] and [`StateStore`] traits, whose docs are the contract a
//! backend keeps), and its backends. Today one: `embedded` (the event log,
//! group commit and sled), the only module of the crate that imports sled.
//!
//! Everything code outside the store needs is re-exported here; nothing
//! outside names `store::embedded`. `Store` is the backend callers hold
//! (the next backend turns it into an enum over backends, so calls stay
//! statically dispatched).

mod embedded;
mod seam;

pub use embedded::erasure::{DatabaseRewrite, ErasureReport, CATCH_UP as ERASURE_CATCH_UP};
pub use embedded::errors::ErrorFilter;
pub use embedded::flush::{FlushFailed, FlushStats, GroupCommit};
pub use embedded::history::{HistoryLine, HistoryPage, HISTORY_SCAN};
pub use embedded::identity::{ProfilesPage, PROFILE_SEARCH_SCAN};
pub use embedded::summary::{ScanBudget, SummaryPage};
pub use embedded::{Location, Logged, Planned, Resolved, Store, StoreError, StoreResult};
pub use seam::{EventLog, StateStore, UnitError};

/// The domain's types the seam speaks in, for callers that name them with
/// the store's calls (their home is `crate::domain`).
pub use crate::domain::events::{EventFilter, StoredEvent};
pub use crate::domain::replay::{MappingVersion, ReplayJob};
pub use crate::domain::summary::{Bounds, EventSummary, Shown};
