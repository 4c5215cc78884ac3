//! The schema sniffer: learns, per source, what its records look like.
//!
//! Every record a source sends is folded into that source's [`Schema`]:
//! paths, JSON types, formats, masked examples, and drift once the schema
//! has settled. The dashboard shows it, the mapper checks templates against
//! it, and [`suggest`] turns it into a first mapping. See `docs/schema.md`.
//!
//! Concurrency: one `Mutex` per source inside a `DashMap`, so sources never
//! wait on each other and there is no global lock.

pub mod format;
pub mod mask;
pub mod path;
pub mod schema;
pub mod suggest;

pub use format::Format;
pub use path::{schema_path_of, template_of};
pub use schema::{Drift, DriftKind, FieldStats, JsonType, Schema};
pub use suggest::{suggest, Suggestion};

use crate::domain::ids::SourceId;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// One source's schema plus what the registry needs around it.
#[derive(Debug, Default)]
struct Slot {
    schema: Schema,
    /// Changed since the last `take_dirty`.
    dirty: bool,
    /// Reused path buffer: no per-record allocation for known paths.
    buf: String,
}

/// The learned schemas of all sources.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    schemas: DashMap<SourceId, Arc<Mutex<Slot>>>,
    /// Held while schemas are copied and written out, so an erasure's
    /// redacted copy is never overwritten by an older one taken before it.
    persisting: Mutex<()>,
}

/// A poisoned lock only means another thread panicked mid-update; the
/// schema is statistics, so keep using it rather than propagate the panic.
fn lock<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

