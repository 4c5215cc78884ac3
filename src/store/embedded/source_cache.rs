//! An in-memory index of sources by token hash, so the hook path does not
//! pay two sled reads and a JSON decode of the `Source` on every request.
//!
//! Correctness rule: a rotated or deleted token must stop resolving the
//! moment the write returns. Every source write goes through `put_source` /
//! `delete_source`, which call `invalidate` *after* the sled write. A reader
//! that missed the cache and read sled concurrently with such a write could
//! otherwise put a stale entry back; the generation counter catches that:
//! the reader re-checks it after inserting and drops its own entry when a
//! write happened meanwhile. Unknown tokens are never cached (no memory
//! growth from random URLs).

use crate::domain::source::Source;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct SourceCache {
    by_token: DashMap<String, Arc<Source>>,
    /// Bumped by every source write.
    generation: AtomicU64,
}

impl SourceCache {
    pub fn get(&self, token_hash: &str) -> Option<Arc<Source>> {
        self.by_token.get(token_hash).map(|e| e.value().clone())
    }

    /// Read before going to sled on a miss; pass to `fill`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches what a miss read from sled, unless a source write raced it.
    pub fn fill(&self, token_hash: &str, source: Arc<Source>, seen: u64) {
        self.by_token.insert(token_hash.to_string(), source);
        if self.generation.load(Ordering::SeqCst) != seen {
            self.by_token.remove(token_hash);
        }
    }

    /// Forgets everything; called after every source write (writes are rare).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.by_token.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Store;
    use crate::domain::source::{SecretHash, Source};

    fn lookup(store: &Store, token: &str) -> Option<String> {
        store
            .cached_source_by_token(&SecretHash::of(token.as_bytes()))
            .expect("lookup")
            .map(|s| s.name.clone())
    }

    #[test]
    fn a_rotated_or_deleted_token_stops_resolving_at_once() {
        let store = Store::temporary().expect("store");
        let (mut source, old) = Source::create("Shop", None, None).expect("source");
        store.put_source(&source).expect("put");
        assert_eq!(lookup(&store, &old).as_deref(), Some("Shop"));
        assert_eq!(store.source_cache.len(), 1, "the hit is cached");

        let new = source.rotate();
        store.put_source(&source).expect("rotate");
        assert_eq!(lookup(&store, &old), None);
        assert_eq!(lookup(&store, &new).as_deref(), Some("Shop"));

        source.set_name("Renamed").expect("name");
        store.put_source(&source).expect("update");
        assert_eq!(lookup(&store, &new).as_deref(), Some("Renamed"));

        store.delete_source(source.id).expect("delete");
        assert_eq!(lookup(&store, &new), None);
        assert!(store.source_cache.is_empty(), "misses are not cached");
    }

    #[test]
    fn a_fill_that_raced_a_write_is_dropped() {
        let store = Store::temporary().expect("store");
        let (source, token) = Source::create("Shop", None, None).expect("source");
        let hash = SecretHash::of(token.as_bytes());
        let seen = store.source_cache.generation();
        store.source_cache.invalidate();
        store
            .source_cache
            .fill(&hash.0, std::sync::Arc::new(source), seen);
        assert!(store.source_cache.get(&hash.0).is_none());
    }
}
