//! The error log, counters and cursor, idempotency keys, schemas, time
//! buckets, rotated-token counts and delivery ids on PostgreSQL.
//!
//! Every write is one statement (or one transaction), so several nodes
//! writing at once never lose each other's update: "keep the larger" and
//! "claim if free" are decided by the database, not read-modify-write.

use super::events::decode;
use super::PgStore;
use crate::domain::activity::{ActivityDelta, Bucket, SlotKey, Window};
use crate::domain::counters::{Counts, OldTokenUse};
use crate::domain::delivery::{Claim, DeliveryState};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::ErrorEntry;
use crate::store::{CountsWithPending, ErrorFilter, Location, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// How many entries a filtered error page reads at most (as embedded), so
/// a rare filter never turns one page into a full-table scan.
const ERROR_SCAN_CAP: i64 = 20_000;

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

fn window_name(window: Window) -> &'static str {
    match window {
        Window::Minute => "minute",
        Window::Hour => "hour",
        Window::Day => "day",
    }
}

fn window_named(name: &str) -> Option<Window> {
    Window::ALL.into_iter().find(|w| window_name(*w) == name)
}

/// Appends error-log entries inside a transaction (one statement).
pub(super) async fn insert_errors(
    conn: &mut sqlx::PgConnection,
    entries: &[&ErrorEntry],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id.0).collect();
    let docs = entries
        .iter()
        .map(|e| encode("an error entry", e))
        .collect::<StoreResult<Vec<String>>>()?;
    sqlx::query(
        "INSERT INTO errors (id, doc)
         SELECT i, d::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS t(i, d)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&docs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that `event` holds idempotency key `key` (source ‖ key).
pub(super) async fn claim_dedupe(
    conn: &mut sqlx::PgConnection,
    key: &[u8],
    event: EventId,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO dedupe (key, event_id) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET event_id = EXCLUDED.event_id",
    )
    .bind(key)
    .bind(event.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a batch's cursor, counters (absolute) and touched time buckets
/// inside the batch's transaction: a statement per table.
pub(super) async fn write_progress(
    conn: &mut sqlx::PgConnection,
    cursor: Option<(EventId, Location)>,
    counts: &HashMap<SourceId, Counts>,
    activity: &ActivityDelta,
) -> StoreResult<()> {
    if let Some((id, at)) = cursor {
        sqlx::query(
            "INSERT INTO progress (singleton, event_id, event_seq) VALUES (true, $1, $2)
             ON CONFLICT (singleton) DO UPDATE
             SET event_id = EXCLUDED.event_id, event_seq = EXCLUDED.event_seq",
        )
        .bind(id.0)
        .bind(i64::try_from(at.offset).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    if !counts.is_empty() {
        let sources: Vec<Uuid> = counts.keys().map(|s| s.0).collect();
        let docs = counts
            .values()
            .map(|c| encode("counts", c))
            .collect::<StoreResult<Vec<String>>>()?;
        sqlx::query(
            "INSERT INTO counts (source_id, doc)
             SELECT s, d::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS t(s, d)
             ON CONFLICT (source_id) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(&sources)
        .bind(&docs)
        .execute(&mut *conn)
        .await?;
    }
    if !activity.is_empty() {
        let (mut sources, mut windows, mut slots, mut docs) = (vec![], vec![], vec![], vec![]);
        for (key, bucket) in activity.iter() {
            sources.push(key.source.0);
            windows.push(window_name(key.window));
            slots.push(i32::from(key.slot));
            docs.push(encode("a time bucket", bucket)?);
        }
        sqlx::query(
            "INSERT INTO activity (source_id, win, slot, doc)
             SELECT s, w, n, d::jsonb
             FROM UNNEST($1::uuid[], $2::text[], $3::int[], $4::text[]) AS t(s, w, n, d)
             ON CONFLICT (source_id, win, slot) DO UPDATE SET doc = EXCLUDED.doc",
        )
        .bind(&sources)
        .bind(&windows)
        .bind(&slots)
        .bind(&docs)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An error filter's SQL: the entries older than `before`, newest first,
/// with the filters as optional parameters ($1 before, $2 source, $3
/// stage, $4 level, $5 code).
const ERROR_FILTERS: &str = "($1::uuid IS NULL OR id < $1)
       AND ($2::text IS NULL OR doc->>'source_id' = $2)
       AND ($3::text IS NULL OR doc->>'stage' = $3)
       AND ($4::text IS NULL OR doc->>'level' = $4)
       AND ($5::text IS NULL OR doc->>'code' = $5)";

/// The JSON name a serde enum value is stored under.
fn json_name<T: serde::Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

impl PgStore {
    /// Appends an entry (its own statement: diagnostic, committed at once).
    pub(super) fn log_error(&self, entry: &ErrorEntry) -> StoreResult<()> {
        self.db.block(async {
            let mut conn = self.db.pool.acquire().await?;
            insert_errors(&mut conn, &[entry]).await
        })
    }

    /// Entries newest first passing `filter`, among the newest
    /// [`ERROR_SCAN_CAP`] before `filter.before` (as the embedded backend).
    pub(super) fn errors_page(&self, filter: &ErrorFilter) -> StoreResult<Vec<ErrorEntry>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar(&format!(
                "SELECT doc::text FROM (
                     SELECT id, doc FROM errors WHERE ($1::uuid IS NULL OR id < $1)
                     ORDER BY id DESC LIMIT $6
                 ) AS newest
                 WHERE {ERROR_FILTERS}
                 ORDER BY id DESC LIMIT $7"
            ))
            .bind(filter.before.map(|b| b.0))
            .bind(filter.source_id.map(|s| s.0.to_string()))
            .bind(filter.stage.as_ref().and_then(json_name))
            .bind(filter.level.as_ref().and_then(json_name))
            .bind(filter.code.clone())
            .bind(ERROR_SCAN_CAP)
            .bind(i64::try_from(filter.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.db.pool)
            .await
        })?;
        docs.iter()
            .map(|d| decode("errors", d.as_bytes()))
            .collect()
    }

    /// Hands `visit` every entry passing `filter`, newest first, reading
    /// at most `max_read` entries; how many were read, and whether older
    /// ones were left unread.
    pub(super) fn scan_errors(
        &self,
        filter: &ErrorFilter,
        max_read: usize,
        visit: &mut dyn FnMut(&ErrorEntry),
    ) -> StoreResult<(usize, bool)> {
        let limit = i64::try_from(max_read).unwrap_or(i64::MAX - 1) + 1;
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT doc::text FROM errors WHERE ($1::uuid IS NULL OR id < $1)
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(filter.before.map(|b| b.0))
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await
        })?;
        let more = docs.len() > max_read;
        let mut read = 0;
        for doc in docs.iter().take(max_read) {
            read += 1;
            let entry: ErrorEntry = decode("errors", doc.as_bytes())?;
            if filter.matches(&entry) {
                visit(&entry);
            }
        }
        Ok((read, more))
    }

    /// Drops the oldest entries beyond `keep`; returns how many.
    pub(super) fn prune_errors(&self, keep: u64) -> StoreResult<u64> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.db.block(async {
            Ok(sqlx::query(
                "DELETE FROM errors WHERE id <= (
                     SELECT id FROM errors ORDER BY id DESC OFFSET $1 LIMIT 1
                 )",
            )
            .bind(keep)
            .execute(&self.db.pool)
            .await?
            .rows_affected())
        })
    }

    pub(super) fn cursor(&self) -> StoreResult<Option<EventId>> {
        let id: Option<Uuid> = self.db.block(async {
            sqlx::query_scalar("SELECT event_id FROM progress")
                .fetch_optional(&self.db.pool)
                .await
        })?;
        Ok(id.map(EventId))
    }

    /// The committed counters and the queue's size per source in one
    /// statement, so both come from one snapshot: a batch that commits
    /// meanwhile is either in the counts or still in the queue, not both.
    pub(super) fn counts_with_pending(&self) -> StoreResult<CountsWithPending> {
        let rows: Vec<(Uuid, Option<String>, Option<i64>)> = self.db.block(async {
            sqlx::query_as(
                "SELECT source_id, doc::text, NULL::bigint FROM counts
                 UNION ALL
                 SELECT source_id, NULL, count(*) FROM pending GROUP BY source_id",
            )
            .fetch_all(&self.db.pool)
            .await
        })?;
        let (mut counts, mut pending) = (HashMap::new(), HashMap::new());
        for (source, doc, waiting) in rows {
            if let Some(doc) = doc {
                counts.insert(SourceId(source), decode("counts", doc.as_bytes())?);
            }
            if let Some(n) = waiting {
                pending.insert(SourceId(source), n.max(0) as u64);
            }
        }
        Ok((counts, pending))
    }

    pub(super) fn dedupe_holder(&self, key: &[u8]) -> StoreResult<Option<EventId>> {
        let id: Option<Uuid> = self.db.block(async {
            sqlx::query_scalar("SELECT event_id FROM dedupe WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        Ok(id.map(EventId))
    }

    pub(super) fn put_schema(&self, source: SourceId, schema: &[u8]) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query(
                "INSERT INTO schemas (source_id, snapshot) VALUES ($1, $2)
                 ON CONFLICT (source_id) DO UPDATE SET snapshot = EXCLUDED.snapshot",
            )
            .bind(source.0)
            .bind(schema)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    pub(super) fn schemas(&self) -> StoreResult<Vec<(SourceId, Vec<u8>)>> {
        let rows: Vec<(Uuid, Vec<u8>)> = self.db.block(async {
            sqlx::query_as("SELECT source_id, snapshot FROM schemas ORDER BY source_id")
                .fetch_all(&self.db.pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(s, b)| (SourceId(s), b)).collect())
    }

    /// Every persisted bucket. A window name this version cannot read is
    /// skipped (as embedded: the buckets are a picture that rolls off).
    pub(super) fn persisted_activity(&self) -> StoreResult<Vec<(SlotKey, Bucket)>> {
        let rows: Vec<(Uuid, String, i32, String)> = self.db.block(async {
            sqlx::query_as("SELECT source_id, win, slot, doc::text FROM activity")
                .fetch_all(&self.db.pool)
                .await
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (source, win, slot, doc) in rows {
            let (Some(window), Ok(slot)) = (window_named(&win), u16::try_from(slot)) else {
                continue;
            };
            let key = SlotKey {
                source: SourceId(source),
                window,
                slot,
            };
            out.push((key, decode("activity", doc.as_bytes())?));
        }
        Ok(out)
    }

    /// Keeps the larger count: requests on several nodes write out of order.
    pub(super) fn put_old_token_use(
        &self,
        source: SourceId,
        used: &OldTokenUse,
    ) -> StoreResult<()> {
        let doc = encode("an old-token count", used)?;
        self.db.block(async {
            sqlx::query(
                "INSERT INTO old_token_uses (source_id, requests, doc) VALUES ($1, $2, $3::jsonb)
                 ON CONFLICT (source_id) DO UPDATE
                 SET requests = EXCLUDED.requests, doc = EXCLUDED.doc
                 WHERE old_token_uses.requests < EXCLUDED.requests",
            )
            .bind(source.0)
            .bind(i64::try_from(used.requests).unwrap_or(i64::MAX))
            .bind(&doc)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    pub(super) fn clear_old_token_use(&self, source: SourceId) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query("DELETE FROM old_token_uses WHERE source_id = $1")
                .bind(source.0)
                .execute(&self.db.pool)
                .await?;
            Ok(())
        })
    }

    pub(super) fn old_token_uses(&self) -> StoreResult<HashMap<SourceId, OldTokenUse>> {
        let rows: Vec<(Uuid, String)> = self.db.block(async {
            sqlx::query_as("SELECT source_id, doc::text FROM old_token_uses")
                .fetch_all(&self.db.pool)
                .await
        })?;
        rows.into_iter()
            .map(|(s, d)| Ok((SourceId(s), decode("old_token_uses", d.as_bytes())?)))
            .collect()
    }

    /// One winner among concurrent claims on any number of nodes: the
    /// claim is an insert of a free id, or an update of exactly the state
    /// that was read (compare and swap); a loser reads again.
    pub(super) fn claim_delivery(
        &self,
        source: SourceId,
        id: &str,
        now: DateTime<Utc>,
        window_s: u64,
    ) -> StoreResult<Claim> {
        let claim = encode("a delivery", &DeliveryState::InFlight { since: now })?;
        loop {
            let current = self.delivery(source, id)?;
            let state: Option<DeliveryState> = current
                .as_deref()
                .map(|d| decode("deliveries", d.as_bytes()))
                .transpose()?;
            match DeliveryState::claim(state.as_ref(), now, window_s) {
                Claim::Claimed => {
                    if self.swap_delivery(source, id, current.as_deref(), &claim)? {
                        return Ok(Claim::Claimed);
                    }
                }
                Claim::Redelivery(ids) => {
                    self.count_redelivery(source)?;
                    return Ok(Claim::Redelivery(ids));
                }
                Claim::InFlight => return Ok(Claim::InFlight),
            }
        }
    }

    fn delivery(&self, source: SourceId, id: &str) -> StoreResult<Option<String>> {
        self.db.block(async {
            Ok(sqlx::query_scalar(
                "SELECT doc::text FROM deliveries WHERE source_id = $1 AND delivery_id = $2",
            )
            .bind(source.0)
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?)
        })
    }

    /// Replaces the delivery's state with `new` if it is still `old`.
    fn swap_delivery(
        &self,
        source: SourceId,
        id: &str,
        old: Option<&str>,
        new: &str,
    ) -> StoreResult<bool> {
        let changed = self.db.block(async {
            let query = match old {
                None => sqlx::query(
                    "INSERT INTO deliveries (source_id, delivery_id, doc) VALUES ($1, $2, $3::jsonb)
                     ON CONFLICT DO NOTHING",
                ),
                Some(_) => sqlx::query(
                    "UPDATE deliveries SET doc = $3::jsonb
                     WHERE source_id = $1 AND delivery_id = $2 AND doc = $4::jsonb",
                ),
            };
            StoreResult::Ok(
                query
                    .bind(source.0)
                    .bind(id)
                    .bind(new)
                    .bind(old)
                    .execute(&self.db.pool)
                    .await?
                    .rows_affected(),
            )
        })?;
        Ok(changed == 1)
    }

    fn count_redelivery(&self, source: SourceId) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query(
                "INSERT INTO redeliveries (source_id, answered) VALUES ($1, 1)
                 ON CONFLICT (source_id) DO UPDATE SET answered = redeliveries.answered + 1",
            )
            .bind(source.0)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    /// Records the claimed delivery as accepted (`Some`) or releases the
    /// claim (`None`).
    pub(super) fn settle_delivery(
        &self,
        source: SourceId,
        id: &str,
        accepted: Option<&[EventId]>,
        now: DateTime<Utc>,
        window_s: u64,
    ) -> StoreResult<()> {
        let accepted = accepted
            .map(|ids| {
                encode(
                    "a delivery",
                    &DeliveryState::accepted(ids.to_vec(), now, window_s),
                )
            })
            .transpose()?;
        self.db.block(async {
            match accepted {
                Some(doc) => sqlx::query(
                    "INSERT INTO deliveries (source_id, delivery_id, doc) VALUES ($1, $2, $3::jsonb)
                     ON CONFLICT (source_id, delivery_id) DO UPDATE SET doc = EXCLUDED.doc",
                )
                .bind(source.0)
                .bind(id)
                .bind(doc),
                None => sqlx::query(
                    "DELETE FROM deliveries WHERE source_id = $1 AND delivery_id = $2",
                )
                .bind(source.0)
                .bind(id),
            }
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    pub(super) fn redelivered(&self, source: SourceId) -> StoreResult<u64> {
        let n: Option<i64> = self.db.block(async {
            sqlx::query_scalar("SELECT answered FROM redeliveries WHERE source_id = $1")
                .bind(source.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        Ok(n.map_or(0, |n| n.max(0) as u64))
    }

    /// Drops delivery ids past their window and stale claims, each only if
    /// unchanged since read (a new claim may have replaced it).
    pub(super) fn prune_deliveries(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let rows: Vec<(Uuid, String, String)> = self.db.block(async {
            sqlx::query_as("SELECT source_id, delivery_id, doc::text FROM deliveries")
                .fetch_all(&self.db.pool)
                .await
        })?;
        let (mut sources, mut ids, mut docs) = (vec![], vec![], vec![]);
        for (source, id, doc) in rows {
            let state: DeliveryState = decode("deliveries", doc.as_bytes())?;
            if state.expired(now) {
                sources.push(source);
                ids.push(id);
                docs.push(doc);
            }
        }
        if sources.is_empty() {
            return Ok(0);
        }
        self.db.block(async {
            Ok(sqlx::query(
                "DELETE FROM deliveries d
                 USING UNNEST($1::uuid[], $2::text[], $3::text[]) AS t(s, i, doc)
                 WHERE d.source_id = t.s AND d.delivery_id = t.i AND d.doc = t.doc::jsonb",
            )
            .bind(&sources)
            .bind(&ids)
            .bind(&docs)
            .execute(&self.db.pool)
            .await?
            .rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::super::{PgOptions, PgStore};
    use crate::domain::activity::ActivityDelta;
    use crate::domain::counters::{Counts, OldTokenUse};
    use crate::domain::delivery::Claim;
    use crate::domain::ids::{EventId, SourceId};
    use crate::domain::model::{ErrorEntry, Level, Stage};
    use crate::store::{ErrorFilter, Location};
    use sqlx::ConnectOptions;
    use std::collections::HashMap;

    fn second_node(store: &PgStore) -> PgStore {
        let url = store.db.pool.connect_options().to_url_lossy().to_string();
        PgStore::connect(&PgOptions::new(url)).expect("second node")
    }

    #[test]
    fn error_pages_filter_newest_first_continue_before_and_prune_the_oldest() {
        let Some(store) = temp_store() else { return };
        let (a, b) = (SourceId::new(), SourceId::new());
        for i in 0..10 {
            let (source, code) = if i % 2 == 0 {
                (a, "invalid_json")
            } else {
                (b, "empty_body")
            };
            let level = if i < 8 { Level::Error } else { Level::Warning };
            store
                .log_error(&ErrorEntry::new(
                    Some(source),
                    Stage::Decode,
                    level,
                    code,
                    "m",
                ))
                .unwrap();
        }
        let page = |f: ErrorFilter| store.errors_page(&ErrorFilter { limit: 100, ..f }).unwrap();
        let all = page(ErrorFilter::default());
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let of_a = page(ErrorFilter {
            source_id: Some(a),
            ..Default::default()
        });
        assert_eq!(of_a.len(), 5);
        assert!(of_a.iter().all(|e| e.code == "invalid_json"));
        let warnings = page(ErrorFilter {
            level: Some(Level::Warning),
            ..Default::default()
        });
        assert_eq!(warnings.len(), 2);
        let coded = page(ErrorFilter {
            code: Some("empty_body".into()),
            stage: Some(Stage::Decode),
            ..Default::default()
        });
        assert_eq!(coded.len(), 5);
        let older = page(ErrorFilter {
            before: Some(all[3].id),
            ..Default::default()
        });
        assert_eq!(older.first().map(|e| e.id), Some(all[4].id));
        let (mut seen, filter) = (
            0,
            ErrorFilter {
                level: Some(Level::Warning),
                ..Default::default()
            },
        );
        assert_eq!(
            store.scan_errors(&filter, 4, &mut |_| seen += 1).unwrap(),
            (4, true)
        );
        assert_eq!(seen, 2, "the two warnings are the newest");
        assert_eq!(store.prune_errors(3).unwrap(), 7);
        let kept: Vec<_> = page(ErrorFilter::default()).iter().map(|e| e.id).collect();
        assert_eq!(kept, all[..3].iter().map(|e| e.id).collect::<Vec<_>>());
    }

    #[test]
    fn one_of_many_concurrent_delivery_claims_on_two_nodes_wins() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let source = SourceId::new();
        let now = chrono::Utc::now();
        let claims: Vec<Claim> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let node = if i % 2 == 0 { &a } else { &b };
                    scope.spawn(move || node.claim_delivery(source, "d-1", now, 60).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won = claims
            .iter()
            .filter(|c| matches!(c, Claim::Claimed))
            .count();
        assert_eq!(won, 1, "{claims:?}");
        let ids = vec![EventId(uuid::Uuid::now_v7())];
        a.settle_delivery(source, "d-1", Some(&ids), now, 60)
            .unwrap();
        match b.claim_delivery(source, "d-1", now, 60).unwrap() {
            Claim::Redelivery(got) => assert_eq!(got, ids),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.redelivered(source).unwrap(), 1);
        let later = now + chrono::Duration::seconds(3600);
        assert_eq!(a.prune_deliveries(later).unwrap(), 1);
        assert!(matches!(
            a.claim_delivery(source, "d-1", later, 60).unwrap(),
            Claim::Claimed
        ));
    }

    #[test]
    fn progress_counts_buckets_schemas_and_old_tokens_read_back() {
        let Some(store) = temp_store() else { return };
        let source = SourceId::new();
        let id = EventId(uuid::Uuid::now_v7());
        let counts = HashMap::from([(
            source,
            Counts {
                resolved: 3,
                failed: 1,
                ..Default::default()
            },
        )]);
        let at = Location {
            segment: 0,
            offset: 42,
            len: 10,
        };
        store
            .db
            .block(async {
                let mut conn = store.db.pool.acquire().await?;
                super::write_progress(
                    &mut conn,
                    Some((id, at)),
                    &counts,
                    &ActivityDelta::default(),
                )
                .await?;
                super::claim_dedupe(&mut conn, b"key", id).await
            })
            .unwrap();
        assert_eq!(store.cursor().unwrap(), Some(id));
        assert_eq!(
            store.counts_with_pending().unwrap(),
            (counts.clone(), HashMap::new())
        );
        assert_eq!(store.dedupe_holder(b"key").unwrap(), Some(id));
        assert_eq!(store.dedupe_holder(b"other").unwrap(), None);
        store.put_schema(source, b"{\"a\":1}").unwrap();
        assert_eq!(
            store.schemas().unwrap(),
            vec![(source, b"{\"a\":1}".to_vec())]
        );
        let used = |n| OldTokenUse {
            requests: n,
            last_used_at: None,
        };
        store.put_old_token_use(source, &used(5)).unwrap();
        store.put_old_token_use(source, &used(3)).unwrap();
        assert_eq!(
            store.old_token_uses().unwrap()[&source].requests,
            5,
            "the larger stays"
        );
        store.clear_old_token_use(source).unwrap();
        assert!(store.old_token_uses().unwrap().is_empty());
    }
}
