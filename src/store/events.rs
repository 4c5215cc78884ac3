//! The durable event log, processed state, the processor cursor and counters.

use super::{decode, encode, Store, StoreResult};
use crate::counters::Counts;
use crate::ids::{EventId, SourceId};
use crate::model::{EventState, EventStatus, RawEvent};
use std::collections::HashMap;
use std::ops::Bound;

pub(super) const CURSOR_KEY: &[u8] = b"cursor";
const COUNTS_PREFIX: &[u8] = b"counts/";
const SCHEMA_PREFIX: &[u8] = b"schema/";

/// A stored event with whatever the processor has decided about it.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub raw: RawEvent,
    pub state: Option<EventState>,
}

impl StoredEvent {
    pub fn status(&self) -> EventStatus {
        self.state
            .as_ref()
            .and_then(|s| s.status)
            .unwrap_or(EventStatus::Pending)
    }
}

/// What to list from the event log.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub source_id: Option<SourceId>,
    pub status: Option<EventStatus>,
    /// Matches an email, external id, visitor id, event id or profile id.
    pub search: Option<String>,
    pub limit: usize,
    pub before: Option<EventId>,
}

/// How many events a filtered page scans at most: a rare filter costs a
/// bounded amount of work, and the page says where it stopped.
const SCAN_CAP: usize = 20_000;

impl Store {
    /// Stores every record of one request atomically (all or nothing),
    /// assigning their event ids. The caller then waits for the group flush
    /// before acknowledging.
    ///
    /// Ids are assigned under the append lock, so id order is commit order:
    /// the processor's cursor (the last id it processed) can never skip an
    /// event whose request committed late. The lock covers only in-memory
    /// sled work, never a flush.
    pub fn append_events(&self, events: &mut [RawEvent]) -> StoreResult<()> {
        let mut last = self
            .append_lock
            .lock()
            .map_err(|_| super::StoreError::Other("append lock poisoned".into()))?;
        for event in events.iter_mut() {
            event.id = next_event_id(&mut last);
        }
        // One batch on one tree: atomic, and unlike a multi-tree sled
        // transaction it does not take sled's global write lock, which under
        // load stalls every concurrent request. The per-source index is
        // written by the processor instead (see `commit_batch`).
        let mut batch = sled::Batch::default();
        for event in events.iter() {
            let key = event.id.to_bytes();
            let value = encode_raw(event);
            if let Some(wal) = &self.wal {
                wal.append(&key, &value);
            }
            batch.insert(&key, value);
        }
        self.trees.events.apply_batch(batch)?;
        Ok(())
    }

