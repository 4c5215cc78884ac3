//! The identity rules, tested on the in-memory implementation
//! ([`MemoryTxn`]): what resolution, merging and the limits decide, without
//! a backend. The embedded store's own tests (`store::embedded::identity`)
//! cover what is about sled: link chunks, the hot cache, concurrency,
//! redirects on disk, erasure of stored records, previews writing nothing.

use super::{
    canonical, lookup, manual_merge, resolve, Action, AuditEntry, Blocklist, IdentKey, IdentKind,
    Identifiers, MemoryTxn, Outcome, Profile, RefusalReason, ResolveInput,
};
use crate::domain::ids::{EventId, ProfileId, SourceId};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

/// Identifiers from optional external id, email and visitor id (shared
/// with the store's adapter tests).
pub(crate) fn ids(x: Option<&str>, e: Option<&str>, v: Option<&str>) -> Identifiers {
    Identifiers {
        external_id: x.map(Into::into),
        email: e.map(Into::into),
        visitor_id: v.map(Into::into),
        other: Default::default(),
    }
}

/// A resolver input for a new event carrying `ids`, without traits.
pub(crate) fn input(ids: Identifiers) -> ResolveInput {
    ResolveInput {
        event_id: EventId::new(),
        source_id: SourceId::new(),
        at: Utc::now(),
        ids,
        traits: Map::new(),
    }
}

fn run(mem: &MemoryTxn, x: Option<&str>, e: Option<&str>, v: Option<&str>) -> Outcome {
    let Ok(out) = resolve(mem, &input(ids(x, e, v)), &Blocklist::default());
    out
}

fn owner(mem: &MemoryTxn, key: IdentKey) -> Option<ProfileId> {
    let Ok(profile) = lookup(mem, &key);
    profile.map(|p| p.id)
}

fn profile(mem: &MemoryTxn, id: ProfileId) -> Option<Profile> {
    let Ok(profile) = canonical(mem, id);
    profile
}

/// A profile's events, merged profiles' included (what the store's
/// `profile_events` lists).
fn events(mem: &MemoryTxn, id: ProfileId) -> Vec<EventId> {
    let Some(p) = profile(mem, id) else {
        return Vec::new();
    };
    let mut out: Vec<EventId> = std::iter::once(p.id)
        .chain(p.merged_from.iter().copied())
        .flat_map(|pid| mem.events_of(pid))
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

/// The audit history of a profile and the profiles merged into it, oldest
/// first (what the store's `profile_history` lists).
fn history(mem: &MemoryTxn, id: ProfileId) -> Vec<AuditEntry> {
    let ids: Vec<ProfileId> = match profile(mem, id) {
        Some(p) => std::iter::once(p.id).chain(p.merged_from).collect(),
        None => vec![id],
    };
    let mut entries: Vec<AuditEntry> = mem
        .audit()
        .into_iter()
        .filter(|e| ids.contains(&e.profile_id))
        .collect();
    entries.sort_by_key(|e| e.id);
    entries
}

fn merge(mem: &MemoryTxn, from: ProfileId, into: ProfileId) -> Result<Profile, String> {
    let Ok(merged) = manual_merge(mem, from, into);
    merged
}

#[test]
fn anonymous_visitor_creates_a_profile() {
    let mem = MemoryTxn::new();
    let out = run(&mem, None, None, Some("v1"));
    assert_eq!(out.summary(), "create");
    let p = profile(&mem, out.profile_id.unwrap()).unwrap();
    assert_eq!(p.visitor_ids, vec!["v1"]);
    assert_eq!(p.event_count, 1);
    assert_eq!(events(&mem, p.id).len(), 1);
}

#[test]
fn identification_attaches_email() {
    let mem = MemoryTxn::new();
    let a = run(&mem, None, None, Some("v1"));
    let b = run(&mem, None, Some("Jo@X.io"), Some("v1"));
    assert_eq!(b.summary(), "attach");
    assert_eq!(a.profile_id, b.profile_id);
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::Email, "jo@x.io")),
        a.profile_id
    );
}

