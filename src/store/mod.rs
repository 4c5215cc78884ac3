//! The only module that touches sled.
//!
//! Trees (keys are big-endian so sled's order is the order we scan in):
//! - `sources`: source id → `Source` JSON; `source_tokens`: token hash → source id.
//! - `events`: event id (UUID v7) → source id (16 bytes) ‖ `RawEvent` JSON,
//!   immutable after the 202 (erasure aside); also in the write-ahead log
//!   (`wal`) until a checkpoint.
//! - `event_state`: event id → `EventState` JSON, written by the processor.
//! - `events_by_source`: source id ‖ event id → (), written by the processor.
//! - `errors`: error id (UUID v7) → `ErrorEntry` JSON.
//! - `meta`: named singletons (processor cursor, counters, schema snapshots).
//! - `mappings`: source id ‖ version (u32 BE) → mapping JSON.
//! - `ident`: typed identifier (`x:`/`e:`/`v:` + value) → profile id.
//! - `profiles`: profile id → profile JSON; `redirects`: absorbed id → survivor id.
//! - `profile_events`: profile id ‖ event id → (); `audit`: profile id ‖ audit id → entry JSON.
//! - `processed`: event id → resolver `Outcome` JSON (identity idempotence);
//!   `dedupe`: source id ‖ idempotency key → event id.

pub mod batch;
pub mod errors;
pub mod events;
pub mod flush;
pub mod identity;
pub mod mappings;
pub mod source_cache;
pub mod sources;
pub mod wal;

use std::path::Path;
use std::sync::{Arc, Mutex};

