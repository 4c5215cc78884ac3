//! Shape fixtures: each payload under `tests/fixtures/` is exploded and
//! sniffed, and the stable part of the learned schema (paths, types, seen,
//! formats, bounds — no timestamps or examples) is compared with
//! `tests/fixtures/expected/<name>.schema.json`.
//!
//! To regenerate after an intended change: `UPDATE_EXPECT=1 cargo test --test
//! sniff_fixtures`, then review the diff.

use chrono::{TimeZone, Utc};
use inlet::domain::ids::SourceId;
use inlet::domain::records::explode;
use inlet::domain::sniff::{suggest, SchemaRegistry};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Above this many paths only the count is compared (random_keys).
const LIST_FIELDS_UP_TO: usize = 100;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{name}.json")))
        .expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// Explodes and sniffs one fixture; returns the stable summary.
fn summarize(name: &str, records_path: Option<&str>) -> Value {
    let exploded = explode(load(name), records_path, 1000).expect("fixture explodes");
    let registry = SchemaRegistry::new();
    let source = SourceId::new();
    let at = Utc
        .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
        .single()
        .expect("date");
    for record in &exploded.records {
        registry.observe(source, record, at);
    }
    let schema = registry.snapshot(source).expect("schema");
    let view = schema.view();
    let fields: Vec<Value> = view["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| json!({"path": f["path"], "types": f["types"], "seen": f["seen"], "formats": f["formats"]}))
        .collect();
    let mapping = serde_json::to_value(suggest(&schema, name).mapping).expect("mapping");
    let mut out = json!({
        "records": exploded.records.len(),
        "envelope_keys": exploded.envelope.as_ref().and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect::<Vec<_>>()),
        "not_mappable": exploded.not_mappable.is_some(),
        "samples": view["samples"],
        "truncated": view["truncated"],
        "field_count": fields.len(),
        "suggested_mapping": mapping,
    });
    if fields.len() <= LIST_FIELDS_UP_TO {
        out["fields"] = Value::Array(fields);
    }
    out
}

fn check(name: &str, records_path: Option<&str>) {
    let got = summarize(name, records_path);
    let path = fixture_dir().join(format!("expected/{name}.schema.json"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        std::fs::write(&path, text).expect("write expected");
        return;
    }
    let text = std::fs::read_to_string(&path).expect("expected file exists");
    let want: Value = serde_json::from_str(&text).expect("expected is JSON");
    assert_eq!(
        got,
        want,
        "{name}: schema differs from {}\n{}",
        path.display(),
        serde_json::to_string_pretty(&got).unwrap_or_default()
    );
}

#[test]
fn looker_inline() {
    check("looker_inline", Some("attachment.data"));
}

#[test]
fn looker_string() {
    check("looker_string", Some("attachment.data"));
}

#[test]
fn looker_csv() {
    check("looker_csv", Some("attachment.data"));
}

#[test]
fn looker_pdf() {
    check("looker_pdf", Some("attachment.data"));
}

/// Looker's `view.field` columns: each dotted key is one field, apart from
/// a nested object of the same dotted name, and the suggestion reads them
/// with `[...]` and takes the distinct `orders.id` as event id.
#[test]
fn looker_dotted() {
    check("looker_dotted", None);
    let exploded = explode(load("looker_dotted"), None, 1000).expect("explodes");
    let registry = SchemaRegistry::new();
    let source = SourceId::new();
    for record in &exploded.records {
        registry.observe(source, record, Utc::now());
    }
    let view = registry.snapshot(source).expect("schema").view();
    let template = |path: &str| {
        view["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["path"] == path)
            .map(|f| f["template"].clone())
    };
    assert_eq!(template("[users.email]"), Some(json!("{{[users.email]}}")));
    assert_eq!(template("users.email"), Some(json!("{{users.email}}")));
}

#[test]
fn batch_array() {
    check("batch_array", None);
}

#[test]
fn deep_nesting() {
    check("deep_nesting", None);
}

#[test]
fn random_keys() {
    check("random_keys", None);
}

#[test]
fn form_like() {
    check("form_like", None);
}

#[test]
fn get_like() {
    check("get_like", None);
}
