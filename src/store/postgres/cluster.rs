//! What nodes tell each other through PostgreSQL: a change another node
//! must see (its caches), carried by LISTEN/NOTIFY on one channel.

use super::db::Db;

/// A change that other nodes' caches must follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// A source (or its token) was written or removed: drop the token cache.
    Sources,
    /// Identifier kinds or never-merge rules changed: reload them.
    IdentityConfig,
    /// Events were committed to the log: wake the processor and live tails.
    Appended,
    /// The processor committed a batch: refresh counters, wake live tails.
    Processed,
}

/// The cluster side of the backend (stub: replaced by LISTEN/NOTIFY).
#[derive(Default)]
pub(super) struct Cluster {}

impl Cluster {
    pub(super) fn start(_db: &Db) -> Self {
        Self {}
    }

    /// Tells every node (this one included) about `change`.
    pub(super) fn announce(&self, _db: &Db, _change: Change) {}
}
