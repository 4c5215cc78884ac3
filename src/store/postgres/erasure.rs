//! Erasure on PostgreSQL: a profile and every copy of its personal data.
//!
//! What counts as personal data, how it is searched for and what replaces
//! it is the domain's policy (`domain::redact`); this file applies it to the
//! tables: the profile, its identifiers and redirects go in one transaction
//! under the identity lock (with its event links and the redaction of its
//! own audit lines), then its events' records and states are overwritten
//! with scrubbed copies, and every other event record and audit line
//! holding one of its identifiers is found (scanned in batches) and scrubbed.
//!
//! Each step commits with `synchronous_commit` on, so the whole is durable
//! when this returns. PostgreSQL writes a new tuple version on update: the
//! old one stays in the table's pages until VACUUM prunes it, so the touched
//! tables are vacuumed at the end (see `vacuum_touched`).

use super::PgStore;
use crate::domain::identity::{AuditChange, AuditEntry, Erased, Profile};
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::model::{ErrorEntry, EventState, RawEvent};
use crate::domain::redact::{self, Needles, PersonalValues};
use crate::store::{DatabaseRewrite, ErasureReport, StoreError, StoreResult};
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// The identity helper's lock (identity.rs `IDENTITY_LOCK`): every writer of
/// profiles, identifiers and redirects holds it until it commits.
use super::identity::IDENTITY_LOCK;

/// Rows one round trip reads or rewrites at most.
const BATCH: usize = 1000;

/// Redirect hops followed to the live profile (as `domain::identity::canonical`).
const MAX_REDIRECT_HOPS: usize = 64;

/// The tables an erasure rewrites rows of (vacuumed afterwards).
const TOUCHED_TABLES: &str =
    "events, event_states, audit, profiles, identifiers, redirects, profile_events, errors, dedupe";

/// What the identity step removed: the profile as it was, and its events.
struct ErasedProfile {
    profile: Profile,
    /// Event ids linked to the profile or one merged into it, newest first.
    events: Vec<EventId>,
}

fn corrupt(tree: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |source| StoreError::Corrupt { tree, source }
}

impl PgStore {
    /// Erases a profile (see the seam): profile, identifiers, redirects,
    /// links and the redaction of its audit lines in one transaction.
    pub(super) fn erase_profile(&self, id: ProfileId) -> StoreResult<Option<Vec<EventId>>> {
        Ok(self.erase_identity(id)?.map(|erased| erased.events))
    }

