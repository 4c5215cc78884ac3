//! Sources, token lookups (with the hook path's cache), mappings and
//! replay jobs on PostgreSQL.

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
pub(super) struct SourcesState {}

impl SourcesState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::default())
    }
}

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn put_source(&self, source: &Source) -> StoreResult<()> {
        Err(StoreError::Unsupported("put_source"))
    }

    pub(super) fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        Err(StoreError::Unsupported("source"))
    }

    pub(super) fn sources(&self) -> StoreResult<Vec<Source>> {
        Err(StoreError::Unsupported("sources"))
    }

    pub(super) fn cached_source_by_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<Source>>> {
        Err(StoreError::Unsupported("cached_source_by_token"))
    }

    pub(super) fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        Err(StoreError::Unsupported("source_by_token"))
    }

    pub(super) fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        Err(StoreError::Unsupported("delete_source"))
    }

    pub(super) fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        Err(StoreError::Unsupported("save_mapping"))
    }

    pub(super) fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        Err(StoreError::Unsupported("mapping_versions"))
    }

    pub(super) fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        Err(StoreError::Unsupported("mapping_version"))
    }

    pub(super) fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        Err(StoreError::Unsupported("put_replay"))
    }

    pub(super) fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        Err(StoreError::Unsupported("replay"))
    }

    pub(super) fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        Err(StoreError::Unsupported("open_replays"))
    }
}
