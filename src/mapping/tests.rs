//! Mapping-level rules: slots, identity, properties, timestamps, validation.

use super::*;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::json;

fn received() -> DateTime<Utc> {
    // After every timestamp the tests parse, so none is clamped as future.
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

fn spec(v: Value) -> MappingSpec {
    serde_json::from_value(v).unwrap()
}

fn compile(v: Value) -> CompiledMapping {
    CompiledMapping::compile(spec(v), 3).unwrap()
}

fn errors(v: Value) -> BTreeMap<String, String> {
    CompiledMapping::compile(spec(v), 1).unwrap_err()
}

fn apply_full(
    m: &CompiledMapping,
    record: Value,
    envelope: Option<Value>,
    headers: Value,
) -> Result<Mapped, MapError> {
    let headers = headers.as_object().cloned().unwrap_or_default();
    let ctx = RecordContext {
        record: &record,
        envelope: envelope.as_ref(),
        headers: &headers,
        received_at: received(),
    };
    m.apply(&ctx)
}

fn apply(m: &CompiledMapping, record: Value) -> MappedEvent {
    apply_full(m, record, None, json!({})).unwrap().event
}

#[test]
fn static_values_and_nested_paths() {
    let m = compile(
        json!({"event_name": "Signup", "email": "{{customer.email}}", "external_id": "crm"}),
    );
    let e = apply(&m, json!({"customer": {"email": "Ann@Example.org "}}));
    assert_eq!(e.name, "Signup");
    assert_eq!(e.email.as_deref(), Some("ann@example.org"));
    assert_eq!(e.external_id.as_deref(), Some("crm"));
    assert_eq!(e.mapping_version, 3);
    assert_eq!(e.timestamp, received());
}

#[test]
fn array_index_and_bracket_keys() {
    let m = compile(json!({
        "event_name": "{{items.0.sku}}",
        "visitor_id": "{{[visitor id]}}",
        "external_id": "u-{{items.[1].sku}}"
    }));
    let e = apply(
        &m,
        json!({"items": [{"sku": "A1"}, {"sku": "B2"}], "visitor id": "v9"}),
    );
    assert_eq!(e.name, "A1");
    assert_eq!(e.visitor_id.as_deref(), Some("v9"));
    assert_eq!(e.external_id.as_deref(), Some("u-B2"));
}

#[test]
fn no_html_escaping() {
    let email = "o'brien+x=y&z@example.org";
    let m =
        compile(json!({"event_name": "x", "email": "{{e}}", "external_id": "{{lower e}}<{{e}}>"}));
    let e = apply(&m, json!({"e": email}));
    assert_eq!(e.email.as_deref(), Some(email));
    assert_eq!(e.external_id, Some(format!("{email}<{email}>")));
}

#[test]
fn missing_paths_give_none_identities() {
    let m = compile(json!({
        "event_name": "x", "visitor_id": "{{a}}", "email": " {{b.c}} ",
        "external_id": "{{trim d}}", "event_id": "{{id}}"
    }));
    let e = apply(&m, json!({"d": "   "}));
    assert_eq!(
        (e.visitor_id, e.email, e.external_id, e.event_id),
        (None, None, None, None)
    );
    assert_eq!(e.idempotency_key, None);
}

#[test]
fn idempotency_key_defaults_to_event_id() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "event_id": "{{id}}"}));
    assert_eq!(
        apply(&m, json!({"id": 42})).idempotency_key.as_deref(),
        Some("42")
    );
    let m = compile(
        json!({"event_name": "x", "email": "a@b", "event_id": "{{id}}", "idempotency_key": "{{src}}:{{id}}"}),
    );
    assert_eq!(
        apply(&m, json!({"id": 42, "src": "s"}))
            .idempotency_key
            .as_deref(),
        Some("s:42")
    );
}