impl SchemaRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot of a source, created empty on first use. The DashMap shard
    /// lock is released before the caller locks the slot.
    fn slot(&self, source: SourceId) -> Arc<Mutex<Slot>> {
        if let Some(slot) = self.schemas.get(&source) {
            return Arc::clone(slot.value());
        }
        Arc::clone(self.schemas.entry(source).or_default().value())
    }

    /// Folds one record into the source's schema; returns the drift it caused
    /// (empty until the schema has settled, see [`schema::SETTLED_AFTER`]).
    pub fn observe(&self, source: SourceId, record: &Value, at: DateTime<Utc>) -> Vec<Drift> {
        let slot = self.slot(source);
        let mut guard = lock(&slot);
        let Slot { schema, dirty, buf } = &mut *guard;
        *dirty = true;
        schema.observe(record, at, buf)
    }

    /// A copy of the source's schema, if it has one.
    pub fn snapshot(&self, source: SourceId) -> Option<Schema> {
        let slot = self.schemas.get(&source).map(|s| Arc::clone(s.value()))?;
        let schema = lock(&slot).schema.clone();
        Some(schema)
    }

    /// Installs a persisted schema (at startup); not marked dirty.
    pub fn load(&self, source: SourceId, schema: Schema) {
        let slot = Slot {
            schema,
            dirty: false,
            buf: String::new(),
        };
        self.schemas.insert(source, Arc::new(Mutex::new(slot)));
    }

    /// Schemas changed since the last call, for the processor to persist.
    pub fn take_dirty(&self) -> Vec<(SourceId, Schema)> {
        let slots: Vec<(SourceId, Arc<Mutex<Slot>>)> = self
            .schemas
            .iter()
            .map(|e| (*e.key(), Arc::clone(e.value())))
            .collect();
        slots
            .into_iter()
            .filter_map(|(id, slot)| {
                let mut guard = lock(&slot);
                guard.dirty.then(|| {
                    guard.dirty = false;
                    (id, guard.schema.clone())
                })
            })
            .collect()
    }

    /// Writes out every schema changed since the last call with `put`.
    pub fn persist_dirty<E>(
        &self,
        mut put: impl FnMut(SourceId, &Schema) -> Result<(), E>,
    ) -> Result<(), E> {
        let _persisting = lock(&self.persisting);
        for (source, schema) in self.take_dirty() {
            put(source, &schema)?;
        }
        Ok(())
    }

    /// Drops erased values from every schema (see `Schema::redact`) and
    /// writes the changed ones out with `put` before returning. Returns how
    /// many examples, drift entries and paths were dropped.
    pub fn redact<E>(
        &self,
        matches: &dyn Fn(&[u8]) -> bool,
        mut put: impl FnMut(SourceId, &Schema) -> Result<(), E>,
    ) -> Result<usize, E> {
        let _persisting = lock(&self.persisting);
        let slots: Vec<(SourceId, Arc<Mutex<Slot>>)> = self
            .schemas
            .iter()
            .map(|e| (*e.key(), Arc::clone(e.value())))
            .collect();
        let mut dropped = 0;
        for (source, slot) in slots {
            let schema = {
                let mut guard = lock(&slot);
                let n = guard.schema.redact(matches);
                // Not counted as dropped (they are not values), but written out.
                let forgot = guard.schema.forget_distinct_values();
                if n == 0 && !forgot {
                    continue;
                }
                dropped += n;
                guard.schema.clone()
            };
            put(source, &schema)?;
        }
        Ok(dropped)
    }

    /// Forgets a source's schema (the source was deleted).
    pub fn remove(&self, source: SourceId) {
        self.schemas.remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::schema::{MAX_DEPTH, MAX_EXAMPLES, MAX_PATHS};
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn order(i: u64) -> Value {
        json!({
            "id": format!("o{i}"), "total": 12.5, "paid": true,
            "customer": {"email": "ann@example.com", "api_key": "abc"},
            "items": [{"sku": "A"}, {"sku": "B"}]
        })
    }

    #[test]
    fn learns_paths_types_and_seen() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        reg.observe(src, &order(1), Utc::now());
        reg.observe(src, &json!({"id": 5}), Utc::now());
        let s = reg.snapshot(src).expect("schema");
        assert_eq!(s.samples, 2);
        let id = &s.fields["id"];
        assert_eq!((id.seen, id.types[0], id.types[1]), (2, 1, 1));
        // An array path counts once per record however many elements it has.
        assert_eq!(s.fields["items[].sku"].seen, 1);
        assert_eq!(s.fields["items[].sku"].types[0], 2);
        assert_eq!(
            s.fields["customer.email"].main_formats(),
            vec![Format::Email]
        );
        assert_eq!(
            s.fields["customer.api_key"].examples,
            vec![json!("abc…(masked)")]
        );
        let view = s.view();
        assert_eq!(view["fields"][0]["path"], "customer");
        assert_eq!(view["fields"][2]["formats"], json!(["email"]));
        assert_eq!(view["truncated"], json!({"paths": 0, "depth": 0}));
    }

    #[test]
    fn drift_only_after_settling_and_reports_the_top_new_path() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        for i in 0..schema::SETTLED_AFTER {
            assert!(reg.observe(src, &order(i), Utc::now()).is_empty());
        }
        let mut rec = order(99);
        rec["shipping"] = json!({"city": "Berlin", "zip": "10115"});
        rec["total"] = json!("12.50");
        let drift = reg.observe(src, &rec, Utc::now());
        let kinds: Vec<(&str, DriftKind)> =
            drift.iter().map(|d| (d.path.as_str(), d.kind)).collect();
        assert!(
            kinds.contains(&("shipping", DriftKind::NewPath)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("total", DriftKind::TypeChange)),
            "{kinds:?}"
        );
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert_eq!(reg.snapshot(src).expect("s").drift.len(), 2);
    }

    #[test]
    fn dirty_tracking_load_and_remove() {
        let reg = SchemaRegistry::new();
        let (a, b) = (SourceId::new(), SourceId::new());
        reg.observe(a, &order(1), Utc::now());
        assert_eq!(reg.take_dirty().len(), 1);
        assert!(reg.take_dirty().is_empty());
        let snap = reg.snapshot(a).expect("a");
        let restored: Schema =
            serde_json::from_str(&serde_json::to_string(&snap).expect("ser")).expect("de");
        assert_eq!(restored, snap);
        reg.load(b, restored);
        assert!(reg.take_dirty().is_empty());
        reg.observe(b, &order(2), Utc::now());
        assert_eq!(reg.snapshot(b).expect("b").samples, 2);
        reg.remove(a);
        assert!(reg.snapshot(a).is_none());
    }

    #[test]
    fn bounds_are_counted() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        let wide: serde_json::Map<String, Value> = (0..MAX_PATHS + 10)
            .map(|i| (format!("k{i}"), json!(i)))
            .collect();
        reg.observe(src, &Value::Object(wide), Utc::now());
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH + 3 {
            deep = json!({ "d": deep });
        }
        let other = SourceId::new();
        reg.observe(other, &deep, Utc::now());
        let s = reg.snapshot(src).expect("s");
        assert_eq!((s.fields.len(), s.truncated_paths), (MAX_PATHS, 10));
        let d = reg.snapshot(other).expect("d");
        assert_eq!(d.fields.len(), MAX_DEPTH);
        assert_eq!(d.truncated_depth, 1);
    }

    #[test]
    fn secret_looking_values_are_masked_anywhere() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        reg.observe(src, &json!({"note": "sk_live_51HabcdefGHIJ"}), Utc::now());
        let s = reg.snapshot(src).expect("s");
        assert_eq!(s.fields["note"].examples, vec![json!("sk_l…(masked)")]);
    }

    #[test]
    fn the_distinctness_window_is_bounded_and_keeps_only_its_verdict() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        for i in 0..schema::DISTINCT_WINDOW + 5 {
            reg.observe(src, &json!({"id": i, "plan": "pro"}), Utc::now());
        }
        let s = reg.snapshot(src).expect("s");
        let id = &s.fields["id"].distinct;
        assert_eq!((id.checked, id.repeated), (schema::DISTINCT_WINDOW, false));
        assert!(s.fields["plan"].distinct.repeated);
        let stored = serde_json::to_value(&s).expect("ser");
        assert_eq!(
            stored["fields"]["id"]["distinct"],
            json!({"checked": schema::DISTINCT_WINDOW, "repeated": false}),
            "only the verdict is stored once the window is full"
        );
    }

    #[test]
    fn an_erasure_drops_the_value_hashes_of_running_distinctness_checks() {
        let reg = SchemaRegistry::new();
        let src = SourceId::new();
        reg.observe(src, &json!({"email": "ann@example.org"}), Utc::now());
        let mut written = Vec::new();
        let dropped = reg
            .redact(&|_: &[u8]| false, |id, s: &Schema| {
                written.push((id, s.clone()));
                Ok::<_, ()>(())
            })
            .expect("no error");
        assert_eq!(dropped, 0, "hashes are not counted as values");
        assert_eq!(
            written.len(),
            1,
            "but the schema without them is written out"
        );
        let stored = serde_json::to_value(&written[0].1).expect("ser");
        assert_eq!(
            stored["fields"]["email"]["distinct"],
            json!({"checked": 1, "repeated": false})
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(24, 300, 12, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..12)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn never_panics_and_stays_in_bounds(records in prop::collection::vec(arb_json(), 1..12)) {
            let reg = SchemaRegistry::new();
            let src = SourceId::new();
            for r in &records {
                let drift = reg.observe(src, r, Utc::now());
                prop_assert!(drift.len() <= schema::MAX_DRIFT);
            }
            let s = reg.snapshot(src).expect("schema");
            prop_assert!(s.fields.len() <= MAX_PATHS);
            prop_assert!(s.drift.len() <= schema::MAX_DRIFT);
            for f in s.fields.values() {
                prop_assert!(f.examples.len() <= MAX_EXAMPLES);
                prop_assert!(f.distinct.checked <= schema::DISTINCT_WINDOW);
                prop_assert!(f.seen <= s.samples);
            }
            let _ = s.view();
            let _ = suggest(&s, "x");
        }
    }
}
