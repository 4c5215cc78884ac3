//! Erasure on PostgreSQL: a profile and every copy of its personal data.

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

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        Err(StoreError::Unsupported("erase_profile"))
    }

    pub(super) fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        Err(StoreError::Unsupported("erase_everywhere"))
    }
}
