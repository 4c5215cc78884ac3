//! A mapping preview's answer: what a mapping makes of some records and
//! what the resolver would do with each, stored nowhere.
//!
//! The answer is bounded, because records (and so mapped properties) can
//! be megabytes: at most [`PREVIEW_MAX_SAMPLES`] records, each result
//! clipped to [`PREVIEW_MAX_RESULT_BYTES`] of JSON, all results to
//! [`PREVIEW_MAX_BYTES`]; `omitted` counts the records left out.

use crate::domain::ids::{EventId, ProfileId};
use crate::domain::mapping::{expression, template_path, CompiledMapping, EmptySlot};
use crate::domain::model::{MappedEvent, RecordContext};
use crate::domain::sniff::path::schema_path_of_segments;
use crate::domain::sniff::Schema;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// Records one preview maps; the rest are counted in `omitted`.
pub const PREVIEW_MAX_SAMPLES: usize = 20;
/// Bytes of one previewed result (as JSON) before its properties and
/// traits are replaced by a marker.
pub const PREVIEW_MAX_RESULT_BYTES: usize = 16 * 1024;
/// Bytes of all results of one preview; results past it are omitted.
pub const PREVIEW_MAX_BYTES: usize = 256 * 1024;
/// Texts longer than this (in bytes) are cut in a clipped result.
const MAX_TEXT: usize = 1024;

/// `{"results": [...], "omitted", "warnings": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviewResult {
    pub results: Vec<PreviewRecord>,
    /// Records given (or sampled) but not in `results`.
    pub omitted: usize,
    /// Slots that read nothing from any record, and template paths the
    /// learned schema has never seen (see [`mapping_warnings`]).
    pub warnings: Vec<MappingWarning>,
}

/// Something about a mapping worth fixing that does not stop it from being
/// saved: `{"slot", "template", "message", "suggest"}`, where `slot` and
/// `template` are `null` for a path the schema never saw, and `suggest` is
/// the template to use instead when one is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappingWarning {
    pub slot: Option<String>,
    pub template: Option<String>,
    pub message: String,
    pub suggest: Option<String>,
}

/// One record's dry run. Mapped: `{"event", "resolution", "profile_id",
/// "warnings"}`; not mapped: `{"event": null, "error", "warnings": []}`;
/// either with `"truncated": true` when clipped.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviewRecord {
    /// Which record this was (the dashboard shows it; the API does not).
    #[serde(skip)]
    pub record: RecordRef,
    pub event: Option<PreviewEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub resolution: Option<PreviewResolution>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// The stored (or given) record a result is for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecordRef {
    pub id: EventId,
    pub received_at: DateTime<Utc>,
}

/// What the resolver would do: `create`, `attach`, `merge` or
/// `refused: <reason>`, and the profile it would land in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviewResolution {
    pub resolution: String,
    pub profile_id: Option<ProfileId>,
}

/// A mapped event as a preview shows it: [`MappedEvent`]'s fields, with
/// properties and traits possibly replaced by a size marker. A mirror on
/// purpose (the marker does not fit `MappedEvent`'s maps); a field added
/// there and not here fails `results_keep_their_json_shapes`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreviewEvent {
    pub name: String,
    pub visitor_id: Option<String>,
    pub email: Option<String>,
    pub external_id: Option<String>,
    pub event_id: Option<String>,
    pub timestamp: DateTime<Utc>,
    pub properties: Clipped,
    #[serde(skip_serializing_if = "Clipped::is_empty")]
    pub traits: Clipped,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub mapping_version: u32,
}

/// A part of a previewed event: whole, or a marker saying how large it was.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Clipped {
    Whole(Map<String, Value>),
    Marker(String),
}

impl Clipped {
    fn is_empty(&self) -> bool {
        matches!(self, Clipped::Whole(map) if map.is_empty())
    }

    pub fn whole(&self) -> Option<&Map<String, Value>> {
        match self {
            Clipped::Whole(map) => Some(map),
            Clipped::Marker(_) => None,
        }
    }
}

impl From<MappedEvent> for PreviewEvent {
    fn from(e: MappedEvent) -> Self {
        Self {
            name: e.name,
            visitor_id: e.visitor_id,
            email: e.email,
            external_id: e.external_id,
            event_id: e.event_id,
            timestamp: e.timestamp,
            properties: Clipped::Whole(e.properties),
            traits: Clipped::Whole(e.traits),
            idempotency_key: e.idempotency_key,
            mapping_version: e.mapping_version,
        }
    }
}

