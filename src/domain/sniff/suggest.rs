//! A first mapping guessed from a learned schema.
//!
//! A marketer facing an unknown payload should start from a mapping that
//! already works for the obvious slots; each pick comes with the reason, so
//! the guess can be checked rather than trusted.

use super::format::Format;
use super::path::template_of;
use super::schema::{FieldStats, JsonType, Schema};
use crate::domain::model::{MappingSpec, PropertiesSpec};
use serde::Serialize;
use std::collections::BTreeMap;

/// A suggested mapping and, per slot, why each path was chosen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    pub mapping: MappingSpec,
    pub reasons: BTreeMap<String, String>,
}

/// Field names (lowercase, without `_`/`-`) per slot, best first.
const EVENT_NAMES: [&str; 6] = ["type", "event", "eventtype", "eventname", "action", "topic"];
const EXTERNAL_IDS: [&str; 8] = [
    "userid",
    "customerid",
    "externalid",
    "accountid",
    "memberid",
    "contactid",
    "customer.id",
    "user.id",
];
const VISITOR_IDS: [&str; 7] = [
    "anonymousid",
    "visitorid",
    "anonid",
    "sessionid",
    "deviceid",
    "clientid",
    "cookieid",
];
const EVENT_IDS: [&str; 6] = [
    "id",
    "eventid",
    "messageid",
    "webhookid",
    "deliveryid",
    "uuid",
];
const TIMESTAMPS: [&str; 10] = [
    "timestamp",
    "createdat",
    "occurredat",
    "time",
    "eventtime",
    "sentat",
    "receivedat",
    "date",
    "updatedat",
    "datetime",
];

/// Guesses a mapping for `schema`; `source_name` names events when no field does.
pub fn suggest(schema: &Schema, source_name: &str) -> Suggestion {
    let mut fields: Vec<(&str, &FieldStats)> = schema
        .fields
        .iter()
        .filter(|(p, _)| !p.contains("[]"))
        .map(|(p, s)| (p.as_str(), s))
        .collect();
    // Deterministic tie-breaks: shallow first, then by path.
    fields.sort_by(|a, b| depth(a.0).cmp(&depth(b.0)).then(a.0.cmp(b.0)));
    let samples = schema.samples.max(1);
    let mut s = Picker {
        mapping: MappingSpec::default(),
        reasons: BTreeMap::new(),
        samples,
    };
    s.email(&fields);
    s.event_name(&fields, source_name);
    s.named("external_id", &fields, &EXTERNAL_IDS, "an account id");
    s.named(
        "visitor_id",
        &fields,
        &VISITOR_IDS,
        "an anonymous visitor id",
    );
    s.named("event_id", &fields, &EVENT_IDS, "a per-event id");
    s.timestamp(&fields);
    s.mapping.properties = Some(PropertiesSpec::All("*".into()));
    s.reasons.insert(
        "properties".into(),
        "`*` keeps the whole record as event properties".into(),
    );
    Suggestion {
        mapping: s.mapping,
        reasons: s.reasons,
    }
}

struct Picker {
    mapping: MappingSpec,
    reasons: BTreeMap<String, String>,
    samples: u64,
}

impl Picker {
    fn pct(&self, n: u64) -> u64 {
        (n * 100 / self.samples).min(100)
    }

    fn set(&mut self, slot: &str, path: &str, why: String) {
        let Some(template) = template_of(path) else {
            return;
        };
        let target = match slot {
            "email" => &mut self.mapping.email,
            "event_name" => &mut self.mapping.event_name,
            "external_id" => &mut self.mapping.external_id,
            "visitor_id" => &mut self.mapping.visitor_id,
            "event_id" => &mut self.mapping.event_id,
            "timestamp" => &mut self.mapping.timestamp,
            _ => return,
        };
        *target = Some(template);
        self.reasons.insert(slot.into(), why);
    }

    /// The path holding the most email-formatted values.
    fn email(&mut self, fields: &[(&str, &FieldStats)]) {
        let best = fields
            .iter()
            .filter(|(_, s)| s.format_count(Format::Email) > 0)
            .max_by_key(|(_, s)| s.format_count(Format::Email));
        if let Some((path, stats)) = best {
            let why = format!(
                "`{path}` holds emails in {}% of records",
                self.pct(stats.format_count(Format::Email))
            );
            self.set("email", path, why);
        }
    }

    fn event_name(&mut self, fields: &[(&str, &FieldStats)], source_name: &str) {
        let strings = |s: &FieldStats| s.main_type() == Some(JsonType::String);
        if let Some((path, stats, _)) = best_named(fields, &EVENT_NAMES, strings) {
            let why = format!(
                "`{path}` is a text field named like an event type, present in {}% of records",
                self.pct(stats.seen)
            );
            self.set("event_name", path, why);
            return;
        }
        let name = slug(source_name);
        self.reasons.insert(
            "event_name".into(),
            format!("no event-type field found; every event is named `{name}` after the source"),
        );
        self.mapping.event_name = Some(name);
    }

