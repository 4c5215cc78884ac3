//! The processor: the one background task that takes stored events in
//! arrival order through sniff → map → resolve and writes what it decided.
//!
//! It runs off the request path, so a slow or failing mapping never slows or
//! refuses ingestion. Its position (the cursor: the last event id processed)
//! is committed in the same sled transaction as the batch's event states and
//! counters, so after a crash it resumes exactly where the last committed
//! batch ended. Everything a batch does before that commit is idempotent:
//! identity resolution remembers each event id it resolved, idempotency keys
//! are claimed per event id, and schema statistics are approximate by nature.
//!
//! One task is also the single writer of the identity trees, which is how
//! concurrent events that link the same people end in one profile.

use crate::config::Config;
use crate::domain::counters::{Counters, Counts};
use crate::domain::identity::{self, Blocklist, Identifiers, IdentityTxn, Outcome, ResolveInput};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::CompiledMapping;
use crate::domain::model::{
    ErrorEntry, EventState, EventStatus, Level, MappedEvent, RawEvent, RecordContext, Stage,
};
use crate::domain::replay::ReplayJob;
use crate::domain::sniff::{Drift, SchemaRegistry};
use crate::domain::source::Source;
use crate::http::AppState;
use crate::store::{EventLog, StateStore};
use crate::store::{Location, Logged, Planned, Resolved, UnitError};
use crate::store::{Store, StoreResult};
use chrono::Utc;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How often old events and error-log entries are pruned.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// A saved mapping that does not compile (stored before a limit existed,
/// or written into the store by hand): its events fail with this reason
/// instead of reaching handlebars.
#[derive(Debug)]
pub struct BrokenMapping {
    pub version: u32,
    pub code: &'static str,
    pub reason: String,
}

/// A source's current mapping: compiled, or why it cannot be.
pub type CurrentMapping = Result<Arc<CompiledMapping>, Arc<BrokenMapping>>;

/// Compiled mappings by source, compiled once per version (a mapping that
/// fails to compile is remembered too, so it is not compiled per event).
#[derive(Default)]
pub struct MappingCache {
    by_source: DashMap<SourceId, (u32, CurrentMapping)>,
}

impl MappingCache {
    /// The source's current mapping, compiled (from cache when the version
    /// matches); `None` when a broken one is saved (see [`Self::current_or_broken`]).
    pub fn current(
        &self,
        store: &Store,
        source: &Source,
    ) -> StoreResult<Option<Arc<CompiledMapping>>> {
        Ok(self.current_or_broken(store, source)?.and_then(Result::ok))
    }

    /// The source's current mapping, or why the saved one does not compile.
    pub fn current_or_broken(
        &self,
        store: &Store,
        source: &Source,
    ) -> StoreResult<Option<CurrentMapping>> {
        let Some(version) = source.mapping_version else {
            return Ok(None);
        };
        if let Some(hit) = self
            .by_source
            .get(&source.id)
            .filter(|entry| entry.0 == version)
        {
            return Ok(Some(hit.1.clone()));
        }
        let Some(saved) = store.mapping_version(source.id, version)? else {
            return Ok(None);
        };
        let current = match CompiledMapping::compile(saved.mapping, version) {
            Ok(compiled) => Ok(Arc::new(compiled)),
            Err(errors) => {
                tracing::error!(source = %source.id, version, fields = ?errors.fields, "a saved mapping does not compile; its events fail");
                Err(Arc::new(BrokenMapping {
                    version,
                    code: errors.code.unwrap_or("mapping_invalid"),
                    reason: format!(
                        "mapping version {version} does not compile ({errors}); save a fixed mapping and replay failed events"
                    ),
                }))
            }
        };
        self.by_source.insert(source.id, (version, current.clone()));
        Ok(Some(current))
    }

    /// Installs a freshly saved version.
    pub fn install(&self, source: SourceId, mapping: Arc<CompiledMapping>) {
        self.by_source
            .insert(source, (mapping.version, Ok(mapping)));
    }
}

/// The processor's shared parts.
pub struct Processor {
    store: Store,
    counters: Arc<Counters>,
    config: Arc<Config>,
    stopping: AtomicBool,
    pub schemas: SchemaRegistry,
    pub mappings: MappingCache,
    planner: std::sync::Mutex<PlannerState>,
    /// Committed batches' values, freed by the planner (see `leave_for_planner`).
    garbage: std::sync::Mutex<Vec<Box<dyn Send>>>,
    /// Bumped when a commit fails, which voids batches planned after it.
    epoch: AtomicU64,
}

