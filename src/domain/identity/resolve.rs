//! Resolution of one event: look up, check limits, create / attach / merge.

use super::kinds::IdentKind;
use super::never::NeverMerge;
use super::normalise::{normalise, Blocklist};
use super::types::*;
use super::{IdentityTxn, Rules};
use crate::domain::ids::ProfileId;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Redirects are compressed on write (one hop); a few more are tolerated so a
/// hand-edited or legacy database still resolves, and a loop cannot hang us.
const MAX_REDIRECT_HOPS: usize = 8;

/// The live profile behind `id`, following redirects from absorbed ids.
pub fn canonical<T: IdentityTxn + ?Sized>(
    txn: &T,
    id: ProfileId,
) -> Result<Option<Profile>, T::Error> {
    let mut id = id;
    for _ in 0..MAX_REDIRECT_HOPS {
        if let Some(profile) = txn.profile_get(id)? {
            return Ok(Some(profile));
        }
        match txn.redirect_get(id)? {
            Some(next) if next != id => id = next,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// The live profile owning an identifier.
pub fn lookup<T: IdentityTxn + ?Sized>(
    txn: &T,
    key: &IdentKey,
) -> Result<Option<Profile>, T::Error> {
    match txn.ident_get(key)? {
        Some(id) => canonical(txn, id),
        None => Ok(None),
    }
}

/// The event's identifiers with their current owners.
struct Candidates {
    /// Strongest first.
    keys: Vec<IdentKey>,
    /// Owner of each key (parallel to `keys`).
    owners: Vec<Option<ProfileId>>,
    /// The distinct owning profiles, in key order.
    profiles: Vec<Profile>,
}

/// What a key brings into the result: the profile that owns it, or (for a
/// key no profile has) itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    Profile(ProfileId),
    New(usize),
}

/// A group to drop (every key of it on the event), why, and the profile it
/// would have joined the event to (for a conflict between two people).
struct Violation {
    group: Group,
    reason: RefusalReason,
    owner: Option<ProfileId>,
}

impl Violation {
    fn new(group: Group, reason: RefusalReason) -> Self {
        let owner = match group {
            Group::Profile(id) => Some(id),
            Group::New(_) => None,
        };
        Self {
            group,
            reason,
            owner,
        }
    }
}

impl Candidates {
    fn load<T: IdentityTxn + ?Sized>(txn: &T, keys: Vec<IdentKey>) -> Result<Self, T::Error> {
        let mut owners = Vec::with_capacity(keys.len());
        let mut profiles: Vec<Profile> = Vec::new();
        for key in &keys {
            let Some(id) = txn.ident_get(key)? else {
                owners.push(None);
                continue;
            };
            // An event's identifiers mostly point at one profile: read and
            // decode it once, not once per identifier.
            if profiles.iter().any(|q| q.id == id) {
                owners.push(Some(id));
                continue;
            }
            let owner = canonical(txn, id)?;
            owners.push(owner.as_ref().map(|p| p.id));
            if let Some(p) = owner {
                if !profiles.iter().any(|q| q.id == p.id) {
                    profiles.push(p);
                }
            }
        }
        Ok(Self {
            keys,
            owners,
            profiles,
        })
    }

    fn group(&self, i: usize) -> Group {
        self.owners[i].map_or(Group::New(i), Group::Profile)
    }

    /// The positions of the event's keys in `group`, strongest first.
    fn members(&self, group: Group) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&i| self.group(i) == group)
            .collect()
    }

    /// Where the group's strongest key stands on the event: the smaller,
    /// the stronger the group.
    fn strength(&self, group: Group) -> usize {
        (0..self.keys.len())
            .find(|&i| self.group(i) == group)
            .unwrap_or(usize::MAX)
    }

    fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// Does key `i` bring values of `kind`: its owner holds some, or it is
    /// a new one of that kind?
    fn brings_kind(&self, i: usize, kind: &IdentKind) -> bool {
        match self.owners[i] {
            Some(id) => self.profile(id).is_some_and(|p| !p.list(kind).is_empty()),
            None => self.keys[i].kind() == kind,
        }
    }

    /// The group `key` is in, if the union holds it.
    fn group_holding(&self, key: &IdentKey) -> Option<Group> {
        if let Some(p) = self.profiles.iter().find(|p| p.holds(key)) {
            return Some(Group::Profile(p.id));
        }
        (0..self.keys.len())
            .find(|&i| self.owners[i].is_none() && &self.keys[i] == key)
            .map(Group::New)
    }

    /// Of the groups whose keys bring a conflict, the one to drop: the
    /// group of the strongest bringer is kept (so an identifier the kept
    /// profile owns anyway is never dropped for it), and of the others the
    /// weakest (whose strongest key is weakest) goes, with every key of it
    /// on the event. Dropping only some of a profile's keys would leave the
    /// profile in, and refuse an identifier that then joins anyway.
    /// The profile a dropped group is kept apart from is its owner: a new
    /// key (owned by nobody) clashed with the group the event keeps, so no
    /// second person is involved.
    fn culprit(&self, bringers: &[usize]) -> Option<Group> {
        let anchor = self.group(*bringers.first()?);
        // Bringers are strongest first, so the group to appear last is
        // the weakest.
        let mut weakest = anchor;
        let mut seen = vec![anchor];
        for g in bringers.iter().map(|&i| self.group(i)) {
            if !seen.contains(&g) {
                seen.push(g);
                weakest = g;
            }
        }
        Some(weakest)
    }

    /// The identifier to drop and why, or `None` when the event can be
    /// applied. Checked in order: never-merge rules, then each kind's limit
    /// by priority, then the merge count.
    fn violation(&self, rules: &Rules<'_>) -> Option<Violation> {
        if let Some(v) = self.never_merge_violation(rules.never) {
            return Some(v);
        }
        for spec in rules.kinds.all() {
            if !self.over_limit(&spec.name, spec.limit as usize) {
                continue;
            }
            let bringers: Vec<usize> = (0..self.keys.len())
                .filter(|&i| self.brings_kind(i, &spec.name))
                .collect();
            let group = self.culprit(&bringers)?;
            if spec.limit == 1 {
                let reason = RefusalReason::Conflict(spec.name.clone());
                return Some(Violation::new(group, reason));
            }
            return Some(Violation {
                owner: None,
                ..Violation::new(group, RefusalReason::LimitExceeded)
            });
        }
        if self.too_many_merges() {
            let all: Vec<usize> = (0..self.keys.len()).collect();
            let group = self.culprit(&all)?;
            return Some(Violation {
                owner: None,
                ..Violation::new(group, RefusalReason::LimitExceeded)
            });
        }
        None
    }

    /// Would the union hold more values of `kind` than its limit, and more
    /// than the largest involved profile already holds? (A manual merge may
    /// leave a profile over a limit; events then still attach as long as
    /// they add nothing of that kind.)
    fn over_limit(&self, kind: &IdentKind, limit: usize) -> bool {
        let brings_new = self
            .keys
            .iter()
            .zip(&self.owners)
            .any(|(k, o)| o.is_none() && k.kind() == kind);
        // The common case (an event of one known profile adding nothing of
        // this kind) cannot grow the union past what the profile holds.
        if self.profiles.len() <= 1 && !brings_new {
            return false;
        }
        let mut union: BTreeSet<&str> = BTreeSet::new();
        let mut current = 0;
        for p in &self.profiles {
            let values = p.list(kind);
            current = current.max(values.len());
            union.extend(values.iter().map(String::as_str));
        }
        for (k, o) in self.keys.iter().zip(&self.owners) {
            if o.is_none() && k.kind() == kind {
                union.insert(k.value());
            }
        }
        union.len() > limit && union.len() > current
    }

    fn too_many_merges(&self) -> bool {
        let merges: u64 = self
            .profiles
            .iter()
            .map(|p| u64::from(p.merge_count))
            .sum::<u64>()
            + self.profiles.len().saturating_sub(1) as u64;
        self.profiles.len() >= 2 && merges > u64::from(MAX_MERGES)
    }

    /// A never-merge pair whose two sides the event would bring onto one
    /// profile from two groups; its weaker group is to be dropped. Of
    /// several such pairs, the one whose stronger group is strongest is
    /// settled first (then the one whose weaker group is weakest): a group
    /// must not be dropped for clashing with one that is dropped itself,
    /// whatever order the profiles store their identifiers in.
    fn never_merge_violation(&self, never: &NeverMerge) -> Option<Violation> {
        if never.is_empty() {
            return None;
        }
        let held = self.profiles.iter().flat_map(Profile::keys);
        let new = (0..self.keys.len())
            .filter(|&i| self.owners[i].is_none())
            .map(|i| self.keys[i].clone());
        // (kept group's strength, dropped group's strength, dropped group)
        let mut first: Option<(usize, usize, Group)> = None;
        for key in held.chain(new) {
            for partner in never.partners(&key) {
                let (Some(a), Some(b)) = (self.group_holding(&key), self.group_holding(partner))
                else {
                    continue;
                };
                if a == b {
                    continue;
                }
                let (sa, sb) = (self.strength(a), self.strength(b));
                let pair = if sa < sb { (sa, sb, b) } else { (sb, sa, a) };
                let settles_first = first.is_none_or(|(kept, dropped, _)| {
                    pair.0 < kept || (pair.0 == kept && pair.1 > dropped)
                });
                if settles_first {
                    first = Some(pair);
                }
            }
        }
        let (_, _, group) = first?;
        Some(Violation::new(group, RefusalReason::NeverMerge))
    }

    /// For each involved profile, the strongest event key it owned.
    fn links(&self) -> Vec<MergeLink> {
        let mut links: Vec<MergeLink> = Vec::new();
        for (key, owner) in self.keys.iter().zip(&self.owners) {
            if let Some(id) = owner {
                if !links.iter().any(|l| l.profile_id == *id) {
                    links.push(MergeLink {
                        profile_id: *id,
                        key: key.clone(),
                    });
                }
            }
        }
        links
    }
}

