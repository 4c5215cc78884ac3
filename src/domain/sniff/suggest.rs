//! A first mapping guessed from a learned schema.
//!
//! A marketer facing an unknown payload should start from a mapping that
//! already works for the obvious slots; each pick comes with the reason, so
//! the guess can be checked rather than trusted.

use super::format::Format;
use super::path::{steps, template_of, Step};
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
const EXTERNAL_IDS: [&str; 10] = [
    "userid",
    "customerid",
    "externalid",
    "accountid",
    "memberid",
    "contactid",
    "customer.id",
    "user.id",
    // Looker's `view.field` columns name views in the plural.
    "customers.id",
    "users.id",
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
    s.event_id(&fields);
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

    /// A field named like an event id whose values never repeated: a
    /// per-user id (`users.id`) as event id would make every later event of
    /// that user a duplicate, so a repeating one is named in the reason instead.
    fn event_id(&mut self, fields: &[(&str, &FieldStats)]) {
        // `repeating` also holds fields not checked yet (an old schema).
        let (distinct, repeating): (Vec<_>, Vec<_>) = fields
            .iter()
            .copied()
            .partition(|(_, s)| s.distinct.all_distinct());
        let before = self.mapping.event_id.clone();
        self.named("event_id", &distinct, &EVENT_IDS, "a per-event id");
        if self.mapping.event_id != before {
            if let Some(why) = self.reasons.get_mut("event_id") {
                why.push_str(", and its values were all different");
            }
            return;
        }
        if let Some((path, _, _)) = best_named(&repeating, &EVENT_IDS, |s| s.distinct.repeated) {
            self.reasons.insert(
                "event_id".into(),
                format!(
                    "none: `{path}` is named like an id but its values repeat across records, \
                     so it would drop later events as duplicates"
                ),
            );
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

/// Index of the first name matching the path's last word (or its last
/// two, for names like `customer.id`). Words are the keys, and the parts of
/// a dotted key: Looker's `users.id` ranks as `users` → `id`.
fn rank(path: &str, names: &[&str]) -> Option<usize> {
    let steps = steps(path);
    let mut words = steps
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(*k),
            Step::Each => None,
        })
        .flat_map(|k| k.split('.'))
        .rev();
    let last = normalize(words.next().unwrap_or(""));
    let two = words.next().map(|p| format!("{}.{last}", normalize(p)));
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

/// How many steps below the record a path is (`[users.email]` is one).
fn depth(path: &str) -> usize {
    steps(path).len().saturating_sub(1)
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

    /// Looker names columns `view.field`: the suggestion reaches the dotted
    /// keys with `[...]`, takes `users.id` as the account id and not as the
    /// event id (it repeats: one user, several orders), and `orders.id`,
    /// whose values were all different, as the event id.
    #[test]
    fn looker_columns_are_reachable_and_a_repeating_id_is_no_event_id() {
        let schema = learned(&[
            json!({"users.email": "ann@example.com", "users.id": 7, "orders.id": 101}),
            json!({"users.email": "ann@example.com", "users.id": 7, "orders.id": 102}),
            json!({"users.email": "bob@example.com", "users.id": 8, "orders.id": 103}),
        ]);
        let s = suggest(&schema, "Looker");
        let m = &s.mapping;
        assert_eq!(m.email.as_deref(), Some("{{[users.email]}}"));
        assert_eq!(m.external_id.as_deref(), Some("{{[users.id]}}"));
        assert_eq!(
            m.event_id.as_deref(),
            Some("{{[orders.id]}}"),
            "{:?}",
            s.reasons
        );
        assert!(
            s.reasons["event_id"].contains("all different"),
            "{:?}",
            s.reasons
        );
    }

    #[test]
    fn an_id_that_repeats_is_not_suggested_as_event_id() {
        let schema = learned(&[
            json!({"id": "u1", "type": "login"}),
            json!({"id": "u1", "type": "logout"}),
        ]);
        let s = suggest(&schema, "App");
        assert_eq!(s.mapping.event_id, None);
        assert!(s.reasons["event_id"].contains("repeat"), "{:?}", s.reasons);
    }

    /// A schema stored before the distinctness check has no signal: no
    /// event id is claimed until a new record gives one.
    #[test]
    fn an_old_schema_loads_and_learns_distinctness_from_new_records() {
        let mut schema = learned(&[json!({"id": "e1"})]);
        let mut stored = serde_json::to_value(&schema).unwrap();
        stored["fields"]["id"]
            .as_object_mut()
            .unwrap()
            .remove("distinct");
        schema = serde_json::from_value(stored).unwrap();
        assert_eq!(suggest(&schema, "x").mapping.event_id, None);
        schema.observe(&json!({"id": "e2"}), Utc::now(), &mut String::new());
        assert_eq!(
            suggest(&schema, "x").mapping.event_id.as_deref(),
            Some("{{id}}")
        );
    }
}
