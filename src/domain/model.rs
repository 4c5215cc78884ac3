//! The data model shared by every stage: stored events, their processed
//! state, mapping specs, error-log entries.
//!
//! These are plain serde types with no behaviour beyond small helpers, so
//! the pure stages (records, sniff, mapping, identity) can agree on them
//! without depending on each other.

use crate::domain::identity::KindName;
use crate::domain::ids::{ErrorId, EventId, ProfileId, RequestId, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where an event is in the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Durably stored, not processed yet.
    Pending,
    /// Processed while the source had no mapping; replayed when one is saved.
    Unmapped,
    /// Mapped and joined to a profile.
    Resolved,
    /// Mapping (or identity) failed; the reason is on the event and in the error log.
    Failed,
    /// A redelivery of an event already seen (same idempotency key): kept for audit, no effect.
    Duplicate,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::Unmapped,
        EventStatus::Resolved,
        EventStatus::Failed,
        EventStatus::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Unmapped => "unmapped",
            EventStatus::Resolved => "resolved",
            EventStatus::Failed => "failed",
            EventStatus::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The pipeline stage an error-log entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Auth,
    Limit,
    Decode,
    Records,
    Store,
    Sniff,
    Map,
    Identity,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Auth,
        Stage::Limit,
        Stage::Decode,
        Stage::Records,
        Stage::Store,
        Stage::Sniff,
        Stage::Map,
        Stage::Identity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Auth => "auth",
            Stage::Limit => "limit",
            Stage::Decode => "decode",
            Stage::Records => "records",
            Stage::Store => "store",
            Stage::Sniff => "sniff",
            Stage::Map => "map",
            Stage::Identity => "identity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// Severity of an error-log entry: refusals and failures are errors, drift
/// and dropped identifiers are warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    Warning,
}

/// One entry of the error log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub id: ErrorId,
    pub at: DateTime<Utc>,
    pub source_id: Option<SourceId>,
    pub stage: Stage,
    pub level: Level,
    /// Machine-readable reason, e.g. `bad_api_key`, `invalid_json`, `schema_drift`.
    pub code: String,
    /// What happened and what to fix, for a person.
    pub message: String,
    /// A bounded, escaped excerpt of the offending input. Never holds secrets.
    pub excerpt: Option<String>,
    pub event_id: Option<EventId>,
}

impl ErrorEntry {
    pub fn new(
        source_id: Option<SourceId>,
        stage: Stage,
        level: Level,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            id: ErrorId::new(),
            at: Utc::now(),
            source_id,
            stage,
            level,
            code: code.into(),
            message: message.into(),
            excerpt: None,
            event_id: None,
        }
    }

    /// The entry for a hook request refused at a known source: its stage,
    /// code, message and excerpt.
    pub fn refused(source_id: SourceId, refusal: &crate::domain::decode::Refusal) -> Self {
        Self::new(
            Some(source_id),
            refusal.stage,
            Level::Error,
            refusal.code,
            refusal.to_string(),
        )
        .with_excerpt(refusal.excerpt.clone())
    }

    pub fn with_excerpt(mut self, excerpt: Option<String>) -> Self {
        self.excerpt = excerpt;
        self
    }

    pub fn with_event(mut self, event_id: EventId) -> Self {
        self.event_id = Some(event_id);
        self
    }
}

/// A record as stored by the request path: immutable after the 202.
///
/// What a request's records share (envelope, headers) is behind an `Arc`:
/// one copy in memory per request however many records it exploded into
/// (and one copy in the log, see `store::shared`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub id: EventId,
    pub source_id: SourceId,
    pub request_id: RequestId,
    pub received_at: DateTime<Utc>,
    /// The record as received (after decoding and explosion).
    pub payload: Value,
    /// The request body outside the records (e.g. Looker's `scheduled_plan`),
    /// `None` when the body was the record itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Arc<Value>>,
    /// Request headers with every secret-bearing header removed.
    #[serde(default, skip_serializing_if = "no_headers")]
    pub headers: Arc<Map<String, Value>>,
    /// Set when the record cannot be mapped at all (e.g. a base64 PDF attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_mappable: Option<String>,
}

fn no_headers(headers: &Arc<Map<String, Value>>) -> bool {
    headers.is_empty()
}

#[cfg(test)]
impl RawEvent {
    /// A record received now with `payload` and nothing else; its id is
    /// left for the store to assign (unit tests).
    pub(crate) fn received(source_id: SourceId, payload: Value) -> Self {
        RawEvent {
            id: EventId(uuid::Uuid::nil()),
            source_id,
            request_id: RequestId::new(),
            received_at: Utc::now(),
            payload,
            envelope: None,
            headers: Arc::default(),
            not_mappable: None,
        }
    }
}

/// What the processor decided for one event. Stored apart from the raw event
/// so processing never rewrites the payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventState {
    pub status: Option<EventStatus>,
    pub processed_at: Option<DateTime<Utc>>,
    /// Shared: the processor's commit copies a state per attempt, and the
    /// mapped event (with its properties) is most of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<std::sync::Arc<MappedEvent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<ProfileId>,
    /// What the resolver did: `create`, `attach`, `merge`, or `refused: <reason>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The mapping version that failed the event (a failed event has no
    /// mapped event to carry it); `None` for states written before it was
    /// kept, which pages show as "unknown version".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_version: Option<u32>,
    /// The identifiers the resolver refused, one message each (`email
    /// \`x\` dropped: invalid_email`): a resolved event with any is shown as
    /// "identity refused", not as a plain resolve. Also among `warnings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_refused: Vec<String>,
}

/// `properties` of a mapping: keep the whole record, a list of paths, or
/// named templates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertiesSpec {
    /// `"*"`: the whole record.
    All(String),
    /// `["path", ...]`: those paths, keeping their JSON types.
    Paths(Vec<String>),
    /// `{"out": "{{tmpl}}"}`: renamed or derived values.
    Templates(BTreeMap<String, String>),
}

/// A mapping as a marketer writes it (templates are handlebars strings).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<PropertiesSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<BTreeMap<String, String>>,
    /// Template for the redelivery key; defaults to the `event_id` slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Identifiers of a team's own kinds, by kind name
    /// (`{"stripe_customer_id": "{{data.object.customer}}"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<BTreeMap<String, String>>,
}

/// The event model every source is mapped onto.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MappedEvent {
    pub name: String,
    pub visitor_id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub event_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    /// Defaulted so a stored state's light part (see `store::state_entry`),
    /// which leaves it out, reads back.
    #[serde(default)]
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub mapping_version: u32,
    /// Values of a team's kinds (the mapping's `identifiers`), trimmed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub identifiers: BTreeMap<KindName, String>,
}

/// What a template sees for one record.
#[derive(Clone, Copy, Debug)]
pub struct RecordContext<'a> {
    pub record: &'a Value,
    pub envelope: Option<&'a Value>,
    pub headers: &'a Map<String, Value>,
    pub received_at: DateTime<Utc>,
}
