//! JSON views of stored things, shared by the API and the dashboard so both
//! show the same fields under the same names.

use crate::domain::identity::{KindName, Profile};
use crate::domain::ids::{EventId, ProfileId, RequestId, SourceId};
use crate::domain::model::EventStatus;
use crate::domain::summary::{EventSummary, Shown};
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
#[cfg(test)]
use serde_json::json;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An event as lists, searches, the live tail and the event page show it,
/// bounded (see `domain::summary::Bounds`).
///
/// A part too large for the view keeps its field, set to `null`, and gains
/// `<part>_excerpt` (the first bytes of its JSON text),
/// `<part>_truncated: true` and `<part>_bytes`; `truncated` says whether
/// anything was cut and `raw_url` serves the whole stored record.
/// `record_bytes` is the stored record's size. Envelope and headers appear
/// with a whole record only; `traits` is left out when there are none.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EventView {
    pub id: EventId,
    pub source_id: SourceId,
    pub request_id: RequestId,
    pub received_at: DateTime<Utc>,
    pub status: EventStatus,
    #[serde(flatten)]
    pub payload: Part<Value>,
    pub record_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope: Option<Arc<Value>>,
    #[serde(skip_serializing_if = "no_headers")]
    pub headers: Arc<Map<String, Value>>,
    #[serde(flatten)]
    pub mapped: MappedFields,
    /// `null` when the event is not mapped.
    #[serde(flatten)]
    pub properties: Part<Map<String, Value>>,
    /// Absent when the event has no traits.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Part<Map<String, Value>>>,
    pub profile_id: Option<ProfileId>,
    pub resolution: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_mappable: Option<String>,
    pub truncated: bool,
    pub raw_url: String,
    /// The mapping version that failed the event; absent when it did not
    /// fail, or failed before the version was kept ("unknown version").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_version: Option<u32>,
    /// Why identifiers were refused (blocked value, invalid email, external
    /// id conflict), one message each; absent when none was.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identity_refused: Vec<String>,
    /// The profile the event was stored under, when that one has since
    /// been merged into `profile_id` (the live one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via_profile_id: Option<ProfileId>,
}

fn no_headers(headers: &Arc<Map<String, Value>>) -> bool {
    headers.is_empty()
}

/// The mapped event's small fields (everything but properties and traits);
/// all `null` for an event not mapped (yet).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MappedFields {
    pub name: Option<String>,
    pub visitor_id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub event_id: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub mapping_version: Option<u32>,
    /// Values of the team's own kinds the mapping read (`identifiers`);
    /// absent when none, so events of mappings without them read as before.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub identifiers: BTreeMap<KindName, String>,
}

impl MappedFields {
    /// The identifier a row shows for who sent it: the first of email,
    /// external id, visitor id (kind as its field name).
    pub fn who(&self) -> Option<(&'static str, &str)> {
        [
            ("email", &self.email),
            ("external_id", &self.external_id),
            ("visitor_id", &self.visitor_id),
        ]
        .into_iter()
        .find_map(|(kind, v)| v.as_deref().map(|v| (kind, v)))
    }
}

/// One bounded part of an event view under its field name: `shown` is
/// `None` for a part that does not apply (`"<key>": null`).
#[derive(Clone, Debug)]
pub struct Part<T> {
    pub key: PartKey,
    pub shown: Option<Shown<T>>,
}

/// A part's field names.
#[derive(Clone, Copy, Debug)]
pub struct PartKey {
    pub whole: &'static str,
    excerpt: &'static str,
    truncated: &'static str,
    bytes: &'static str,
}

impl PartKey {
    pub const PAYLOAD: PartKey = PartKey {
        whole: "payload",
        excerpt: "payload_excerpt",
        truncated: "payload_truncated",
        bytes: "payload_bytes",
    };
    pub const PROPERTIES: PartKey = PartKey {
        whole: "properties",
        excerpt: "properties_excerpt",
        truncated: "properties_truncated",
        bytes: "properties_bytes",
    };
    pub const TRAITS: PartKey = PartKey {
        whole: "traits",
        excerpt: "traits_excerpt",
        truncated: "traits_truncated",
        bytes: "traits_bytes",
    };
}

