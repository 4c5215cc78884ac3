//! Property tests: the resolver's partition of identifiers matches a simple
//! union-find model of the same rules, and without conflicts or limits the
//! partition does not depend on event order.

use chrono::Utc;
use inlet::domain::identity::{
    self, Blocklist, IdentKey, IdentKind, Identifiers, MemoryTxn, ResolveInput,
};
use inlet::domain::ids::{EventId, ProfileId, SourceId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Event = (Option<usize>, Option<usize>, Option<usize>);
type Partition = BTreeSet<BTreeSet<String>>;

const EXTERNALS: usize = 4;
const EMAILS: usize = 6;
const VISITORS: usize = 8;

/// (priority, text): priority 0 external, 1 email, 2 visitor.
fn event_keys(e: &Event) -> Vec<(u8, String)> {
    let mut keys = Vec::new();
    if let Some(x) = e.0 {
        keys.push((0, format!("x{x}")));
    }
    if let Some(m) = e.1 {
        keys.push((1, format!("e{m}@t.io")));
    }
    if let Some(v) = e.2 {
        keys.push((2, format!("v{v}")));
    }
    keys
}

fn all_keys() -> Vec<(u8, String)> {
    let x = (0..EXTERNALS).map(|i| (0, format!("x{i}")));
    let e = (0..EMAILS).map(|i| (1, format!("e{i}@t.io")));
    let v = (0..VISITORS).map(|i| (2, format!("v{i}")));
    x.chain(e).chain(v).collect()
}

fn label(k: &(u8, String)) -> String {
    format!("{}:{}", k.0, k.1)
}

/// The reference: union-find over identifiers with the same rules, written
/// without any of the resolver's code.
#[derive(Default)]
struct Model {
    parent: Vec<usize>,
    sets: Vec<[BTreeSet<String>; 3]>,
    merges: Vec<u64>,
    owner: BTreeMap<(u8, String), usize>,
    refusals: usize,
}

impl Model {
    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            i = self.parent[i];
        }
        i
    }

    fn root_of(&mut self, k: &(u8, String)) -> Option<usize> {
        let i = *self.owner.get(k)?;
        Some(self.find(i))
    }

    /// The rules as docs/identity.md states them: for each kind in priority
    /// order, if the union would hold more values than its limit (and more
    /// than an involved profile already holds), the keys "bringing" that
    /// kind are those whose profile holds some or that are new values of
    /// it; the weakest of them outside the strongest one's group is dropped.
    fn violation(&mut self, keys: &[(u8, String)]) -> Option<usize> {
        let roots: Vec<Option<usize>> = keys.iter().map(|k| self.root_of(k)).collect();
        let distinct: BTreeSet<usize> = roots.iter().flatten().copied().collect();
        // A key's group: its profile's root, or itself (offset past roots) when new.
        let group = |i: usize| roots[i].unwrap_or(usize::MAX - i);
        let culprit = |bringers: &[usize]| -> Option<usize> {
            let anchor = group(*bringers.first()?);
            bringers
                .iter()
                .rev()
                .copied()
                .find(|&i| group(i) != anchor)
                .or(bringers.last().copied())
        };
        let limits = [1usize, 5, 100];
        for kind in 0..3u8 {
            let mut union: BTreeSet<&String> = BTreeSet::new();
            let mut current = 0;
            for &r in &distinct {
                union.extend(self.sets[r][kind as usize].iter());
                current = current.max(self.sets[r][kind as usize].len());
            }
            for (k, r) in keys.iter().zip(&roots) {
                if r.is_none() && k.0 == kind {
                    union.insert(&k.1);
                }
            }
            if union.len() > limits[kind as usize] && union.len() > current {
                let bringers: Vec<usize> = (0..keys.len())
                    .filter(|&i| match roots[i] {
                        Some(r) => !self.sets[r][kind as usize].is_empty(),
                        None => keys[i].0 == kind,
                    })
                    .collect();
                return culprit(&bringers);
            }
        }
        let merges: u64 = distinct.iter().map(|&r| self.merges[r]).sum::<u64>()
            + distinct.len().saturating_sub(1) as u64;
        if distinct.len() >= 2 && merges > 100 {
            let all: Vec<usize> = (0..keys.len()).collect();
            return culprit(&all);
        }
        None
    }

    fn apply(&mut self, e: &Event) {
        let mut keys = event_keys(e);
        while let Some(i) = self.violation(&keys) {
            keys.remove(i);
            self.refusals += 1;
        }
        if keys.is_empty() {
            return;
        }
        let roots: BTreeSet<usize> = keys.iter().filter_map(|k| self.root_of(k)).collect();
        let target = match roots.iter().next() {
            Some(&r) => r,
            None => {
                self.parent.push(self.parent.len());
                self.sets.push(Default::default());
                self.merges.push(0);
                self.parent.len() - 1
            }
        };
        for &r in roots.iter().skip(1) {
            self.parent[r] = target;
            let moved = std::mem::take(&mut self.sets[r]);
            for (kind, set) in moved.into_iter().enumerate() {
                self.sets[target][kind].extend(set);
            }
            self.merges[target] += self.merges[r] + 1;
        }
        for k in keys {
            if !self.owner.contains_key(&k) {
                self.sets[target][k.0 as usize].insert(k.1.clone());
                self.owner.insert(k, target);
            }
        }
    }

    fn partition(&mut self) -> Partition {
        let mut groups: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for k in all_keys() {
            if let Some(r) = self.root_of(&k) {
                groups.entry(r).or_default().insert(label(&k));
            }
        }
        groups.into_values().collect()
    }
}

