//! The event log on PostgreSQL: `events` (one row per record, the
//! record's JSON bytes as the embedded log stores them) and `pending`
//! (the processor's queue: a row per event not yet processed, deleted in
//! the batch that processes it). Appends are group-committed
//! ([`Committer`]): concurrent requests share one transaction.

use super::PgStore;
#[allow(unused_imports)]
use crate::domain::activity::{ActivityDelta, Bucket, SlotKey};
#[allow(unused_imports)]
use crate::domain::counters::Counts;
#[allow(unused_imports)]
use crate::domain::events::{EventFilter, StoredEvent};
#[allow(unused_imports)]
use crate::domain::identity::{
    AuditEntry, Blocklist, IdentKey, IdentityConfig, IdentityTxn, KindSet, Outcome, Profile,
    ResolveInput,
};
#[allow(unused_imports)]
use crate::domain::ids::{EventId, ProfileId, SourceId};
#[allow(unused_imports)]
use crate::domain::model::{ErrorEntry, EventState, MappingSpec, RawEvent};
#[allow(unused_imports)]
use crate::domain::redact::Needles;
#[allow(unused_imports)]
use crate::domain::replay::{MappingVersion, ReplayJob};
#[allow(unused_imports)]
use crate::domain::source::{SecretHash, Source};
use crate::store::StoreError;
#[allow(unused_imports)]
use crate::store::{
    Appended, Bounds, ErasureReport, ErrorFilter, EventSummary, HistoryPage, Location, Logged,
    Planned, Resolved, ScanBudget, StoreResult, SummaryPage, UnitError,
};
#[allow(unused_imports)]
use std::collections::HashMap;
#[allow(unused_imports)]
use std::sync::Arc;
#[allow(unused_imports)]
use std::time::Duration;

/// What this area keeps in memory on the node (caches it can rebuild).
#[derive(Default)]
pub(super) struct LogState {}

impl LogState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::default())
    }
}

/// Takes `ids` off the processor's queue inside the batch's transaction;
/// returns how many rows were there (fewer than asked: another node
/// processed some first, and the batch must write nothing).
pub(super) async fn take_pending(
    conn: &mut sqlx::PgConnection,
    ids: &[EventId],
) -> StoreResult<u64> {
    let _ = (conn, ids);
    Err(StoreError::Unsupported("take_pending"))
}

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended> {
        Err(StoreError::Unsupported("append_events"))
    }

    pub(super) fn flush_now(&self) -> StoreResult<()> {
        Err(StoreError::Unsupported("flush_now"))
    }

    pub(super) fn next_pending(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        Err(StoreError::Unsupported("next_pending"))
    }

    pub(super) fn pending_done(&self, last: EventId) -> StoreResult<()> {
        Err(StoreError::Unsupported("pending_done"))
    }

    pub(super) fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        Err(StoreError::Unsupported("processed_upto"))
    }

    pub(super) fn pending_by_source(&self) -> StoreResult<HashMap<SourceId, u64>> {
        Err(StoreError::Unsupported("pending_by_source"))
    }

    pub(super) fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        Err(StoreError::Unsupported("wait_processed"))
    }

    pub(super) fn read_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent> {
        Err(StoreError::Unsupported("read_at"))
    }

    pub(super) fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        Err(StoreError::Unsupported("prune_events"))
    }
}