impl<T: Serialize> Serialize for Part<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let key = self.key;
        match &self.shown {
            None => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(key.whole, &())?;
                map.end()
            }
            Some(Shown::Whole(value)) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(key.whole, value)?;
                map.end()
            }
            Some(Shown::Cut { excerpt, bytes }) => {
                let mut map = s.serialize_map(Some(4))?;
                map.serialize_entry(key.whole, &())?;
                map.serialize_entry(key.excerpt, &excerpt.text)?;
                map.serialize_entry(key.truncated, &true)?;
                map.serialize_entry(key.bytes, bytes)?;
                map.end()
            }
        }
    }
}

impl<T> Part<T> {
    /// The excerpt of a part that was cut.
    pub fn excerpt(&self) -> Option<&str> {
        match &self.shown {
            Some(Shown::Cut { excerpt, .. }) => Some(&excerpt.text),
            _ => None,
        }
    }
}

impl EventView {
    /// The view of a bounded summary (moves its parts; nothing is copied
    /// but the mapped event's small strings).
    pub fn of(event: EventSummary) -> Self {
        let status = event.status();
        let truncated = event.truncated();
        let state = event.state.unwrap_or_default();
        let mapped = state.mapped.as_deref();
        let mapped_fields = mapped.map_or_else(MappedFields::default, |m| MappedFields {
            name: Some(m.name.clone()),
            visitor_id: m.visitor_id.clone(),
            email: m.email.clone(),
            external_id: m.external_id.clone(),
            event_id: m.event_id.clone(),
            timestamp: Some(m.timestamp),
            mapping_version: Some(m.mapping_version),
            identifiers: m.identifiers.clone(),
        });
        let no_traits = event.traits.whole().is_some_and(Map::is_empty);
        Self {
            id: event.id,
            source_id: event.source_id,
            request_id: event.request_id,
            received_at: event.received_at,
            status,
            payload: Part {
                key: PartKey::PAYLOAD,
                shown: Some(event.payload),
            },
            record_bytes: event.record_bytes,
            envelope: event.envelope,
            headers: event.headers,
            properties: Part {
                key: PartKey::PROPERTIES,
                shown: mapped.is_some().then_some(event.properties),
            },
            mapped: mapped_fields,
            traits: (!no_traits).then_some(Part {
                key: PartKey::TRAITS,
                shown: Some(event.traits),
            }),
            profile_id: state.profile_id,
            resolution: state.resolution,
            processed_at: state.processed_at,
            errors: state.errors,
            warnings: state.warnings,
            not_mappable: event.not_mappable,
            truncated,
            raw_url: format!("/api/events/{}/raw", event.id),
            failed_version: state.failed_version,
            identity_refused: state.identity_refused,
            via_profile_id: None,
        }
    }

    /// The view with `profile_id` set to the live profile `live` (the one
    /// the stored id was merged into), keeping the stored one as
    /// `via_profile_id` when they differ.
    pub fn under_live_profile(mut self, live: ProfileId) -> Self {
        if let Some(stored) = self.profile_id.filter(|stored| *stored != live) {
            self.via_profile_id = Some(stored);
            self.profile_id = Some(live);
        }
        self
    }

    /// Whether the event resolved but some identifier was refused: shown
    /// as "resolved · identity refused", not as a plain resolve.
    pub fn identity_was_refused(&self) -> bool {
        self.status == EventStatus::Resolved && !self.identity_refused.is_empty()
    }
}

/// A profile as the API shows it: identities, trait values (without their
/// bookkeeping), first/last seen, counts and merged ids.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileView {
    pub id: ProfileId,
    pub external_ids: Vec<String>,
    pub emails: Vec<String>,
    pub visitor_ids: Vec<String>,
    /// Values of the team's own kinds, by kind name (the built-ins keep
    /// their own lists above, as before kinds existed).
    pub identifiers: BTreeMap<KindName, Vec<String>>,
    pub traits: Map<String, Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub event_count: u64,
    pub merged_from: Vec<ProfileId>,
    pub created_at: DateTime<Utc>,
}