    pub fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        self.trees
            .events
            .get(id.to_bytes())?
            .map(|b| decode_raw(&b))
            .transpose()
    }

    pub fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        self.trees
            .event_state
            .get(id.to_bytes())?
            .map(|b| decode("event_state", &b))
            .transpose()
    }

    pub fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        let Some(raw) = self.raw_event(id)? else {
            return Ok(None);
        };
        let state = self.event_state(id)?;
        Ok(Some(StoredEvent { raw, state }))
    }

    /// Overwrites a raw event (only erasure does this: personal fields removed).
    pub fn replace_raw_event(&self, raw: &RawEvent) -> StoreResult<()> {
        self.trees
            .events
            .insert(raw.id.to_bytes(), encode_raw(raw))?;
        Ok(())
    }

    /// Up to `limit` events stored after `cursor`, oldest first (the processor's feed).
    pub fn events_after(
        &self,
        cursor: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<RawEvent>> {
        let range = match cursor {
            Some(c) => self.trees.events.range((
                std::ops::Bound::Excluded(c.to_bytes().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.trees.events.range::<Vec<u8>, _>(..),
        };
        range.take(limit).map(|item| decode_raw(&item?.1)).collect()
    }

    /// Events newest first, filtered; returns the page and the cursor for the next.
    pub fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        let ids = self.candidate_ids(filter);
        let mut out = Vec::new();
        let mut last_scanned = None;
        let mut scanned = 0;
        for id in ids.take(SCAN_CAP) {
            let id = id?;
            scanned += 1;
            last_scanned = Some(id);
            let Some(event) = self.event(id)? else {
                continue;
            };
            if self.matches(filter, &event) {
                out.push(event);
                if out.len() >= filter.limit {
                    return Ok((out, Some(id)));
                }
            }
        }
        // The scan cap was hit before the page filled: let the caller go on
        // from where this scan stopped. Otherwise the log is exhausted.
        let next = if scanned >= SCAN_CAP {
            last_scanned
        } else {
            None
        };
        Ok((out, next))
    }

    /// Event ids newest first: from the per-source index when a source is
    /// given, else from the log itself.
    fn candidate_ids(
        &self,
        filter: &EventFilter,
    ) -> Box<dyn Iterator<Item = StoreResult<EventId>> + '_> {
        match filter.source_id {
            Some(source) => self.source_ids_newest_first(source, filter.before),
            None => {
                let range = match filter.before {
                    Some(b) => self.trees.events.range(..b.to_bytes().to_vec()),
                    None => self.trees.events.range::<Vec<u8>, _>(..),
                };
                Box::new(range.keys().rev().map(|k| Ok(id_at(&k?, 0))))
            }
        }
    }

    /// A source's event ids newest first: first the events the processor
    /// has not reached (scanned from the log, reading only the source id
    /// each value starts with), then the per-source index, which holds
    /// exactly the processed ones. Both parts are split at one cursor value
    /// read up front, so an id never appears twice even while the processor
    /// moves on.
    fn source_ids_newest_first(
        &self,
        source: SourceId,
        before: Option<EventId>,
    ) -> Box<dyn Iterator<Item = StoreResult<EventId>> + '_> {
        let cursor = match self.cursor() {
            Ok(c) => c,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let upper = before.map(|b| b.to_bytes().to_vec());
        let lower = cursor.map(|c| c.to_bytes().to_vec());
        let tail: Box<dyn Iterator<Item = StoreResult<EventId>>> = match (&lower, &upper) {
            (Some(l), Some(u)) if l >= u => Box::new(std::iter::empty()),
            _ => {
                let range = self.trees.events.range::<Vec<u8>, _>((
                    lower.clone().map_or(Bound::Unbounded, Bound::Excluded),
                    upper.clone().map_or(Bound::Unbounded, Bound::Excluded),
                ));
                let wanted = source.to_bytes();
                Box::new(range.rev().filter_map(move |item| match item {
                    Ok((k, v)) => (v.get(..16) == Some(&wanted[..])).then(|| Ok(id_at(&k, 0))),
                    Err(e) => Some(Err(e.into())),
                }))
            }
        };
        let index_upper = match (before, cursor) {
            (Some(b), Some(c)) => by_source_key(
                source,
                b.min(EventId(uuid::Uuid::from_u128(c.0.as_u128() + 1))),
            ),
            (Some(b), None) => by_source_key(source, b),
            (None, Some(c)) => by_source_key(
                source,
                EventId(uuid::Uuid::from_u128(c.0.as_u128().saturating_add(1))),
            ),
            (None, None) => by_source_key(source, EventId(uuid::Uuid::nil())),
        };
        let index_lower = by_source_key(source, EventId(uuid::Uuid::nil()));
        let indexed = self
            .trees
            .events_by_source
            .range(index_lower..index_upper)
            .keys()
            .rev()
            .map(|k| Ok(id_at(&k?, 16)));
        Box::new(tail.chain(indexed))
    }

    fn matches(&self, filter: &EventFilter, event: &StoredEvent) -> bool {
        if filter.status.is_some_and(|s| event.status() != s) {
            return false;
        }
        let Some(needle) = filter.search.as_deref() else {
            return true;
        };
        let needle = needle.trim();
        if event.raw.id.to_string() == needle {
            return true;
        }
        let Some(state) = &event.state else {
            return false;
        };
        let profile_hit = state.profile_id.is_some_and(|p| p.to_string() == needle);
        let mapped_hit = state.mapped.as_ref().is_some_and(|m| {
            m.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(needle))
                || m.external_id.as_deref() == Some(needle)
                || m.visitor_id.as_deref() == Some(needle)
                || m.event_id.as_deref() == Some(needle)
        });
        profile_hit || mapped_hit
    }

    pub fn cursor(&self) -> StoreResult<Option<EventId>> {
        Ok(self
            .trees
            .meta
            .get(CURSOR_KEY)?
            .and_then(|b| EventId::from_slice(&b)))
    }

    /// Persisted per-source counters (written by `commit_batch`).
    pub fn persisted_counts(&self) -> StoreResult<HashMap<SourceId, Counts>> {
        let mut out = HashMap::new();
        for item in self.trees.meta.scan_prefix(COUNTS_PREFIX) {
            let (key, value) = item?;
            if let Some(id) = SourceId::from_slice(&key[COUNTS_PREFIX.len()..]) {
                out.insert(id, decode("meta", &value)?);
            }
        }
        Ok(out)
    }

    /// Events waiting for the processor, per source (a scan from the cursor:
    /// bounded by the processor's lag, done once at start).
    pub fn pending_by_source(&self) -> StoreResult<HashMap<SourceId, u64>> {
        let cursor = self.cursor()?;
        let mut out: HashMap<SourceId, u64> = HashMap::new();
        let range = match cursor {
            Some(c) => self.trees.events.range((
                std::ops::Bound::Excluded(c.to_bytes().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.trees.events.range::<Vec<u8>, _>(..),
        };
        for item in range {
            let (_, bytes) = item?;
            if let Some(source) = bytes.get(..16).and_then(SourceId::from_slice) {
                *out.entry(source).or_default() += 1;
            }
        }
        Ok(out)
    }

    /// Event ids of one source newest first, after `before` (used by replay).
    pub fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        let lower = match after {
            Some(a) => by_source_key(source, a),
            None => by_source_key(source, EventId(uuid::Uuid::nil())),
        };
        let upper = by_source_key(source, EventId(uuid::Uuid::max()));
        self.trees
            .events_by_source
            .range((
                std::ops::Bound::Excluded(lower),
                std::ops::Bound::Excluded(upper),
            ))
            .keys()
            .take(limit)
            .map(|k| Ok(id_at(&k?, 16)))
            .collect()
    }

    /// Saves a learned schema snapshot (JSON) for a source.
    pub fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        self.trees.meta.insert(schema_key(source), schema)?;
        Ok(())
    }

    /// Every persisted schema snapshot.
    pub fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.trees.meta.scan_prefix(SCHEMA_PREFIX) {
            let (key, value) = item?;
            if let Some(id) = SourceId::from_slice(&key[SCHEMA_PREFIX.len()..]) {
                out.push((id, value.to_vec()));
            }
        }
        Ok(out)
    }
}

