//! The compiled-mapping cache: each source's current mapping, compiled once
//! per saved version.
//!
//! It lives in the pipeline because the planner reads it for every event;
//! the services install a freshly saved version into it (so the next event
//! does not compile it again) and read from it for previews and warnings.
//! A saved mapping that does not compile is cached too, as a
//! [`BrokenMapping`], so it is neither compiled per event nor handed to
//! handlebars.

use crate::domain::ids::SourceId;
use crate::domain::mapping::CompiledMapping;
use crate::domain::source::Source;
use crate::store::StateStore;
use crate::store::{Store, StoreResult};
use dashmap::DashMap;
use std::sync::Arc;

/// A saved mapping that does not compile (stored before a limit existed,
/// or written into the store by hand): its events fail with this reason
/// instead of reaching handlebars.
#[derive(Debug)]
pub struct BrokenMapping {
    pub version: u32,
    pub code: &'static str,
    pub reason: String,
}

/// A source's current mapping: compiled, or why it cannot be.
pub type CurrentMapping = Result<Arc<CompiledMapping>, Arc<BrokenMapping>>;

/// Compiled mappings by source, compiled once per version (a mapping that
/// fails to compile is remembered too, so it is not compiled per event).
#[derive(Default)]
pub struct MappingCache {
    by_source: DashMap<SourceId, (u32, CurrentMapping)>,
}

impl MappingCache {
    /// The source's current mapping, compiled (from cache when the version
    /// matches); `None` when a broken one is saved (see [`Self::current_or_broken`]).
    pub fn current(
        &self,
        store: &Store,
        source: &Source,
    ) -> StoreResult<Option<Arc<CompiledMapping>>> {
        Ok(self.current_or_broken(store, source)?.and_then(Result::ok))
    }

    /// The source's current mapping, or why the saved one does not compile.
    pub fn current_or_broken(
        &self,
        store: &Store,
        source: &Source,
    ) -> StoreResult<Option<CurrentMapping>> {
        let Some(version) = source.mapping_version else {
            return Ok(None);
        };
        if let Some(hit) = self
            .by_source
            .get(&source.id)
            .filter(|entry| entry.0 == version)
        {
            return Ok(Some(hit.1.clone()));
        }
        let Some(saved) = store.mapping_version(source.id, version)? else {
            return Ok(None);
        };
        let current = match CompiledMapping::compile(saved.mapping, version) {
            Ok(compiled) => Ok(Arc::new(compiled)),
            Err(errors) => {
                tracing::error!(source = %source.id, version, fields = ?errors.fields, "a saved mapping does not compile; its events fail");
                Err(Arc::new(BrokenMapping {
                    version,
                    code: errors.code.unwrap_or("mapping_invalid"),
                    reason: format!(
                        "mapping version {version} does not compile ({errors}); save a fixed mapping and replay failed events"
                    ),
                }))
            }
        };
        self.by_source.insert(source.id, (version, current.clone()));
        Ok(Some(current))
    }

    /// Installs a freshly saved version.
    pub fn install(&self, source: SourceId, mapping: Arc<CompiledMapping>) {
        self.by_source
            .insert(source, (mapping.version, Ok(mapping)));
    }
}