impl PreviewRecord {
    /// A record the mapping could not map.
    pub fn not_mapped(record: RecordRef, error: String) -> Self {
        Self {
            record,
            event: None,
            error: Some(error),
            resolution: None,
            warnings: Vec::new(),
            truncated: false,
        }
    }

    /// A mapped record and what resolution would do.
    pub fn mapped(
        record: RecordRef,
        event: MappedEvent,
        resolution: PreviewResolution,
        warnings: Vec<String>,
    ) -> Self {
        Self {
            record,
            event: Some(event.into()),
            error: None,
            resolution: Some(resolution),
            warnings,
            truncated: false,
        }
    }

    /// Its size as JSON.
    pub fn json_len(&self) -> usize {
        json_len(self)
    }

    /// A result too large to show: its event's `properties` and `traits`
    /// become a marker saying how large they were, and long texts are cut.
    pub fn clip(mut self) -> Self {
        if self.json_len() <= PREVIEW_MAX_RESULT_BYTES {
            return self;
        }
        if let Some(event) = &mut self.event {
            event.properties = size_marker(&event.properties);
            // Empty traits are not in the JSON at all, so there is nothing to mark.
            if !event.traits.is_empty() {
                event.traits = size_marker(&event.traits);
            }
            let texts = [
                Some(&mut event.name),
                event.visitor_id.as_mut(),
                event.email.as_mut(),
                event.external_id.as_mut(),
                event.event_id.as_mut(),
                event.idempotency_key.as_mut(),
            ];
            for text in texts.into_iter().flatten() {
                if text.len() > MAX_TEXT {
                    *text = format!("{}… (truncated: {} bytes)", cut(text), text.len());
                }
            }
        }
        if let Some(error) = self.error.as_mut().filter(|e| e.len() > MAX_TEXT) {
            *error = format!("{}… (truncated)", cut(error));
        }
        self.truncated = true;
        self
    }
}

fn size_marker(part: &Clipped) -> Clipped {
    Clipped::Marker(format!(
        "(truncated: {} bytes; the preview shows at most {PREVIEW_MAX_RESULT_BYTES} per result)",
        json_len(part)
    ))
}

