//! What nodes share besides the data: who processes (the processing lease),
//! and the changes other nodes' caches must follow (LISTEN/NOTIFY).
//!
//! # The processing lease
//! One node at a time runs the processor (and replays, retention,
//! maintenance): the one holding a session-level advisory lock
//! ([`PROCESSING_LEASE`]) on a connection of its own, outside the pool, so
//! no query of the pool can ever release it. Every node tries to take it
//! every [`TRY_EVERY`]; the holder checks its connection every
//! [`CHECK_EVERY`] and gives processing up at the first failed check (the
//! server may already have handed the lock to another node). A killed
//! node's socket closes with the process, so PostgreSQL releases its lock at
//! once and another node takes it at its next try (2 s at most); a node
//! whose machine vanished is noticed by the server's TCP keepalives
//! (idle 5 s, then 3 probes 1 s apart, set on the lease connection). Two
//! nodes may still both *believe* they lead for up to a check interval;
//! `commit_batch`'s fence (`log::take_pending`) makes the slower one's
//! batch fail with `StoreError::Fenced`, so an event is never processed
//! twice.
//!
//! # Why LISTEN/NOTIFY rather than polling
//! A source created on one node must take hooks on every other node *at
//! once*, and a node's processor should start on events another node
//! appended within milliseconds. Polling would need a query per node per
//! cache per short interval, forever, to reach the same latency; a NOTIFY
//! costs one statement per change and is delivered to every listening
//! node. NOTIFY is not durable: a node whose listening connection drops
//! misses what was sent meanwhile, so after every reconnect it treats every
//! kind of change as having happened (drops its caches, wakes its
//! processor). The caches also expire on their own (see `sources`), and
//! the processor polls every second anyway, so a lost message delays,
//! never loses.

