//! The storage seam: what the pipeline and the services ask of a backend.
//!
//! Two traits, written for whoever implements a second backend (the next
//! one is PostgreSQL, for many nodes):
//!
//! - [`EventLog`]: the append-only, durable log of raw events and the
//!   processor's queue over it (append a request's records all-or-nothing,
//!   wait until durable, read from a cursor in order, read by location,
//!   retention).
//! - [`StateStore`]: everything the processor and the services decide and
//!   keep about those events (sources, mappings, replay jobs, event states,
//!   the error log, counters and cursor, idempotency keys, schemas,
//!   profiles), and the identity unit of work `commit_batch` that the
//!   pipeline runs resolution inside.
//!
//! The seam is synchronous: sled is, and the pipeline runs on its own
//! threads, where a network backend may block. The services are async:
//! those that scan or write much (searches, saves, previews, erasure) call
//! the seam on tokio's blocking pool already; short lookups call it in
//! place, which a network backend moves to the blocking pool inside
//! `service`, without touching HTTP.
//! Callers use the concrete backend type ([`crate::store::Store`]), so every
//! call is statically dispatched (no `dyn` on the per-event path); the
//! traits are the contract, and the list of what a backend must do.
//!
//! Storage decides no policy: which events a search matches is
//! `domain::events::EventFilter::matches`, and what an erasure removes is
//! `domain::redact`; a backend applies them.
//!
//! Batching: the per-event path costs one call per request
//! (`append_events`) and one per processor batch (`next_pending`,
//! `commit_batch`, `pending_done`), never one per event, so a round trip
//! is paid per batch. `IdentityTxn::prefetch` is where a network backend
//! loads a batch's identifiers in one round trip.

use super::{
    Appended, Bounds, ErasureReport, ErrorFilter, EventSummary, HistoryPage, Location, Logged,
    Planned, Resolved, ScanBudget, StoreError, StoreResult, SummaryPage,
};
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
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why the identity step of a unit of work (`StateStore::commit_batch`)
/// stopped. A backend maps its own transaction errors onto these two: a
/// storage failure ends the unit, a conflict with a concurrent writer (a
/// support merge landing at the same moment) makes the backend run the
/// whole unit again, `resolve` included. The pipeline only passes it on.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a concurrent write conflicted; the unit of work runs again")]
    Conflict,
}

/// Committed counters and the events waiting, per source
/// ([`StateStore::counts_with_pending`]).
pub type CountsWithPending = (HashMap<SourceId, Counts>, HashMap<SourceId, u64>);

/// The durable log of raw events and the processor's queue over it.
///
/// Ordering: event ids are UUID v7 assigned by the log at append. On the
/// embedded log they are strictly increasing in log order. On PostgreSQL
/// each node assigns its own, so ids from several nodes are not in commit
/// order; the queue is read in the log's own commit order there (`seq`,
/// see `postgres/log.rs`), never by comparing ids. Either way the processor
/// reads in log order and its cursor is the last id it committed.
pub trait EventLog {
    /// Appends every record of one request, all or nothing, and assigns
    /// their event ids (returned in order, with the events as stored).
    ///
    /// Atomicity: after a crash either all of the request's records are in
    /// the log or none is; a reader never sees part of a request.
    ///
    /// Durability: **not yet durable when this returns.** The caller (the
    /// hook path) then waits on the group commit with the receipt
    /// (`Store::start_group_commit` → `GroupCommit::durable(receipt)`),
    /// which returns once these records are on disk (or committed), and
    /// only then answers 202; an `Err` there means they are not stored. Appended records reach the
    /// processor (`next_pending`) only once durable, so nothing is
    /// processed that a crash could still lose.
    ///
    /// Cost: one call per request; it must not block on a disk sync (the
    /// embedded log copies into a buffer under a short lock).
    fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended>;

    /// Makes everything appended so far durable now, bypassing the group
    /// commit (shutdown, tests, and the benchmark of sync-per-write).
    fn flush_now(&self) -> StoreResult<()>;

