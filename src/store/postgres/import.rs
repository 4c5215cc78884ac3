//! Importing raw events with their ids (`inlet migrate --to postgres://…`):
//! written to the log and queued for the processor, as if they had just
//! arrived, so the processor rebuilds their states and profiles by the
//! current rules.

use super::PgStore;
use crate::domain::model::RawEvent;
use crate::store::{StoreError, StoreResult};

impl PgStore {
    /// Inserts `events` (ids kept) into the log and the processor's queue in
    /// one transaction; an event already there is left as it is.
    pub(in crate::store) fn import_events(&self, events: &[RawEvent]) -> StoreResult<u64> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
        let sources: Vec<uuid::Uuid> = events.iter().map(|e| e.source_id.0).collect();
        let received: Vec<chrono::DateTime<chrono::Utc>> =
            events.iter().map(|e| e.received_at).collect();
        let records = events
            .iter()
            .map(|e| {
                serde_json::to_vec(e).map_err(|source| StoreError::Encode {
                    what: "an imported event",
                    source,
                })
            })
            .collect::<StoreResult<Vec<Vec<u8>>>>()?;
        self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO events (id, source_id, received_at, record)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bytea[])
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&ids)
            .bind(&sources)
            .bind(&received)
            .bind(&records)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "INSERT INTO pending (event_id, source_id)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[])
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&ids)
            .bind(&sources)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(inserted)
        })
    }
}
