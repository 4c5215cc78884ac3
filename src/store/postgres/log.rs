//! The event log on PostgreSQL: `events` (one row per record, the
//! record's JSON bytes) and `pending` (the processor's queue: a row per
//! event not yet processed, deleted in the batch that processes it).
//!
//! Order: every node's appends commit one group at a time under
//! [`APPEND_LOCK`], so the `seq` numbers rows get are in commit order
//! across the cluster. The processor reads `pending` by `seq`: an event
//! that commits later always has a larger `seq` than any the processor
//! has seen, so reading "after the last one handed out" never skips one.
//! Event ids (UUID v7 from each node's clock) are not in that order when
//! several nodes append; only `seq` is compared.
//!
//! Appends are group-committed ([`Committer`](super::Committer)):
//! concurrent requests on a node share one transaction.

use super::events::{decode, location};
use super::PgStore;
use crate::domain::ids::EventId;
use crate::domain::model::RawEvent;
use crate::store::{Appended, GroupCommit, Location, Logged, StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The advisory lock appends commit under (a transaction lock: released
/// at `COMMIT`, after the rows are visible).
const APPEND_LOCK: i64 = 0x696e_6c65_745f_6c67; // "inlet_lg"

/// How often `wait_processed` looks at the queue.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What the log keeps in memory on the node.
pub(super) struct LogState {
    /// The last event id this node handed out (as u128): ids from one node
    /// are strictly increasing, as in the embedded log.
    last_id: Mutex<u128>,
    /// The `seq` of the last event `next_pending` handed out, by id, so the
    /// next call continues after it without a lookup.
    handed: Mutex<Option<(EventId, i64)>>,
}

impl LogState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self {
            last_id: Mutex::new(0),
            handed: Mutex::new(None),
        })
    }

    fn next_id(&self) -> EventId {
        let mut last = self.last_id.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Uuid::now_v7().as_u128();
        let id = if fresh > *last { fresh } else { *last + 1 };
        *last = id;
        EventId(Uuid::from_u128(id))
    }

    fn remember_handed(&self, last: Option<(EventId, i64)>) {
        if let Some(last) = last {
            *self.handed.lock().unwrap_or_else(PoisonError::into_inner) = Some(last);
        }
    }

    fn handed_seq(&self, id: EventId) -> Option<i64> {
        match *self.handed.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((handed, seq)) if handed == id => Some(seq),
            _ => None,
        }
    }
}

/// Records to insert, column by column (UNNEST binds one array per column).
#[derive(Default)]
pub(super) struct Rows {
    ids: Vec<Uuid>,
    sources: Vec<Uuid>,
    received: Vec<DateTime<Utc>>,
    records: Vec<Vec<u8>>,
}

impl Rows {
    pub(super) fn of(events: &[RawEvent]) -> StoreResult<Self> {
        let mut rows = Rows::default();
        for event in events {
            let record = serde_json::to_vec(event).map_err(|source| StoreError::Encode {
                what: "an event record",
                source,
            })?;
            rows.ids.push(event.id.0);
            rows.sources.push(event.source_id.0);
            rows.received.push(event.received_at);
            rows.records.push(record);
        }
        Ok(rows)
    }

    pub(super) fn extend(&mut self, other: Rows) {
        self.ids.extend(other.ids);
        self.sources.extend(other.sources);
        self.received.extend(other.received);
        self.records.extend(other.records);
    }
}

/// Inserts `rows` into the log and the processor's queue, in the caller's
/// transaction, under the append lock (see the module comment); an id
/// already logged is left as it is. Returns how many were new.
pub(super) async fn insert_records(conn: &mut sqlx::PgConnection, rows: &Rows) -> StoreResult<u64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "WITH logged AS (
             INSERT INTO events (id, source_id, received_at, record)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bytea[])
             ON CONFLICT (id) DO NOTHING
             RETURNING id, source_id, seq
         )
         INSERT INTO pending (event_id, source_id, seq)
         SELECT id, source_id, seq FROM logged",
    )
    .bind(&rows.ids)
    .bind(&rows.sources)
    .bind(&rows.received)
    .bind(&rows.records)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Takes `ids` off the processor's queue inside the batch's transaction;
/// returns how many rows were there (fewer than asked: another node
/// processed some first, and the batch must write nothing).
pub(super) async fn take_pending(
    conn: &mut sqlx::PgConnection,
    ids: &[EventId],
) -> StoreResult<u64> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    Ok(sqlx::query("DELETE FROM pending WHERE event_id = ANY($1)")
        .bind(&ids)
        .execute(conn)
        .await?
        .rows_affected())
}