/// Resolves one event inside `txn`. Not idempotent by itself: the processor
/// resolves a new event once, in the transaction that also moves its cursor
/// past it; an event resolved before goes through [`resolve_again`].
pub fn resolve<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    blocklist: &Blocklist,
) -> Result<Outcome, T::Error> {
    let config = txn.config();
    resolve_by(txn, input, &config.rules(blocklist))
}

/// [`resolve`] by rules the caller gives rather than the store's current
/// ones (a split resolves with the never-merge pair it is adding).
pub fn resolve_by<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    rules: &Rules<'_>,
) -> Result<Outcome, T::Error> {
    resolve_with(txn, input, rules, None)
}

/// What an earlier resolution of the same event already did, so that
/// resolving it again (a replay of resolved events through a newer mapping)
/// applies only what is new.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Earlier {
    /// The profile the event joined then (it may have been absorbed since).
    pub profile_id: Option<ProfileId>,
    /// The refusals it got then ([`Refusal::message`]), already audited.
    pub refusals: Vec<String>,
}

/// Resolves an event that was resolved before, as if it arrived again, and
/// idempotently: identifiers attach and merge by the same rules, traits
/// apply newest-wins by event time (the event's own earlier values give way
/// to the current mapping's), but a profile it already counted is not
/// counted or linked again, and a refusal already audited is not audited
/// again. Resolving the same input twice changes nothing the second time.
pub fn resolve_again<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    blocklist: &Blocklist,
    earlier: &Earlier,
) -> Result<Outcome, T::Error> {
    let config = txn.config();
    resolve_with(txn, input, &config.rules(blocklist), Some(earlier))
}

