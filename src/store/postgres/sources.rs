//! Sources, token lookups (with the hook path's cache), mappings and
//! replay jobs on PostgreSQL.
//!
//! The token cache is per node. A write here drops this node's cache when
//! it returns (as the embedded store: a rotated token stops resolving at
//! once on the node that rotated it) and announces `Change::Sources`, on
//! which every other node drops its own (`SourcesState::invalidate`, from
//! the cluster's LISTEN task). A notification can be lost (the LISTEN
//! connection was down), so a cached hit also expires after [`HIT_TTL`]:
//! that bounds how long another node may still take a rotated-out token.

use super::cluster::Change;
use super::events::decode;
use super::PgStore;
use crate::domain::ids::SourceId;
use crate::domain::model::MappingSpec;
use crate::domain::replay::{MappingVersion, ReplayJob};
use crate::domain::source::{SecretHash, Source};
use crate::store::{StoreError, StoreResult};
use chrono::Utc;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a cached token lookup is trusted without a notification.
const HIT_TTL: Duration = Duration::from_secs(5);

/// The node's token cache. Unknown tokens are not cached (no memory growth
/// from random URLs); the generation catches a fill racing a write, as in
/// `embedded::source_cache`.
#[derive(Default)]
pub(super) struct SourcesState {
    by_token: DashMap<String, (Arc<Source>, Instant)>,
    generation: AtomicU64,
}

impl SourcesState {
    pub(super) fn start(_db: &super::db::Db) -> StoreResult<Self> {
        Ok(Self::default())
    }

    /// Forgets every cached lookup (a source changed here or elsewhere).
    pub(super) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.by_token.clear();
    }

    fn get(&self, hash: &str) -> Option<Arc<Source>> {
        let hit = self.by_token.get(hash)?;
        let (source, at) = hit.value();
        (at.elapsed() < HIT_TTL).then(|| source.clone())
    }

    fn fill(&self, hash: &str, source: Arc<Source>, seen: u64) {
        self.by_token
            .insert(hash.to_string(), (source, Instant::now()));
        if self.generation.load(Ordering::SeqCst) != seen {
            self.by_token.remove(hash);
        }
    }
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

