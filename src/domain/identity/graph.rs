//! How a profile was joined: its history lines read back into a graph of
//! profiles (boxes), merges (edges) and identifiers (labels), with the
//! refusals that kept it apart from other profiles.
//!
//! Pure: the caller reads the lines (the live profile's and those of every
//! id in its `merged_from`) and this only interprets them. Nothing is
//! inferred that the lines do not say: an identifier whose first line is
//! missing (older than the history, redacted by an erasure, or beyond what
//! the caller read) has no first event, and a merge line written before
//! `links` were kept says its joining identifiers were not recorded.

use super::types::{AuditChange, AuditEntry, AuditKind, IdentKey, MergeLink, Profile, Refused};
use super::RefusalReason;
use crate::domain::ids::{EventId, ProfileId, SourceId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The event behind a history line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventRef {
    pub event_id: EventId,
    /// When the line was written (the event was resolved).
    pub at: DateTime<Utc>,
    pub source_id: Option<SourceId>,
}

/// One profile of the graph: the live one, or one merged into it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphNode {
    pub profile_id: ProfileId,
    /// The profile the graph is about (every other node was merged into it).
    pub live: bool,
    /// The event whose `create` line started it; `None` when the line is
    /// not in the history read (or was redacted).
    pub created: Option<EventRef>,
}

/// What joined two profiles.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MergeCause {
    /// An event carried identifiers of both.
    Event(EventRef),
    /// Support staff merged them by hand (`by`: who, when recorded).
    Manual { by: Option<String> },
}

/// The identifiers of the event that each side held: why the event joined
/// them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JoinedBy {
    /// Held by the profile that survived.
    pub into: Option<IdentKey>,
    /// Held by the profile absorbed.
    pub from: Option<IdentKey>,
}

/// One merge: `from` was absorbed into `into`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphEdge {
    /// The `id` of the merge's history line (what a split names).
    pub merge_id: Uuid,
    pub at: DateTime<Utc>,
    pub from: ProfileId,
    pub into: ProfileId,
    pub cause: MergeCause,
    /// `None`: not recorded (a line written before merges kept it, or a
    /// manual merge, which no identifier caused).
    pub joined_by: Option<JoinedBy>,
}

/// An identifier the profile holds, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IdentifierOrigin {
    pub key: IdentKey,
    /// The event whose `create`, `attach` or `merge` line first brought
    /// it; `None` when no line read holds it (never invented).
    pub first: Option<EventRef>,
    /// The profile it arrived on (the live one or one merged in later).
    pub came_with: Option<ProfileId>,
    /// The kind of line that brought it.
    pub via: Option<AuditKind>,
}

/// A refusal that kept an event's identifier off a profile it belongs to:
/// the event joined `joined` (or nothing), the identifier stayed with
/// `owner`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphRefusal {
    pub event: EventRef,
    pub key: IdentKey,
    pub reason: RefusalReason,
    /// The profile the event joined (`None`: none).
    pub joined: Option<ProfileId>,
    /// The profile the refused identifier belongs to (or clashed with).
    pub owner: ProfileId,
    /// Of `joined` and `owner`, the one that is not this profile (or merged
    /// into it); `None` when both are here now (merged since) or the event
    /// joined no profile.
    pub other: Option<ProfileId>,
    /// True when the refused identifier is this profile's: another
    /// profile's event carried it. False when this profile's event carried
    /// another profile's identifier.
    pub owned_here: bool,
    /// The strongest identifier the event kept (what it "arrived with"),
    /// when the caller could read the event; see [`ProfileGraph::arrived_with`].
    pub arrived_with: Option<IdentKey>,
    /// Identical lines folded into this one.
    pub count: u64,
}

