//! Golden tests: every preset maps its sender's realistic fixture to the
//! events in `tests/fixtures/presets/<name>.expected.json`.

use chrono::{TimeZone, Utc};
use inlet::domain::mapping::presets::{preset, presets, Preset};
use inlet::domain::mapping::CompiledMapping;
use inlet::domain::model::RecordContext;
use inlet::domain::records::{explode, Exploded};
use serde_json::{Map, Value};
use std::path::Path;

const NAMES: [&str; 6] = [
    "looker",
    "segment",
    "stripe",
    "shopify_order",
    "hubspot",
    "github_push",
];

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_dir() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/presets"
    ))
}

/// Explodes the body with the real `records::explode`.
///
/// While `explode` is still the skeleton (it ignores `records_path` and
/// returns no envelope), the path is followed here so the Looker preset can
/// be checked now; once the real one lands this fallback is never taken.
fn explode_body(body: Value, records_path: Option<&str>) -> Exploded {
    let exploded = explode(body.clone(), records_path, 10_000).expect("explode");
    match records_path {
        Some(path) if exploded.envelope.is_none() => {
            let mut envelope = body;
            let (parent, last) = path.rsplit_once('.').unwrap_or(("", path));
            let holder = parent
                .split('.')
                .filter(|s| !s.is_empty())
                .try_fold(&mut envelope, |v, seg| v.get_mut(seg))
                .and_then(Value::as_object_mut)
                .expect("records_path parent");
            let records = match holder.remove(last) {
                Some(Value::Array(items)) => items,
                other => panic!("records_path {path} is not an array: {other:?}"),
            };
            Exploded {
                envelope: Some(envelope),
                records,
                not_mappable: None,
            }
        }
        _ => exploded,
    }
}

fn headers_for(name: &str) -> Map<String, Value> {
    let path = fixture_dir().join(format!("{name}.headers.json"));
    if !path.exists() {
        return Map::new();
    }
    read_json(&path)["headers"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn run(preset: &Preset) -> Value {
    let mapping = CompiledMapping::compile(preset.mapping.clone(), 1)
        .unwrap_or_else(|e| panic!("preset {} does not compile: {e:?}", preset.name));
    let body = read_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join(&preset.fixture));
    let exploded = explode_body(body, preset.records_path.as_deref());
    let headers = headers_for(&preset.name);
    // After every fixture's own timestamp: a record dated more than a day
    // after arrival would be clamped to the arrival time.
    let received_at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let events: Vec<Value> = exploded
        .records
        .iter()
        .map(|record| {
            let ctx = RecordContext {
                record,
                envelope: exploded.envelope.as_ref(),
                headers: &headers,
                received_at,
            };
            let mapped = mapping
                .apply(&ctx)
                .unwrap_or_else(|e| panic!("{}: {e}", preset.name));
            assert!(
                mapped.warnings.is_empty(),
                "{}: {:?}",
                preset.name,
                mapped.warnings
            );
            serde_json::to_value(mapped.event).unwrap()
        })
        .collect();
    Value::Array(events)
}

fn check(name: &str) {
    let preset = preset(name).unwrap_or_else(|| panic!("no preset {name}"));
    let actual = run(preset);
    let expected_path = fixture_dir().join(format!("{name}.expected.json"));
    if std::env::var_os("PRINT_PRESET_OUTPUT").is_some() {
        println!("{}", serde_json::to_string_pretty(&actual).unwrap());
    }
    assert_eq!(
        actual,
        read_json(&expected_path),
        "{name}: output differs from {}",
        expected_path.display()
    );
}

#[test]
fn every_preset_file_is_embedded_and_parses() {
    let names: Vec<&str> = presets().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, NAMES);
    for p in presets() {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(&p.fixture)
                .exists(),
            "{}",
            p.fixture
        );
        assert!(!p.description.is_empty());
    }
    assert!(preset("nope").is_none());
}

#[test]
fn looker() {
    check("looker");
}

#[test]
fn segment() {
    check("segment");
}

#[test]
fn stripe() {
    check("stripe");
}

#[test]
fn shopify_order() {
    check("shopify_order");
}

#[test]
fn hubspot() {
    check("hubspot");
}

#[test]
fn github_push() {
    check("github_push");
}
