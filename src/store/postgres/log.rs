//! The event log on PostgreSQL: `events` (one row per record, the
//! record's JSON bytes) and `pending` (the processor's queue: a row per
//! event not yet processed, deleted in the batch that processes it).
//!
//! Order: `seq` (an identity column) is assigned at insert, so with several
//! nodes appending at once a group can commit after another group with
//! larger `seq` numbers: neither `seq` nor event ids (UUID v7 from each
//! node's clock) are commit order. So the processor never reads "after the
//! last one handed out": it reads the head of `pending` by `seq`, skipping
//! only the events of its batches still in flight ([`InFlight`]). `pending`
//! holds exactly the unprocessed events (a batch deletes its rows in its own
//! transaction), so a late commit is simply at the head of the next read,
//! and a row read twice makes its second batch fenced, never processed
//! twice. Appends take no lock across nodes.
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
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most batches remembered in flight. The planner runs one batch ahead of
/// the committer, so two or three are; a longer list only means batches
/// whose commit was never reported, and forgetting them costs at worst a
/// fenced batch, planned again.
const MAX_IN_FLIGHT: usize = 8;

/// How often `wait_processed` looks at the queue.
const WAIT_POLL: Duration = Duration::from_millis(50);

/// What the log keeps in memory on the node.
pub(super) struct LogState {
    /// The last event id this node handed out (as u128): ids from one node
    /// are strictly increasing, as in the embedded log.
    last_id: Mutex<u128>,
    /// The processor's batches read but not yet committed.
    in_flight: Mutex<InFlight>,
}

/// Batches handed to the processor whose rows are still in `pending` until
/// their transaction commits: the next read skips them.
#[derive(Default)]
struct InFlight {
    /// Oldest first: each batch's last event and all its events.
    batches: VecDeque<(EventId, Vec<Uuid>)>,
}

impl InFlight {
    /// The events to skip when the processor reads on after `after`. A read
    /// after anything but the last batch handed out is a fresh start (at
    /// start, after a failed commit, on takeover): nothing is in flight.
    fn skip_after(&mut self, after: Option<EventId>) -> Vec<Uuid> {
        let continues = after.is_some() && self.batches.back().map(|(last, _)| *last) == after;
        if !continues {
            self.batches.clear();
        }
        self.batches
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }

    fn handed(&mut self, last: EventId, ids: Vec<Uuid>) {
        self.batches.push_back((last, ids));
        while self.batches.len() > MAX_IN_FLIGHT {
            self.batches.pop_front();
        }
    }

    /// The batch ending at `last` committed (and every one before it: the
    /// committer commits in order); its rows are gone from `pending`.
    fn done(&mut self, last: EventId) {
        if let Some(at) = self.batches.iter().position(|(end, _)| *end == last) {
            self.batches.drain(..=at);
        }
    }
}

impl LogState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self {
            last_id: Mutex::new(0),
            in_flight: Mutex::new(InFlight::default()),
        })
    }

    fn next_id(&self) -> EventId {
        let mut last = self.last_id.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = Uuid::now_v7().as_u128();
        let id = if fresh > *last { fresh } else { *last + 1 };
        *last = id;
        EventId(Uuid::from_u128(id))
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, InFlight> {
        // A panic while holding it leaves a list that is still consistent.
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
/// transaction; an id already logged is left as it is. Returns how many
/// were new.
pub(super) async fn insert_records(conn: &mut sqlx::PgConnection, rows: &Rows) -> StoreResult<u64> {
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

    /// The oldest waiting events, skipping the processor's batches in
    /// flight (see the module comment). Only the processor reads on after
    /// an event; a look at the head of the queue (`after` = None, one
    /// event) skips nothing and changes nothing.
    pub(super) fn next_pending(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> StoreResult<Vec<Logged>> {
        let processor = after.is_some() || limit > 1;
        let skip = if processor {
            self.log.in_flight().skip_after(after)
        } else {
            Vec::new()
        };
        // The head holds at most `skip.len()` rows to skip, so reading that
        // many more leaves `limit` to hand out; the anti-join on the array
        // is hashed, never a scan per row.
        let limit = limit.min(1 << 32) as i64;
        let rows = self.db.block(async {
            sqlx::query(
                "WITH head AS (
                     SELECT event_id, seq FROM pending
                     ORDER BY seq
                     LIMIT $2 + cardinality($1::uuid[])
                 )
                 SELECT e.id, e.seq, e.record
                 FROM head h JOIN events e ON e.id = h.event_id
                 WHERE NOT EXISTS (SELECT 1 FROM unnest($1::uuid[]) AS s(id) WHERE s.id = h.event_id)
                 ORDER BY h.seq
                 LIMIT $2",
            )
            .bind(&skip)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await
        })?;
        let mut logged = Vec::with_capacity(rows.len());
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
        }
        if let (true, Some(last)) = (processor, logged.last()) {
            let ids = logged.iter().map(|l| l.raw.id.0).collect();
            self.log.in_flight().handed(last.raw.id, ids);
        }
        Ok(logged)
    }

    /// The batch ending at `last` committed: its events are no longer
    /// skipped (its transaction deleted their queue rows).
    pub(super) fn pending_done(&self, last: EventId) -> StoreResult<()> {
        self.log.in_flight().done(last);
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
    fn appends_from_two_nodes_queue_each_once() {
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
    fn a_group_that_commits_late_is_read_next_not_skipped() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let source = SourceId::new();
        // Node B's group takes its `seq` numbers first and commits last.
        let late: Vec<RawEvent> = request(source, 2)
            .into_iter()
            .map(|mut e| {
                e.id = b.log.next_id();
                e
            })
            .collect();
        let rows = super::Rows::of(&late).unwrap();
        let mut open = b.db.block(b.db.pool.begin()).unwrap();
        assert_eq!(
            b.db.block(super::insert_records(&mut open, &rows)).unwrap(),
            2
        );
        let early = durable(&a, a.append_events(request(source, 3)).unwrap());
        // The processor (on A) reads and hands out A's group.
        let first = a.next_pending(None, 10).unwrap();
        let first_ids: Vec<EventId> = first.iter().map(|l| l.raw.id).collect();
        assert_eq!(first_ids, early);
        b.db.block(open.commit()).unwrap();
        // Still in flight, A's group is skipped; B's late group comes next
        // although its `seq` numbers are smaller.
        let next = a.next_pending(first_ids.last().copied(), 10).unwrap();
        let next_ids: Vec<EventId> = next.iter().map(|l| l.raw.id).collect();
        assert_eq!(next_ids, late.iter().map(|e| e.id).collect::<Vec<_>>());
        assert!(
            next[0].at.offset < first[0].at.offset,
            "smaller seq, read later"
        );
        // Nothing more while both are in flight; once the first batch is
        // committed (its rows leave the queue), still nothing is read twice.
        let ids: Vec<EventId> = next_ids.iter().chain(&first_ids).copied().collect();
        let last = next_ids.last().copied();
        assert!(a.next_pending(last, 10).unwrap().is_empty());
        a.db.block(async {
            let mut conn = a.db.pool.acquire().await?;
            super::take_pending(&mut conn, &first_ids).await
        })
        .unwrap();
        a.pending_done(*first_ids.last().unwrap()).unwrap();
        assert!(a.next_pending(last, 10).unwrap().is_empty());
        // A fresh start (after a failed commit) reads all that waits again.
        let again = a.next_pending(Some(ids[0]), 10).unwrap();
        assert_eq!(again.len(), 2);
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
