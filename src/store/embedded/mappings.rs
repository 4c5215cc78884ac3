//! Mapping versions and replay jobs.

use super::{decode, encode, Store, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::model::MappingSpec;
pub use crate::domain::replay::{MappingVersion, ReplayJob};
use chrono::Utc;

const REPLAY_PREFIX: &[u8] = b"replay/";

impl Store {
    /// Saves `mapping` as the source's next version and makes it current.
    /// Only the admin API saves mappings, one request at a time per source
    /// in practice; the version is written before the source points at it,
    /// so a crash in between leaves the previous version current.
    pub(super) fn save_mapping(
        &self,
        source: SourceId,
        mapping: &MappingSpec,
        preset: Option<String>,
    ) -> StoreResult<MappingVersion> {
        let next = self.next_mapping_version(source)?;
        let version = MappingVersion {
            version: next,
            mapping: mapping.clone(),
            created_at: Utc::now(),
            preset,
        };
        self.trees
            .mappings
            .insert(mapping_key(source, next), encode(&version))?;
        if let Some(mut s) = self.source(source)? {
            s.mapping_version = Some(next);
            s.updated_at = Utc::now();
            self.put_source(&s)?;
        }
        Ok(version)
    }

    /// Allocates the next version number atomically, so two saves racing
    /// never write the same version.
    fn next_mapping_version(&self, source: SourceId) -> StoreResult<u32> {
        let key = [b"mapver/".as_slice(), &source.to_bytes()].concat();
        let bumped = self.trees.meta.update_and_fetch(key, |old| {
            let current = old
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, u32::from_be_bytes);
            Some((current + 1).to_be_bytes().to_vec())
        })?;
        Ok(bumped
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map_or(1, u32::from_be_bytes))
    }

    /// Every version of a source's mapping, oldest first.
    pub(super) fn mapping_versions(&self, source: SourceId) -> StoreResult<Vec<MappingVersion>> {
        self.trees
            .mappings
            .scan_prefix(source.to_bytes())
            .values()
            .map(|v| decode("mappings", &v?))
            .collect()
    }

    pub(super) fn mapping_version(
        &self,
        source: SourceId,
        version: u32,
    ) -> StoreResult<Option<MappingVersion>> {
        self.trees
            .mappings
            .get(mapping_key(source, version))?
            .map(|v| decode("mappings", &v))
            .transpose()
    }

    pub(super) fn put_replay(&self, job: &ReplayJob) -> StoreResult<()> {
        self.trees
            .meta
            .insert(replay_key(job.source_id), encode(job))?;
        Ok(())
    }

    pub(super) fn replay(&self, source: SourceId) -> StoreResult<Option<ReplayJob>> {
        self.trees
            .meta
            .get(replay_key(source))?
            .map(|v| decode("meta", &v))
            .transpose()
    }

    /// Replay jobs not finished yet.
    pub(super) fn open_replays(&self) -> StoreResult<Vec<ReplayJob>> {
        let mut out = Vec::new();
        for item in self.trees.meta.scan_prefix(REPLAY_PREFIX) {
            let job: ReplayJob = decode("meta", &item?.1)?;
            if job.finished_at.is_none() {
                out.push(job);
            }
        }
        Ok(out)
    }
}

fn mapping_key(source: SourceId, version: u32) -> Vec<u8> {
    [source.to_bytes().as_slice(), &version.to_be_bytes()].concat()
}

pub(crate) fn replay_key(source: SourceId) -> Vec<u8> {
    [REPLAY_PREFIX, &source.to_bytes()].concat()
}