use super::db::Db;
use super::PgStore;
use crate::domain::ids::EventId;
use crate::store::{StoreError, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The advisory lock key of the processing lease ("inlet_le"); distinct
/// from the identity lock (`identity::IDENTITY_LOCK`).
pub(super) const PROCESSING_LEASE: i64 = 0x696e_6c65_745f_6c65;
/// How often a node that does not lead tries to take the lease.
const TRY_EVERY: Duration = Duration::from_secs(2);
/// How often the leader checks that its lease connection is alive.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a check (or a try) may take before the connection counts as
/// dead.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// The one NOTIFY channel.
const CHANNEL: &str = "inlet_changes";
/// How long the listener waits before connecting again after a failure.
const RELISTEN_AFTER: Duration = Duration::from_millis(500);

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

impl Change {
    /// Every kind: what a node assumes after it may have missed messages.
    pub(super) const ALL: [Change; 4] = [
        Change::Sources,
        Change::IdentityConfig,
        Change::Appended,
        Change::Processed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Change::Sources => "sources",
            Change::IdentityConfig => "identity_config",
            Change::Appended => "appended",
            Change::Processed => "processed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Change::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// What a node does when another announces a change (set by
/// `PgStore::connect` once the area states it reaches exist).
pub(super) type ChangeHook = Box<dyn Fn(Change) + Send + Sync>;

/// The cluster side of the backend: the lease, and the listener.
pub(super) struct Cluster {
    /// This node's id in NOTIFY payloads, so it skips its own messages
    /// (it already followed its own change when it made it).
    node: uuid::Uuid,
    leading: Arc<AtomicBool>,
    follow: Arc<RwLock<Vec<ChangeHook>>>,
    /// Rung when events were appended (the app's processor `Notify`).
    appended: Arc<OnceLock<Arc<Notify>>>,
    /// Set while an `Appended` NOTIFY is spawned but not yet sent: a commit
    /// meanwhile needs no second one (the one waiting covers it).
    appended_queued: Arc<AtomicBool>,
    /// Set at close: the lease task gives the lease up at once (a node
    /// stopping cleanly hands processing over without the 2 s retry wait
    /// of its successor being spent on a lock nobody uses).
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Cluster {
    /// Starts the lease and the listener on the backend's runtime.
    pub(super) fn start(db: &Db) -> Self {
        let cluster = Self {
            node: uuid::Uuid::new_v4(),
            leading: Arc::default(),
            follow: Arc::default(),
            appended: Arc::default(),
            appended_queued: Arc::default(),
            stopping: tokio::sync::watch::channel(false).0,
        };
        db.spawn(hold_lease(
            lease_options(&db.pool.connect_options()),
            cluster.leading.clone(),
            cluster.stopping.subscribe(),
        ));
        db.spawn(listen(db.clone(), cluster.node, cluster.follower()));
        cluster
    }

    /// Gives up the processing lease (closing its connection releases
    /// the lock) and stops trying to take it: the node is closing.
    pub(super) fn stop(&self) {
        self.leading.store(false, Ordering::SeqCst);
        self.stopping.send_replace(true);
    }

    /// Whether this node holds the processing lease now.
    pub(super) fn leading(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Adds what this node does on another node's change.
    pub(super) fn on_change(&self, hook: ChangeHook) {
        self.follow
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// Rings `new_events` whenever another node appended events.
    pub(super) fn subscribe(&self, new_events: Arc<Notify>) {
        if self.appended.set(new_events).is_err() {
            tracing::warn!("the cluster's processor wake-up was set twice; the first one stays");
        }
    }

    fn follower(&self) -> Follower {
        Follower {
            follow: self.follow.clone(),
            appended: self.appended.clone(),
        }
    }

    /// Tells every other node about `change`. The caller does not wait:
    /// the NOTIFY is sent by a task (a lost one only delays, see the
    /// module comment).
    pub(super) fn announce(&self, db: &Db, change: Change) {
        let queued = self.appended_queued.clone();
        if change == Change::Appended && queued.swap(true, Ordering::SeqCst) {
            return;
        }
        let payload = format!("{}/{}", change.as_str(), self.node);
        let pool = db.pool.clone();
        db.spawn(async move {
            if change == Change::Appended {
                queued.store(false, Ordering::SeqCst);
            }
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&payload)
                .execute(&pool)
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, change = change.as_str(), "could not announce a change");
            }
        });
    }
}

/// The lease connection's options: the pool's, with the server's TCP
/// keepalives short, so the server notices a vanished leader within ~8 s
/// and releases its lock.
fn lease_options(pool: &PgConnectOptions) -> PgConnectOptions {
    pool.clone().application_name("inlet-lease").options([
        ("tcp_keepalives_idle", "5"),
        ("tcp_keepalives_interval", "1"),
        ("tcp_keepalives_count", "3"),
    ])
}

/// The lease task: try to take the lock every [`TRY_EVERY`]; once taken,
/// lead until a check of the connection fails.
async fn hold_lease(
    options: PgConnectOptions,
    leading: Arc<AtomicBool>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut conn: Option<PgConnection> = None;
    while !*stopping.borrow() {
        if conn.is_none() {
            conn = match tokio::time::timeout(ANSWER_WITHIN, options.connect()).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the lease connection could not be opened");
                    None
                }
                Err(_) => None,
            };
        }
        if let Some(c) = conn.as_mut() {
            match try_lock(c).await {
                Some(true) => {
                    leading.store(true, Ordering::SeqCst);
                    tracing::info!("this node holds the processing lease");
                    tokio::select! {
                        _ = keep_alive(c) => {
                            tracing::warn!("the processing lease connection failed; processing stops here");
                        }
                        _ = stopping.wait_for(|s| *s) => {}
                    }
                    leading.store(false, Ordering::SeqCst);
                    // Closing the connection releases the lock if the
                    // server still counted it held.
                    if let Some(c) = conn.take() {
                        let _ = tokio::time::timeout(ANSWER_WITHIN, c.close()).await;
                    }
                }
                Some(false) => {}
                None => conn = None,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TRY_EVERY) => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
    }
    if let Some(c) = conn.take() {
        let _ = tokio::time::timeout(ANSWER_WITHIN, c.close()).await;
    }
}

/// `pg_try_advisory_lock`: `None` when the connection failed.
async fn try_lock(conn: &mut PgConnection) -> Option<bool> {
    let tried = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(PROCESSING_LEASE)
        .fetch_one(conn);
    match tokio::time::timeout(ANSWER_WITHIN, tried).await {
        Ok(Ok(taken)) => Some(taken),
        _ => None,
    }
}

/// Returns when the lease connection stops answering.
async fn keep_alive(conn: &mut PgConnection) {
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        match tokio::time::timeout(ANSWER_WITHIN, conn.ping()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// What the listener reaches: the hook into the area states, and the
/// processor's wake-up.
struct Follower {
    follow: Arc<RwLock<Vec<ChangeHook>>>,
    appended: Arc<OnceLock<Arc<Notify>>>,
}

impl Follower {
    /// Follows one change. Hooks may query (a reload), so they run on the
    /// blocking pool, never on the listener's task.
    fn follow(self: &Arc<Self>, change: Change) {
        if change == Change::Appended {
            if let Some(wake) = self.appended.get() {
                wake.notify_one();
            }
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let hooks = me.follow.read().unwrap_or_else(PoisonError::into_inner);
            for hook in hooks.iter() {
                hook(change);
            }
        });
    }
}

/// The listener task: LISTEN on [`CHANNEL`], follow every other node's
/// change; after each (re)connect, follow every kind (see the module comment).
async fn listen(db: Db, node: uuid::Uuid, follower: Follower) {
    let follower = Arc::new(follower);
    let own = format!("/{node}");
    loop {
        let mut listener = match subscribe(&db).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "could not LISTEN for other nodes' changes");
                tokio::time::sleep(RELISTEN_AFTER).await;
                continue;
            }
        };
        for change in Change::ALL {
            follower.follow(change);
        }
        // `try_recv` answers `None` when the connection was lost.
        while let Ok(Some(message)) = listener.try_recv().await {
            let payload = message.payload();
            if payload.ends_with(&own) {
                continue;
            }
            let kind = payload.split('/').next().unwrap_or_default();
            match Change::parse(kind) {
                Some(change) => follower.follow(change),
                None => tracing::debug!(payload, "an unknown change was announced"),
            }
        }
        tracing::warn!("the LISTEN connection was lost; reconnecting");
        tokio::time::sleep(RELISTEN_AFTER).await;
    }
}

