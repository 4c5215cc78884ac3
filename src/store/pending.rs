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
use crate::model::RawEvent;
use std::collections::VecDeque;
use std::sync::Arc;

/// Decoded events kept in memory for the processor up to about this many
/// bytes in total; beyond it (a processor far behind) they are read back
/// from the log and decoded there.
const EVENT_BUDGET: usize = 32 << 20;

/// What a decoded event is charged per byte of its encoded record: a JSON
/// tree in memory takes a few times its text.
const DECODED_PER_ENCODED_BYTE: usize = 4;

#[derive(Clone)]
pub(crate) struct PendingEntry {
    pub id: EventId,
    pub source: SourceId,
    pub at: Location,
    /// The log sequence number that makes this record durable.
    pub lsn: u64,
    /// The event as the request path decoded it, while it fits the memory
    /// budget: the processor takes it from here rather than reading the
    /// log and parsing the record again (measured, docs/performance.md).
    pub event: Option<Arc<RawEvent>>,
    /// What `event` is charged against the budget.
    charge: usize,
}

impl PendingEntry {
    /// An entry for the record at `at`, `encoded` bytes long in the log.
    pub fn new(
        event_id: EventId,
        source: SourceId,
        at: Location,
        lsn: u64,
        event: Option<Arc<RawEvent>>,
    ) -> Self {
        let charge = event
            .as_ref()
            .map_or(0, |_| at.len as usize * DECODED_PER_ENCODED_BYTE);
        Self {
            id: event_id,
            source,
            at,
            lsn,
            event,
            charge,
        }
    }
}

#[derive(Default)]
pub(crate) struct Pending {
    /// The last event id handed out (as u128).
    pub last_id: u128,
    pub processed_upto: Option<EventId>,
    entries: VecDeque<PendingEntry>,
    charged: usize,
}

impl Pending {
    pub fn push(&mut self, mut entry: PendingEntry) {
        if self.charged + entry.charge <= EVENT_BUDGET {
            self.charged += entry.charge;
        } else {
            entry.event = None;
            entry.charge = 0;
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
            self.charged -= front.charge;
            self.entries.pop_front();
        }
        self.processed_upto = self.processed_upto.max(Some(last));
    }

    pub fn get(&self, id: EventId) -> Option<&PendingEntry> {
        let i = self.entries.binary_search_by_key(&id, |e| e.id).ok()?;
        self.entries.get(i)
    }

    /// Drops the in-memory copy of an event (erasure: reads then go
    /// through the store, which knows the event is scrubbed).
    pub fn forget_event(&mut self, id: EventId) {
        if let Ok(i) = self.entries.binary_search_by_key(&id, |e| e.id) {
            let entry = &mut self.entries[i];
            entry.event = None;
            self.charged -= std::mem::take(&mut entry.charge);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, len: u32) -> PendingEntry {
        let id = EventId(uuid::Uuid::from_u128(u128::from(n) + 1));
        let source = SourceId::new();
        let at = Location {
            segment: 1,
            offset: 0,
            len,
        };
        let event = RawEvent::received(source, serde_json::json!({ "n": n }));
        PendingEntry::new(id, source, at, 0, Some(Arc::new(event)))
    }

    /// Decoded events stay in memory up to the budget only; past it the
    /// processor reads the log. Committing frees budget for new events.
    #[test]
    fn decoded_events_are_kept_within_the_budget() {
        let len = (EVENT_BUDGET / DECODED_PER_ENCODED_BYTE / 2) as u32;
        let mut pending = Pending::default();
        for n in 0..3 {
            pending.push(entry(n, len));
        }
        let kept: Vec<bool> = pending.iter().map(|e| e.event.is_some()).collect();
        assert_eq!(kept, vec![true, true, false]);
        let first = pending.iter().next().unwrap().id;
        pending.done(first);
        pending.push(entry(3, len));
        let last = pending.iter().last().unwrap().id;
        assert!(pending.get(last).unwrap().event.is_some());
        pending.forget_event(last);
        assert!(pending.get(last).unwrap().event.is_none());
        assert!(pending
            .iter()
            .all(|e| e.id > EventId(uuid::Uuid::from_u128(1))));
        assert_eq!(pending.charged, EVENT_BUDGET / 2);
    }
}