/// Building up one event's plan: its state, its error-log entries, and
/// the identity work left for the batch transaction.
fn planned(raw: &RawEvent, at: Location) -> Planned {
    Planned {
        event_id: raw.id,
        at,
        state: EventState {
            processed_at: Some(Utc::now()),
            ..EventState::default()
        },
        errors: Vec::new(),
        resolve: None,
        dedupe_key: None,
        index_under: None,
    }
}

fn finish(mut plan: Planned, status: EventStatus) -> Planned {
    plan.state.status = Some(status);
    plan
}

fn fail(mut plan: Planned, raw: &RawEvent, stage: Stage, code: &str, reason: String) -> Planned {
    plan.state.errors.push(reason.clone());
    plan.errors.push(
        ErrorEntry::new(Some(raw.source_id), stage, Level::Error, code, reason).with_event(raw.id),
    );
    finish(plan, EventStatus::Failed)
}

fn warn(plan: &mut Planned, raw: &RawEvent, stage: Stage, code: &str, message: String) {
    plan.state.warnings.push(message.clone());
    plan.errors.push(
        ErrorEntry::new(Some(raw.source_id), stage, Level::Warning, code, message)
            .with_event(raw.id),
    );
}

/// Folds the resolver's outcome into an event's state (inside the batch
/// transaction: pure, may run again on a retry).
fn resolve_identity(
    txn: &dyn IdentityTxn<Error = UnitError>,
    plan: &Planned,
) -> Result<Resolved, UnitError> {
    let mut resolved = Resolved::as_planned(plan);
    if let Some((input, blocklist)) = &plan.resolve {
        let outcome = identity::resolve(txn, input, blocklist)?;
        fold_outcome(plan, &mut resolved.state, &mut resolved.errors, &outcome);
    }
    Ok(resolved)
}

fn fold_outcome(
    plan: &Planned,
    state: &mut EventState,
    entries: &mut Vec<ErrorEntry>,
    outcome: &Outcome,
) {
    let source = plan.resolve.as_ref().map(|(input, _)| input.source_id);
    for refusal in &outcome.refusals {
        let message = format!(
            "{} `{}` dropped: {}",
            refusal.kind.as_str(),
            refusal.value,
            refusal.reason.as_str()
        );
        state.warnings.push(message.clone());
        entries.push(
            ErrorEntry::new(
                source,
                Stage::Identity,
                Level::Warning,
                refusal.reason.as_str(),
                message,
            )
            .with_event(plan.event_id),
        );
    }
    state.warnings.extend(outcome.warnings.iter().cloned());
    state.profile_id = outcome.profile_id;
    state.resolution = Some(outcome.summary());
}

/// Idempotency keys claimed by events not committed yet: the batch being
/// planned, and the one before it (which the committer may still be
/// writing). The store knows every older claim.
#[derive(Default)]
struct Claims {
    previous: HashMap<Vec<u8>, EventId>,
    current: HashMap<Vec<u8>, EventId>,
}

impl Claims {
    fn get(&self, key: &[u8]) -> Option<EventId> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .copied()
    }

    fn insert(&mut self, key: Vec<u8>, event: EventId) {
        self.current.insert(key, event);
    }

    /// Drops the claims of an event that was not planned after all.
    fn release(&mut self, event: EventId) {
        self.current.retain(|_, holder| *holder != event);
    }

    /// A new batch starts: the last one's claims become `previous`, and the
    /// one before it is committed (the committer took the last batch only
    /// after finishing it).
    fn next_batch(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

/// A batch of new events, mapped and ready for the committer.
struct PlannedBatch {
    events: Vec<Logged>,
    plans: Vec<Planned>,
    last: (EventId, Location),
    /// The planner's epoch when it was planned (see `Processor::forget_planned`).
    epoch: u64,
}

/// What the planner keeps between batches.
#[derive(Default)]
struct PlannerState {
    /// The last event handed to the committer (ahead of the committed cursor).
    taken: Option<EventId>,
    claims: Claims,
}

/// Status transitions of a batch, applied to a copy of the counters first
/// and to the live ones only after the commit.
#[derive(Default)]
struct Tally(HashMap<SourceId, Counts>);

impl Tally {
    fn record(
        &mut self,
        counters: &Counters,
        source: SourceId,
        from: Option<EventStatus>,
        to: EventStatus,
    ) {
        self.0
            .entry(source)
            .or_insert_with(|| counters.counts(source))
            .record(from, to);
    }

    fn apply(self, counters: &Counters) {
        for (source, counts) in self.0 {
            counters.set(source, counts);
        }
    }
}

/// Sources looked up once per batch, with their identifier blocklists.
#[derive(Default)]
struct SourceMemo(HashMap<SourceId, Option<(Source, Arc<Blocklist>)>>);

impl SourceMemo {
    fn get(
        &mut self,
        store: &Store,
        id: SourceId,
    ) -> StoreResult<Option<&(Source, Arc<Blocklist>)>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(id) {
            let loaded = store.source(id)?.map(|s| {
                let blocklist = Arc::new(Blocklist::with_extra(&s.blocked_values));
                (s, blocklist)
            });
            slot.insert(loaded);
        }
        Ok(self.0.get(&id).and_then(Option::as_ref))
    }
}

