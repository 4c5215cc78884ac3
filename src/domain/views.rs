//! JSON views of stored things, shared by the API and the dashboard so both
//! show the same fields under the same names.

use crate::domain::counters::CountsView;
use crate::domain::events::StoredEvent;
use crate::domain::source::Source;
use crate::domain::summary::{EventSummary, Shown};
use serde_json::{json, Map, Value};

/// An event as lists, searches, the live tail and the event page show it:
/// the fields of `event_json`, bounded (see `store::summary::Bounds`).
///
/// A part too large for the view keeps its field, set to `null`, and gains
/// `<part>_excerpt` (the first bytes of its JSON text) and
/// `<part>_truncated: true`; `truncated` says whether anything was cut and
/// `raw_url` serves the whole stored record. `record_bytes` is the stored
/// record's size. Envelope and headers appear with a whole record only.
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
}

/// What the processor decided, besides the mapped event.
fn state_fields(out: &mut Map<String, Value>, state: &crate::domain::model::EventState) {
    out.insert("profile_id".into(), json!(state.profile_id));
    out.insert("resolution".into(), json!(state.resolution));
    out.insert("processed_at".into(), json!(state.processed_at));
    out.insert("errors".into(), json!(state.errors));
    out.insert("warnings".into(), json!(state.warnings));
}

/// An event as the API shows it: the raw record plus what the processor decided.
pub fn event_json(event: &StoredEvent) -> Value {
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

/// A source as the API shows it. The token is never stored in clear, so it
/// appears only when the caller has just created or rotated it.
pub fn source_json(source: &Source, counts: CountsView, token: Option<&str>) -> Value {
    let mut out = json!({
        "id": source.id,
        "name": source.name,
        "api_key": source.api_key.as_ref().map(|k| json!({"header": k.header})),
        "records_path": source.records_path,
        "created_at": source.created_at,
        "updated_at": source.updated_at,
        "mapping_version": source.mapping_version,
        "blocked_values": source.blocked_values,
        "counts": counts,
    });
    if let (Some(token), Value::Object(map)) = (token, &mut out) {
        map.insert("token".into(), json!(token));
        map.insert("webhook_path".into(), json!(format!("/hooks/{token}")));
    }
    out
}

/// A profile as the API shows it: identities, trait values (without their
/// bookkeeping), first/last seen, counts and merged ids.
pub fn profile_json(profile: &crate::domain::identity::Profile) -> Value {
    let traits: Map<String, Value> = profile
        .traits
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    json!({
        "id": profile.id,
        "external_ids": profile.external_ids,
        "emails": profile.emails,
        "visitor_ids": profile.visitor_ids,
        "traits": traits,
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "event_count": profile.event_count,
        "merged_from": profile.merged_from,
        "created_at": profile.created_at,
    })
}
