//! Bounded views of stored events: what lists, searches, the live tail and
//! the event page read, so a read costs what it shows.
//!
//! Nothing extra is stored. A view is read from what is there, bounded:
//! - the raw record from the log: whole when it is at most `Bounds::whole`
//!   bytes, else only a prefix (`SegmentLog::read_prefix`), from which the
//!   fixed head fields (id, source, request, received_at, serialised before
//!   the payload) are parsed and the payload is shown as a text excerpt;
//! - the state from its entry's light part (`state_entry`: ids, name,
//!   status, a few hundred bytes), with the mapped properties and traits
//!   whole when small and as an excerpt of their stored JSON when not.
//!
//! Why not a summary precomputed by the processor: the processor's commit
//! is the hot path (each extra byte or key per event there is measured in
//! docs/performance.md), pending events have no state yet anyway, and a
//! prefix read of a record is one `pread` of a few KiB. A search scans
//! light parts only and never reads the log; only matched events are read.

use super::events::SharedCache;
use super::log::Location;
use super::pending::Held;
use super::{decode, state_entry, Store, StoreError, StoreResult};
use crate::domain::events::{EventFilter, Verdict};
use crate::domain::excerpt::{self};
use crate::domain::ids::{EventId, RequestId, SourceId};
use crate::domain::model::{EventState, RawEvent};
pub use crate::domain::summary::{Bounds, EventSummary, Shown};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much work one page of a filtered list (a search) may do.
#[derive(Clone, Copy, Debug)]
pub struct ScanBudget {
    pub events: usize,
    /// Bytes of stored state parsed.
    pub bytes: usize,
    pub time: Duration,
}

impl ScanBudget {
    pub const DEFAULT: ScanBudget = ScanBudget {
        events: 5_000,
        bytes: 16 << 20,
        time: Duration::from_millis(250),
    };
}

/// Largest stored record a search reads to look into its payload; a
/// larger one is matched on its ids and mapped identifiers only (one such
/// record would cost a search more than its whole time budget).
pub const SEARCH_PAYLOAD_MAX: usize = 256 << 10;

/// Searches that run at once; more wait (briefly) for a permit.
pub const CONCURRENT_SCANS: usize = 2;

