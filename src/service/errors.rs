//! The error log: what went wrong where, newest first, and the same
//! entries grouped by source and code, so a thousand `invalid_json`
//! refusals from one sender read as one line with a count.

use super::{ServiceResult, Services};
use crate::domain::ids::{ErrorId, EventId, SourceId};
use crate::domain::model::{ErrorEntry, Level, Stage};
use crate::store::StateStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// The error log's filter (a store type today; re-exported so HTTP names
/// it through the service it goes to).
pub use crate::store::ErrorFilter;

/// Entries one grouping reads at most, newest first: the newest 20,000,
/// a fifth of the default retention (`--error-retention`, 100,000), the
/// same bound as a filtered page of the list. Past it the answer says
/// `complete: false`.
pub const GROUP_READ_CAP: usize = 20_000;

/// Groups one answer lists at most, most recently seen first; the rest are
/// counted in `omitted`. Sources × codes stays far below it in practice.
pub const MAX_GROUPS: usize = 500;

/// A page of the error log: the API's `{"errors", "next"}`.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorPage {
    pub errors: Vec<ErrorEntry>,
    /// `before=` of the next (older) page, after a full page.
    pub next: Option<ErrorId>,
}

/// `{"groups", "read", "complete", "omitted"}`: the entries read, grouped.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorGroups {
    pub groups: Vec<ErrorGroup>,
    /// Entries read (at most [`GROUP_READ_CAP`]), matching or not.
    pub read: usize,
    /// Whether every retained entry was read; `false` means older ones
    /// exist that the counts leave out.
    pub complete: bool,
    /// Groups past [`MAX_GROUPS`], left out.
    pub omitted: usize,
}

/// Repeated entries of one source and code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorGroup {
    pub source_id: Option<SourceId>,
    pub code: String,
    /// The stage and level of the latest entry (a code keeps both in practice).
    pub stage: Stage,
    pub level: Level,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The latest entry's message and event.
    pub message: String,
    pub event_id: Option<EventId>,
}

/// The level named `error` or `warning` (as the API writes it).
pub fn level_named(name: &str) -> Option<Level> {
    match name {
        "error" => Some(Level::Error),
        "warning" => Some(Level::Warning),
        _ => None,
    }
}

impl ErrorGroup {
    fn of(entry: &ErrorEntry) -> Self {
        ErrorGroup {
            source_id: entry.source_id,
            code: entry.code.clone(),
            stage: entry.stage,
            level: entry.level,
            count: 1,
            first_seen: entry.at,
            last_seen: entry.at,
            message: entry.message.clone(),
            event_id: entry.event_id,
        }
    }

    /// Counts an older entry (the scan runs newest first, so the latest
    /// message stays and only `first_seen` moves back).
    fn add_older(&mut self, entry: &ErrorEntry) {
        self.count += 1;
        self.first_seen = self.first_seen.min(entry.at);
        self.last_seen = self.last_seen.max(entry.at);
    }
}

/// Groups entries by (source, code), fed newest first.
#[derive(Default)]
struct Grouper {
    groups: Vec<ErrorGroup>,
    index: HashMap<(Option<SourceId>, String), usize>,
}

impl Grouper {
    fn add(&mut self, entry: &ErrorEntry) {
        let key = (entry.source_id, entry.code.clone());
        match self.index.get(&key) {
            Some(&i) => self.groups[i].add_older(entry),
            None => {
                self.index.insert(key, self.groups.len());
                self.groups.push(ErrorGroup::of(entry));
            }
        }
    }

    /// Most recently seen first (the order groups were first met in).
    fn into_groups(self) -> (Vec<ErrorGroup>, usize) {
        let mut groups = self.groups;
        let omitted = groups.len().saturating_sub(MAX_GROUPS);
        groups.truncate(MAX_GROUPS);
        (groups, omitted)
    }
}

impl Services {
    pub async fn errors(&self, filter: ErrorFilter) -> ServiceResult<ErrorPage> {
        let errors = self.store.errors_page(&filter)?;
        let next = if errors.len() == filter.limit {
            errors.last().map(|e| e.id)
        } else {
            None
        };
        Ok(ErrorPage { errors, next })
    }

    /// The newest [`GROUP_READ_CAP`] entries passing `filter` (its `limit`
    /// is not used), grouped by source and code, most recently seen first.
    /// On the blocking pool: reading 20,000 entries took 0.6 s in a debug
    /// build (`store::embedded::errors` tests), too long for a request
    /// worker other requests share.
    pub async fn error_groups(&self, filter: ErrorFilter) -> ServiceResult<ErrorGroups> {
        let this = self.clone();
        super::mappings::off_async_threads(move || this.error_groups_now(&filter)).await
    }

    fn error_groups_now(&self, filter: &ErrorFilter) -> ServiceResult<ErrorGroups> {
        let mut grouper = Grouper::default();
        let (read, more) = self
            .store
            .scan_errors(filter, GROUP_READ_CAP, &mut |e| grouper.add(e))?;
        let (groups, omitted) = grouper.into_groups();
        Ok(ErrorGroups {
            groups,
            read,
            complete: !more,
            omitted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn entry(source: Option<SourceId>, code: &str, minutes_ago: i64) -> ErrorEntry {
        let mut e = ErrorEntry::new(source, Stage::Decode, Level::Error, code, code);
        e.at = Utc::now() - Duration::minutes(minutes_ago);
        e
    }

    #[test]
    fn repeated_codes_of_a_source_are_one_group_with_a_count_and_its_span() {
        let (a, b) = (Some(SourceId::new()), Some(SourceId::new()));
        let mut g = Grouper::default();
        for e in [
            entry(a, "invalid_json", 1),
            entry(b, "invalid_json", 2),
            entry(a, "invalid_json", 3),
            entry(a, "bad_api_key", 4),
            entry(a, "invalid_json", 9),
        ] {
            g.add(&e);
        }
        let (groups, omitted) = g.into_groups();
        assert_eq!(omitted, 0);
        let summary: Vec<(Option<SourceId>, &str, u64)> = groups
            .iter()
            .map(|g| (g.source_id, g.code.as_str(), g.count))
            .collect();
        assert_eq!(
            summary,
            vec![
                (a, "invalid_json", 3),
                (b, "invalid_json", 1),
                (a, "bad_api_key", 1)
            ]
        );
        let first = &groups[0];
        assert!(first.last_seen - first.first_seen > Duration::minutes(7));
    }
}
