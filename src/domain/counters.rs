//! Per-source event counters, kept as numbers rather than computed by
//! scanning, so `GET /api/sources/{id}` stays O(1) at any volume.
//!
//! `received` is bumped by the request path as soon as the events are in the
//! log (before the flush, which a hung-up sender can cancel); the
//! status counts are changed only by the processor, which persists them in
//! the same sled transaction as the events' states, so they never drift from
//! the stored truth across a crash. `pending` is derived: received minus
//! everything processed.
//!
//! The same counts per minute, hour and day (`activity`, see
//! `domain::activity`) are kept only by the processor, `received` included,
//! so the request path pays nothing for them.

use crate::domain::activity::Activity;
use crate::domain::ids::SourceId;
use crate::domain::model::EventStatus;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Persisted counts of processed events by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub resolved: u64,
    pub failed: u64,
    pub unmapped: u64,
    #[serde(default)]
    pub duplicate: u64,
}

impl Counts {
    pub fn processed(&self) -> u64 {
        self.resolved + self.failed + self.unmapped + self.duplicate
    }

    fn slot(&mut self, status: EventStatus) -> Option<&mut u64> {
        match status {
            EventStatus::Resolved => Some(&mut self.resolved),
            EventStatus::Failed => Some(&mut self.failed),
            EventStatus::Unmapped => Some(&mut self.unmapped),
            EventStatus::Duplicate => Some(&mut self.duplicate),
            EventStatus::Pending => None,
        }
    }

    /// An event moved from `from` (None: first processing) to `to`.
    pub fn record(&mut self, from: Option<EventStatus>, to: EventStatus) {
        if let Some(slot) = from.and_then(|f| self.slot(f)) {
            *slot = slot.saturating_sub(1);
        }
        if let Some(slot) = self.slot(to) {
            *slot += 1;
        }
    }
}

/// The API view: `{"received", "pending", "resolved", "failed", "unmapped",
/// "duplicate", "old_token_requests", "redelivered"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CountsView {
    pub received: u64,
    pub pending: u64,
    pub resolved: u64,
    pub failed: u64,
    pub unmapped: u64,
    pub duplicate: u64,
    /// Requests answered as repeats of a delivery already accepted (not in
    /// `received`: nothing was stored). Kept by the store, not here; the
    /// service fills it in (`service::sources`).
    pub redelivered: u64,
    /// Requests on the URL the last rotation replaced, since that rotation
    /// (see [`OldTokenUse`]).
    pub old_token_requests: u64,
}

/// Requests on a source's rotated-out token since the rotation: how many,
/// and the last one, so the user sees when the last sender moved. Kept by
/// the request path (any request on that token, accepted or refused) and
/// persisted by it at each request (`StateStore::put_old_token_use`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldTokenUse {
    pub requests: u64,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct SourceCounters {
    received: AtomicU64,
    processed: Mutex<Counts>,
    /// Since the last rotation; replaced whole, as `processed` is.
    old_token: Mutex<OldTokenUse>,
}

impl SourceCounters {
    /// The processed counts, also after a panic elsewhere poisoned the lock:
    /// they are only ever replaced whole (`*guard = counts`), so a poisoned
    /// value is still a consistent one, and reading zeros instead (as this
    /// did) would show every event as pending and count the source's events
    /// again from nothing.
    fn processed(&self) -> MutexGuard<'_, Counts> {
        self.processed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn view(&self) -> CountsView {
        let received = self.received.load(Ordering::Relaxed);
        let c = *self.processed();
        CountsView {
            received,
            pending: received.saturating_sub(c.processed()),
            resolved: c.resolved,
            failed: c.failed,
            unmapped: c.unmapped,
            duplicate: c.duplicate,
            redelivered: 0,
            old_token_requests: self.old_token().requests,
        }
    }

    /// Poison-proof for the same reason as `processed`.
    fn old_token(&self) -> MutexGuard<'_, OldTokenUse> {
        self.old_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// All sources' counters: the totals, and the same counts per time bucket
/// (`activity`, kept by the processor only; see `domain::activity`).
#[derive(Default)]
pub struct Counters {
    by_source: DashMap<SourceId, Arc<SourceCounters>>,
    activity: Activity,
}

impl Counters {
    /// Rebuilds the counters at start from what the store persisted and the
    /// events still waiting for the processor.
    pub fn restore(persisted: HashMap<SourceId, Counts>, pending: HashMap<SourceId, u64>) -> Self {
        let counters = Counters::default();
        for (source, counts) in persisted {
            let entry = counters.entry(source);
            entry
                .received
                .fetch_add(counts.processed(), Ordering::Relaxed);
            *entry.processed() = counts;
        }
        for (source, n) in pending {
            counters
                .entry(source)
                .received
                .fetch_add(n, Ordering::Relaxed);
        }
        counters
    }

    /// Installs the time buckets restored at start.
    pub fn with_activity(mut self, activity: Activity) -> Self {
        self.activity = activity;
        self
    }

    /// The per-minute, per-hour and per-day buckets.
    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    fn entry(&self, source: SourceId) -> Arc<SourceCounters> {
        self.by_source.entry(source).or_default().clone()
    }

    pub fn add_received(&self, source: SourceId, n: u64) {
        self.entry(source).received.fetch_add(n, Ordering::Relaxed);
    }

