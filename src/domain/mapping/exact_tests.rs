//! Identity and timestamp slots keep what the sender meant: numbers used as
//! ids keep their exact text, emails are lowercased ASCII-only, and a
//! far-future timestamp is clamped to the arrival time.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap()
}

fn compile(v: Value) -> CompiledMapping {
    let spec: MappingSpec = serde_json::from_value(v).unwrap();
    CompiledMapping::compile(spec, 1).unwrap()
}

fn apply_text(m: &CompiledMapping, body: &str) -> Mapped {
    let record: Value = serde_json::from_str(body).unwrap();
    let headers = Map::new();
    let ctx = RecordContext {
        record: &record,
        envelope: None,
        headers: &headers,
        received_at: received(),
    };
    m.apply(&ctx).unwrap()
}

#[test]
fn big_integer_ids_keep_their_exact_text() {
    for slot in ["{{id}}", "{{id}}-x", "{{ default id \"none\" }}"] {
        let m = compile(json!({"event_name": "x", "external_id": slot}));
        let a = apply_text(&m, r#"{"id": 123456789012345678901}"#);
        let b = apply_text(&m, r#"{"id": 123456789012345678902}"#);
        let a = a.event.external_id.unwrap();
        let b = b.event.external_id.unwrap();
        assert!(a.starts_with("123456789012345678901"), "{slot}: {a}");
        assert!(b.starts_with("123456789012345678902"), "{slot}: {b}");
        assert_ne!(a, b);
    }
    let m = compile(json!({"event_name": "x", "external_id": "{{id}}"}));
    for (text, want) in [
        ("1.10", "1.10"),
        ("-0", "-0"),
        ("18446744073709551616", "18446744073709551616"),
        ("0.1000000000000000055511", "0.1000000000000000055511"),
        // serde_json writes an exponent's sign: the value is exact, the
        // spelling of the exponent is not (no sender uses ids like this).
        ("1e2", "1e+2"),
        ("1E-2", "1e-2"),
    ] {
        let out = apply_text(&m, &format!(r#"{{"id": {text}}}"#));
        assert_eq!(out.event.external_id.as_deref(), Some(want));
    }
}

#[test]
fn properties_keep_exact_numbers() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "properties": "*"}));
    let out = apply_text(
        &m,
        r#"{"n": 123456789012345678901, "f": 0.30000000000000001}"#,
    );
    let shown = serde_json::to_string(&out.event.properties).unwrap();
    assert_eq!(
        shown,
        r#"{"f":0.30000000000000001,"n":123456789012345678901}"#
    );
}

#[test]
fn emails_lowercase_ascii_only() {
    let m = compile(json!({"event_name": "x", "email": "{{e}}"}));
    let kelvin = apply_text(&m, r#"{"e": "\u212Aim@Example.com"}"#);
    assert_eq!(
        kelvin.event.email.as_deref(),
        Some("\u{212A}im@example.com")
    );
    let nbsp = apply_text(&m, r#"{"e": "kim@example.com\u00A0"}"#);
    assert_eq!(nbsp.event.email.as_deref(), Some("kim@example.com\u{a0}"));
}

#[test]
fn far_future_timestamp_is_clamped_with_a_warning() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "timestamp": "{{t}}"}));
    for t in [
        r#""4000-01-01T00:00:00Z""#,
        "64060588800",
        r#""2025-06-02T12:00:01Z""#,
    ] {
        let out = apply_text(&m, &format!(r#"{{"t": {t}}}"#));
        assert_eq!(out.event.timestamp, received(), "{t}");
        assert!(out.warnings.is_empty(), "{t}");
        let warning = out.clamped_timestamp.expect(t);
        assert!(warning.contains("24 hours"), "{warning}");
    }
    // Within the bound, and any past date, are kept as sent.
    for (t, want) in [
        (r#""2025-06-02T12:00:00Z""#, "2025-06-02T12:00:00Z"),
        (r#""1970-01-01T00:00:00Z""#, "1970-01-01T00:00:00Z"),
        (r#""0001-01-01T00:00:00Z""#, "0001-01-01T00:00:00Z"),
    ] {
        let out = apply_text(&m, &format!(r#"{{"t": {t}}}"#));
        assert_eq!(
            out.event
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            want
        );
        assert_eq!(out.clamped_timestamp, None);
    }
}

proptest! {
    /// Any decimal integer, however long, is an id with exactly its text.
    #[test]
    fn any_integer_id_is_exact(digits in "-?[1-9][0-9]{0,60}") {
        let m = compile(json!({"event_name": "x", "external_id": "{{id}}"}));
        let out = apply_text(&m, &format!(r#"{{"id": {digits}}}"#));
        prop_assert_eq!(out.event.external_id.as_deref(), Some(digits.as_str()));
    }

    /// No number, however absurd, panics the timestamp slot; the result is
    /// never more than the bound past arrival.
    #[test]
    fn any_number_timestamp_is_bounded(
        mantissa in "-?(0|[1-9][0-9]{0,29})(\\.[0-9]{1,10})?",
        exp in proptest::option::of(-400i32..400),
    ) {
        let text = match exp {
            Some(e) => format!("{mantissa}e{e}"),
            None => mantissa,
        };
        let m = compile(json!({"event_name": "x", "email": "a@b", "timestamp": "{{t}}"}));
        for body in [format!(r#"{{"t": {text}}}"#), format!(r#"{{"t": "{text}"}}"#)] {
            let out = apply_text(&m, &body);
            prop_assert!(out.event.timestamp <= received() + timestamp::MAX_AHEAD);
        }
    }
}