impl Processor {
    pub fn new(store: Store, counters: Arc<Counters>, config: Arc<Config>) -> StoreResult<Self> {
        let schemas = SchemaRegistry::new();
        for (source, bytes) in store.schemas()? {
            match serde_json::from_slice(&bytes) {
                Ok(schema) => schemas.load(source, schema),
                Err(e) => {
                    tracing::warn!(%source, error = %e, "ignoring an unreadable schema snapshot")
                }
            }
        }
        Ok(Self {
            store,
            counters,
            config,
            stopping: AtomicBool::new(false),
            schemas,
            mappings: MappingCache::default(),
            planner: std::sync::Mutex::default(),
            garbage: std::sync::Mutex::default(),
            epoch: AtomicU64::new(0),
        })
    }

    /// Asks the loop to stop after its current batch.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Processes the next batch of new events on this thread (plan, then
    /// commit); returns how many it took. The server pipelines the two
    /// halves instead (see `run`).
    #[cfg(test)]
    fn process_batch(&self) -> StoreResult<usize> {
        match self.plan_next()? {
            Some(batch) => {
                let taken = batch.events.len();
                self.commit_planned(batch)?;
                Ok(taken)
            }
            None => Ok(0),
        }
    }

    /// Sniffs and maps the next durable events after those already handed
    /// to the committer.
    fn plan_next(&self) -> StoreResult<Option<PlannedBatch>> {
        let garbage = self
            .garbage
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default();
        drop(garbage);
        let mut planner = match self.planner.lock() {
            Ok(planner) => planner,
            // A panic while planning: start again from the committed cursor.
            Err(poisoned) => {
                let mut planner = poisoned.into_inner();
                *planner = PlannerState::default();
                self.planner.clear_poison();
                planner
            }
        };
        let upto = self.store.processed_upto()?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        // After a failed commit the committer drops what was planned past
        // it; start again from what is committed.
        if planner.taken < upto {
            planner.taken = upto;
        }
        let events = self
            .store
            .next_pending(planner.taken, self.config.processor_batch)?;
        let Some(last) = events.last().map(|e| (e.raw.id, e.at)) else {
            return Ok(None);
        };
        planner.claims.next_batch();
        let mut memo = SourceMemo::default();
        let mut plans = Vec::with_capacity(events.len());
        for event in &events {
            let raw = &event.raw;
            let span = tracing::debug_span!("process", event = %raw.id, source = %raw.source_id);
            let _enter = span.enter();
            let source = memo.get(&self.store, raw.source_id)?;
            let mut plan = self.plan_contained(raw, event.at, source, &mut planner.claims)?;
            plan.index_under = Some(raw.source_id);
            plans.push(plan);
        }
        planner.taken = Some(last.0);
        Ok(Some(PlannedBatch {
            events,
            plans,
            last,
            epoch,
        }))
    }

    /// Writes a planned batch (identity, states, cursor, counters) and lets
    /// its events leave the queue.
    fn commit_planned(&self, batch: PlannedBatch) -> StoreResult<()> {
        let PlannedBatch {
            events,
            plans,
            last,
            ..
        } = batch;
        if let Err(e) = self.commit_new(&events, &plans, last) {
            tracing::warn!(error = %e, "batch commit failed; committing its events one by one");
            if let Err(e) = self.commit_one_by_one(&events, plans) {
                // Nothing past the committed cursor is kept: the planner
                // starts again from it.
                self.forget_planned();
                return Err(e);
            }
        } else {
            self.leave_for_planner(plans);
        }
        self.leave_for_planner(events);
        self.store.pending_done(last.0)?;
        self.persist_schemas()
    }

