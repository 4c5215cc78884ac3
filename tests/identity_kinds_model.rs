//! Property tests with five identifier kinds, two of them one-per-person:
//! the resolver against a reference model written from docs/identity.md's
//! "Rules" section alone. The model shares no code with `resolve.rs`: it is
//! a union-find over the identifiers of a small alphabet (so merges,
//! conflicts and limits happen often) with the drop rule in the docs'
//! words: the identifiers bringing a broken rule are grouped by the person
//! they belong to (a new identifier is a group of its own); the strongest
//! one's group is kept and the weakest other group is dropped, all of it.
//!
//! Kinds, strongest first: `external_id` (limit 1), `stripe_customer_id`
//! (a team's kind at priority 2, limit 1), `email` (5), `phone` (a team's
//! kind, limit 2), `visitor_id` (100). The merge cap (100 merges) cannot be
//! reached by 40 events, so the model leaves it out.
//!
//! What order does not change (the rules promise it, see docs/identity.md):
//! when the events are consistent (no identifier of a limit-1 kind meets
//! another, no limit is reached, no never-merge pair meets), every order
//! gives the same profiles and the same traits (newest event wins). With
//! conflicts the first identifier to arrive wins, so order matters by design.

use chrono::{DateTime, Duration, TimeZone, Utc};
use inlet::domain::identity::{
    self, manual_merge, Blocklist, IdentKey, IdentKind, Identifiers, IdentityConfig, IdentityTxn,
    KindName, KindSet, KindSpec, MemoryTxn, NeverMerge, NeverMergeRule, Normalise, Profile,
    ResolveInput,
};
use inlet::domain::ids::{EventId, ProfileId, SourceId};
use proptest::prelude::*;
use serde_json::{json, Map};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// (name, limit, values in the alphabet), strongest first.
const KINDS: [(&str, usize, usize); 5] = [
    ("external_id", 1, 3),
    ("stripe_customer_id", 1, 3),
    ("email", 5, 7),
    ("phone", 2, 4),
    ("visitor_id", 100, 6),
];

/// One identifier of the alphabet: (kind index, value index).
type Ident = (usize, usize);
/// An event: at most one value per kind.
type Event = [Option<usize>; 5];
type Partition = BTreeSet<BTreeSet<Ident>>;

#[derive(Clone, Debug)]
enum Op {
    Event(Event),
    /// Support staff merge the profiles holding these two identifiers
    /// (no limit applies to a manual merge).
    ManualMerge(Ident, Ident),
}

fn value((kind, i): Ident) -> String {
    match kind {
        0 => format!("x{i}"),
        1 => format!("cus_{i}"),
        2 => format!("e{i}@t.io"),
        3 => format!("p{i}"),
        _ => format!("v{i}"),
    }
}

fn alphabet() -> Vec<Ident> {
    (0..KINDS.len())
        .flat_map(|k| (0..KINDS[k].2).map(move |i| (k, i)))
        .collect()
}

fn event_idents(e: &Event) -> Vec<Ident> {
    e.iter()
        .enumerate()
        .filter_map(|(k, v)| v.map(|i| (k, i)))
        .collect()
}

// ---------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------

/// Where an identifier of the event stands: on a person (named by its
/// union-find root), or new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Person(Ident),
    New(Ident),
}

/// What the model says one event does.
#[derive(Debug, PartialEq)]
struct Expected {
    joined: bool,
    /// `"<kind> <value> <code>"`, in the order they were dropped.
    refusals: Vec<String>,
}

struct Model {
    /// Union-find over the identifiers some person holds.
    parent: BTreeMap<Ident, Ident>,
    never: Vec<(Ident, Ident)>,
}

impl Model {
    fn new(never: &[(Ident, Ident)]) -> Self {
        Self {
            parent: BTreeMap::new(),
            never: never.to_vec(),
        }
    }

    fn find(&self, mut i: Ident) -> Ident {
        while self.parent[&i] != i {
            i = self.parent[&i];
        }
        i
    }

    fn side(&self, i: Ident) -> Side {
        if self.parent.contains_key(&i) {
            Side::Person(self.find(i))
        } else {
            Side::New(i)
        }
    }

    fn members(&self, side: Side) -> Vec<Ident> {
        match side {
            Side::New(i) => vec![i],
            Side::Person(root) => self
                .parent
                .keys()
                .filter(|&&i| self.find(i) == root)
                .copied()
                .collect(),
        }
    }

