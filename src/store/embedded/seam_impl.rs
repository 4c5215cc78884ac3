//! The embedded backend behind the seam (`crate::store::seam`): each
//! method's body lives with its concept (`events`, `sources`, `identity`,
//! ...) as a method private to this backend; this file is the index of
//! what the seam asks and where the embedded store does it, and the trait
//! docs are the contract.

use super::erasure::ErasureReport;
use super::errors::ErrorFilter;
use super::history::HistoryPage;
use super::summary::{ScanBudget, SummaryPage};
use super::{Location, Logged, Planned, Resolved, Store, StoreResult};
use crate::domain::activity::{ActivityDelta, Bucket, SlotKey};
use crate::domain::counters::Counts;
use crate::domain::events::{EventFilter, StoredEvent};
use crate::domain::identity::{
    AuditEntry, Blocklist, IdentKey, IdentityConfig, IdentityTxn, KindSet, Outcome, Profile,
    ResolveInput,
};
use crate::domain::ids::{EventId, ProfileId, SourceId};
use crate::domain::model::{ErrorEntry, EventState, MappingSpec, RawEvent};
use crate::domain::redact::Needles;
use crate::domain::replay::{MappingVersion, ReplayJob};
use crate::domain::source::{SecretHash, Source};
use crate::domain::summary::{Bounds, EventSummary};
use crate::store::seam::{EventLog, StateStore};
use crate::store::CountsWithPending;
use crate::store::{Appended, Receipt, UnitError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl EventLog for Store {
    fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended> {
        Ok(Appended {
            events: Store::append_events(self, events)?,
            receipt: Receipt::Log,
        })
    }

    fn flush_now(&self) -> StoreResult<()> {
        Store::flush_now(self)
    }

    fn next_pending(&self, after: Option<EventId>, limit: usize) -> StoreResult<Vec<Logged>> {
        Store::next_pending(self, after, limit)
    }

    fn pending_done(&self, last: EventId) -> StoreResult<()> {
        Store::pending_done(self, last)
    }

    fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        Store::processed_upto(self)
    }

    fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        Store::wait_processed(self, timeout)
    }

    fn read_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent> {
        Store::raw_at(self, id, at)
    }

    fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        Store::prune_events(self, keep)
    }
}

impl StateStore for Store {
    fn put_source(&self, source: &Source) -> StoreResult<()> {
        Store::put_source(self, source)
    }

    fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        Store::source(self, id)
    }

    fn sources(&self) -> StoreResult<Vec<Source>> {
        Store::sources(self)
    }

    fn cached_source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Arc<Source>>> {
        Store::cached_source_by_token(self, hash)
    }

    fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        Store::source_by_token(self, hash)
    }

    fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        Store::delete_source(self, id)
    }

    fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        Store::save_mapping(self, source, mapping, preset)
    }

    fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        Store::mapping_versions(self, source)
    }

    fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        Store::mapping_version(self, source, version)
    }

    fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        Store::put_replay(self, job)
    }

    fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        Store::replay(self, source)
    }

    fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        Store::open_replays(self)
    }

    fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        Store::event(self, id)
    }

    fn located_event(&self, id: EventId) -> StoreResult<Option<(StoredEvent, Location)>> {
        Store::located_event(self, id)
    }

    fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        Store::raw_event(self, id)
    }

    fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        Store::event_state(self, id)
    }

    fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        Store::events_page(self, filter)
    }

    fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        Store::summaries_page(self, filter, bounds, budget)
    }

    fn event_summary(&self, id: EventId, bounds: Bounds) -> StoreResult<Option<EventSummary>> {
        Store::event_summary(self, id, bounds)
    }

    fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        Store::raw_record(self, id)
    }

    fn scan_permits(&self) -> Arc<tokio::sync::Semaphore> {
        Store::scan_permits(self)
    }

    fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        Store::source_event_ids(self, source, after, limit)
    }

    fn stored_events(&self) -> StoreResult<u64> {
        Store::stored_events(self)
    }

    fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        Store::log_error(self, entry)
    }

    fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        Store::errors_page(self, filter)
    }

    fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        Store::prune_errors(self, keep)
    }

    fn cursor(&self) -> StoreResult<Option<EventId>> {
        Store::cursor(self)
    }

    /// One process owns the data dir, and it reads this at start, before
    /// the processor runs: the two reads cannot straddle a batch.
    fn counts_with_pending(&self) -> StoreResult<CountsWithPending> {
        Ok((
            Store::persisted_counts(self)?,
            Store::pending_by_source(self)?,
        ))
    }

    fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        Store::dedupe_holder(self, key)
    }

    fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        Store::put_schema(self, source, schema)
    }

    fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        Store::schemas(self)
    }

    fn resolve(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        Store::resolve(self, input, blocklist)
    }

    fn identity_config(&self) -> Arc<IdentityConfig> {
        Store::identity_config(self)
    }
    fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()> {
        Store::put_identity_kinds(self, kinds)
    }
    fn resolve_preview(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        Store::resolve_preview(self, input, blocklist)
    }

    fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        Store::profile(self, id)
    }

    fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>> {
        Store::profile_by(self, key)
    }

    fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        Store::profile_events(self, id, limit, before)
    }

    fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>> {
        Store::profile_history(self, id)
    }

    fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<uuid::Uuid>,
    ) -> StoreResult<HistoryPage> {
        Store::profile_history_page(self, id, limit, before)
    }

    fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>> {
        Store::merge_profiles(self, from, into)
    }

    fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        Store::erase_profile(self, id)
    }

    fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        Store::erase_everywhere(self, id, redact_schemas)
    }

    fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        Store::commit_batch(self, planned, cursor, counts, activity, resolve)
    }

    fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        Store::persisted_activity(self)
    }

    fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<crate::store::ProfilesPage> {
        Store::profiles_page(self, prefixes, limit, before)
    }

    fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        Store::scan_errors(self, filter, max_read, visit)
    }

    fn put_old_token_use(
        &self,
        source: SourceId,
        used: &crate::domain::counters::OldTokenUse,
    ) -> StoreResult<()> {
        Store::put_old_token_use(self, source, used)
    }

    fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        Store::clear_old_token_use(self, source)
    }

    fn old_token_uses(
        &self,
    ) -> StoreResult<HashMap<SourceId, crate::domain::counters::OldTokenUse>> {
        Store::old_token_uses(self)
    }

    fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<crate::domain::delivery::Claim> {
        Store::claim_delivery(self, source, id, now, window_s)
    }

    fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        Store::settle_delivery(self, source, id, accepted, now, window_s)
    }

    fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        Store::redelivered(self, source)
    }

    fn prune_deliveries(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        Store::prune_deliveries(self, now)
    }

    fn kind_has_values(&self, kind: &crate::domain::identity::KindName) -> StoreResult<bool> {
        Store::kind_has_values(self, kind)
    }

    fn split_profile(
        &self,
        request: &crate::domain::identity::SplitRequest,
    ) -> StoreResult<
        Result<crate::domain::identity::SplitOutcome, crate::domain::identity::SplitRefusal>,
    > {
        Store::split_profile(self, request)
    }

    fn remove_never_merge(
        &self,
        id: uuid::Uuid,
    ) -> StoreResult<Option<crate::domain::identity::NeverMergeRule>> {
        Store::remove_never_merge(self, id)
    }

    // --- appended (issue 19: sessions, admin token, reachability) ---

    fn start_session(
        &self,
        key: &SecretHash,
        session: &crate::store::SessionRecord,
    ) -> StoreResult<()> {
        Store::start_session(self, key, session)
    }

    fn live_session(
        &self,
        key: &SecretHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<crate::store::SessionRecord>> {
        Store::live_session(self, key, now)
    }

    fn end_session(&self, key: &SecretHash) -> StoreResult<()> {
        Store::end_session(self, key)
    }

    fn set_session_flash(
        &self,
        key: &SecretHash,
        flash: &crate::store::SessionFlash,
    ) -> StoreResult<()> {
        Store::set_session_flash(self, key, flash)
    }

    fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<crate::domain::sealed::SealedSecret>> {
        Store::take_session_flash(self, key, source)
    }

    fn prune_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        Store::prune_sessions(self, now)
    }

    fn share_admin_token(
        &self,
        proposed: &SecretHash,
        configured: bool,
    ) -> StoreResult<crate::store::SharedValue<SecretHash>> {
        Store::share_admin_token(self, proposed, configured)
    }

    fn share_key_canary(
        &self,
        proposed: &crate::domain::sealed::SealedSecret,
    ) -> StoreResult<crate::store::SharedValue<crate::domain::sealed::SealedSecret>> {
        Store::share_key_canary(self, proposed)
    }

    fn check_reachable(&self) -> StoreResult<()> {
        Store::check_reachable(self)
    }

    fn may_process(&self) -> bool {
        true
    }

    fn subscribe_changes(&self, _new_events: Arc<tokio::sync::Notify>) {}

    fn queue_retry(&self, _event: EventId) -> StoreResult<()> {
        Err(crate::store::StoreError::Unsupported(
            "queue_retry (this node always processes)",
        ))
    }

    fn take_retries(&self) -> StoreResult<Vec<EventId>> {
        Ok(Vec::new())
    }
}
