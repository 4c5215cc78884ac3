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
    CompiledMapping::compile(spec(v), 1).unwrap_err().fields
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
    assert!(e["properties.total"].contains("there is no helper `nope`"));
    assert!(
        e["traits.plan"].contains("`{{ unclosed` is missing its closing `}}`"),
        "{}",
        e["traits.plan"]
    );
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

/// A mapping whose event name is `tpl`.
fn named(tpl: &str) -> Result<CompiledMapping, CompileErrors> {
    CompiledMapping::compile(spec(json!({"event_name": tpl, "email": "{{email}}"})), 1)
}

fn refused_code(tpl: &str) -> Option<&'static str> {
    named(tpl).err().and_then(|e| e.code)
}

#[test]
fn crash_class_templates_are_refused_with_codes_before_parsing() {
    let n = 5000;
    let cases = [
        format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n)),
        format!("{}x{}", "{{#each a}}".repeat(n), "{{/each}}".repeat(n)),
        format!("{{{{#if a}}}}{}{{{{/if}}}}", "{{else if b}}".repeat(n)),
        format!("{{{{lower {}a{}}}}}", "(lower ".repeat(n), ")".repeat(n)),
        format!("{{{{lookup a {}1{}}}}}", "[".repeat(n), "]".repeat(n)),
        "{{#if a}}".repeat(n),
    ];
    for tpl in &cases {
        assert_eq!(
            refused_code(tpl),
            Some("template_too_deep"),
            "{}",
            &tpl[..40]
        );
    }
    assert_eq!(
        refused_code(&format!("{{{{a}}}}{}", "x".repeat(9000))),
        Some("template_too_large")
    );
    let many_traits: BTreeMap<String, String> = (0..20)
        .map(|i| (format!("t{i}"), format!("{{{{a}}}}{}", "x".repeat(4000))))
        .collect();
    let e = CompiledMapping::compile(
        MappingSpec {
            event_name: Some("e".into()),
            email: Some("{{email}}".into()),
            traits: Some(many_traits),
            ..MappingSpec::default()
        },
        1,
    )
    .unwrap_err();
    assert_eq!(e.code, Some("mapping_too_large"));
    assert!(e.fields.contains_key("mapping"));
}

#[test]
fn the_log_helper_is_not_available() {
    let e = named("{{log type}}x").unwrap_err();
    assert!(
        e.fields["event_name"].contains("there is no helper `log`"),
        "{e}"
    );
}

#[test]
fn an_event_whose_render_is_too_large_fails_with_a_limit_code() {
    let m = compile(json!({
        "event_name": "e", "email": "a@b",
        "properties": {"big": "{{#each items}}{{this}}{{this}}{{this}}{{/each}}"}
    }));
    let items: Vec<String> = (0..2000).map(|_| "y".repeat(40)).collect();
    let err = apply_full(&m, json!({"items": items}), None, json!({})).unwrap_err();
    assert_eq!(err.code(), "output_too_large", "{err}");
    let err = apply_full(
        &compile(json!({
            "event_name": "e", "email": "a@b",
            "properties": {"loop": "{{#each items}}{{#each ../items}}{{/each}}{{/each}}"}
        })),
        json!({"items": vec![0; 1000]}),
        None,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "too_many_iterations", "{err}");
}

#[test]
fn each_output_adds_up_per_event() {
    // 20 slots of 60 KiB each are each under the slot limit but together
    // past the event's 1 MiB.
    let props: BTreeMap<String, String> = (0..20)
        .map(|i| {
            (
                format!("p{i}"),
                "{{#each items}}{{this}}{{/each}}".to_owned(),
            )
        })
        .collect();
    let m = CompiledMapping::compile(
        MappingSpec {
            event_name: Some("e".into()),
            email: Some("a@b".into()),
            properties: Some(PropertiesSpec::Templates(props)),
            ..MappingSpec::default()
        },
        1,
    )
    .unwrap();
    let items: Vec<String> = (0..600).map(|_| "z".repeat(100)).collect();
    let err = apply_full(&m, json!({"items": items}), None, json!({})).unwrap_err();
    assert_eq!(err.code(), "output_too_large", "{err}");
}