    /// The event's sides, strongest first (by their strongest identifier).
    fn sides(&self, idents: &[Ident]) -> Vec<Side> {
        let mut sides = Vec::new();
        for &i in idents {
            let s = self.side(i);
            if !sides.contains(&s) {
                sides.push(s);
            }
        }
        sides
    }

    /// The first rule the event would break, as (side to drop, code).
    /// Never-merge pairs first: of the pairs whose two sides the event
    /// brings together, the one whose stronger side is strongest (then the
    /// one whose weaker side is weakest), dropping its weaker side. Then
    /// each kind by priority: too many values (more than the limit and more
    /// than one person already holds) drops the weakest side holding that
    /// kind.
    fn broken_rule(&self, idents: &[Ident]) -> Option<(Side, String)> {
        let sides = self.sides(idents);
        let members: Vec<Vec<Ident>> = sides.iter().map(|&s| self.members(s)).collect();
        let side_of = |i: Ident| members.iter().position(|m| m.contains(&i));
        let mut pair: Option<(usize, usize)> = None;
        for &(a, b) in &self.never {
            let (Some(x), Some(y)) = (side_of(a), side_of(b)) else {
                continue;
            };
            if x == y {
                continue;
            }
            let candidate = (x.min(y), x.max(y));
            let better = pair.is_none_or(|(kept, dropped)| {
                candidate.0 < kept || (candidate.0 == kept && candidate.1 > dropped)
            });
            if better {
                pair = Some(candidate);
            }
        }
        if let Some((_, dropped)) = pair {
            return Some((sides[dropped], "never_merge".into()));
        }
        for (kind, &(name, limit, _)) in KINDS.iter().enumerate() {
            let holding: Vec<(usize, usize)> = members
                .iter()
                .enumerate()
                .map(|(s, m)| (s, m.iter().filter(|i| i.0 == kind).count()))
                .filter(|&(_, n)| n > 0)
                .collect();
            // Sides are disjoint, so the union is the sum.
            let union: usize = holding.iter().map(|&(_, n)| n).sum();
            let largest = holding.iter().map(|&(_, n)| n).max().unwrap_or(0);
            if union > limit && union > largest {
                let code = if limit == 1 {
                    format!("{name}_conflict")
                } else {
                    "limit_exceeded".into()
                };
                let weakest = holding.last().expect("two sides hold it").0;
                return Some((sides[weakest], code));
            }
        }
        None
    }

    fn event(&mut self, e: &Event) -> Expected {
        let mut idents = event_idents(e);
        let mut refusals = Vec::new();
        while let Some((side, code)) = self.broken_rule(&idents) {
            let gone: Vec<Ident> = idents
                .iter()
                .copied()
                .filter(|&i| self.side(i) == side)
                .collect();
            for &i in gone.iter().rev() {
                refusals.push(format!("{} {} {code}", KINDS[i.0].0, value(i)));
            }
            idents.retain(|i| !gone.contains(i));
        }
        let Some(&first) = idents.first() else {
            return Expected {
                joined: false,
                refusals,
            };
        };
        let root = match self.side(first) {
            Side::Person(root) => root,
            Side::New(i) => {
                self.parent.insert(i, i);
                i
            }
        };
        for i in idents {
            match self.side(i) {
                Side::Person(r) if r != root => {
                    self.parent.insert(r, root);
                }
                Side::Person(_) => {}
                Side::New(i) => {
                    self.parent.insert(i, root);
                }
            }
        }
        Expected {
            joined: true,
            refusals,
        }
    }

    fn manual_merge(&mut self, a: Ident, b: Ident) {
        if let (Side::Person(ra), Side::Person(rb)) = (self.side(a), self.side(b)) {
            if ra != rb {
                self.parent.insert(ra, rb);
            }
        }
    }

    fn partition(&self) -> Partition {
        let mut groups: BTreeMap<Ident, BTreeSet<Ident>> = BTreeMap::new();
        for &i in self.parent.keys() {
            groups.entry(self.find(i)).or_default().insert(i);
        }
        groups.into_values().collect()
    }
}

// ---------------------------------------------------------------------------
// The real resolver
// ---------------------------------------------------------------------------

fn kind(k: usize) -> IdentKind {
    IdentKind::parse(KINDS[k].0).expect("valid kind name")
}

fn key(i: Ident) -> IdentKey {
    IdentKey::new(kind(i.0), value(i))
}