/// How a profile was joined.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProfileGraph {
    pub profile_id: ProfileId,
    /// The live profile first, then each profile merged in, in merge order.
    pub nodes: Vec<GraphNode>,
    /// Every merge, oldest first.
    pub edges: Vec<GraphEdge>,
    /// Every identifier the profile holds, strongest kind first as the
    /// profile lists them.
    pub identifiers: Vec<IdentifierOrigin>,
    /// Refusals between this profile and another, oldest first.
    pub refusals: Vec<GraphRefusal>,
    /// False when the caller stopped reading history before its start:
    /// identifiers without a first event may then have one further back.
    pub history_complete: bool,
}

/// A history line with the number of identical lines folded into it.
pub type Line<'a> = (&'a AuditEntry, u64);

/// Builds the graph of `profile` from its history lines, oldest first.
pub fn build<'a>(
    profile: &Profile,
    lines: impl IntoIterator<Item = Line<'a>>,
    history_complete: bool,
) -> ProfileGraph {
    let here: BTreeSet<ProfileId> = std::iter::once(profile.id)
        .chain(profile.merged_from.iter().copied())
        .collect();
    let mut reader = Reader::default();
    for (entry, count) in lines {
        reader.read(entry, count, &here);
    }
    reader.finish(profile, history_complete)
}

/// What the lines said so far.
#[derive(Default)]
struct Reader {
    created: BTreeMap<ProfileId, EventRef>,
    first: BTreeMap<IdentKey, (EventRef, ProfileId, AuditKind)>,
    edges: Vec<GraphEdge>,
    refusals: Vec<GraphRefusal>,
}

impl Reader {
    fn read(&mut self, entry: &AuditEntry, count: u64, here: &BTreeSet<ProfileId>) {
        let event = entry.event_id.map(|event_id| EventRef {
            event_id,
            at: entry.at,
            source_id: entry.change.source_id(),
        });
        match (&entry.change, event) {
            (AuditChange::Create(d), Some(event)) => {
                self.created
                    .entry(entry.profile_id)
                    .or_insert(event.clone());
                self.brought(&d.identifiers, &event, entry.profile_id, AuditKind::Create);
            }
            (AuditChange::Attach(d), Some(event)) => {
                self.brought(&d.added, &event, entry.profile_id, AuditKind::Attach);
            }
            (AuditChange::Merge(d), Some(event)) => {
                self.brought(&d.added, &event, entry.profile_id, AuditKind::Merge);
                for from in &d.absorbed {
                    self.edges.push(GraphEdge {
                        merge_id: entry.id,
                        at: entry.at,
                        from: *from,
                        into: entry.profile_id,
                        cause: MergeCause::Event(event.clone()),
                        joined_by: joined_by(&d.links, *from, entry.profile_id),
                    });
                }
            }
            (AuditChange::ManualMerge(d), _) => self.edges.push(GraphEdge {
                merge_id: entry.id,
                at: entry.at,
                from: d.from,
                into: entry.profile_id,
                cause: MergeCause::Manual { by: None },
                joined_by: None,
            }),
            (AuditChange::Refusal(d), Some(event)) => self.refused(d, event, count, here),
            _ => {}
        }
    }

    /// Keeps the first line that brought each key.
    fn brought(&mut self, keys: &[IdentKey], event: &EventRef, on: ProfileId, via: AuditKind) {
        for key in keys {
            self.first
                .entry(key.clone())
                .or_insert_with(|| (event.clone(), on, via));
        }
    }

    /// The refusals of one line that kept two profiles apart. The line is
    /// filed under both sides, so when both are here it is read twice:
    /// once is kept.
    fn refused(&mut self, d: &Refused, event: EventRef, count: u64, here: &BTreeSet<ProfileId>) {
        for r in &d.refusals {
            let Some(owner) = r.owner else { continue };
            let key = IdentKey::new(r.kind.clone(), r.value.clone());
            let seen = self
                .refusals
                .iter()
                .any(|g| g.event.event_id == event.event_id && g.key == key);
            if seen {
                continue;
            }
            let owned_here = here.contains(&owner);
            let other = if owned_here {
                d.joined.filter(|j| !here.contains(j))
            } else {
                Some(owner)
            };
            self.refusals.push(GraphRefusal {
                event: event.clone(),
                key,
                reason: r.reason.clone(),
                joined: d.joined,
                owner,
                other,
                owned_here,
                arrived_with: None,
                count,
            });
        }
    }