fn resolve_with<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    rules: &Rules<'_>,
    earlier: Option<&Earlier>,
) -> Result<Outcome, T::Error> {
    let (ids, mut refusals) = normalise(&input.ids, rules.kinds, rules.blocklist);
    let keys = ids.keys(rules.kinds);
    txn.prefetch(&keys)?;
    let mut cands = Candidates::load(txn, keys)?;
    while let Some(v) = cands.violation(rules) {
        let gone = cands.members(v.group);
        let mut keys = cands.keys;
        // Weakest first, so removing keeps the other positions valid.
        for i in gone.into_iter().rev() {
            let dropped = keys.remove(i);
            let refusal = Refusal::new(dropped.kind().clone(), dropped.value(), v.reason.clone());
            refusals.push(refusal.owned_by(v.owner));
        }
        cands = Candidates::load(txn, keys)?;
    }
    let (profile_id, action) = if cands.keys.is_empty() {
        (None, Action::None)
    } else {
        let counted = match earlier.and_then(|e| e.profile_id) {
            Some(id) => canonical(txn, id)?.map(|p| p.id),
            None => None,
        };
        let (id, action) = apply(txn, input, rules, cands, earlier.map(|_| counted))?;
        (Some(id), action)
    };
    let outcome = Outcome {
        profile_id,
        action,
        warnings: refusals.iter().map(Refusal::warning).collect(),
        refusals,
    };
    let audited = earlier.is_some_and(|e| {
        outcome
            .refusals
            .iter()
            .all(|r| e.refusals.contains(&r.message()))
    });
    if !audited {
        audit_refusals(txn, input, &outcome)?;
    }
    Ok(outcome)
}