fn team_kind(name: &str, limit: u32, normalise: Normalise) -> KindSpec {
    KindSpec {
        name: IdentKind::parse(name).expect("valid kind name"),
        limit,
        normalise,
        blocked_values: vec![],
        enabled: true,
        created_at: None,
    }
}

fn kinds() -> KindSet {
    let mut set = KindSet::default();
    let stripe = team_kind("stripe_customer_id", 1, Normalise::Trim);
    set.add(stripe, Some(2)).expect("stripe kind");
    set.add(team_kind("phone", 2, Normalise::Lowercase), None)
        .expect("phone kind");
    let names: Vec<&str> = set.all().iter().map(|s| s.name.as_str()).collect();
    let expected: Vec<&str> = KINDS.iter().map(|k| k.0).collect();
    assert_eq!(names, expected, "the model's priority order");
    set
}

fn never_rules(pairs: &[(IdentKey, IdentKey)]) -> NeverMerge {
    NeverMerge::new(
        pairs
            .iter()
            .map(|(a, b)| NeverMergeRule {
                id: Uuid::now_v7(),
                a: a.clone(),
                b: b.clone(),
                created_at: Utc::now(),
                by: "model".into(),
                reason: String::new(),
                split_of: None,
            })
            .collect(),
    )
}

fn store(never: &[(IdentKey, IdentKey)]) -> MemoryTxn {
    MemoryTxn::with_config(IdentityConfig {
        kinds: kinds(),
        never: never_rules(never),
    })
}

fn identifiers(keys: &[IdentKey]) -> Identifiers {
    let mut ids = Identifiers::default();
    for k in keys {
        ids.set(k.kind().clone(), Some(k.value().to_owned()));
    }
    ids
}

fn input(keys: &[IdentKey], at: DateTime<Utc>, event_id: EventId) -> ResolveInput {
    ResolveInput {
        event_id,
        source_id: SourceId::new(),
        at,
        ids: identifiers(keys),
        traits: Map::new(),
    }
}

fn owner(txn: &MemoryTxn, k: &IdentKey) -> Option<ProfileId> {
    let Ok(p) = identity::lookup(txn, k);
    p.map(|p| p.id)
}

fn partition_of(txn: &MemoryTxn, alphabet: &[Ident]) -> Partition {
    let mut groups: BTreeMap<ProfileId, BTreeSet<Ident>> = BTreeMap::new();
    for &i in alphabet {
        if let Some(p) = owner(txn, &key(i)) {
            groups.entry(p).or_default().insert(i);
        }
    }
    groups.into_values().collect()
}

/// The store agrees with itself: every identifier is on at most one live
/// profile, the ident map points each held one at its holder (through
/// redirects) and nothing else, and every profile's event list has as
/// many events as its count. Returns the sum of the counts.
fn check_consistency(txn: &MemoryTxn, keys: &[IdentKey]) -> Result<u64, TestCaseError> {
    let profiles = txn.profiles();
    for k in keys {
        let holders: Vec<&Profile> = profiles.iter().filter(|p| p.holds(k)).collect();
        prop_assert!(
            holders.len() <= 1,
            "{k} is on {} live profiles",
            holders.len()
        );
        let Ok(raw) = txn.ident_get(k);
        match holders.first() {
            Some(p) => {
                let Ok(live) = identity::canonical(txn, raw.expect("indexed"));
                prop_assert_eq!(live.map(|l| l.id), Some(p.id), "{} indexed elsewhere", k);
            }
            None => prop_assert_eq!(raw, None, "{} indexed but on no profile", k),
        }
    }
    for p in &profiles {
        for held in p.keys() {
            prop_assert!(keys.contains(&held), "{held} is not in the alphabet");
        }
        let listed: BTreeSet<EventId> = std::iter::once(p.id)
            .chain(p.merged_from.iter().copied())
            .flat_map(|id| txn.events_of(id))
            .collect();
        prop_assert_eq!(listed.len() as u64, p.event_count);
    }
    Ok(profiles.iter().map(|p| p.event_count).sum())
}

/// An event never pushes a kind past its limit, nor further past what a
/// manual merge left on one of the profiles it joined.
fn check_limits(before: &[Profile], after: &[Profile]) -> Result<(), TestCaseError> {
    let set = kinds();
    for p in after {
        let was: Vec<&Profile> = before
            .iter()
            .filter(|q| q.id == p.id || p.merged_from.contains(&q.id))
            .collect();
        for spec in set.all() {
            let had = was.iter().map(|q| q.list(&spec.name).len()).max();
            let allowed = (spec.limit as usize).max(had.unwrap_or(0));
            prop_assert!(
                p.list(&spec.name).len() <= allowed,
                "{} holds {} {} values (allowed {})",
                p.id,
                p.list(&spec.name).len(),
                spec.name,
                allowed
            );
        }
    }
    Ok(())
}