    /// Up to `limit` of the oldest durable events after `after` (or after
    /// the committed cursor) that the processor has not committed, in id
    /// order. Repeatable: an event is handed out again until
    /// `pending_done` covers it, so a crashed or retried batch loses
    /// nothing. After a restart the backend queues again every logged event
    /// after the committed cursor.
    fn next_pending(&self, after: Option<EventId>, limit: usize) -> StoreResult<Vec<Logged>>;

    /// Forgets queued events up to `last`, after `StateStore::commit_batch`
    /// committed them (the cursor is durable in that unit of work; this only
    /// releases what the queue holds).
    fn pending_done(&self, last: EventId) -> StoreResult<()>;

    /// The last event whose processing is committed and released.
    fn processed_upto(&self) -> StoreResult<Option<EventId>>;

    /// Waits until every event appended before the call is committed by the
    /// processor (an erasure waits so that none joins the profile after
    /// it). `false` after `timeout`. Blocks the calling thread.
    fn wait_processed(&self, timeout: Duration) -> StoreResult<bool>;

    /// The raw event `id` stored at `at` (a `Logged::at` or a state's
    /// location): from the log, or the scrubbed copy of an erased event.
    /// An error if the place holds nothing readable.
    fn read_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent>;

    /// Retention: removes the oldest *processed* events beyond `keep`,
    /// with their states and index entries; never an unprocessed one. May
    /// keep more than `keep` (the embedded log removes whole segments).
    /// States go before the records, so a crash in between leaves records
    /// nothing points to, removed by the next pass. Returns how many went.
    fn prune_events(&self, keep: u64) -> StoreResult<u64>;
}

/// What the processor and the services decide and keep about events.
///
/// Unless a method says otherwise, a write is atomic on its own and
/// durable within the backend's flush interval (sled: 500 ms): a crash may
/// lose the last moments of writes that are not the processor's, which are
/// redone or re-asked (the processor's own writes are in `commit_batch`,
/// whose cursor makes a lost batch run again). Configuration is durable on
/// return: sources (`put_source`, `delete_source`, and so a mapping save),
/// identifier kinds and never-merge rules, so a URL or a rule the API has
/// just answered with survives a crash.
pub trait StateStore {
    // --- sources ---

    /// Inserts or replaces a source and its token lookup in one atomic
    /// write: the old token stops resolving in the same write.
    fn put_source(&self, source: &Source) -> StoreResult<()>;
    fn source(&self, id: SourceId) -> StoreResult<Option<Source>>;
    /// Every source, in id order.
    fn sources(&self) -> StoreResult<Vec<Source>>;
    /// The source of a token, from a cache the hook path reads without a
    /// round trip; any source write invalidates it.
    fn cached_source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Arc<Source>>>;
    /// The source of a token, read from storage.
    fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>>;
    /// Removes a source and its token (atomically); returns what it was.
    fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>>;

    // --- mappings and replay jobs ---

    /// Saves a new version of a source's mapping (the next number,
    /// atomically with respect to other saves) and returns it.
    fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion>;
    /// Every saved version of a source's mapping, oldest first.
    fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>>;
    fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>>;
    /// Writes a replay job's progress (one per source; replaces it).
    fn put_replay(&self, job: &ReplayJob) -> StoreResult<()>;
    fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>>;
    /// Jobs not finished, to resume after a restart.
    fn open_replays(&self) -> StoreResult<Vec<ReplayJob>>;

    // --- events: states, pages, bounded views ---

    /// An event and its state (`None` while pending); `None` if unknown
    /// or removed by retention.
    fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>>;
    /// As `event`, with where its record lives (a replay plans with it).
    fn located_event(&self, id: EventId) -> StoreResult<Option<(StoredEvent, Location)>>;
    fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>>;
    fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>>;
    /// Events newest first passing `filter` (by `EventFilter::matches`),
    /// pending ones included, never one twice; the id to continue before.
    /// Scans a bounded number of candidates per call.
    fn events_page(&self, filter: &EventFilter)
        -> StoreResult<(Vec<StoredEvent>, Option<EventId>)>;
    /// As `events_page`, bounded per event by `bounds` and per page by
    /// `budget` (the page says when the budget ran out).
    fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage>;
    fn event_summary(&self, id: EventId, bounds: Bounds) -> StoreResult<Option<EventSummary>>;
    /// The stored record of an event as JSON bytes, whole (the raw
    /// endpoint); an erased event's scrubbed copy.
    fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>>;
    /// Permits for scans that may read past one page (searches): shared
    /// by every caller of this store, so scans never crowd out ingestion.
    fn scan_permits(&self) -> Arc<tokio::sync::Semaphore>;
    /// Up to `limit` processed event ids of a source after `after`, oldest
    /// first (a replay walks them).
    fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>>;
    /// Processed events stored (kept by `commit_batch` and retention).
    fn stored_events(&self) -> StoreResult<u64>;