/// Templates built to stress the parser: nested blocks, subexpressions,
/// literals, else-if chains, repetition and stray braces.
fn hostile_template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{{#if a}}".to_owned()),
        Just("{{/if}}".to_owned()),
        Just("{{#each items}}".to_owned()),
        Just("{{/each}}".to_owned()),
        Just("{{else if b}}".to_owned()),
        Just("{{else}}".to_owned()),
        Just("{{lower (trim (concat a b))}}".to_owned()),
        Just("(".to_owned()),
        Just("[".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{{".to_owned()),
        Just("{{this}}".to_owned()),
        Just("\"".to_owned()),
        "[a-z ]{0,8}",
    ];
    prop_oneof![
        // Repetitive and deep: one piece many times.
        (piece.clone(), 1usize..3000).prop_map(|(p, n)| p.repeat(n)),
        // Nested: n openers, then n closers.
        (0usize..3000).prop_map(|n| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n))),
        (0usize..200).prop_map(|n| format!(
            "{{{{lower {}a{}}}}}",
            "(lower ".repeat(n),
            ")".repeat(n)
        )),
        // Wide: many pieces in any order.
        prop::collection::vec(piece, 0..400).prop_map(|v| v.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_compiler_never_panics_and_refuses_with_codes(tpl in hostile_template()) {
        match named(&tpl) {
            Ok(m) => {
                prop_assert!(tpl.len() <= limits::MAX_TEMPLATE_BYTES);
                let items: Vec<Value> = (0..50).map(|i| json!({"k": i})).collect();
                let record = json!({"a": "x", "b": true, "items": items, "email": "e@x"});
                let _ = apply_full(&m, record, None, json!({}));
            }
            Err(e) => {
                prop_assert!(!e.fields.is_empty());
                let over = tpl.len() > limits::MAX_TEMPLATE_BYTES;
                if over {
                    prop_assert!(e.code.is_some(), "a long template must be refused by a limit");
                }
            }
        }
    }
}

/// Measures the worst accepted mapping (not a pass/fail test): run with
/// `cargo test --lib worst_accepted -- --ignored --nocapture`.
#[test]
#[ignore]
fn worst_accepted_mapping_compile_and_render_times() {
    use std::time::Instant;
    // One slot at the limits: 16 nested blocks, subexpressions 8 deep,
    // filled with helper calls up to 8 KiB.
    let open = "{{#each items}}".to_owned() + &"{{#if (and a b)}}".repeat(14);
    let close = "{{/if}}".repeat(14) + "{{/each}}";
    let call = "{{#if (and (or a b) (not (eq a b)))}}{{/if}}";
    let body_len = limits::MAX_TEMPLATE_BYTES - open.len() - close.len();
    let slot = format!("{open}{}{close}", call.repeat(body_len / call.len()));
    assert!(slot.len() <= limits::MAX_TEMPLATE_BYTES);
    let deep_expr = format!(
        "{{{{lower {}a{}}}}}",
        "(lower ".repeat(limits::MAX_EXPRESSION_DEPTH - 1),
        ")".repeat(limits::MAX_EXPRESSION_DEPTH - 1)
    );
    let props: BTreeMap<String, String> = (0..7)
        .map(|i| (format!("p{i}"), slot.clone()))
        .chain([("deep".to_owned(), deep_expr)])
        .collect();
    let spec = MappingSpec {
        event_name: Some("e".into()),
        email: Some("a@b".into()),
        properties: Some(PropertiesSpec::Templates(props)),
        ..MappingSpec::default()
    };
    let started = Instant::now();
    let m = CompiledMapping::compile(spec, 1).expect("accepted");
    eprintln!(
        "compile of 7 x {} B slots at depth 16: {:?}",
        slot.len(),
        started.elapsed()
    );

    let items: Vec<Value> = (0..100_000).map(Value::from).collect();
    let record = json!({"a": true, "b": true, "items": items});
    let started = Instant::now();
    let result = apply_full(&m, record, None, json!({}));
    eprintln!(
        "render, each over 100k items until the work budget: {:?} ({:?})",
        started.elapsed(),
        result.err().map(|e| e.code())
    );

    let writer = compile(json!({"event_name": "e", "email": "a@b", "properties":
        (0..20).map(|i| (format!("w{i}"), "{{#each items}}{{this}}{{/each}}".to_owned())).collect::<BTreeMap<_, _>>()}));
    let items: Vec<String> = (0..100_000).map(|i| format!("{i:0>20}")).collect();
    let started = Instant::now();
    let result = apply_full(&writer, json!({"items": items}), None, json!({})).map(|_| ());
    eprintln!(
        "render, 20 slots writing until the output limit: {:?} ({:?})",
        started.elapsed(),
        result.err().map(|e| e.code())
    );
}