    /// Erases a profile and every copy of its personal data (module doc).
    /// `redact_schemas` drops the learned schemas' examples matching the
    /// needles it is given. `None`: no such profile.
    ///
    /// Cost: a read of the whole `events` and `audit` tables in batches of
    /// `BATCH` rows (an identifier may be anywhere), so it grows with the
    /// data kept, not with the profile.
    pub(super) fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        let Some(erased) = self.erase_identity(id)? else {
            return Ok(None);
        };
        let profile = &erased.profile;
        let mut values = PersonalValues::of_profile(profile);
        for state in self.states_of(&erased.events)? {
            values.add_state(&state);
        }
        let (ids, personal) = values.needles()?;
        let mut report = ErasureReport {
            profile_id: Some(profile.id),
            profiles: 1 + profile.merged_from.len(),
            identifiers: profile.keys().len(),
            values_searched: personal.len(),
            linked_events: erased.events.len(),
            ..ErasureReport::default()
        };
        let linked: HashSet<EventId> = erased.events.iter().copied().collect();
        let others = self.events_matching(&ids, &linked)?;
        report.other_events = others.len();
        report.log_records = self.scrub_events(&erased.events, &personal)?;
        report.log_records += self.scrub_events(&others, &personal)?;
        report.audit_entries = self.redact_audit_matching(&ids)?;
        let erased_events: HashSet<EventId> = linked.iter().chain(&others).copied().collect();
        report.error_entries = self.redact_errors_matching(&ids, &personal, &erased_events)?;
        report.dedupe_keys = self.remove_dedupe_matching(&ids)?;
        report.schema_examples = redact_schemas(&personal)?;
        // PostgreSQL reuses the space of the rows rewritten above itself.
        report.database_rewrite = DatabaseRewrite::NotNeeded;
        self.vacuum_touched();
        Ok(Some(report))
    }

    /// The identity step: one transaction under the identity lock.
    fn erase_identity(&self, id: ProfileId) -> StoreResult<Option<ErasedProfile>> {
        self.db.block(async {
            let mut tx = self.db.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(IDENTITY_LOCK)
                .execute(&mut *tx)
                .await?;
            let Some(profile) = canonical_profile(&mut tx, id).await? else {
                return Ok(None);
            };
            let mut ids = vec![profile.id];
            ids.extend(profile.merged_from.iter().copied());
            remove_identity(&mut tx, &profile, &ids).await?;
            let mut events = unlink_events(&mut tx, &ids).await?;
            redact_own_audit(&mut tx, &ids).await?;
            tx.commit().await?;
            events.sort_unstable_by(|a, b| b.cmp(a));
            events.dedup();
            Ok(Some(ErasedProfile { profile, events }))
        })
    }

    /// The stored states of `events` (those that have one).
    fn states_of(&self, events: &[EventId]) -> StoreResult<Vec<EventState>> {
        let mut states = Vec::with_capacity(events.len());
        for chunk in events.chunks(BATCH) {
            let ids: Vec<Uuid> = chunk.iter().map(|e| e.0).collect();
            let rows: Vec<String> = self.db.block(async {
                sqlx::query_scalar(
                    "SELECT state::text FROM event_states WHERE event_id = ANY($1::uuid[])",
                )
                .bind(&ids)
                .fetch_all(&self.db.pool)
                .await
            })?;
            for row in rows {
                states.push(serde_json::from_str(&row).map_err(corrupt("event_states"))?);
            }
        }
        Ok(states)
    }

    /// Every event not in `skip` whose record holds one of `needles`,
    /// scanning the log in `seq` order, `BATCH` records a round trip.
    fn events_matching(
        &self,
        needles: &Needles,
        skip: &HashSet<EventId>,
    ) -> StoreResult<Vec<EventId>> {
        let mut found = Vec::new();
        if needles.is_empty() {
            return Ok(found);
        }
        let mut after = 0_i64;
        loop {
            let rows: Vec<(i64, Uuid, Vec<u8>)> = self.db.block(async {
                sqlx::query_as(
                    "SELECT seq, id, record FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(BATCH as i64)
                .fetch_all(&self.db.pool)
                .await
            })?;
            let Some((last, _, _)) = rows.last() else {
                return Ok(found);
            };
            after = *last;
            let hits = rows
                .iter()
                .filter(|(_, id, record)| !skip.contains(&EventId(*id)) && needles.is_match(record))
                .map(|(_, id, _)| EventId(*id));
            found.extend(hits);
        }
    }

    /// Overwrites the records and states of `events` with scrubbed copies,
    /// `BATCH` events a transaction. Returns the records rewritten.
    fn scrub_events(&self, events: &[EventId], personal: &Needles) -> StoreResult<usize> {
        let mut rewritten = 0;
        for chunk in events.chunks(BATCH) {
            let ids: Vec<Uuid> = chunk.iter().map(|e| e.0).collect();
            rewritten += self.db.block(async {
                let mut tx = self.db.pool.begin().await?;
                let records = scrub_records(&mut tx, &ids, personal).await?;
                scrub_states(&mut tx, &ids, personal).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(records)
            })?;
        }
        Ok(rewritten)
    }

    /// Redacts every audit line (of any profile) whose entry holds an
    /// identifier: a refusal on someone else's profile can name this one's.
    fn redact_audit_matching(&self, ids: &Needles) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut redacted = 0;
        let mut after = (Uuid::nil(), Uuid::nil());
        loop {
            let rows: Vec<(Uuid, Uuid, String)> = self.db.block(async {
                sqlx::query_as(
                    "SELECT profile_id, id, entry::text FROM audit
                     WHERE (profile_id, id) > ($1, $2) ORDER BY profile_id, id LIMIT $3",
                )
                .bind(after.0)
                .bind(after.1)
                .bind(BATCH as i64)
                .fetch_all(&self.db.pool)
                .await
            })?;
            let Some((profile, id, _)) = rows.last() else {
                return Ok(redacted);
            };
            after = (*profile, *id);
            let matching = rows.iter().filter(|(_, _, entry)| ids.is_match(entry));
            let mut changed = Vec::new();
            for (_, _, text) in matching {
                let mut entry: AuditEntry = serde_json::from_str(text).map_err(corrupt("audit"))?;
                // Which lines lose their detail is the domain's policy.
                if entry.redact() {
                    changed.push(entry);
                }
            }
            redacted += changed.len();
            self.db.block(async {
                let mut conn = self.db.pool.acquire().await?;
                write_audit(&mut conn, &changed).await
            })?;
        }
    }

    /// Redacts error-log entries: an erased event's own entries lose every
    /// personal value, any other entry the identifiers it names (as the
    /// embedded backend). A keyset scan of `BATCH` entries per round trip.
    fn redact_errors_matching(
        &self,
        ids: &Needles,
        personal: &Needles,
        erased: &HashSet<EventId>,
    ) -> StoreResult<usize> {
        let mut redacted = 0;
        let mut after = Uuid::nil();
        loop {
            let rows: Vec<(Uuid, String)> = self.db.block(async {
                sqlx::query_as(
                    "SELECT id, doc::text FROM errors WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(BATCH as i64)
                .fetch_all(&self.db.pool)
                .await
            })?;
            let Some((last, _)) = rows.last() else {
                return Ok(redacted);
            };
            after = *last;
            let (mut changed_ids, mut changed_docs) = (Vec::new(), Vec::new());
            for (id, doc) in &rows {
                let mut entry: ErrorEntry = serde_json::from_str(doc).map_err(corrupt("errors"))?;
                let own = entry.event_id.is_some_and(|e| erased.contains(&e));
                let needles = if own { personal } else { ids };
                if redact::redact_error(&mut entry, needles) {
                    changed_ids.push(*id);
                    changed_docs.push(serde_json::to_string(&entry).map_err(corrupt("errors"))?);
                }
            }
            redacted += changed_ids.len();
            if changed_ids.is_empty() {
                continue;
            }
            self.db.block(async {
                sqlx::query(
                    "UPDATE errors e SET doc = t.d::jsonb
                     FROM UNNEST($1::uuid[], $2::text[]) AS t(i, d) WHERE e.id = t.i",
                )
                .bind(&changed_ids)
                .bind(&changed_docs)
                .execute(&self.db.pool)
                .await?;
                StoreResult::Ok(())
            })?;
        }
    }

    /// Removes idempotency keys (source id ‖ key) holding an identifier.
    fn remove_dedupe_matching(&self, ids: &Needles) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut removed = 0;
        let mut after: Vec<u8> = Vec::new();
        loop {
            let keys: Vec<Vec<u8>> = self.db.block(async {
                sqlx::query_scalar("SELECT key FROM dedupe WHERE key > $1 ORDER BY key LIMIT $2")
                    .bind(&after)
                    .bind(BATCH as i64)
                    .fetch_all(&self.db.pool)
                    .await
            })?;
            let Some(last) = keys.last() else {
                return Ok(removed);
            };
            after = last.clone();
            let matching: Vec<&Vec<u8>> = keys
                .iter()
                .filter(|k| ids.is_match(k.get(16..).unwrap_or_default()))
                .collect();
            removed += matching.len();
            if matching.is_empty() {
                continue;
            }
            self.db.block(async {
                sqlx::query("DELETE FROM dedupe WHERE key = ANY($1)")
                    .bind(&matching)
                    .execute(&self.db.pool)
                    .await?;
                StoreResult::Ok(())
            })?;
        }
    }

    /// Vacuums the tables an erasure rewrote, so the old row versions
    /// (which still hold the personal data) are pruned from their pages now
    /// rather than when autovacuum gets there. The erasure is committed
    /// already: a failure here is logged, not returned.
    fn vacuum_touched(&self) {
        if let Err(e) = self.vacuum() {
            tracing::warn!(error = %e, "vacuum after an erasure failed; autovacuum will prune the old rows");
        }
    }

    fn vacuum(&self) -> StoreResult<()> {
        self.db.block(async {
            // Simple-query protocol: VACUUM cannot run in a transaction.
            sqlx::raw_sql(&format!("VACUUM {TOUCHED_TABLES}"))
                .execute(&self.db.pool)
                .await?;
            Ok(())
        })
    }
}

