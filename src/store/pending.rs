//! Events in the log the processor has not committed yet, in id order.
//!
//! Filled by `append_events` (under the same lock that hands out ids and
//! appends to the log, so this queue, the log and id order agree), drained
//! by the processor after each commit, and rebuilt at start by scanning the
//! log from the processor's cursor. Readers take a snapshot under the lock
//! together with `processed_upto`, the last id whose state is committed:
//! every id up to it is in sled's indexes, every id after it is here, so a
//! page joins the two without gaps or repeats while the processor moves.

use super::log::Location;
use crate::ids::{EventId, SourceId};
use bytes::Bytes;
use std::collections::VecDeque;

/// Record bodies kept in memory for the processor up to this many bytes in
/// total; beyond it (a processor far behind) they are read back from the log.
const BODY_BUDGET: usize = 32 << 20;

#[derive(Clone)]
pub(crate) struct PendingEntry {
    pub id: EventId,
    pub source: SourceId,
    pub at: Location,
    /// The log sequence number that makes this record durable.
    pub lsn: u64,
    /// The record as logged, while it fits the memory budget. `Bytes`: the
    /// encoded record moves in without a copy.
    pub body: Option<Bytes>,
}

#[derive(Default)]
pub(crate) struct Pending {
    /// The last event id handed out (as u128).
    pub last_id: u128,
    pub processed_upto: Option<EventId>,
    entries: VecDeque<PendingEntry>,
    body_bytes: usize,
}

impl Pending {
    pub fn push(&mut self, mut entry: PendingEntry) {
        match &entry.body {
            Some(body) if self.body_bytes + body.len() <= BODY_BUDGET => {
                self.body_bytes += body.len();
            }
            _ => entry.body = None,
        }
        self.entries.push_back(entry);
    }

    /// Up to `limit` of the oldest entries after `after` that are durable by `synced`.
    pub fn oldest(&self, after: Option<EventId>, limit: usize, synced: u64) -> Vec<PendingEntry> {
        let start = after.map_or(0, |a| self.entries.partition_point(|e| e.id <= a));
        self.entries
            .range(start..)
            .take(limit)
            .take_while(|e| e.lsn <= synced)
            .cloned()
            .collect()
    }

    /// Forgets every entry up to `last` (now committed).
    pub fn done(&mut self, last: EventId) {
        while let Some(front) = self.entries.front() {
            if front.id > last {
                break;
            }
            if let Some(body) = &front.body {
                self.body_bytes -= body.len();
            }
            self.entries.pop_front();
        }
        self.processed_upto = self.processed_upto.max(Some(last));
    }

    pub fn get(&self, id: EventId) -> Option<&PendingEntry> {
        let i = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries.get(i)
    }

    /// Drops the in-memory copy of an entry's body (erasure: reads then go
    /// through the store, which knows the event is scrubbed).
    pub fn forget_body(&mut self, id: EventId) {
        if let Ok(i) = self.entries.binary_search_by_key(&id, |e| e.id) {
            if let Some(body) = self.entries[i].body.take() {
                self.body_bytes -= body.len();
            }
        }
    }

    /// Ids newest first, of one source or all, strictly before `before`.
    pub fn ids_newest_first(
        &self,
        source: Option<SourceId>,
        before: Option<EventId>,
        cap: usize,
    ) -> Vec<EventId> {
        self.entries
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .filter(|e| source.is_none_or(|s| e.source == s))
            .take(cap)
            .map(|e| e.id)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &PendingEntry> {
        self.entries.iter()
    }
}