impl ProfileView {
    pub fn of(profile: Profile) -> Self {
        Self {
            traits: profile
                .traits
                .into_iter()
                .map(|(k, v)| (k, v.value))
                .collect(),
            id: profile.id,
            external_ids: profile.external_ids,
            emails: profile.emails,
            visitor_ids: profile.visitor_ids,
            identifiers: profile.identifiers,
            first_seen: profile.first_seen,
            last_seen: profile.last_seen,
            event_count: profile.event_count,
            merged_from: profile.merged_from,
            created_at: profile.created_at,
        }
    }
}

/// The untyped view [`EventView`] replaced, kept as the reference its tests
/// compare against (and for the store's measurement test).
#[cfg(test)]
pub fn summary_json(event: &EventSummary) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(event.id));
    out.insert("source_id".into(), json!(event.source_id));
    out.insert("request_id".into(), json!(event.request_id));
    out.insert("received_at".into(), json!(event.received_at));
    out.insert("status".into(), json!(event.status().as_str()));
    shown(&mut out, "payload", &event.payload);
    out.insert("record_bytes".into(), json!(event.record_bytes));
    if let Some(envelope) = &event.envelope {
        out.insert("envelope".into(), Value::clone(envelope));
    }
    if !event.headers.is_empty() {
        out.insert("headers".into(), Value::Object(Map::clone(&event.headers)));
    }
    let state = event.state.clone().unwrap_or_default();
    let mapped = state.mapped.as_deref();
    mapped_fields(&mut out, mapped);
    if mapped.is_some() {
        shown(&mut out, "properties", &event.properties);
    } else {
        out.insert("properties".into(), Value::Null);
    }
    let no_traits = event.traits.whole().is_some_and(Map::is_empty);
    if !no_traits {
        shown(&mut out, "traits", &event.traits);
    }
    state_fields(&mut out, &state);
    if let Some(reason) = &event.not_mappable {
        out.insert("not_mappable".into(), json!(reason));
    }
    out.insert("truncated".into(), json!(event.truncated()));
    out.insert(
        "raw_url".into(),
        json!(format!("/api/events/{}/raw", event.id)),
    );
    Value::Object(out)
}

#[cfg(test)]
fn shown<T: serde::Serialize>(out: &mut Map<String, Value>, key: &str, part: &Shown<T>) {
    match part {
        Shown::Whole(value) => {
            out.insert(key.into(), json!(value));
        }
        Shown::Cut { excerpt, bytes } => {
            out.insert(key.into(), Value::Null);
            out.insert(format!("{key}_excerpt"), json!(excerpt.text));
            out.insert(format!("{key}_truncated"), json!(true));
            out.insert(format!("{key}_bytes"), json!(bytes));
        }
    }
}

/// The mapped event's small fields (everything but properties and traits).
#[cfg(test)]
fn mapped_fields(out: &mut Map<String, Value>, mapped: Option<&crate::domain::model::MappedEvent>) {
    out.insert("name".into(), json!(mapped.map(|m| &m.name)));
    out.insert(
        "visitor_id".into(),
        json!(mapped.and_then(|m| m.visitor_id.as_ref())),
    );
    out.insert("email".into(), json!(mapped.and_then(|m| m.email.as_ref())));
    out.insert(
        "external_id".into(),
        json!(mapped.and_then(|m| m.external_id.as_ref())),
    );
    out.insert(
        "event_id".into(),
        json!(mapped.and_then(|m| m.event_id.as_ref())),
    );
    out.insert("timestamp".into(), json!(mapped.map(|m| m.timestamp)));
    out.insert(
        "mapping_version".into(),
        json!(mapped.map(|m| m.mapping_version)),
    );
    if let Some(m) = mapped.filter(|m| !m.identifiers.is_empty()) {
        out.insert("identifiers".into(), json!(m.identifiers));
    }
}

/// What the processor decided, besides the mapped event.
#[cfg(test)]
fn state_fields(out: &mut Map<String, Value>, state: &crate::domain::model::EventState) {
    out.insert("profile_id".into(), json!(state.profile_id));
    out.insert("resolution".into(), json!(state.resolution));
    out.insert("processed_at".into(), json!(state.processed_at));
    out.insert("errors".into(), json!(state.errors));
    out.insert("warnings".into(), json!(state.warnings));
}