#[test]
fn envelope_headers_and_record_alias() {
    let m = compile(json!({
        "event_name": "{{headers.x-github-event}}: {{envelope.scheduled_plan.title}}",
        "external_id": "{{record.headers}}",
        "visitor_id": "{{headers}}"
    }));
    let out = apply_full(
        &m,
        json!({"headers": "mine"}),
        Some(json!({"scheduled_plan": {"title": "Weekly"}})),
        json!({"x-github-event": "push"}),
    )
    .unwrap();
    assert_eq!(out.event.name, "push: Weekly");
    assert_eq!(out.event.external_id.as_deref(), Some("mine"));
    // `headers` is reserved: an object renders as handlebars prints objects, not the record field.
    assert_ne!(out.event.visitor_id.as_deref(), Some("mine"));
}

#[test]
fn properties_all_mode() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "properties": "*"}));
    assert_eq!(
        apply(&m, json!({"a": 1, "b": {"c": [1]}})).properties,
        json!({"a": 1, "b": {"c": [1]}})
            .as_object()
            .cloned()
            .unwrap()
    );
    assert_eq!(
        Value::Object(apply(&m, json!([1, 2])).properties),
        json!({"value": [1, 2]})
    );
}

#[test]
fn properties_paths_mode_keeps_types() {
    let m = compile(
        json!({"event_name": "x", "email": "a@b", "properties": ["total", "customer.tier", "items.0", "missing.x"]}),
    );
    let p = apply(
        &m,
        json!({"total": 12.5, "customer": {"tier": null}, "items": [{"sku": "A"}]}),
    )
    .properties;
    assert_eq!(
        Value::Object(p),
        json!({"total": 12.5, "customer.tier": null, "items.0": {"sku": "A"}})
    );
}

#[test]
fn properties_templates_mode_types_bare_paths_only() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "properties": {
        "amount": "{{total}}", "amount_text": "{{total}} USD", "customer": "{{ customer }}",
        "plan": "gold", "gone": "{{missing}}", "gone2": "{{missing}}{{missing2}}"
    }, "traits": {"tier": "{{customer.tier}}", "n": "{{n}}"}}));
    let e = apply(
        &m,
        json!({"total": 12, "customer": {"tier": "vip"}, "n": true}),
    );
    assert_eq!(
        Value::Object(e.properties),
        json!({
            "amount": 12, "amount_text": "12 USD", "customer": {"tier": "vip"}, "plan": "gold"
        })
    );
    assert_eq!(Value::Object(e.traits), json!({"tier": "vip", "n": true}));
}

#[test]
fn timestamps_rfc3339_seconds_millis_and_fallback() {
    let m = compile(json!({"event_name": "x", "email": "a@b", "timestamp": "{{t}}"}));
    let want = Utc.with_ymd_and_hms(2024, 3, 1, 15, 0, 0).unwrap();
    for t in [
        json!("2024-03-01T10:00:00-05:00"),
        json!(1709305200),
        json!(1709305200000u64),
        json!("1709305200"),
    ] {
        let out = apply_full(&m, json!({"t": t}), None, json!({})).unwrap();
        assert_eq!(out.event.timestamp, want, "{t}");
        assert!(out.warnings.is_empty());
    }
    let out = apply_full(&m, json!({"t": "abc"}), None, json!({})).unwrap();
    assert_eq!(out.event.timestamp, received());
    assert_eq!(
        out.warnings,
        vec!["timestamp `abc` is not RFC 3339 or unix time; kept received_at"]
    );
    let out = apply_full(&m, json!({}), None, json!({})).unwrap();
    assert_eq!(out.event.timestamp, received());
    assert_eq!(out.warnings.len(), 1);
    let m = compile(json!({"event_name": "x", "email": "a@b", "timestamp": "{{d}}T{{h}}Z"}));
    let out = apply_full(
        &m,
        json!({"d": "2024-03-01", "h": "15:00:00"}),
        None,
        json!({}),
    )
    .unwrap();
    assert_eq!(out.event.timestamp, want);
}

