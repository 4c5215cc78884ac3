//! Group commit, whichever backend: a request appends its records
//! (`EventLog::append_events`, which hands back a [`Receipt`]) and then
//! waits on [`GroupCommit::durable`] before it answers 202. Concurrent
//! requests share one flush: one `fdatasync` of the embedded log, or one
//! PostgreSQL transaction and `COMMIT` for everything appended meanwhile.
//!
//! Why a receipt: the embedded log keeps a record whose sync failed in
//! its buffer (the next sync writes it), so "a sync that started after my
//! ticket succeeded" proves a request durable. A PostgreSQL commit that
//! fails throws its rows away (they were refused with a 503; keeping them
//! would store what the sender retries), so a request must hear how *its*
//! transaction ended, not a later one.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Statistics of the flusher, for `/metrics` and the benchmark report.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub flushes: AtomicU64,
    pub tickets: AtomicU64,
    /// Largest number of tickets one flush covered.
    pub max_batch: AtomicU64,
}

/// The flush did not reach the disk (or the database did not commit); the
/// write must not be acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("the write could not be made durable")]
pub struct FlushFailed;

/// What an append hands back to wait on: see the module comment.
pub enum Receipt {
    /// The embedded log: any later sync covers the append.
    Log,
    /// The PostgreSQL group transaction the rows went into: `Some(true)`
    /// once committed, `Some(false)` once it failed.
    Postgres(tokio::sync::watch::Receiver<Option<bool>>),
}

/// The records of one request as stored, and what to wait on before
/// acknowledging them.
pub struct Appended {
    pub events: Vec<Arc<crate::domain::model::RawEvent>>,
    pub receipt: Receipt,
}

/// The group committer of the store's backend.
pub enum GroupCommit {
    Log(Arc<super::embedded::flush::GroupCommit>),
    Postgres(Arc<super::postgres::Committer>),
}

impl GroupCommit {
    /// Waits until the append that gave `receipt` is durable.
    pub async fn durable(&self, receipt: Receipt) -> Result<(), FlushFailed> {
        match (self, receipt) {
            (GroupCommit::Log(log), _) => log.durable().await,
            (GroupCommit::Postgres(_), Receipt::Postgres(mut rx)) => {
                match rx.wait_for(|outcome| outcome.is_some()).await {
                    Ok(outcome) if *outcome == Some(true) => Ok(()),
                    _ => Err(FlushFailed),
                }
            }
            (GroupCommit::Postgres(_), Receipt::Log) => Err(FlushFailed),
        }
    }

    /// Stops the flusher after one last flush.
    pub fn stop(&self) {
        match self {
            GroupCommit::Log(log) => log.stop(),
            GroupCommit::Postgres(pg) => pg.stop(),
        }
    }

    pub fn stats(&self) -> &FlushStats {
        match self {
            GroupCommit::Log(log) => &log.stats,
            GroupCommit::Postgres(pg) => pg.stats(),
        }
    }
}