impl PgStore {
    /// Assigns the request's ids and hands its rows to the group commit;
    /// the caller waits on the receipt before answering.
    pub(super) fn append_events(&self, events: Vec<RawEvent>) -> StoreResult<Appended> {
        let events: Vec<RawEvent> = events
            .into_iter()
            .map(|mut event| {
                event.id = self.log.next_id();
                event
            })
            .collect();
        let rows = Rows::of(&events)?;
        let receipt = self.committer.add(rows);
        Ok(Appended {
            events: events.into_iter().map(Arc::new).collect(),
            receipt,
        })
    }

    /// Commits what is gathered now and waits for it (shutdown, tests).
    pub(super) fn flush_now(&self) -> StoreResult<()> {
        let Some(receipt) = self.committer.current() else {
            return Ok(());
        };
        let committer = GroupCommit::Postgres(self.committer.clone());
        self.db
            .block(committer.durable(receipt))
            .map_err(|_| StoreError::Unavailable("the append commit failed".into()))
    }

    pub(super) fn next_pending(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        let after_seq = match after {
            None => 0,
            Some(id) => match self.log.handed_seq(id) {
                Some(seq) => seq,
                None => self.seq_of(id)?,
            },
        };
        let rows = self.db.block(async {
            sqlx::query(
                "SELECT e.id, e.seq, e.record
                 FROM pending p JOIN events e ON e.id = p.event_id
                 WHERE p.seq > $1
                 ORDER BY p.seq
                 LIMIT $2",
            )
            .bind(after_seq)
            .bind(limit.min(i64::MAX as usize) as i64)
            .fetch_all(&self.db.pool)
            .await
        })?;
        let mut logged = Vec::with_capacity(rows.len());
        let mut last = None;
        for row in rows {
            let id = EventId(row.try_get("id")?);
            let seq: i64 = row.try_get("seq")?;
            let record: Vec<u8> = row.try_get("record")?;
            let mut raw: RawEvent = decode("events", &record)?;
            raw.id = id;
            logged.push(Logged {
                raw: Arc::new(raw),
                at: location(seq, record.len()),
            });
            last = Some((id, seq));
        }
        // Only the processor asks after an event; a look at the head of
        // the queue (`after` = None, one event) must not move its place.
        if after.is_some() || limit > 1 {
            self.log.remember_handed(last);
        }
        Ok(logged)
    }

