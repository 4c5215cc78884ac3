//! The embedded backend: the event log, group commit and sled. The only
//! module that touches sled. It implements the seam's traits in
//! `seam_impl`; each method's body lives with its concept below.
//!
//! Trees (keys are big-endian so sled's order is the order we scan in):
//! - `sources`: source id → `Source` JSON; `source_tokens`: token hash → source id.
//! - Raw events are not in sled: they live in the event log (`log`), and
//!   the not-yet-processed ones are also queued in memory (`pending`).
//! - `event_state`: processed states in chunks of 64 events per key (see
//!   `state_chunks`); each entry is the event's `Location` in the log (16
//!   bytes) ‖ `EventState` JSON. `state_overrides`: event id → entry, for
//!   states changed after their first write (replay, erasure).
//! - `erased`: event id → the scrubbed `RawEvent` JSON of an erased event
//!   (its log record is overwritten in place, see `erasure`).
//! - `events_by_source`: source id ‖ the last event id of a processor batch
//!   → that batch's event ids of the source (see `source_index`).
//! - `errors`: error id (UUID v7) → `ErrorEntry` JSON.
//! - `meta`: named singletons (processor cursor, counters, schema snapshots)
//!   and the time-bucket counters (`activity`).
//! - `mappings`: source id ‖ version (u32 BE) → mapping JSON.
//! - `ident`: typed identifier (`x:`/`e:`/`v:` + value) → profile id.
//! - `profiles`: profile id → profile JSON; `redirects`: absorbed id → survivor id.
//! - `profile_events`: profile id ‖ chunk number → up to 64 event ids;
//!   `audit`: profile id ‖ audit id → entry JSON.
//! - `dedupe`: source id ‖ idempotency key → event id.
//! - `deliveries`: source id ‖ delivery id → its state, and each source's
//!   redelivery count (see `deliveries`).

mod activity;
pub mod batch;
mod deliveries;
pub mod erasure;
pub mod errors;
pub mod events;
pub mod flush;
pub mod history;
mod hot;
pub mod identity;
mod identity_config;
pub mod log;
pub mod mappings;
mod old_tokens;
mod pending;
pub mod rewrite;
mod seam_impl;
mod sessions;
mod shared;
pub mod source_cache;
mod source_index;
pub mod sources;
mod split;
mod state_chunks;
mod state_entry;
pub mod summary;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use batch::{Planned, Resolved};
pub use events::Logged;
pub use log::Location;

pub use crate::store::error::{StoreError, StoreResult};

impl<E: std::fmt::Debug> From<sled::transaction::TransactionError<E>> for StoreError {
    fn from(e: sled::transaction::TransactionError<E>) -> Self {
        match e {
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
            sled::transaction::TransactionError::Abort(e) => StoreError::Aborted(format!("{e:?}")),
        }
    }
}

/// A failed transaction whose closure aborts with a `StoreError`: the
/// closure's own error, or sled's.
pub(crate) fn abort_reason(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Handles to every tree. Cheap to clone (sled trees are `Arc`s).
#[derive(Clone)]
pub struct Trees {
    pub sources: sled::Tree,
    pub source_tokens: sled::Tree,
    pub erased: sled::Tree,
    pub event_state: sled::Tree,
    pub state_overrides: sled::Tree,
    pub events_by_source: sled::Tree,
    pub errors: sled::Tree,
    pub meta: sled::Tree,
    pub mappings: sled::Tree,
    pub ident: sled::Tree,
    pub profiles: sled::Tree,
    pub redirects: sled::Tree,
    pub profile_events: sled::Tree,
    pub audit: sled::Tree,
    pub dedupe: sled::Tree,
    pub deliveries: sled::Tree,
    /// Never-merge rules (see `identity_config`).
    pub never_merge: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self {
            sources: db.open_tree("sources")?,
            source_tokens: db.open_tree("source_tokens")?,
            erased: db.open_tree("erased")?,
            event_state: db.open_tree("event_state")?,
            state_overrides: db.open_tree("state_overrides")?,
            events_by_source: db.open_tree("events_by_source")?,
            errors: db.open_tree("errors")?,
            meta: db.open_tree("meta")?,
            mappings: db.open_tree("mappings")?,
            ident: db.open_tree("ident")?,
            profiles: db.open_tree("profiles")?,
            redirects: db.open_tree("redirects")?,
            profile_events: db.open_tree("profile_events")?,
            audit: db.open_tree("audit")?,
            dedupe: db.open_tree("dedupe")?,
            deliveries: db.open_tree("deliveries")?,
            never_merge: db.open_tree("never_merge")?,
        })
    }
}

/// How often sled writes the processor's state out. Acknowledged events are
/// durable in the log already; a crash loses at most this much processing,
/// which the processor redoes from the log (its cursor is in the same
/// transactions as the states it covers).
const SLED_FLUSH_MS: u64 = 500;