/// The first [`MAX_TEXT`] characters of `text`.
fn cut(text: &str) -> &str {
    let end = text
        .char_indices()
        .nth(MAX_TEXT)
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

fn json_len(value: &impl Serialize) -> usize {
    // Serialising these types cannot fail (string keys, no foreign
    // Serialize impls); if it ever did, the result counts as too large.
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

impl PreviewResult {
    /// Bounds the results for `total` records (see the module doc). The
    /// iterator is lazy: records past the budget are never mapped.
    pub fn bounded<E>(
        total: usize,
        records: impl IntoIterator<Item = Result<PreviewRecord, E>>,
        warnings: Vec<MappingWarning>,
    ) -> Result<Self, E> {
        let mut results = Vec::new();
        let mut bytes = 0usize;
        for record in records.into_iter().take(PREVIEW_MAX_SAMPLES) {
            let record = record?.clip();
            let size = record.json_len();
            if bytes + size > PREVIEW_MAX_BYTES {
                break;
            }
            bytes += size;
            results.push(record);
        }
        Ok(Self {
            omitted: total - results.len(),
            results,
            warnings,
        })
    }
}

/// Records the slot check of [`mapping_warnings`] looks at, at most.
pub const WARNING_MAX_SAMPLES: usize = PREVIEW_MAX_SAMPLES;

/// What a preview and a save warn about: each checked slot that gives
/// nothing for every one of `samples` (with the field probably meant, see
/// `CompiledMapping::empty_slots`), then each template path the learned
/// schema has never seen that such a warning does not already explain.
pub fn mapping_warnings(
    schema: Option<&Schema>,
    mapping: &CompiledMapping,
    samples: &[RecordContext<'_>],
) -> Vec<MappingWarning> {
    let samples = &samples[..samples.len().min(WARNING_MAX_SAMPLES)];
    let unseen = unseen_paths(schema, mapping);
    let empty = mapping.empty_slots(samples);
    let explained: BTreeSet<&[String]> = empty
        .iter()
        .flat_map(|e| e.missing.iter().map(Vec::as_slice))
        .collect();
    let mut out: Vec<MappingWarning> = empty
        .iter()
        .map(|e| empty_slot_warning(e, samples.len(), schema, &unseen))
        .collect();
    out.extend(
        unseen
            .iter()
            .filter(|p| !explained.contains(p.as_slice()))
            .map(|p| MappingWarning {
                slot: None,
                template: None,
                message: unseen_message(p, schema),
                suggest: None,
            }),
    );
    out
}

/// "no sample has a value for {{users.email}}; the field seen is
/// `users.email`: use {{[users.email]}}" — or, without a near field, why.
fn empty_slot_warning(
    empty: &EmptySlot,
    samples: usize,
    schema: Option<&Schema>,
    unseen: &[Vec<String>],
) -> MappingWarning {
    let mut message = format!("no sample has a value for {}", empty.template);
    let mut suggest = None;
    let unseen_read = empty.missing.iter().find(|p| unseen.contains(p));
    match (&empty.near, unseen_read) {
        (Some(near), _) => {
            let to = near.suggest.clone().or_else(|| expression(&near.seen));
            message.push_str(&format!("; the field seen is `{}`", field_name(&near.seen)));
            if let Some(to) = &to {
                message.push_str(&format!(": use {to}"));
            }
            suggest = to;
        }
        (None, Some(path)) => {
            message.push_str("; ");
            message.push_str(&unseen_message(path, schema));
        }
        (None, None) => {
            let s = if samples == 1 { "" } else { "s" };
            message.push_str(&format!(" (checked {samples} sample{s})"));
        }
    }
    MappingWarning {
        slot: Some(empty.slot.to_owned()),
        template: Some(empty.template.clone()),
        message,
        suggest,
    }
}

/// A field as the schema table names it: the key itself when it is one
/// (`users.email`), else its schema path (`order.[line.items]`).
fn field_name(segs: &[String]) -> String {
    match segs {
        [one] => one.clone(),
        _ => schema_path_of_segments(segs),
    }
}

fn unseen_message(segs: &[String], schema: Option<&Schema>) -> String {
    let shown = template_path(segs).unwrap_or_else(|| segs.join("."));
    let samples = schema.map_or(0, |s| s.samples);
    format!("`{shown}` has never been seen in this source's {samples} events")
}

/// Template paths (as segments) the learned schema has never seen (none
/// while the schema has seen nothing: there is nothing to compare with).
pub fn unseen_paths(schema: Option<&Schema>, mapping: &CompiledMapping) -> Vec<Vec<String>> {
    let Some(schema) = schema.filter(|s| s.samples > 0) else {
        return Vec::new();
    };
    mapping
        .referenced_segments()
        .into_iter()
        .filter(|p| !schema.has_path(&schema_path_of_segments(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::EventId;
    use serde_json::json;

    fn record() -> RecordRef {
        RecordRef {
            id: EventId::new(),
            received_at: Utc::now(),
        }
    }

    fn event(properties: Value) -> MappedEvent {
        MappedEvent {
            name: "Order placed".into(),
            visitor_id: None,
            email: Some("a@x.org".into()),
            external_id: None,
            event_id: None,
            timestamp: Utc::now(),
            properties: properties.as_object().cloned().unwrap_or_default(),
            traits: Map::new(),
            idempotency_key: None,
            mapping_version: 0,
            identifiers: Default::default(),
        }
    }

    /// The two shapes the processor built with `json!` before it was typed.
    #[test]
    fn results_keep_their_json_shapes() {
        let failed = serde_json::to_value(PreviewRecord::not_mapped(record(), "no".into()))
            .expect("serialisable");
        assert_eq!(
            failed,
            json!({"event": null, "error": "no", "warnings": []})
        );

        let e = event(json!({"total": 3}));
        let resolution = PreviewResolution {
            resolution: "create".into(),
            profile_id: None,
        };
        let mapped = PreviewRecord::mapped(record(), e.clone(), resolution, vec!["w".into()]);
        let out = serde_json::to_value(&mapped).expect("serialisable");
        assert_eq!(
            out,
            json!({"event": e, "resolution": "create", "profile_id": null, "warnings": ["w"]})
        );
    }

    #[test]
    fn a_large_result_is_clipped_to_markers_and_cut_texts() {
        let mut e = event(json!({"big": "p".repeat(40_000)}));
        e.name = "n".repeat(5_000);
        let resolution = PreviewResolution {
            resolution: "create".into(),
            profile_id: None,
        };
        let clipped = PreviewRecord::mapped(record(), e, resolution, Vec::new()).clip();
        assert!(clipped.truncated);
        assert!(clipped.json_len() <= PREVIEW_MAX_RESULT_BYTES);
        let out = serde_json::to_value(&clipped).expect("serialisable");
        assert_eq!(out["truncated"], true);
        let marker = out["event"]["properties"].as_str().expect("a marker");
        assert!(marker.starts_with("(truncated: "), "{marker}");
        // Empty traits stay out of the JSON, clipped or not.
        assert!(out["event"].get("traits").is_none(), "{out}");
        let name = out["event"]["name"].as_str().expect("name");
        assert!(name.ends_with("… (truncated: 5000 bytes)"), "{name}");
    }

    #[test]
    fn the_answer_stops_at_its_budgets_and_counts_the_rest() {
        let make = |n: usize| {
            (0..n).map(|_| Ok::<_, ()>(PreviewRecord::not_mapped(record(), "e".repeat(100))))
        };
        let few = PreviewResult::bounded(3, make(3), Vec::new()).expect("no error");
        assert_eq!((few.results.len(), few.omitted), (3, 0));
        let many = PreviewResult::bounded(50, make(50), Vec::new()).expect("no error");
        assert_eq!(
            (many.results.len(), many.omitted),
            (PREVIEW_MAX_SAMPLES, 50 - PREVIEW_MAX_SAMPLES)
        );
    }

    fn compiled(spec: Value) -> CompiledMapping {
        CompiledMapping::compile(serde_json::from_value(spec).expect("spec"), 1).expect("compiles")
    }

    fn warnings_for(spec: Value, records: &[Value]) -> Vec<MappingWarning> {
        let mut schema = Schema::default();
        let mut buf = String::new();
        for r in records {
            schema.observe(r, Utc::now(), &mut buf);
        }
        let headers = Map::new();
        let samples: Vec<RecordContext<'_>> = records
            .iter()
            .map(|record| RecordContext {
                record,
                envelope: None,
                headers: &headers,
                received_at: Utc::now(),
            })
            .collect();
        mapping_warnings(Some(&schema), &compiled(spec), &samples)
    }

    #[test]
    fn a_dotted_path_that_reads_nothing_names_the_key_and_the_template_to_use() {
        let looker = [
            json!({"users.email": "ann@example.com", "users.id": 7}),
            json!({"users.email": "bob@example.com", "users.id": 8}),
        ];
        let w = warnings_for(
            json!({"event_name": "Look", "email": "{{users.email}}", "external_id": "{{lower users.id}}"}),
            &looker,
        );
        assert_eq!(
            w.len(),
            2,
            "one per slot, no second one for the unseen path: {w:?}"
        );
        assert_eq!(
            serde_json::to_value(&w[0]).expect("json"),
            json!({
                "slot": "email",
                "template": "{{users.email}}",
                "message": "no sample has a value for {{users.email}}; the field seen is `users.email`: use {{[users.email]}}",
                "suggest": "{{[users.email]}}"
            })
        );
        assert_eq!(w[1].slot.as_deref(), Some("external_id"));
        assert_eq!(w[1].suggest.as_deref(), Some("{{lower [users.id]}}"));
    }

    #[test]
    fn a_slot_with_a_value_in_some_sample_or_a_static_value_is_no_warning() {
        let w = warnings_for(
            json!({"event_name": "Look", "email": "{{email}}", "event_id": "{{id}}"}),
            &[json!({"email": "a@x.org"}), json!({"id": "e1"})],
        );
        assert_eq!(w, Vec::new());
    }

    #[test]
    fn without_a_near_field_the_warning_says_what_was_checked() {
        let w = warnings_for(
            json!({"event_name": "Look", "email": "{{contact}}"}),
            &[json!({"email": "a@x.org"})],
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].suggest, None);
        assert_eq!(
            w[0].message,
            "no sample has a value for {{contact}}; `contact` has never been seen in this source's 1 events"
        );
        // A loose match (case, `_`) is offered too.
        let w = warnings_for(
            json!({"event_name": "Look", "email": "{{Customer.E_mail}}"}),
            &[json!({"customer": {"email": "a@x.org"}})],
        );
        assert_eq!(w[0].suggest.as_deref(), Some("{{customer.email}}"), "{w:?}");
    }
}