/// An event unbounded, as the API once showed it: the raw record plus what
/// the processor decided. Only the store's measurement test still uses it
/// (the store's type is why it is test-only: domain imports no store).
#[cfg(test)]
pub fn event_json(event: &crate::domain::events::StoredEvent) -> Value {
    let raw = &event.raw;
    let mut out = Map::new();
    out.insert("id".into(), json!(raw.id));
    out.insert("source_id".into(), json!(raw.source_id));
    out.insert("request_id".into(), json!(raw.request_id));
    out.insert("received_at".into(), json!(raw.received_at));
    out.insert("status".into(), json!(event.status().as_str()));
    out.insert("payload".into(), raw.payload.clone());
    if let Some(envelope) = &raw.envelope {
        out.insert("envelope".into(), Value::clone(envelope));
    }
    if !raw.headers.is_empty() {
        out.insert("headers".into(), Value::Object(Map::clone(&raw.headers)));
    }
    let state = event.state.clone().unwrap_or_default();
    let mapped = state.mapped.as_deref();
    mapped_fields(&mut out, mapped);
    out.insert("properties".into(), json!(mapped.map(|m| &m.properties)));
    if let Some(m) = mapped.filter(|m| !m.traits.is_empty()) {
        out.insert("traits".into(), Value::Object(m.traits.clone()));
    }
    state_fields(&mut out, &state);
    if let Some(reason) = &raw.not_mappable {
        out.insert("not_mappable".into(), json!(reason));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::excerpt;
    use crate::domain::model::{EventState, MappedEvent};

    fn cut<T>(value: &Value) -> Shown<T> {
        Shown::Cut {
            excerpt: excerpt::of_value(value, 8),
            bytes: value.to_string().len(),
        }
    }

    fn summaries() -> Vec<EventSummary> {
        let base = EventSummary {
            id: EventId::new(),
            source_id: SourceId::new(),
            request_id: RequestId::new(),
            received_at: Utc::now(),
            record_bytes: 120,
            payload: Shown::Whole(json!({"a": 1})),
            envelope: None,
            headers: Arc::new(Map::new()),
            not_mappable: None,
            state: None,
            properties: Shown::Whole(Map::new()),
            traits: Shown::Whole(Map::new()),
        };
        let mapped = MappedEvent {
            name: "order".into(),
            visitor_id: Some("v-1".into()),
            email: None,
            external_id: Some("x-1".into()),
            event_id: None,
            timestamp: Utc::now(),
            properties: Map::new(),
            traits: Map::new(),
            idempotency_key: None,
            mapping_version: 3,
            identifiers: Default::default(),
        };
        let mut props = Map::new();
        props.insert("total".into(), json!(12.5));
        let mut traits = Map::new();
        traits.insert("plan".into(), json!("pro"));
        let state = EventState {
            status: Some(EventStatus::Resolved),
            processed_at: Some(Utc::now()),
            mapped: Some(Arc::new(mapped)),
            profile_id: Some(ProfileId::new()),
            resolution: Some("create".into()),
            errors: vec!["e".into()],
            warnings: vec!["w".into()],
            ..EventState::default()
        };
        let mut headers = Map::new();
        headers.insert("x-h".into(), json!("1"));
        vec![
            // Pending, nothing mapped.
            base.clone(),
            // Mapped with properties and traits, envelope and headers.
            EventSummary {
                state: Some(state.clone()),
                properties: Shown::Whole(props.clone()),
                traits: Shown::Whole(traits.clone()),
                envelope: Some(Arc::new(json!({"op": "upsert"}))),
                headers: Arc::new(headers),
                ..base.clone()
            },
            // Everything cut.
            EventSummary {
                state: Some(state.clone()),
                payload: cut(&json!({"big": "x".repeat(50)})),
                properties: cut(&Value::Object(props)),
                traits: cut(&Value::Object(traits)),
                ..base.clone()
            },
            // Not mappable, unmapped state.
            EventSummary {
                not_mappable: Some("not an object".into()),
                state: Some(EventState {
                    status: Some(EventStatus::Unmapped),
                    ..EventState::default()
                }),
                traits: cut(&json!({"t": 1})),
                ..base
            },
        ]
    }

    #[test]
    fn the_typed_event_view_serializes_as_the_untyped_one_did() {
        for event in summaries() {
            let old = summary_json(&event);
            let new = serde_json::to_value(EventView::of(event)).unwrap();
            assert_eq!(new, old);
        }
    }
}