/// Creates, attaches or merges; returns the profile the event joined.
/// `again` is `Some` when the event was resolved before, holding the live
/// profile that counted it then (if any).
fn apply<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    rules: &Rules<'_>,
    cands: Candidates,
    again: Option<Option<ProfileId>>,
) -> Result<(ProfileId, Action), T::Error> {
    // Only a merge records which keys joined (most events attach).
    let links = if cands.profiles.len() >= 2 {
        cands.links()
    } else {
        Vec::new()
    };
    let mut profiles = cands.profiles;
    let (mut survivor, action) = match profiles.len() {
        0 => (txn.new_profile(input), Action::Create),
        1 => (profiles.remove(0), Action::Attach),
        _ => {
            let best = survivor_index(&profiles, rules);
            let survivor = profiles.remove(best);
            let absorbed = profiles.iter().map(|p| p.id).collect();
            (survivor, Action::Merge { absorbed })
        }
    };
    // The event was counted and linked where it went before: on the
    // survivor itself, or on a profile that is being absorbed into it.
    let counted = again.flatten().is_some_and(|id| {
        id == survivor.id
            || profiles
                .iter()
                .any(|p| p.id == id || p.merged_from.contains(&id))
    });
    for victim in profiles {
        absorb(txn, &mut survivor, victim)?;
    }
    let mut added = Vec::new();
    for key in &cands.keys {
        if survivor.add_key(key) {
            txn.ident_put(key, survivor.id)?;
            added.push(key.clone());
        }
    }
    for (name, value) in &input.traits {
        let candidate = TraitValue {
            value: value.clone(),
            at: input.at,
            event_id: input.event_id,
        };
        match survivor.traits.get(name) {
            // Resolved again: the event's own earlier value gives way to
            // what the current mapping makes of it (same time, same event).
            Some(current) if again.is_some() && current.event_id == input.event_id => {
                survivor.traits.insert(name.clone(), candidate);
            }
            _ => survivor.set_trait(name, candidate),
        }
    }
    if counted {
        survivor.first_seen = survivor.first_seen.min(input.at);
        survivor.last_seen = survivor.last_seen.max(input.at);
    } else {
        survivor.touch(input.at);
    }
    txn.profile_put(&survivor)?;
    if !counted {
        txn.link_event(&survivor, input.event_id)?;
    }
    audit_action(txn, input, survivor.id, &action, added, links)?;
    Ok((survivor.id, action))
}

/// Index of the profile that survives a merge.
fn survivor_index(profiles: &[Profile], rules: &Rules<'_>) -> usize {
    let mut best = 0;
    for (i, p) in profiles.iter().enumerate() {
        if p.survives_over(&profiles[best], rules.kinds) {
            best = i;
        }
    }
    best
}

/// Folds `victim` into `survivor`: identifiers, traits, counters, and
/// redirects (repointing every older redirect so chains never form). The
/// caller writes `survivor`.
pub(crate) fn absorb<T: IdentityTxn + ?Sized>(
    txn: &T,
    survivor: &mut Profile,
    victim: Profile,
) -> Result<(), T::Error> {
    for key in victim.keys() {
        survivor.add_key(&key);
        txn.ident_put(&key, survivor.id)?;
    }
    txn.redirect_put(victim.id, survivor.id)?;
    for old in &victim.merged_from {
        txn.redirect_put(*old, survivor.id)?;
    }
    for id in std::iter::once(victim.id).chain(victim.merged_from.iter().copied()) {
        if !survivor.merged_from.contains(&id) {
            survivor.merged_from.push(id);
        }
    }
    for (name, value) in victim.traits {
        survivor.set_trait(&name, value);
    }
    survivor.first_seen = survivor.first_seen.min(victim.first_seen);
    survivor.last_seen = survivor.last_seen.max(victim.last_seen);
    survivor.event_count = survivor.event_count.saturating_add(victim.event_count);
    survivor.merge_count = survivor
        .merge_count
        .saturating_add(victim.merge_count)
        .saturating_add(1);
    txn.profile_remove(victim.id)
}