/// Runs the real resolver over `events`; returns its partition and refusal count.
fn resolve_all(events: &[Event]) -> (Partition, usize) {
    let txn = MemoryTxn::new();
    let blocklist = Blocklist::default();
    let mut refusals = 0;
    for e in events {
        let key = |k: Option<usize>, f: &dyn Fn(usize) -> String| k.map(f);
        let input = ResolveInput {
            event_id: EventId::new(),
            source_id: SourceId::new(),
            at: Utc::now(),
            ids: Identifiers {
                external_id: key(e.0, &|i| format!("x{i}")),
                email: key(e.1, &|i| format!("e{i}@t.io")),
                visitor_id: key(e.2, &|i| format!("v{i}")),
                other: Default::default(),
            },
            traits: Default::default(),
        };
        let outcome = identity::resolve(&txn, &input, &blocklist).unwrap();
        refusals += outcome.refusals.len();
    }
    let mut groups: BTreeMap<ProfileId, BTreeSet<String>> = BTreeMap::new();
    for k in all_keys() {
        let ident = match k.0 {
            0 => IdentKey::new(IdentKind::ExternalId, k.1.clone()),
            1 => IdentKey::new(IdentKind::Email, k.1.clone()),
            _ => IdentKey::new(IdentKind::VisitorId, k.1.clone()),
        };
        if let Some(p) = identity::lookup(&txn, &ident).unwrap() {
            groups.entry(p.id).or_default().insert(label(&k));
        }
    }
    (groups.into_values().collect(), refusals)
}

fn event() -> impl Strategy<Value = Event> {
    (
        proptest::option::weighted(0.3, 0..EXTERNALS),
        proptest::option::weighted(0.5, 0..EMAILS),
        proptest::option::weighted(0.7, 0..VISITORS),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn partition_matches_union_find_model(events in prop::collection::vec(event(), 1..40)) {
        let (partition, refusals) = resolve_all(&events);
        let mut model = Model::default();
        for e in &events {
            model.apply(e);
        }
        prop_assert_eq!(partition, model.partition());
        prop_assert_eq!(refusals, model.refusals);
    }

    #[test]
    fn order_does_not_matter_without_refusals(
        (events, shuffled) in prop::collection::vec(event(), 1..12)
            .prop_flat_map(|ev| (Just(ev.clone()), Just(ev).prop_shuffle()))
    ) {
        let (first, refusals) = resolve_all(&events);
        if refusals == 0 {
            let (second, refusals_again) = resolve_all(&shuffled);
            prop_assert_eq!(refusals_again, 0);
            prop_assert_eq!(first, second);
        }
    }
}
