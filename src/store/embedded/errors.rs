//! The error log: refusals, failures and warnings, newest first.

use super::{decode, encode, Store, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::model::{ErrorEntry, Level, Stage};

/// What to list from the error log.
#[derive(Clone, Debug, Default)]
pub struct ErrorFilter {
    pub source_id: Option<SourceId>,
    pub stage: Option<Stage>,
    /// Errors only, or warnings only.
    pub level: Option<Level>,
    /// One code (`invalid_json`, `no_identifier`, ...).
    pub code: Option<String>,
    pub limit: usize,
    /// Entries older than this id (a cursor from the previous page).
    pub before: Option<crate::domain::ids::ErrorId>,
}

impl ErrorFilter {
    /// Whether `entry` passes every filter set (`before` and `limit` are
    /// where a scan starts and stops, not filters).
    pub fn matches(&self, entry: &ErrorEntry) -> bool {
        self.source_id.is_none_or(|s| entry.source_id == Some(s))
            && self.stage.is_none_or(|s| entry.stage == s)
            && self.level.is_none_or(|l| entry.level == l)
            && self.code.as_ref().is_none_or(|c| entry.code == *c)
    }
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
            if filter.matches(&entry) {
                out.push(entry);
                if out.len() >= filter.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Hands `visit` every entry passing `filter`, newest first, reading at
    /// most `max_read` entries (from `filter.before`). Returns how many were
    /// read and whether older ones were left unread.
    pub(super) fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        let upper = filter.before.map(|id| id.to_bytes());
        let range = match &upper {
            Some(b) => self.trees.errors.range(..b.as_slice()),
            None => self.trees.errors.range::<&[u8], _>(..),
        };
        let mut read = 0;
        for item in range.rev() {
            if read == max_read {
                return Ok((read, true));
            }
            let (_, bytes) = item?;
            read += 1;
            let entry: ErrorEntry = decode("errors", &bytes)?;
            if filter.matches(&entry) {
                visit(&entry);
            }
        }
        Ok((read, false))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Level;

    fn logged(store: &Store, n: usize, level: Level) {
        let source = Some(SourceId::new());
        for i in 0..n {
            let code = if i % 2 == 0 {
                "invalid_json"
            } else {
                "empty_body"
            };
            let entry = ErrorEntry::new(source, Stage::Decode, level, code, "a message");
            store.log_error(&entry).expect("log");
        }
    }

    #[test]
    fn a_scan_reads_at_most_its_cap_and_says_when_it_stopped_short() {
        let store = Store::temporary().expect("store");
        logged(&store, 10, Level::Error);
        logged(&store, 3, Level::Warning);
        let warnings = ErrorFilter {
            level: Some(Level::Warning),
            ..ErrorFilter::default()
        };
        let mut seen = 0;
        let (read, more) = store
            .scan_errors(&warnings, 100, &mut |e| {
                assert_eq!(e.level, Level::Warning);
                seen += 1;
            })
            .expect("scan");
        assert_eq!((read, more, seen), (13, false, 3));
        let mut seen = 0;
        let (read, more) = store
            .scan_errors(&ErrorFilter::default(), 5, &mut |_| seen += 1)
            .expect("scan");
        assert_eq!((read, more, seen), (5, true, 5));
        let codes = ErrorFilter {
            code: Some("empty_body".into()),
            limit: 100,
            ..ErrorFilter::default()
        };
        assert_eq!(store.errors_page(&codes).expect("page").len(), 6);
    }

    /// The cost of one grouping at its cap, for docs/notes/intake.md:
    /// `cargo test --release --lib scan_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scan_cost_at_the_group_cap() {
        let store = Store::temporary().expect("store");
        logged(&store, 20_000, Level::Error);
        let start = std::time::Instant::now();
        let mut codes = std::collections::HashMap::<String, u64>::new();
        let (read, _) = store
            .scan_errors(&ErrorFilter::default(), 20_000, &mut |e| {
                *codes.entry(e.code.clone()).or_default() += 1;
            })
            .expect("scan");
        println!(
            "read {read} entries into {} groups in {:?}",
            codes.len(),
            start.elapsed()
        );
    }
}
