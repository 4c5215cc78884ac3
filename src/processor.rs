//! The processor: the one background task that takes stored events in
//! arrival order through sniff → map → resolve and writes what it decided.
//!
//! It runs off the request path, so a slow or failing mapping never slows or
//! refuses ingestion. Its position (the cursor: the last event id processed)
//! is committed in the same sled transaction as the batch's event states and
//! counters, so after a crash it resumes exactly where the last committed
//! batch ended; everything a batch does before that commit is idempotent.

use crate::app::AppState;
use crate::config::Config;
use crate::counters::{Counters, Counts};
use crate::ids::{EventId, SourceId};
use crate::model::{ErrorEntry, EventState, EventStatus, Level, RawEvent, Stage};
use crate::store::events::StateUpdate;
use crate::store::{Store, StoreResult};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The processor's shared parts.
pub struct Processor {
    store: Store,
    counters: Arc<Counters>,
    config: Arc<Config>,
    stopping: AtomicBool,
}

/// What processing one event produced.
struct Processed {
    state: EventState,
    errors: Vec<ErrorEntry>,
}

impl Processor {
    pub fn new(store: Store, counters: Arc<Counters>, config: Arc<Config>) -> StoreResult<Self> {
        Ok(Self {
            store,
            counters,
            config,
            stopping: AtomicBool::new(false),
        })
    }

    /// Asks the loop to stop after its current batch.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Processes the next batch; returns how many events it took.
    fn process_batch(&self) -> StoreResult<usize> {
        let cursor = self.store.cursor()?;
        let events = self
            .store
            .events_after(cursor, self.config.processor_batch)?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        let mut updates = Vec::with_capacity(events.len());
        let mut touched: HashMap<SourceId, Counts> = HashMap::new();
        for raw in &events {
            let span = tracing::debug_span!("process", event = %raw.id, source = %raw.source_id);
            let _enter = span.enter();
            let processed = self.process(raw);
            for entry in &processed.errors {
                self.store.log_error(entry)?;
            }
            let status = processed.state.status.unwrap_or(EventStatus::Failed);
            touched.insert(
                raw.source_id,
                self.counters.record(raw.source_id, None, status),
            );
            updates.push(StateUpdate {
                event_id: raw.id,
                state: processed.state,
            });
        }
        self.store.commit_batch(&updates, Some(last), &touched)?;
        Ok(events.len())
    }

    /// One event through the stages.
    fn process(&self, raw: &RawEvent) -> Processed {
        let mut state = EventState {
            processed_at: Some(Utc::now()),
            ..EventState::default()
        };
        let mut errors = Vec::new();
        if let Some(reason) = &raw.not_mappable {
            state.status = Some(EventStatus::Failed);
            state.errors.push(reason.clone());
            errors.push(
                ErrorEntry::new(
                    Some(raw.source_id),
                    Stage::Map,
                    Level::Error,
                    "not_mappable",
                    reason.clone(),
                )
                .with_event(raw.id),
            );
            return Processed { state, errors };
        }
        state.status = Some(EventStatus::Unmapped);
        Processed { state, errors }
    }
}

/// The loop: drain the log in batches, then sleep until new events arrive.
pub async fn run(state: AppState) {
    let processor = state.processor.clone();
    loop {
        let p = processor.clone();
        let span = tracing::info_span!("processor_batch");
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || p.process_batch())
            .instrument(span)
            .await;
        if let Ok(Ok(n @ 1..)) = &result {
            state.metrics.batch_processed(*n, started.elapsed());
        }
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
        if taken == 0 {
            tokio::select! {
                _ = state.new_events.notified() => {},
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            }
        }
    }
}

/// Used by tests and the API: the event id the processor has reached.
pub fn position(store: &Store) -> StoreResult<Option<EventId>> {
    store.cursor()
}