    fn named(&mut self, slot: &str, fields: &[(&str, &FieldStats)], names: &[&str], what: &str) {
        let ids = |s: &FieldStats| {
            matches!(
                s.main_type(),
                Some(JsonType::String) | Some(JsonType::Number)
            )
        };
        if let Some((path, stats, _)) = best_named(fields, names, ids) {
            let why = format!(
                "`{path}` is named like {what}, present in {}% of records",
                self.pct(stats.seen)
            );
            self.set(slot, path, why);
        }
    }

    /// A date-time path, preferring well-known names, then the most common.
    fn timestamp(&mut self, fields: &[(&str, &FieldStats)]) {
        let dated: Vec<(&str, &FieldStats)> = fields
            .iter()
            .filter(|(_, s)| s.main_formats().contains(&Format::DateTime))
            .copied()
            .collect();
        let pick = best_named(&dated, &TIMESTAMPS, |_| true)
            .map(|(p, s, _)| (p, s))
            .or_else(|| dated.iter().max_by_key(|(_, s)| s.seen).copied());
        if let Some((path, stats)) = pick {
            let why = format!(
                "`{path}` holds date-times in {}% of records",
                self.pct(stats.format_count(Format::DateTime))
            );
            self.set("timestamp", path, why);
        }
    }
}

/// The field whose name best matches `names` (earlier name wins, then
/// shallower path, then more often seen).
fn best_named<'a>(
    fields: &[(&'a str, &'a FieldStats)],
    names: &[&str],
    accept: impl Fn(&FieldStats) -> bool,
) -> Option<(&'a str, &'a FieldStats, usize)> {
    fields
        .iter()
        .filter(|(_, s)| accept(s))
        .filter_map(|(p, s)| rank(p, names).map(|r| (*p, *s, r)))
        .min_by(|a, b| {
            (a.2, depth(a.0), std::cmp::Reverse(a.1.seen)).cmp(&(
                b.2,
                depth(b.0),
                std::cmp::Reverse(b.1.seen),
            ))
        })
}

/// Index of the first name matching the path's last segment (or its last
/// two segments, for names like `customer.id`).
fn rank(path: &str, names: &[&str]) -> Option<usize> {
    let mut segs = path.rsplit('.');
    let last = normalize(segs.next().unwrap_or(""));
    let two = segs.next().map(|p| format!("{}.{last}", normalize(p)));
    names
        .iter()
        .position(|n| *n == last || two.as_deref() == Some(*n))
}

fn normalize(seg: &str) -> String {
    seg.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

fn depth(path: &str) -> usize {
    path.matches('.').count()
}

/// "Shopify orders" → `shopify_orders`: a stable event name for the source.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_end_matches('_');
    if trimmed.is_empty() {
        "event".into()
    } else {
        trimmed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn learned(records: &[serde_json::Value]) -> Schema {
        let mut schema = Schema::default();
        let mut buf = String::new();
        for r in records {
            schema.observe(r, Utc::now(), &mut buf);
        }
        schema
    }

    #[test]
    fn suggests_each_slot() {
        let schema = learned(&[json!({
            "id": "evt_1", "type": "order.created", "created_at": "2024-05-01T10:00:00Z",
            "customer": {"id": 42, "email": "ann@example.com"},
            "anonymous_id": "a-1", "items": [{"sku": "x"}]
        })]);
        let s = suggest(&schema, "Shopify orders");
        let m = &s.mapping;
        assert_eq!(m.email.as_deref(), Some("{{customer.email}}"));
        assert_eq!(m.event_name.as_deref(), Some("{{type}}"));
        assert_eq!(m.external_id.as_deref(), Some("{{customer.id}}"));
        assert_eq!(m.visitor_id.as_deref(), Some("{{anonymous_id}}"));
        assert_eq!(m.event_id.as_deref(), Some("{{id}}"));
        assert_eq!(m.timestamp.as_deref(), Some("{{created_at}}"));
        assert_eq!(m.properties, Some(PropertiesSpec::All("*".into())));
        assert!(
            s.reasons["email"].contains("100%"),
            "{}",
            s.reasons["email"]
        );
    }

    #[test]
    fn falls_back_to_the_source_name() {
        let schema = learned(&[json!({"Division": "Online"})]);
        let s = suggest(&schema, "Shopify orders!");
        assert_eq!(s.mapping.event_name.as_deref(), Some("shopify_orders"));
        assert_eq!(s.mapping.email, None);
        assert_eq!(slug("  "), "event");
    }
}
