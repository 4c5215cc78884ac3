//! Stage benchmarks for the request path, in the order a request meets them:
//! token lookup (sled vs the source cache), decode + explode, and the
//! durable append (group commit vs one flush per write).
//!
//! `cargo bench --bench pipeline` (about a minute). Each bench is short on
//! purpose (10 samples, 3 s): the numbers compare levers on one machine,
//! they are not absolute capacity figures; `scripts/load` measures that.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use inlet::domain::decode::{body_format, decode_body};
use inlet::domain::ids::{EventId, RequestId, SourceId};
use inlet::domain::model::RawEvent;
use inlet::domain::records::{explode_body, Limits};
use inlet::domain::source::{SecretHash, Source};
use inlet::store::GroupCommit;
use inlet::store::{EventLog, StateStore, Store};
use serde_json::{json, Value};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A typical order webhook, about 1 KB of JSON.
fn order_body() -> Vec<u8> {
    let items: Vec<Value> = (0..4)
        .map(|i| {
            json!({"sku": format!("SKU-{i:05}"), "name": "Organic cotton t-shirt, navy, size M",
                   "quantity": i + 1, "unit_price": 19.9, "currency": "EUR"})
        })
        .collect();
    let body = json!({
        "type": "order", "event_id": "evt_01HZX3K8Q2J9V7", "created_at": "2026-11-25T12:00:00Z",
        "email": "user42@example.org", "user_id": "u42", "anonymous_id": "v42",
        "total": 96.4, "currency": "EUR", "items": items,
        "shipping": {"name": "Ann Lee", "street": "1 Rue de la Paix", "city": "Paris",
                     "postcode": "75002", "country": "FR"},
        "utm": {"source": "newsletter", "medium": "email", "campaign": "black-friday"}
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn raw_event(source_id: SourceId, payload: Value) -> RawEvent {
    RawEvent {
        id: EventId(uuid::Uuid::nil()),
        source_id,
        request_id: RequestId::new(),
        received_at: chrono::Utc::now(),
        payload,
        envelope: None,
        headers: Default::default(),
        not_mappable: None,
    }
}

fn short<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

fn decode_and_explode(c: &mut Criterion) {
    let body = order_body();
    let mut group = short(c, "decode");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("json_order_1kb+explode", |b| {
        b.iter(|| {
            let format = body_format(Some("application/json")).expect("format");
            let value = decode_body(format, black_box(&body)).expect("decode");
            black_box(explode_body(value, None, Limits::records(10_000)).expect("explode"))
        })
    });
    group.finish();
}

fn token_lookup(c: &mut Criterion) {
    let store = Store::temporary().expect("store");
    let (source, token) = Source::create("Shop", None, None).expect("source");
    store.put_source(&source).expect("put");
    let mut group = short(c, "source_lookup");
    group.bench_function("sled+json", |b| {
        b.iter(|| {
            let hash = SecretHash::of(black_box(token.as_bytes()));
            black_box(store.source_by_token(&hash).expect("lookup"))
        })
    });
    group.bench_function("cached", |b| {
        b.iter(|| {
            let hash = SecretHash::of(black_box(token.as_bytes()));
            black_box(store.cached_source_by_token(&hash).expect("lookup"))
        })
    });
    group.finish();
}

/// How each write becomes durable.
#[derive(Clone, Copy)]
enum Durability {
    /// Wait for the shared flusher (what Inlet does).
    GroupCommit,
    /// Every writer syncs the log itself (what group commit replaces).
    FlushPerWrite,
}

impl Durability {
    fn name(self) -> &'static str {
        match self {
            Durability::GroupCommit => "group_commit",
            Durability::FlushPerWrite => "flush_per_write",
        }
    }
}

/// `tasks` concurrent writers each append one event and wait until it is
/// durable; returns the wall time of the round.
async fn durable_round(
    store: &Store,
    commit: &Arc<GroupCommit>,
    tasks: usize,
    how: Durability,
    payload: &Value,
) -> Duration {
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (store, commit) = (store.clone(), commit.clone());
        let events = vec![raw_event(SourceId::new(), payload.clone())];
        handles.push(tokio::spawn(async move {
            let appended = store.append_events(events).expect("append");
            match how {
                Durability::GroupCommit => commit.durable(appended.receipt).await.expect("durable"),
                Durability::FlushPerWrite => {
                    tokio::task::spawn_blocking(move || store.flush_now().expect("flush"))
                        .await
                        .map(|_| ())
                        .expect("join")
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    started.elapsed()
}

fn durable_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::TempDir::new().expect("temp dir");
    let store = Store::open(dir.path(), 64).expect("store");
    let commit = store.start_group_commit(std::time::Duration::from_micros(200));
    let body = order_body();
    let payload: Value = serde_json::from_slice(&body).expect("json");
    let mut group = short(c, "durable_append");
    for tasks in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(tasks as u64));
        for how in [Durability::GroupCommit, Durability::FlushPerWrite] {
            group.bench_with_input(BenchmarkId::new(how.name(), tasks), &tasks, |b, &tasks| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += durable_round(&store, &commit, tasks, how, &payload).await;
                        }
                        total
                    })
                })
            });
        }
    }
    group.finish();
    commit.stop();
}

criterion_group!(benches, decode_and_explode, token_lookup, durable_append);
criterion_main!(benches);