#[test]
fn empty_event_name_is_an_error_that_says_what_to_fix() {
    let m = compile(json!({"event_name": "{{type}}", "email": "a@b"}));
    let err = apply_full(&m, json!({}), None, json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "event_name rendered empty: `{{type}}` is missing in this record"
    );
    let m = compile(json!({"event_name": "{{lower type}}", "email": "a@b"}));
    let err = apply_full(&m, json!({}), None, json!({})).unwrap_err();
    assert!(
        err.to_string()
            .contains("`{{lower type}}` produced nothing"),
        "{err}"
    );
}

#[test]
fn validation_errors_per_field() {
    let e = errors(
        json!({"email": "{{#if}}", "properties": {"total": "{{nope total}}"}, "traits": {"plan": "{{ unclosed"}}),
    );
    assert!(e["event_name"].contains("required"));
    assert!(e["email"].contains("`{{#if}}`"), "{}", e["email"]);
    assert!(e["properties.total"].contains("unknown helper `nope`"));
    assert!(e["traits.plan"].contains("not a valid template"));
    assert!(!e.contains_key("identity"));

    let e = errors(json!({"event_name": "x", "event_id": "{{id}}"}));
    assert_eq!(e.keys().collect::<Vec<_>>(), vec!["identity"]);
    let e = errors(json!({"event_name": " ", "email": " ", "properties": "all"}));
    assert!(e.contains_key("event_name") && e.contains_key("identity"));
    assert!(e["properties"].contains("\"*\""));
    let e = errors(json!({"event_name": "{{> header}}", "email": "a"}));
    assert!(e["event_name"].contains("partials"));
    let e = errors(json!({"event_name": "x", "email": "a", "properties": ["ok", "../up"]}));
    assert!(e.contains_key("properties.../up"));
}

#[test]
fn referenced_paths_are_record_paths() {
    let m = compile(json!({
        "event_name": "{{default event type}}", "email": "{{lower (coalesce traits.email context.traits.email)}}",
        "external_id": "{{record.headers.id}}", "visitor_id": "{{headers.x-id}}-{{envelope.a}}",
        "properties": ["items.0.sku"]
    }));
    assert_eq!(
        m.referenced_paths(),
        vec![
            "context.traits.email",
            "event",
            "headers.id",
            "items.0.sku",
            "traits.email",
            "type"
        ]
    );
}

#[test]
fn compiled_mapping_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CompiledMapping>();
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z0-9 @.{}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                "[a-z0-9]{1,4}|type|email|envelope|headers|record",
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn compile_and_apply_never_panic(
        record in json_value(),
        tpl in "[a-z{}#/ .()\"'>*@\\[\\]0-9]{0,24}",
        tpl2 in "\\{\\{(lower|json|first|split|default|coalesce|each|if|lookup)? ?[a-z.0-9 ]{0,10}\\}\\}",
    ) {
        let spec = MappingSpec {
            event_name: Some(tpl.clone()),
            email: Some(tpl2.clone()),
            visitor_id: Some(format!("{tpl2}{tpl}")),
            timestamp: Some(tpl2.clone()),
            properties: Some(PropertiesSpec::Templates(BTreeMap::from([("a".into(), tpl.clone()), ("b".into(), tpl2.clone())]))),
            traits: Some(BTreeMap::from([("t".into(), tpl2)])),
            ..MappingSpec::default()
        };
        if let Ok(m) = CompiledMapping::compile(spec, 1) {
            let _ = apply_full(&m, record.clone(), Some(record.clone()), json!({"x": "y"}));
            let _ = m.referenced_paths();
        }
        let all = CompiledMapping::compile(MappingSpec {
            event_name: Some("e".into()), email: Some("{{email}}".into()),
            properties: Some(PropertiesSpec::All("*".into())), ..MappingSpec::default()
        }, 1);
        prop_assert!(all.is_ok());
        if let Ok(m) = all { let _ = apply_full(&m, record, None, json!({})); }
    }
}
