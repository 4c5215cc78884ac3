//! Cost of the per-event sniffer and of exploding a Looker CSV body.
//!
//! `observe` runs for every event in the processor, so it is measured on a
//! settled schema (the steady state: every path already known).

use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use inlet::domain::ids::SourceId;
use inlet::domain::records::explode;
use inlet::domain::sniff::SchemaRegistry;
use serde_json::{json, Value};

/// A typical order webhook: 20 leaf fields, one nested object, one array.
fn order(i: u64) -> Value {
    json!({
        "id": format!("ord_{i}"),
        "type": "order.created",
        "created_at": "2024-05-01T10:00:00Z",
        "currency": "EUR",
        "total": 129.5,
        "subtotal": 119.5,
        "tax": "10.00",
        "paid": true,
        "status": "paid",
        "customer": {
            "id": 4242,
            "email": "ann@example.com",
            "phone": "+49 30 1234567",
            "first_name": "Ann",
            "last_name": "Lee"
        },
        "shipping": {"city": "Berlin", "zip": "10115", "country": "DE"},
        "ip": "192.168.1.10",
        "landing_url": "https://shop.example.com/p/1",
        "line_items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 2}]
    })
}

fn looker_csv(rows: usize) -> Value {
    let mut csv = String::from("Division,Note,Revenue,Updated\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "\"Division {i}\",\"a, \"\"quoted\"\" note\",{},2024-05-01T10:00:00Z\n",
            i * 1000
        ));
    }
    json!({
        "attachment": {"data": csv, "mimetype": "text/csv", "extension": "csv"},
        "scheduled_plan": {"title": "Sales", "url": "https://x.looker.com/looks/1", "type": "look"}
    })
}

fn bench_observe(c: &mut Criterion) {
    let registry = SchemaRegistry::new();
    let source = SourceId::new();
    for i in 0..50 {
        registry.observe(source, &order(i), Utc::now());
    }
    let record = order(99);
    let now = Utc::now();
    c.bench_function("observe/order_20_fields", |b| {
        b.iter(|| registry.observe(source, black_box(&record), now))
    });
}

fn bench_explode(c: &mut Criterion) {
    let body = looker_csv(100);
    c.bench_function("explode/looker_csv_100_rows", |b| {
        b.iter(|| explode(black_box(body.clone()), Some("attachment.data"), 10_000))
    });
}

criterion_group!(benches, bench_observe, bench_explode);
criterion_main!(benches);