/// A stored event: its source id (16 bytes, so per-source scans of the log
/// need not parse the JSON) followed by the event as JSON.
fn encode_raw(event: &RawEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&event.source_id.to_bytes());
    // Writing our own plain types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, event);
    out
}

fn decode_raw(bytes: &[u8]) -> StoreResult<RawEvent> {
    decode("events", bytes.get(16..).unwrap_or_default())
}

/// A UUID v7 strictly greater than the last one handed out.
fn next_event_id(last: &mut u128) -> EventId {
    let fresh = uuid::Uuid::now_v7().as_u128();
    let id = if fresh > *last { fresh } else { *last + 1 };
    *last = id;
    EventId(uuid::Uuid::from_u128(id))
}

/// The event id stored at `offset` in a key (our keys always hold one).
fn id_at(key: &[u8], offset: usize) -> EventId {
    key.get(offset..offset + 16)
        .and_then(EventId::from_slice)
        .unwrap_or(EventId(uuid::Uuid::nil()))
}

pub(super) fn by_source_key(source: SourceId, event: EventId) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(&source.to_bytes());
    key[16..].copy_from_slice(&event.to_bytes());
    key
}

pub(super) fn counts_key(source: SourceId) -> Vec<u8> {
    [COUNTS_PREFIX, &source.to_bytes()].concat()
}

fn schema_key(source: SourceId) -> Vec<u8> {
    [SCHEMA_PREFIX, &source.to_bytes()].concat()
}

impl Store {
    /// The event holding an idempotency key, if any. Only the processor
    /// claims keys (inside its batch transaction), so a read outside the
    /// transaction is current.
    pub fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        Ok(self
            .trees
            .dedupe
            .get(key)?
            .and_then(|v| EventId::from_slice(&v)))
    }

    /// Removes the oldest processed events beyond `keep` (with their state
    /// and index entries). Counting is a key scan, so this runs from the
    /// processor's periodic maintenance, never per request.
    pub fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        let len = self.trees.events.len() as u64;
        if len <= keep {
            return Ok(0);
        }
        let cursor = self.cursor()?.map(|c| c.to_bytes());
        let mut removed = 0;
        for item in self.trees.events.iter().take((len - keep) as usize) {
            let (key, bytes) = item?;
            if cursor.is_none_or(|c| key.as_ref() > c.as_slice()) {
                break; // never prune what the processor has not seen
            }
            let raw = decode_raw(&bytes)?;
            self.trees.events.remove(&key)?;
            self.trees.event_state.remove(&key)?;
            self.trees
                .events_by_source
                .remove(by_source_key(raw.source_id, raw.id))?;
            removed += 1;
        }
        Ok(removed)
    }
}