/// The database: sled for everything the processor decides, the event log
/// for the events themselves.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    /// `pub(crate)` only for a pipeline test that plants an unreadable
    /// profile (`pipeline::tests`); nothing else outside the store uses it.
    pub(crate) trees: Trees,
    log: Arc<log::SegmentLog>,
    /// Unprocessed events; its lock is also the append lock (see `append_events`).
    pending: Arc<Mutex<pending::Pending>>,
    /// Sources by token hash for the hook path; see `source_cache`.
    source_cache: Arc<source_cache::SourceCache>,
    /// Decoded profiles the processor uses often; see `hot`.
    hot: Arc<hot::HotIdentities>,
    /// The kinds and never-merge pairs resolutions use; see `identity_config`.
    identity: Arc<identity_config::CurrentConfig>,
    /// Permits for scans that may read past one page (searches and status
    /// filters): a few at a time, so they never crowd out ingestion on a
    /// small machine (see `summary::ScanBudget`).
    scans: Arc<tokio::sync::Semaphore>,
    /// A temporary store's directory, removed with the last handle.
    _temp: Option<Arc<tempfile::TempDir>>,
    /// The data dir, where an erasure asks for the database rewrite (see
    /// `rewrite`); `None` for a temporary store.
    data_dir: Option<std::path::PathBuf>,
    /// Dashboard sessions, in memory (see `sessions`).
    sessions: Arc<sessions::MemorySessions>,
}

/// Held around every sled transaction and every flush of sled's log.
///
/// Why: sled guards both with one process-wide reader-writer lock. A flush
/// holds it shared *while it waits* for sled's flusher thread, which needs
/// it shared too; a transaction waiting for it exclusively blocks new
/// shared holders, so the flusher never gets it and the three wait on each
/// other for ever (seen as a hung test: one server's shutdown flush against
/// another's commit). Never letting a flush and a transaction overlap
/// breaks that cycle. Process-wide because sled's lock is: every store of
/// the process shares it.
static SLED_EXCLUSIVE: Mutex<()> = Mutex::new(());

/// See [`SLED_EXCLUSIVE`]. A poisoned lock guards no data: take it anyway.
pub(crate) fn sled_exclusive() -> std::sync::MutexGuard<'static, ()> {
    SLED_EXCLUSIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Store {
    /// Flushes sled's log (see [`SLED_EXCLUSIVE`] for why never during a
    /// transaction).
    pub(super) fn flush_db(&self) -> StoreResult<()> {
        let _exclusive = sled_exclusive();
        self.db.flush()?;
        Ok(())
    }

    /// Opens (or creates) the database in `<data_dir>/db` and the event log
    /// in `<data_dir>/log`, queueing for the processor every logged event
    /// after its cursor.
    pub fn open(data_dir: &Path, cache_mb: u64) -> StoreResult<Self> {
        Self::open_with(
            data_dir,
            cache_mb,
            log::SegmentLog::open(&data_dir.join("log")),
        )
    }

    fn open_with(
        data_dir: &Path,
        cache_mb: u64,
        log: std::io::Result<log::SegmentLog>,
    ) -> StoreResult<Self> {
        let config = |path: &Path| {
            sled::Config::new()
                .path(path)
                .cache_capacity(cache_mb * 1024 * 1024)
                .flush_every_ms(Some(SLED_FLUSH_MS))
        };
        rewrite::run_if_requested(data_dir, config)?;
        let db = open_sled(&config(&data_dir.join("db")))?;
        let log = log.map_err(StoreError::io("opening the event log"))?;
        let mut store = Self::assemble(db, log, None)?;
        store.data_dir = Some(data_dir.to_path_buf());
        Ok(store)
    }

    fn assemble(
        db: sled::Db,
        log: log::SegmentLog,
        temp: Option<Arc<tempfile::TempDir>>,
    ) -> StoreResult<Self> {
        let trees = Trees::open(&db)?;
        let identity = identity_config::CurrentConfig::default();
        identity.set_loaded(identity_config::load(&trees)?);
        let store = Self {
            db,
            trees,
            log: Arc::new(log),
            pending: Arc::default(),
            source_cache: Arc::default(),
            hot: Arc::default(),
            identity: Arc::new(identity),
            scans: Arc::new(tokio::sync::Semaphore::new(summary::CONCURRENT_SCANS)),
            _temp: temp,
            data_dir: None,
            sessions: Arc::default(),
        };
        let queued = store.queue_unprocessed()?;
        if queued > 0 {
            tracing::info!(queued, "events in the log wait for the processor");
        }
        Ok(store)
    }

    /// Approximate bytes on disk (for the benchmark report and `/metrics`).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.log.size_on_disk()
    }

    /// Syncs the log now, bypassing group commit: used by the benchmark
    /// that shows what group commit buys (sync-per-write).
    pub(super) fn flush_now(&self) -> StoreResult<()> {
        self.log
            .sync()
            .map_err(StoreError::io("syncing the event log"))
    }

    /// Starts the group-commit flusher for this store's log; `delay` is
    /// how long it may wait to gather concurrent writers (see `flush`).
    pub fn start_group_commit(&self, delay: std::time::Duration) -> Arc<flush::GroupCommit> {
        flush::GroupCommit::start(self.log.clone(), delay)
    }

    /// Asks for the database to be rewritten at the next start (erasure,
    /// see `rewrite`).
    fn request_rewrite(&self) -> StoreResult<erasure::DatabaseRewrite> {
        let Some(dir) = &self.data_dir else {
            return Ok(erasure::DatabaseRewrite::NotNeeded);
        };
        rewrite::request(dir).map_err(StoreError::io("requesting the database rewrite"))?;
        Ok(erasure::DatabaseRewrite::AtNextStart)
    }

    /// Writes everything out (at shutdown, after the processor stopped).
    pub fn close(&self) -> StoreResult<()> {
        self.flush_now()?;
        self.flush_db()
    }

    /// A throwaway store for unit tests and benches.
    pub fn temporary() -> StoreResult<Self> {
        Self::temporary_with_segment_bytes(64 << 20)
    }

    /// A throwaway store whose log segments close at `segment_bytes`.
    pub fn temporary_with_segment_bytes(segment_bytes: u64) -> StoreResult<Self> {
        let dir = tempfile::tempdir().map_err(StoreError::io("creating a temporary dir"))?;
        let db = sled::Config::new().temporary(true).open()?;
        let log = log::SegmentLog::open_with_segment_bytes(&dir.path().join("log"), segment_bytes)
            .map_err(StoreError::io("opening the event log"))?;
        Self::assemble(db, log, Some(Arc::new(dir)))
    }
}