#[test]
fn chain_of_identifiers_is_one_profile() {
    let mem = MemoryTxn::new();
    let a = run(&mem, None, Some("e1@x.io"), Some("v1"));
    let b = run(&mem, Some("x1"), Some("e1@x.io"), None);
    let c = run(&mem, Some("x1"), None, Some("v2"));
    assert_eq!(a.profile_id, b.profile_id);
    assert_eq!(b.profile_id, c.profile_id);
    let p = profile(&mem, a.profile_id.unwrap()).unwrap();
    assert_eq!(p.external_ids, vec!["x1"]);
    assert_eq!(p.visitor_ids.len(), 2);
    assert_eq!(p.event_count, 3);
}

#[test]
fn two_external_ids_sharing_an_email_are_not_merged() {
    let mem = MemoryTxn::new();
    let first = run(&mem, Some("x1"), Some("e@x.io"), None);
    let second = run(&mem, Some("x2"), Some("e@x.io"), None);
    assert_eq!(second.summary(), "create");
    assert_ne!(first.profile_id, second.profile_id);
    assert_eq!(second.refusals.len(), 1);
    assert_eq!(
        second.refusals[0].reason,
        RefusalReason::Conflict(IdentKind::ExternalId)
    );
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::Email, "e@x.io")),
        first.profile_id
    );
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::ExternalId, "x2")),
        second.profile_id
    );
    let history = history(&mem, second.profile_id.unwrap());
    assert!(history.iter().any(|h| h.kind() == "refusal"));
}

#[test]
fn blocked_values_warn_and_keep_the_event() {
    let mem = MemoryTxn::new();
    let out = run(&mem, Some("null"), Some("\"undefined\""), Some("v1"));
    assert_eq!(out.summary(), "create");
    assert_eq!(out.warnings.len(), 2);
    assert!(out
        .refusals
        .iter()
        .all(|r| r.reason == RefusalReason::BlockedValue));
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::ExternalId, "null")),
        None
    );
    let none = run(&mem, None, None, Some("0"));
    assert_eq!(none.summary(), "refused: blocked_value");
    assert_eq!(none.profile_id, None);
}

#[test]
fn email_case_and_whitespace_are_one_identifier() {
    let mem = MemoryTxn::new();
    let a = run(&mem, None, Some("  Ann@Example.COM "), None);
    let b = run(&mem, None, Some("ann@example.com"), None);
    assert_eq!(a.profile_id, b.profile_id);
    let c = run(&mem, Some("ABC"), None, None);
    let d = run(&mem, Some("abc"), None, None);
    assert_ne!(
        c.profile_id, d.profile_id,
        "external ids are case-sensitive"
    );
    let e = run(&mem, None, None, Some("abc"));
    assert_ne!(d.profile_id, e.profile_id, "kinds never collide");
}

#[test]
fn merging_anonymous_profiles_keeps_the_older() {
    let mem = MemoryTxn::new();
    let old = run(&mem, None, None, Some("v1")).profile_id.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let young = run(&mem, None, Some("e@x.io"), None).profile_id.unwrap();
    let out = run(&mem, None, Some("e@x.io"), Some("v1"));
    assert_eq!(
        out.action,
        Action::Merge {
            absorbed: vec![young]
        }
    );
    assert_eq!(out.profile_id, Some(old));
    assert_eq!(profile(&mem, young).unwrap().id, old);
    let kinds: Vec<_> = history(&mem, young)
        .into_iter()
        .map(|h| h.kind().to_string())
        .collect();
    assert_eq!(kinds, vec!["create", "create", "merge"]);
    let all = events(&mem, young);
    assert_eq!(all.len(), 3);
    assert!(all[0] > all[1] && all[1] > all[2]);
}

fn traited(at: DateTime<Utc>, plan: &str) -> ResolveInput {
    let mut i = input(ids(None, None, Some("v1")));
    i.at = at;
    i.traits.insert("plan".into(), Value::from(plan));
    i
}

