//! A profile's history read a page at a time, newest first, with runs of
//! identical refusals folded into one line with a count.
//!
//! Folding happens here, at read time: sled transactions cannot range-scan,
//! so the resolver's commit cannot find "the last line of this profile" to
//! bump a count without a pointer key of its own in the `audit` tree, which
//! every scan of that tree (history, erasure's redaction) would then have to
//! skip. A page scans at most `HISTORY_SCAN` stored lines, so 100,000
//! identical refusals cost one bounded page, not a 46 MB answer.

use super::{decode, Store, StoreResult};
use crate::domain::identity::AuditEntry;
use crate::domain::ids::ProfileId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Stored lines one page reads at most.
pub const HISTORY_SCAN: usize = 10_000;

/// One line of a history page: the newest entry of a run of identical
/// lines (refusals with the same detail: reasons, identifiers, source),
/// how many there were and when the run started and ended.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryLine {
    #[serde(flatten)]
    pub entry: AuditEntry,
    pub count: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct HistoryPage {
    pub history: Vec<HistoryLine>,
    /// `before=` for the next (older) page; `None` at the start of history.
    pub next: Option<Uuid>,
}

impl HistoryLine {
    fn folds(&self, older: &AuditEntry) -> bool {
        self.entry.same_refusal(older)
    }
}

impl Store {
    /// Up to `limit` lines of the history of a profile and of every profile
    /// merged into it, newest first, older than `before`.
    pub(super) fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<Uuid>,
    ) -> StoreResult<HistoryPage> {
        let ids: Vec<ProfileId> = match self.profile(id)? {
            Some(p) => std::iter::once(p.id).chain(p.merged_from).collect(),
            None => vec![id],
        };
        let upper = before.map_or([0xff; 16], |b| *b.as_bytes());
        let mut runs: Vec<_> = ids
            .iter()
            .map(|pid| {
                let start = [pid.to_bytes(), [0; 16]].concat();
                let end = [pid.to_bytes(), upper].concat();
                self.trees.audit.range(start..end).rev().peekable()
            })
            .collect();
        let mut page = HistoryPage {
            history: Vec::new(),
            next: None,
        };
        let mut scanned = 0;
        loop {
            // The newest line among the profiles' runs.
            let newest = runs
                .iter_mut()
                .enumerate()
                .filter_map(|(i, r)| r.peek().map(|item| (i, item)))
                .filter_map(|(i, item)| {
                    // Keys are profile id ‖ audit id (time-ordered).
                    item.as_ref()
                        .ok()
                        .map(|(k, _)| (i, k.get(16..).map(<[u8]>::to_vec)))
                })
                .max_by(|a, b| a.1.cmp(&b.1));
            let next_item = match newest {
                Some((i, _)) => runs[i].next(),
                // No readable line left; an error line surfaces below.
                None => runs.iter_mut().find_map(|r| r.next()),
            };
            let Some(item) = next_item else {
                page.next = None;
                return Ok(page);
            };
            let (_, value) = item?;
            let entry: AuditEntry = decode("audit", &value)?;
            let folds = page.history.last().is_some_and(|l| l.folds(&entry));
            if (!folds && page.history.len() >= limit) || scanned >= HISTORY_SCAN {
                return Ok(page);
            }
            scanned += 1;
            page.next = Some(entry.id);
            match page.history.last_mut() {
                Some(line) if folds => {
                    line.count += 1;
                    line.first_seen = entry.at;
                }
                _ => page.history.push(HistoryLine {
                    first_seen: entry.at,
                    last_seen: entry.at,
                    count: 1,
                    entry,
                }),
            }
        }
    }
}