    /// Hands a committed batch's values to the planner to free: the
    /// committer is the processor's bottleneck, and freeing ~1,000 small
    /// trees of JSON values per batch was 10% of its time (measured).
    fn leave_for_planner<T: Send + 'static>(&self, values: Vec<T>) {
        if let Ok(mut garbage) = self.garbage.lock() {
            garbage.push(Box::new(values));
        }
    }

    /// After a failed commit: batches planned past it are void (the
    /// committer skips them) and the planner starts again from the
    /// committed cursor. Both happen under the planner's lock, so a batch
    /// being planned meanwhile carries the old epoch.
    fn forget_planned(&self) {
        let mut planner = self.planner.lock().unwrap_or_else(|poisoned| {
            self.planner.clear_poison();
            poisoned.into_inner()
        });
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *planner = PlannerState::default();
    }

    fn is_current(&self, batch: &PlannedBatch) -> bool {
        batch.epoch == self.epoch.load(Ordering::SeqCst)
    }

    /// Commits first-time plans with the cursor at `last`, then counts them.
    fn commit_new(
        &self,
        events: &[Logged],
        plans: &[Planned],
        last: (EventId, Location),
    ) -> StoreResult<()> {
        let mut tally = Tally::default();
        for (event, plan) in events.iter().zip(plans) {
            tally.record(&self.counters, event.raw.source_id, None, status_of(plan));
        }
        self.store
            .commit_batch(plans, Some(last), &tally.0, resolve_identity)?;
        tally.apply(&self.counters);
        Ok(())
    }

    /// The fallback when a whole batch cannot commit (say one event meets a
    /// profile sled cannot read): each event alone, and an event that still
    /// fails is stored as `failed` with the reason, so one bad event never
    /// wedges the pipeline. Only a store that refuses even that stops it.
    fn commit_one_by_one(&self, events: &[Logged], plans: Vec<Planned>) -> StoreResult<()> {
        for (event, plan) in events.iter().zip(plans) {
            let (raw, single) = (&event.raw, std::slice::from_ref(event));
            let last = (raw.id, event.at);
            if let Err(e) = self.commit_new(single, std::slice::from_ref(&plan), last) {
                tracing::error!(event = %raw.id, error = %e, "event could not be committed; marking it failed");
                let reason = format!(
                    "identity resolution could not be stored ({e}); replay failed events once the cause is fixed"
                );
                let mut failed = fail(
                    planned(raw, event.at),
                    raw,
                    Stage::Identity,
                    "commit_failed",
                    reason,
                );
                failed.index_under = Some(raw.source_id);
                self.commit_new(single, std::slice::from_ref(&failed), last)?;
            }
        }
        Ok(())
    }

    fn persist_schemas(&self) -> StoreResult<()> {
        self.schemas
            .persist_dirty(|source, schema| self.store.put_schema(source, &encode_schema(schema)?))
    }

    /// Drops an erasure's values from the learned schemas and writes the
    /// changed ones out; returns how many examples and paths went.
    pub fn redact_schemas(&self, needles: &crate::domain::redact::Needles) -> StoreResult<usize> {
        self.schemas
            .redact(&|text| needles.is_match(text), |source, schema| {
                self.store.put_schema(source, &encode_schema(schema)?)
            })
    }

    /// [`Self::plan`] with a panic contained to the event: it is marked
    /// `failed` (`internal_panic`) and the batch goes on. What the planner
    /// keeps stays consistent: the event's idempotency claim, if it made one,
    /// is released, and the schema registry recovers its lock from poison.
    fn plan_contained(
        &self,
        raw: &RawEvent,
        at: Location,
        source: Option<&(Source, Arc<Blocklist>)>,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let planned_event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan(raw, at, source, claimed)
        }));
        match planned_event {
            Ok(result) => result,
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(event = %raw.id, panic = ?what, "processing an event panicked; it is marked failed");
                claimed.release(raw.id);
                Ok(fail(
                    planned(raw, at),
                    raw,
                    Stage::Map,
                    "internal_panic",
                    format!(
                        "processing this event hit an internal error ({what}); it was not mapped"
                    ),
                ))
            }
        }
    }

    /// One new event through sniff → map, leaving resolution to the batch.
    fn plan(
        &self,
        raw: &RawEvent,
        at: Location,
        source: Option<&(Source, Arc<Blocklist>)>,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let mut plan = planned(raw, at);
        #[cfg(test)]
        if raw.payload.get(TEST_PANIC).is_some() {
            panic!("a test asked this event to panic");
        }
        if let Some(reason) = &raw.not_mappable {
            return Ok(fail(
                plan,
                raw,
                Stage::Records,
                "not_mappable",
                reason.clone(),
            ));
        }
        for drift in self
            .schemas
            .observe(raw.source_id, &raw.payload, raw.received_at)
        {
            note_drift(&mut plan, raw, &drift);
        }
        let Some((source, blocklist)) = source else {
            plan.state
                .warnings
                .push("the source was deleted before this event was processed".into());
            return Ok(finish(plan, EventStatus::Unmapped));
        };
        match self.mappings.current_or_broken(&self.store, source)? {
            None => Ok(finish(plan, EventStatus::Unmapped)),
            Some(Ok(mapping)) => self.plan_mapped(plan, raw, source, blocklist, &mapping, claimed),
            Some(Err(broken)) => Ok(fail(
                plan,
                raw,
                Stage::Map,
                broken.code,
                broken.reason.clone(),
            )),
        }
    }

    /// Maps with `mapping` and plans the identity resolution (also used by replay).
    fn plan_mapped(
        &self,
        mut plan: Planned,
        raw: &RawEvent,
        source: &Source,
        blocklist: &Arc<Blocklist>,
        mapping: &CompiledMapping,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let mapped = match mapping.apply(&record_context(raw)) {
            Ok(mapped) => mapped,
            Err(e) => return Ok(fail(plan, raw, Stage::Map, e.code(), e.to_string())),
        };
        for warning in mapped.warnings {
            warn(&mut plan, raw, Stage::Map, "map_warning", warning);
        }
        if let Some(warning) = mapped.clamped_timestamp {
            warn(&mut plan, raw, Stage::Map, "timestamp_in_future", warning);
        }
        let event = mapped.event;
        if let Some(key) = &event.idempotency_key {
            let dedupe_key = [source.id.to_bytes().as_slice(), key.as_bytes()].concat();
            let holder = match claimed.get(&dedupe_key) {
                Some(holder) => Some(holder),
                None => self.store.dedupe_holder(&dedupe_key)?,
            };
            if let Some(holder) = holder.filter(|h| *h != raw.id) {
                plan.state.warnings.push(format!(
                    "redelivery of event {holder} (idempotency key `{key}`): kept, not counted again"
                ));
                plan.state.mapped = Some(Arc::new(event));
                return Ok(finish(plan, EventStatus::Duplicate));
            }
            claimed.insert(dedupe_key.clone(), raw.id);
            plan.dedupe_key = Some(dedupe_key);
        }
        plan.resolve = Some((resolve_input(raw, source, &event), blocklist.clone()));
        plan.state.mapped = Some(Arc::new(event));
        Ok(finish(plan, EventStatus::Resolved))
    }

    /// Runs a batch of the oldest open replay job; returns events examined.
    fn replay_batch(&self) -> StoreResult<usize> {
        let Some(mut job) = self.store.open_replays()?.into_iter().next() else {
            return Ok(0);
        };
        let batch = self.config.processor_batch;
        let ids = self
            .store
            .source_event_ids(job.source_id, job.after, batch)?;
        let mut memo = SourceMemo::default();
        let source = memo.get(&self.store, job.source_id)?;
        let mapping = match source {
            Some((s, _)) => self.mappings.current(&self.store, s)?,
            None => None,
        };
        let (Some((source, blocklist)), Some(mapping)) = (source, mapping) else {
            finish_replay(&mut job);
            self.store.put_replay(&job)?;
            return Ok(0);
        };
        let mut claimed = Claims::default();
        let mut tally = Tally::default();
        let mut plans = Vec::new();
        for id in &ids {
            let Some((event, at)) = self.store.located_event(*id)? else {
                continue;
            };
            if event.status() != job.status {
                continue;
            }
            let plan = self.plan_mapped(
                planned(&event.raw, at),
                &event.raw,
                source,
                blocklist,
                &mapping,
                &mut claimed,
            )?;
            tally.record(
                &self.counters,
                job.source_id,
                Some(job.status),
                status_of(&plan),
            );
            plans.push(plan);
            job.done += 1;
        }
        self.store
            .commit_batch(&plans, None, &tally.0, resolve_identity)?;
        tally.apply(&self.counters);
        job.after = ids.last().copied().or(job.after);
        if ids.len() < batch {
            finish_replay(&mut job);
        }
        self.store.put_replay(&job)?;
        Ok(ids.len().max(1))
    }

    /// Starts (or restarts) a replay of one status for a source.
    pub fn start_replay(&self, source: SourceId, status: EventStatus) -> StoreResult<ReplayJob> {
        let counts = self.counters.view(source);
        let total = match status {
            EventStatus::Failed => counts.failed,
            EventStatus::Unmapped => counts.unmapped,
            _ => 0,
        };
        let job = ReplayJob {
            source_id: source,
            status,
            after: None,
            total,
            done: 0,
            started_at: Utc::now(),
            finished_at: None,
        };
        self.store.put_replay(&job)?;
        Ok(job)
    }

    /// A dry run of mapping + resolution for the preview: stores nothing.
    pub fn preview(
        &self,
        source: &Source,
        mapping: &CompiledMapping,
        raw: &RawEvent,
    ) -> StoreResult<serde_json::Value> {
        let ctx = record_context(raw);
        let mapped = match mapping.apply(&ctx) {
            Ok(mapped) => mapped,
            Err(e) => {
                return Ok(
                    serde_json::json!({"event": null, "error": e.to_string(), "warnings": []}),
                )
            }
        };
        let event = mapped.event;
        let input = resolve_input(raw, source, &event);
        let blocklist = Blocklist::with_extra(&source.blocked_values);
        let outcome = self.store.resolve_preview(&input, &blocklist)?;
        let mut warnings = mapped.warnings;
        warnings.extend(mapped.clamped_timestamp);
        warnings.extend(outcome.refusals.iter().map(|r| r.warning()));
        Ok(serde_json::json!({
            "event": event,
            "resolution": outcome.summary(),
            "profile_id": outcome.profile_id,
            "warnings": warnings,
        }))
    }

    fn maintain(&self) -> StoreResult<()> {
        let events = self.store.prune_events(self.config.event_retention)?;
        let errors = self.store.prune_errors(self.config.error_retention)?;
        if events + errors > 0 {
            tracing::info!(events, errors, "pruned beyond retention");
        }
        Ok(())
    }
}

