//! Mapping one typical record: a compiled mapping (templates parsed once,
//! bare paths read directly) against `render_template` per slot per event,
//! which re-parses every template each time.

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use handlebars::Handlebars;
use inlet::domain::mapping::CompiledMapping;
use inlet::domain::model::{MappingSpec, RecordContext};
use serde_json::{json, Map, Value};

fn record() -> Value {
    json!({
        "id": "evt_3OqK2bLkdIwHu7ix1Yx9Wk2T", "type": "payment_intent.succeeded", "created": 1709305200,
        "livemode": false,
        "data": {"object": {"id": "pi_3Oq", "object": "payment_intent", "amount": 2000, "currency": "usd",
            "customer": "cus_PfB9xYzQ12AbCd", "receipt_email": "Jenny.Rosen@Example.com", "status": "succeeded",
            "metadata": {"order_id": "6735", "campaign": "spring"}}}
    })
}

/// Mostly bare paths: the common case.
fn bare_spec() -> MappingSpec {
    serde_json::from_value(json!({
        "event_name": "{{type}}", "external_id": "{{data.object.customer}}",
        "email": "{{data.object.receipt_email}}", "event_id": "{{id}}", "timestamp": "{{created}}",
        "properties": {"amount": "{{data.object.amount}}", "currency": "{{data.object.currency}}",
            "status": "{{data.object.status}}", "order_id": "{{data.object.metadata.order_id}}"}
    }))
    .unwrap()
}

/// Helpers and text around paths: every slot goes through handlebars.
fn helper_spec() -> MappingSpec {
    serde_json::from_value(json!({
        "event_name": "stripe: {{type}}", "external_id": "customer-{{data.object.customer}}",
        "email": "{{lower (coalesce data.object.customer_email data.object.receipt_email)}}",
        "event_id": "{{id}}-{{created}}", "timestamp": "{{default created 0}}",
        "properties": {"amount": "{{data.object.amount}} {{upper data.object.currency}}",
            "status": "{{default data.object.status \"unknown\"}}", "order": "#{{data.object.metadata.order_id}}",
            "campaign": "{{trim data.object.metadata.campaign}}"}
    }))
    .unwrap()
}

/// Every template of a spec, for the per-event `render_template` baseline.
fn templates(spec: &MappingSpec) -> Vec<String> {
    let mut out: Vec<String> = [
        &spec.event_name,
        &spec.external_id,
        &spec.email,
        &spec.event_id,
        &spec.timestamp,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    if let Some(inlet::domain::model::PropertiesSpec::Templates(map)) = &spec.properties {
        out.extend(map.values().cloned());
    }
    out
}

fn bench(c: &mut Criterion) {
    let record = record();
    let headers = Map::new();
    let ctx = RecordContext {
        record: &record,
        envelope: None,
        headers: &headers,
        received_at: Utc::now(),
    };
    let mut naive = Handlebars::new();
    naive.register_escape_fn(handlebars::no_escape);
    inlet::domain::mapping::helpers::register(&mut naive);

    for (label, spec) in [("bare_paths", bare_spec()), ("helpers", helper_spec())] {
        let compiled = CompiledMapping::compile(spec.clone(), 1).unwrap();
        let tpls = templates(&spec);
        c.bench_function(&format!("{label}/compiled_apply"), |b| {
            b.iter(|| compiled.apply(black_box(&ctx)).unwrap())
        });
        c.bench_function(&format!("{label}/render_template_each_event"), |b| {
            b.iter(|| {
                let mut view = record.as_object().cloned().unwrap_or_default();
                view.insert("headers".into(), Value::Object(headers.clone()));
                let view = Value::Object(view);
                tpls.iter()
                    .map(|t| naive.render_template(t, black_box(&view)).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