async fn subscribe(db: &Db) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&db.pool).await?;
    // Reconnecting is done here, where it is followed by "everything
    // changed"; sqlx's own would reconnect silently.
    listener.ignore_pool_close_event(true);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

impl PgStore {
    pub(super) fn may_process(&self) -> bool {
        self.cluster.leading()
    }

    pub(super) fn subscribe_changes(&self, new_events: Arc<Notify>) {
        self.cluster.subscribe(new_events);
    }

    /// One row in `retries`; the leader takes it within its next idle
    /// round, and is woken now by the `Appended` announcement.
    pub(super) fn queue_retry(&self, event: EventId) -> StoreResult<()> {
        self.db.block(async {
            sqlx::query("INSERT INTO retries (event_id) VALUES ($1)")
                .bind(event.0)
                .execute(&self.db.pool)
                .await?;
            Ok::<_, StoreError>(())
        })?;
        self.cluster.announce(&self.db, Change::Appended);
        Ok(())
    }

    /// Every queued retry, deleted as it is read (one statement).
    pub(super) fn take_retries(&self) -> StoreResult<Vec<EventId>> {
        let mut rows: Vec<(i64, uuid::Uuid)> = self.db.block(async {
            sqlx::query_as("DELETE FROM retries RETURNING seq, event_id")
                .fetch_all(&self.db.pool)
                .await
        })?;
        rows.sort_unstable_by_key(|(seq, _)| *seq);
        let mut ids: Vec<EventId> = rows.into_iter().map(|(_, id)| EventId(id)).collect();
        ids.dedup();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::super::PgOptions;
    use super::*;
    use std::time::Instant;

    /// Another node on `a`'s database.
    fn second_node(a: &PgStore) -> PgStore {
        let name: String =
            a.db.block(sqlx::query_scalar("SELECT current_database()").fetch_one(&a.db.pool))
                .expect("database name");
        let base = std::env::var("INLET_TEST_DATABASE_URL").expect("test database");
        let (server, _) = base.rsplit_once('/').expect("a database part");
        PgStore::connect(&PgOptions::new(format!("{server}/{name}"))).expect("second node")
    }

    fn wait_for(what: impl Fn() -> bool, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        what()
    }

    #[test]
    fn one_node_of_two_leads_and_the_other_takes_over_when_its_connection_dies() {
        let Some(a) = temp_store() else { return };
        assert!(wait_for(|| a.cluster.leading(), Duration::from_secs(5)));
        let b = second_node(&a);
        std::thread::sleep(Duration::from_secs(3));
        assert!(!b.cluster.leading(), "two nodes lead at once");
        // The leader's lease connection dies (as when its node is killed).
        let killed: u64 =
            a.db.block(
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = 'inlet-lease' AND datname = current_database() \
                     AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' \
                     AND granted)) t",
                )
                .fetch_one(&a.db.pool),
            )
            .expect("terminate") as u64;
        assert_eq!(killed, 1);
        let started = Instant::now();
        // a notices its lease connection died, then one of the two leads
        // again (a reconnects and tries too; either may win).
        assert!(wait_for(|| !a.cluster.leading(), Duration::from_secs(4)));
        let stopped = started.elapsed();
        assert!(wait_for(
            || b.cluster.leading() || a.cluster.leading(),
            Duration::from_secs(10)
        ));
        assert!(!(a.cluster.leading() && b.cluster.leading()));
        eprintln!("old leader stopped after {stopped:?}");
        eprintln!("lease taken over in {:?}", started.elapsed());
    }