impl Store {
    /// Shared by every search of this store (API and dashboard).
    pub(super) fn scan_permits(&self) -> std::sync::Arc<tokio::sync::Semaphore> {
        self.scans.clone()
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct SummaryPage {
    pub events: Vec<EventSummary>,
    /// Where the next page starts (`before=`): after a full page, or where
    /// a partial scan stopped.
    pub next: Option<EventId>,
    /// The scan budget ran out before the page filled: there may be more
    /// matches before `next`.
    pub partial: bool,
    pub scanned: usize,
}

/// What a scan reads of an event before deciding whether it matches.
struct Head {
    at: Location,
    state: Option<EventState>,
    /// Set for an event still in the processor's queue.
    held: Option<Held>,
}

/// The fixed fields a record serialises before its payload.
#[derive(serde::Deserialize)]
pub(crate) struct RecordHead {
    pub(crate) id: EventId,
    pub(crate) source_id: SourceId,
    pub(crate) request_id: RequestId,
    pub(crate) received_at: DateTime<Utc>,
}

/// The raw side of a view.
pub(crate) struct RawView {
    pub(crate) head: RecordHead,
    pub(crate) payload: Shown<Value>,
    pub(crate) envelope: Option<Arc<Value>>,
    pub(crate) headers: Arc<Map<String, Value>>,
    pub(crate) not_mappable: Option<String>,
}

impl RawView {
    /// The summary of an event from its raw side and its state's parts
    /// (both backends build it this way).
    pub(crate) fn into_summary(
        self,
        record_bytes: usize,
        state: Option<EventState>,
        properties: MapShown,
        traits: MapShown,
    ) -> EventSummary {
        EventSummary {
            id: self.head.id,
            source_id: self.head.source_id,
            request_id: self.head.request_id,
            received_at: self.head.received_at,
            record_bytes,
            payload: self.payload,
            envelope: self.envelope,
            headers: self.headers,
            not_mappable: self.not_mappable,
            state,
            properties,
            traits,
        }
    }
}

/// Bytes before the payload in a record's JSON are ~170; this leaves room.
pub(crate) const HEAD_ROOM: usize = 512;
pub(crate) const PAYLOAD_KEY: &[u8] = b",\"payload\":";
/// The event and source ids before a record's JSON (see `encode_raw`).
const IDS: usize = 32;

impl Store {
    /// A page of events, newest first, as bounded views, within `budget`.
    pub(super) fn summaries_page(
        &self,
        filter: &EventFilter,
        bounds: Bounds,
        budget: ScanBudget,
    ) -> StoreResult<SummaryPage> {
        let started = Instant::now();
        let mut page = SummaryPage {
            events: Vec::new(),
            next: None,
            partial: false,
            scanned: 0,
        };
        let mut bytes = 0;
        let mut last = None;
        for id in self.candidate_ids(filter)? {
            let id = id?;
            // At least one event per page, so a page under load still
            // moves the cursor and `next` always continues the scan.
            let spent = page.scanned > 0
                && (page.scanned >= budget.events.max(1)
                    || bytes >= budget.bytes
                    || started.elapsed() >= budget.time);
            if spent {
                page.partial = true;
                page.next = last;
                return Ok(page);
            }
            page.scanned += 1;
            last = Some(id);
            let Some((head, read)) = self.head(id)? else {
                continue;
            };
            bytes += read;
            if filter.is_before_range(id) {
                // Newest first: everything left is older than `from`.
                return Ok(page);
            }
            let matched = match filter.check(id, head.state.as_ref()) {
                Verdict::Yes => true,
                Verdict::No => false,
                Verdict::AskPayload if head.at.len as usize > SEARCH_PAYLOAD_MAX => false,
                Verdict::AskPayload => {
                    let (raw, read) = self.raw_for_search(id, &head)?;
                    bytes += read;
                    filter.payload_matches(&raw)
                }
            };
            if !matched {
                continue;
            }
            if let Some(view) = self.view(id, head, bounds)? {
                page.events.push(view);
            }
            if page.events.len() >= filter.limit {
                page.next = Some(id);
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// One event as a bounded view (`Bounds::PAGE` for the event page).
    pub(super) fn event_summary(
        &self,
        id: EventId,
        bounds: Bounds,
    ) -> StoreResult<Option<EventSummary>> {
        match self.head(id)? {
            Some((head, _)) => self.view(id, head, bounds),
            None => Ok(None),
        }
    }

    /// The stored record of an event as JSON, whole (the raw endpoint): the
    /// scrubbed copy of an erased one.
    pub(super) fn raw_record(&self, id: EventId) -> StoreResult<Option<Vec<u8>>> {
        let Some((head, _)) = self.head(id)? else {
            return Ok(None);
        };
        if let Some(scrubbed) = self.trees.erased.get(id.to_bytes())? {
            return Ok(Some(scrubbed.to_vec()));
        }
        let body = match head.held {
            Some(Held::Decoded(raw)) => serde_json::to_vec(&*raw).map_err(corrupt)?,
            Some(Held::Encoded(body)) => body
                .get(IDS..)
                .ok_or(StoreError::Malformed {
                    tree: "the event log",
                    what: "a record shorter than its ids",
                })?
                .to_vec(),
            Some(Held::InLog) | None => {
                let mut body = self.read_log(id, head.at)?;
                body.drain(..IDS.min(body.len()));
                body
            }
        };
        Ok(Some(body))
    }

    /// Where an event is and its light state; with the state bytes parsed.
    fn head(&self, id: EventId) -> StoreResult<Option<(Head, usize)>> {
        let queued = self.pending_lock()?.get(id).cloned();
        if let Some(entry) = queued {
            let head = Head {
                at: entry.at,
                state: None,
                held: Some(entry.held),
            };
            return Ok(Some((head, 0)));
        }
        let found = super::state_chunks::with_entry(
            &self.trees.event_state,
            &self.trees.state_overrides,
            id,
            |bytes| -> StoreResult<(Location, EventState, usize)> {
                let parts = state_entry::split(bytes)?;
                let state = state_entry::decode_light(&parts)?;
                Ok((parts.at, state, parts.light.len()))
            },
        )?
        .transpose()?;
        let Some((at, state, read)) = found else {
            return Ok(None);
        };
        // Retention removed its segment: the event is gone.
        if !self.log.has_segment(at.segment) {
            return Ok(None);
        }
        let head = Head {
            at,
            state: Some(state),
            held: None,
        };
        Ok(Some((head, read)))
    }

    /// The raw event a search looks into, and the bytes it read: the
    /// scrubbed copy of an erased event (so an erased person is not found
    /// by their old payload), the queued copy of a pending one, else the
    /// log record. The bytes count against the scan's byte budget, so a
    /// search through large payloads stops early instead of reading them all.
    fn raw_for_search(&self, id: EventId, head: &Head) -> StoreResult<(Arc<RawEvent>, usize)> {
        if let Some(scrubbed) = self.trees.erased.get(id.to_bytes())? {
            let raw: RawEvent = decode("erased", &scrubbed)?;
            return Ok((Arc::new(raw), scrubbed.len()));
        }
        let cache = &mut SharedCache::default();
        match &head.held {
            Some(Held::Decoded(raw)) => Ok((raw.clone(), head.at.len as usize)),
            Some(Held::Encoded(body)) => Ok((Arc::new(self.decode_raw(body, cache)?), body.len())),
            Some(Held::InLog) | None => {
                let body = self.read_log(id, head.at)?;
                Ok((Arc::new(self.decode_raw(&body, cache)?), body.len()))
            }
        }
    }

    fn view(&self, id: EventId, head: Head, bounds: Bounds) -> StoreResult<Option<EventSummary>> {
        let record_bytes = (head.at.len as usize).saturating_sub(IDS);
        let raw = self.raw_view(id, &head, record_bytes, bounds)?;
        let (properties, traits) = match head.state {
            Some(_) => self.mapped_parts(id, bounds)?,
            None => (Shown::Whole(Map::new()), Shown::Whole(Map::new())),
        };
        Ok(Some(raw.into_summary(
            record_bytes,
            head.state,
            properties,
            traits,
        )))
    }

    fn raw_view(
        &self,
        id: EventId,
        head: &Head,
        record_bytes: usize,
        bounds: Bounds,
    ) -> StoreResult<RawView> {
        if let Some(scrubbed) = self.trees.erased.get(id.to_bytes())? {
            let raw: RawEvent = decode("erased", &scrubbed)?;
            return Ok(whole_or_excerpt(raw, record_bytes, bounds));
        }
        match &head.held {
            Some(Held::Decoded(raw)) => Ok(from_decoded(raw, record_bytes, bounds)),
            Some(Held::Encoded(body)) if record_bytes <= bounds.whole => Ok(whole_or_excerpt(
                self.decode_raw(body, &mut SharedCache::default())?,
                record_bytes,
                bounds,
            )),
            Some(Held::Encoded(body)) => {
                let end = body.len().min(IDS + HEAD_ROOM + bounds.excerpt);
                self.view_from_prefix(id, head.at, &body[..end], record_bytes, bounds)
            }
            Some(Held::InLog) | None if record_bytes <= bounds.whole => {
                let body = self.read_log(id, head.at)?;
                Ok(whole_or_excerpt(
                    self.decode_raw(&body, &mut SharedCache::default())?,
                    record_bytes,
                    bounds,
                ))
            }
            Some(Held::InLog) | None => {
                let prefix = self
                    .log
                    .read_prefix(head.at, IDS + HEAD_ROOM + bounds.excerpt)
                    .map_err(|e| log_error(id, e))?;
                self.view_from_prefix(id, head.at, &prefix, record_bytes, bounds)
            }
        }
    }

    /// A large record's view from the first bytes of its body.
    fn view_from_prefix(
        &self,
        id: EventId,
        at: Location,
        prefix: &[u8],
        record_bytes: usize,
        bounds: Bounds,
    ) -> StoreResult<RawView> {
        let json = prefix.get(IDS..).unwrap_or_default();
        let split = json
            .get(..HEAD_ROOM.min(json.len()))
            .and_then(|h| h.windows(PAYLOAD_KEY.len()).position(|w| w == PAYLOAD_KEY));
        let Some(split) = split else {
            // Not the layout `encode_raw` writes: read it whole rather than
            // show nothing (never expected; logged so it is seen).
            tracing::warn!(event = %id, "event record head not found in its prefix");
            let body = self.read_log(id, at)?;
            return Ok(whole_or_excerpt(
                self.decode_raw(&body, &mut SharedCache::default())?,
                record_bytes,
                bounds,
            ));
        };
        let mut head_json = json[..split].to_vec();
        head_json.push(b'}');
        let head: RecordHead = decode("event log", &head_json)?;
        let payload = &json[split + PAYLOAD_KEY.len()..];
        Ok(RawView {
            head,
            payload: Shown::Cut {
                excerpt: excerpt::of_text(payload, bounds.excerpt, true),
                bytes: record_bytes,
            },
            envelope: None,
            headers: Arc::default(),
            not_mappable: None,
        })
    }

    /// The mapped properties and traits of a processed event, bounded.
    fn mapped_parts(&self, id: EventId, bounds: Bounds) -> StoreResult<(MapShown, MapShown)> {
        let parts = super::state_chunks::with_entry(
            &self.trees.event_state,
            &self.trees.state_overrides,
            id,
            |bytes| -> StoreResult<(MapShown, MapShown)> {
                let parts = state_entry::split(bytes)?;
                if parts.properties.is_empty() && parts.traits.is_empty() {
                    // Written before the split: the maps are in the state.
                    let (_, state) = state_entry::decode_full(bytes)?;
                    let mapped = state.mapped.as_deref();
                    let props = mapped.map(|m| m.properties.clone()).unwrap_or_default();
                    let traits = mapped.map(|m| m.traits.clone()).unwrap_or_default();
                    return Ok((Shown::Whole(props), Shown::Whole(traits)));
                }
                Ok((
                    map_shown(parts.properties, bounds)?,
                    map_shown(parts.traits, bounds)?,
                ))
            },
        )?
        .transpose()?;
        Ok(parts.unwrap_or((Shown::Whole(Map::new()), Shown::Whole(Map::new()))))
    }

    fn read_log(&self, id: EventId, at: Location) -> StoreResult<Vec<u8>> {
        self.log.read(at).map_err(|e| log_error(id, e))
    }
}

pub(crate) type MapShown = Shown<Map<String, Value>>;

fn map_shown(bytes: &[u8], bounds: Bounds) -> StoreResult<MapShown> {
    if bytes.len() <= bounds.whole {
        return Ok(Shown::Whole(state_entry::decode_map(bytes)?));
    }
    Ok(Shown::Cut {
        excerpt: excerpt::of_text(bytes, bounds.excerpt, true),
        bytes: bytes.len(),
    })
}

/// A queued event the request path decoded: its payload is in memory, so a
/// large one costs only its excerpt.
fn from_decoded(raw: &RawEvent, record_bytes: usize, bounds: Bounds) -> RawView {
    if record_bytes <= bounds.whole {
        return whole_or_excerpt(raw.clone(), record_bytes, bounds);
    }
    RawView {
        head: RecordHead {
            id: raw.id,
            source_id: raw.source_id,
            request_id: raw.request_id,
            received_at: raw.received_at,
        },
        payload: Shown::Cut {
            excerpt: excerpt::of_value(&raw.payload, bounds.excerpt),
            bytes: record_bytes,
        },
        envelope: None,
        headers: Arc::default(),
        not_mappable: None,
    }
}

/// A record read whole (it is small, or scrubbed); both backends' views.
pub(crate) fn whole_or_excerpt(raw: RawEvent, record_bytes: usize, bounds: Bounds) -> RawView {
    let RawEvent {
        id,
        source_id,
        request_id,
        received_at,
        payload,
        envelope,
        headers,
        not_mappable,
    } = raw;
    let payload = if record_bytes <= bounds.whole {
        Shown::Whole(payload)
    } else {
        Shown::Cut {
            excerpt: excerpt::of_value(&payload, bounds.excerpt),
            bytes: record_bytes,
        }
    };
    RawView {
        head: RecordHead {
            id,
            source_id,
            request_id,
            received_at,
        },
        payload,
        envelope: envelope.filter(|e| json_len(e) <= bounds.whole),
        headers,
        not_mappable,
    }
}

/// The length of a value's JSON text. A shared envelope is not counted in
/// its record's bytes, so a view measures it before showing it.
fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

fn log_error(id: EventId, source: std::io::Error) -> StoreError {
    StoreError::ReadEvent { id, source }
}

fn corrupt(source: serde_json::Error) -> StoreError {
    StoreError::Encode {
        what: "an event",
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{EventStatus, MappedEvent};
    use crate::store::Planned;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Stores `n` events with `bytes`-byte payloads, processed with the
    /// whole record as mapped properties (the worst case for a list).
    fn stored(n: usize, bytes: usize) -> (Store, Vec<EventId>) {
        let store = Store::temporary().unwrap();
        let source = SourceId::new();
        let events: Vec<RawEvent> = (0..n)
            .map(|i| {
                let payload = serde_json::json!({"email": format!("u{i}@example.org"), "blob": "x".repeat(bytes)});
                RawEvent::received(source, payload)
            })
            .collect();
        let stored = store.append_events(events).unwrap();
        store.flush_now().unwrap();
        let logged = store.next_pending(None, n).unwrap();
        let planned: Vec<Planned> = logged
            .iter()
            .map(|e| Planned {
                event_id: e.raw.id,
                at: e.at,
                state: EventState {
                    status: Some(EventStatus::Resolved),
                    mapped: Some(Arc::new(MappedEvent {
                        name: "upload".into(),
                        visitor_id: None,
                        email: e.raw.payload["email"].as_str().map(str::to_string),
                        external_id: None,
                        event_id: None,
                        timestamp: Utc::now(),
                        properties: e.raw.payload.as_object().unwrap().clone(),
                        traits: Map::new(),
                        idempotency_key: None,
                        mapping_version: 1,
                        identifiers: Default::default(),
                    })),
                    ..EventState::default()
                },
                errors: Vec::new(),
                resolve: None,
                dedupe_key: None,
                index_under: Some(e.raw.source_id),
            })
            .collect();
        let last = logged.last().map(|e| (e.raw.id, e.at));
        store
            .commit_batch(
                &planned,
                last,
                &HashMap::new(),
                &crate::domain::activity::ActivityDelta::default(),
                crate::store::embedded::batch::resolve_keeping_state,
            )
            .unwrap();
        store.pending_done(last.unwrap().0).unwrap();
        (store, stored.iter().map(|e| e.id).collect())
    }

    fn filter(limit: usize, search: Option<&str>) -> EventFilter {
        EventFilter {
            limit,
            search: search.map(str::to_string),
            ..EventFilter::default()
        }
    }

    #[test]
    fn a_list_of_large_processed_events_shows_excerpts_and_finds_by_email() {
        let (store, ids) = stored(3, 50_000);
        let page = store
            .summaries_page(&filter(10, None), Bounds::LIST, ScanBudget::DEFAULT)
            .unwrap();
        assert_eq!(page.events.len(), 3);
        for event in &page.events {
            assert!(
                matches!(&event.payload, Shown::Cut { excerpt, .. } if excerpt.text.len() <= 1024)
            );
            assert!(matches!(&event.properties, Shown::Cut { .. }));
            assert!(event.truncated());
        }
        let found = store
            .summaries_page(
                &filter(10, Some("u0@example.org")),
                Bounds::LIST,
                ScanBudget::DEFAULT,
            )
            .unwrap();
        assert_eq!(
            found.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[0]]
        );
        let whole = store.raw_record(ids[1]).unwrap().unwrap();
        let raw: RawEvent = serde_json::from_slice(&whole).unwrap();
        assert_eq!(raw.payload["blob"].as_str().map(str::len), Some(50_000));
    }

    /// Measurements for docs/performance.md (`cargo test --lib
    /// measure_bounded_reads -- --ignored --nocapture`): the old full read
    /// of a page against the bounded one, and a search's time per budget.
    #[test]
    #[ignore]
    fn measure_bounded_reads() {
        let (store, _) = stored(10, 5 << 20);
        let started = Instant::now();
        let (full, _) = store.events_page(&filter(10, None)).unwrap();
        let full_json: Vec<Value> = full.iter().map(crate::domain::views::event_json).collect();
        let full_bytes = serde_json::to_vec(&full_json).unwrap().len();
        let full_time = started.elapsed();
        drop((full, full_json));
        let started = Instant::now();
        let page = store
            .summaries_page(&filter(10, None), Bounds::LIST, ScanBudget::DEFAULT)
            .unwrap();
        let json: Vec<Value> = page
            .events
            .iter()
            .map(crate::domain::views::summary_json)
            .collect();
        let bytes = serde_json::to_vec(&json).unwrap().len();
        println!(
            "10 x 5 MB list: full {full_bytes} B in {full_time:?}; bounded {bytes} B in {:?}",
            started.elapsed()
        );
        let (store, _) = stored(20_000, 200);
        for events in [500, 5_000] {
            let budget = ScanBudget {
                events,
                ..ScanBudget::DEFAULT
            };
            let started = Instant::now();
            let page = store
                .summaries_page(
                    &filter(50, Some("nobody@example.org")),
                    Bounds::LIST,
                    budget,
                )
                .unwrap();
            println!(
                "search, budget {events}: scanned {} in {:?}, partial {}",
                page.scanned,
                started.elapsed(),
                page.partial
            );
        }
    }
}