/// A storage failure. Callers turn it into a 500 and a log line.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl<E: std::fmt::Debug> From<sled::transaction::TransactionError<E>> for StoreError {
    fn from(e: sled::transaction::TransactionError<E>) -> Self {
        match e {
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
            sled::transaction::TransactionError::Abort(e) => {
                StoreError::Other(format!("transaction aborted: {e:?}"))
            }
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A failed transaction whose closure aborts with a `StoreError`: the
/// closure's own error, or sled's.
pub(crate) fn abort_reason(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Handles to every tree. Cheap to clone (sled trees are `Arc`s).
#[derive(Clone)]
pub struct Trees {
    pub sources: sled::Tree,
    pub source_tokens: sled::Tree,
    pub events: sled::Tree,
    pub event_state: sled::Tree,
    pub events_by_source: sled::Tree,
    pub errors: sled::Tree,
    pub meta: sled::Tree,
    pub mappings: sled::Tree,
    pub ident: sled::Tree,
    pub profiles: sled::Tree,
    pub redirects: sled::Tree,
    pub profile_events: sled::Tree,
    pub audit: sled::Tree,
    pub processed: sled::Tree,
    pub dedupe: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(Self {
            sources: db.open_tree("sources")?,
            source_tokens: db.open_tree("source_tokens")?,
            events: db.open_tree("events")?,
            event_state: db.open_tree("event_state")?,
            events_by_source: db.open_tree("events_by_source")?,
            errors: db.open_tree("errors")?,
            meta: db.open_tree("meta")?,
            mappings: db.open_tree("mappings")?,
            ident: db.open_tree("ident")?,
            profiles: db.open_tree("profiles")?,
            redirects: db.open_tree("redirects")?,
            profile_events: db.open_tree("profile_events")?,
            audit: db.open_tree("audit")?,
            processed: db.open_tree("processed")?,
            dedupe: db.open_tree("dedupe")?,
        })
    }
}

/// The database.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) trees: Trees,
    /// The last event id handed out (as u128); see `append_events`.
    append_lock: Arc<Mutex<u128>>,
    /// Sources by token hash for the hook path; see `source_cache`.
    pub(crate) source_cache: Arc<source_cache::SourceCache>,
    /// The write-ahead log that makes appends durable (none for temporary stores).
    wal: Option<Arc<wal::Wal>>,
    /// sled's data file (fsynced at checkpoints); none for temporary stores.
    db_file: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (or creates) the database in `<data_dir>/db` with its
    /// write-ahead log in `<data_dir>/wal`, restoring into sled any logged
    /// event a crash kept from it.
    pub fn open(data_dir: &Path, cache_mb: u64) -> StoreResult<Self> {
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            .cache_capacity(cache_mb * 1024 * 1024)
            // Durability comes from the write-ahead log and its checkpoints
            // (which flush sled); sled's own timer would only add IO.
            .flush_every_ms(None)
            .open()?;
        let (wal, records, replayed) = wal::Wal::open(&data_dir.join("wal"))
            .map_err(|e| StoreError::Other(format!("cannot open the write-ahead log: {e}")))?;
        let trees = Trees::open(&db)?;
        let restored = restore_logged(&trees.events, records)?;
        db.flush()?;
        wal.delete(&replayed)
            .map_err(|e| StoreError::Other(format!("cannot trim the write-ahead log: {e}")))?;
        if restored > 0 {
            tracing::warn!(
                restored,
                "restored acknowledged events from the write-ahead log after a crash"
            );
        }
        let mut store = Self::with_db(db, Some(Arc::new(wal)))?;
        store.db_file = Some(data_dir.join("db").join("db"));
        Ok(store)
    }

    fn with_db(db: sled::Db, wal: Option<Arc<wal::Wal>>) -> StoreResult<Self> {
        let trees = Trees::open(&db)?;
        let last = trees
            .events
            .last()?
            .and_then(|(k, _)| uuid::Uuid::from_slice(&k).ok())
            .map_or(0, |u| u.as_u128());
        Ok(Self {
            db,
            trees,
            append_lock: Arc::new(Mutex::new(last)),
            source_cache: Arc::default(),
            wal,
            db_file: None,
        })
    }

    /// Approximate bytes on disk (for the benchmark report and `/metrics`).
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    /// Flushes to disk now, bypassing group commit: used by the benchmark
    /// that shows what group commit buys (flush-per-write).
    pub fn flush_now(&self) -> StoreResult<usize> {
        Ok(self.db.flush()?)
    }

    /// Starts a group-commit flusher for this database (benches and tools;
    /// the server starts its own in `Application::build`).
    pub fn start_group_commit(&self) -> Arc<flush::GroupCommit> {
        let target = match &self.wal {
            Some(wal) => flush::Durability::Wal {
                wal: wal.clone(),
                db: self.db.clone(),
                db_file: self.db_file.clone().unwrap_or_default(),
            },
            None => flush::Durability::Sled(self.db.clone()),
        };
        flush::GroupCommit::start(target)
    }

    /// A throwaway database for unit tests and benches.
    pub fn temporary() -> StoreResult<Self> {
        let db = sled::Config::new().temporary(true).open()?;
        Self::with_db(db, None)
    }
}

/// Puts back logged events sled lost in a crash. Insert-if-absent: an
/// event sled kept may since have been changed (erasure scrubs payloads),
/// and the log must never bring the old version back.
fn restore_logged(events: &sled::Tree, records: Vec<wal::Record>) -> StoreResult<u64> {
    let mut restored = 0;
    for record in records {
        let swapped =
            events.compare_and_swap(record.key, None as Option<&[u8]>, Some(record.value))?;
        if swapped.is_ok() {
            restored += 1;
        }
    }
    Ok(restored)
}

/// Reads a JSON value out of a tree.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// Writes a value as JSON bytes.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain types to a Vec cannot fail (no maps with
    // non-string keys, no failing Serialize impls).
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EventId, RequestId, SourceId};
    use crate::model::RawEvent;

    fn event(n: u128) -> RawEvent {
        RawEvent {
            id: EventId(uuid::Uuid::from_u128(n)),
            source_id: SourceId::new(),
            request_id: RequestId::new(),
            received_at: chrono::Utc::now(),
            payload: serde_json::json!({ "n": n as u64 }),
            envelope: None,
            headers: serde_json::Map::new(),
            not_mappable: None,
        }
    }

    #[test]
    fn an_event_only_the_log_kept_is_restored_at_open_and_an_erased_one_is_not_revived() {
        let dir = tempfile::tempdir().unwrap();
        let kept = event(1);
        let lost = event(2);
        {
            // sled holds `kept` in a scrubbed form; the crash lost `lost`.
            let store = Store::open(dir.path(), 16).unwrap();
            let mut scrubbed = kept.clone();
            scrubbed.payload = serde_json::json!({"_erased": true});
            store.replace_raw_event(&scrubbed).unwrap();
            store.db.flush().unwrap();
        }
        {
            let (wal, _, _) = wal::Wal::open(&dir.path().join("wal")).unwrap();
            for e in [&kept, &lost] {
                let mut value = e.source_id.to_bytes().to_vec();
                value.extend(serde_json::to_vec(e).unwrap());
                wal.append(&e.id.to_bytes(), &value);
            }
            wal.sync().unwrap();
        }
        let store = Store::open(dir.path(), 16).unwrap();
        assert_eq!(store.raw_event(lost.id).unwrap(), Some(lost));
        let kept_now = store.raw_event(kept.id).unwrap().unwrap();
        assert_eq!(kept_now.payload, serde_json::json!({"_erased": true}));
    }
}
