//! The error log, counters and cursor, idempotency keys, schemas, time
//! buckets, rotated-token counts and delivery ids on PostgreSQL.

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
pub(super) struct StateCaches {}

impl StateCaches {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::default())
    }
}

/// Appends error-log entries inside a transaction.
pub(super) async fn insert_errors(
    conn: &mut sqlx::PgConnection,
    entries: &[&ErrorEntry],
) -> StoreResult<()> {
    let _ = (conn, entries);
    Err(StoreError::Unsupported("insert_errors"))
}

/// Records that `event` holds idempotency key `key` (source ‖ key).
pub(super) async fn claim_dedupe(
    conn: &mut sqlx::PgConnection,
    key: &[u8],
    event: EventId,
) -> StoreResult<()> {
    let _ = (conn, key, event);
    Err(StoreError::Unsupported("claim_dedupe"))
}

/// Writes a batch's cursor, counters (absolute) and touched time buckets
/// inside the batch's transaction.
pub(super) async fn write_progress(
    conn: &mut sqlx::PgConnection,
    cursor: Option<(EventId, Location)>,
    counts: &HashMap<SourceId, Counts>,
    activity: &ActivityDelta,
) -> StoreResult<()> {
    let _ = (conn, cursor, counts, activity);
    Err(StoreError::Unsupported("write_progress"))
}

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        Err(StoreError::Unsupported("log_error"))
    }

    pub(super) fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        Err(StoreError::Unsupported("errors_page"))
    }

    pub(super) fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        Err(StoreError::Unsupported("prune_errors"))
    }

    pub(super) fn cursor(&self) -> StoreResult<Option<EventId>> {
        Err(StoreError::Unsupported("cursor"))
    }

    pub(super) fn persisted_counts(&self) -> StoreResult<HashMap<SourceId, Counts>> {
        Err(StoreError::Unsupported("persisted_counts"))
    }

    pub(super) fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        Err(StoreError::Unsupported("dedupe_holder"))
    }

    pub(super) fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        Err(StoreError::Unsupported("put_schema"))
    }

    pub(super) fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        Err(StoreError::Unsupported("schemas"))
    }

    pub(super) fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        Err(StoreError::Unsupported("persisted_activity"))
    }

    pub(super) fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        Err(StoreError::Unsupported("scan_errors"))
    }

    pub(super) fn put_old_token_use(
        &self,
        source: SourceId,
        used: &crate::domain::counters::OldTokenUse,
    ) -> StoreResult<()> {
        Err(StoreError::Unsupported("put_old_token_use"))
    }

    pub(super) fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        Err(StoreError::Unsupported("clear_old_token_use"))
    }

    pub(super) fn old_token_uses(
        &self,
    ) -> StoreResult<HashMap<SourceId, crate::domain::counters::OldTokenUse>> {
        Err(StoreError::Unsupported("old_token_uses"))
    }

    pub(super) fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<crate::domain::delivery::Claim> {
        Err(StoreError::Unsupported("claim_delivery"))
    }

    pub(super) fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        Err(StoreError::Unsupported("settle_delivery"))
    }

    pub(super) fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        Err(StoreError::Unsupported("redelivered"))
    }

    pub(super) fn prune_deliveries(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        Err(StoreError::Unsupported("prune_deliveries"))
    }
}
