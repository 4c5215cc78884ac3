//! What a bounded view shows of an event: whole parts up to a bound, an
//! excerpt beyond it. The store fills these; the views render them.

use crate::domain::excerpt::Excerpt;
use crate::domain::ids::{EventId, RequestId, SourceId};
use crate::domain::model::{EventState, EventStatus};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::Arc;

/// How much of an event a view shows.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// A record (or a mapped part) up to this many bytes is shown whole.
    pub whole: usize,
    /// Beyond it, this many bytes of its JSON text are shown.
    pub excerpt: usize,
}

impl Bounds {
    /// Lists, searches and the live tail.
    pub const LIST: Bounds = Bounds {
        whole: 8 << 10,
        excerpt: 1 << 10,
    };
    /// The event page and `GET /api/events/{id}`; the rest is at
    /// `GET /api/events/{id}/raw`.
    pub const PAGE: Bounds = Bounds {
        whole: 1 << 20,
        excerpt: 1 << 20,
    };
}

/// A part of an event as a view shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Shown<T> {
    Whole(T),
    /// Too large for the view: an excerpt of its JSON, and its stored size.
    Cut {
        excerpt: Excerpt,
        bytes: usize,
    },
}

impl<T> Shown<T> {
    pub fn whole(&self) -> Option<&T> {
        match self {
            Shown::Whole(v) => Some(v),
            Shown::Cut { .. } => None,
        }
    }
}

/// An event as a bounded view shows it.
#[derive(Clone, Debug)]
pub struct EventSummary {
    pub id: EventId,
    pub source_id: SourceId,
    pub request_id: RequestId,
    pub received_at: DateTime<Utc>,
    /// The stored record's size (payload, envelope and headers as JSON).
    pub record_bytes: usize,
    pub payload: Shown<Value>,
    /// Envelope, headers and `not_mappable` are shown with a whole record
    /// only (they are stored after the payload), and an envelope shared by
    /// a request's records only while it is within the whole-record bound.
    pub envelope: Option<Arc<Value>>,
    pub headers: Arc<Map<String, Value>>,
    pub not_mappable: Option<String>,
    /// The processor's decision, without mapped properties and traits.
    pub state: Option<EventState>,
    pub properties: Shown<Map<String, Value>>,
    pub traits: Shown<Map<String, Value>>,
}

impl EventSummary {
    pub fn status(&self) -> EventStatus {
        self.state
            .as_ref()
            .and_then(|s| s.status)
            .unwrap_or(EventStatus::Pending)
    }

    /// Whether any part was cut (the whole record is at the raw endpoint).
    pub fn truncated(&self) -> bool {
        [
            matches!(self.payload, Shown::Cut { .. }),
            matches!(self.properties, Shown::Cut { .. }),
            matches!(self.traits, Shown::Cut { .. }),
        ]
        .contains(&true)
    }
}