/// A payload field that makes `plan` panic, in unit tests only.
#[cfg(test)]
const TEST_PANIC: &str = "__inlet_test_panic";

/// The text of a panic's payload (`panic!` gives `&str` or `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What templates see for a stored event.
fn record_context(raw: &RawEvent) -> RecordContext<'_> {
    RecordContext {
        record: &raw.payload,
        envelope: raw.envelope.as_deref(),
        headers: &raw.headers,
        received_at: raw.received_at,
    }
}

/// What the resolver needs from a mapped event.
fn resolve_input(raw: &RawEvent, source: &Source, event: &MappedEvent) -> ResolveInput {
    ResolveInput {
        event_id: raw.id,
        source_id: source.id,
        at: event.timestamp,
        ids: Identifiers {
            external_id: event.external_id.clone(),
            email: event.email.clone(),
            visitor_id: event.visitor_id.clone(),
        },
        traits: event.traits.clone(),
    }
}

fn status_of(plan: &Planned) -> EventStatus {
    plan.state.status.unwrap_or(EventStatus::Failed)
}

fn note_drift(out: &mut Planned, raw: &RawEvent, drift: &Drift) {
    let code = match drift.kind {
        crate::domain::sniff::DriftKind::NewPath => "schema_new_path",
        crate::domain::sniff::DriftKind::TypeChange => "schema_type_change",
    };
    let message = format!("schema drift at `{}`: {}", drift.path, drift.detail);
    let excerpt = drift.example.as_ref().map(|e| e.to_string());
    out.errors.push(
        ErrorEntry::new(
            Some(raw.source_id),
            Stage::Sniff,
            Level::Warning,
            code,
            message,
        )
        .with_excerpt(excerpt)
        .with_event(raw.id),
    );
}