/// Reads a JSON value out of a tree.
/// Opens sled, waiting up to 2 s while its file lock is still held by a
/// store of this process being dropped: sled releases the lock from its
/// background flusher thread, a moment after the last handle goes (seen as
/// a flaky reopen in a restart test). Another process cannot be the holder
/// here: the data-dir lock (`app`) is taken before the store opens.
fn open_sled(config: &sled::Config) -> StoreResult<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return Ok(result?),
        }
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// Writes a value as JSON bytes.
///
/// Infallible for what the store is given: serde_json fails only on a map
/// whose keys are not strings or on a `Serialize` impl that returns an
/// error, and the types stored here (derived impls over strings, numbers,
/// ids, times and `serde_json` values, whose maps have string keys) have
/// neither. Writing an empty value instead (as this once did) would persist
/// a record that never decodes, so a broken invariant stops here instead.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    #[allow(clippy::expect_used)]
    serde_json::to_vec(value).expect("stored types serialise: derived impls, string-keyed maps")
}

/// The last handle flushes sled itself, under [`SLED_EXCLUSIVE`]: sled's
/// own drop flushes too, outside it, and finds nothing left to wait for.
impl Drop for Store {
    fn drop(&mut self) {
        if Arc::strong_count(&self.pending) == 1 {
            if let Err(e) = self.flush_db() {
                tracing::error!(error = ?e.to_string(), "could not flush the database at close");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{EventId, SourceId};
    use crate::domain::model::RawEvent;

    fn event(n: i64) -> RawEvent {
        RawEvent::received(SourceId::new(), serde_json::json!({ "n": n }))
    }

    #[test]
    fn logged_events_the_processor_had_not_committed_are_queued_again_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let events = {
            let store = Store::open(dir.path(), 16).unwrap();
            let events = store.append_events((0..3).map(event).collect()).unwrap();
            store.flush_now().unwrap();
            // The processor committed the first event only.
            let first = store.next_pending(None, 1).unwrap().remove(0);
            store
                .commit_batch(
                    &[],
                    Some((first.raw.id, first.at)),
                    &std::collections::HashMap::new(),
                    &crate::domain::activity::ActivityDelta::default(),
                    super::batch::resolve_keeping_state,
                )
                .unwrap();
            store.db.flush().unwrap();
            events
        };
        let store = Store::open(dir.path(), 16).unwrap();
        let queued: Vec<EventId> = store
            .next_pending(None, 10)
            .unwrap()
            .iter()
            .map(|e| e.raw.id)
            .collect();
        assert_eq!(queued, vec![events[1].id, events[2].id]);
        assert_eq!(store.event(events[2].id).unwrap().unwrap().raw, *events[2]);
        // New ids keep growing after a restart.
        let more = store.append_events(vec![event(9)]).unwrap();
        assert!(more[0].id > events[2].id);
    }
}
