//! The identity resolver: normalises identifiers and joins events to profiles.
//!
//! The rules are pure functions over [`IdentityTxn`], a small key-value view
//! of the identity trees. The store implements it over sled transactional
//! trees (one atomic transaction per event); [`MemoryTxn`] implements it in
//! memory for property tests; [`Overlay`] buffers writes over any view so a
//! preview can run the real rules against live data without writing.
//! See `docs/identity.md` for the rules themselves.

mod admin;
mod graph;
mod kinds;
mod memory;
mod never;
mod normalise;
mod resolve;
mod split;
mod types;

pub use admin::{erase, manual_merge};
pub use graph::{
    build as build_graph, EventRef, GraphEdge, GraphNode, GraphRefusal, IdentifierOrigin, JoinedBy,
    MergeCause, ProfileGraph,
};
pub use kinds::{
    IdentKind, KindChange, KindError, KindName, KindSet, KindSpec, Normalise, MAX_KINDS,
};
pub use memory::{MemoryTxn, Overlay};
pub use never::{NeverMerge, NeverMergeRule};
pub use normalise::{
    lowercase_email, normalise, normalise_one, trim, Blocklist, MAX_IDENTIFIER_CHARS,
};
pub use resolve::{canonical, lookup, resolve, resolve_again, resolve_by, Earlier};
pub use split::{
    never_merge_rules, new_refusals, resettle, resolve_input, split, splittable_merge, SplitEvent,
    SplitOutcome, SplitRefusal, SplitRequest, MAX_SPLIT_EVENTS,
};
pub use types::*;

use std::sync::LazyLock;

/// What the rules read besides the identity trees: the kinds (priorities,
/// limits, normalisation), the never-merge pairs, and the source's
/// placeholders. Borrowed: the store holds the current kinds and rules,
/// the pipeline each source's blocklist.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub kinds: &'a KindSet,
    pub never: &'a NeverMerge,
    pub blocklist: &'a Blocklist,
}

/// The identity rules' own state, kept with the identity data: the kinds
/// and the never-merge pairs. The store holds the current one and hands it
/// to every transaction; a split resolves with its new pairs added.
#[derive(Clone, Debug, Default)]
pub struct IdentityConfig {
    pub kinds: KindSet,
    pub never: NeverMerge,
}

impl IdentityConfig {
    /// These rules with a source's blocklist.
    pub fn rules<'a>(&'a self, blocklist: &'a Blocklist) -> Rules<'a> {
        Rules {
            kinds: &self.kinds,
            never: &self.never,
            blocklist,
        }
    }
}

static BUILTIN_KINDS: LazyLock<KindSet> = LazyLock::new(KindSet::default);
static NO_NEVER_MERGE: LazyLock<NeverMerge> = LazyLock::new(NeverMerge::default);

impl<'a> Rules<'a> {
    /// The built-in kinds and no never-merge pairs: what a data dir without
    /// a team's kinds resolves by.
    pub fn builtin(blocklist: &'a Blocklist) -> Self {
        Self {
            kinds: &BUILTIN_KINDS,
            never: &NO_NEVER_MERGE,
            blocklist,
        }
    }
}

#[cfg(test)]
pub(crate) mod rule_tests;

use crate::domain::ids::{EventId, ProfileId};

/// The storage operations the resolver needs, all point reads and writes so
/// they fit in a sled transaction (which cannot scan).
pub trait IdentityTxn {
    type Error;
    /// The profile id an identifier was last written with (may be absorbed).
    fn ident_get(&self, key: &IdentKey) -> Result<Option<ProfileId>, Self::Error>;
    fn ident_put(&self, key: &IdentKey, profile: ProfileId) -> Result<(), Self::Error>;
    fn ident_remove(&self, key: &IdentKey) -> Result<(), Self::Error>;
    /// A live profile; `None` for absorbed or erased ids.
    fn profile_get(&self, id: ProfileId) -> Result<Option<Profile>, Self::Error>;
    fn profile_put(&self, profile: &Profile) -> Result<(), Self::Error>;
    fn profile_remove(&self, id: ProfileId) -> Result<(), Self::Error>;
    /// The survivor an absorbed profile id points to.
    fn redirect_get(&self, from: ProfileId) -> Result<Option<ProfileId>, Self::Error>;
    fn redirect_put(&self, from: ProfileId, to: ProfileId) -> Result<(), Self::Error>;
    fn redirect_remove(&self, from: ProfileId) -> Result<(), Self::Error>;
    fn audit_put(&self, entry: &AuditEntry) -> Result<(), Self::Error>;
    /// Records that `event` belongs to `profile`.
    fn link_event(&self, profile: &Profile, event: EventId) -> Result<(), Self::Error>;
    /// The kinds and never-merge pairs this transaction resolves by (the
    /// store's current ones, read once when the transaction began).
    fn config(&self) -> &IdentityConfig;

    /// Called once at the start of each resolution with the identifiers it
    /// will read. The hook where a network backend loads them (and their
    /// profiles) in one round trip, so the point reads that follow are
    /// served from memory; the embedded store and the in-memory views read
    /// locally and need nothing here. Must not change what the reads return.
    fn prefetch(&self, _keys: &[IdentKey]) -> Result<(), Self::Error> {
        Ok(())
    }

    /// The empty profile an event that joins none creates. A fresh id by
    /// default; a split's replay gives an event back the id it created
    /// originally, so the profile it undid comes back under its own id.
    fn new_profile(&self, input: &ResolveInput) -> Profile {
        Profile::new(ProfileId::new(), input.at)
    }
}
