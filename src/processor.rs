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

use crate::app::AppState;
use crate::config::Config;
use crate::counters::{Counters, Counts};
use crate::identity::{Blocklist, Identifiers, ResolveInput};
use crate::ids::SourceId;
use crate::mapping::CompiledMapping;
use crate::model::{ErrorEntry, EventState, EventStatus, Level, RawEvent, RecordContext, Stage};
use crate::sniff::{Drift, SchemaRegistry};
use crate::source::Source;
use crate::store::events::StateUpdate;
use crate::store::mappings::ReplayJob;
use crate::store::{Store, StoreResult};
use chrono::Utc;
use dashmap::DashMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How often old events and error-log entries are pruned.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// Compiled mappings by source, compiled once per version.
#[derive(Default)]
pub struct MappingCache {
    by_source: DashMap<SourceId, Arc<CompiledMapping>>,
}

impl MappingCache {
    /// The source's current mapping, compiled (from cache when the version matches).
    pub fn current(
        &self,
        store: &Store,
        source: &Source,
    ) -> StoreResult<Option<Arc<CompiledMapping>>> {
        let Some(version) = source.mapping_version else {
            return Ok(None);
        };
        if let Some(hit) = self
            .by_source
            .get(&source.id)
            .filter(|m| m.version == version)
        {
            return Ok(Some(hit.clone()));
        }
        let Some(saved) = store.mapping_version(source.id, version)? else {
            return Ok(None);
        };
        match CompiledMapping::compile(saved.mapping, version) {
            Ok(compiled) => {
                let compiled = Arc::new(compiled);
                self.by_source.insert(source.id, compiled.clone());
                Ok(Some(compiled))
            }
            Err(fields) => {
                tracing::error!(source = %source.id, ?fields, "a saved mapping no longer compiles");
                Ok(None)
            }
        }
    }

    /// Installs a freshly saved version.
    pub fn install(&self, source: SourceId, mapping: Arc<CompiledMapping>) {
        self.by_source.insert(source, mapping);
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
}

/// What processing one event produced.
pub struct Processed {
    pub state: EventState,
    pub errors: Vec<ErrorEntry>,
}

impl Processed {
    fn new() -> Self {
        Self {
            state: EventState {
                processed_at: Some(Utc::now()),
                ..EventState::default()
            },
            errors: Vec::new(),
        }
    }

    fn finish(mut self, status: EventStatus) -> Self {
        self.state.status = Some(status);
        self
    }

    fn fail(mut self, raw: &RawEvent, stage: Stage, code: &str, reason: String) -> Self {
        self.state.errors.push(reason.clone());
        self.errors.push(
            ErrorEntry::new(Some(raw.source_id), stage, Level::Error, code, reason)
                .with_event(raw.id),
        );
        self.finish(EventStatus::Failed)
    }

    fn warn(&mut self, raw: &RawEvent, stage: Stage, code: &str, message: String) {
        self.state.warnings.push(message.clone());
        self.errors.push(
            ErrorEntry::new(Some(raw.source_id), stage, Level::Warning, code, message)
                .with_event(raw.id),
        );
    }
}

/// Sources looked up once per batch, with their identifier blocklists.
#[derive(Default)]
struct SourceMemo(HashMap<SourceId, Option<(Source, Blocklist)>>);

impl SourceMemo {
    fn get(&mut self, store: &Store, id: SourceId) -> StoreResult<Option<&(Source, Blocklist)>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(id) {
            let loaded = store.source(id)?.map(|s| {
                let blocklist = Blocklist::with_extra(&s.blocked_values);
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
        })
    }

    /// Asks the loop to stop after its current batch.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Processes the next batch of new events; returns how many it took.
    fn process_batch(&self) -> StoreResult<usize> {
        let cursor = self.store.cursor()?;
        let events = self
            .store
            .events_after(cursor, self.config.processor_batch)?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        let mut memo = SourceMemo::default();
        let mut updates = Vec::with_capacity(events.len());
        let mut touched: HashMap<SourceId, Counts> = HashMap::new();
        for raw in &events {
            let span = tracing::debug_span!("process", event = %raw.id, source = %raw.source_id);
            let _enter = span.enter();
            let source = memo.get(&self.store, raw.source_id)?;
            let processed = self.process(raw, source)?;
            self.record(raw, None, processed, &mut updates, &mut touched)?;
        }
        self.store.commit_batch(&updates, Some(last), &touched)?;
        self.persist_schemas()?;
        Ok(events.len())
    }

    fn record(
        &self,
        raw: &RawEvent,
        from: Option<EventStatus>,
        processed: Processed,
        updates: &mut Vec<StateUpdate>,
        touched: &mut HashMap<SourceId, Counts>,
    ) -> StoreResult<()> {
        for entry in &processed.errors {
            self.store.log_error(entry)?;
        }
        let status = processed.state.status.unwrap_or(EventStatus::Failed);
        touched.insert(
            raw.source_id,
            self.counters.record(raw.source_id, from, status),
        );
        updates.push(StateUpdate {
            event_id: raw.id,
            state: processed.state,
        });
        Ok(())
    }

    fn persist_schemas(&self) -> StoreResult<()> {
        for (source, schema) in self.schemas.take_dirty() {
            let bytes = serde_json::to_vec(&schema).unwrap_or_default();
            self.store.put_schema(source, &bytes)?;
        }
        Ok(())
    }

