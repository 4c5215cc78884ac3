//! Sources, token lookups (with the hook path's cache), mappings and
//! replay jobs on PostgreSQL.
//!
//! The hook path resolves a token on every request, so each node keeps the
//! answers it read in `SourcesState`: a hit costs no round trip. A source
//! write on this node clears the cache before it returns (a rotated or
//! deleted token stops resolving here at once) and announces
//! `Change::Sources`, on which every other node clears its own. A NOTIFY
//! can be missed (see `HIT_TTL`), so cached answers also expire.

use super::cluster::Change;
use super::PgStore;
use crate::domain::ids::SourceId;
use crate::domain::model::MappingSpec;
use crate::domain::replay::{MappingVersion, ReplayJob};
use crate::domain::source::{SecretHash, Source};
use crate::store::{StoreError, StoreResult};
use chrono::{DateTime, SubsecRound, Utc};
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node trusts a token it found without asking again. The
/// NOTIFY that tells it about another node's write is lost when its
/// listening connection drops (a database restart, a network cut):
/// PostgreSQL keeps no notifications for a listener that is not there. So
/// a rotated-out or deleted token could otherwise keep opening its source
/// on that node for ever; this bounds it to a few seconds. (The end of a
/// rotation's grace needs no expiry: the hook path checks it on every
/// request, `Source::token_use`.)
const HIT_TTL: Duration = Duration::from_secs(5);

/// How long a node remembers that a token is unknown, so a sender hammering
/// a deleted or mistyped URL costs one query per token every so often, not
/// one per request. Short: a token created on another node whose NOTIFY was
/// missed stays refused here at most this long.
const MISS_TTL: Duration = Duration::from_secs(2);

/// Unknown tokens remembered at most: random URLs cannot grow memory
/// without bound (past it the misses are forgotten and read again).
const MISS_CAP: usize = 10_000;

/// What the node remembers of a token.
enum Cached {
    Source(Arc<Source>),
    Unknown,
}

/// The node's token cache (rebuilt from the database on demand).
///
/// Correctness rule, as the embedded `source_cache`: a reader that missed
/// the cache and read the database while a write committed could put a
/// stale answer back; the generation counter catches it (the reader
/// re-checks it after inserting and drops its entry when a write, or an
/// announced one, happened meanwhile).
pub(super) struct SourcesState {
    hits: DashMap<String, (Arc<Source>, Instant)>,
    misses: DashMap<String, Instant>,
    /// Bumped by every invalidation.
    generation: AtomicU64,
    hit_ttl: Duration,
    miss_ttl: Duration,
}

impl SourcesState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::with_ttls(HIT_TTL, MISS_TTL))
    }

    fn with_ttls(hit_ttl: Duration, miss_ttl: Duration) -> Self {
        Self {
            hits: DashMap::new(),
            misses: DashMap::new(),
            generation: AtomicU64::new(0),
            hit_ttl,
            miss_ttl,
        }
    }

    /// What the cache knows of `hash` and has not outlived; `None`: ask
    /// the database.
    fn get(&self, hash: &str) -> Option<Cached> {
        if let Some(hit) = self.hits.get(hash) {
            let (source, read_at) = hit.value();
            if read_at.elapsed() < self.hit_ttl {
                return Some(Cached::Source(source.clone()));
            }
        }
        match self.misses.get(hash) {
            Some(read_at) if read_at.elapsed() < self.miss_ttl => Some(Cached::Unknown),
            _ => None,
        }
    }

    /// Read before asking the database on a miss; pass to `fill`.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Remembers what a miss read, unless an invalidation raced it.
    fn fill(&self, hash: &str, found: Option<&Arc<Source>>, seen: u64) {
        let now = Instant::now();
        match found {
            Some(source) => {
                self.misses.remove(hash);
                self.hits.insert(hash.to_string(), (source.clone(), now));
            }
            None => {
                if self.misses.len() >= MISS_CAP {
                    self.misses.clear();
                }
                self.hits.remove(hash);
                self.misses.insert(hash.to_string(), now);
            }
        }
        if self.generation.load(Ordering::SeqCst) != seen {
            self.hits.remove(hash);
            self.misses.remove(hash);
        }
    }

    /// Forgets everything: after this node's source writes, and when
    /// another node announces one (the cluster's LISTEN task calls it).
    pub(super) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.hits.clear();
        self.misses.clear();
    }
}

