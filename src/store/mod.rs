//! Storage: the seam the pipeline and the services use (`seam`: the
//! [`EventLog`] and [`StateStore`] traits, whose docs are the contract a
//! backend keeps), and its two backends:
//!
//! - `embedded` (the default): the event log, group commit and sled in the
//!   data dir; the only module of the crate that opens sled.
//! - `postgres` (`--database-url`): every piece of state in one PostgreSQL
//!   database, shared by any number of nodes.
//!
//! [`Store`] is the backend callers hold: an enum over the two, so every
//! call is a `match` and statically dispatched (no `dyn` on the per-event
//! path). Everything code outside the store needs is re-exported here;
//! nothing outside names `store::embedded` or `store::postgres`.

pub mod commit;
mod embedded;
mod error;
pub mod migrate;
mod postgres;
mod seam;
mod split;

pub use commit::{Appended, FlushFailed, FlushStats, GroupCommit, Receipt};
pub use embedded::erasure::{DatabaseRewrite, ErasureReport, CATCH_UP as ERASURE_CATCH_UP};
pub use embedded::errors::ErrorFilter;
pub use embedded::history::{HistoryLine, HistoryPage, HISTORY_SCAN};
pub use embedded::identity::{ProfilesPage, PROFILE_SEARCH_SCAN};
pub use embedded::summary::{ScanBudget, SummaryPage};
pub use embedded::{Location, Logged, Planned, Resolved};
pub use error::{StoreError, StoreResult};
pub use postgres::PgOptions;
pub use seam::{
    CountsWithPending, EventLog, SessionFlash, SessionRecord, SharedValue, StateStore, UnitError,
};

/// The domain's types the seam speaks in, for callers that name them with
/// the store's calls (their home is `crate::domain`).
pub use crate::domain::events::{EventFilter, StoredEvent};
pub use crate::domain::replay::{MappingVersion, ReplayJob};
pub use crate::domain::summary::{Bounds, EventSummary, Shown};

use crate::domain::activity::{ActivityDelta, Bucket, SlotKey};
use crate::domain::counters::Counts;
use crate::domain::identity::{
    AuditEntry, Blocklist, IdentKey, IdentityConfig, IdentityTxn, KindSet, Outcome, Profile,
    ResolveInput,
};
use crate::domain::ids::{EventId, ProfileId, SourceId};
use crate::domain::model::{ErrorEntry, EventState, MappingSpec, RawEvent};
use crate::domain::redact::Needles;
use crate::domain::source::{SecretHash, Source};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The backend in use, chosen once at start (`Application::build`).
#[derive(Clone)]
pub enum Store {
    Embedded(embedded::Store),
    Postgres(postgres::PgStore),
}

/// Runs the same call on whichever backend `self` is.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Embedded($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// The embedded backend in `data_dir` (the event log and sled).
    pub fn open(data_dir: &Path, cache_mb: u64) -> StoreResult<Self> {
        embedded::Store::open(data_dir, cache_mb).map(Store::Embedded)
    }

    /// The PostgreSQL backend: connects, applies the embedded migrations
    /// (under PostgreSQL's advisory lock, so nodes starting together apply
    /// them once) and starts the backend's background tasks.
    pub fn connect(options: &PgOptions) -> StoreResult<Self> {
        postgres::PgStore::connect(options).map(Store::Postgres)
    }

    /// A throwaway embedded store for unit tests and benches.
    pub fn temporary() -> StoreResult<Self> {
        embedded::Store::temporary().map(Store::Embedded)
    }

    /// A throwaway embedded store whose log segments close at `segment_bytes`.
    pub fn temporary_with_segment_bytes(segment_bytes: u64) -> StoreResult<Self> {
        embedded::Store::temporary_with_segment_bytes(segment_bytes).map(Store::Embedded)
    }

    /// Starts the group committer the hook path waits on.
    pub fn start_group_commit(&self, delay: Duration) -> Arc<GroupCommit> {
        Arc::new(match self {
            Store::Embedded(s) => GroupCommit::Log(s.start_group_commit(delay)),
            Store::Postgres(s) => GroupCommit::Postgres(s.start_group_commit(delay)),
        })
    }

    /// Writes everything out (at shutdown, after the processor stopped).
    pub fn close(&self) -> StoreResult<()> {
        dispatch!(self, s => s.close())
    }

    /// Bytes the store takes on disk (the embedded data dir; PostgreSQL's
    /// database size).
    pub fn size_on_disk(&self) -> u64 {
        dispatch!(self, s => s.size_on_disk())
    }

    /// The embedded store's trees, for unit tests that plant records a
    /// backend would never write.
    #[cfg(test)]
    pub(crate) fn embedded_trees(&self) -> &embedded::Trees {
        match self {
            Store::Embedded(s) => &s.trees,
            Store::Postgres(_) => panic!("not the embedded store"),
        }
    }

    /// Which backend, for logs and `/healthz`: `embedded` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Embedded(_) => "embedded",
            Store::Postgres(_) => "postgres",
        }
    }
}