/// Runs `ops` through the model and the resolver side by side, checking
/// after every step.
fn check_against_model(ops: &[Op], never: &[(Ident, Ident)]) -> Result<(), TestCaseError> {
    let alphabet = alphabet();
    let all_keys: Vec<IdentKey> = alphabet.iter().map(|&i| key(i)).collect();
    let never_keys: Vec<(IdentKey, IdentKey)> =
        never.iter().map(|&(a, b)| (key(a), key(b))).collect();
    let txn = store(&never_keys);
    let mut model = Model::new(never);
    let mut joined = 0u64;
    let mut manual = false;
    let start = Utc::now();
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Event(e) => {
                let keys: Vec<IdentKey> = event_idents(e).into_iter().map(key).collect();
                let before = txn.profiles();
                let at = start + Duration::seconds(n as i64);
                let event_id = EventId::new();
                let Ok(outcome) =
                    identity::resolve(&txn, &input(&keys, at, event_id), &Blocklist::default());
                let expected = model.event(e);
                let refusals: Vec<String> = outcome
                    .refusals
                    .iter()
                    .map(|r| format!("{} {} {}", r.kind, r.value, r.reason.code()))
                    .collect();
                prop_assert_eq!(&refusals, &expected.refusals, "event {} {:?}", n, e);
                prop_assert_eq!(outcome.profile_id.is_some(), expected.joined);
                for r in &outcome.refusals {
                    // A conflict names the person it kept out: the dropped
                    // identifier's owner (none for a new one).
                    let dropped = IdentKey::new(r.kind.clone(), r.value.clone());
                    let holder = before.iter().find(|p| p.holds(&dropped)).map(|p| p.id);
                    let named = if r.reason.keeps_people_apart() {
                        holder
                    } else {
                        None
                    };
                    prop_assert_eq!(r.owner, named, "{}", r.message());
                    // ...and its history shows the refusal too.
                    if let Some(kept_out) = r.owner {
                        let filed = txn.audit().iter().any(|a| {
                            a.profile_id == kept_out
                                && a.event_id == Some(event_id)
                                && a.kind() == "refusal"
                        });
                        prop_assert!(filed, "no refusal line under {}", kept_out);
                    }
                }
                joined += u64::from(expected.joined);
                check_limits(&before, &txn.profiles())?;
            }
            Op::ManualMerge(a, b) => {
                model.manual_merge(*a, *b);
                if let (Some(from), Some(into)) = (owner(&txn, &key(*a)), owner(&txn, &key(*b))) {
                    if from != into {
                        let Ok(merged) = manual_merge(&txn, from, into);
                        prop_assert!(merged.is_ok());
                        manual = true;
                    }
                }
            }
        }
        prop_assert_eq!(
            partition_of(&txn, &alphabet),
            model.partition(),
            "after op {}",
            n
        );
        prop_assert_eq!(check_consistency(&txn, &all_keys)?, joined, "event counts");
    }
    if !manual {
        // Only a person's decision (a manual merge) puts a never-merge
        // pair on one profile.
        for (a, b) in &never_keys {
            let (oa, ob) = (owner(&txn, a), owner(&txn, b));
            prop_assert!(oa.is_none() || oa != ob, "{a} and {b} were merged");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

fn ident() -> impl Strategy<Value = Ident> {
    (0..KINDS.len()).prop_flat_map(|k| (Just(k), 0..KINDS[k].2))
}

fn event() -> impl Strategy<Value = Event> {
    let slot = |p: f64, k: usize| proptest::option::weighted(p, 0..KINDS[k].2);
    (
        slot(0.3, 0),
        slot(0.3, 1),
        slot(0.5, 2),
        slot(0.5, 3),
        slot(0.6, 4),
    )
        .prop_map(|(a, b, c, d, e)| [a, b, c, d, e])
}

fn never_pairs() -> impl Strategy<Value = Vec<(Ident, Ident)>> {
    prop::collection::vec((ident(), ident()), 0..4)
        .prop_map(|pairs| pairs.into_iter().filter(|(a, b)| a != b).collect())
}

fn ops(manual_merges: bool) -> impl Strategy<Value = Vec<Op>> {
    let merge_weight = u32::from(manual_merges);
    let op = prop_oneof![
        12 => event().prop_map(Op::Event),
        merge_weight => (ident(), ident()).prop_map(|(a, b)| Op::ManualMerge(a, b)),
    ];
    prop::collection::vec(op, 1..40)
}

/// A consistent world: a few people, each with identifiers of their own
/// within every limit (one external id, one Stripe id, up to 3 emails, 2
/// phones, 4 visitor ids); each event carries some of one person's.
#[derive(Clone, Debug)]
struct PersonEvent {
    person: usize,
    slots: [Option<usize>; 5],
}

const PEOPLE: usize = 4;
const PER_PERSON: [usize; 5] = [1, 1, 3, 2, 4];

fn person_key(person: usize, k: usize, j: usize) -> IdentKey {
    let value = format!("{}-{person}-{j}", &KINDS[k].0[..2]);
    match k {
        2 => IdentKey::new(kind(k), format!("{value}@t.io")),
        _ => IdentKey::new(kind(k), value),
    }
}

impl PersonEvent {
    fn keys(&self) -> Vec<IdentKey> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(k, j)| j.map(|j| person_key(self.person, k, j)))
            .collect()
    }
}

