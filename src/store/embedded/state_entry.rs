//! One event's stored state entry (in a `state_chunks` chunk or in
//! `state_overrides`), split so a list reads only its small part.
//!
//! Format: the event's log `Location` (16 bytes), then `SPLIT` (1 byte),
//! `light_len: u32 LE`, the light state JSON (the `EventState` without the
//! mapped properties and traits: status, ids, name, profile, resolution,
//! errors), `properties_len: u32 LE`, the properties JSON, then the traits
//! JSON to the end (both empty when nothing was mapped).
//!
//! Why split: a mapping with `"properties": "*"` copies the whole record
//! into the state, so a 5 MB event had a 5 MB state, and listing or
//! searching parsed it to read an email. Split, a search parses a few
//! hundred bytes per event and a list takes a bounded excerpt of the rest.
//! The split costs 9 bytes per entry and no extra copy.
//!
//! Entries written before the split hold the state JSON right after the
//! location (its first byte is `{`); they read back whole, as before.

use super::log::Location;
use super::{decode, StoreError, StoreResult};
use crate::domain::identity::KindName;
use crate::domain::ids::ProfileId;
use crate::domain::model::{EventState, EventStatus, MappedEvent};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const SPLIT: u8 = 1;

/// The parts of an entry, borrowed.
pub(super) struct Parts<'a> {
    pub at: Location,
    /// JSON of the state without properties and traits (or, for an entry
    /// written before the split, the whole state).
    pub light: &'a [u8],
    pub properties: &'a [u8],
    pub traits: &'a [u8],
}

pub(super) fn encode(at: Location, state: &EventState) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&at.to_bytes());
    out.push(SPLIT);
    // Writing our own plain types into a Vec cannot fail.
    write_sized(&mut out, |out| {
        let _ = serde_json::to_writer(out, &Light::of(state));
    });
    match &state.mapped {
        Some(mapped) => {
            write_sized(&mut out, |out| {
                let _ = serde_json::to_writer(&mut *out, &mapped.properties);
            });
            let _ = serde_json::to_writer(&mut out, &mapped.traits);
        }
        None => out.extend_from_slice(&0u32.to_le_bytes()),
    }
    out
}

/// Appends `len: u32 LE` and then what `write` writes.
fn write_sized(out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    write(out);
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

pub(super) fn split(bytes: &[u8]) -> StoreResult<Parts<'_>> {
    let short = || StoreError::Malformed {
        tree: "event_state",
        what: "a value shorter than its header",
    };
    let at = Location::from_slice(bytes).ok_or_else(short)?;
    let rest = &bytes[Location::BYTES..];
    if rest.first() != Some(&SPLIT) {
        return Ok(Parts {
            at,
            light: rest,
            properties: &[],
            traits: &[],
        });
    }
    let (light, rest) = sized(&rest[1..]).ok_or_else(short)?;
    let (properties, traits) = sized(rest).ok_or_else(short)?;
    Ok(Parts {
        at,
        light,
        properties,
        traits,
    })
}

/// A `len: u32 LE`-prefixed slice and what follows it.
fn sized(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let body = bytes.get(4..4 + len)?;
    Some((body, &bytes[4 + len..]))
}

/// The state without its mapped properties and traits (empty maps).
pub(super) fn decode_light(parts: &Parts<'_>) -> StoreResult<EventState> {
    decode("event_state", parts.light)
}

/// The whole state.
pub(super) fn decode_full(bytes: &[u8]) -> StoreResult<(Location, EventState)> {
    let parts = split(bytes)?;
    let mut state = decode_light(&parts)?;
    if let Some(mapped) = state.mapped.as_mut().map(std::sync::Arc::make_mut) {
        if !parts.properties.is_empty() {
            mapped.properties = decode("event_state", parts.properties)?;
        }
        if !parts.traits.is_empty() {
            mapped.traits = decode("event_state", parts.traits)?;
        }
    }
    Ok((parts.at, state))
}

/// What `encode` writes as the light part. The destructuring below names
/// every field, so a field added to `EventState` or `MappedEvent` fails to
/// compile here until it is placed in one part or the other.
#[derive(Serialize)]
struct Light<'a> {
    status: Option<EventStatus>,
    processed_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mapped: Option<LightMapped<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_id: Option<ProfileId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    errors: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_version: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    identity_refused: &'a [String],
}

