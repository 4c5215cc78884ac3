//! Events: appending to the log, the processor's queue, processed state,
//! pages of recent events, the processor cursor and counters, retention
//! (erasure is in `erasure`).

use super::log::Location;
use super::pending::{Held, Pending};
use super::shared;
use super::{decode, Store, StoreError, StoreResult};
use crate::domain::counters::Counts;
use crate::domain::events::{EventFilter, StoredEvent};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{EventState, RawEvent};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) const CURSOR_KEY: &[u8] = b"cursor";
/// The cursor event's `Location` in the log (where the start-up scan begins).
pub(super) const CURSOR_AT_KEY: &[u8] = b"cursor_at";
/// How many processed events are stored (for retention; kept by the
/// processor's transaction and by pruning, so nothing needs counting).
pub(super) const STORED_KEY: &[u8] = b"events_stored";
const COUNTS_PREFIX: &[u8] = b"counts/";
const SCHEMA_PREFIX: &[u8] = b"schema/";

/// How many events a filtered page scans at most: a rare filter costs a
/// bounded amount of work, and the page says where it stopped.
const SCAN_CAP: usize = 20_000;

/// An event taken from the log for the processor: the event and where it lives.
pub struct Logged {
    /// Shared with the processor's queue, which keeps it until the event's
    /// state is committed.
    pub raw: Arc<RawEvent>,
    pub at: Location,
}

impl Store {
    /// Stores every record of one request (all or nothing: the records are
    /// one contiguous run of the log buffer, written by one `write`),
    /// assigning their event ids. The caller then waits for the group flush
    /// before acknowledging.
    ///
    /// Ids are assigned under the append lock, which also appends to the log
    /// and queues the events for the processor, so id order is log order.
    /// The lock covers in-memory work only (a memcpy into the log buffer),
    /// never a write or a sync. Returns the events as stored (with their
    /// ids); the processor's queue holds them too, decoded, so the
    /// processor does not parse what the request path already parsed.
    ///
    /// What the records of a request share (envelope, headers) is written
    /// once, in a shared record before them (see `store::shared`).
    pub(super) fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Vec<Arc<RawEvent>>> {
        let append_error = StoreError::io("appending to the event log");
        let parts = shared::parts_of(&events);
        let shared_body = parts
            .as_ref()
            .zip(events.first())
            .map(|(parts, first)| shared::encode_parts(first.source_id, parts));
        let mut pending = self.pending_lock()?;
        let shared_at = match &shared_body {
            Some(body) => Some(self.log.append(body).map_err(append_error)?.0),
            None => None,
        };
        let mut stored = Vec::with_capacity(events.len());
        for mut event in events {
            event.id = next_event_id(&mut pending.last_id);
            let body = shared::encode_event(&event, shared_at);
            let place = self
                .log
                .append_with(&body, shared_at.is_none())
                .map_err(append_error)?;
            let event = Arc::new(event);
            let (id, source) = (event.id, event.source_id);
            // A referring record's bytes alone are not the event: past the
            // decoded budget it is read from the log (with its shared record).
            let bytes = shared_at.is_none().then(|| body.into());
            pending.push(id, source, place, Some(event.clone()), bytes);
            stored.push(event);
        }
        Ok(stored)
    }

