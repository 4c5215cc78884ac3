//! Group commit: many writers, one flusher.
//!
//! A writer applies its write, takes a ticket, and waits until a flush that
//! *started after* its ticket has finished. One dedicated thread flushes in
//! a loop, so concurrent requests share one fsync instead of paying one
//! each. The flush is a write-ahead-log sync (see `wal`); without a log
//! (temporary stores) it is `Db::flush`, from this one thread only, never
//! `flush_async` from many tasks (sled #1308 can deadlock that way).
//!
//! With a log, a second thread checkpoints once a second: it rotates the log,
//! flushes sled, and deletes the log segments sled now holds durably.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::watch;

use super::wal::Wal;

/// How often the log is checkpointed into sled.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Pause between two drains of sled's dirty buffers.
const DRAIN_PAUSE: Duration = Duration::from_millis(20);

/// What a flush makes durable.
#[derive(Clone)]
pub enum Durability {
    /// Sync the write-ahead log; sled is flushed by checkpoints.
    Wal {
        wal: Arc<Wal>,
        db: sled::Db,
        /// sled's data file, fsynced at each checkpoint.
        db_file: std::path::PathBuf,
    },
    /// Flush sled itself (temporary stores, and the flush-per-write bench).
    Sled(sled::Db),
}

impl Durability {
    fn sync(&self) -> Result<(), String> {
        match self {
            Durability::Wal { wal, .. } => wal.sync().map_err(|e| e.to_string()),
            Durability::Sled(db) => db.flush().map(|_| ()).map_err(|e| e.to_string()),
        }
    }

    /// Writes sled's dirty buffers out (no log rotation): run back to back
    /// so sled never builds a backlog that a later flush would wait on
    /// (measured: a flush once a second took 100–300 ms under load and
    /// stalled acknowledgements behind it; back to back, each is small).
    fn drain(&self) -> Result<usize, String> {
        match self {
            Durability::Wal { db, .. } => db.flush().map_err(|e| e.to_string()),
            Durability::Sled(_) => Ok(0),
        }
    }

    /// Rotates the log, makes sled durable (its flush, then an fsync of its
    /// file: sled's flush alone only issues `sync_file_range`), and drops
    /// the log segments sled now holds.
    fn checkpoint(&self) -> Result<(), String> {
        let Durability::Wal { wal, db, db_file } = self else {
            return Ok(());
        };
        let keep = wal.rotate().map_err(|e| e.to_string())?;
        db.flush().map_err(|e| e.to_string())?;
        std::fs::File::open(db_file)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        wal.delete_before(keep).map_err(|e| e.to_string())
    }
}

/// Progress of the flusher: every ticket up to `durable` is on disk; a ticket
/// up to `failed` (and above `durable`) was in a flush that failed.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    durable: u64,
    failed: u64,
}

/// Statistics of the flusher, for `/metrics` and the benchmark report.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub flushes: AtomicU64,
    pub tickets: AtomicU64,
    /// Largest number of tickets one flush covered.
    pub max_batch: AtomicU64,
}

pub struct GroupCommit {
    next_ticket: AtomicU64,
    wake: Mutex<bool>,
    wake_cv: Condvar,
    progress: watch::Sender<Progress>,
    stop: AtomicBool,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub stats: FlushStats,
}

/// The flush did not reach the disk; the write must not be acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("the write could not be flushed to disk")]
pub struct FlushFailed;