impl Store {
    /// Removes an event's personal data (erasure): the payload, envelope and
    /// headers are replaced by a marker, and the mapped identifiers, traits
    /// and properties are cleared. The event's existence and status remain,
    /// so counts and audit stay consistent.
    pub fn scrub_event(&self, id: EventId) -> StoreResult<()> {
        if let Some(mut raw) = self.raw_event(id)? {
            raw.payload = serde_json::json!({"_erased": true});
            raw.envelope = None;
            raw.headers.clear();
            self.replace_raw_event(&raw)?;
        }
        if let Some(mut state) = self.event_state(id)? {
            if let Some(mapped) = state.mapped.as_mut() {
                mapped.email = None;
                mapped.external_id = None;
                mapped.visitor_id = None;
                mapped.traits.clear();
                mapped.properties.clear();
            }
            state.profile_id = None;
            state.warnings.clear();
            self.trees
                .event_state
                .insert(id.to_bytes(), encode(&state))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RequestId;
    use crate::store::batch::Planned;

    fn raw(source: SourceId, n: i64) -> RawEvent {
        RawEvent {
            id: EventId(uuid::Uuid::nil()),
            source_id: source,
            request_id: RequestId::new(),
            received_at: chrono::Utc::now(),
            payload: serde_json::json!({ "n": n }),
            envelope: None,
            headers: serde_json::Map::new(),
            not_mappable: None,
        }
    }

    fn ids(store: &Store, source: SourceId, before: Option<EventId>) -> Vec<EventId> {
        let filter = EventFilter {
            source_id: Some(source),
            limit: 100,
            before,
            ..EventFilter::default()
        };
        let (page, _) = store.events_page(&filter).unwrap();
        page.iter().map(|e| e.raw.id).collect()
    }

    #[test]
    fn retention_prunes_the_oldest_processed_events_only() {
        let store = Store::temporary().unwrap();
        let source = SourceId::new();
        let mut events: Vec<RawEvent> = (0..5).map(|n| raw(source, n)).collect();
        store.append_events(&mut events).unwrap();
        // Only the first two are processed: the rest must survive any retention.
        store
            .commit_batch(&[], Some(events[1].id), &HashMap::new(), |_, _, _, _| {})
            .unwrap();
        assert_eq!(store.prune_events(1).unwrap(), 2);
        assert!(store.raw_event(events[1].id).unwrap().is_none());
        assert!(store.raw_event(events[2].id).unwrap().is_some());
        assert_eq!(store.prune_events(1).unwrap(), 0);
    }

    #[test]
    fn a_source_page_joins_processed_and_pending_events_without_repeats() {
        let store = Store::temporary().unwrap();
        let (a, b) = (SourceId::new(), SourceId::new());
        let mut events: Vec<RawEvent> = (0..6)
            .map(|n| raw(if n % 2 == 0 { a } else { b }, n))
            .collect();
        store.append_events(&mut events).unwrap();
        // The processor has handled the first four events only.
        let plans: Vec<Planned> = events[..4]
            .iter()
            .map(|e| Planned {
                event_id: e.id,
                state: EventState::default(),
                errors: Vec::new(),
                resolve: None,
                dedupe_key: None,
                index_under: Some(e.source_id),
            })
            .collect();
        store
            .commit_batch(&plans, Some(events[3].id), &HashMap::new(), |_, _, _, _| {})
            .unwrap();
        let expected: Vec<EventId> = [4, 2, 0].iter().map(|i| events[*i].id).collect();
        assert_eq!(ids(&store, a, None), expected);
        assert_eq!(ids(&store, a, Some(events[4].id)), expected[1..].to_vec());
        assert_eq!(ids(&store, b, Some(events[3].id)), vec![events[1].id]);
        assert_eq!(store.pending_by_source().unwrap().get(&b), Some(&1));
    }
}
