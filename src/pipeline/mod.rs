//! The pipeline: the background work that takes stored events in arrival
//! order through sniff → map → resolve and writes what it decided.
//!
//! # Order of work
//! Each round of [`run`] plans the next batch of durable events (sniff and
//! map, in memory: `plan`), hands it to the committer, which resolves
//! identity inside the store's unit of work and writes states, error-log
//! entries, counters and the cursor in one transaction (`commit`). With
//! nothing new, an open replay job gets a batch (`replay`); once a minute
//! old events and error-log entries are pruned (`retention`). The threads
//! and how they hand work over are in `worker`; the compiled mappings the
//! planner uses are cached in `mappings`; `preview` is the same mapping and
//! resolution as a dry run.
//!
//! # The cursor
//! The pipeline's position (the last event id processed) is committed in
//! the same transaction as the batch's event states and counters, so after
//! a crash it resumes exactly where the last committed batch ended.
//! Everything a batch does before that commit is idempotent: identity
//! resolution remembers each event id it resolved, idempotency keys are
//! claimed per event id, and schema statistics are approximate by nature.
//!
//! # One writer
//! One thread (the committer) writes processed events, and replay and
//! retention write only while it is idle. Being the single writer of the
//! identity trees is how concurrent events that link the same people end in
//! one profile, without locks between writers.
//!
//! It runs off the request path, so a slow or failing mapping never slows or
//! refuses ingestion. It is given exactly the handles it needs
//! ([`PipelineHandles`]), not the application's state.

mod commit;
mod mappings;
mod plan;
mod preview;
mod replay;
mod retention;
mod takeover;
mod worker;

pub use mappings::{BrokenMapping, CurrentMapping, MappingCache};

use crate::config::Config;
use crate::domain::counters::Counters;
use crate::domain::sniff::SchemaRegistry;
use crate::metrics::Metrics;
use crate::store::{Store, StoreResult};
use plan::PlannerState;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::Instrument;
use worker::Work;

/// The few settings the pipeline reads, taken from [`Config`] at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Most events per batch (`--processor-batch`), new or replayed.
    pub batch: usize,
    /// Events kept; older processed ones are pruned.
    pub event_retention: u64,
    /// Error-log entries kept.
    pub error_retention: u64,
    /// Whether other nodes share the store (PostgreSQL): then this node
    /// processes only while the store lets it, and refreshes its counts
    /// from the store (see `takeover`).
    pub cluster: bool,
}

impl From<&Config> for PipelineConfig {
    fn from(config: &Config) -> Self {
        Self {
            batch: config.batch(),
            event_retention: config.event_retention,
            error_retention: config.error_retention,
            cluster: config.database_url.is_some(),
        }
    }
}

/// What the pipeline is built from: the handles it uses, and nothing of
/// the application around it.
pub struct PipelineHandles {
    pub store: Store,
    /// The live per-source counts, updated after each commit.
    pub counters: Arc<Counters>,
    /// Rung after every durable append; the pipeline sleeps on it.
    pub new_events: Arc<Notify>,
    /// Where batch timings are recorded.
    pub metrics: Arc<Metrics>,
    pub config: PipelineConfig,
}

/// The pipeline's shared parts: what the services reach (`mappings`,
/// `schemas`, `preview`, `start_replay`, `redact_schemas`, `stop`) and what
/// the planner and committer threads share.
pub struct Processor {
    store: Store,
    counters: Arc<Counters>,
    new_events: Arc<Notify>,
    metrics: Arc<Metrics>,
    config: PipelineConfig,
    stopping: AtomicBool,
    pub schemas: SchemaRegistry,
    pub mappings: MappingCache,
    planner: std::sync::Mutex<PlannerState>,
    /// Committed batches' values, freed by the planner (see `leave_for_planner`).
    garbage: std::sync::Mutex<Vec<Box<dyn Send>>>,
    /// Bumped when a commit fails, which voids batches planned after it.
    epoch: AtomicU64,
    /// Single events asked to be re-run (the event page's retry), taken
    /// before the next replay batch (see `replay`).
    retries: std::sync::Mutex<Vec<crate::domain::ids::EventId>>,
    /// Set when a batch was fenced: take over again before the next one.
    resync: AtomicBool,
}

impl Processor {
    /// Builds the pipeline, loading the schemas an earlier run learned.
    pub fn new(handles: PipelineHandles) -> StoreResult<Self> {
        let PipelineHandles {
            store,
            counters,
            new_events,
            metrics,
            config,
        } = handles;
        let schemas = retention::load_schemas(&store)?;
        Ok(Self {
            store,
            counters,
            new_events,
            metrics,
            config,
            stopping: AtomicBool::new(false),
            schemas,
            mappings: MappingCache::default(),
            planner: std::sync::Mutex::default(),
            garbage: std::sync::Mutex::default(),
            epoch: AtomicU64::new(0),
            retries: std::sync::Mutex::default(),
            resync: AtomicBool::new(false),
        })
    }

    /// Asks the loop to stop after its current batch, and wakes it if it
    /// sleeps so it sees the request now.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.new_events.notify_one();
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
}

