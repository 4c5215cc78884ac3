//! Retention and the learned schemas' persistence: pruning events and
//! error-log entries past their retention, and writing schemas out.
//!
//! Schemas are learned in memory by the planner (approximate by nature, so
//! they need not be in the batch's transaction) and written after each
//! committed batch, and at once after an erasure redacts them. Both writes
//! run on the pipeline's writer thread or with the committer quiesced.

use super::{Processor, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::sniff::SchemaRegistry;
use crate::store::{EventLog, StateStore};
use crate::store::{Store, StoreError};
use std::time::Duration;

/// How often old events and error-log entries are pruned.
pub(super) const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);

/// The schemas persisted by an earlier run. One that cannot be read is
/// skipped (logged): it is relearned from the next events, which is better
/// than refusing to start.
pub(super) fn load_schemas(store: &Store) -> StoreResult<SchemaRegistry> {
    let schemas = SchemaRegistry::new();
    for (source, bytes) in store.schemas()? {
        match serde_json::from_slice(&bytes) {
            Ok(schema) => schemas.load(source, schema),
            Err(e) => {
                tracing::warn!(%source, error = %e, "ignoring an unreadable schema snapshot")
            }
        }
    }
    Ok(schemas)
}

impl Processor {
    /// Prunes events and error-log entries older than their retention.
    pub(super) fn maintain(&self) -> StoreResult<()> {
        let events = self.store.prune_events(self.config.event_retention)?;
        let errors = self.store.prune_errors(self.config.error_retention)?;
        // Delivery ids past their source's redelivery window (issue 18).
        let deliveries = self.store.prune_deliveries(chrono::Utc::now())?;
        if deliveries > 0 {
            tracing::info!(deliveries, "forgot delivery ids past their window");
        }
        if events + errors > 0 {
            tracing::info!(events, errors, "pruned beyond retention");
        }
        Ok(())
    }

    /// Writes the schemas changed since the last call.
    pub(super) fn persist_schemas(&self) -> StoreResult<()> {
        self.schemas
            .persist_dirty(|source, schema| put_schema(&self.store, source, schema))
    }

    /// Drops an erasure's values from the learned schemas and writes the
    /// changed ones out; returns how many examples and paths went.
    pub fn redact_schemas(&self, needles: &crate::domain::redact::Needles) -> StoreResult<usize> {
        self.schemas
            .redact(&|text| needles.is_match(text), |source, schema| {
                put_schema(&self.store, source, schema)
            })
    }
}

/// Encodes and stores one schema. A schema that cannot be encoded is a bug:
/// the error is logged and returned, and nothing is written, so the learned
/// schema stored before stays in place of an empty one.
fn put_schema(store: &Store, source: SourceId, schema: &impl serde::Serialize) -> StoreResult<()> {
    let bytes = encode_schema(schema).inspect_err(|e| {
        tracing::error!(%source, error = %e, "a schema could not be encoded; the stored one is kept");
    })?;
    store.put_schema(source, &bytes)
}

/// A schema as stored.
fn encode_schema(schema: &impl serde::Serialize) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(schema).map_err(|source| StoreError::Encode {
        what: "a schema",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::encode_schema;
    use serde::ser::Error as _;

    /// A value whose encoding fails, as a schema with a bug would.
    struct Unencodable;

    impl serde::Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom("no"))
        }
    }

    #[test]
    fn a_schema_that_cannot_be_encoded_is_an_error_not_an_empty_schema() {
        let err = encode_schema(&Unencodable).unwrap_err();
        assert!(err.to_string().contains("cannot encode a schema"), "{err}");
    }
}
