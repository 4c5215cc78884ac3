//! Sources and their token index.
//!
//! Every write to the `sources` or `source_tokens` trees must call
//! `self.source_cache.invalidate()` after it commits (see `source_cache`):
//! the hook path trusts the cache.

use super::{decode, encode, Store, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::source::{SecretHash, Source};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::sync::Arc;

impl Store {
    /// Inserts or replaces a source, keeping `source_tokens` in step: every
    /// token hash it has (the current one, and a rotated-out one in its
    /// grace) resolves to it, and the hashes it no longer has stop
    /// resolving in the same transaction.
    pub(super) fn put_source(&self, source: &Source) -> StoreResult<()> {
        let key = source.id.to_bytes();
        let value = encode(source);
        let exclusive = super::sled_exclusive();
        (&self.trees.sources, &self.trees.source_tokens)
            .transaction(|(sources, tokens)| {
                if let Some(old) = sources.get(key)? {
                    let old: Source =
                        decode("sources", &old).map_err(ConflictableTransactionError::Abort)?;
                    for gone in old
                        .token_hashes()
                        .filter(|h| !source.token_hashes().any(|kept| kept == *h))
                    {
                        tokens.remove(gone.0.as_bytes())?;
                    }
                }
                sources.insert(&key, value.as_slice())?;
                for token in source.token_hashes() {
                    tokens.insert(token.0.as_bytes(), &key)?;
                }
                Ok(())
            })
            .map_err(super::abort_reason)?;
        drop(exclusive);
        self.source_cache.invalidate();
        // A source and its URL are durable when the API answers: a crash
        // right after must not turn a URL just handed out into a 404.
        self.flush_db()
    }

    pub(super) fn source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        self.trees
            .sources
            .get(id.to_bytes())?
            .map(|bytes| decode("sources", &bytes))
            .transpose()
    }

    pub(super) fn sources(&self) -> StoreResult<Vec<Source>> {
        self.trees
            .sources
            .iter()
            .values()
            .map(|bytes| decode("sources", &bytes?))
            .collect()
    }

    /// The source a hook token belongs to, from the in-memory cache when it
    /// can (the hook path calls this on every request). Shared, not cloned.
    pub(super) fn cached_source_by_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Option<Arc<Source>>> {
        if let Some(hit) = self.source_cache.get(&hash.0) {
            return Ok(Some(hit));
        }
        let seen = self.source_cache.generation();
        let Some(source) = self.source_by_token(hash)? else {
            return Ok(None);
        };
        let source = Arc::new(source);
        self.source_cache.fill(&hash.0, source.clone(), seen);
        Ok(Some(source))
    }

    /// The source a hook token belongs to, read from sled.
    pub(super) fn source_by_token(&self, hash: &SecretHash) -> StoreResult<Option<Source>> {
        let Some(id) = self.trees.source_tokens.get(hash.0.as_bytes())? else {
            return Ok(None);
        };
        match SourceId::from_slice(&id) {
            Some(id) => self.source(id),
            None => Ok(None),
        }
    }

    /// Removes a source and its token. Its stored events stay (they are the
    /// audit trail) until retention prunes them.
    pub(super) fn delete_source(&self, id: SourceId) -> StoreResult<Option<Source>> {
        let Some(source) = self.source(id)? else {
            return Ok(None);
        };
        {
            let _exclusive = super::sled_exclusive();
            (&self.trees.sources, &self.trees.source_tokens).transaction(|(sources, tokens)| {
                sources.remove(&id.to_bytes())?;
                for token in source.token_hashes() {
                    tokens.remove(token.0.as_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<String>>(())
            })?;
        }
        self.source_cache.invalidate();
        // A deleted source's URL stays dead after a crash.
        self.flush_db()?;
        Ok(Some(source))
    }
}