    /// The source's processed counts now (zero for a source with none yet).
    pub fn counts(&self, source: SourceId) -> Counts {
        self.by_source
            .get(&source)
            .map(|e| *e.processed())
            .unwrap_or_default()
    }

    /// Installs counts the processor has just committed.
    pub fn set(&self, source: SourceId, counts: Counts) {
        *self.entry(source).processed() = counts;
    }

    /// The source's counts (all zero for a source with no events yet).
    pub fn view(&self, source: SourceId) -> CountsView {
        self.by_source
            .get(&source)
            .map(|e| e.view())
            .unwrap_or_default()
    }

    /// Sum over every source (for `/metrics`).
    pub fn total(&self) -> CountsView {
        let mut total = CountsView::default();
        for entry in self.by_source.iter() {
            let v = entry.value().view();
            total.received += v.received;
            total.pending += v.pending;
            total.resolved += v.resolved;
            total.failed += v.failed;
            total.unmapped += v.unmapped;
            total.duplicate += v.duplicate;
            total.old_token_requests += v.old_token_requests;
        }
        total
    }

    /// Sets each source's `received` from the store (processed + pending):
    /// with several nodes, events other nodes took count too. Absolute, so
    /// what this node's requests added meanwhile is not counted twice (it
    /// is in the store's numbers already, or in the next refresh's).
    pub fn refresh_received(
        &self,
        persisted: &HashMap<SourceId, Counts>,
        pending: &HashMap<SourceId, u64>,
    ) {
        let sources: std::collections::HashSet<SourceId> =
            persisted.keys().chain(pending.keys()).copied().collect();
        for source in sources {
            let processed = persisted.get(&source).map_or(0, Counts::processed);
            let waiting = pending.get(&source).copied().unwrap_or(0);
            self.entry(source)
                .received
                .store(processed + waiting, Ordering::Relaxed);
        }
    }

    /// Installs everything the store holds: processed counts, received,
    /// old-token uses and time buckets. For a node that does not process
    /// (the processing node's commits are the truth), and for one taking
    /// processing over, whose commits start from these numbers.
    pub fn refresh_all(
        &self,
        persisted: HashMap<SourceId, Counts>,
        pending: &HashMap<SourceId, u64>,
        old_tokens: HashMap<SourceId, OldTokenUse>,
        activity: impl IntoIterator<
            Item = (
                crate::domain::activity::SlotKey,
                crate::domain::activity::Bucket,
            ),
        >,
    ) {
        self.refresh_received(&persisted, pending);
        for (source, counts) in persisted {
            self.set(source, counts);
        }
        for (source, used) in old_tokens {
            *self.entry(source).old_token() = used;
        }
        self.activity.replace(activity);
    }

    /// Installs the old-token counts persisted before a restart.
    pub fn with_old_tokens(self, persisted: HashMap<SourceId, OldTokenUse>) -> Self {
        for (source, used) in persisted {
            *self.entry(source).old_token() = used;
        }
        self
    }

    /// One more request on `source`'s old token at `now`; returns the new
    /// counts (to persist). Never goes back in time: concurrent requests
    /// may arrive here out of order.
    pub fn old_token_used(&self, source: SourceId, now: DateTime<Utc>) -> OldTokenUse {
        let entry = self.entry(source);
        let mut used = entry.old_token();
        used.requests += 1;
        used.last_used_at = used.last_used_at.max(Some(now));
        *used
    }

    /// A rotation made a new old token: its counts start from nothing.
    pub fn reset_old_token(&self, source: SourceId) {
        *self.entry(source).old_token() = OldTokenUse::default();
    }

    pub fn old_token(&self, source: SourceId) -> OldTokenUse {
        self.by_source
            .get(&source)
            .map(|e| *e.old_token())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_sets_received_from_the_store_without_counting_local_requests_twice() {
        let counters = Counters::default();
        let source = SourceId::new();
        // This node took 2 requests; the store also has other nodes' events.
        counters.add_received(source, 2);
        let persisted = HashMap::from([(
            source,
            Counts {
                resolved: 5,
                ..Counts::default()
            },
        )]);
        let pending = HashMap::from([(source, 3)]);
        counters.refresh_received(&persisted, &pending);
        assert_eq!(counters.view(source).received, 8);
        assert_eq!(
            counters.view(source).resolved,
            0,
            "processed counts untouched"
        );
        counters.refresh_all(persisted, &pending, HashMap::new(), Vec::new());
        let view = counters.view(source);
        assert_eq!((view.received, view.resolved, view.pending), (8, 5, 3));
    }

    #[test]
    fn counts_survive_a_panic_that_poisoned_their_lock() {
        let counters = Counters::default();
        let source = SourceId::new();
        let counts = Counts {
            resolved: 3,
            failed: 1,
            unmapped: 0,
            duplicate: 0,
        };
        counters.add_received(source, 5);
        counters.set(source, counts);
        let entry = counters.entry(source);
        let poisoned = std::thread::spawn(move || {
            let _guard = entry.processed.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(poisoned.is_err());
        assert_eq!(counters.counts(source), counts);
        assert_eq!(counters.view(source).pending, 1);
        let later = Counts {
            resolved: 4,
            ..counts
        };
        counters.set(source, later);
        assert_eq!(counters.counts(source), later);
    }
}
