//! Resolution of one event: look up, check limits, create / attach / merge.

use super::normalise::{normalise, Blocklist};
use super::types::*;
use super::IdentityTxn;
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

    fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// True when the key's owner already has an external id, or the key is a
    /// new external id: such keys bring an external id into the result.
    fn brings_external(&self, i: usize) -> bool {
        match self.owners[i] {
            Some(id) => self.profile(id).is_some_and(|p| !p.external_ids.is_empty()),
            None => self.keys[i].kind() == IdentKind::ExternalId,
        }
    }

    /// The profile a conflicting key would have joined the event to: the
    /// key's owner, or for a new external id the profile that already has
    /// one. `None` for other reasons (a limit is not a second person).
    fn conflict_owner(&self, i: usize, reason: RefusalReason) -> Option<ProfileId> {
        if reason != RefusalReason::ExternalIdConflict {
            return None;
        }
        self.owners[i].or_else(|| {
            self.profiles
                .iter()
                .find(|p| !p.external_ids.is_empty())
                .map(|p| p.id)
        })
    }

    /// The identifier to drop and why, or `None` when the event can be applied.
    fn violation(&self) -> Option<(usize, RefusalReason)> {
        let new_external = (0..self.keys.len())
            .any(|i| self.owners[i].is_none() && self.keys[i].kind() == IdentKind::ExternalId);
        let groups = self
            .profiles
            .iter()
            .filter(|p| !p.external_ids.is_empty())
            .count()
            + usize::from(new_external);
        if groups >= 2 {
            let culprit = (0..self.keys.len())
                .rev()
                .find(|&i| self.brings_external(i));
            return culprit.map(|i| (i, RefusalReason::ExternalIdConflict));
        }
        if self.breaks_limits() {
            return Some((
                self.keys.len().saturating_sub(1),
                RefusalReason::LimitExceeded,
            ));
        }
        None
    }

    /// Would the union break a per-profile limit it does not already break?
    /// (A manual merge may leave a profile over a limit; events then still
    /// attach as long as they add nothing of that kind.)
    fn breaks_limits(&self) -> bool {
        let over = |kind: IdentKind, limit: usize| {
            let mut union: BTreeSet<&str> = BTreeSet::new();
            for p in &self.profiles {
                union.extend(p.list(kind).iter().map(String::as_str));
            }
            for (k, o) in self.keys.iter().zip(&self.owners) {
                if o.is_none() && k.kind() == kind {
                    union.insert(k.value());
                }
            }
            let current = self
                .profiles
                .iter()
                .map(|p| p.list(kind).len())
                .max()
                .unwrap_or(0);
            union.len() > limit && union.len() > current
        };
        let merges: u64 = self
            .profiles
            .iter()
            .map(|p| u64::from(p.merge_count))
            .sum::<u64>()
            + self.profiles.len().saturating_sub(1) as u64;
        over(IdentKind::ExternalId, MAX_EXTERNAL_IDS)
            || over(IdentKind::Email, MAX_EMAILS)
            || over(IdentKind::VisitorId, MAX_VISITOR_IDS)
            || (self.profiles.len() >= 2 && merges > u64::from(MAX_MERGES))
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
    resolve_with(txn, input, blocklist, None)
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
    resolve_with(txn, input, blocklist, Some(earlier))
}

fn resolve_with<T: IdentityTxn + ?Sized>(
    txn: &T,
    input: &ResolveInput,
    blocklist: &Blocklist,
    earlier: Option<&Earlier>,
) -> Result<Outcome, T::Error> {
    let (ids, mut refusals) = normalise(&input.ids, blocklist);
    let keys = ids.keys();
    txn.prefetch(&keys)?;
    let mut cands = Candidates::load(txn, keys)?;
    while let Some((i, reason)) = cands.violation() {
        let owner = cands.conflict_owner(i, reason);
        let mut keys = cands.keys;
        let dropped = keys.remove(i);
        refusals.push(Refusal::new(dropped.kind(), dropped.value(), reason).owned_by(owner));
        cands = Candidates::load(txn, keys)?;
    }
    let (profile_id, action) = if cands.keys.is_empty() {
        (None, Action::None)
    } else {
        let counted = match earlier.and_then(|e| e.profile_id) {
            Some(id) => canonical(txn, id)?.map(|p| p.id),
            None => None,
        };
        let (id, action) = apply(txn, input, cands, earlier.map(|_| counted))?;
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
    cands: Candidates,
    again: Option<Option<ProfileId>>,
) -> Result<(ProfileId, Action), T::Error> {
    let mut profiles = cands.profiles;
    let (mut survivor, action) = match profiles.len() {
        0 => (Profile::new(ProfileId::new(), input.at), Action::Create),
        1 => (profiles.remove(0), Action::Attach),
        _ => {
            let best = survivor_index(&profiles);
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
    audit_action(txn, input, survivor.id, &action, &added)?;
    Ok((survivor.id, action))
}

/// Index of the profile that survives a merge.
fn survivor_index(profiles: &[Profile]) -> usize {
    let mut best = 0;
    for (i, p) in profiles.iter().enumerate() {
        if p.survives_over(&profiles[best]) {
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
    added: &[IdentKey],
) -> Result<(), T::Error> {
    let source_id = input.source_id;
    let added = added.to_vec();
    let change = match action {
        Action::Create => AuditChange::Create(Created {
            identifiers: added,
            source_id,
        }),
        Action::Merge { absorbed } => AuditChange::Merge(Merged {
            absorbed: absorbed.clone(),
            added,
            source_id,
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
