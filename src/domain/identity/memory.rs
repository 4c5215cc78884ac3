//! In-memory views: [`MemoryTxn`] (a whole identity store in maps, for tests)
//! and [`Overlay`] (buffered writes over another view, for previews).

use super::types::{AuditEntry, IdentKey, Profile};
use super::{IdentityConfig, IdentityTxn};
use crate::domain::ids::{EventId, ProfileId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

/// The identity trees as in-memory maps. Single-threaded (`RefCell`): each
/// call is trivially atomic, which is what the property tests need.
#[derive(Debug, Default)]
pub struct MemoryTxn {
    ident: RefCell<BTreeMap<IdentKey, ProfileId>>,
    profiles: RefCell<BTreeMap<ProfileId, Profile>>,
    redirects: RefCell<BTreeMap<ProfileId, ProfileId>>,
    audit: RefCell<Vec<AuditEntry>>,
    links: RefCell<BTreeSet<(ProfileId, EventId)>>,
    config: IdentityConfig,
}

impl MemoryTxn {
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store resolving by `config` (a team's kinds, never-merge
    /// pairs).
    pub fn with_config(config: IdentityConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Every live profile.
    pub fn profiles(&self) -> Vec<Profile> {
        self.profiles.borrow().values().cloned().collect()
    }

    /// Every audit entry, in write order.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.audit.borrow().clone()
    }

    /// Events linked directly to `profile` (not through merged ids).
    pub fn events_of(&self, profile: ProfileId) -> Vec<EventId> {
        let links = self.links.borrow();
        links
            .iter()
            .filter(|(p, _)| *p == profile)
            .map(|(_, e)| *e)
            .collect()
    }
}

impl IdentityTxn for MemoryTxn {
    type Error = Infallible;

    fn ident_get(&self, key: &IdentKey) -> Result<Option<ProfileId>, Infallible> {
        Ok(self.ident.borrow().get(key).copied())
    }
    fn ident_put(&self, key: &IdentKey, profile: ProfileId) -> Result<(), Infallible> {
        self.ident.borrow_mut().insert(key.clone(), profile);
        Ok(())
    }
    fn ident_remove(&self, key: &IdentKey) -> Result<(), Infallible> {
        self.ident.borrow_mut().remove(key);
        Ok(())
    }
    fn profile_get(&self, id: ProfileId) -> Result<Option<Profile>, Infallible> {
        Ok(self.profiles.borrow().get(&id).cloned())
    }
    fn profile_put(&self, profile: &Profile) -> Result<(), Infallible> {
        self.profiles
            .borrow_mut()
            .insert(profile.id, profile.clone());
        Ok(())
    }
    fn profile_remove(&self, id: ProfileId) -> Result<(), Infallible> {
        self.profiles.borrow_mut().remove(&id);
        Ok(())
    }
    fn redirect_get(&self, from: ProfileId) -> Result<Option<ProfileId>, Infallible> {
        Ok(self.redirects.borrow().get(&from).copied())
    }
    fn redirect_put(&self, from: ProfileId, to: ProfileId) -> Result<(), Infallible> {
        self.redirects.borrow_mut().insert(from, to);
        Ok(())
    }
    fn redirect_remove(&self, from: ProfileId) -> Result<(), Infallible> {
        self.redirects.borrow_mut().remove(&from);
        Ok(())
    }
    fn audit_put(&self, entry: &AuditEntry) -> Result<(), Infallible> {
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }
    fn link_event(&self, profile: &Profile, event: EventId) -> Result<(), Infallible> {
        self.links.borrow_mut().insert((profile.id, event));
        Ok(())
    }
    fn config(&self) -> &IdentityConfig {
        &self.config
    }
}

/// Reads through to `base`, keeps writes in memory. Running `resolve` on an
/// overlay answers "what would happen" and leaves `base` untouched. A removal
/// is buffered as `None` so later reads do not see the base value.
pub struct Overlay<'a, T: ?Sized> {
    base: &'a T,
    ident: RefCell<BTreeMap<IdentKey, Option<ProfileId>>>,
    profiles: RefCell<BTreeMap<ProfileId, Option<Profile>>>,
    redirects: RefCell<BTreeMap<ProfileId, Option<ProfileId>>>,
    audit: RefCell<Vec<AuditEntry>>,
}

impl<'a, T: ?Sized> Overlay<'a, T> {
    pub fn new(base: &'a T) -> Self {
        Self {
            base,
            ident: RefCell::default(),
            profiles: RefCell::default(),
            redirects: RefCell::default(),
            audit: RefCell::default(),
        }
    }

    /// The audit lines the buffered writes would have added.
    pub fn audit(&self) -> Vec<AuditEntry> {
        self.audit.borrow().clone()
    }
}

impl<T: IdentityTxn + ?Sized> IdentityTxn for Overlay<'_, T> {
    type Error = T::Error;

    fn ident_get(&self, key: &IdentKey) -> Result<Option<ProfileId>, T::Error> {
        match self.ident.borrow().get(key) {
            Some(v) => Ok(*v),
            None => self.base.ident_get(key),
        }
    }
    fn ident_put(&self, key: &IdentKey, profile: ProfileId) -> Result<(), T::Error> {
        self.ident.borrow_mut().insert(key.clone(), Some(profile));
        Ok(())
    }
    fn ident_remove(&self, key: &IdentKey) -> Result<(), T::Error> {
        self.ident.borrow_mut().insert(key.clone(), None);
        Ok(())
    }
    fn profile_get(&self, id: ProfileId) -> Result<Option<Profile>, T::Error> {
        match self.profiles.borrow().get(&id) {
            Some(v) => Ok(v.clone()),
            None => self.base.profile_get(id),
        }
    }
    fn profile_put(&self, profile: &Profile) -> Result<(), T::Error> {
        self.profiles
            .borrow_mut()
            .insert(profile.id, Some(profile.clone()));
        Ok(())
    }
    fn profile_remove(&self, id: ProfileId) -> Result<(), T::Error> {
        self.profiles.borrow_mut().insert(id, None);
        Ok(())
    }
    fn redirect_get(&self, from: ProfileId) -> Result<Option<ProfileId>, T::Error> {
        match self.redirects.borrow().get(&from) {
            Some(v) => Ok(*v),
            None => self.base.redirect_get(from),
        }
    }
    fn redirect_put(&self, from: ProfileId, to: ProfileId) -> Result<(), T::Error> {
        self.redirects.borrow_mut().insert(from, Some(to));
        Ok(())
    }
    fn redirect_remove(&self, from: ProfileId) -> Result<(), T::Error> {
        self.redirects.borrow_mut().insert(from, None);
        Ok(())
    }
    fn audit_put(&self, entry: &AuditEntry) -> Result<(), T::Error> {
        self.audit.borrow_mut().push(entry.clone());
        Ok(())
    }
    fn link_event(&self, _profile: &Profile, _event: EventId) -> Result<(), T::Error> {
        Ok(())
    }
    fn config(&self) -> &IdentityConfig {
        self.base.config()
    }
}