#[derive(Serialize)]
struct LightMapped<'a> {
    name: &'a str,
    visitor_id: Option<&'a str>,
    email: Option<&'a str>,
    external_id: Option<&'a str>,
    event_id: Option<&'a str>,
    timestamp: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    mapping_version: u32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    identifiers: &'a BTreeMap<KindName, String>,
}

impl<'a> Light<'a> {
    fn of(state: &'a EventState) -> Self {
        let EventState {
            status,
            processed_at,
            mapped,
            profile_id,
            resolution,
            errors,
            warnings,
            failed_version,
            identity_refused,
        } = state;
        Light {
            status: *status,
            processed_at: *processed_at,
            mapped: mapped.as_deref().map(LightMapped::of),
            profile_id: *profile_id,
            resolution: resolution.as_deref(),
            errors,
            warnings,
            failed_version: *failed_version,
            identity_refused,
        }
    }
}

impl<'a> LightMapped<'a> {
    fn of(mapped: &'a MappedEvent) -> Self {
        let MappedEvent {
            name,
            visitor_id,
            email,
            external_id,
            event_id,
            timestamp,
            properties: _,
            traits: _,
            idempotency_key,
            mapping_version,
            identifiers,
        } = mapped;
        LightMapped {
            name,
            visitor_id: visitor_id.as_deref(),
            email: email.as_deref(),
            external_id: external_id.as_deref(),
            event_id: event_id.as_deref(),
            timestamp: *timestamp,
            idempotency_key: idempotency_key.as_deref(),
            mapping_version: *mapping_version,
            identifiers,
        }
    }
}

/// Parses a map part of an entry (properties or traits); empty bytes are
/// an empty map.
pub(super) fn decode_map(bytes: &[u8]) -> StoreResult<Map<String, Value>> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    decode("event_state", bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    fn at() -> Location {
        Location {
            segment: 3,
            offset: 99,
            len: 1234,
        }
    }

    fn mapped_state() -> EventState {
        let properties = json!({"big": "x".repeat(5000), "n": 1});
        EventState {
            status: Some(EventStatus::Resolved),
            processed_at: Some(Utc::now()),
            mapped: Some(Arc::new(MappedEvent {
                name: "order".into(),
                visitor_id: None,
                email: Some("ann@example.org".into()),
                external_id: Some("42".into()),
                event_id: None,
                timestamp: Utc::now(),
                properties: properties.as_object().unwrap().clone(),
                traits: json!({"plan": "pro"}).as_object().unwrap().clone(),
                idempotency_key: Some("k".into()),
                mapping_version: 2,
                identifiers: Default::default(),
            })),
            profile_id: Some(ProfileId::new()),
            resolution: Some("create".into()),
            errors: vec!["e".into()],
            warnings: vec![],
            failed_version: Some(1),
            identity_refused: vec![],
        }
    }

    #[test]
    fn a_split_entry_reads_back_whole_and_its_light_part_is_small() {
        let state = mapped_state();
        let bytes = encode(at(), &state);
        assert_eq!(decode_full(&bytes).unwrap(), (at(), state.clone()));
        let parts = split(&bytes).unwrap();
        assert!(parts.light.len() < 400, "{}", parts.light.len());
        let light = decode_light(&parts).unwrap();
        let mapped = light.mapped.as_ref().unwrap();
        assert_eq!(mapped.email.as_deref(), Some("ann@example.org"));
        assert!(mapped.properties.is_empty() && mapped.traits.is_empty());
        assert_eq!(
            decode_map(parts.traits).unwrap(),
            state.mapped.as_ref().unwrap().traits
        );
        let unmapped = EventState::default();
        assert_eq!(
            decode_full(&encode(at(), &unmapped)).unwrap(),
            (at(), unmapped)
        );
    }

    #[test]
    fn an_entry_written_before_the_split_reads_back() {
        let state = mapped_state();
        let mut old = at().to_bytes().to_vec();
        old.extend(serde_json::to_vec(&state).unwrap());
        assert_eq!(decode_full(&old).unwrap(), (at(), state));
    }
}