impl PgStore {
    /// Inserts or replaces a source and its token lookups in one
    /// transaction: the hashes it no longer has stop resolving with it.
    pub(super) fn put_source(&self, source: &Source) -> StoreResult<()> {
        let doc = encode("a source", source)?;
        let hashes: Vec<String> = source.token_hashes().map(|h| h.0.clone()).collect();
        self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            sqlx::query(
                "INSERT INTO sources (id, doc) VALUES ($1, $2::jsonb)
                 ON CONFLICT (id) DO UPDATE SET doc = EXCLUDED.doc",
            )
            .bind(source.id.0)
            .bind(&doc)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM source_tokens WHERE source_id = $1 AND NOT (hash = ANY($2))")
                .bind(source.id.0)
                .bind(&hashes)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO source_tokens (hash, source_id) SELECT UNNEST($2::text[]), $1
                 ON CONFLICT (hash) DO UPDATE SET source_id = EXCLUDED.source_id",
            )
            .bind(source.id.0)
            .bind(&hashes)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            StoreResult::Ok(())
        })?;
        self.sources_changed();
        Ok(())
    }

    /// After a source write: this node's cache now, the others' by NOTIFY.
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
        doc.map(|d| decode("sources", d.as_bytes())).transpose()
    }

    pub(super) fn sources(&self) -> StoreResult<Vec<Source>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar("SELECT doc::text FROM sources ORDER BY id")
                .fetch_all(&self.db.pool)
                .await
        })?;
        docs.iter()
            .map(|d| decode("sources", d.as_bytes()))
            .collect()
    }

    /// The source of a hook token, from this node's cache when it can (the
    /// hook path calls this on every request).
    pub(super) fn cached_source_by_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<Source>>> {
        if let Some(hit) = self.sources_state.get(&hash.0) {
            return Ok(Some(hit));
        }
        let seen = self.sources_state.generation.load(Ordering::SeqCst);
        let Some(source) = self.source_by_token(hash)? else {
            return Ok(None);
        };
        let source = Arc::new(source);
        self.sources_state.fill(&hash.0, source.clone(), seen);
        Ok(Some(source))
    }

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
        doc.map(|d| decode("sources", d.as_bytes())).transpose()
    }

    /// Removes a source and (by the foreign key) its tokens. Its events stay
    /// until retention, as in the embedded backend.
    pub(super) fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar("DELETE FROM sources WHERE id = $1 RETURNING doc::text")
                .bind(id.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        self.sources_changed();
        decode("sources", doc.as_bytes()).map(Some)
    }

    /// Saves the source's next mapping version and makes it current, in one
    /// transaction. The source's row lock serialises saves from every node,
    /// so two never take the same number.
    pub(super) fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        let saved = self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            let current: Option<String> =
                sqlx::query_scalar("SELECT doc::text FROM sources WHERE id = $1 FOR UPDATE")
                    .bind(source.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            let last: Option<i32> = sqlx::query_scalar(
                "SELECT max(version) FROM mapping_versions WHERE source_id = $1",
            )
            .bind(source.0)
            .fetch_one(&mut *tx)
            .await?;
            let version = MappingVersion {
                version: u32::try_from(last.unwrap_or(0)).unwrap_or(0) + 1,
                mapping: mapping.clone(),
                created_at: Utc::now(),
                preset: preset.clone(),
            };
            sqlx::query(
                "INSERT INTO mapping_versions (source_id, version, doc) VALUES ($1, $2, $3::jsonb)",
            )
            .bind(source.0)
            .bind(version.version as i32)
            .bind(encode("a mapping version", &version)?)
            .execute(&mut *tx)
            .await?;
            if let Some(current) = current {
                let mut s: Source = decode("sources", current.as_bytes())?;
                s.mapping_version = Some(version.version);
                s.updated_at = Utc::now();
                sqlx::query("UPDATE sources SET doc = $2::jsonb WHERE id = $1")
                    .bind(source.0)
                    .bind(encode("a source", &s)?)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            StoreResult::Ok(version)
        })?;
        self.sources_changed();
        Ok(saved)
    }

    pub(super) fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT doc::text FROM mapping_versions WHERE source_id = $1 ORDER BY version",
            )
            .bind(source.0)
            .fetch_all(&self.db.pool)
            .await
        })?;
        docs.iter()
            .map(|d| decode("mapping_versions", d.as_bytes()))
            .collect()
    }

    pub(super) fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        let Ok(version) = i32::try_from(version) else {
            return Ok(None);
        };
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT doc::text FROM mapping_versions WHERE source_id = $1 AND version = $2",
            )
            .bind(source.0)
            .bind(version)
            .fetch_optional(&self.db.pool)
            .await
        })?;
        doc.map(|d| decode("mapping_versions", d.as_bytes()))
            .transpose()
    }

    pub(super) fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        let doc = encode("a replay job", job)?;
        self.db.block(async {
            sqlx::query(
                "INSERT INTO replays (source_id, finished, doc) VALUES ($1, $2, $3::jsonb)
                 ON CONFLICT (source_id) DO UPDATE
                 SET finished = EXCLUDED.finished, doc = EXCLUDED.doc",
            )
            .bind(job.source_id.0)
            .bind(job.finished_at.is_some())
            .bind(&doc)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }

    pub(super) fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        let doc: Option<String> = self.db.block(async {
            sqlx::query_scalar("SELECT doc::text FROM replays WHERE source_id = $1")
                .bind(source.0)
                .fetch_optional(&self.db.pool)
                .await
        })?;
        doc.map(|d| decode("replays", d.as_bytes())).transpose()
    }

    pub(super) fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        let docs: Vec<String> = self.db.block(async {
            sqlx::query_scalar(
                "SELECT doc::text FROM replays WHERE NOT finished ORDER BY source_id",
            )
            .fetch_all(&self.db.pool)
            .await
        })?;
        docs.iter()
            .map(|d| decode("replays", d.as_bytes()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::temp_store;
    use super::super::{PgOptions, PgStore};
    use crate::domain::model::MappingSpec;
    use crate::domain::source::{SecretHash, Source};
    use sqlx::ConnectOptions;

    fn lookup(store: &PgStore, token: &str) -> Option<String> {
        store
            .cached_source_by_token(&SecretHash::of(token.as_bytes()))
            .expect("lookup")
            .map(|s| s.name.clone())
    }

    fn second_node(store: &PgStore) -> PgStore {
        let url = store.db.pool.connect_options().to_url_lossy().to_string();
        PgStore::connect(&PgOptions::new(url)).expect("second node")
    }

    #[test]
    fn a_source_round_trips_and_a_rotated_token_swaps_in_one_write() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let (mut source, old) = Source::create("Shop", None, None).expect("source");
        a.put_source(&source).unwrap();
        assert_eq!(a.source(source.id).unwrap().unwrap().name, "Shop");
        assert_eq!(a.sources().unwrap().len(), 1);
        assert_eq!(lookup(&b, &old).as_deref(), Some("Shop"), "another node");
        let new = source.rotate();
        a.put_source(&source).unwrap();
        assert_eq!(lookup(&a, &new).as_deref(), Some("Shop"));
        // Rotated without a grace: the old hash is gone in the same write.
        assert!(a
            .source_by_token(&SecretHash::of(old.as_bytes()))
            .unwrap()
            .is_none());
        assert_eq!(lookup(&a, &old), None);
        b.sources_state.invalidate();
        a.delete_source(source.id).unwrap().expect("was there");
        assert_eq!(lookup(&a, &new), None, "gone at once on the writing node");
        assert_eq!(lookup(&b, &new), None, "and on another once told");
        assert!(a.delete_source(source.id).unwrap().is_none());
    }

    #[test]
    fn concurrent_mapping_saves_on_two_nodes_take_distinct_consecutive_versions() {
        let Some(a) = temp_store() else { return };
        let b = second_node(&a);
        let (source, _) = Source::create("Shop", None, None).expect("source");
        a.put_source(&source).unwrap();
        let spec: MappingSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        std::thread::scope(|scope| {
            for node in [&a, &b, &a, &b] {
                let spec = spec.clone();
                scope.spawn(move || {
                    for _ in 0..5 {
                        node.save_mapping(source.id, &spec, None).unwrap();
                    }
                });
            }
        });
        let versions: Vec<u32> = a
            .mapping_versions(source.id)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, (1..=20).collect::<Vec<_>>());
        assert_eq!(
            a.source(source.id).unwrap().unwrap().mapping_version,
            Some(20)
        );
        assert_eq!(a.mapping_version(source.id, 7).unwrap().unwrap().version, 7);
        assert!(a.mapping_version(source.id, 21).unwrap().is_none());
    }
}