    #[test]
    fn a_change_announced_on_one_node_reaches_the_other_and_not_itself() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let seen_a = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen_b = Arc::new(std::sync::Mutex::new(Vec::new()));
        for (node, seen) in [(&a, &seen_a), (&b, &seen_b)] {
            let seen = seen.clone();
            node.cluster.on_change(Box::new(move |c| {
                seen.lock().expect("lock").push(c);
            }));
        }
        let woken = Arc::new(Notify::new());
        b.cluster.subscribe(woken.clone());
        // Announce until b hears (its listener may still be connecting).
        let heard = wait_for(
            || {
                a.cluster.announce(&a.db, Change::Sources);
                std::thread::sleep(Duration::from_millis(150));
                seen_b.lock().expect("lock").contains(&Change::Sources)
            },
            Duration::from_secs(5),
        );
        assert!(heard, "b never heard a's change");
        // Both listeners are up now (a's too: it LISTENs before b's test
        // hook was even set); what each followed at connecting is done.
        std::thread::sleep(Duration::from_millis(300));
        seen_a.lock().expect("lock").clear();
        seen_b.lock().expect("lock").clear();
        a.cluster.announce(&a.db, Change::IdentityConfig);
        a.cluster.announce(&a.db, Change::Appended);
        assert!(wait_for(
            || seen_b.lock().expect("lock").len() >= 2,
            Duration::from_secs(5)
        ));
        let seen = seen_b.lock().expect("lock").clone();
        assert!(seen.contains(&Change::IdentityConfig) && seen.contains(&Change::Appended));
        let woke = a.db.block(async {
            tokio::time::timeout(Duration::from_secs(1), woken.notified())
                .await
                .is_ok()
        });
        // The permit was stored when the notification came in.
        assert!(woke);
        std::thread::sleep(Duration::from_millis(300));
        assert!(seen_a.lock().expect("lock").is_empty());
    }
}
