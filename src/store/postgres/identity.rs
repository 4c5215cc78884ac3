//! Profiles and identity on PostgreSQL: the unit of work `commit_batch`
//! (one transaction holding the identity lock, see `IDENTITY_LOCK`), the
//! identity view resolutions run against, and the profile reads.

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
pub(super) struct IdentityState {}

impl IdentityState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::default())
    }
}

// Stubs: each is replaced by its PostgreSQL implementation.
#[allow(unused_variables)]
impl PgStore {
    pub(super) fn resolve(
        &self,
        input: &ResolveInput,
        blocklist: &Blocklist,
    ) -> StoreResult<Outcome> {
        Err(StoreError::Unsupported("resolve"))
    }

    pub(super) fn resolve_preview(
        &self,
        input: &ResolveInput,
        blocklist: &Blocklist,
    ) -> StoreResult<Outcome> {
        Err(StoreError::Unsupported("resolve_preview"))
    }

    pub(super) fn identity_config(&self) -> Arc<IdentityConfig> {
        Arc::new(IdentityConfig::default())
    }

    pub(super) fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()> {
        Err(StoreError::Unsupported("put_identity_kinds"))
    }

    pub(super) fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        Err(StoreError::Unsupported("profile"))
    }

    pub(super) fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>> {
        Err(StoreError::Unsupported("profile_by"))
    }

    pub(super) fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        Err(StoreError::Unsupported("profile_events"))
    }

    pub(super) fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>> {
        Err(StoreError::Unsupported("profile_history"))
    }

    pub(super) fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<uuid::Uuid>,
    ) -> StoreResult<HistoryPage> {
        Err(StoreError::Unsupported("profile_history_page"))
    }

    pub(super) fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>> {
        Err(StoreError::Unsupported("merge_profiles"))
    }

    pub(super) fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        Err(StoreError::Unsupported("commit_batch"))
    }

    pub(super) fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<crate::store::ProfilesPage> {
        Err(StoreError::Unsupported("profiles_page"))
    }

    pub(super) fn kind_has_values(
        &self,
        kind: &crate::domain::identity::KindName,
    ) -> StoreResult<bool> {
        Err(StoreError::Unsupported("kind_has_values"))
    }

    pub(super) fn remove_never_merge(
        &self,
        id: uuid::Uuid,
    ) -> StoreResult<Option<crate::domain::identity::NeverMergeRule>> {
        Err(StoreError::Unsupported("remove_never_merge"))
    }
}