fn person_event() -> impl Strategy<Value = PersonEvent> {
    let slot = |k: usize| proptest::option::weighted(0.5, 0..PER_PERSON[k]);
    (0..PEOPLE, slot(0), slot(1), slot(2), slot(3), slot(4))
        .prop_map(|(person, a, b, c, d, e)| PersonEvent {
            person,
            slots: [a, b, c, d, e],
        })
        .prop_filter("an event with an identifier", |e| {
            e.slots.iter().any(Option::is_some)
        })
}

/// Events of a consistent world, each with its own time (a permutation, so
/// the newest is not simply the last in the list), the same events in
/// another order, and never-merge pairs between different people (which
/// such events never bring together).
#[allow(clippy::type_complexity)]
fn consistent_world() -> impl Strategy<
    Value = (
        Vec<(PersonEvent, i64)>,
        Vec<usize>,
        Vec<(IdentKey, IdentKey)>,
    ),
> {
    prop::collection::vec(person_event(), 1..30)
        .prop_flat_map(|events| {
            let n = events.len();
            let times = Just((0..n as i64).collect::<Vec<_>>()).prop_shuffle();
            let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
            (Just(events), times, order)
        })
        .prop_map(|(events, times, order)| {
            let timed = events.into_iter().zip(times).collect();
            (timed, order)
        })
        .prop_flat_map(|(timed, order)| {
            let pair = (0..PEOPLE, 0..PEOPLE, 0..5usize, 0..5usize)
                .prop_filter_map("two people", |(p, q, k, l)| {
                    (p != q).then(|| (person_key(p, k, 0), person_key(q, l, 0)))
                });
            (Just(timed), Just(order), prop::collection::vec(pair, 0..3))
        })
}

/// Profiles as their identifiers and the `n` trait (the newest event's).
type Profiles = BTreeSet<(BTreeSet<IdentKey>, Option<u64>)>;

/// Resolves `events` in `order`; returns the profiles as (identifiers,
/// the `n` trait) and the number of refusals.
fn resolve_world(
    events: &[(PersonEvent, i64)],
    order: &[usize],
    never: &[(IdentKey, IdentKey)],
    ids: &[EventId],
) -> (Profiles, usize) {
    let txn = store(never);
    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut refusals = 0;
    for &n in order {
        let (event, time) = &events[n];
        let mut input = input(&event.keys(), base + Duration::seconds(*time), ids[n]);
        input.traits.insert("n".into(), json!(n));
        let Ok(outcome) = identity::resolve(&txn, &input, &Blocklist::default());
        refusals += outcome.refusals.len();
    }
    let profiles = txn
        .profiles()
        .into_iter()
        .map(|p| {
            let trait_n = p.traits.get("n").and_then(|t| t.value.as_u64());
            (p.keys().into_iter().collect(), trait_n)
        })
        .collect();
    (profiles, refusals)
}

