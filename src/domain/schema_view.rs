//! The learned schema as the API shows it and the dashboard tabulates it:
//! one row per path (sorted), the recent drift, and what was not recorded.
//!
//! Typed twin of `Schema::view` (same JSON, asserted below), so the
//! dashboard reads fields instead of taking JSON apart by key. Once nothing
//! calls `Schema::view` any more it can go.

use crate::domain::sniff::{template_of, Drift, FieldStats, Format, JsonType, Schema};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `{"samples", "fields": [...], "drift": [...], "truncated": {"paths", "depth"}}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SchemaView {
    /// Records observed.
    pub samples: u64,
    /// One per path, sorted by path.
    pub fields: Vec<FieldView>,
    /// Oldest first, as the schema keeps it.
    pub drift: Vec<Drift>,
    pub truncated: Truncated,
}

/// What the schema stopped recording (see `sniff::schema::MAX_PATHS`/`MAX_DEPTH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Truncated {
    pub paths: u64,
    pub depth: u64,
}

/// One path of the schema.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldView {
    pub path: String,
    /// The exact template that reads this field (`{{[users.email]}}`);
    /// `null` for array paths and keys no template can name.
    pub template: Option<String>,
    /// Values seen per JSON type, only types seen at all (sorted by name).
    pub types: BTreeMap<&'static str, u64>,
    /// Records that had this path.
    pub seen: u64,
    /// Formats held by at least half of the string/number values.
    pub formats: Vec<&'static str>,
    /// Masked, truncated example values (payload values: JSON by nature).
    pub examples: Vec<Value>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl SchemaView {
    pub fn of(schema: &Schema) -> Self {
        let mut paths: Vec<&String> = schema.fields.keys().collect();
        paths.sort();
        let fields = paths
            .into_iter()
            .filter_map(|p| schema.fields.get(p).map(|s| FieldView::of(p, s)))
            .collect();
        Self {
            samples: schema.samples,
            fields,
            drift: schema.drift.iter().cloned().collect(),
            truncated: Truncated {
                paths: schema.truncated_paths,
                depth: schema.truncated_depth,
            },
        }
    }

    /// What a source that has seen nothing shows.
    pub fn empty() -> Self {
        Self::of(&Schema::default())
    }
}

impl FieldView {
    fn of(path: &str, stats: &FieldStats) -> Self {
        Self {
            path: path.to_string(),
            template: template_of(path),
            types: JsonType::ALL
                .into_iter()
                .zip(stats.types)
                .filter(|(_, n)| *n > 0)
                .map(|(t, n)| (t.as_str(), n))
                .collect(),
            seen: stats.seen,
            formats: stats
                .main_formats()
                .into_iter()
                .map(Format::as_str)
                .collect(),
            examples: stats.examples.clone(),
            first_seen: stats.first_seen,
            last_seen: stats.last_seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_typed_view_is_the_json_view() {
        let mut schema = Schema::default();
        let mut buf = String::new();
        let at = Utc::now();
        for i in 0..30 {
            let record =
                json!({"id": i, "email": format!("u{i}@x.org"), "nested": {"ok": i % 2 == 0}});
            schema.observe(&record, at, &mut buf);
        }
        // Settled by now: a new path and a type change are drift.
        schema.observe(&json!({"id": "text", "late": [1, 2]}), at, &mut buf);
        assert!(!schema.drift.is_empty());
        let typed = serde_json::to_value(SchemaView::of(&schema)).expect("serialisable");
        assert_eq!(typed, schema.view());
        let empty = serde_json::to_value(SchemaView::empty()).expect("serialisable");
        assert_eq!(
            empty,
            json!({"samples": 0, "fields": [], "drift": [], "truncated": {"paths": 0, "depth": 0}})
        );
    }
}