impl GroupCommit {
    /// Starts the flusher (and, with a log, the checkpointer) thread.
    pub fn start(target: Durability) -> Arc<Self> {
        let (progress, _) = watch::channel(Progress::default());
        let gc = Arc::new(Self {
            next_ticket: AtomicU64::new(0),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            progress,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            stats: FlushStats::default(),
        });
        let flusher = {
            let (gc, target) = (gc.clone(), target.clone());
            std::thread::Builder::new()
                .name("inlet-flusher".into())
                .spawn(move || gc.run(target))
        };
        let checkpointer = {
            let gc = gc.clone();
            std::thread::Builder::new()
                .name("inlet-checkpoint".into())
                .spawn(move || gc.checkpoints(target))
        };
        for spawned in [flusher, checkpointer] {
            match spawned {
                Ok(handle) => {
                    if let Ok(mut threads) = gc.threads.lock() {
                        threads.push(handle);
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not start a flusher thread"),
            }
        }
        gc
    }

    fn checkpoints(&self, target: Durability) {
        if matches!(target, Durability::Sled(_)) {
            return;
        }
        let mut last = std::time::Instant::now();
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let result = if stopping || last.elapsed() >= CHECKPOINT_EVERY {
                last = std::time::Instant::now();
                target.checkpoint().map(|_| 1)
            } else {
                target.drain()
            };
            match result {
                Err(e) => {
                    tracing::error!(error = %e, "checkpoint failed; the log keeps its segments");
                    std::thread::sleep(Duration::from_millis(100));
                }
                // Nothing was dirty: idle briefly instead of spinning.
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                // Pace the drains: fewer, larger IO submissions (measured
                // ~10% more throughput than back to back), each still small.
                Ok(_) => std::thread::sleep(DRAIN_PAUSE),
            }
            if stopping {
                break;
            }
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn durable(&self) -> Result<(), FlushFailed> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::SeqCst) + 1;
        self.ring();
        let mut rx = self.progress.subscribe();
        let outcome = rx
            .wait_for(|p| p.durable >= ticket || p.failed >= ticket)
            .await
            .map(|p| p.durable >= ticket);
        match outcome {
            Ok(true) => Ok(()),
            _ => Err(FlushFailed),
        }
    }

    /// Stops the flusher after one last flush and waits for its thread, so
    /// the database (and its file lock) is released when this returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.ring();
        let handles: Vec<_> = match self.threads.lock() {
            Ok(mut threads) => threads.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for handle in handles {
            let _ = handle.join();
        }
    }

    fn ring(&self) {
        if let Ok(mut pending) = self.wake.lock() {
            *pending = true;
            self.wake_cv.notify_one();
        }
    }

    fn run(&self, durability: Durability) {
        let mut durable = 0u64;
        loop {
            if !self.wait_for_work() {
                break;
            }
            // Every ticket taken so far belongs to a write that already
            // happened, so one flush started now covers all of them.
            let target = self.next_ticket.load(Ordering::SeqCst);
            if target == durable && !self.stop.load(Ordering::SeqCst) {
                continue;
            }
            let result = durability.sync();
            self.record_batch(target - durable);
            durable = self.publish(result, durable, target);
            if self.stop.load(Ordering::SeqCst)
                && self.next_ticket.load(Ordering::SeqCst) == durable
            {
                break;
            }
        }
    }

    /// Blocks until a writer rings or a stop is asked; false when stopping
    /// with nothing left to flush.
    fn wait_for_work(&self) -> bool {
        let Ok(mut pending) = self.wake.lock() else {
            return false;
        };
        while !*pending {
            match self
                .wake_cv
                .wait_timeout(pending, Duration::from_millis(200))
            {
                Ok((guard, _)) => pending = guard,
                Err(_) => return false,
            }
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
        }
        *pending = false;
        true
    }

    fn publish(&self, result: Result<(), String>, durable: u64, target: u64) -> u64 {
        match result {
            Ok(_) => {
                self.progress.send_modify(|p| p.durable = target);
                target
            }
            Err(e) => {
                tracing::error!(error = %e, "flush failed; refusing the writes it covered");
                self.progress.send_modify(|p| p.failed = target);
                std::thread::sleep(Duration::from_millis(50));
                durable
            }
        }
    }

    fn record_batch(&self, size: u64) {
        if size == 0 {
            return;
        }
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.tickets.fetch_add(size, Ordering::Relaxed);
        self.stats.max_batch.fetch_max(size, Ordering::Relaxed);
    }
}