    pub(super) fn pending_lock(&self) -> StoreResult<std::sync::MutexGuard<'_, Pending>> {
        self.pending
            .lock()
            .map_err(|_| StoreError::Poisoned("append"))
    }

    /// Rebuilds the processor's queue from the log after the committed
    /// cursor (at open). Returns how many events wait.
    pub(super) fn queue_unprocessed(&self) -> StoreResult<usize> {
        let cursor = self.cursor()?;
        let from = self
            .trees
            .meta
            .get(CURSOR_AT_KEY)?
            .and_then(|b| Location::from_slice(&b))
            .map_or((0, 0), |at| (at.segment, at.end()));
        let records = self
            .log
            .scan_from(from)
            .map_err(StoreError::io("reading the event log"))?;
        let mut pending = self.pending_lock()?;
        pending.last_id = cursor.map_or(0, |c| c.0.as_u128());
        pending.processed_upto = cursor;
        let mut queued = 0;
        for record in records {
            if shared::is_shared_record(&record.body) {
                continue;
            }
            let (Some(id), Some(source)) = (
                record.body.get(..16).and_then(EventId::from_slice),
                record.body.get(16..32).and_then(SourceId::from_slice),
            ) else {
                continue;
            };
            if cursor.is_some_and(|c| id <= c) {
                continue;
            }
            pending.last_id = pending.last_id.max(id.0.as_u128());
            pending.push(id, source, (record.at, 0), None, Some(record.body.into()));
            queued += 1;
        }
        Ok(queued)
    }

    /// Up to `limit` of the oldest events after `after` the processor has
    /// not committed, durable ones only (an event is processed only once its
    /// 202 could be sent).
    pub(super) fn next_pending(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        let entries = self.pending_lock()?.oldest(after, limit, self.log.synced());
        let mut out = Vec::with_capacity(entries.len());
        // A request's records come together: their shared record is read once.
        let mut cache = SharedCache::default();
        for entry in entries {
            let raw = match entry.held {
                Held::Decoded(event) => event,
                Held::Encoded(body) => Arc::new(self.decode_raw(&body, &mut cache)?),
                Held::InLog => match self.raw_at_with(entry.id, entry.at, &mut cache) {
                    Ok(raw) => Arc::new(raw),
                    // Written but not yet readable: take it next time.
                    Err(_) => break,
                },
            };
            out.push(Logged { raw, at: entry.at });
        }
        Ok(out)
    }

    /// The last event whose processing is committed (and left the queue).
    pub(super) fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        Ok(self.pending_lock()?.processed_upto)
    }

    /// Drops committed events from the processor's queue (after `commit_batch`).
    pub(super) fn pending_done(&self, last: EventId) -> StoreResult<()> {
        self.pending_lock()?.done(last);
        Ok(())
    }

    /// The raw event stored at `at`: from the log, or the scrubbed copy of
    /// an erased one.
    pub(super) fn raw_at(&self, id: EventId, at: Location) -> StoreResult<RawEvent> {
        self.raw_at_with(id, at, &mut SharedCache::default())
    }

    pub(super) fn raw_at_with(
        &self,
        id: EventId,
        at: Location,
        cache: &mut SharedCache,
    ) -> StoreResult<RawEvent> {
        if let Some(scrubbed) = self.trees.erased.get(id.to_bytes())? {
            return decode("erased", &scrubbed);
        }
        let body = self
            .log
            .read(at)
            .map_err(|source| StoreError::ReadEvent { id, source })?;
        self.decode_raw(&body, cache)
    }

    /// An event record's body as the event, with its shared parts (read
    /// from the log unless `cache` holds them).
    pub(super) fn decode_raw(&self, body: &[u8], cache: &mut SharedCache) -> StoreResult<RawEvent> {
        let logged = shared::Logged::decode(body).map_err(|source| StoreError::Corrupt {
            tree: "the event log",
            source,
        })?;
        let Some(at) = logged.shared() else {
            return Ok(logged.into_event(None));
        };
        let parts = match cache {
            Some((cached_at, parts)) if *cached_at == at => parts.clone(),
            _ => {
                let body = self
                    .log
                    .read(at.location())
                    .map_err(StoreError::io("reading a shared record from the event log"))?;
                let parts = Arc::new(shared::decode_parts(&body).map_err(|source| {
                    StoreError::Corrupt {
                        tree: "the event log (a shared record)",
                        source,
                    }
                })?);
                *cache = Some((at, parts.clone()));
                parts
            }
        };
        Ok(logged.into_event(Some(&parts)))
    }

    /// As `raw_at`, but `None` when retention removed the event's segment
    /// (a state chunk can outlive part of its events by a segment boundary).
    pub(super) fn retained_raw_at(
        &self,
        id: EventId,
        at: Location,
    ) -> StoreResult<Option<RawEvent>> {
        if !self.log.has_segment(at.segment) {
            return Ok(None);
        }
        self.raw_at(id, at).map(Some)
    }

    pub(super) fn raw_event(&self, id: EventId) -> StoreResult<Option<RawEvent>> {
        Ok(self.event(id)?.map(|e| e.raw))
    }

    pub(super) fn event_state(&self, id: EventId) -> StoreResult<Option<EventState>> {
        Ok(self.located_state(id)?.map(|(_, state)| state))
    }

    fn located_state(&self, id: EventId) -> StoreResult<Option<(Location, EventState)>> {
        super::state_chunks::get(&self.trees.event_state, &self.trees.state_overrides, id)?
            .map(|b| decode_state(&b))
            .transpose()
    }

    pub(super) fn event(&self, id: EventId) -> StoreResult<Option<StoredEvent>> {
        Ok(self.located_event(id)?.map(|(event, _)| event))
    }

    /// An event and where its record lives in the log.
    pub(super) fn located_event(
        &self,
        id: EventId,
    ) -> StoreResult<Option<(StoredEvent, Location)>> {
        // The queue first: an event leaves it only after its state is
        // committed, so one that is in neither place does not exist.
        let queued = self.pending_lock()?.get(id).cloned();
        if let Some(entry) = queued {
            let raw = match &entry.held {
                Held::Decoded(event) => RawEvent::clone(event),
                Held::Encoded(body) => self.decode_raw(body, &mut SharedCache::default())?,
                Held::InLog => self.raw_at(id, entry.at)?,
            };
            return Ok(Some((StoredEvent { raw, state: None }, entry.at)));
        }
        let Some((at, state)) = self.located_state(id)? else {
            return Ok(None);
        };
        let Some(raw) = self.retained_raw_at(id, at)? else {
            return Ok(None);
        };
        Ok(Some((
            StoredEvent {
                raw,
                state: Some(state),
            },
            at,
        )))
    }

    /// Events newest first, filtered; returns the page and the cursor for the next.
    pub(super) fn events_page(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<(Vec<StoredEvent>, Option<EventId>)> {
        let ids = self.candidate_ids(filter)?;
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
            if filter.is_before_range(id) {
                return Ok((out, None));
            }
            if filter.matches(&event) {
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

    /// Event ids newest first: the unprocessed ones from the queue, then the
    /// processed ones from sled (the per-source index when a source is
    /// given, else the states). Both parts are split at `processed_upto`,
    /// read with the queue snapshot, so an id never appears twice or goes
    /// missing while the processor moves on.
    pub(super) fn candidate_ids(
        &self,
        filter: &EventFilter,
    ) -> StoreResult<Box<dyn Iterator<Item = StoreResult<EventId>> + '_>> {
        let (upto, queued) = {
            let pending = self.pending_lock()?;
            let ids = pending.ids_newest_first(filter.source_id, filter.upper_bound(), SCAN_CAP);
            (pending.processed_upto, ids)
        };
        let Some(upto) = upto else {
            return Ok(Box::new(queued.into_iter().map(Ok)));
        };
        let after_upto = EventId(uuid::Uuid::from_u128(upto.0.as_u128().saturating_add(1)));
        let upper = filter
            .upper_bound()
            .map_or(after_upto, |b| b.min(after_upto));
        let processed: Box<dyn Iterator<Item = StoreResult<EventId>>> = match filter.source_id {
            Some(source) => Box::new(super::source_index::newest_first(
                &self.trees.events_by_source,
                source,
                upper,
            )),
            None => Box::new(super::state_chunks::newest_first(
                &self.trees.event_state,
                upper,
            )),
        };
        Ok(Box::new(queued.into_iter().map(Ok).chain(processed)))
    }

    pub(super) fn cursor(&self) -> StoreResult<Option<EventId>> {
        Ok(self
            .trees
            .meta
            .get(CURSOR_KEY)?
            .and_then(|b| EventId::from_slice(&b)))
    }

    /// Persisted per-source counters (written by `commit_batch`).
    pub(super) fn persisted_counts(&self) -> StoreResult<HashMap<SourceId, Counts>> {
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
    pub(super) fn pending_by_source(&self) -> StoreResult<HashMap<SourceId, u64>> {
        let mut out: HashMap<SourceId, u64> = HashMap::new();
        for entry in self.pending_lock()?.iter() {
            *out.entry(entry.source).or_default() += 1;
        }
        Ok(out)
    }

    /// Processed event ids of one source oldest first, after `after` (replay).
    pub(super) fn source_event_ids(
        &self,
        source: SourceId,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<EventId>> {
        super::source_index::oldest_first(&self.trees.events_by_source, source, after, limit)
    }

    /// Saves a learned schema snapshot (JSON) for a source.
    pub(super) fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        self.trees.meta.insert(schema_key(source), schema)?;
        Ok(())
    }

    /// Every persisted schema snapshot.
    pub(super) fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
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

/// The last shared record read (records of a request come one after another).
pub(super) type SharedCache = Option<(shared::SharedAt, Arc<shared::SharedParts>)>;

/// An `event_state` value: the event's location in the log, then the state
/// (see `state_entry`).
pub(super) fn encode_state(at: Location, state: &EventState) -> Vec<u8> {
    super::state_entry::encode(at, state)
}

fn decode_state(bytes: &[u8]) -> StoreResult<(Location, EventState)> {
    super::state_entry::decode_full(bytes)
}

/// A UUID v7 strictly greater than the last one handed out.
fn next_event_id(last: &mut u128) -> EventId {
    let fresh = uuid::Uuid::now_v7().as_u128();
    let id = if fresh > *last { fresh } else { *last + 1 };
    *last = id;
    EventId(uuid::Uuid::from_u128(id))
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
    pub(super) fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        Ok(self
            .trees
            .dedupe
            .get(key)?
            .and_then(|v| EventId::from_slice(&v)))
    }

    /// Removes the oldest processed events beyond `keep`, a whole log
    /// segment at a time (so at least `keep` stay), with their states and
    /// index entries. Runs from the processor's periodic maintenance.
    pub(super) fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        let mut stored = self.stored_events()?;
        if stored <= keep {
            return Ok(0);
        }
        let log_error = StoreError::io("pruning the event log");
        // Segments before the cursor's hold processed events only.
        let Some(cursor_segment) = self.cursor_at()?.map(|at| at.segment) else {
            return Ok(0);
        };
        let mut removed = 0;
        for segment in self.log.closed_segments().map_err(log_error)? {
            if segment >= cursor_segment {
                break;
            }
            let mut records = self.log.segment_records(segment).map_err(log_error)?;
            records.retain(|r| !shared::is_shared_record(&r.body));
            let count = records.len() as u64;
            if stored.saturating_sub(count) < keep {
                break;
            }
            let (mut overrides, mut erased) = (sled::Batch::default(), sled::Batch::default());
            let mut newest = None;
            for record in &records {
                let Some(id) = record.body.get(..16).and_then(EventId::from_slice) else {
                    continue;
                };
                overrides.remove(&id.to_bytes());
                erased.remove(&id.to_bytes());
                newest = newest.max(Some(id));
            }
            self.trees.state_overrides.apply_batch(overrides)?;
            self.trees.erased.apply_batch(erased)?;
            if let Some(newest) = newest {
                super::state_chunks::prune(&self.trees.event_state, newest)?;
                super::source_index::prune(&self.trees.events_by_source, newest)?;
            }
            self.set_stored_events(stored.saturating_sub(count))?;
            // The states go before the file: a crash in between leaves a
            // segment nothing points to, which the next pass deletes.
            self.flush_db()?;
            self.log.delete_segment(segment).map_err(log_error)?;
            stored -= count;
            removed += count;
        }
        Ok(removed)
    }

    /// Processed events stored (see `STORED_KEY`).
    pub(super) fn stored_events(&self) -> StoreResult<u64> {
        Ok(self
            .trees
            .meta
            .get(STORED_KEY)?
            .and_then(|b| Some(u64::from_be_bytes(b.as_ref().try_into().ok()?)))
            .unwrap_or(0))
    }

    fn set_stored_events(&self, n: u64) -> StoreResult<()> {
        self.trees.meta.insert(STORED_KEY, &n.to_be_bytes())?;
        Ok(())
    }

    /// Where the processor's cursor event lives in the log.
    fn cursor_at(&self) -> StoreResult<Option<Location>> {
        Ok(self
            .trees
            .meta
            .get(CURSOR_AT_KEY)?
            .and_then(|b| Location::from_slice(&b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Planned;

    fn raw(source: SourceId, n: i64) -> RawEvent {
        RawEvent::received(source, serde_json::json!({ "n": n }))
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

    /// Plans for events the processor handled, with nothing else to do.
    fn handled(logged: &[Logged]) -> Vec<Planned> {
        logged
            .iter()
            .map(|e| Planned {
                event_id: e.raw.id,
                at: e.at,
                state: EventState::default(),
                errors: Vec::new(),
                resolve: None,
                dedupe_key: None,
                index_under: Some(e.raw.source_id),
            })
            .collect()
    }

    fn process(store: &Store, n: usize) {
        store.flush_now().unwrap();
        let logged = store.next_pending(None, n).unwrap();
        let last = logged.last().map(|e| (e.raw.id, e.at));
        store
            .commit_batch(
                &handled(&logged),
                last,
                &HashMap::new(),
                &crate::domain::activity::ActivityDelta::default(),
                crate::store::embedded::batch::resolve_keeping_state,
            )
            .unwrap();
        if let Some((id, _)) = last {
            store.pending_done(id).unwrap();
        }
    }

    #[test]
    fn retention_prunes_whole_segments_of_processed_events_only() {
        // One record per segment.
        let store = Store::temporary_with_segment_bytes(1).unwrap();
        let source = SourceId::new();
        let events = store
            .append_events((0..5).map(|n| raw(source, n)).collect())
            .unwrap();
        // Only the first three are processed: the rest must survive any retention.
        process(&store, 3);
        assert_eq!(store.prune_events(1).unwrap(), 2);
        assert!(store.raw_event(events[1].id).unwrap().is_none());
        assert!(store.raw_event(events[2].id).unwrap().is_some());
        assert!(store.raw_event(events[3].id).unwrap().is_some());
        assert_eq!(store.prune_events(1).unwrap(), 0);
        assert_eq!(store.prune_events(0).unwrap(), 0);
    }

    #[test]
    fn the_processor_only_sees_events_once_they_are_durable() {
        let store = Store::temporary().unwrap();
        let events = store.append_events(vec![raw(SourceId::new(), 1)]).unwrap();
        assert!(store.next_pending(None, 10).unwrap().is_empty());
        store.flush_now().unwrap();
        assert_eq!(store.next_pending(None, 10).unwrap()[0].raw, events[0]);
    }

    #[test]
    fn an_erased_event_reads_back_scrubbed_and_its_log_record_is_overwritten() {
        let store = Store::temporary().unwrap();
        let mut events = vec![raw(SourceId::new(), 1), raw(SourceId::new(), 2)];
        events[0].payload = serde_json::json!({"email": "ann@example.org"});
        let events = store.append_events(events).unwrap();
        process(&store, 2);
        let needles = crate::domain::redact::Needles::new(["ann@example.org"]).unwrap();
        let at = store.scrub_event(events[0].id, &needles).unwrap().unwrap();
        store
            .log
            .scrub(&[at], 32, crate::domain::redact::LOG_MARKER)
            .unwrap();
        let event = store.event(events[0].id).unwrap().unwrap();
        assert_eq!(event.raw.payload, serde_json::json!({"_erased": true}));
        let body = store.log.read(at).unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("ann@example.org"));
        // The state chunk itself holds the scrubbed state, not only an override.
        assert!(!store
            .trees
            .state_overrides
            .contains_key(events[0].id.to_bytes())
            .unwrap());
        assert_eq!(store.event(events[1].id).unwrap().unwrap().raw, *events[1]);
    }

    /// Ten thousand records sharing a 10 KB envelope: the envelope is in
    /// the log once, and every record reads back with it, from the queue,
    /// from the log after processing, and by a scan at start.
    #[test]
    fn what_a_request_shares_is_logged_once_and_read_back_with_each_record() {
        let store = Store::temporary().unwrap();
        let source = SourceId::new();
        let envelope = Arc::new(serde_json::json!({"plan": "p".repeat(10_000)}));
        let headers = Arc::new(
            serde_json::json!({"user-agent": "Looker"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let events: Vec<RawEvent> = (0..10_000)
            .map(|n| {
                let mut e = raw(source, n);
                e.envelope = Some(envelope.clone());
                e.headers = headers.clone();
                e
            })
            .collect();
        let before = store.log.size_on_disk();
        let stored = store.append_events(events).unwrap();
        store.flush_now().unwrap();
        let written = store.log.size_on_disk() - before;
        // Zero-filled ahead, so the file size is not the bytes written: scan.
        let bytes: usize = store
            .log
            .scan_from((0, 0))
            .unwrap()
            .iter()
            .map(|r| r.body.len() + 8)
            .sum();
        // About 280 bytes per record (ids, times, the shared place), the envelope once.
        assert!(
            bytes < 10_000 * 300 + 11_000,
            "{bytes} bytes for 10,000 records"
        );
        assert!(written < 4 << 20, "{written}");
        let last = stored.last().unwrap();
        let read = store.event(last.id).unwrap().unwrap().raw;
        assert_eq!(read.envelope.as_deref(), Some(&*envelope));
        assert_eq!(read.headers, headers);
        process(&store, 10_000);
        let read = store.event(stored[42].id).unwrap().unwrap().raw;
        assert_eq!(&read, &*stored[42]);
        // The shared record is no event.
        assert_eq!(store.stored_events().unwrap(), 10_000);
    }

    #[test]
    fn logged_records_are_queued_again_at_start_with_their_shared_parts() {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceId::new();
        let stored = {
            let store = Store::open(dir.path(), 8).unwrap();
            let events: Vec<RawEvent> = (0..3)
                .map(|n| {
                    let mut e = raw(source, n);
                    e.envelope = Some(Arc::new(serde_json::json!({"plan": "x"})));
                    e
                })
                .collect();
            let stored = store.append_events(events).unwrap();
            store.flush_now().unwrap();
            stored
        };
        let store = Store::open(dir.path(), 8).unwrap();
        let queued = store.next_pending(None, 10).unwrap();
        assert_eq!(queued.len(), 3);
        for (q, s) in queued.iter().zip(&stored) {
            assert_eq!(&*q.raw, &**s);
        }
    }

    #[test]
    fn a_source_page_joins_processed_and_pending_events_without_repeats() {
        let store = Store::temporary().unwrap();
        let (a, b) = (SourceId::new(), SourceId::new());
        let events: Vec<RawEvent> = (0..6)
            .map(|n| raw(if n % 2 == 0 { a } else { b }, n))
            .collect();
        let events = store.append_events(events).unwrap();
        // The processor has handled the first four events only.
        process(&store, 4);
        let expected: Vec<EventId> = [4, 2, 0].iter().map(|i| events[*i].id).collect();
        assert_eq!(ids(&store, a, None), expected);
        assert_eq!(ids(&store, a, Some(events[4].id)), expected[1..].to_vec());
        assert_eq!(ids(&store, b, Some(events[3].id)), vec![events[1].id]);
        assert_eq!(store.pending_by_source().unwrap().get(&b), Some(&1));
        let all = EventFilter {
            limit: 100,
            ..EventFilter::default()
        };
        let (page, _) = store.events_page(&all).unwrap();
        let newest_first: Vec<EventId> = events.iter().rev().map(|e| e.id).collect();
        assert_eq!(
            page.iter().map(|e| e.raw.id).collect::<Vec<_>>(),
            newest_first
        );
    }
}