    fn finish(self, profile: &Profile, history_complete: bool) -> ProfileGraph {
        let nodes = std::iter::once((profile.id, true))
            .chain(profile.merged_from.iter().map(|id| (*id, false)))
            .map(|(id, live)| GraphNode {
                profile_id: id,
                live,
                created: self.created.get(&id).cloned(),
            })
            .collect();
        let identifiers = profile
            .keys()
            .into_iter()
            .map(|key| {
                let found = self.first.get(&key);
                IdentifierOrigin {
                    first: found.map(|(e, _, _)| e.clone()),
                    came_with: found.map(|(_, p, _)| *p),
                    via: found.map(|(_, _, v)| *v),
                    key,
                }
            })
            .collect();
        ProfileGraph {
            profile_id: profile.id,
            nodes,
            edges: self.edges,
            identifiers,
            refusals: self.refusals,
            history_complete,
        }
    }
}

/// The keys a merge line records for `from` and `into`; `None` for a line
/// written before links were kept.
fn joined_by(links: &[MergeLink], from: ProfileId, into: ProfileId) -> Option<JoinedBy> {
    if links.is_empty() {
        return None;
    }
    let key_of = |id: ProfileId| {
        links
            .iter()
            .find(|l| l.profile_id == id)
            .map(|l| l.key.clone())
    };
    Some(JoinedBy {
        into: key_of(into),
        from: key_of(from),
    })
}

impl ProfileGraph {
    /// Refusals whose event the caller may look up for what it arrived
    /// with, at most `limit` of them (the newest).
    pub fn refusal_events(&self, limit: usize) -> Vec<EventId> {
        let mut ids: Vec<EventId> = self.refusals.iter().map(|r| r.event.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let skip = ids.len().saturating_sub(limit);
        ids.split_off(skip)
    }

    /// Fills in what each refusal's event arrived with: `kept(event)`
    /// gives the event's identifiers strongest first; the first that is
    /// not the refused one is taken.
    pub fn arrived_with(&mut self, kept: impl Fn(EventId) -> Option<Vec<IdentKey>>) {
        let mut cache: BTreeMap<EventId, Option<Vec<IdentKey>>> = BTreeMap::new();
        for r in &mut self.refusals {
            let keys = cache
                .entry(r.event.event_id)
                .or_insert_with(|| kept(r.event.event_id));
            r.arrived_with = keys
                .as_ref()
                .and_then(|keys| keys.iter().find(|k| **k != r.key).cloned());
        }
    }

    /// The refusal of `event` on the identifier `key`, if the graph holds it.
    pub fn refusal(&self, event: EventId, key: &IdentKey) -> Option<&GraphRefusal> {
        self.refusals
            .iter()
            .find(|r| r.event.event_id == event && &r.key == key)
    }

    /// The profile each merged-in profile was absorbed into (its parent in
    /// the merge tree). A profile with no recorded merge hangs off the live
    /// one.
    pub fn parent_of(&self, id: ProfileId) -> Option<ProfileId> {
        if id == self.profile_id {
            return None;
        }
        let recorded = self.edges.iter().rev().find(|e| e.from == id);
        Some(recorded.map_or(self.profile_id, |e| e.into))
    }
}

#[cfg(test)]
mod tests {
    use super::super::rule_tests::{ids, input};
    use super::super::{manual_merge, resolve, Blocklist, IdentKind, MemoryTxn, ResolveInput};
    use super::*;

    fn send(mem: &MemoryTxn, x: Option<&str>, e: Option<&str>, v: Option<&str>) -> ResolveInput {
        let event = input(ids(x, e, v));
        let Ok(_) = resolve(mem, &event, &Blocklist::default());
        event
    }