#[test]
fn newest_trait_wins_whatever_the_order() {
    let now = Utc::now();
    let older = traited(now - Duration::hours(1), "free");
    let newer = traited(now, "pro");
    for order in [[&older, &newer], [&newer, &older]] {
        let mem = MemoryTxn::new();
        for i in order {
            let Ok(_) = resolve(&mem, i, &Blocklist::default());
        }
        let Ok(Some(p)) = lookup(&mem, &IdentKey::new(IdentKind::VisitorId, "v1")) else {
            panic!("no profile for v1");
        };
        assert_eq!(p.traits["plan"].value, Value::from("pro"));
        assert_eq!(p.first_seen, older.at);
    }
}

#[test]
fn sixth_email_is_refused() {
    let mem = MemoryTxn::new();
    for i in 0..5 {
        run(&mem, None, Some(&format!("e{i}@x.io")), Some("v1"));
    }
    let out = run(&mem, None, Some("e5@x.io"), Some("v1"));
    assert_eq!(out.refusals[0].reason, RefusalReason::LimitExceeded);
    let Ok(Some(p)) = lookup(&mem, &IdentKey::new(IdentKind::VisitorId, "v1")) else {
        panic!("no profile for v1");
    };
    assert_eq!(p.emails.len(), 5);
    // The event went to the profile of its strongest surviving identifier.
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::Email, "e5@x.io")),
        out.profile_id
    );
    assert_ne!(out.profile_id, Some(p.id));
}

#[test]
fn manual_merge_joins_external_ids() {
    let mem = MemoryTxn::new();
    let a = run(&mem, Some("x1"), None, None).profile_id.unwrap();
    let b = run(&mem, Some("x2"), None, None).profile_id.unwrap();
    let merged = merge(&mem, a, b).unwrap();
    assert_eq!(merged.id, b);
    assert_eq!(merged.external_ids, vec!["x2", "x1"]);
    assert_eq!(
        owner(&mem, IdentKey::new(IdentKind::ExternalId, "x1")),
        Some(b)
    );
    assert!(merge(&mem, a, b).is_err());
    assert!(merge(&mem, ProfileId::new(), b).is_err());
    // Events carrying either external id still attach.
    assert_eq!(run(&mem, Some("x1"), None, None).profile_id, Some(b));
    assert_eq!(events(&mem, b).len(), 3);
    let history = history(&mem, b);
    assert!(history.iter().any(|h| h.kind() == "manual_merge"));
}

// ---------------------------------------------------------------------------
// A team's own kinds (issue 17): the shop + Stripe set-up. Kinds, strongest
// first: external_id (1), stripe_customer_id (limit 1), email (5), phone
// (limit 2), visitor_id (100).
// ---------------------------------------------------------------------------

use super::{IdentityConfig, KindChange, KindSet, KindSpec, NeverMerge, NeverMergeRule, Normalise};

const STRIPE: &str = "stripe_customer_id";

fn kind(name: &str) -> IdentKind {
    IdentKind::parse(name).expect("a valid kind name")
}

fn team_kind(name: &str, limit: u32, normalise: Normalise) -> KindSpec {
    KindSpec {
        name: kind(name),
        limit,
        normalise,
        blocked_values: vec![],
        enabled: true,
        created_at: None,
    }
}

/// The built-ins, Stripe's customer id at priority 2 and a phone.
fn shop_kinds() -> KindSet {
    let mut set = KindSet::default();
    set.add(team_kind(STRIPE, 1, Normalise::Trim), Some(2))
        .expect("stripe kind");
    set.add(team_kind("phone", 2, Normalise::Lowercase), None)
        .expect("phone kind");
    set
}

fn never(pairs: &[(IdentKey, IdentKey)]) -> NeverMerge {
    NeverMerge::new(
        pairs
            .iter()
            .map(|(a, b)| NeverMergeRule {
                id: uuid::Uuid::now_v7(),
                a: a.clone(),
                b: b.clone(),
                created_at: Utc::now(),
                by: "test".into(),
                reason: "split".into(),
                split_of: None,
            })
            .collect(),
    )
}