    // --- error log ---

    /// Appends an entry. Diagnostic: not flushed synchronously.
    fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()>;
    /// Entries newest first, filtered, with a bounded scan.
    fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>>;
    /// Removes the oldest entries beyond `keep`; returns how many.
    fn prune_errors(&self, keep: u64) -> StoreResult<u64>;

    // --- counters, cursor, idempotency keys, schemas ---

    /// The processor's committed cursor (moved only by `commit_batch`).
    fn cursor(&self) -> StoreResult<Option<EventId>>;
    /// Per-source counters as of the last `commit_batch`, and the events
    /// still waiting for the processor per source, read at one moment, so
    /// an event is in exactly one of the two (on PostgreSQL, one
    /// statement: a follower's refresh never counts a batch twice).
    fn counts_with_pending(&self) -> StoreResult<CountsWithPending>;
    /// The event holding an idempotency key (source ‖ key). Keys are
    /// claimed only inside `commit_batch`, so a read outside it is current
    /// for the single processor that claims them.
    fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>>;
    /// Saves a source's learned schema snapshot (JSON bytes), replacing it.
    fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()>;
    fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>>;

    // --- profiles ---

    /// Resolves one event's identity in its own unit of work (tests and
    /// benches; the processor resolves inside `commit_batch`).
    fn resolve(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome>;
    /// What `resolve` would do now, writing nothing.
    fn resolve_preview(&self, input: &ResolveInput, blocklist: &Blocklist) -> StoreResult<Outcome>;
    /// The identifier kinds and never-merge pairs resolutions use now
    /// (held in memory; cheap).
    fn identity_config(&self) -> Arc<IdentityConfig>;
    /// Replaces the identifier kinds (the service checked the change).
    fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()>;
    /// A profile by id; an absorbed id answers with its survivor.
    fn profile(&self, id: ProfileId) -> StoreResult<Option<Profile>>;
    /// The profile owning an identifier (normalised value).
    fn profile_by(&self, key: &IdentKey) -> StoreResult<Option<Profile>>;
    /// A profile's events newest first, merged profiles' included.
    fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>>;
    /// The audit history of a profile and the profiles merged into it,
    /// oldest first; an erased id keeps its erasure line.
    fn profile_history(&self, id: ProfileId) -> StoreResult<Vec<AuditEntry>>;
    /// One page of history, newest first, runs of identical refusals folded.
    fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<uuid::Uuid>,
    ) -> StoreResult<HistoryPage>;
    /// Support merges `from` into `into` in one unit of work (audited);
    /// the inner `Err` says why it was refused.
    fn merge_profiles(
        &self,
        from: ProfileId,
        into: ProfileId,
    ) -> StoreResult<Result<Profile, String>>;
    /// Erases a profile: profile, identifiers and redirects go atomically;
    /// then links are removed and audit details redacted, and the whole is
    /// durable before it returns (a legal obligation). Returns the linked
    /// event ids, newest first; `None` for no such profile.
    fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>>;
    /// Erases a profile and every copy of its personal data, as
    /// `domain::redact` decides (events, log records, error entries, audit
    /// lines, idempotency keys; `redact_schemas` for the schemas the
    /// pipeline holds). Durable before it returns. Call after
    /// `EventLog::wait_processed`. Not atomic as a whole: a crash midway
    /// leaves some copies, and running it again finds no profile.
    fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>>;

    // --- the processor's unit of work ---