    /// One new event through sniff → map → resolve.
    fn process(
        &self,
        raw: &RawEvent,
        source: Option<&(Source, Blocklist)>,
    ) -> StoreResult<Processed> {
        let mut out = Processed::new();
        if let Some(reason) = &raw.not_mappable {
            return Ok(out.fail(raw, Stage::Records, "not_mappable", reason.clone()));
        }
        for drift in self
            .schemas
            .observe(raw.source_id, &raw.payload, raw.received_at)
        {
            note_drift(&mut out, raw, &drift);
        }
        let Some((source, blocklist)) = source else {
            out.state
                .warnings
                .push("the source was deleted before this event was processed".into());
            return Ok(out.finish(EventStatus::Unmapped));
        };
        match self.mappings.current(&self.store, source)? {
            None => Ok(out.finish(EventStatus::Unmapped)),
            Some(mapping) => self.map_and_resolve(out, raw, source, blocklist, &mapping),
        }
    }

    /// Map with `mapping`, then resolve the identity (also used by replay).
    fn map_and_resolve(
        &self,
        mut out: Processed,
        raw: &RawEvent,
        source: &Source,
        blocklist: &Blocklist,
        mapping: &CompiledMapping,
    ) -> StoreResult<Processed> {
        let ctx = RecordContext {
            record: &raw.payload,
            envelope: raw.envelope.as_ref(),
            headers: &raw.headers,
            received_at: raw.received_at,
        };
        let mapped = match mapping.apply(&ctx) {
            Ok(mapped) => mapped,
            Err(e) => return Ok(out.fail(raw, Stage::Map, "map_failed", e.to_string())),
        };
        for warning in mapped.warnings {
            out.warn(raw, Stage::Map, "map_warning", warning);
        }
        let event = mapped.event;
        if let Some(key) = &event.idempotency_key {
            let holder = self.store.claim_dedupe(source.id, key, raw.id)?;
            if holder != raw.id {
                out.state.warnings.push(format!(
                    "redelivery of event {holder} (idempotency key `{key}`): kept, not counted again"
                ));
                out.state.mapped = Some(event);
                return Ok(out.finish(EventStatus::Duplicate));
            }
        }
        let input = ResolveInput {
            event_id: raw.id,
            source_id: source.id,
            at: event.timestamp,
            ids: Identifiers {
                external_id: event.external_id.clone(),
                email: event.email.clone(),
                visitor_id: event.visitor_id.clone(),
            },
            traits: event.traits.clone(),
        };
        out.state.mapped = Some(event);
        let outcome = match self.store.resolve(&input, blocklist) {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(error = %e, "identity resolution failed");
                return Ok(out.fail(
                    raw,
                    Stage::Identity,
                    "resolve_failed",
                    "identity resolution failed (storage error); replay failed events to retry"
                        .into(),
                ));
            }
        };
        for refusal in &outcome.refusals {
            out.warn(
                raw,
                Stage::Identity,
                refusal.reason.as_str(),
                format!(
                    "{} `{}` dropped: {}",
                    refusal.kind.as_str(),
                    refusal.value,
                    refusal.reason.as_str()
                ),
            );
        }
        out.state.warnings.extend(outcome.warnings.iter().cloned());
        out.state.profile_id = outcome.profile_id;
        out.state.resolution = Some(outcome.summary());
        Ok(out.finish(EventStatus::Resolved))
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
        let mut updates = Vec::new();
        let mut touched = HashMap::new();
        for id in &ids {
            let Some(event) = self.store.event(*id)? else {
                continue;
            };
            if event.status() != job.status {
                continue;
            }
            let processed =
                self.map_and_resolve(Processed::new(), &event.raw, source, blocklist, &mapping)?;
            self.record(
                &event.raw,
                Some(job.status),
                processed,
                &mut updates,
                &mut touched,
            )?;
            job.done += 1;
        }
        self.store.commit_batch(&updates, None, &touched)?;
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
        let ctx = RecordContext {
            record: &raw.payload,
            envelope: raw.envelope.as_ref(),
            headers: &raw.headers,
            received_at: raw.received_at,
        };
        let mapped = match mapping.apply(&ctx) {
            Ok(mapped) => mapped,
            Err(e) => {
                return Ok(
                    serde_json::json!({"event": null, "error": e.to_string(), "warnings": []}),
                )
            }
        };
        let event = mapped.event;
        let input = ResolveInput {
            event_id: raw.id,
            source_id: source.id,
            at: event.timestamp,
            ids: Identifiers {
                external_id: event.external_id.clone(),
                email: event.email.clone(),
                visitor_id: event.visitor_id.clone(),
            },
            traits: event.traits.clone(),
        };
        let blocklist = Blocklist::with_extra(&source.blocked_values);
        let outcome = self.store.resolve_preview(&input, &blocklist)?;
        let mut warnings = mapped.warnings;
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

fn note_drift(out: &mut Processed, raw: &RawEvent, drift: &Drift) {
    let code = match drift.kind {
        crate::sniff::DriftKind::NewPath => "schema_new_path",
        crate::sniff::DriftKind::TypeChange => "schema_type_change",
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

/// The loop: drain new events in batches, then replay jobs, then sleep
/// until new events arrive.
pub async fn run(state: AppState) {
    let processor = state.processor.clone();
    let mut last_maintenance = Instant::now();
    loop {
        let p = processor.clone();
        let span = tracing::info_span!("processor_batch");
        let result = tokio::task::spawn_blocking(move || {
            let taken = p.process_batch()?;
            if taken > 0 {
                return Ok(taken);
            }
            p.replay_batch()
        })
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
            let p = processor.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || p.maintain()).await {
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
}