fn corrupt(tree: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |source| StoreError::Corrupt { tree, source }
}

fn to_json<T: serde::Serialize>(what: &'static str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

fn decode_source(json: &str) -> StoreResult<Source> {
    serde_json::from_str(json).map_err(corrupt("sources"))
}

/// A mapping version as stored: version, mapping JSON, created_at, preset.
type MappingRow = (i32, String, DateTime<Utc>, Option<String>);

fn mapping_of(row: MappingRow) -> StoreResult<MappingVersion> {
    let (version, mapping, created_at, preset) = row;
    Ok(MappingVersion {
        version: u32::try_from(version).map_err(|_| StoreError::Malformed {
            tree: "mappings",
            what: "a negative version number",
        })?,
        mapping: serde_json::from_str(&mapping).map_err(corrupt("mappings"))?,
        created_at,
        preset,
    })
}

fn version_column(version: u32) -> StoreResult<i32> {
    i32::try_from(version).map_err(|_| StoreError::Malformed {
        tree: "mappings",
        what: "a version number past the column's range",
    })
}

impl PgStore {
    /// Inserts or replaces a source and its token lookups in one statement
    /// (so atomically): every hash it has (the current token, a rotated-out
    /// one it keeps) resolves to it, the hashes it no longer has stop
    /// resolving. Then the token caches of every node are cleared.
    pub(super) fn put_source(&self, source: &Source) -> StoreResult<()> {
        let doc = to_json("a source", source)?;
        let hashes: Vec<&str> = source.token_hashes().map(|h| h.0.as_str()).collect();
        self.db.block(async {
            // Data-modifying CTEs run once whether or not they are read.
            sqlx::query(
                "WITH written AS (
                     INSERT INTO sources (id, doc) VALUES ($1, $2::jsonb)
                     ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc
                 ), gone AS (
                     DELETE FROM source_tokens
                     WHERE source_id = $1 AND NOT (hash = ANY($3::text[]))
                 )
                 INSERT INTO source_tokens (hash, source_id)
                 SELECT h, $1 FROM UNNEST($3::text[]) AS h
                 ON CONFLICT (hash) DO UPDATE SET source_id = EXCLUDED.source_id",
            )
            .bind(source.id.0)
            .bind(&doc)
            .bind(&hashes)
            .execute(&self.db.pool)
            .await
        })?;
        self.sources_changed();
        Ok(())
    }

    /// Clears this node's token cache now and tells the others.
    fn sources_changed(&self) {
        self.sources_state.invalidate();
        self.announce(Change::Sources);
    }

    pub(super) fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar("SELECT doc::text FROM sources WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        doc.as_deref().map(decode_source).transpose()
    }

    /// Every source, in id order (UUID order is byte order on both sides).
    pub(super) fn sources(&self) -> StoreResult<Vec<Source>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar("SELECT doc::text FROM sources ORDER BY id")
                .fetch_all(&self.db.pool)
                .await
        })?;
        docs.iter().map(|doc| decode_source(doc)).collect()
    }

    /// The source a hook token belongs to, from this node's cache when it
    /// knows (the hook path calls this on every request). Shared, not cloned.
    pub(super) fn cached_source_by_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<Source>>> {
        let cache = &self.sources_state;
        match cache.get(&hash.0) {
            Some(Cached::Source(source)) => return Ok(Some(source)),
            Some(Cached::Unknown) => return Ok(None),
            None => {}
        }
        let seen = cache.generation();
        let found = self.source_by_token(hash)?.map(Arc::new);
        cache.fill(&hash.0, found.as_ref(), seen);
        Ok(found)
    }

    /// The source a hook token belongs to, read from the database.
    pub(super) fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT s.doc::text FROM source_tokens t JOIN sources s ON s.id = t.source_id
                 WHERE t.hash = $1",
            )
            .bind(&hash.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        doc.as_deref().map(decode_source).transpose()
    }

    /// Removes a source and its token lookups in one statement. Its stored
    /// events, mappings and replay job stay, as in the embedded store (the
    /// events are the audit trail until retention prunes them).
    pub(super) fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar(
                "WITH tokens AS (DELETE FROM source_tokens WHERE source_id = $1)
                 DELETE FROM sources WHERE id = $1 RETURNING doc::text",
            )
            .bind(id.0)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        self.sources_changed();
        decode_source(&doc).map(Some)
    }

    /// Saves `mapping` as the source's next version and makes it current,
    /// in one transaction. The version comes from the source's counter row,
    /// whose lock is held until commit: saves of one source on any node
    /// run one after another, so their numbers are consecutive and the
    /// source ends pointing at the last one.
    pub(super) fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        let json = to_json("a mapping", mapping)?;
        // The column keeps microseconds: what is returned is what reads give.
        let created_at = Utc::now().trunc_subsecs(6);
        let (version, pointed) = self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            let counted: i32 = sqlx::query_scalar(
                "INSERT INTO mapping_counters (source_id, last) VALUES ($1, 1)
                 ON CONFLICT (source_id) DO UPDATE SET last = mapping_counters.last + 1
                 RETURNING last",
            )
            .bind(source.0)
            .fetch_one(&mut *tx)
            .await?;
            let version = u32::try_from(counted).map_err(|_| StoreError::Malformed {
                tree: "mapping_counters",
                what: "a negative version number",
            })?;
            sqlx::query(
                "INSERT INTO mappings (source_id, version, mapping, created_at, preset)
                 VALUES ($1, $2, $3::jsonb, $4, $5)",
            )
            .bind(source.0)
            .bind(counted)
            .bind(&json)
            .bind(created_at)
            .bind(preset.as_deref())
            .execute(&mut *tx)
            .await?;
            let pointed = point_source_at(&mut tx, source, version).await?;
            tx.commit().await?;
            Ok::<_, StoreError>((version, pointed))
        })?;
        if pointed {
            self.sources_changed();
        }
        Ok(MappingVersion {
            version,
            mapping: mapping.clone(),
            created_at,
            preset,
        })
    }

    /// Every version of a source's mapping, oldest first.
    pub(super) fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        let rows: Vec<MappingRow> = self.db.block(async {
            sqlx::query_as(
                "SELECT version, mapping::text, created_at, preset FROM mappings
                 WHERE source_id = $1 ORDER BY version",
            )
            .bind(source.0)
            .fetch_all(&self.db.pool)
            .await
        })?;
        rows.into_iter().map(mapping_of).collect()
    }

    pub(super) fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        let version = version_column(version)?;
        let row: Option<MappingRow> = self.db.block(async {
            sqlx::query_as(
                "SELECT version, mapping::text, created_at, preset FROM mappings
                 WHERE source_id = $1 AND version = $2",
            )
            .bind(source.0)
            .bind(version)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        row.map(mapping_of).transpose()
    }

    /// Writes a replay job's progress (one per source; replaces it).
    pub(super) fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        let doc = to_json("a replay job", job)?;
        self.db.block(async {
            sqlx::query(
                "INSERT INTO replays (source_id, job, finished) VALUES ($1, $2::jsonb, $3)
                 ON CONFLICT (source_id) DO UPDATE
                 SET job = EXCLUDED.job, finished = EXCLUDED.finished",
            )
            .bind(job.source_id.0)
            .bind(&doc)
            .bind(job.finished_at.is_some())
            .execute(&self.db.pool)
            .await
        })?;
        Ok(())
    }

    pub(super) fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar("SELECT job::text FROM replays WHERE source_id = $1")
                .bind(source.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        doc.map(|doc| serde_json::from_str(&doc).map_err(corrupt("replays")))
            .transpose()
    }

    /// Replay jobs not finished yet, in source id order.
    pub(super) fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT job::text FROM replays WHERE NOT finished ORDER BY source_id",
            )
            .fetch_all(&self.db.pool)
            .await
        })?;
        docs.iter()
            .map(|doc| serde_json::from_str(doc).map_err(corrupt("replays")))
            .collect()
    }
}

