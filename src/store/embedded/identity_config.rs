//! The identity rules' own state on sled: the kinds (one `meta` value) and
//! the never-merge pairs (the `never_merge` tree, rule id → JSON).
//!
//! Both are read on every resolution, so the store keeps the current
//! [`IdentityConfig`] in memory behind an `Arc` and hands each transaction
//! the one current when it began; a write replaces the `Arc` after the tree
//! is written, so a reader sees the old set or the new one, never half.

use super::{decode, encode, Store, StoreResult, Trees};
use crate::domain::identity::{
    IdentKey, IdentKind, IdentityConfig, KindName, KindSet, NeverMerge, NeverMergeRule,
};
use std::sync::{Arc, RwLock};

/// The `meta` key of the kinds.
const KINDS_KEY: &[u8] = b"identity_kinds";

/// The current config, shared by every handle of the store.
#[derive(Debug, Default)]
pub(super) struct CurrentConfig(RwLock<Arc<IdentityConfig>>);

impl CurrentConfig {
    /// The config as of now (cheap: one `Arc` clone).
    pub(super) fn get(&self) -> Arc<IdentityConfig> {
        // A poisoned lock guards a whole `Arc` that was never half-written.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// At open, before any handle shares it.
    pub(super) fn set_loaded(&self, config: IdentityConfig) {
        self.set(config);
    }

    fn set(&self, config: IdentityConfig) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }
}

/// Reads what is stored; a data dir written before kinds existed has
/// neither and reads as the built-ins with no pairs.
pub(super) fn load(trees: &Trees) -> StoreResult<IdentityConfig> {
    let kinds = match trees.meta.get(KINDS_KEY)? {
        Some(bytes) => decode::<KindSet>("meta", &bytes)?,
        None => KindSet::default(),
    };
    let mut rules = Vec::new();
    for entry in trees.never_merge.iter() {
        let (_, value) = entry?;
        rules.push(decode::<NeverMergeRule>("never_merge", &value)?);
    }
    Ok(IdentityConfig {
        kinds,
        never: NeverMerge::new(rules),
    })
}

impl Store {
    /// The kinds and never-merge pairs resolutions use now.
    pub(super) fn identity_config(&self) -> Arc<IdentityConfig> {
        self.identity.get()
    }

    /// Stores a new set of kinds (the service checked the change).
    pub(super) fn put_identity_kinds(&self, kinds: &KindSet) -> StoreResult<()> {
        self.trees.meta.insert(KINDS_KEY, encode(kinds))?;
        let current = self.identity.get();
        self.identity.set(IdentityConfig {
            kinds: kinds.clone(),
            never: current.never.clone(),
        });
        // Configuration is durable when the API answers.
        self.flush_db()
    }

    /// Reads the config again after a write to its trees (a split's
    /// never-merge rules). Call it holding the identity writer lock, so
    /// the next batch, which reads the config after taking that lock,
    /// resolves by the new rules.
    pub(super) fn reload_identity_config(&self) -> StoreResult<()> {
        let config = load(&self.trees)?;
        self.identity.set(config);
        Ok(())
    }

    /// Removes a never-merge rule (later events may merge the pair again;
    /// nothing is merged back by this). Returns the rule, if there was one.
    pub(super) fn remove_never_merge(&self, id: uuid::Uuid) -> StoreResult<Option<NeverMergeRule>> {
        let _writer = self.hot.lock_writer()?;
        let Some(old) = self.trees.never_merge.remove(id.as_bytes())? else {
            return Ok(None);
        };
        self.reload_identity_config()?;
        self.flush_db()?;
        Ok(Some(decode("never_merge", &old)?))
    }
}

impl Store {
    /// Whether any profile holds a value of this team's kind: the first
    /// key under `k:<name>:` in the `ident` index answers it, so a kind
    /// with a million values costs one seek.
    pub(super) fn kind_has_values(&self, kind: &KindName) -> StoreResult<bool> {
        let prefix = IdentKey::new(IdentKind::Custom(kind.clone()), "").to_key_bytes();
        Ok(self
            .trees
            .ident
            .scan_prefix(prefix)
            .next()
            .transpose()?
            .is_some())
    }
}