    /// Commits one processor batch as **one atomic unit**: for each
    /// planned event, `resolve` runs its identity work against the unit's
    /// identity view and returns its final state; the states, error
    /// entries, idempotency keys, per-source index, counters (`counts`,
    /// absolute values), the time buckets the batch touched (`activity`:
    /// absolute values of ring slots; a few small writes per source per
    /// batch) and the cursor (`cursor`: the batch's last new
    /// event and its place) are written together. After a crash either the
    /// whole batch is committed and the cursor past it, or nothing is and
    /// the batch runs again from the log.
    ///
    /// `resolve` must be pure apart from the view: a backend may run it
    /// again, from nothing, on a conflict (sled does; a serialisable
    /// PostgreSQL transaction would on a serialisation failure).
    /// Durability: within the flush interval; the log holds the events, so
    /// a lost commit is redone, never lost.
    fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()>;

    // --- time-bucket counters (`domain::activity`) ---

    /// Every persisted time bucket, read once at start (bounded: at most
    /// 140 slots per source, see `domain::activity`).
    fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>>;

    // --- appended (issue 16, support) ---

    /// Live profiles newest first, older than `before` (`limit` a page):
    /// all, or those owning an identifier that starts with one of
    /// `prefixes` (normalised values). Bounded: a search reads at most
    /// `PROFILE_SEARCH_SCAN` identifiers and says when it stopped.
    fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<crate::store::ProfilesPage>;

