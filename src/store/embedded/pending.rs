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
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::RawEvent;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// Decoded events kept in memory for the processor, up to about this many
/// bytes in total (each charged `DECODED_PER_ENCODED_BYTE` times its
/// record's length: a JSON tree in memory takes a few times its text).
const DECODED_BUDGET: usize = 16 << 20;
const DECODED_PER_ENCODED_BYTE: usize = 4;

/// Past the decoded budget (a processor behind), records are kept as bytes
/// up to this many; past both, the processor reads them from the log.
const ENCODED_BUDGET: usize = 32 << 20;

/// What the queue holds of a record besides its place in the log.
#[derive(Clone)]
pub(crate) enum Held {
    /// The event as the request path decoded it: the processor takes it
    /// as is instead of parsing the record again (measured,
    /// docs/performance.md).
    Decoded(Arc<RawEvent>),
    /// The record's bytes: decoded when taken, without reading the log.
    Encoded(Bytes),
    /// Nothing: the record is read from the log.
    InLog,
}

#[derive(Clone)]
pub(crate) struct PendingEntry {
    pub id: EventId,
    pub source: SourceId,
    pub at: Location,
    /// The log sequence number that makes this record durable.
    pub lsn: u64,
    pub held: Held,
}

#[derive(Default)]
pub(crate) struct Pending {
    /// The last event id handed out (as u128).
    pub last_id: u128,
    pub processed_upto: Option<EventId>,
    entries: VecDeque<PendingEntry>,
    decoded_bytes: usize,
    encoded_bytes: usize,
}

impl Pending {
    /// Queues a record, keeping the decoded event or else its bytes while
    /// they fit their budgets (`at.len` is the record's length).
    pub fn push(
        &mut self,
        id: EventId,
        source: SourceId,
        (at, lsn): (Location, u64),
        event: Option<Arc<RawEvent>>,
        body: Option<Bytes>,
    ) {
        let len = at.len as usize;
        let held = match (event, body) {
            (Some(event), _)
                if self.decoded_bytes + len * DECODED_PER_ENCODED_BYTE <= DECODED_BUDGET =>
            {
                Held::Decoded(event)
            }
            (_, Some(body)) if self.encoded_bytes + len <= ENCODED_BUDGET => Held::Encoded(body),
            _ => Held::InLog,
        };
        self.charge(&held, len, true);
        self.entries.push_back(PendingEntry {
            id,
            source,
            at,
            lsn,
            held,
        });
    }

    /// Adds (`add`) or releases what `held` takes of the budgets.
    fn charge(&mut self, held: &Held, len: usize, add: bool) {
        let (total, amount) = match held {
            Held::Decoded(_) => (&mut self.decoded_bytes, len * DECODED_PER_ENCODED_BYTE),
            Held::Encoded(_) => (&mut self.encoded_bytes, len),
            Held::InLog => return,
        };
        if add {
            *total += amount;
        } else {
            *total -= amount;
        }
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
        while self.entries.front().is_some_and(|e| e.id <= last) {
            if let Some(entry) = self.entries.pop_front() {
                self.charge(&entry.held, entry.at.len as usize, false);
            }
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
            let held = std::mem::replace(&mut self.entries[i].held, Held::InLog);
            let len = self.entries[i].at.len as usize;
            self.charge(&held, len, false);
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

    fn push(pending: &mut Pending, n: u8, len: u32) -> EventId {
        let id = EventId(uuid::Uuid::from_u128(u128::from(n) + 1));
        let source = SourceId::new();
        let at = Location {
            segment: 1,
            offset: 0,
            len,
        };
        let event = RawEvent::received(source, serde_json::json!({ "n": n }));
        let body = Bytes::from(vec![0u8; len as usize]);
        pending.push(id, source, (at, 0), Some(Arc::new(event)), Some(body));
        id
    }

    fn held(pending: &Pending) -> Vec<&'static str> {
        pending
            .iter()
            .map(|e| match e.held {
                Held::Decoded(_) => "decoded",
                Held::Encoded(_) => "encoded",
                Held::InLog => "log",
            })
            .collect()
    }

    /// Decoded events stay in memory up to their budget, then records as
    /// bytes up to theirs, then the log; committing or erasing frees budget.
    #[test]
    fn the_queue_keeps_what_fits_its_budgets() {
        let len = (DECODED_BUDGET / DECODED_PER_ENCODED_BYTE / 2) as u32;
        let mut pending = Pending::default();
        let ids: Vec<EventId> = (0..2 + ENCODED_BUDGET / len as usize + 1)
            .map(|n| push(&mut pending, n as u8, len))
            .collect();
        let kinds = held(&pending);
        assert_eq!(&kinds[..3], &["decoded", "decoded", "encoded"]);
        assert_eq!(kinds.last(), Some(&"log"));
        pending.done(ids[0]);
        let next = push(&mut pending, 200, len);
        assert!(matches!(pending.get(next).unwrap().held, Held::Decoded(_)));
        pending.forget_event(next);
        assert!(matches!(pending.get(next).unwrap().held, Held::InLog));
        assert_eq!(pending.decoded_bytes, DECODED_BUDGET / 2);
    }
}