fn store_with(kinds: KindSet, pairs: &[(IdentKey, IdentKey)]) -> MemoryTxn {
    MemoryTxn::with_config(IdentityConfig {
        kinds,
        never: never(pairs),
    })
}

fn k(kind_name: &str, value: &str) -> IdentKey {
    IdentKey::new(kind(kind_name), value)
}

/// Resolves an event carrying `(kind, value)` pairs.
fn send(mem: &MemoryTxn, pairs: &[(&str, &str)]) -> Outcome {
    let mut raw = Identifiers::default();
    for (name, value) in pairs {
        raw.set(kind(name), Some((*value).to_owned()));
    }
    let Ok(out) = resolve(mem, &input(raw), &Blocklist::default());
    out
}

/// Each refusal as `"<kind> <value> <code>"`.
fn refused(out: &Outcome) -> Vec<String> {
    out.refusals
        .iter()
        .map(|r| format!("{} {} {}", r.kind, r.value, r.reason.code()))
        .collect()
}

#[test]
fn a_second_stripe_customer_id_conflicts_and_names_its_owner() {
    let mem = store_with(shop_kinds(), &[]);
    let ann = send(&mem, &[(STRIPE, "cus_1"), ("email", "ann@x.io")]);
    let other = send(&mem, &[(STRIPE, "cus_2"), ("email", "ann@x.io")]);

    assert_eq!(
        refused(&other),
        ["email ann@x.io stripe_customer_id_conflict"]
    );
    assert_eq!(other.refusals[0].owner, ann.profile_id);
    assert_eq!(
        other.refusals[0].reason,
        RefusalReason::Conflict(kind(STRIPE))
    );
    assert_ne!(other.profile_id, ann.profile_id);
    assert_eq!(owner(&mem, k(STRIPE, "cus_2")), other.profile_id);
    assert_eq!(owner(&mem, k("email", "ann@x.io")), ann.profile_id);
}

#[test]
fn an_identifier_the_kept_profile_owns_is_not_dropped() {
    let mem = store_with(shop_kinds(), &[]);
    let kept = send(&mem, &[(STRIPE, "cus_1"), ("visitor_id", "v1")]);
    let other = send(&mem, &[(STRIPE, "cus_2"), ("email", "bo@x.io")]);

    // v1 is the weakest identifier bringing a Stripe id, but it brings the
    // profile the event keeps anyway: the email of the other one goes.
    let out = send(
        &mem,
        &[
            (STRIPE, "cus_1"),
            ("email", "bo@x.io"),
            ("visitor_id", "v1"),
        ],
    );

    assert_eq!(refused(&out), ["email bo@x.io stripe_customer_id_conflict"]);
    assert_eq!(out.refusals[0].owner, other.profile_id);
    assert_eq!(out.profile_id, kept.profile_id);
    assert_eq!(out.summary(), "attach");
}

#[test]
fn a_group_is_dropped_whole_so_no_identifier_is_refused_that_joins_anyway() {
    let mem = store_with(shop_kinds(), &[]);
    let a = send(&mem, &[("external_id", "xa"), ("phone", "ph1")]);
    let p = send(
        &mem,
        &[(STRIPE, "cus_p"), ("phone", "ph2"), ("visitor_id", "vp")],
    );
    let r = send(&mem, &[("email", "r@x.io"), ("phone", "ph3")]);

    // Three phones for a limit of 2: the weakest profile bringing phones is
    // r's (its strongest identifier on the event, the email, is weaker
    // than p's Stripe id), not p's even though p's visitor id is the
    // event's weakest identifier.
    let out = send(
        &mem,
        &[
            ("external_id", "xa"),
            (STRIPE, "cus_p"),
            ("email", "r@x.io"),
            ("visitor_id", "vp"),
        ],
    );

    assert_eq!(refused(&out), ["email r@x.io limit_exceeded"]);
    assert_eq!(out.profile_id, a.profile_id);
    assert_eq!(owner(&mem, k("visitor_id", "vp")), a.profile_id);
    assert_eq!(
        profile(&mem, p.profile_id.unwrap()).unwrap().id,
        a.profile_id.unwrap()
    );
    assert_eq!(owner(&mem, k("email", "r@x.io")), r.profile_id);
}