/// Makes the source (if it exists) point at `version`, under its row lock
/// so a concurrent write of the source is not lost. `false`: no source.
async fn point_source_at(
    conn: &mut sqlx::PgConnection,
    source: SourceId,
    version: u32,
) -> StoreResult<bool> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc::text FROM sources WHERE id = $1 FOR UPDATE")
            .bind(source.0)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(doc) = doc else {
        return Ok(false);
    };
    let mut current = decode_source(&doc)?;
    current.mapping_version = Some(version);
    current.updated_at = Utc::now();
    sqlx::query("UPDATE sources SET doc = $2::jsonb WHERE id = $1")
        .bind(source.0)
        .bind(to_json("a source", &current)?)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL (`INLET_TEST_DATABASE_URL`; skipped
    //! without it): round trips, rotation, two nodes, concurrent saves.
    use super::*;
    use crate::domain::model::MappingSpec;
    use crate::domain::replay::ReplayScope;
    use crate::domain::source::{Grace, TokenUse};
    use crate::store::postgres::testing::temp_store;

    /// A second node on the same database as `pg`.
    fn another_node(pg: &PgStore) -> PgStore {
        let base = std::env::var("INLET_TEST_DATABASE_URL").unwrap();
        let name: String = pg
            .db
            .block(sqlx::query_scalar("SELECT current_database()").fetch_one(&pg.db.pool))
            .unwrap();
        let (server, _) = base.rsplit_once('/').unwrap();
        PgStore::connect(&super::super::PgOptions::new(format!("{server}/{name}"))).unwrap()
    }

    fn by_token(pg: &PgStore, token: &str) -> Option<String> {
        pg.cached_source_by_token(&SecretHash::of(token.as_bytes()))
            .unwrap()
            .map(|s| s.name.clone())
    }

    fn spec(name: &str) -> MappingSpec {
        MappingSpec {
            event_name: Some(name.into()),
            ..MappingSpec::default()
        }
    }

    fn tokens_of(pg: &PgStore, id: SourceId) -> i64 {
        pg.db
            .block(
                sqlx::query_scalar("SELECT count(*) FROM source_tokens WHERE source_id = $1")
                    .bind(id.0)
                    .fetch_one(&pg.db.pool),
            )
            .unwrap()
    }

    #[test]
    fn sources_mappings_and_replays_read_back_as_written() {
        let Some(pg) = temp_store() else { return };
        let (mut a, token) = Source::create("Shop", None, Some("data.rows".into())).unwrap();
        let (b, _) = Source::create("Billing", None, None).unwrap();
        a.set_blocked_values(vec!["n/a".into()]);
        pg.put_source(&a).unwrap();
        pg.put_source(&b).unwrap();
        assert_eq!(pg.source(a.id).unwrap().as_ref(), Some(&a));
        assert_eq!(pg.source(SourceId::new()).unwrap(), None);
        let mut in_id_order = vec![a.clone(), b.clone()];
        in_id_order.sort_by_key(|s| s.id);
        assert_eq!(pg.sources().unwrap(), in_id_order);
        let hash = SecretHash::of(token.as_bytes());
        assert_eq!(pg.source_by_token(&hash).unwrap().as_ref(), Some(&a));

        // Mappings: consecutive versions, the source points at the last.
        let v1 = pg.save_mapping(a.id, &spec("one"), None).unwrap();
        let v2 = pg
            .save_mapping(a.id, &spec("two"), Some("stripe".into()))
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(pg.mapping_versions(a.id).unwrap(), vec![v1.clone(), v2]);
        assert_eq!(pg.mapping_version(a.id, 1).unwrap(), Some(v1));
        assert_eq!(pg.mapping_version(a.id, 3).unwrap(), None);
        let pointed = pg.source(a.id).unwrap().unwrap();
        assert_eq!(pointed.mapping_version, Some(2));
        assert_eq!(by_token(&pg, &token).as_deref(), Some("Shop"));
        // A mapping of a source that does not exist is kept (as embedded).
        let orphan = SourceId::new();
        assert_eq!(
            pg.save_mapping(orphan, &spec("x"), None).unwrap().version,
            1
        );

        // Replay jobs: one per source, open ones listed.
        let mut job = ReplayJob {
            source_id: a.id,
            status: ReplayScope::Failed,
            since: None,
            version: Some(2),
            after: None,
            total: 10,
            done: 0,
            started_at: Utc::now(),
            finished_at: None,
        };
        pg.put_replay(&job).unwrap();
        assert_eq!(pg.replay(a.id).unwrap().as_ref(), Some(&job));
        assert_eq!(pg.open_replays().unwrap(), vec![job.clone()]);
        job.done = 10;
        job.finished_at = Some(Utc::now());
        pg.put_replay(&job).unwrap();
        assert_eq!(pg.replay(a.id).unwrap(), Some(job));
        assert!(pg.open_replays().unwrap().is_empty());
        assert_eq!(pg.replay(b.id).unwrap(), None);

        // Deleting: gone with its token, the others stay.
        assert_eq!(pg.delete_source(a.id).unwrap(), Some(pointed));
        assert_eq!(pg.delete_source(a.id).unwrap(), None);
        assert_eq!(pg.source_by_token(&hash).unwrap(), None);
        assert_eq!(by_token(&pg, &token), None);
        assert_eq!(tokens_of(&pg, a.id), 0);
        assert_eq!(pg.sources().unwrap(), vec![b]);
    }

    #[test]
    fn a_rotated_token_resolves_during_its_grace_and_not_after() {
        let Some(pg) = temp_store() else { return };
        let (mut source, first) = Source::create("Shop", None, None).unwrap();
        pg.put_source(&source).unwrap();
        assert_eq!(by_token(&pg, &first).as_deref(), Some("Shop"));

        // With a grace: both tokens open the source; the old one as `Previous`.
        let second = source.rotate_with_grace(Grace::seconds(60).unwrap());
        pg.put_source(&source).unwrap();
        assert_eq!(tokens_of(&pg, source.id), 2);
        let old = SecretHash::of(first.as_bytes());
        let found = pg.cached_source_by_token(&old).unwrap().unwrap();
        assert_eq!(found.token_use(&old, Utc::now()), Some(TokenUse::Previous));
        assert_eq!(by_token(&pg, &second).as_deref(), Some("Shop"));
        // Past the grace the lookup still finds the source (its page says
        // when the old URL stopped), but the token no longer opens it.
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(found.token_use(&old, later), None);

        // The next rotation, without grace: only the newest token resolves.
        let third = source.rotate();
        pg.put_source(&source).unwrap();
        assert_eq!(tokens_of(&pg, source.id), 1);
        assert_eq!(by_token(&pg, &first), None);
        assert_eq!(by_token(&pg, &second), None);
        assert_eq!(by_token(&pg, &third).as_deref(), Some("Shop"));
    }

    #[test]
    fn another_node_follows_a_source_write_after_invalidate_or_within_the_expiry() {
        let Some(a) = temp_store() else { return };
        let mut b = another_node(&a);
        let hit_ttl = Duration::from_millis(300);
        b.sources_state = Arc::new(SourcesState::with_ttls(hit_ttl, Duration::from_millis(200)));

        // Created on A: B takes it at once (it never cached this token).
        let (mut source, first) = Source::create("Shop", None, None).unwrap();
        a.put_source(&source).unwrap();
        assert_eq!(by_token(&b, &first).as_deref(), Some("Shop"));

        // Rotated on A: B follows once told (the LISTEN task's call)...
        let second = source.rotate();
        a.put_source(&source).unwrap();
        b.sources_state.invalidate();
        assert_eq!(by_token(&b, &first), None);
        assert_eq!(by_token(&b, &second).as_deref(), Some("Shop"));

        // ...and without being told, once its cached hit expires.
        let third = source.rotate();
        a.put_source(&source).unwrap();
        std::thread::sleep(hit_ttl + Duration::from_millis(50));
        assert_eq!(by_token(&b, &second), None);
        assert_eq!(by_token(&b, &third).as_deref(), Some("Shop"));

        // Deleted on A: the same.
        a.delete_source(source.id).unwrap();
        std::thread::sleep(hit_ttl + Duration::from_millis(50));
        assert_eq!(by_token(&b, &third), None);
    }

    #[test]
    fn an_unknown_token_is_remembered_briefly() {
        let Some(mut pg) = temp_store() else { return };
        let miss_ttl = Duration::from_millis(300);
        pg.sources_state = Arc::new(SourcesState::with_ttls(Duration::from_secs(60), miss_ttl));
        let (source, token) = Source::create("Shop", None, None).unwrap();
        assert_eq!(by_token(&pg, &token), None);
        // Written behind the cache's back, announcing nothing (as by another
        // node whose NOTIFY was lost).
        let doc = to_json("a source", &source).unwrap();
        pg.db
            .block(
                sqlx::query(
                    "WITH s AS (INSERT INTO sources (id, doc) VALUES ($1, $2::jsonb))
                     INSERT INTO source_tokens (hash, source_id) VALUES ($3, $1)",
                )
                .bind(source.id.0)
                .bind(&doc)
                .bind(&source.token_hash.0)
                .execute(&pg.db.pool),
            )
            .unwrap();
        assert_eq!(by_token(&pg, &token), None, "the miss is remembered");
        std::thread::sleep(miss_ttl + Duration::from_millis(50));
        assert_eq!(by_token(&pg, &token).as_deref(), Some("Shop"));
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache = SourcesState::with_ttls(HIT_TTL, MISS_TTL);
        let (source, token) = Source::create("Shop", None, None).unwrap();
        let hash = SecretHash::of(token.as_bytes());
        let seen = cache.generation();
        cache.invalidate();
        cache.fill(&hash.0, Some(&Arc::new(source)), seen);
        assert!(cache.get(&hash.0).is_none());
        cache.fill(&hash.0, None, seen);
        assert!(cache.get(&hash.0).is_none());
    }

    #[test]
    fn concurrent_saves_on_two_nodes_get_distinct_consecutive_versions() {
        let Some(a) = temp_store() else { return };
        let b = another_node(&a);
        let (source, _) = Source::create("Shop", None, None).unwrap();
        a.put_source(&source).unwrap();
        let per_node = 20;
        let threads: Vec<_> = [a.clone(), b]
            .into_iter()
            .map(|node| {
                std::thread::spawn(move || {
                    (0..per_node)
                        .map(|i| {
                            node.save_mapping(source.id, &spec(&format!("m{i}")), None)
                                .unwrap()
                                .version
                        })
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        let mut versions: Vec<u32> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        versions.sort_unstable();
        let expected: Vec<u32> = (1..=2 * per_node).collect();
        assert_eq!(versions, expected);
        let listed: Vec<u32> = a
            .mapping_versions(source.id)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(listed, expected);
        let last = a.source(source.id).unwrap().unwrap().mapping_version;
        assert_eq!(last, Some(2 * per_node));
    }

    /// What a token lookup costs on the hook path, cached and not:
    /// `cargo test --lib store::postgres::sources::tests::token_lookup_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn token_lookup_cost() {
        let Some(pg) = temp_store() else { return };
        let (source, token) = Source::create("Shop", None, None).unwrap();
        pg.put_source(&source).unwrap();
        let hash = SecretHash::of(token.as_bytes());
        let unknown = SecretHash::of(b"no such token");
        let n = 200_000;
        for (what, hash) in [("hit", &hash), ("remembered miss", &unknown)] {
            pg.cached_source_by_token(hash).unwrap();
            let started = Instant::now();
            for _ in 0..n {
                std::hint::black_box(pg.cached_source_by_token(hash).unwrap());
            }
            let each = started.elapsed() / n;
            println!("cached {what}: {} ns a lookup", each.as_nanos());
        }
        let queries = 2_000;
        let started = Instant::now();
        for _ in 0..queries {
            std::hint::black_box(pg.source_by_token(&hash).unwrap());
        }
        let each = started.elapsed() / queries;
        println!("uncached (one query): {} µs a lookup", each.as_micros());
    }
}