    /// The error log newest first (from `filter.before`): `visit` gets each
    /// entry passing `filter`, and at most `max_read` entries are read.
    /// Returns how many were read and whether older ones were left unread.
    /// For summaries (the error groups) that must stay bounded.
    fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)>;

    // --- appended (issue 18, edge: rotation grace) ---

    /// Persists the requests on a source's rotated-out token; keeps the
    /// larger count when writes arrive out of order.
    fn put_old_token_use(
        &self,
        source: SourceId,
        used: &crate::domain::counters::OldTokenUse,
    ) -> StoreResult<()>;
    /// Forgets them (a new rotation starts a new count).
    fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()>;
    /// Every source's, read once at start.
    fn old_token_uses(
        &self,
    ) -> StoreResult<HashMap<SourceId, crate::domain::counters::OldTokenUse>>;

    // --- redelivery (`domain::delivery`), appended for issue 18 ---

    /// Claims delivery `id` of `source` for a request at `now`: `Claimed`
    /// (this request accepts it; settle it after), `Redelivery` with the
    /// first delivery's ids when it was accepted within `window_s` (and
    /// counted as a redelivery), or `InFlight`. One claim wins of many at
    /// once (compare-and-swap).
    fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<crate::domain::delivery::Claim>;
    /// Records a claimed delivery as accepted as `accepted`, or (`None`)
    /// releases the claim so a retry is accepted as new.
    fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: chrono::DateTime<chrono::Utc>,
        window_s: u64,
    ) -> StoreResult<()>;
    /// How many redeliveries of `source` were answered from the first.
    fn redelivered(&self, source: SourceId) -> StoreResult<u64>;
    /// Forgets delivery ids past their window; returns how many.
    fn prune_deliveries(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;

    // --- appended (issue 17, identifier kinds) ---

    /// Whether any profile holds a value of this team's kind (a kind in
    /// use cannot be deleted). One index seek.
    fn kind_has_values(&self, kind: &crate::domain::identity::KindName) -> StoreResult<bool>;

    // --- appended (issue 17, split) ---

    /// Undoes one merge of a profile in **one atomic unit**: the
    /// never-merge rules, the profile taken apart and rebuilt from its
    /// events by `domain::identity::split`, the events' states
    /// re-attributed, the `split` audit lines. All or nothing. Holds the
    /// identity writer throughout and, before returning, makes the new
    /// rules what the next resolution uses. Reads every event of the
    /// profile (at most `identity::MAX_SPLIT_EVENTS`). The inner `Err`
    /// says why it was not done.
    fn split_profile(
        &self,
        request: &crate::domain::identity::SplitRequest,
    ) -> StoreResult<
        Result<crate::domain::identity::SplitOutcome, crate::domain::identity::SplitRefusal>,
    >;

    /// Removes a never-merge rule; later events may merge the pair again
    /// (nothing is merged back by the removal). The rule, if there was one.
    fn remove_never_merge(
        &self,
        id: uuid::Uuid,
    ) -> StoreResult<Option<crate::domain::identity::NeverMergeRule>>;

    // --- appended (issue 19: what every node shares) ---

    /// Keeps a new dashboard session under `key` (the SHA-256 of its id:
    /// the id itself, the cookie, is never stored), dropping expired ones
    /// on the way. A session started on one node is live on every node.
    fn start_session(&self, key: &SecretHash, session: &SessionRecord) -> StoreResult<()>;
    /// The session under `key` when it is live at `now` (not ended, not
    /// expired), else `None`. Always read from the shared store: an end on
    /// another node counts at once.
    fn live_session(
        &self,
        key: &SecretHash,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Ends the session under `key` (nothing when there is none).
    fn end_session(&self, key: &SecretHash) -> StoreResult<()>;
    /// Puts `flash` in the session's one slot (replacing any earlier one
    /// not yet shown); nothing when the session is gone.
    fn set_session_flash(&self, key: &SecretHash, flash: &SessionFlash) -> StoreResult<()>;
    /// Takes the session's flash when it is for `source`, emptying the
    /// slot in the same step (one reader gets it); a flash for another
    /// source stays.
    fn take_session_flash(
        &self,
        key: &SecretHash,
        source: SourceId,
    ) -> StoreResult<Option<crate::domain::sealed::SealedSecret>>;
    /// Drops sessions expired at `now`; returns how many.
    fn prune_sessions(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;
    /// The admin token's hash every node uses. `configured` (the operator
    /// set the token): `proposed` replaces what is stored. Else `proposed`
    /// is stored only when there is none; `ours` says whether it was (the
    /// node that generated it then prints the token, once). The embedded
    /// backend has one node, whose token is the data dir's file: it
    /// answers `proposed`, `ours`.
    fn share_admin_token(
        &self,
        proposed: &SecretHash,
        configured: bool,
    ) -> StoreResult<SharedValue<SecretHash>>;
    /// A value sealed with the secret key, stored by the first node, so a
    /// node with another key sees it does not open and refuses to start.
    /// `proposed` is stored when there is none. Embedded: `proposed`.
    fn share_key_canary(
        &self,
        proposed: &crate::domain::sealed::SealedSecret,
    ) -> StoreResult<SharedValue<crate::domain::sealed::SealedSecret>>;
    /// Whether the store answers now (`/healthz`): PostgreSQL's `SELECT 1`,
    /// its result kept about a second so health checks cost the database
    /// little. The embedded store always answers.
    fn check_reachable(&self) -> StoreResult<()>;

    // --- appended (issue 19, many nodes) ---

    /// Whether this node may run the processor (and replays, retention,
    /// maintenance) now. Embedded: always. PostgreSQL: while this node
    /// holds the processing lease; it can turn false at any moment, and a
    /// batch committed after that is fenced (`StoreError::Fenced`).
    fn may_process(&self) -> bool;

    /// Rings `new_events` whenever another node appended events, so this
    /// node's processor starts on them at once. Embedded: nothing to do.
    fn subscribe_changes(&self, new_events: Arc<tokio::sync::Notify>);

    /// Asks the processing node to re-run one event (the event page's
    /// retry) from a node that does not process. Not durable beyond the
    /// processor taking it (one click to ask again). Embedded: never
    /// needed (it always processes), so refused.
    fn queue_retry(&self, event: EventId) -> StoreResult<()>;

    /// The retries other nodes asked for since the last call, oldest
    /// first, removed as they are returned. Embedded: none.
    fn take_retries(&self) -> StoreResult<Vec<EventId>>;
}

/// A dashboard session as the store keeps it (`StateStore::start_session`).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRecord {
    /// Echoed into every state-changing form of this session.
    pub csrf: String,
    pub expires: chrono::DateTime<chrono::Utc>,
}

/// A one-time value waiting in a session for one source's page: a webhook
/// URL is that source's secret, so it is sealed with the secret key, for
/// that source (it opens for no other), never kept in clear.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionFlash {
    pub source: SourceId,
    pub sealed: crate::domain::sealed::SealedSecret,
}

/// What every node uses, and whether it is the value this call proposed
/// (its insert won).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedValue<T> {
    pub value: T,
    pub ours: bool,
}