/// The live profile `id` names, following redirects (as `canonical`).
async fn canonical_profile(conn: &mut PgConnection, id: ProfileId) -> StoreResult<Option<Profile>> {
    let mut id = id.0;
    for _ in 0..MAX_REDIRECT_HOPS {
        let doc: Option<String> =
            sqlx::query_scalar("SELECT doc::text FROM profiles WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if let Some(doc) = doc {
            return Ok(Some(
                serde_json::from_str(&doc).map_err(corrupt("profiles"))?,
            ));
        }
        let next: Option<Uuid> =
            sqlx::query_scalar("SELECT to_id FROM redirects WHERE from_id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        match next {
            Some(next) if next != id => id = next,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Removes the profile, the identifiers that are its own (never another
/// profile's), the redirects of the profiles merged into it, and writes the
/// erasure audit line (as `domain::identity::erase`).
async fn remove_identity(
    conn: &mut PgConnection,
    profile: &Profile,
    ids: &[ProfileId],
) -> StoreResult<()> {
    let keys = profile.keys();
    let kinds: Vec<&str> = keys.iter().map(|k| k.kind.as_str()).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let owners: Vec<Uuid> = ids.iter().map(|p| p.0).collect();
    sqlx::query(
        "DELETE FROM identifiers i USING UNNEST($1::text[], $2::text[]) AS k(kind, value)
         WHERE i.kind = k.kind AND i.value = k.value AND i.profile_id = ANY($3::uuid[])",
    )
    .bind(&kinds)
    .bind(&values)
    .bind(&owners)
    .execute(&mut *conn)
    .await?;
    let merged: Vec<Uuid> = profile.merged_from.iter().map(|p| p.0).collect();
    sqlx::query("DELETE FROM redirects WHERE from_id = ANY($1::uuid[])")
        .bind(&merged)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM profiles WHERE id = $1")
        .bind(profile.id.0)
        .execute(&mut *conn)
        .await?;
    let change = AuditChange::Erasure(Erased {
        identifiers: keys.len(),
        merged_profiles: profile.merged_from.len(),
        events: profile.event_count,
    });
    write_audit(conn, &[AuditEntry::new(profile.id, None, change)]).await
}

/// Removes the event links of `ids`, returning the linked events.
async fn unlink_events(conn: &mut PgConnection, ids: &[ProfileId]) -> StoreResult<Vec<EventId>> {
    let owners: Vec<Uuid> = ids.iter().map(|p| p.0).collect();
    let events: Vec<Uuid> = sqlx::query_scalar(
        "DELETE FROM profile_events WHERE profile_id = ANY($1::uuid[]) RETURNING event_id",
    )
    .bind(&owners)
    .fetch_all(&mut *conn)
    .await?;
    Ok(events.into_iter().map(EventId).collect())
}

/// Replaces the detail of every audit line of `ids` but the erasure one.
async fn redact_own_audit(conn: &mut PgConnection, ids: &[ProfileId]) -> StoreResult<()> {
    let owners: Vec<Uuid> = ids.iter().map(|p| p.0).collect();
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT entry::text FROM audit WHERE profile_id = ANY($1::uuid[])")
            .bind(&owners)
            .fetch_all(&mut *conn)
            .await?;
    let mut changed = Vec::new();
    for row in rows {
        let mut entry: AuditEntry = serde_json::from_str(&row).map_err(corrupt("audit"))?;
        if entry.redact() {
            changed.push(entry);
        }
    }
    write_audit(conn, &changed).await
}

/// Inserts or overwrites audit lines, one statement for all.
async fn write_audit(conn: &mut PgConnection, entries: &[AuditEntry]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let profiles: Vec<Uuid> = entries.iter().map(|e| e.profile_id.0).collect();
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let docs = entries
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt("audit"))?;
    sqlx::query(
        "INSERT INTO audit (profile_id, id, entry)
         SELECT p, i, e::jsonb FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS u(p, i, e)
         ON CONFLICT (profile_id, id) DO UPDATE SET entry = EXCLUDED.entry",
    )
    .bind(&profiles)
    .bind(&ids)
    .bind(&docs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Overwrites the log records of `ids` with scrubbed copies; returns how many.
async fn scrub_records(
    conn: &mut PgConnection,
    ids: &[Uuid],
    personal: &Needles,
) -> StoreResult<usize> {
    let rows: Vec<(Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT id, record FROM events WHERE id = ANY($1::uuid[]) FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut out_ids = Vec::with_capacity(rows.len());
    let mut records = Vec::with_capacity(rows.len());
    for (id, record) in rows {
        let mut raw: RawEvent = serde_json::from_slice(&record).map_err(corrupt("events"))?;
        redact::scrub_raw(&mut raw, personal);
        out_ids.push(id);
        records.push(serde_json::to_vec(&raw).map_err(corrupt("events"))?);
    }
    sqlx::query(
        "UPDATE events SET record = u.record
         FROM UNNEST($1::uuid[], $2::bytea[]) AS u(id, record) WHERE events.id = u.id",
    )
    .bind(&out_ids)
    .bind(&records)
    .execute(&mut *conn)
    .await?;
    Ok(out_ids.len())
}

/// Overwrites the stored states of `ids` with scrubbed copies (status kept).
async fn scrub_states(
    conn: &mut PgConnection,
    ids: &[Uuid],
    personal: &Needles,
) -> StoreResult<()> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT event_id, state::text FROM event_states WHERE event_id = ANY($1::uuid[]) FOR UPDATE",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out_ids = Vec::with_capacity(rows.len());
    let mut states = Vec::with_capacity(rows.len());
    for (id, text) in rows {
        let mut state: EventState = serde_json::from_str(&text).map_err(corrupt("event_states"))?;
        redact::scrub_state(&mut state, personal);
        out_ids.push(id);
        states.push(serde_json::to_string(&state).map_err(corrupt("event_states"))?);
    }
    sqlx::query(
        "UPDATE event_states SET state = u.state::jsonb
         FROM UNNEST($1::uuid[], $2::text[]) AS u(id, state) WHERE event_states.event_id = u.id",
    )
    .bind(&out_ids)
    .bind(&states)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::TraitValue;
    use crate::domain::ids::SourceId;
    use crate::domain::model::{Level, Stage};
    use serde_json::json;

    const ANN: &str = "ann@example.org";
    const ANN_OLD: &str = "ann.old@example.org";

    fn exec(store: &PgStore, sql: &str, binds: Vec<Uuid>, texts: Vec<String>) {
        store
            .db
            .block(async {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(b);
                }
                for t in texts {
                    q = q.bind(t);
                }
                q.execute(&store.db.pool).await
            })
            .unwrap();
    }

    fn count(store: &PgStore, sql: &str) -> i64 {
        store
            .db
            .block(sqlx::query_scalar(sql).fetch_one(&store.db.pool))
            .unwrap()
    }

    fn put_event(store: &PgStore, source: SourceId, payload: serde_json::Value) -> EventId {
        let mut raw = RawEvent::received(source, payload);
        // Ids are assigned at append (UUID v7: newer is larger).
        raw.id = EventId(Uuid::now_v7());
        let record = serde_json::to_vec(&raw).unwrap();
        store
            .db
            .block(
                sqlx::query(
                    "INSERT INTO events (id, source_id, received_at, record) VALUES ($1, $2, now(), $3)",
                )
                .bind(raw.id.0)
                .bind(source.0)
                .bind(record)
                .execute(&store.db.pool),
            )
            .unwrap();
        raw.id
    }

    fn put_state(store: &PgStore, event: EventId, source: SourceId, state: &EventState) {
        exec(
            store,
            "INSERT INTO event_states (event_id, source_id, status, state) VALUES ($1, $2, 'processed', $3::jsonb)",
            vec![event.0, source.0],
            vec![serde_json::to_string(state).unwrap()],
        );
    }

    fn put_profile(store: &PgStore, profile: &Profile) {
        exec(
            store,
            "INSERT INTO profiles (id, doc) VALUES ($1, $2::jsonb)",
            vec![profile.id.0],
            vec![serde_json::to_string(profile).unwrap()],
        );
        for key in profile.keys() {
            exec(
                store,
                "INSERT INTO identifiers (kind, value, profile_id) VALUES ($2, $3, $1)",
                vec![profile.id.0],
                vec![key.kind.as_str().to_string(), key.value.clone()],
            );
        }
    }

    fn put_audit(store: &PgStore, profile: ProfileId, kind: &str, detail: serde_json::Value) {
        let line = json!({"id": Uuid::now_v7(), "at": chrono::Utc::now(), "profile_id": profile,
                          "kind": kind, "event_id": null, "detail": detail});
        exec(
            store,
            "INSERT INTO audit (profile_id, id, entry) VALUES ($1, $2, $3::jsonb)",
            vec![profile.0, line["id"].as_str().unwrap().parse().unwrap()],
            vec![line.to_string()],
        );
    }

    /// Ann (merged from an older profile, which left a redirect) with two
    /// events; Bob with one event, one that quotes Ann's email, and a
    /// refusal audit line naming her.
    fn ann_and_bob(store: &PgStore) -> (ProfileId, ProfileId, Vec<EventId>) {
        let source = SourceId::new();
        let now = chrono::Utc::now();
        let old = ProfileId::new();
        let mut ann = Profile::new(ProfileId::new(), now);
        ann.emails = vec![ANN.into(), ANN_OLD.into()];
        ann.merged_from = vec![old];
        let e1 = put_event(store, source, json!({"email": ANN, "name": "Annabel Lee"}));
        let e2 = put_event(
            store,
            source,
            json!({"email": ANN_OLD, "name": "Annabel Lee"}),
        );
        ann.traits.insert(
            "name".into(),
            TraitValue {
                value: json!("Annabel Lee"),
                at: now,
                event_id: e1,
            },
        );
        ann.event_count = 2;
        put_profile(store, &ann);
        exec(
            store,
            "INSERT INTO redirects (from_id, to_id) VALUES ($1, $2)",
            vec![old.0, ann.id.0],
            vec![],
        );
        exec(
            store,
            "INSERT INTO profile_events (profile_id, event_id) VALUES ($1, $2), ($3, $4)",
            vec![ann.id.0, e1.0, old.0, e2.0],
            vec![],
        );
        for e in [e1, e2] {
            let state = EventState {
                profile_id: Some(ann.id),
                errors: vec![format!("trait name: Annabel Lee is too long")],
                ..EventState::default()
            };
            put_state(store, e, source, &state);
        }
        put_audit(
            store,
            ann.id,
            "attach",
            json!({"added": [{"kind": "email", "value": ANN}], "source_id": source}),
        );

        let mut bob = Profile::new(ProfileId::new(), now);
        bob.emails = vec!["bob@example.org".into()];
        put_profile(store, &bob);
        let b1 = put_event(
            store,
            source,
            json!({"email": "bob@example.org", "name": "Bob"}),
        );
        let b2 = put_event(
            store,
            source,
            json!({"email": "bob@example.org", "cc": ANN}),
        );
        put_state(store, b1, source, &EventState::default());
        put_audit(
            store,
            bob.id,
            "refusal",
            json!({"refusals": [{"kind": "email", "value": ANN, "reason": "taken"}], "source_id": source}),
        );
        put_audit(
            store,
            bob.id,
            "create",
            json!({"identifiers": [{"kind": "email", "value": "bob@example.org"}], "source_id": source}),
        );
        (ann.id, bob.id, vec![e1, e2, b1, b2])
    }

    fn holding(store: &PgStore, needle: &str) -> Vec<(&'static str, i64)> {
        let like = format!("'%{needle}%'");
        [
            (
                "events",
                format!(
                    "SELECT count(*) FROM events WHERE convert_from(record, 'UTF8') ILIKE {like}"
                ),
            ),
            (
                "event_states",
                format!("SELECT count(*) FROM event_states WHERE state::text ILIKE {like}"),
            ),
            (
                "audit",
                format!("SELECT count(*) FROM audit WHERE entry::text ILIKE {like}"),
            ),
            (
                "profiles",
                format!("SELECT count(*) FROM profiles WHERE doc::text ILIKE {like}"),
            ),
            (
                "identifiers",
                format!("SELECT count(*) FROM identifiers WHERE value ILIKE {like}"),
            ),
            (
                "errors",
                format!("SELECT count(*) FROM errors WHERE doc::text ILIKE {like}"),
            ),
            (
                "dedupe",
                format!(
                    "SELECT count(*) FROM dedupe WHERE convert_from(substr(key, 17), 'UTF8') ILIKE {like}"
                ),
            ),
        ]
        .into_iter()
        .map(|(table, sql)| (table, count(store, &sql)))
        .filter(|(_, n)| *n > 0)
        .collect()
    }

    #[test]
    fn erasing_everywhere_leaves_no_table_holding_anns_values_and_keeps_bob() {
        let Some(store) = super::super::testing::temp_store() else {
            return;
        };
        let (ann, bob, events) = ann_and_bob(&store);
        // An error entry of Ann's event, another naming her, an unrelated
        // one, and an idempotency key holding her email.
        let entry = |event, message: String| {
            let e = ErrorEntry::new(None, Stage::Identity, Level::Warning, "w", message);
            match event {
                Some(id) => e.with_event(id),
                None => e,
            }
        };
        store
            .log_error(&entry(
                Some(events[0]),
                "mapping failed for Annabel Lee".into(),
            ))
            .unwrap();
        store
            .log_error(&entry(None, format!("refused {ANN}")))
            .unwrap();
        store.log_error(&entry(None, "unrelated".into())).unwrap();
        let mut key = SourceId::new().to_bytes().to_vec();
        key.extend_from_slice(ANN.as_bytes());
        store
            .db
            .block(async {
                let mut conn = store.db.pool.acquire().await?;
                super::super::state::claim_dedupe(&mut conn, &key, events[0]).await
            })
            .unwrap();
        assert!(!holding(&store, ANN).is_empty());
        let report = store.erase_everywhere(ann, |_| Ok(0)).unwrap().unwrap();
        assert_eq!((report.error_entries, report.dedupe_keys), (2, 1));
        assert_eq!(
            count(&store, "SELECT count(*) FROM errors"),
            3,
            "entries stay, redacted"
        );
        assert_eq!(report.profile_id, Some(ann));
        assert_eq!((report.profiles, report.identifiers), (2, 2));
        assert_eq!(
            (
                report.linked_events,
                report.other_events,
                report.log_records
            ),
            (2, 1, 3)
        );
        assert_eq!(report.audit_entries, 1, "bob's refusal line");
        assert_eq!(report.database_rewrite, DatabaseRewrite::NotNeeded);
        for needle in [ANN, ANN_OLD, "Annabel"] {
            assert_eq!(holding(&store, needle), vec![], "{needle}");
        }
        assert_eq!(count(&store, "SELECT count(*) FROM redirects"), 0);
        assert_eq!(count(&store, "SELECT count(*) FROM profile_events"), 0);
        // Events stay (erased markers), Bob's own event and profile are untouched.
        assert_eq!(count(&store, "SELECT count(*) FROM events"), 4);
        assert_eq!(count(&store, "SELECT count(*) FROM events WHERE convert_from(record, 'UTF8') LIKE '%\"_erased\":true%'"), 3);
        assert_eq!(
            holding(&store, "bob@example.org").len(),
            4,
            "events, audit, profiles, identifiers"
        );
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM profiles WHERE id = '{}'", bob.0)
            ),
            1
        );
        // The erasure line remains with its counts; the old attach line is redacted.
        let lines: Vec<String> = store
            .db
            .block(
                sqlx::query_scalar(
                    "SELECT entry::text FROM audit WHERE profile_id = $1 ORDER BY id",
                )
                .bind(ann.0)
                .fetch_all(&store.db.pool),
            )
            .unwrap();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"redacted\": true"), "{}", lines[0]);
        assert!(lines[1].contains("\"erasure\""), "{}", lines[1]);
        store.vacuum().unwrap();
        // A second erasure finds nothing, through the id or the merged one.
        assert!(store.erase_everywhere(ann, |_| Ok(0)).unwrap().is_none());
        assert!(store.erase_profile(ann).unwrap().is_none());
    }

    #[test]
    fn erase_profile_follows_a_redirect_and_returns_the_events_newest_first() {
        let Some(store) = super::super::testing::temp_store() else {
            return;
        };
        let (ann, _, events) = ann_and_bob(&store);
        let old: Uuid = store
            .db
            .block(sqlx::query_scalar("SELECT from_id FROM redirects").fetch_one(&store.db.pool))
            .unwrap();
        let linked = store.erase_profile(ProfileId(old)).unwrap().unwrap();
        assert_eq!(linked, vec![events[1], events[0]]);
        assert_eq!(
            count(
                &store,
                &format!("SELECT count(*) FROM profiles WHERE id = '{}'", ann.0)
            ),
            0
        );
        assert_eq!(
            count(&store, "SELECT count(*) FROM identifiers"),
            1,
            "bob's"
        );
    }

    /// What an erasure costs: it reads the whole events and audit tables.
    /// `INLET_TEST_DATABASE_URL=… cargo test --lib pg_erasure_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn pg_erasure_cost() {
        let Some(store) = super::super::testing::temp_store() else {
            return;
        };
        let (ann, _, _) = ann_and_bob(&store);
        {
            let n = 50_000;
            let sql = format!(
                "INSERT INTO events (id, source_id, received_at, record)
                 SELECT gen_random_uuid(), $1, now(), convert_to(json_build_object(
                     'email', 'bob' || g || '@example.org', 'pad', repeat('x', 200))::text, 'UTF8')
                 FROM generate_series(1, {n}) g"
            );
            exec(&store, &sql, vec![Uuid::now_v7()], vec![]);
            let events = count(&store, "SELECT count(*) FROM events");
            let started = std::time::Instant::now();
            let report = store.erase_everywhere(ann, |_| Ok(0)).unwrap().unwrap();
            println!(
                "{events} events: erased {} linked + {} other in {:?}",
                report.linked_events,
                report.other_events,
                started.elapsed()
            );
        }
    }
}
