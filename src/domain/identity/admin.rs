//! Support-staff operations: manual merge and erasure.

use super::resolve::{absorb, canonical};
use super::types::{AuditChange, AuditEntry, Erased, ManualMerged};
use super::{IdentityTxn, Profile};
use crate::domain::ids::ProfileId;

/// Merges `from` into `into` (either may be an absorbed id). The only way two
/// external ids end up in one profile: a person decided it, so no limit
/// applies (the profile may then hold several external ids or more emails
/// than events could add). The inner `Err` explains a refusal.
pub fn manual_merge<T: IdentityTxn + ?Sized>(
    txn: &T,
    from: ProfileId,
    into: ProfileId,
) -> Result<Result<Profile, String>, T::Error> {
    let Some(victim) = canonical(txn, from)? else {
        return Ok(Err(format!("profile {from} not found")));
    };
    let Some(mut survivor) = canonical(txn, into)? else {
        return Ok(Err(format!("profile {into} not found")));
    };
    if victim.id == survivor.id {
        return Ok(Err("both ids already name the same profile".into()));
    }
    let absorbed = victim.id;
    absorb(txn, &mut survivor, victim)?;
    txn.profile_put(&survivor)?;
    let change = AuditChange::ManualMerge(ManualMerged {
        from: absorbed,
        requested_from: from,
        requested_into: into,
    });
    txn.audit_put(&AuditEntry::new(survivor.id, None, change))?;
    Ok(Ok(survivor))
}

/// Deletes a profile (following redirects), its identifiers and the
/// redirects to it. Returns the ids whose events belonged to it (the profile
/// and every id merged into it) so the caller can find and scrub the events;
/// `None` when there is no such profile. The audit line counts, never names.
pub fn erase<T: IdentityTxn + ?Sized>(
    txn: &T,
    id: ProfileId,
) -> Result<Option<Vec<ProfileId>>, T::Error> {
    let Some(profile) = canonical(txn, id)? else {
        return Ok(None);
    };
    let mut ids = vec![profile.id];
    ids.extend(profile.merged_from.iter().copied());
    let keys = profile.keys();
    for key in &keys {
        // Only remove entries that are ours: never another profile's.
        if txn
            .ident_get(key)?
            .is_some_and(|owner| ids.contains(&owner))
        {
            txn.ident_remove(key)?;
        }
    }
    for old in &profile.merged_from {
        txn.redirect_remove(*old)?;
    }
    txn.profile_remove(profile.id)?;
    let change = AuditChange::Erasure(Erased {
        identifiers: keys.len(),
        merged_profiles: profile.merged_from.len(),
        events: profile.event_count,
    });
    txn.audit_put(&AuditEntry::new(profile.id, None, change))?;
    Ok(Some(ids))
}
