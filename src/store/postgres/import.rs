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

impl PgStore {
    /// Inserts the never-merge rules of the installation being moved, so
    /// the rebuild keeps apart what support split there.
    pub(in crate::store) fn import_never_merge(
        &self,
        rules: &[crate::domain::identity::NeverMergeRule],
    ) -> StoreResult<()> {
        let ids: Vec<uuid::Uuid> = rules.iter().map(|r| r.id).collect();
        let docs = rules
            .iter()
            .map(|r| {
                serde_json::to_string(r).map_err(|source| crate::store::StoreError::Encode {
                    what: "a never-merge rule",
                    source,
                })
            })
            .collect::<StoreResult<Vec<String>>>()?;
        self.db.block(async {
            sqlx::query(
                "INSERT INTO never_merge (id, rule)
                 SELECT i, d::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS t(i, d)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&ids)
            .bind(&docs)
            .execute(&self.db.pool)
            .await?;
            Ok(())
        })
    }
}
