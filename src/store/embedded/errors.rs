//! The error log: refusals, failures and warnings, newest first.

use super::{decode, encode, Store, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::model::{ErrorEntry, Stage};

/// What to list from the error log.
#[derive(Clone, Debug, Default)]
pub struct ErrorFilter {
    pub source_id: Option<SourceId>,
    pub stage: Option<Stage>,
    pub limit: usize,
    /// Entries older than this id (a cursor from the previous page).
    pub before: Option<crate::domain::ids::ErrorId>,
}

/// How many entries a filtered scan reads at most, so a rare filter can
/// never turn one page into a full-table scan.
const SCAN_CAP: usize = 20_000;

impl Store {
    /// Appends an entry. Not flushed synchronously: the error log is
    /// diagnostic, and sled's periodic flush bounds what a crash can lose.
    pub(super) fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        self.trees
            .errors
            .insert(entry.id.to_bytes(), encode(entry))?;
        Ok(())
    }

    pub(super) fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        let upper = filter.before.map(|id| id.to_bytes());
        let range = match &upper {
            Some(b) => self.trees.errors.range(..b.as_slice()),
            None => self.trees.errors.range::<&[u8], _>(..),
        };
        let mut out = Vec::new();
        for item in range.rev().take(SCAN_CAP) {
            let (_, bytes) = item?;
            let entry: ErrorEntry = decode("errors", &bytes)?;
            let wanted = filter.source_id.is_none_or(|s| entry.source_id == Some(s))
                && filter.stage.is_none_or(|s| entry.stage == s);
            if wanted {
                out.push(entry);
                if out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Drops the oldest entries beyond `keep`. Returns how many were removed.
    pub(super) fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        prune_oldest(&self.trees.errors, keep)
    }
}

/// Removes the oldest keys of a time-ordered tree beyond `keep`. Counting is
/// a key scan, so callers run this from background maintenance only.
pub(crate) fn prune_oldest(tree: &sled::Tree, keep: u64) -> StoreResult<u64> {
    let len = tree.len() as u64;
    if len <= keep {
        return Ok(0);
    }
    let excess = len - keep;
    let mut removed = 0;
    for key in tree.iter().keys().take(excess as usize) {
        tree.remove(key?)?;
        removed += 1;
    }
    Ok(removed)
}
