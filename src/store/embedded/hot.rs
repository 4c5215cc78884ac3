//! Hot identities: profiles and identifier owners the processor read or
//! wrote recently, kept decoded in memory.
//!
//! Why: reading an event's identifiers and its profile from sled and
//! decoding the profile's JSON was a fifth of the processor's commit
//! (measured, docs/performance.md). Traffic repeats people, so most events
//! find their profile here.
//!
//! Why it cannot go stale: only whoever holds `writer` writes the identity
//! trees — the processor's batch commit, which updates this cache with what
//! it wrote once the commit succeeded, and support actions (merge, erasure,
//! `Store::resolve`), which clear it. A batch reads the cache only while
//! holding `writer`.

use crate::domain::identity::Profile;
use crate::domain::ids::ProfileId;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// A profile as its record holds it: the profile, and the ids of the events
/// linked to it since its last full link chunk (see `store::identity`).
pub(crate) type Record = (Profile, Vec<u8>);

/// More profiles than this and the cache starts over (bounded memory:
/// about a kilobyte each, half of it the open link chunk).
const MAX_PROFILES: usize = 20_000;

#[derive(Default)]
pub(crate) struct HotIdentities {
    /// Held while writing the identity trees.
    writer: Mutex<()>,
    inner: Mutex<Hot>,
}

#[derive(Default)]
struct Hot {
    /// Identifier key bytes → owning profile id.
    ident: HashMap<Vec<u8>, ProfileId>,
    profiles: HashMap<ProfileId, Record>,
}

/// What one transaction run read from sled and wrote, to fold into the
/// cache after it commits. `None` values are removals.
#[derive(Default)]
pub(crate) struct Staged {
    pub ident: HashMap<Vec<u8>, Option<ProfileId>>,
    pub profiles: HashMap<ProfileId, Option<Record>>,
    pub read_ident: HashMap<Vec<u8>, ProfileId>,
    pub read_profiles: HashMap<ProfileId, Record>,
}

impl HotIdentities {
    /// Takes the identity writer lock (see the module comment).
    pub fn lock_writer(&self) -> super::StoreResult<MutexGuard<'_, ()>> {
        self.writer
            .lock()
            .map_err(|_| super::StoreError::Poisoned("identity writer"))
    }

    fn inner(&self) -> Option<MutexGuard<'_, Hot>> {
        self.inner.lock().ok()
    }

    pub fn owner(&self, key: &[u8]) -> Option<ProfileId> {
        self.inner()?.ident.get(key).copied()
    }

    pub fn profile(&self, id: ProfileId) -> Option<Record> {
        self.inner()?.profiles.get(&id).cloned()
    }

    /// Folds a committed transaction's reads and writes in.
    pub fn absorb(&self, staged: Staged) {
        let Some(mut hot) = self.inner() else {
            return;
        };
        if hot.profiles.len() > MAX_PROFILES {
            *hot = Hot::default();
        }
        hot.ident.extend(staged.read_ident);
        hot.profiles.extend(staged.read_profiles);
        for (key, owner) in staged.ident {
            match owner {
                Some(id) => hot.ident.insert(key, id),
                None => hot.ident.remove(&key),
            };
        }
        for (id, profile) in staged.profiles {
            match profile {
                Some(p) => hot.profiles.insert(id, p),
                None => hot.profiles.remove(&id),
            };
        }
    }

    /// Forgets everything (after a write that bypassed the cache).
    pub fn clear(&self) {
        if let Some(mut hot) = self.inner() {
            *hot = Hot::default();
        }
    }
}