/// The connected components of the events' identifiers, each with the
/// `n` of its newest event: what any order must give.
fn components(events: &[(PersonEvent, i64)]) -> Profiles {
    let mut comps: Vec<(BTreeSet<IdentKey>, (i64, usize))> = Vec::new();
    for (n, (event, time)) in events.iter().enumerate() {
        let keys: BTreeSet<IdentKey> = event.keys().into_iter().collect();
        let (touching, rest): (Vec<_>, Vec<_>) =
            comps.into_iter().partition(|(c, _)| !c.is_disjoint(&keys));
        let mut joined = (keys, (*time, n));
        for (c, newest) in touching {
            joined.0.extend(c);
            joined.1 = joined.1.max(newest);
        }
        comps = rest;
        comps.push(joined);
    }
    comps
        .into_iter()
        .map(|(keys, (_, n))| (keys, Some(n as u64)))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn five_kinds_match_the_reference_model(ops in ops(false), never in never_pairs()) {
        check_against_model(&ops, &never)?;
    }

    #[test]
    fn five_kinds_match_the_model_with_manual_merges(ops in ops(true), never in never_pairs()) {
        check_against_model(&ops, &never)?;
    }

    #[test]
    fn a_consistent_world_gives_the_same_profiles_and_traits_in_any_order(
        (events, order, never) in consistent_world()
    ) {
        let ids: Vec<EventId> = events.iter().map(|_| EventId::new()).collect();
        let arrival: Vec<usize> = (0..events.len()).collect();
        let (first, refusals) = resolve_world(&events, &arrival, &never, &ids);
        let (second, refusals_again) = resolve_world(&events, &order, &never, &ids);
        prop_assert_eq!(refusals, 0);
        prop_assert_eq!(refusals_again, 0);
        prop_assert_eq!(&first, &components(&events));
        prop_assert_eq!(first, second);
    }
}

#[test]
fn the_shop_and_stripe_story_ends_in_one_profile() {
    let txn = store(&[]);
    let shop = [
        IdentKey::new(IdentKind::ExternalId, "42"),
        IdentKey::new(IdentKind::Email, "ann@example.com"),
    ];
    let stripe = [
        IdentKey::new(kind(1), "cus_A42"),
        IdentKey::new(IdentKind::Email, "Ann@Example.com"),
    ];
    for keys in [&shop[..], &stripe[..]] {
        let Ok(outcome) = identity::resolve(
            &txn,
            &input(keys, Utc::now(), EventId::new()),
            &Blocklist::default(),
        );
        assert!(outcome.refusals.is_empty(), "{:?}", outcome.refusals);
    }
    let profiles = txn.profiles();
    assert_eq!(profiles.len(), 1);
    let ann = &profiles[0];
    assert_eq!(ann.external_ids, ["42"]);
    assert_eq!(ann.emails, ["ann@example.com"]);
    let stripe_name = KindName::parse("stripe_customer_id").unwrap();
    assert_eq!(ann.identifiers[&stripe_name], ["cus_A42"]);
}

/// docs/identity.md's worked example, step by step.
#[test]
fn the_worked_example_in_the_docs_holds() {
    let txn = store(&[]);
    let send = |keys: &[IdentKey]| {
        let Ok(outcome) = identity::resolve(
            &txn,
            &input(keys, Utc::now(), EventId::new()),
            &Blocklist::default(),
        );
        outcome
    };
    let stripe = |v: &str| IdentKey::new(kind(1), v);
    let email = |v: &str| IdentKey::new(IdentKind::Email, v);
    let shop = send(&[
        IdentKey::new(IdentKind::ExternalId, "42"),
        email("ann@example.com"),
    ]);
    let ann = shop.profile_id;
    assert_eq!(
        send(&[stripe("cus_A42"), email("Ann@Example.com ")]).profile_id,
        ann
    );

    let bo = send(&[stripe("cus_B7"), email("ann@example.com")]);
    assert_eq!(bo.summary(), "create");
    let refusal = &bo.refusals[0];
    assert_eq!(refusal.reason.code(), "stripe_customer_id_conflict");
    assert_eq!((refusal.kind.as_str(), refusal.owner), ("email", ann));

    send(&[
        IdentKey::new(IdentKind::ExternalId, "42"),
        IdentKey::new(IdentKind::VisitorId, "v1"),
    ]);
    send(&[stripe("cus_B7"), email("bo@example.com")]);
    let later = send(&[
        stripe("cus_A42"),
        email("bo@example.com"),
        IdentKey::new(IdentKind::VisitorId, "v1"),
    ]);
    assert_eq!(later.summary(), "attach");
    assert_eq!(later.profile_id, ann);
    let refused: Vec<(&str, &str)> = later
        .refusals
        .iter()
        .map(|r| (r.kind.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(refused, [("email", "bo@example.com")]);
    assert_eq!(later.refusals[0].owner, bo.profile_id);
    assert_eq!(txn.profiles().len(), 2);
}