fn audit_action<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    profile: ProfileId,
    action: &Action,
    added: Vec<IdentKey>,
    links: Vec<MergeLink>,
) -> Result<(), T::Error> {
    let source_id = input.source_id;
    let change = match action {
        Action::Create => AuditChange::Create(Created {
            identifiers: added,
            source_id,
        }),
        Action::Merge { absorbed } => AuditChange::Merge(Merged {
            absorbed: absorbed.clone(),
            added,
            source_id,
            links,
        }),
        // An attach that adds nothing is the common case: not worth a line.
        Action::Attach if added.is_empty() => return Ok(()),
        Action::Attach | Action::None => AuditChange::Attach(Attached { added, source_id }),
    };
    txn.audit_put(&AuditEntry::new(profile, Some(input.event_id), change))
}

/// One `refusal` audit line per event that had refusals, under the profile
/// the event joined (or the nil id when it joined none), and the same line
/// under each other profile a conflict kept the event out of, in the same
/// transaction: the refusal that split two profiles shows on both.
fn audit_refusals<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    outcome: &Outcome,
) -> Result<(), T::Error> {
    if outcome.refusals.is_empty() {
        return Ok(());
    }
    let profile = outcome.profile_id.unwrap_or(ProfileId(Uuid::nil()));
    let change = AuditChange::Refusal(Refused {
        refusals: outcome.refusals.clone(),
        source_id: input.source_id,
        joined: outcome.profile_id,
    });
    let mut filed = vec![profile];
    for owner in outcome.refusals.iter().filter_map(|r| r.owner) {
        if !filed.contains(&owner) {
            filed.push(owner);
        }
    }
    for under in filed {
        let entry = AuditEntry::new(under, Some(input.event_id), change.clone());
        txn.audit_put(&entry)?;
    }
    Ok(())
}

#[cfg(test)]
mod again_tests {
    use super::super::rule_tests::{ids, input};
    use super::super::MemoryTxn;
    use super::*;
    use serde_json::json;

    fn earlier_of(outcome: &Outcome) -> Earlier {
        Earlier {
            profile_id: outcome.profile_id,
            refusals: outcome.refusals.iter().map(Refusal::message).collect(),
        }
    }

    #[test]
    fn resolving_an_event_again_adds_its_new_trait_once_and_counts_nothing_twice() {
        let mem = MemoryTxn::new();
        let blocklist = Blocklist::default();
        let mut first = input(ids(None, Some("not-an-email"), Some("v-1")));
        let Ok(arrived) = resolve(&mem, &first, &blocklist);
        let audit_after_arrival = mem.audit().len();
        first.traits.insert("city".into(), json!("Paris"));
        let earlier = earlier_of(&arrived);

        let Ok(again) = resolve_again(&mem, &first, &blocklist, &earlier);
        let Ok(twice) = resolve_again(&mem, &first, &blocklist, &earlier_of(&again));

        assert_eq!(again.profile_id, arrived.profile_id);
        assert_eq!(twice, again);
        let profiles = mem.profiles();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].event_count, 1);
        assert_eq!(profiles[0].traits["city"].value, json!("Paris"));
        assert_eq!(mem.events_of(profiles[0].id).len(), 1);
        assert_eq!(
            mem.audit().len(),
            audit_after_arrival,
            "no second refusal line"
        );
    }

    #[test]
    fn an_older_event_resolved_again_does_not_overwrite_a_newer_trait() {
        let mem = MemoryTxn::new();
        let blocklist = Blocklist::default();
        let mut newer = input(ids(None, Some("ann@example.org"), None));
        newer.traits.insert("city".into(), json!("Paris"));
        let Ok(_) = resolve(&mem, &newer, &blocklist);
        let mut older = input(ids(None, Some("ann@example.org"), None));
        older.at = newer.at - chrono::Duration::days(1);
        let Ok(arrived) = resolve(&mem, &older, &blocklist);
        older.traits.insert("city".into(), json!("Lyon"));

        let Ok(_) = resolve_again(&mem, &older, &blocklist, &earlier_of(&arrived));

        let profiles = mem.profiles();
        assert_eq!(profiles[0].traits["city"].value, json!("Paris"));
        assert_eq!(profiles[0].event_count, 2);
    }
}
