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