    /// The `seq` of a logged event: the place to continue after it. An
    /// event no longer in the log (retention removes processed events
    /// only) leaves nothing before it in the queue: start from the head.
    fn seq_of(&self, id: EventId) -> StoreResult<i64> {
        let seq: Option<i64> = self.db.block(async {
            sqlx::query_scalar("SELECT seq FROM events WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        Ok(seq.unwrap_or(0))
    }

    /// Nothing to release: `commit_batch` deleted the batch's queue rows in
    /// its own transaction.
    pub(super) fn pending_done(&self, _last: EventId) -> StoreResult<()> {
        Ok(())
    }

    /// The cursor the processing node committed last (any node's).
    pub(super) fn processed_upto(&self) -> StoreResult<Option<EventId>> {
        self.cursor()
    }

    /// Waits until the processor (on whichever node) has committed every
    /// event logged before the call, this node's gathered appends included.
    pub(super) fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        let deadline = Instant::now() + timeout;
        self.flush_now()?;
        let newest: Option<i64> = self.db.block(async {
            sqlx::query_scalar("SELECT max(seq) FROM pending")
                .fetch_one(&self.db.pool)
                .await
        })?;
        let Some(newest) = newest else {
            return Ok(true);
        };
        loop {
            let waiting: bool = self.db.block(async {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pending WHERE seq <= $1)")
                    .bind(newest)
                    .fetch_one(&self.db.pool)
                    .await
            })?;
            if !waiting {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    pub(super) fn read_at(&self, id: EventId, _at: Location) -> StoreResult<RawEvent> {
        let record: Option<Vec<u8>> = self.db.block(async {
            sqlx::query_scalar("SELECT record FROM events WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        let record = record.ok_or_else(|| StoreError::ReadEvent {
            id,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in the events table"),
        })?;
        let mut raw: RawEvent = decode("events", &record)?;
        raw.id = id;
        Ok(raw)
    }

    /// Removes the oldest processed events beyond `keep`, states first, in
    /// batches of [`PRUNE_BATCH`] (each its own transaction, so retention
    /// never holds a long lock over the log).
    pub(super) fn prune_events(&self, keep: u64) -> StoreResult<u64> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        // The seq of the newest event beyond `keep` (an index walk over
        // `keep` entries, once per maintenance pass).
        let cutoff: Option<i64> = self.db.block(async {
            sqlx::query_scalar("SELECT seq FROM events ORDER BY seq DESC OFFSET $1 LIMIT 1")
                .bind(keep)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        let Some(cutoff) = cutoff else {
            return Ok(0);
        };
        let mut removed = 0;
        loop {
            let n = self.db.block(async {
                let mut tx = self.db.pool.begin().await?;
                let ids: Vec<Uuid> = sqlx::query_scalar(
                    "SELECT e.id FROM events e
                     WHERE e.seq <= $1
                       AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.event_id = e.id)
                     ORDER BY e.seq
                     LIMIT $2",
                )
                .bind(cutoff)
                .bind(PRUNE_BATCH)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM event_states WHERE event_id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                let n = sqlx::query("DELETE FROM events WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                StoreResult::Ok(n)
            })?;
            removed += n;
            if n < PRUNE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }
}

/// Events removed per retention transaction.
const PRUNE_BATCH: i64 = 5_000;

/// Whether the server would acknowledge commits before they are on disk
/// (`synchronous_commit = off` for Inlet's role or database): the append
/// transactions then turn it on for themselves.
pub(super) fn synchronous_commit_is_off(db: &super::db::Db) -> StoreResult<bool> {
    let setting: String = db.block(async {
        sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&db.pool)
            .await
    })?;
    if setting == "off" {
        tracing::warn!("synchronous_commit is off on this database: Inlet's appends turn it on for their own transactions");
    }
    Ok(setting == "off")
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::super::{PgOptions, PgStore};
    use crate::domain::ids::{EventId, SourceId};
    use crate::domain::model::RawEvent;
    use crate::store::GroupCommit;
    use serde_json::json;
    use sqlx::ConnectOptions;
    use std::collections::HashSet;

    fn request(source: SourceId, n: usize) -> Vec<RawEvent> {
        (0..n)
            .map(|i| RawEvent::received(source, json!({"i": i})))
            .collect()
    }

    fn durable(store: &PgStore, appended: crate::store::Appended) -> Vec<EventId> {
        let commit = GroupCommit::Postgres(store.committer.clone());
        store
            .db
            .block(commit.durable(appended.receipt))
            .expect("committed");
        appended.events.iter().map(|e| e.id).collect()
    }

    /// A second node on the same database.
    fn second_node(store: &PgStore) -> PgStore {
        let url = store.db.pool.connect_options().to_url_lossy().to_string();
        PgStore::connect(&PgOptions::new(url)).expect("second node")
    }

    #[test]
    fn appends_from_two_nodes_queue_in_commit_order_and_each_once() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let source = SourceId::new();
        let mut sent = Vec::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let node = if t % 2 == 0 { &a } else { &b };
                    scope.spawn(move || {
                        (0..10)
                            .flat_map(|_| {
                                let appended = node.append_events(request(source, 3)).unwrap();
                                durable(node, appended)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                sent.extend(h.join().unwrap());
            }
        });
        assert_eq!(sent.len(), 240);
        // Read the queue in pages, as the processor does, on the other node.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = b.next_pending(after, 50).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.raw.id);
            let offsets: Vec<u64> = page.iter().map(|l| l.at.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "seq order");
            seen.extend(page.iter().map(|l| l.raw.id));
        }
        let unique: HashSet<_> = seen.iter().collect();
        assert_eq!(seen.len(), 240);
        assert_eq!(unique, sent.iter().collect());
        assert_eq!(a.counts_with_pending().unwrap().1[&source], 240);
        let stats = a.committer.stats();
        let flushes = stats.flushes.load(std::sync::atomic::Ordering::Relaxed);
        let tickets = stats.tickets.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(tickets, 40);
        assert!(flushes <= tickets);
        // The payload comes back as sent.
        let first = a
            .read_at(seen[0], a.next_pending(None, 1).unwrap()[0].at)
            .unwrap();
        assert_eq!(first.source_id, source);
    }

    #[test]
    fn a_fenced_take_reports_the_rows_another_node_took() {
        let Some(a) = temp_store() else { return };
        let source = SourceId::new();
        let appended = a.append_events(request(source, 4)).unwrap();
        let ids = durable(&a, appended);
        let taken =
            a.db.block(async {
                let mut conn = a.db.pool.acquire().await?;
                let first = super::take_pending(&mut conn, &ids[..2]).await?;
                let again = super::take_pending(&mut conn, &ids).await?;
                crate::store::StoreResult::Ok((first, again))
            })
            .unwrap();
        assert_eq!(taken, (2, 2));
        assert!(a.next_pending(None, 10).unwrap().is_empty());
    }

    #[test]
    fn retention_removes_only_processed_events_beyond_keep() {
        let Some(a) = temp_store() else { return };
        let source = SourceId::new();
        let appended = a.append_events(request(source, 10)).unwrap();
        let ids = durable(&a, appended);
        // The oldest six are processed (off the queue); the rest wait.
        a.db.block(async {
            let mut conn = a.db.pool.acquire().await?;
            super::take_pending(&mut conn, &ids[..6]).await
        })
        .unwrap();
        // keep 2: the eight oldest are beyond it, but two of them wait.
        assert_eq!(a.prune_events(2).unwrap(), 6);
        assert_eq!(a.next_pending(None, 10).unwrap().len(), 4);
        assert_eq!(a.prune_events(2).unwrap(), 0);
    }
}
