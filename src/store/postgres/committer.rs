//! Group commit on PostgreSQL: every request appended while a commit runs
//! goes into the next transaction, so many requests share one `COMMIT`
//! (one WAL flush) instead of paying one each, as the embedded log shares
//! one `fdatasync`.
//!
//! A request's records go into the batch whole, under one short lock, so
//! a transaction holds all of a request or none of it. A batch that fails
//! to commit is dropped: its requests hear `Some(false)` on their receipt
//! and answer 503, and the senders retry (keeping the rows for a later
//! commit would store what the sender sends again).

use super::cluster::{Change, Cluster};
use super::db::Db;
use super::log::{self, Rows};
use crate::store::commit::{FlushStats, Receipt};
use crate::store::StoreResult;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The batch being gathered, and the channel its requests wait on.
struct Gathering {
    rows: Rows,
    requests: u64,
    outcome: watch::Sender<Option<bool>>,
}

impl Gathering {
    fn new() -> Self {
        Self {
            rows: Rows::default(),
            requests: 0,
            outcome: watch::channel(None).0,
        }
    }
}

pub struct Committer {
    gathering: Mutex<Gathering>,
    wake: Notify,
    stopping: AtomicBool,
    /// Set by the commit task when it has committed its last batch.
    stopped: watch::Sender<bool>,
    stats: FlushStats,
    /// How long a commit waits for more requests once the previous one was
    /// shared (as the embedded flusher and PostgreSQL's `commit_delay`).
    delay: Mutex<Duration>,
    /// The server runs with `synchronous_commit = off`: the append's
    /// transaction turns it on for itself (a 202 means committed to disk).
    force_sync: bool,
}

impl Committer {
    /// Starts the commit task on the backend's runtime.
    pub(super) fn start(db: &Db, cluster: Arc<Cluster>, force_sync: bool) -> Arc<Self> {
        let committer = Arc::new(Self {
            gathering: Mutex::new(Gathering::new()),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            stopped: watch::channel(false).0,
            stats: FlushStats::default(),
            delay: Mutex::new(Duration::ZERO),
            force_sync,
        });
        db.spawn(run(committer.clone(), db.clone(), cluster));
        committer
    }

    pub(super) fn set_delay(&self, delay: Duration) {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Adds one request's rows to the next transaction; the receipt says
    /// how that transaction ended.
    pub(super) fn add(&self, rows: Rows) -> Receipt {
        let receipt = {
            let mut gathering = self.lock();
            gathering.rows.extend(rows);
            gathering.requests += 1;
            gathering.outcome.subscribe()
        };
        self.wake.notify_one();
        Receipt::Postgres(receipt)
    }

    /// The receipt of what is gathered now (`None` when nothing is), to
    /// wait for everything appended so far.
    pub(super) fn current(&self) -> Option<Receipt> {
        let gathering = self.lock();
        (gathering.requests > 0).then(|| Receipt::Postgres(gathering.outcome.subscribe()))
    }

    /// Asks the commit task to commit what it has and end.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Waits (up to `within`) until the commit task has ended.
    pub(super) async fn stopped(&self, within: Duration) {
        let mut stopped = self.stopped.subscribe();
        let _ = tokio::time::timeout(within, stopped.wait_for(|s| *s)).await;
    }

    pub fn stats(&self) -> &FlushStats {
        &self.stats
    }

    /// A poisoned lock only means a panic while extending the rows, which
    /// cannot leave them half-written for a request (each column is pushed
    /// in turn; `Rows::extend` does not panic but for allocation failure).
    fn lock(&self) -> std::sync::MutexGuard<'_, Gathering> {
        self.gathering
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Gathering {
        std::mem::replace(&mut *self.lock(), Gathering::new())
    }

    fn delay(&self) -> Duration {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The commit task: waits for rows, commits them, tells their requests.
async fn run(committer: Arc<Committer>, db: Db, cluster: Arc<Cluster>) {
    let mut last_shared = false;
    loop {
        committer.wake.notified().await;
        let delay = committer.delay();
        if last_shared && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let batch = committer.take();
        if batch.requests > 0 {
            last_shared = batch.requests > 1;
            let committed = commit(&db, &batch.rows, committer.force_sync).await;
            if let Err(e) = &committed {
                tracing::warn!(error = %e, requests = batch.requests, "append commit failed; the requests are answered 503");
            }
            record(&committer.stats, batch.requests);
            batch.outcome.send_replace(Some(committed.is_ok()));
            if committed.is_ok() {
                cluster.announce(&db, Change::Appended);
            }
        }
        if committer.stopping.load(Ordering::SeqCst) && committer.lock().requests == 0 {
            break;
        }
        // Rows that arrived during the commit: go again without waiting.
        if committer.lock().requests > 0 {
            committer.wake.notify_one();
        }
    }
    committer.stopped.send_replace(true);
}

async fn commit(db: &Db, rows: &Rows, force_sync: bool) -> StoreResult<()> {
    let mut tx = db.pool.begin().await?;
    if force_sync {
        sqlx::query("SET LOCAL synchronous_commit TO on")
            .execute(&mut *tx)
            .await?;
    }
    log::insert_records(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(())
}

fn record(stats: &FlushStats, requests: u64) {
    stats.flushes.fetch_add(1, Ordering::Relaxed);
    stats.tickets.fetch_add(requests, Ordering::Relaxed);
    stats.max_batch.fetch_max(requests, Ordering::Relaxed);
}