fn finish_replay(job: &mut ReplayJob) {
    job.finished_at = Some(Utc::now());
}

/// Work for the committer thread.
enum Work {
    /// A planned batch of new events, and when its planning started.
    Batch(PlannedBatch, Instant),
    /// Answered once everything sent before it is committed.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// The committer: the one thread that writes processed events. It commits
/// batch N while the planner sniffs and maps batch N+1 on another thread, so
/// the processor uses two cores (measured: see docs/performance.md). It ends
/// when the planner drops its sender, after the batch in hand.
fn commit_loop(processor: &Processor, metrics: &crate::metrics::Metrics, work: Receiver<Work>) {
    for item in work {
        match item {
            Work::Batch(batch, started) => {
                if !processor.is_current(&batch) {
                    continue; // planned past a commit that failed: replanned
                }
                let events = batch.events.len();
                let span = tracing::info_span!("processor_commit", events);
                let _enter = span.enter();
                // A panic must not end the only writer: it is logged, the
                // batch is replanned from the committed cursor, and work goes on.
                let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    processor.commit_planned(batch)
                }));
                match committed {
                    Ok(Ok(())) => metrics.batch_processed(events, started.elapsed()),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "processor batch failed; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(_) => {
                        tracing::error!("processor batch panicked; retrying");
                        processor.forget_planned();
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
            Work::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// Waits until the committer has written everything sent so far, so the
/// caller may write too (replay, retention) without a second writer.
fn quiesce(work: &SyncSender<Work>) -> StoreResult<()> {
    let stopped = || crate::store::StoreError::Stopped("the committer");
    let (done, wait) = std::sync::mpsc::channel();
    work.send(Work::Barrier(done)).map_err(|_| stopped())?;
    wait.recv().map_err(|_| stopped())
}

/// One step of the planner: plan the next batch and hand it over; with
/// nothing new, run a batch of replay once the committer is idle. Returns
/// how many events it took (0: nothing to do).
fn plan_step(processor: &Processor, work: &SyncSender<Work>) -> StoreResult<usize> {
    let started = Instant::now();
    if let Some(batch) = processor.plan_next()? {
        let taken = batch.events.len();
        work.send(Work::Batch(batch, started))
            .map_err(|_| crate::store::StoreError::Stopped("the committer"))?;
        return Ok(taken);
    }
    quiesce(work)?;
    processor.replay_batch()
}

/// The loop: plan new events in batches for the committer, then replay
/// jobs, then sleep until new events arrive.
pub async fn run(state: AppState) {
    let processor = state.processor.clone();
    let (work, queue) = std::sync::mpsc::sync_channel::<Work>(0);
    let committer = {
        let (p, metrics) = (processor.clone(), state.metrics.clone());
        std::thread::Builder::new()
            .name("inlet-committer".into())
            .spawn(move || commit_loop(&p, &metrics, queue))
    };
    let committer = match committer {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!(error = %e, "could not start the processor's committer thread");
            return;
        }
    };
    let mut last_maintenance = Instant::now();
    loop {
        let (p, w) = (processor.clone(), work.clone());
        let span = tracing::info_span!("processor_batch");
        let result = tokio::task::spawn_blocking(move || plan_step(&p, &w))
            .instrument(span)
            .await;
        let taken = match result {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "processor batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "processor batch panicked; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                0
            }
        };
        if processor.stopping() {
            break;
        }
        if last_maintenance.elapsed() > MAINTENANCE_EVERY {
            last_maintenance = Instant::now();
            let (p, w) = (processor.clone(), work.clone());
            let maintained = tokio::task::spawn_blocking(move || {
                quiesce(&w)?;
                p.maintain()
            })
            .await;
            if let Ok(Err(e)) = maintained {
                tracing::error!(error = %e, "maintenance failed");
            }
        }
        if taken == 0 {
            tokio::select! {
                _ = state.new_events.notified() => {},
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            }
        }
    }
    // The committer finishes the batch in hand, then sees the channel close.
    drop(work);
    let _ = tokio::task::spawn_blocking(move || committer.join()).await;
}

/// A schema as stored. An error here is a bug, and must not store an empty
/// schema in place of the learned one.
fn encode_schema(schema: &impl serde::Serialize) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(schema).map_err(|source| crate::store::StoreError::Encode {
        what: "a schema",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::{IdentKey, IdentKind};
    use crate::domain::ids::ProfileId;
    use crate::domain::model::MappingSpec;
    use serde_json::json;

    fn raw(source: SourceId, email: &str) -> RawEvent {
        RawEvent::received(source, json!({"type": "order", "email": email}))
    }

    #[test]
    fn one_event_that_cannot_be_committed_fails_alone_and_the_pipeline_goes_on() {
        let store = Store::temporary().unwrap();
        let config = Arc::new(Config::for_data_dir("/nonexistent"));
        let processor = Processor::new(store.clone(), Arc::default(), config).unwrap();
        let (source, _) = Source::create("shop", None, None).unwrap();
        store.put_source(&source).unwrap();
        let spec = MappingSpec {
            event_name: Some("{{type}}".into()),
            email: Some("{{email}}".into()),
            ..MappingSpec::default()
        };
        store.save_mapping(source.id, &spec, None).unwrap();
        // A profile sled holds but cannot be read, owning one email.
        let broken = ProfileId::new();
        let key = IdentKey::new(IdentKind::Email, "broken@example.org");
        store
            .trees
            .ident
            .insert(key.to_key_bytes(), &broken.to_bytes()[..])
            .unwrap();
        store
            .trees
            .profiles
            .insert(broken.to_bytes(), &b"not json"[..])
            .unwrap();
        let events = vec![
            raw(source.id, "ann@example.org"),
            raw(source.id, "broken@example.org"),
            raw(source.id, "bob@example.org"),
        ];
        let events = store.append_events(events).unwrap();
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 3);

        let status = |i: usize| store.event(events[i].id).unwrap().unwrap().status();
        assert_eq!(status(0), EventStatus::Resolved);
        assert_eq!(status(1), EventStatus::Failed);
        assert_eq!(status(2), EventStatus::Resolved);
        assert_eq!(store.cursor().unwrap(), Some(events[2].id));
        let counts = processor.counters.counts(source.id);
        assert_eq!((counts.resolved, counts.failed), (2, 1));
    }

    fn processor_with_mapping(spec: MappingSpec) -> (Store, Processor, Source) {
        let store = Store::temporary().unwrap();
        let config = Arc::new(Config::for_data_dir("/nonexistent"));
        let processor = Processor::new(store.clone(), Arc::default(), config).unwrap();
        let (source, _) = Source::create("shop", None, None).unwrap();
        store.put_source(&source).unwrap();
        // Straight into the store: no API validation, as a mapping saved
        // before the template limits existed.
        store.save_mapping(source.id, &spec, None).unwrap();
        (store, processor, source)
    }

    fn error_codes(store: &Store, event: EventId) -> Vec<String> {
        let filter = crate::store::ErrorFilter {
            stage: Some(Stage::Map),
            limit: 100,
            ..Default::default()
        };
        store
            .errors_page(&filter)
            .unwrap()
            .into_iter()
            .filter(|e| e.event_id == Some(event))
            .map(|e| e.code)
            .collect()
    }

    #[test]
    fn a_panic_in_one_event_fails_that_event_and_the_batch_goes_on() {
        let (store, processor, source) = processor_with_mapping(MappingSpec {
            event_name: Some("{{type}}".into()),
            email: Some("{{email}}".into()),
            event_id: Some("{{email}}".into()),
            ..MappingSpec::default()
        });
        let mut panicking = raw(source.id, "bob@example.org");
        panicking.payload[TEST_PANIC] = json!(true);
        let events = store
            .append_events(vec![
                raw(source.id, "ann@example.org"),
                panicking,
                raw(source.id, "bob@example.org"),
            ])
            .unwrap();
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 3);

        let status = |i: usize| store.event(events[i].id).unwrap().unwrap().status();
        assert_eq!(status(0), EventStatus::Resolved);
        assert_eq!(status(1), EventStatus::Failed);
        // Same idempotency key as the panicking one: no claim was left behind.
        assert_eq!(status(2), EventStatus::Resolved);
        assert_eq!(error_codes(&store, events[1].id), vec!["internal_panic"]);
    }

    #[test]
    fn a_stored_mapping_that_breaks_a_limit_fails_its_events() {
        let deep = format!("{}x{}", "{{#if a}}".repeat(5000), "{{/if}}".repeat(5000));
        let (store, processor, source) = processor_with_mapping(MappingSpec {
            event_name: Some(deep),
            email: Some("{{email}}".into()),
            ..MappingSpec::default()
        });
        let events = store
            .append_events(vec![
                raw(source.id, "ann@example.org"),
                raw(source.id, "b@x.org"),
            ])
            .unwrap();
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 2);

        for event in &events {
            let stored = store.event(event.id).unwrap().unwrap();
            assert_eq!(stored.status(), EventStatus::Failed);
            assert_eq!(error_codes(&store, event.id), vec!["template_too_deep"]);
        }
    }
}
