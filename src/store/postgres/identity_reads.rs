//! Profile reads on PostgreSQL: a profile by id or identifier, its events,
//! its history (whole, or a page with identical refusals folded), the
//! profile list and its search. Each answers as the embedded store does.

use super::PgStore;
use crate::domain::identity::{self, AuditEntry, IdentKey, KindName, Profile};
use crate::domain::ids::{EventId, ProfileId};
use crate::store::{
    HistoryLine, HistoryPage, ProfilesPage, StoreError, StoreResult, HISTORY_SCAN,
    PROFILE_SEARCH_SCAN,
};
use uuid::Uuid;

/// Audit rows one query of a history page reads (a page reads on until it
/// is full or has scanned `HISTORY_SCAN` rows).
const HISTORY_CHUNK: i64 = 500;

fn corrupt(tree: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |source| StoreError::Corrupt { tree, source }
}

fn decode_profiles(docs: Vec<String>) -> StoreResult<Vec<Profile>> {
    docs.iter()
        .map(|d| serde_json::from_str(d).map_err(corrupt("profiles")))
        .collect()
}

fn decode_audit(rows: Vec<String>) -> StoreResult<Vec<AuditEntry>> {
    rows.iter()
        .map(|d| serde_json::from_str(d).map_err(corrupt("audit")))
        .collect()
}

impl PgStore {
    /// A profile by id; an absorbed id answers with its survivor.
    pub(in crate::store::postgres) fn profile(
        &self,
        id: ProfileId,
    ) -> StoreResult<Option<Profile>> {
        self.identity_read(|txn| identity::canonical(txn, id))
    }

    /// The profile owning an identifier (give the normalised value).
    pub(in crate::store::postgres) fn profile_by(
        &self,
        key: &IdentKey,
    ) -> StoreResult<Option<Profile>> {
        self.identity_read(|txn| identity::lookup(txn, key))
    }

    /// The ids whose links and audit lines are this profile's: its own and
    /// those merged into it; an erased or unknown id is just itself.
    fn profile_and_merged(&self, id: ProfileId) -> StoreResult<Vec<Uuid>> {
        Ok(match self.profile(id)? {
            Some(p) => std::iter::once(p.id)
                .chain(p.merged_from)
                .map(|p| p.0)
                .collect(),
            None => vec![id.0],
        })
    }

