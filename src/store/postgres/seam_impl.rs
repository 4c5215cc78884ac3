//! The PostgreSQL backend behind the seam (`crate::store::seam`): each
//! method's body lives with its concept (`log`, `events`, `sources`,
//! `state`, `identity`, `erasure`, `split`) as a method private to this
//! backend; this file is the index, and the trait docs are the contract.

use super::PgStore;
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
use crate::store::seam::{EventLog, StateStore};
use crate::store::{
    Appended, Bounds, CountsWithPending, ErasureReport, ErrorFilter, EventSummary, HistoryPage,
    Location, Logged, Planned, Resolved, ScanBudget, StoreResult, SummaryPage, UnitError,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

impl EventLog for PgStore {
    fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended> {
        PgStore::append_events(self, events)
    }

    fn flush_now(&self) -> StoreResult<()> {
        PgStore::flush_now(self)
    }

    fn next_pending(&self, after: Option<EventId>, limit: usize) -> StoreResult<Vec<Logged>> {
        PgStore::next_pending(self, after, limit)
    }

    fn pending_done(&self, last: EventId) -> StoreResult<()> {
        PgStore::pending_done(self, last)
    }

    fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        PgStore::processed_upto(self)
    }

    fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        PgStore::wait_processed(self, timeout)
    }

    fn read_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent> {
        PgStore::read_at(self, id, at)
    }

    fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        PgStore::prune_events(self, keep)
    }
}

impl StateStore for PgStore {
    fn put_source(&self, source: &Source) -> StoreResult<()> {
        PgStore::put_source(self, source)
    }

    fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        PgStore::source(self, id)
    }

    fn sources(&self) -> StoreResult<Vec<Source>> {
        PgStore::sources(self)
    }

    fn cached_source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Arc<Source>>> {
        PgStore::cached_source_by_token(self, hash)
    }

    fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        PgStore::source_by_token(self, hash)
    }

    fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        PgStore::delete_source(self, id)
    }

    fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        PgStore::save_mapping(self, source, mapping, preset)
    }

    fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        PgStore::mapping_versions(self, source)
    }

    fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        PgStore::mapping_version(self, source, version)
    }

    fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        PgStore::put_replay(self, job)
    }

    fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        PgStore::replay(self, source)
    }

    fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        PgStore::open_replays(self)
    }

    fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        PgStore::event(self, id)
    }

    fn located_event(&self, id: EventId) -> StoreResult<Option<(StoredEvent, Location)>> {
        PgStore::located_event(self, id)
    }

    fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        PgStore::raw_event(self, id)
    }

    fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        PgStore::event_state(self, id)
    }

    fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        PgStore::events_page(self, filter)
    }

    fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        PgStore::summaries_page(self, filter, bounds, budget)
    }

    fn event_summary(&self, id: EventId, bounds: Bounds) -> StoreResult<Option<EventSummary>> {
        PgStore::event_summary(self, id, bounds)
    }

    fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        PgStore::raw_record(self, id)
    }

    fn scan_permits(&self) -> Arc<tokio::sync::Semaphore> {
        PgStore::scan_permits(self)
    }

    fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        PgStore::source_event_ids(self, source, after, limit)
    }

    fn stored_events(&self) -> StoreResult<u64> {
        PgStore::stored_events(self)
    }

    fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        PgStore::log_error(self, entry)
    }

    fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        PgStore::errors_page(self, filter)
    }

    fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        PgStore::prune_errors(self, keep)
    }

    fn cursor(&self) -> StoreResult<Option<EventId>> {
        PgStore::cursor(self)
    }

    fn counts_with_pending(&self) -> StoreResult<CountsWithPending> {
        PgStore::counts_with_pending(self)
    }

    fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        PgStore::dedupe_holder(self, key)
    }

    fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        PgStore::put_schema(self, source, schema)
    }

    fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        PgStore::schemas(self)
    }

    fn resolve(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        PgStore::resolve(self, input, blocklist)
    }

    fn resolve_preview(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        PgStore::resolve_preview(self, input, blocklist)
    }

    fn identity_config(&self) -> Arc<IdentityConfig> {
        PgStore::identity_config(self)
    }

    fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()> {
        PgStore::put_identity_kinds(self, kinds)
    }

    fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        PgStore::profile(self, id)
    }

    fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>> {
        PgStore::profile_by(self, key)
    }

    fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        PgStore::profile_events(self, id, limit, before)
    }

    fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>> {
        PgStore::profile_history(self, id)
    }

    fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<uuid::Uuid>,
    ) -> StoreResult<HistoryPage> {
        PgStore::profile_history_page(self, id, limit, before)
    }

    fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>> {
        PgStore::merge_profiles(self, from, into)
    }

    fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        PgStore::erase_profile(self, id)
    }

    fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        PgStore::erase_everywhere(self, id, redact_schemas)
    }

    fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        PgStore::commit_batch(self, planned, cursor, counts, activity, resolve)
    }

    fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        PgStore::persisted_activity(self)
    }

    fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<crate::store::ProfilesPage> {
        PgStore::profiles_page(self, prefixes, limit, before)
    }

    fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        PgStore::scan_errors(self, filter, max_read, visit)
    }

    fn put_old_token_use(
        &self,
        source: SourceId,
        used: &crate::domain::counters::OldTokenUse,
    ) -> StoreResult<()> {
        PgStore::put_old_token_use(self, source, used)
    }

    fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        PgStore::clear_old_token_use(self, source)
    }

    fn old_token_uses(
        &self,
    ) -> StoreResult<HashMap<SourceId, crate::domain::counters::OldTokenUse>> {
        PgStore::old_token_uses(self)
    }

    fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<crate::domain::delivery::Claim> {
        PgStore::claim_delivery(self, source, id, now, window_s)
    }

    fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        PgStore::settle_delivery(self, source, id, accepted, now, window_s)
    }

    fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        PgStore::redelivered(self, source)
    }

    fn prune_deliveries(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        PgStore::prune_deliveries(self, now)
    }

    fn kind_has_values(&self, kind: &crate::domain::identity::KindName) -> StoreResult<bool> {
        PgStore::kind_has_values(self, kind)
    }

    fn split_profile(
        &self,
        request: &crate::domain::identity::SplitRequest,
    ) -> StoreResult<
        Result<crate::domain::identity::SplitOutcome, crate::domain::identity::SplitRefusal>,
    > {
        PgStore::split_profile(self, request)
    }

    fn remove_never_merge(
        &self,
        id: uuid::Uuid,
    ) -> StoreResult<Option<crate::domain::identity::NeverMergeRule>> {
        PgStore::remove_never_merge(self, id)
    }

    // --- appended (issue 19: sessions, admin token, reachability) ---

    fn start_session(
        &self,
        key: &SecretHash,
        session: &crate::store::SessionRecord,
    ) -> StoreResult<()> {
        PgStore::start_session(self, key, session)
    }

    fn live_session(
        &self,
        key: &SecretHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<crate::store::SessionRecord>> {
        PgStore::live_session(self, key, now)
    }

    fn end_session(&self, key: &SecretHash) -> StoreResult<()> {
        PgStore::end_session(self, key)
    }

    fn set_session_flash(
        &self,
        key: &SecretHash,
        flash: &crate::store::SessionFlash,
    ) -> StoreResult<()> {
        PgStore::set_session_flash(self, key, flash)
    }

    fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<crate::domain::sealed::SealedSecret>> {
        PgStore::take_session_flash(self, key, source)
    }

    fn prune_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        PgStore::prune_sessions(self, now)
    }

    fn share_admin_token(
        &self,
        proposed: &SecretHash,
        configured: bool,
    ) -> StoreResult<crate::store::SharedValue<SecretHash>> {
        PgStore::share_admin_token(self, proposed, configured)
    }

    fn share_key_canary(
        &self,
        proposed: &crate::domain::sealed::SealedSecret,
    ) -> StoreResult<crate::store::SharedValue<crate::domain::sealed::SealedSecret>> {
        PgStore::share_key_canary(self, proposed)
    }

    fn check_reachable(&self) -> StoreResult<()> {
        PgStore::check_reachable(self)
    }

    fn may_process(&self) -> bool {
        PgStore::may_process(self)
    }

    fn subscribe_changes(&self, new_events: Arc<tokio::sync::Notify>) {
        PgStore::subscribe_changes(self, new_events)
    }

    fn queue_retry(&self, event: EventId) -> StoreResult<()> {
        PgStore::queue_retry(self, event)
    }

    fn take_retries(&self) -> StoreResult<Vec<EventId>> {
        PgStore::take_retries(self)
    }
}