/// The loop: plan new events in batches for the committer, then replay
/// jobs, then sleep until new events arrive; prune once a minute. Returns
/// after [`Processor::stop`], once the committer has finished its batch.
pub async fn run(processor: Arc<Processor>) {
    let (work, committer) = match worker::spawn_committer(processor.clone()) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %e, "could not start the processor's committer thread");
            return;
        }
    };
    let mut last_maintenance = Instant::now();
    let mut gate = Gate::new(&processor);
    loop {
        if !gate.open(&processor, &work).await {
            if processor.stopping() {
                break;
            }
            continue;
        }
        let (p, w) = (processor.clone(), work.clone());
        let span = tracing::info_span!("processor_batch");
        let result = tokio::task::spawn_blocking(move || worker::plan_step(&p, &w))
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
        if last_maintenance.elapsed() > retention::MAINTENANCE_EVERY {
            last_maintenance = Instant::now();
            let (p, w) = (processor.clone(), work.clone());
            let maintained = tokio::task::spawn_blocking(move || {
                worker::quiesce(&w)?;
                p.maintain()
            })
            .await;
            if let Ok(Err(e)) = maintained {
                tracing::error!(error = %e, "maintenance failed");
            }
        }
        if taken == 0 {
            tokio::select! {
                _ = processor.new_events.notified() => {},
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            }
        }
    }
    // The committer finishes the batch in hand, then sees the channel close.
    drop(work);
    // `commit_loop` contains panics per batch, so a join error is a bug
    // worth a line in the log (there is nothing left to retry at shutdown).
    if !matches!(
        tokio::task::spawn_blocking(move || committer.join()).await,
        Ok(Ok(()))
    ) {
        tracing::error!("the processor's committer thread ended with a panic");
    }
}

/// The loop's gate on a cluster: batches run only while this node may
/// process; meanwhile counts are refreshed from the store (see `takeover`).
struct Gate {
    /// Whether this node processed in the last round.
    leading: bool,
    last_refresh: Instant,
}

impl Gate {
    fn new(processor: &Processor) -> Self {
        Self {
            // The embedded store always processes, with the counters the
            // application restored at start: nothing to take over.
            leading: !processor.config.cluster,
            last_refresh: Instant::now(),
        }
    }

    /// Whether to run a batch now. When not, it has waited (up to a
    /// refresh interval, or until woken) and refreshed the counts.
    async fn open(&mut self, processor: &Arc<Processor>, work: &SyncSender<Work>) -> bool {
        if !processor.config.cluster {
            return true;
        }
        if !processor.may_process() {
            self.leading = false;
            self.refresh(processor, Processor::refresh_all_counts).await;
            tokio::select! {
                _ = processor.new_events.notified() => {},
                _ = tokio::time::sleep(takeover::REFRESH_EVERY) => {},
            }
            return false;
        }
        if !self.leading || processor.must_resync() {
            let (p, w) = (processor.clone(), work.clone());
            match tokio::task::spawn_blocking(move || p.take_over(&w)).await {
                Ok(Ok(())) => self.leading = true,
                failed => {
                    tracing::error!(outcome = ?failed.map(|r| r.err()), "could not take processing over; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return false;
                }
            }
        }
        self.refresh(processor, Processor::refresh_received).await;
        true
    }

    /// Runs `how` once per refresh interval at most.
    async fn refresh(
        &mut self,
        processor: &Arc<Processor>,
        how: fn(&Processor) -> StoreResult<()>,
    ) {
        if self.last_refresh.elapsed() < takeover::REFRESH_EVERY {
            return;
        }
        self.last_refresh = Instant::now();
        let p = processor.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || how(&p)).await {
            tracing::debug!(error = %e, "could not refresh the counts from the store");
        }
    }
}

/// What the unit tests beside each part share: a processor over a
/// temporary store, and its events.
#[cfg(test)]
mod testing {
    use super::{PipelineConfig, PipelineHandles, Processor};
    use crate::config::Config;
    use crate::domain::ids::{EventId, SourceId};
    use crate::domain::model::{MappingSpec, RawEvent, Stage};
    use crate::domain::source::Source;
    use crate::metrics::Metrics;
    use crate::store::StateStore;
    use crate::store::Store;
    use serde_json::json;
    use std::sync::Arc;

    pub(super) fn raw(source: SourceId, email: &str) -> RawEvent {
        RawEvent::received(source, json!({"type": "order", "email": email}))
    }

    pub(super) fn processor(store: &Store) -> Processor {
        let config = Config::for_data_dir("/nonexistent");
        Processor::new(PipelineHandles {
            store: store.clone(),
            counters: Arc::default(),
            new_events: Arc::default(),
            metrics: Arc::new(Metrics::new()),
            config: PipelineConfig::from(&config),
        })
        .unwrap()
    }

    pub(super) fn processor_with_mapping(spec: MappingSpec) -> (Store, Processor, Source) {
        let store = Store::temporary().unwrap();
        let processor = processor(&store);
        let (source, _) = Source::create("shop", None, None).unwrap();
        store.put_source(&source).unwrap();
        // Straight into the store: no API validation, as a mapping saved
        // before the template limits existed.
        store.save_mapping(source.id, &spec, None).unwrap();
        (store, processor, source)
    }

    pub(super) fn error_codes(store: &Store, event: EventId) -> Vec<String> {
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
}