#[test]
fn a_value_of_an_undefined_kind_is_refused_and_the_rest_is_used() {
    let mem = store_with(shop_kinds(), &[]);
    let out = send(&mem, &[("shoe_size", "42"), ("email", "ann@x.io")]);
    assert_eq!(refused(&out), ["shoe_size 42 unknown_kind"]);
    assert_eq!(out.summary(), "create");
    assert_eq!(owner(&mem, k("email", "ann@x.io")), out.profile_id);
}

#[test]
fn a_disabled_kind_takes_no_new_values_and_the_rest_is_used() {
    let mut kinds = shop_kinds();
    let disable = KindChange {
        enabled: Some(false),
        ..KindChange::default()
    };
    kinds.update(&kind("phone"), disable).unwrap();
    let mem = store_with(kinds, &[]);
    let out = send(&mem, &[("phone", "555-1"), ("email", "ann@x.io")]);
    assert_eq!(refused(&out), ["phone 555-1 kind_disabled"]);
    assert_eq!(out.summary(), "create");
    let Some(p) = profile(&mem, out.profile_id.unwrap()) else {
        panic!("no profile");
    };
    assert!(p.list(&kind("phone")).is_empty());
    assert_eq!(p.emails, ["ann@x.io"]);
}

#[test]
fn each_kind_normalises_by_its_own_rule() {
    let mut kinds = KindSet::default();
    kinds
        .add(team_kind("t_trim", 5, Normalise::Trim), None)
        .unwrap();
    kinds
        .add(team_kind("t_lower", 5, Normalise::Lowercase), None)
        .unwrap();
    kinds
        .add(team_kind("t_none", 5, Normalise::None), None)
        .unwrap();
    let mem = store_with(kinds, &[]);
    let same = |kind_name: &str, a: &str, b: &str| {
        let first = send(&mem, &[(kind_name, a)]).profile_id;
        let second = send(&mem, &[(kind_name, b)]).profile_id;
        first.is_some() && first == second
    };
    assert!(same("t_trim", " K1 ", "K1"));
    assert!(!same("t_trim", "K2", "k2"), "trim keeps case");
    assert!(same("t_lower", " K3 ", "k3"));
    assert!(!same("t_none", " K4", "K4"), "none keeps spaces");
    assert!(!same("t_none", "K5", "k5"), "none keeps case");
    assert!(owner(&mem, k("t_none", " K4")).is_some());
}

#[test]
fn a_blank_value_is_absent_even_for_a_kind_kept_exactly_as_sent() {
    let mut kinds = KindSet::default();
    kinds
        .add(team_kind("t_none", 5, Normalise::None), None)
        .unwrap();
    let mem = store_with(kinds, &[]);
    let first = send(&mem, &[("t_none", "   "), ("visitor_id", "v1")]);
    let second = send(&mem, &[("t_none", "   "), ("visitor_id", "v2")]);
    assert!(first.refusals.is_empty());
    assert_ne!(
        first.profile_id, second.profile_id,
        "a blank value joined two people"
    );
    assert_eq!(owner(&mem, k("t_none", "   ")), None);
    assert_eq!(
        send(&mem, &[("t_none", " ")]).summary(),
        "refused: no_identifier"
    );
}

#[test]
fn a_kind_refuses_its_own_blocked_values_ignoring_case() {
    let mut kinds = KindSet::default();
    let mut spec = team_kind(STRIPE, 1, Normalise::Trim);
    spec.blocked_values = vec!["CUS_0".into(), "no_customer".into()];
    kinds.add(spec, Some(2)).unwrap();
    kinds
        .add(team_kind("phone", 2, Normalise::Trim), None)
        .unwrap();
    let mem = store_with(kinds, &[]);
    let out = send(&mem, &[(STRIPE, " cus_0 "), ("phone", "cus_0")]);
    assert_eq!(refused(&out), ["stripe_customer_id cus_0 blocked_value"]);
    assert_eq!(owner(&mem, k("phone", "cus_0")), out.profile_id);
    let none = send(&mem, &[(STRIPE, "No_Customer")]);
    assert_eq!(none.summary(), "refused: blocked_value");
}

