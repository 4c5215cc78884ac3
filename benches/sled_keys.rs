//! What the store's key layout is built on: the cost of a sled insert by
//! kind of key, in batches of 512 like the processor's commit.
//!
//! - `new_monotonic`: a new key after all others (an event id);
//! - `new_random`: a new key anywhere (an idempotency key);
//! - `rewrite_hot`: an existing key among 5,000 (a profile of a repeat visitor);
//! - `chunk_of_64`: one new key holding 64 entries of 400 bytes, per entry
//!   (the processed states, `store::state_chunks`).
//!
//! This bench talks to sled directly on purpose: it measures the engine
//! under `store`, not Inlet (numbers in docs/performance.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

const BATCH: usize = 512;

#[derive(Clone, Copy)]
enum Kind {
    NewMonotonic,
    NewRandom,
    RewriteHot,
    ChunkOf64,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NewMonotonic => "new_monotonic",
            Kind::NewRandom => "new_random",
            Kind::RewriteHot => "rewrite_hot",
            Kind::ChunkOf64 => "chunk_of_64",
        }
    }
}

/// Writes one batch of `BATCH` entries of `kind`; returns the time taken.
fn write_batch(tree: &sled::Tree, kind: Kind, hot: &[[u8; 16]], round: usize) -> Duration {
    let value = [7u8; 400];
    let mut batch = sled::Batch::default();
    let started = Instant::now();
    match kind {
        Kind::ChunkOf64 => {
            for _ in 0..BATCH / 64 {
                batch.insert(&uuid::Uuid::now_v7().as_bytes()[..], vec![7u8; 400 * 64]);
            }
        }
        _ => {
            for i in 0..BATCH {
                let key = match kind {
                    Kind::NewMonotonic => *uuid::Uuid::now_v7().as_bytes(),
                    Kind::NewRandom => *uuid::Uuid::new_v4().as_bytes(),
                    _ => hot[(round * BATCH + i * 7) % hot.len()],
                };
                batch.insert(&key[..], &value[..]);
            }
        }
    }
    if let Err(e) = tree.apply_batch(batch) {
        panic!("sled refused a batch: {e}");
    }
    started.elapsed()
}

fn sled_keys(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(16 << 20)
        .flush_every_ms(Some(500))
        .open()
        .expect("sled");
    let hot: Vec<[u8; 16]> = (0..5_000)
        .map(|_| *uuid::Uuid::new_v4().as_bytes())
        .collect();
    let mut group = c.benchmark_group("sled_insert");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(BATCH as u64));
    for kind in [
        Kind::NewMonotonic,
        Kind::NewRandom,
        Kind::RewriteHot,
        Kind::ChunkOf64,
    ] {
        let tree = db.open_tree(kind.name()).expect("tree");
        let mut round = 0;
        group.bench_function(BenchmarkId::new(kind.name(), BATCH), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        round += 1;
                        write_batch(&tree, kind, &hot, round)
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sled_keys);
criterion_main!(benches);