    /// A profile's events, newest first, including those of merged profiles;
    /// `before` pages (exclusive).
    pub(in crate::store::postgres) fn profile_events(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        if self.profile(id)?.is_none() {
            return Ok(Vec::new());
        }
        let ids = self.profile_and_merged(id)?;
        let db = &self.db;
        let events: Vec<Uuid> = db.block(
            sqlx::query_scalar(
                "SELECT DISTINCT event_id FROM profile_events
                 WHERE profile_id = ANY($1) AND ($2::uuid IS NULL OR event_id < $2)
                 ORDER BY event_id DESC LIMIT $3",
            )
            .bind(&ids)
            .bind(before.map(|b| b.0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&db.pool),
        )?;
        Ok(events.into_iter().map(EventId).collect())
    }

    /// The audit history of a profile and of every profile merged into it,
    /// oldest first. Works for an erased id too (its erasure line remains).
    pub(in crate::store::postgres) fn profile_history(
        &self,
        id: ProfileId,
    ) -> StoreResult<Vec<AuditEntry>> {
        let ids = self.profile_and_merged(id)?;
        let db = &self.db;
        let rows: Vec<String> = db.block(
            sqlx::query_scalar(
                "SELECT entry::text FROM audit WHERE profile_id = ANY($1) ORDER BY id",
            )
            .bind(&ids)
            .fetch_all(&db.pool),
        )?;
        decode_audit(rows)
    }

    /// Up to `limit` lines of the history of a profile and of every profile
    /// merged into it, newest first, older than `before`, runs of identical
    /// refusals folded into one line (as `embedded::history`).
    pub(in crate::store::postgres) fn profile_history_page(
        &self,
        id: ProfileId,
        limit: usize,
        before: Option<Uuid>,
    ) -> StoreResult<HistoryPage> {
        let ids = self.profile_and_merged(id)?;
        let mut page = HistoryPage {
            history: Vec::new(),
            next: None,
        };
        let mut scanned = 0;
        let mut upper = before;
        loop {
            let chunk = self.audit_older_than(&ids, upper)?;
            let Some(last) = chunk.last() else {
                page.next = None;
                return Ok(page);
            };
            upper = Some(last.id);
            for entry in chunk {
                let folds = page
                    .history
                    .last()
                    .is_some_and(|l| l.entry.same_refusal(&entry));
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

    /// One chunk of audit lines of `ids`, newest first, older than `upper`.
    fn audit_older_than(&self, ids: &[Uuid], upper: Option<Uuid>) -> StoreResult<Vec<AuditEntry>> {
        let db = &self.db;
        let rows: Vec<String> = db.block(
            sqlx::query_scalar(
                "SELECT entry::text FROM audit
                 WHERE profile_id = ANY($1) AND ($2::uuid IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(ids)
            .bind(upper)
            .bind(HISTORY_CHUNK)
            .fetch_all(&db.pool),
        )?;
        decode_audit(rows)
    }

    /// Live profiles newest first, older than `before`: all of them, or
    /// those owning an identifier that starts with one of `prefixes`. A
    /// search reads at most `PROFILE_SEARCH_SCAN` identifiers.
    pub(in crate::store::postgres) fn profiles_page(
        &self,
        prefixes: &[IdentKey],
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<ProfilesPage> {
        let limit = limit.max(1);
        if prefixes.is_empty() {
            return self.newest_profiles(limit, before);
        }
        let (owners, truncated) = self.owners_by_prefix(prefixes)?;
        let candidates: Vec<Uuid> = owners
            .into_iter()
            .filter(|id| before.is_none_or(|b| *id < b))
            .map(|id| id.0)
            .collect();
        let db = &self.db;
        let docs: Vec<String> = db.block(
            sqlx::query_scalar(
                "SELECT doc::text FROM profiles WHERE id = ANY($1) ORDER BY id DESC LIMIT $2",
            )
            .bind(&candidates)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&db.pool),
        )?;
        let profiles = decode_profiles(docs)?;
        // As the embedded list: a next page when any candidate is older
        // than the last one shown.
        let next = match profiles.last() {
            Some(last) if profiles.len() == limit => {
                candidates.iter().any(|c| *c < last.id.0).then_some(last.id)
            }
            _ => None,
        };
        Ok(ProfilesPage {
            profiles,
            next,
            truncated,
        })
    }

    fn newest_profiles(
        &self,
        limit: usize,
        before: Option<ProfileId>,
    ) -> StoreResult<ProfilesPage> {
        let db = &self.db;
        let docs: Vec<String> = db.block(
            sqlx::query_scalar(
                "SELECT doc::text FROM profiles WHERE ($1::uuid IS NULL OR id < $1)
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(before.map(|b| b.0))
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .fetch_all(&db.pool),
        )?;
        let mut profiles = decode_profiles(docs)?;
        let more = profiles.len() > limit;
        profiles.truncate(limit);
        let next = more.then(|| profiles.last().map(|p| p.id)).flatten();
        Ok(ProfilesPage {
            profiles,
            next,
            truncated: false,
        })
    }

    /// The owners of identifiers starting with any of `prefixes` (a query
    /// per prefix, in key order), and whether the scan stopped at its bound.
    fn owners_by_prefix(
        &self,
        prefixes: &[IdentKey],
    ) -> StoreResult<(std::collections::BTreeSet<ProfileId>, bool)> {
        let mut owners = std::collections::BTreeSet::new();
        let mut left = PROFILE_SEARCH_SCAN;
        let db = &self.db;
        for prefix in prefixes {
            let found: Vec<Uuid> = db.block(
                sqlx::query_scalar(
                    "SELECT profile_id FROM identifiers
                     WHERE kind = $1 AND starts_with(value, $2)
                     ORDER BY value LIMIT $3",
                )
                .bind(prefix.kind.as_str())
                .bind(&prefix.value)
                .bind(i64::try_from(left + 1).unwrap_or(i64::MAX))
                .fetch_all(&db.pool),
            )?;
            let over = found.len() > left;
            let read = found.len().min(left);
            owners.extend(found.into_iter().take(read).map(ProfileId));
            left -= read;
            if over {
                return Ok((owners, true));
            }
        }
        Ok((owners, false))
    }

    /// Whether any profile holds a value of this team's kind (one index
    /// probe).
    pub(in crate::store::postgres) fn kind_has_values(&self, kind: &KindName) -> StoreResult<bool> {
        let db = &self.db;
        Ok(db.block(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM identifiers WHERE kind = $1)")
                .bind(kind.as_str())
                .fetch_one(&db.pool),
        )?)
    }
}
