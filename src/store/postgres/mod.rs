//! The PostgreSQL backend: every piece of state in one database, shared by
//! any number of Inlet nodes (`--database-url`). It implements the seam's
//! traits in `seam_impl`; each method's body lives with its concept:
//!
//! - `db`: the pool and the bridge from the synchronous seam to sqlx.
//! - `committer`: group commit of appends (one transaction, one `COMMIT`
//!   for every request that arrived meanwhile).
//! - `log`: the event log and the processor's queue (`events`, `pending`).
//! - `events`: event states, pages and bounded views.
//! - `sources`, `state`: sources, tokens, mappings, replays; the error log,
//!   counters, idempotency keys, schemas, time buckets, deliveries.
//! - `identity`, `split`, `erasure`: profiles and the identity unit of
//!   work, undoing a merge, erasure.
//! - `cluster`: what nodes tell each other (LISTEN/NOTIFY).
//!
//! The schema is in `migrations/`, embedded in the binary and applied at
//! start under PostgreSQL's advisory lock (sqlx's migrator), so nodes that
//! start together apply each migration once.

mod cluster;
mod committer;
mod db;
mod erasure;
mod events;
mod identity;
mod import;
mod log;
mod seam_impl;
mod sessions;
mod sources;
mod split;
mod state;

pub use committer::Committer;

use crate::store::{StoreError, StoreResult};
use cluster::{Change, Cluster};
use db::Db;
use std::sync::Arc;
use std::time::Duration;

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections this node keeps at most.
    pub max_connections: u32,
    /// How long a starting node waits for PostgreSQL to answer.
    pub connect_within: Duration,
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            connect_within: Duration::from_secs(30),
        }
    }
}

/// The embedded migrations (`src/store/postgres/migrations`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/postgres/migrations");

#[derive(Clone)]
pub struct PgStore {
    db: Db,
    committer: Arc<Committer>,
    cluster: Arc<Cluster>,
    log: Arc<log::LogState>,
    sources_state: Arc<sources::SourcesState>,
    identity_state: Arc<identity::IdentityState>,
    /// Permits for scans that may read past one page (see the seam).
    scans: Arc<tokio::sync::Semaphore>,
    /// The last `SELECT 1` of `/healthz` (see `sessions`).
    reachability: Arc<sessions::Reachability>,
}

impl PgStore {
    /// Connects (waiting `connect_within` for the database), migrates, and
    /// starts the background tasks.
    pub(super) fn connect(options: &PgOptions) -> StoreResult<Self> {
        let db = Db::open(&options.url, options.max_connections)?;
        db.wait_reachable(options.connect_within)?;
        db.block(MIGRATOR.run(&db.pool))
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let cluster = Arc::new(Cluster::start(&db));
        let force_sync = log::synchronous_commit_is_off(&db)?;
        let store = Self {
            committer: Committer::start(&db, cluster.clone(), force_sync),
            log: Arc::new(log::LogState::start(&db)?),
            sources_state: Arc::new(sources::SourcesState::start(&db)?),
            identity_state: Arc::new(identity::IdentityState::start(&db)?),
            scans: Arc::new(tokio::sync::Semaphore::new(
                super::embedded::summary::CONCURRENT_SCANS,
            )),
            cluster,
            reachability: Arc::default(),
            db,
        };
        store.follow_other_nodes();
        Ok(store)
    }

    /// What this node does when another announces a change (see `cluster`).
    fn follow_other_nodes(&self) {
        let (db, sources, identity) = (
            self.db.clone(),
            self.sources_state.clone(),
            self.identity_state.clone(),
        );
        self.cluster.on_change(Box::new(move |change| match change {
            Change::Sources => sources.invalidate(),
            Change::IdentityConfig => {
                if let Err(e) = identity.reload(&db) {
                    tracing::warn!(error = %e, "could not reload the identity config another node changed");
                }
            }
            Change::Appended | Change::Processed => {}
        }));
    }

    /// The group committer (started with the store; `delay` is how long a
    /// commit may wait to gather more requests, as the embedded flusher).
    pub(super) fn start_group_commit(&self, delay: Duration) -> Arc<Committer> {
        self.committer.set_delay(delay);
        self.committer.clone()
    }

    /// Gives up the processing lease, then stops the committer after its
    /// last transaction.
    pub(super) fn close(&self) -> StoreResult<()> {
        self.cluster.stop();
        self.committer.stop();
        self.db
            .block(self.committer.stopped(Duration::from_secs(10)));
        Ok(())
    }

    /// The database's size (`pg_database_size`), 0 when it cannot be read.
    pub(super) fn size_on_disk(&self) -> u64 {
        let size: StoreResult<i64> = self.db.block(async {
            Ok(
                sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&self.db.pool)
                    .await?,
            )
        });
        size.map(|s| s.max(0) as u64).unwrap_or(0)
    }

    /// Tells every node about a change its caches must follow.
    fn announce(&self, change: Change) {
        self.cluster.announce(&self.db, change);
    }
}

/// Unit tests' PostgreSQL: a fresh database on the server that
/// `INLET_TEST_DATABASE_URL` names (`postgres://user@host:port/postgres`),
/// or `None` (the test then says it skipped).
#[cfg(test)]
pub(crate) mod testing {
    use super::{PgOptions, PgStore};

    pub(crate) fn temp_store() -> Option<PgStore> {
        let url = temp_database_url()?;
        Some(PgStore::connect(&PgOptions::new(url)).expect("connect"))
    }

    /// A fresh, empty database's URL (nothing connected to it yet).
    pub(crate) fn temp_database_url() -> Option<String> {
        let Ok(base) = std::env::var("INLET_TEST_DATABASE_URL") else {
            eprintln!("SKIPPED postgres tests: INLET_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("unit_{}", uuid::Uuid::new_v4().simple());
        let db = super::db::Db::open(&base, 2).expect("pool");
        db.block(async {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&db.pool)
                .await
        })
        .expect("create database");
        match base.rsplit_once('/') {
            Some((server, _)) => Some(format!("{server}/{name}")),
            None => panic!("INLET_TEST_DATABASE_URL has no database part"),
        }
    }
}
