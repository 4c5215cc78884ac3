//! Resolve cost against a temporary sled store: a brand-new identity (create)
//! and a known one (attach to an existing profile).

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use inlet::domain::identity::{Blocklist, Identifiers, ResolveInput};
use inlet::domain::ids::{EventId, SourceId};
use inlet::store::{StateStore, Store};
use serde_json::{Map, Value};

fn input(source: SourceId, email: String, visitor: String) -> ResolveInput {
    let mut traits = Map::new();
    traits.insert("plan".into(), Value::from("pro"));
    ResolveInput {
        event_id: EventId::new(),
        source_id: source,
        at: Utc::now(),
        ids: Identifiers {
            external_id: None,
            email: Some(email),
            visitor_id: Some(visitor),
            other: Default::default(),
        },
        traits,
    }
}

fn bench_resolve(c: &mut Criterion) {
    let Ok(store) = Store::temporary() else {
        return;
    };
    let blocklist = Blocklist::default();
    let source = SourceId::new();
    let mut n = 0u64;
    c.bench_function("identity/resolve_new", |b| {
        b.iter(|| {
            n += 1;
            let i = input(source, format!("new{n}@x.io"), format!("nv{n}"));
            store.resolve(&i, &blocklist)
        })
    });
    let known = input(source, "known@x.io".into(), "kv".into());
    let _ = store.resolve(&known, &blocklist);
    c.bench_function("identity/resolve_known", |b| {
        b.iter(|| {
            let i = input(source, "known@x.io".into(), "kv".into());
            store.resolve(&i, &blocklist)
        })
    });
}

criterion_group!(benches, bench_resolve);
criterion_main!(benches);