#[test]
fn the_holder_of_the_strongest_one_per_person_kind_survives() {
    let mem = store_with(shop_kinds(), &[]);
    let old = send(&mem, &[("visitor_id", "v1")]).profile_id.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(3));
    let stripe = send(&mem, &[(STRIPE, "cus_1"), ("email", "ann@x.io")])
        .profile_id
        .unwrap();
    let merged = send(&mem, &[("email", "ann@x.io"), ("visitor_id", "v1")]);
    assert_eq!(merged.profile_id, Some(stripe), "not the older one");

    std::thread::sleep(std::time::Duration::from_millis(3));
    let shop = send(&mem, &[("external_id", "42")]).profile_id.unwrap();
    let both = send(&mem, &[("external_id", "42"), (STRIPE, "cus_1")]);
    assert_eq!(both.profile_id, Some(shop), "external_id outranks Stripe");
    assert!(both.refusals.is_empty());
    assert_eq!(profile(&mem, old).unwrap().id, shop);
}

#[test]
fn a_never_merge_pair_on_one_event_keeps_the_stronger_side() {
    let pair = (k("email", "ann@x.io"), k("phone", "555-1"));
    let mem = store_with(shop_kinds(), &[pair]);
    let out = send(&mem, &[("email", "ann@x.io"), ("phone", "555-1")]);
    assert_eq!(refused(&out), ["phone 555-1 never_merge"]);
    assert_eq!(out.refusals[0].owner, None);
    assert_eq!(out.summary(), "create");
    assert_eq!(owner(&mem, k("phone", "555-1")), None);
}

#[test]
fn a_never_merge_pair_keeps_the_two_profiles_holding_it_apart() {
    let pair = (k("email", "ann@x.io"), k("phone", "555-1"));
    let mem = store_with(shop_kinds(), &[pair]);
    let ann = send(&mem, &[(STRIPE, "cus_1"), ("email", "ann@x.io")]);
    let bo = send(&mem, &[("phone", "555-1"), ("visitor_id", "v2")]);
    let out = send(&mem, &[(STRIPE, "cus_1"), ("visitor_id", "v2")]);
    assert_eq!(refused(&out), ["visitor_id v2 never_merge"]);
    assert_eq!(out.refusals[0].owner, bo.profile_id);
    assert_eq!(out.profile_id, ann.profile_id);
    assert_ne!(owner(&mem, k("phone", "555-1")), ann.profile_id);
    let history = history(&mem, bo.profile_id.unwrap());
    assert!(history.iter().any(|h| h.kind() == "refusal"));
}

#[test]
fn a_profile_is_not_kept_out_for_clashing_with_one_that_is_itself_kept_out() {
    // x0 must never meet ph_p (p's), and p's email never v_q (q's). The
    // event's strongest side is the new x0: p clashes with it and goes;
    // q clashes only with p, which is gone, so q joins.
    let pairs = [
        (k("external_id", "x0"), k("phone", "ph_p")),
        (k("email", "p@x.io"), k("visitor_id", "v_q")),
    ];
    let mem = store_with(shop_kinds(), &pairs);
    send(&mem, &[("email", "p@x.io"), ("phone", "ph_p")]);
    let q = send(&mem, &[("visitor_id", "v_q")]);
    let out = send(
        &mem,
        &[
            ("external_id", "x0"),
            ("email", "p@x.io"),
            ("visitor_id", "v_q"),
        ],
    );
    assert_eq!(refused(&out), ["email p@x.io never_merge"]);
    assert_eq!(out.profile_id, q.profile_id);
    assert_eq!(owner(&mem, k("external_id", "x0")), q.profile_id);
}