    fn graph_of(mem: &MemoryTxn, key: IdentKey) -> ProfileGraph {
        let Ok(Some(profile)) = super::super::lookup(mem, &key) else {
            panic!("no profile holds {key}");
        };
        let ids: BTreeSet<ProfileId> = std::iter::once(profile.id)
            .chain(profile.merged_from.iter().copied())
            .collect();
        let mut lines: Vec<AuditEntry> = mem
            .audit()
            .into_iter()
            .filter(|e| ids.contains(&e.profile_id))
            .collect();
        lines.sort_by_key(|e| e.id);
        build(&profile, lines.iter().map(|l| (l, 1)), true)
    }

    fn email(v: &str) -> IdentKey {
        IdentKey::new(IdentKind::Email, v)
    }
    fn visitor(v: &str) -> IdentKey {
        IdentKey::new(IdentKind::VisitorId, v)
    }
    fn external(v: &str) -> IdentKey {
        IdentKey::new(IdentKind::ExternalId, v)
    }

    fn origin<'g>(g: &'g ProfileGraph, key: &IdentKey) -> &'g IdentifierOrigin {
        let found = g.identifiers.iter().find(|i| &i.key == key);
        found.unwrap_or_else(|| panic!("{key} in the graph"))
    }

    #[test]
    fn create_then_attach_names_the_event_that_first_brought_each_identifier() {
        let mem = MemoryTxn::new();
        let first = send(&mem, None, None, Some("v-1"));
        let second = send(&mem, None, Some("ann@x.org"), Some("v-1"));

        let g = graph_of(&mem, visitor("v-1"));

        let v = origin(&g, &visitor("v-1"));
        assert_eq!(v.first.as_ref().map(|e| e.event_id), Some(first.event_id));
        assert_eq!(v.via, Some(AuditKind::Create));
        let e = origin(&g, &email("ann@x.org"));
        assert_eq!(e.first.as_ref().map(|e| e.event_id), Some(second.event_id));
        assert_eq!(e.via, Some(AuditKind::Attach));
        assert_eq!(e.came_with, Some(g.profile_id));
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(
            g.nodes[0].created.as_ref().map(|c| c.event_id),
            Some(first.event_id)
        );
        assert!(g.edges.is_empty() && g.refusals.is_empty());
    }

    #[test]
    fn a_merge_names_its_event_both_profiles_and_the_identifiers_that_joined_them() {
        let mem = MemoryTxn::new();
        let ann = send(&mem, Some("42"), None, None);
        let phone = send(&mem, None, Some("ann@x.org"), Some("v-9"));
        let joiner = send(&mem, Some("42"), Some("ann@x.org"), None);

        let g = graph_of(&mem, external("42"));

        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.edges.len(), 1);
        let edge = &g.edges[0];
        assert_eq!(
            edge.cause,
            MergeCause::Event(EventRef {
                event_id: joiner.event_id,
                at: edge.at,
                source_id: Some(joiner.source_id),
            })
        );
        assert_eq!(edge.into, g.profile_id);
        assert_eq!(g.parent_of(edge.from), Some(g.profile_id));
        let joined = edge.joined_by.as_ref().expect("links recorded");
        assert_eq!(joined.into, Some(external("42")));
        assert_eq!(joined.from, Some(email("ann@x.org")));
        // Each identifier keeps the event (and original profile) it came with.
        let v = origin(&g, &visitor("v-9"));
        assert_eq!(v.first.as_ref().map(|e| e.event_id), Some(phone.event_id));
        assert_eq!(v.came_with, Some(edge.from));
        let x = origin(&g, &external("42"));
        assert_eq!(x.first.as_ref().map(|e| e.event_id), Some(ann.event_id));
        let absorbed = g.nodes.iter().find(|n| !n.live).expect("absorbed node");
        assert_eq!(
            absorbed.created.as_ref().map(|c| c.event_id),
            Some(phone.event_id)
        );
    }

    #[test]
    fn a_conflict_refusal_shows_on_both_profiles_each_naming_the_other() {
        let mem = MemoryTxn::new();
        send(&mem, Some("x1"), Some("family@x.org"), None);
        let clash = send(&mem, Some("x2"), Some("family@x.org"), None);

        let owner = graph_of(&mem, external("x1"));
        let joined = graph_of(&mem, external("x2"));

        assert_eq!(owner.refusals.len(), 1);
        assert_eq!(joined.refusals.len(), 1);
        let (o, j) = (&owner.refusals[0], &joined.refusals[0]);
        assert_eq!(o.event.event_id, clash.event_id);
        assert_eq!(o.key, email("family@x.org"));
        assert_eq!(o.reason, RefusalReason::Conflict(IdentKind::ExternalId));
        assert!(o.owned_here && !j.owned_here);
        assert_eq!(o.other, Some(joined.profile_id));
        assert_eq!(j.other, Some(owner.profile_id));
    }

    #[test]
    fn a_manual_merge_is_an_edge_without_identifiers_and_a_refusal_now_inside_names_no_other() {
        let mem = MemoryTxn::new();
        send(&mem, Some("x1"), Some("family@x.org"), None);
        send(&mem, Some("x2"), Some("family@x.org"), None);
        let (Ok(Some(a)), Ok(Some(b))) = (
            super::super::lookup(&mem, &external("x1")),
            super::super::lookup(&mem, &external("x2")),
        ) else {
            panic!("two profiles");
        };
        let Ok(merged) = manual_merge(&mem, b.id, a.id);
        assert!(merged.is_ok());

        let g = graph_of(&mem, external("x1"));

        assert_eq!(g.edges.len(), 1);
        assert_eq!(g.edges[0].cause, MergeCause::Manual { by: None });
        assert_eq!(g.edges[0].joined_by, None);
        // Filed under both, both here now: read once, no other side.
        assert_eq!(g.refusals.len(), 1);
        assert_eq!(g.refusals[0].other, None);
    }

    #[test]
    fn identifiers_without_a_line_are_listed_without_a_first_event() {
        let mem = MemoryTxn::new();
        send(&mem, None, Some("ann@x.org"), Some("v-1"));
        let Ok(Some(profile)) = super::super::lookup(&mem, &email("ann@x.org")) else {
            panic!("a profile");
        };

        // As if the history started after the profile was created.
        let g = build(&profile, std::iter::empty(), false);

        assert_eq!(g.identifiers.len(), 2);
        assert!(g.identifiers.iter().all(|i| i.first.is_none()));
        assert!(!g.history_complete);
    }

    #[test]
    fn arrived_with_takes_the_strongest_kept_identifier_of_the_event() {
        let mem = MemoryTxn::new();
        send(&mem, Some("x1"), Some("family@x.org"), None);
        let clash = send(&mem, Some("x2"), Some("family@x.org"), None);
        let mut g = graph_of(&mem, external("x1"));

        assert_eq!(g.refusal_events(10), vec![clash.event_id]);
        g.arrived_with(|_| Some(vec![external("x2"), email("family@x.org")]));

        assert_eq!(g.refusals[0].arrived_with, Some(external("x2")));
    }

    #[test]
    fn a_chain_of_merges_hangs_each_profile_off_the_one_that_absorbed_it() {
        let mem = MemoryTxn::new();
        send(&mem, Some("root"), None, None);
        send(&mem, None, Some("mid@x.org"), None);
        send(&mem, None, None, Some("leaf"));
        // The email's profile absorbs the visitor's, then the root absorbs it.
        send(&mem, None, Some("mid@x.org"), Some("leaf"));
        send(&mem, Some("root"), Some("mid@x.org"), None);

        let g = graph_of(&mem, external("root"));

        assert_eq!(g.nodes.len(), 3);
        assert_eq!(g.edges.len(), 2);
        let mid = g.edges[1].from;
        let leaf = g.edges[0].from;
        assert_eq!(g.edges[0].into, mid);
        assert_eq!(g.parent_of(leaf), Some(mid));
        assert_eq!(g.parent_of(mid), Some(g.profile_id));
    }
}
