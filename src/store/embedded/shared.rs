//! What a request's records share, stored once per request in the event log.
//!
//! A request that explodes into many records (a Looker CSV of 10,000 rows)
//! used to write its envelope and headers into every record: a 70 KB
//! request wrote 410 MB. Now such a request writes one *shared record*
//! first, holding the envelope, headers and `not_mappable` reason, and each
//! event record after it holds its payload and the shared record's place
//! (`"shared": [segment, offset, len]`) instead of those fields.
//!
//! A shared record's body starts with the nil event id (16 zero bytes),
//! which no event has (ids are UUID v7), so scans skip it; then the source
//! id and the parts as JSON. A request with one record, or nothing to
//! share, keeps the original format: the whole event inline, no extra
//! record and no extra read. Records written before this format had no
//! `shared` field and are read as they always were.
//!
//! The shared record and the records referencing it are appended under one
//! lock with no segment roll-over between them (see `SegmentLog::append_with`),
//! so retention, which deletes whole segments, never keeps a record whose
//! shared record is gone.

use super::log::Location;
use crate::domain::ids::{EventId, RequestId, SourceId};
use crate::domain::model::RawEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Where a record's shared record lives: `[segment, offset, len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SharedAt(u32, u64, u32);

impl SharedAt {
    pub fn location(self) -> Location {
        Location {
            segment: self.0,
            offset: self.1,
            len: self.2,
        }
    }

    fn of(at: Location) -> Self {
        SharedAt(at.segment, at.offset, at.len)
    }
}

/// The parts of a request its records share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct SharedParts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope: Option<Arc<Value>>,
    #[serde(default)]
    headers: Arc<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_mappable: Option<String>,
}

/// The parts `events` (one request's records) share, when writing them once
/// saves anything: more than one record, and something to share.
pub(super) fn parts_of(events: &[RawEvent]) -> Option<SharedParts> {
    let first = events.first()?;
    let worth_it = events.len() > 1
        && (first.envelope.is_some() || !first.headers.is_empty() || first.not_mappable.is_some());
    worth_it.then(|| SharedParts {
        envelope: first.envelope.clone(),
        headers: first.headers.clone(),
        not_mappable: first.not_mappable.clone(),
    })
}

/// A shared record's body: the nil id, the source id, the parts as JSON.
pub(super) fn encode_parts(source: SourceId, parts: &SharedParts) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&EventId(uuid::Uuid::nil()).to_bytes());
    out.extend_from_slice(&source.to_bytes());
    // Writing our own plain types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, parts);
    out
}

/// Is this log record a shared record (not an event)?
pub(super) fn is_shared_record(body: &[u8]) -> bool {
    body.get(..16).is_some_and(|id| id.iter().all(|b| *b == 0))
}

/// The parts in a shared record's body. A record scrubbed by erasure (its
/// JSON zeroed) holds nothing any more: its records read without them.
pub(super) fn decode_parts(body: &[u8]) -> Result<SharedParts, serde_json::Error> {
    let json = body.get(32..).unwrap_or_default();
    if json.iter().all(|b| *b == 0) {
        return Ok(SharedParts::default());
    }
    serde_json::from_slice(json)
}

/// An event record that refers to its shared record.
#[derive(Serialize)]
struct Referring<'a> {
    id: EventId,
    source_id: SourceId,
    request_id: RequestId,
    received_at: DateTime<Utc>,
    payload: &'a Value,
    shared: SharedAt,
}

/// An event record's body (the ids, then JSON): inline, or referring to
/// the shared record at `shared`.
pub(super) fn encode_event(event: &RawEvent, shared: Option<Location>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&event.id.to_bytes());
    out.extend_from_slice(&event.source_id.to_bytes());
    // Writing our own plain types into a Vec cannot fail.
    let _ = match shared {
        None => serde_json::to_writer(&mut out, event),
        Some(at) => serde_json::to_writer(
            &mut out,
            &Referring {
                id: event.id,
                source_id: event.source_id,
                request_id: event.request_id,
                received_at: event.received_at,
                payload: &event.payload,
                shared: SharedAt::of(at),
            },
        ),
    };
    out
}

/// An event record as read back: either format.
#[derive(Deserialize)]
pub(super) struct Logged {
    id: EventId,
    source_id: SourceId,
    request_id: RequestId,
    received_at: DateTime<Utc>,
    payload: Value,
    #[serde(default)]
    envelope: Option<Arc<Value>>,
    #[serde(default)]
    headers: Arc<Map<String, Value>>,
    #[serde(default)]
    not_mappable: Option<String>,
    #[serde(default)]
    shared: Option<SharedAt>,
}

impl Logged {
    pub fn decode(body: &[u8]) -> Result<Logged, serde_json::Error> {
        serde_json::from_slice(body.get(32..).unwrap_or_default())
    }

    /// Where its shared record is, if it has one.
    pub fn shared(&self) -> Option<SharedAt> {
        self.shared
    }

    /// The event, with the shared parts (`None` for an inline record).
    pub fn into_event(self, parts: Option<&SharedParts>) -> RawEvent {
        let (envelope, headers, not_mappable) = match parts {
            Some(p) => (
                p.envelope.clone(),
                p.headers.clone(),
                p.not_mappable.clone(),
            ),
            None => (self.envelope, self.headers, self.not_mappable),
        };
        RawEvent {
            id: self.id,
            source_id: self.source_id,
            request_id: self.request_id,
            received_at: self.received_at,
            payload: self.payload,
            envelope,
            headers,
            not_mappable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(payload: Value) -> RawEvent {
        let mut e = RawEvent::received(SourceId::new(), payload);
        e.id = EventId(uuid::Uuid::now_v7());
        e
    }

    #[test]
    fn an_inline_record_of_the_old_format_reads_back_whole() {
        let mut e = event(json!({"a": 1}));
        e.envelope = Some(Arc::new(json!({"plan": "x"})));
        e.headers = Arc::new(json!({"user-agent": "t"}).as_object().unwrap().clone());
        let body = encode_event(&e, None);
        let logged = Logged::decode(&body).unwrap();
        assert_eq!(logged.shared(), None);
        assert_eq!(logged.into_event(None), e);
    }

    #[test]
    fn a_referring_record_leaves_the_shared_parts_out() {
        let mut e = event(json!({"a": 1}));
        e.envelope = Some(Arc::new(json!({"plan": "a long envelope"})));
        let parts = parts_of(&[e.clone(), e.clone()]).unwrap();
        let at = Location {
            segment: 3,
            offset: 40,
            len: 99,
        };
        let body = encode_event(&e, Some(at));
        assert!(!String::from_utf8_lossy(&body).contains("a long envelope"));
        let logged = Logged::decode(&body).unwrap();
        assert_eq!(logged.shared().map(SharedAt::location), Some(at));
        let shared = encode_parts(e.source_id, &parts);
        assert!(is_shared_record(&shared) && !is_shared_record(&body));
        let parts = decode_parts(&shared).unwrap();
        assert_eq!(logged.into_event(Some(&parts)), e);
    }

    #[test]
    fn one_record_or_nothing_to_share_needs_no_shared_record() {
        let e = event(json!(1));
        assert_eq!(parts_of(std::slice::from_ref(&e)), None);
        assert_eq!(parts_of(&[e.clone(), e]), None);
    }
}