impl EventLog for Store {
    fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended> {
        dispatch!(self, s => s.append_events(events))
    }

    fn flush_now(&self) -> StoreResult<()> {
        dispatch!(self, s => s.flush_now())
    }

    fn next_pending(&self, after: Option<EventId>, limit: usize) -> StoreResult<Vec<Logged>> {
        dispatch!(self, s => s.next_pending(after, limit))
    }

    fn pending_done(&self, last: EventId) -> StoreResult<()> {
        dispatch!(self, s => s.pending_done(last))
    }

    fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        dispatch!(self, s => s.processed_upto())
    }

    fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        dispatch!(self, s => s.wait_processed(timeout))
    }

    fn read_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent> {
        dispatch!(self, s => s.read_at(id, at))
    }

    fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        dispatch!(self, s => s.prune_events(keep))
    }
}

impl StateStore for Store {
    fn put_source(&self, source: &Source) -> StoreResult<()> {
        dispatch!(self, s => s.put_source(source))
    }

    fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        dispatch!(self, s => s.source(id))
    }

    fn sources(&self) -> StoreResult<Vec<Source>> {
        dispatch!(self, s => s.sources())
    }

    fn cached_source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Arc<Source>>> {
        dispatch!(self, s => s.cached_source_by_token(hash))
    }

    fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        dispatch!(self, s => s.source_by_token(hash))
    }

    fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        dispatch!(self, s => s.delete_source(id))
    }

    fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        dispatch!(self, s => s.save_mapping(source, mapping, preset))
    }

    fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        dispatch!(self, s => s.mapping_versions(source))
    }

    fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        dispatch!(self, s => s.mapping_version(source, version))
    }

    fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        dispatch!(self, s => s.put_replay(job))
    }

    fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        dispatch!(self, s => s.replay(source))
    }

    fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        dispatch!(self, s => s.open_replays())
    }

    fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        dispatch!(self, s => s.event(id))
    }

    fn located_event(&self, id: EventId) -> StoreResult<Option<(StoredEvent, Location)>> {
        dispatch!(self, s => s.located_event(id))
    }

    fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        dispatch!(self, s => s.raw_event(id))
    }

    fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        dispatch!(self, s => s.event_state(id))
    }

    fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        dispatch!(self, s => s.events_page(filter))
    }

    fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        dispatch!(self, s => s.summaries_page(filter, bounds, budget))
    }

    fn event_summary(&self, id: EventId, bounds: Bounds) -> StoreResult<Option<EventSummary>> {
        dispatch!(self, s => s.event_summary(id, bounds))
    }

    fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        dispatch!(self, s => s.raw_record(id))
    }

    fn scan_permits(&self) -> Arc<tokio::sync::Semaphore> {
        dispatch!(self, s => s.scan_permits())
    }

    fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        dispatch!(self, s => s.source_event_ids(source, after, limit))
    }

    fn stored_events(&self) -> StoreResult<u64> {
        dispatch!(self, s => s.stored_events())
    }

    fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        dispatch!(self, s => s.log_error(entry))
    }

    fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        dispatch!(self, s => s.errors_page(filter))
    }

    fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        dispatch!(self, s => s.prune_errors(keep))
    }

    fn cursor(&self) -> StoreResult<Option<EventId>> {
        dispatch!(self, s => s.cursor())
    }

    fn counts_with_pending(&self) -> StoreResult<CountsWithPending> {
        dispatch!(self, s => s.counts_with_pending())
    }

    fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        dispatch!(self, s => s.dedupe_holder(key))
    }

    fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        dispatch!(self, s => s.put_schema(source, schema))
    }

    fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        dispatch!(self, s => s.schemas())
    }

    fn resolve(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        dispatch!(self, s => s.resolve(input, blocklist))
    }

    fn resolve_preview(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome> {
        dispatch!(self, s => s.resolve_preview(input, blocklist))
    }

    fn identity_config(&self) -> Arc<IdentityConfig> {
        dispatch!(self, s => s.identity_config())
    }

    fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()> {
        dispatch!(self, s => s.put_identity_kinds(kinds))
    }

    fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>> {
        dispatch!(self, s => s.profile(id))
    }

    fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>> {
        dispatch!(self, s => s.profile_by(key))
    }

    fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        dispatch!(self, s => s.profile_events(id, limit, before))
    }

    fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>> {
        dispatch!(self, s => s.profile_history(id))
    }

    fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<uuid::Uuid>,
    ) -> StoreResult<HistoryPage> {
        dispatch!(self, s => s.profile_history_page(id, limit, before))
    }

    fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>> {
        dispatch!(self, s => s.merge_profiles(from, into))
    }

    fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        dispatch!(self, s => s.erase_profile(id))
    }

    fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        dispatch!(self, s => s.erase_everywhere(id, redact_schemas))
    }

    fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        dispatch!(self, s => s.commit_batch(planned, cursor, counts, activity, resolve))
    }

    fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        dispatch!(self, s => s.persisted_activity())
    }

    fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<crate::store::ProfilesPage> {
        dispatch!(self, s => s.profiles_page(prefixes, limit, before))
    }

    fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        dispatch!(self, s => s.scan_errors(filter, max_read, visit))
    }

    fn put_old_token_use(
        &self,
        source: SourceId,
        used: &crate::domain::counters::OldTokenUse,
    ) -> StoreResult<()> {
        dispatch!(self, s => s.put_old_token_use(source, used))
    }

    fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        dispatch!(self, s => s.clear_old_token_use(source))
    }

    fn old_token_uses(
        &self,
    ) -> StoreResult<HashMap<SourceId, crate::domain::counters::OldTokenUse>> {
        dispatch!(self, s => s.old_token_uses())
    }

    fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<crate::domain::delivery::Claim> {
        dispatch!(self, s => s.claim_delivery(source, id, now, window_s))
    }

    fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        dispatch!(self, s => s.settle_delivery(source, id, accepted, now, window_s))
    }

    fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        dispatch!(self, s => s.redelivered(source))
    }

    fn prune_deliveries(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        dispatch!(self, s => s.prune_deliveries(now))
    }

    fn kind_has_values(&self, kind: &crate::domain::identity::KindName) -> StoreResult<bool> {
        dispatch!(self, s => s.kind_has_values(kind))
    }

    fn split_profile(
        &self,
        request: &crate::domain::identity::SplitRequest,
    ) -> StoreResult<
        Result<crate::domain::identity::SplitOutcome, crate::domain::identity::SplitRefusal>,
    > {
        dispatch!(self, s => s.split_profile(request))
    }

    fn remove_never_merge(
        &self,
        id: uuid::Uuid,
    ) -> StoreResult<Option<crate::domain::identity::NeverMergeRule>> {
        dispatch!(self, s => s.remove_never_merge(id))
    }

    // --- appended (issue 19: sessions, admin token, reachability) ---

    fn start_session(
        &self,
        key: &SecretHash,
        session: &crate::store::SessionRecord,
    ) -> StoreResult<()> {
        dispatch!(self, s => s.start_session(key, session))
    }

    fn live_session(
        &self,
        key: &SecretHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<crate::store::SessionRecord>> {
        dispatch!(self, s => s.live_session(key, now))
    }

    fn end_session(&self, key: &SecretHash) -> StoreResult<()> {
        dispatch!(self, s => s.end_session(key))
    }

    fn set_session_flash(
        &self,
        key: &SecretHash,
        flash: &crate::store::SessionFlash,
    ) -> StoreResult<()> {
        dispatch!(self, s => s.set_session_flash(key, flash))
    }

    fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<crate::domain::sealed::SealedSecret>> {
        dispatch!(self, s => s.take_session_flash(key, source))
    }

    fn prune_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        dispatch!(self, s => s.prune_sessions(now))
    }

    fn share_admin_token(
        &self,
        proposed: &SecretHash,
        configured: bool,
    ) -> StoreResult<crate::store::SharedValue<SecretHash>> {
        dispatch!(self, s => s.share_admin_token(proposed, configured))
    }

    fn share_key_canary(
        &self,
        proposed: &crate::domain::sealed::SealedSecret,
    ) -> StoreResult<crate::store::SharedValue<crate::domain::sealed::SealedSecret>> {
        dispatch!(self, s => s.share_key_canary(proposed))
    }

    fn check_reachable(&self) -> StoreResult<()> {
        dispatch!(self, s => s.check_reachable())
    }

    fn may_process(&self) -> bool {
        dispatch!(self, s => s.may_process())
    }

    fn subscribe_changes(&self, new_events: Arc<tokio::sync::Notify>) {
        dispatch!(self, s => s.subscribe_changes(new_events))
    }

    fn queue_retry(&self, event: EventId) -> StoreResult<()> {
        dispatch!(self, s => s.queue_retry(event))
    }

    fn take_retries(&self) -> StoreResult<Vec<EventId>> {
        dispatch!(self, s => s.take_retries())
    }
}
