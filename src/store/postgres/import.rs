//! Importing raw events with their ids (`inlet migrate --to postgres://…`):
//! written to the log and queued for the processor, as if they had just
//! arrived, so the processor rebuilds their states and profiles by the
//! current rules.

use super::log::{insert_records, Rows};
use super::PgStore;
use crate::domain::model::RawEvent;
use crate::store::StoreResult;

impl PgStore {
    /// Inserts `events` (ids kept) into the log and the processor's queue in
    /// one transaction; an event already there is left as it is.
    pub(in crate::store) fn import_events(&self, events: &[RawEvent]) -> StoreResult<u64> {
        let rows = Rows::of(events)?;
        self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            let inserted = insert_records(&mut tx, &rows).await?;
            tx.commit().await?;
            Ok(inserted)
        })
    }
}
