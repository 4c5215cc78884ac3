//! Many nodes on one store: which of them processes, and how the others
//! keep their counts current.
//!
//! Only a node the store lets process ([`StateStore::may_process`]: the
//! embedded store always, PostgreSQL while this node holds the processing
//! lease) runs batches, replays and maintenance. The others wait, and
//! refresh their counters from the store every [`REFRESH_EVERY`] so their
//! API, dashboard and `/metrics` show the processing node's work.
//!
//! The committer writes *absolute* counts (the live counters plus the
//! batch), so a node must start processing from the store's numbers, not
//! from what it last saw: on taking the lease over, and after a batch was
//! fenced (another node processed those events, so its counts moved), it
//! [`Processor::take_over`]s: waits for its committer to be idle, forgets
//! what it planned, and reloads counters and learned schemas. The refresh
//! and the takeover run on the loop's own task, one after the other, so a
//! follower's refresh never lands on counts the committer already moved.

use super::worker::{self, Work};
use super::{Processor, StoreResult};
use crate::domain::ids::EventId;
use crate::store::StateStore;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

/// How often counts are read from the store on a node of a cluster.
pub(super) const REFRESH_EVERY: Duration = Duration::from_secs(1);

impl Processor {
    /// Whether this node may run batches now.
    pub(super) fn may_process(&self) -> bool {
        self.store.may_process()
    }

    /// Asks for a takeover before the next batch (see the module comment).
    pub(super) fn resync(&self) {
        self.resync.store(true, Ordering::SeqCst);
    }

    /// Whether a takeover was asked for (and clears the request).
    pub(super) fn must_resync(&self) -> bool {
        self.resync.swap(false, Ordering::SeqCst)
    }

    /// Becomes the processing node: the committer idle, nothing planned
    /// kept (the planner starts from the committed cursor), and counters and
    /// schemas as the previous processing node committed them. Open replay
    /// jobs and queued retries are in the store and simply go on.
    pub(super) fn take_over(&self, work: &SyncSender<Work>) -> StoreResult<()> {
        worker::quiesce(work)?;
        self.forget_planned();
        self.refresh_all_counts()?;
        for (source, bytes) in self.store.schemas()? {
            match serde_json::from_slice(&bytes) {
                Ok(schema) => self.schemas.load(source, schema),
                Err(e) => {
                    tracing::warn!(%source, error = %e, "ignoring an unreadable schema snapshot")
                }
            }
        }
        tracing::info!("this node now processes events");
        Ok(())
    }

    /// A node that does not process: every count as the store has it.
    pub(super) fn refresh_all_counts(&self) -> StoreResult<()> {
        let (counts, pending) = self.store.counts_with_pending()?;
        self.counters.refresh_all(
            counts,
            &pending,
            self.store.old_token_uses()?,
            self.store.persisted_activity()?,
        );
        Ok(())
    }

    /// The processing node: only `received` (other nodes' requests); its
    /// processed counts are its own commits.
    pub(super) fn refresh_received(&self) -> StoreResult<()> {
        let (counts, pending) = self.store.counts_with_pending()?;
        self.counters.refresh_received(&counts, &pending);
        Ok(())
    }

    /// The retries asked on any node: this node's, and those other nodes
    /// queued in the store.
    pub(super) fn take_retries(&self) -> StoreResult<Vec<EventId>> {
        let mut ids = {
            let mut queued = self
                .retries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *queued)
        };
        if self.config.cluster {
            ids.extend(self.store.take_retries()?);
        }
        Ok(ids)
    }
}
