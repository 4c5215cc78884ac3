//! Events on PostgreSQL: states (`event_states`), pages and bounded views.

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

/// Writes (inserts or replaces) events' states inside a transaction.
pub(super) async fn write_states(
    conn: &mut sqlx::PgConnection,
    states: &[(EventId, SourceId, &EventState)],
) -> StoreResult<()> {
    let _ = (conn, states);
    Err(StoreError::Unsupported("write_states"))
}

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        Err(StoreError::Unsupported("event"))
    }

    pub(super) fn located_event(
        &self,
        id: EventId,
    ) -> StoreResult<Option<(StoredEvent, Location)>> {
        Err(StoreError::Unsupported("located_event"))
    }

    pub(super) fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        Err(StoreError::Unsupported("raw_event"))
    }

    pub(super) fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        Err(StoreError::Unsupported("event_state"))
    }

    pub(super) fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        Err(StoreError::Unsupported("events_page"))
    }

    pub(super) fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        Err(StoreError::Unsupported("summaries_page"))
    }

    pub(super) fn event_summary(
        &self,
        id: EventId,
        bounds: Bounds,
    ) -> StoreResult<Option<EventSummary>> {
        Err(StoreError::Unsupported("event_summary"))
    }

    pub(super) fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        Err(StoreError::Unsupported("raw_record"))
    }

    pub(super) fn scan_permits(&self) -> Arc<tokio::sync::Semaphore> {
        self.scans.clone()
    }

    pub(super) fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        Err(StoreError::Unsupported("source_event_ids"))
    }

    pub(super) fn stored_events(&self) -> StoreResult<u64> {
        Err(StoreError::Unsupported("stored_events"))
    }
}
