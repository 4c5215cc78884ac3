//! Undoing a merge on PostgreSQL, in one transaction under the identity
//! lock, running the pure [`identity::split`].
//!
//! The whole unit runs inside `PgStore::identity_write`: the lock is taken
//! first, then everything the split needs is read (the profile, its
//! history, its events' states). Every identity writer on every node holds
//! that lock until it commits (batches, replays, erasure), so what was read
//! stays true until this transaction commits. The reads go through the
//! pool (they reuse the profile reads), the writes through the view's own
//! connection: the profile rebuilt by the replay (flushed by
//! `identity_write`), the old event links removed, the events' states
//! re-attributed, new refusals logged, the never-merge rules stored. After
//! the commit the identity config is reloaded here and announced, so the
//! next resolution on any node uses the new rules (a batch reads them
//! inside its own transaction anyway).

use super::cluster::Change;
use super::identity::PgTxn;
use super::PgStore;
use crate::domain::identity::{
    self, NeverMergeRule, Profile, SplitEvent, SplitOutcome, SplitRefusal, SplitRequest,
};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{ErrorEntry, EventState};
use crate::store::split::{split_head, Blocklists, SplitHead};
use crate::store::{StoreError, StoreResult, UnitError};
use std::collections::HashMap;
use uuid::Uuid;

/// Everything a split reads before it writes.
struct Gathered {
    live: Profile,
    rules: Vec<NeverMergeRule>,
    events: Vec<SplitEvent>,
    /// Each replayed event's stored state and source, to write back
    /// re-attributed.
    states: HashMap<EventId, (EventState, SourceId)>,
}

/// A test's fault: a split of this profile fails after the replay and its
/// writes, before commit (keyed by profile so other tests run meanwhile).
#[cfg(test)]
static FAIL_INSIDE: std::sync::Mutex<Option<crate::domain::ids::ProfileId>> =
    std::sync::Mutex::new(None);

fn store_error(e: impl Into<StoreError>) -> UnitError {
    UnitError::Store(e.into())
}

impl PgStore {
    /// Undoes one merge of a profile (see the seam and
    /// `domain::identity::split`).
    pub(super) fn split_profile(
        &self,
        request: &SplitRequest,
    ) -> StoreResult<Result<SplitOutcome, SplitRefusal>> {
        let done = self.identity_write(|txn| self.split_in(txn, request))?;
        if done.is_ok() {
            self.identity_state.reload(&self.db)?;
            self.announce(Change::IdentityConfig);
        }
        Ok(done)
    }

    /// The unit of work, with the identity lock held.
    fn split_in(
        &self,
        txn: &PgTxn<'_>,
        request: &SplitRequest,
    ) -> Result<Result<SplitOutcome, SplitRefusal>, UnitError> {
        let g = match self.gather(request).map_err(store_error)? {
            Ok(g) => g,
            Err(refusal) => return Ok(Err(refusal)),
        };
        // The live profile's links (its own and those of the ids merged
        // into it) are rebuilt by the replay; the view writes the new ones
        // when `identity_write` flushes it, after this delete.
        let ids: Vec<Uuid> = std::iter::once(g.live.id)
            .chain(g.live.merged_from.iter().copied())
            .map(|p| p.0)
            .collect();
        {
            let mut conn = txn.connection();
            self.db
                .block(unlink_events(&mut conn, &ids))
                .map_err(store_error)?;
        }
        let done = identity::split(txn, &g.live, &g.events, &g.rules, request)?;
        let mut states = Vec::with_capacity(done.events.len());
        let mut errors = Vec::new();
        for (id, outcome) in &done.events {
            let Some((state, source)) = g.states.get(id) else {
                continue;
            };
            errors.extend(identity::new_refusals(*id, *source, state, outcome));
            let mut state = state.clone();
            identity::resettle(&mut state, outcome);
            states.push((*id, *source, state));
        }
        {
            let mut conn = txn.connection();
            self.db
                .block(write_results(&mut conn, &states, &errors, &g.rules))
                .map_err(store_error)?;
        }
        #[cfg(test)]
        if *FAIL_INSIDE.lock().unwrap() == Some(request.profile_id) {
            return Err(UnitError::Store(StoreError::ReadOnly(
                "a test's fault inside the split",
            )));
        }
        Ok(Ok(done))
    }

    /// Reads the profile, checks the merge can be undone, and collects its
    /// events (arrival order) with their states, as the embedded split.
    fn gather(&self, request: &SplitRequest) -> StoreResult<Result<Gathered, SplitRefusal>> {
        let SplitHead {
            live,
            rules,
            events: ids,
        } = match split_head(self, request)? {
            Ok(head) => head,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let stored = self.stored_states(&ids)?;
        let mut blocklists = Blocklists::default();
        let mut events = Vec::with_capacity(ids.len());
        let mut states = HashMap::with_capacity(ids.len());
        let mut gone = 0;
        for id in ids {
            let Some((state, source_id)) = stored.get(&id) else {
                gone += 1;
                continue;
            };
            // A linked event a later replay of its mapping failed maps to
            // nothing now: it brings nothing to the rebuild.
            let Some(mapped) = state.mapped.clone() else {
                continue;
            };
            let blocklist = blocklists.of(self, *source_id)?;
            events.push(SplitEvent {
                input: identity::resolve_input(id, *source_id, &mapped),
                blocklist,
                created: SplitEvent::created_by(state),
            });
            states.insert(id, (state.clone(), *source_id));
        }
        if gone > 0 {
            return Ok(Err(SplitRefusal::EventsGone(gone)));
        }
        Ok(Ok(Gathered {
            live,
            rules,
            events,
            states,
        }))
    }

    /// The states and sources of `ids` that are still in the log and were
    /// processed, in one query (an event missing from the answer is gone).
    fn stored_states(
        &self,
        ids: &[EventId],
    ) -> StoreResult<HashMap<EventId, (EventState, SourceId)>> {
        let ids: Vec<Uuid> = ids.iter().map(|e| e.0).collect();
        let rows: Vec<(Uuid, Uuid, String)> = self.db.block(async {
            sqlx::query_as(
                "SELECT e.id, e.source_id, s.state::text
                 FROM events e JOIN event_states s ON s.event_id = e.id
                 WHERE e.id = ANY($1::uuid[])",
            )
            .bind(&ids)
            .fetch_all(&self.db.pool)
            .await
        })?;
        rows.into_iter()
            .map(|(id, source, state)| {
                let state: EventState =
                    serde_json::from_str(&state).map_err(|source| StoreError::Corrupt {
                        tree: "event_states",
                        source,
                    })?;
                Ok((EventId(id), (state, SourceId(source))))
            })
            .collect()
    }
}

/// Removes every event link of the profiles in `ids`.
async fn unlink_events(conn: &mut sqlx::PgConnection, ids: &[Uuid]) -> StoreResult<()> {
    sqlx::query("DELETE FROM profile_events WHERE profile_id = ANY($1::uuid[])")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// The split's writes outside the identity view: states, refusals, rules.
async fn write_results(
    conn: &mut sqlx::PgConnection,
    states: &[(EventId, SourceId, EventState)],
    errors: &[ErrorEntry],
    rules: &[NeverMergeRule],
) -> StoreResult<()> {
    let states: Vec<(EventId, SourceId, &EventState)> = states
        .iter()
        .map(|(id, s, state)| (*id, *s, state))
        .collect();
    super::events::write_states(&mut *conn, &states).await?;
    if !errors.is_empty() {
        let errors: Vec<&ErrorEntry> = errors.iter().collect();
        super::state::insert_errors(&mut *conn, &errors).await?;
    }
    store_rules(conn, rules).await
}

async fn store_rules(conn: &mut sqlx::PgConnection, rules: &[NeverMergeRule]) -> StoreResult<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    let docs = rules
        .iter()
        .map(|r| {
            serde_json::to_string(r).map_err(|source| StoreError::Encode {
                what: "a never-merge rule",
                source,
            })
        })
        .collect::<StoreResult<Vec<String>>>()?;
    sqlx::query(
        "INSERT INTO never_merge (id, rule)
         SELECT id, rule::jsonb FROM UNNEST($1::uuid[], $2::text[]) AS t(id, rule)
         ON CONFLICT (id) DO UPDATE SET rule = EXCLUDED.rule",
    )
    .bind(&ids)
    .bind(&docs)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against a real PostgreSQL (`INLET_TEST_DATABASE_URL`; skipped
    //! without it), compared with the embedded store for the same events.
    use super::*;
    use crate::domain::activity::ActivityDelta;
    use crate::domain::identity::{AuditChange, Blocklist, IdentKey, IdentKind, IdentityTxn};
    use crate::domain::ids::ProfileId;
    use crate::domain::model::{EventStatus, MappedEvent, RawEvent};
    use crate::store::postgres::testing::temp_store;
    use crate::store::{EventLog, Planned, Resolved, StateStore, Store};
    use std::sync::Arc;

    type Ids = (Option<&'static str>, Option<&'static str>);

    /// Ann (email), Bob and Carl (visitor ids); Ann and Bob merged by an
    /// event with both, Carl merged in later, then events on the merged
    /// profile. Splitting the first merge must keep Carl's merge.
    const EVENTS: &[Ids] = &[
        (Some("a@x.io"), None),
        (None, Some("vb")),
        (None, Some("vc")),
        (Some("a@x.io"), Some("vb")),
        (None, Some("vb")),
        (Some("a@x.io"), Some("vc")),
        (None, Some("vc")),
    ];

    fn mapped(received: chrono::DateTime<chrono::Utc>, (email, visitor): Ids) -> MappedEvent {
        MappedEvent {
            name: "seen".into(),
            visitor_id: visitor.map(Into::into),
            email: email.map(Into::into),
            external_id: None,
            event_id: None,
            timestamp: received,
            properties: serde_json::Map::new(),
            traits: serde_json::Map::new(),
            idempotency_key: None,
            mapping_version: 1,
            identifiers: Default::default(),
        }
    }

    fn resolved_state(mapped: MappedEvent, outcome: &identity::Outcome) -> EventState {
        EventState {
            status: Some(EventStatus::Resolved),
            mapped: Some(Arc::new(mapped)),
            profile_id: outcome.profile_id,
            resolution: Some(outcome.summary()),
            ..EventState::default()
        }
    }

    /// The events processed on PostgreSQL as the processor's batch would:
    /// logged, resolved in one identity unit, their states written (the
    /// batch commit itself needs the state area's progress writes, so its
    /// steps are taken here).
    fn processed_on_pg(pg: &PgStore, source: SourceId, events: &[Ids]) -> Vec<EventId> {
        let raws: Vec<RawEvent> = events
            .iter()
            .map(|_| {
                let mut raw = RawEvent::received(source, serde_json::json!({}));
                raw.id = EventId::new();
                raw.not_mappable = None;
                raw
            })
            .collect();
        pg.import_events(&raws).unwrap();
        let blocklist = Blocklist::default();
        let mapped: Vec<MappedEvent> = raws
            .iter()
            .zip(events)
            .map(|(raw, ids)| mapped(raw.received_at, *ids))
            .collect();
        let outcomes = pg
            .identity_write(|txn| {
                raws.iter()
                    .zip(&mapped)
                    .map(|(raw, m)| {
                        let input = identity::resolve_input(raw.id, source, m);
                        identity::resolve(txn, &input, &blocklist)
                    })
                    .collect::<Result<Vec<_>, UnitError>>()
            })
            .unwrap();
        let states: Vec<EventState> = mapped
            .into_iter()
            .zip(&outcomes)
            .map(|(m, outcome)| resolved_state(m, outcome))
            .collect();
        let rows: Vec<(EventId, SourceId, &EventState)> = raws
            .iter()
            .zip(&states)
            .map(|(raw, state)| (raw.id, source, state))
            .collect();
        pg.db
            .block(async {
                let mut conn = pg.db.pool.acquire().await?;
                crate::store::postgres::events::write_states(&mut conn, &rows).await
            })
            .unwrap();
        raws.iter().map(|r| r.id).collect()
    }

    /// The same events through the embedded store's batch commit.
    fn processed_on_sled(store: &Store, source: SourceId, events: &[Ids]) -> Vec<EventId> {
        let raws: Vec<RawEvent> = events
            .iter()
            .map(|_| {
                let mut raw = RawEvent::received(source, serde_json::json!({}));
                raw.not_mappable = None;
                raw
            })
            .collect();
        store.append_events(raws).unwrap();
        store.flush_now().unwrap();
        let logged = store.next_pending(None, events.len()).unwrap();
        let blocklist = Arc::new(Blocklist::default());
        let plans: Vec<Planned> = logged
            .iter()
            .zip(events)
            .map(|(e, ids)| {
                let mapped = mapped(e.raw.received_at, *ids);
                crate::store::split::testing::resolved(e, source, mapped, &blocklist)
            })
            .collect();
        let last = logged.last().map(|e| (e.raw.id, e.at));
        let resolve = |txn: &dyn IdentityTxn<Error = UnitError>,
                       item: &Planned|
         -> Result<Resolved, UnitError> {
            let mut resolved = Resolved::as_planned(item);
            if let Some((input, blocklist)) = &item.resolve {
                let outcome = identity::resolve(txn, input, blocklist)?;
                resolved.state.profile_id = outcome.profile_id;
                resolved.state.resolution = Some(outcome.summary());
            }
            Ok(resolved)
        };
        store
            .commit_batch(
                &plans,
                last,
                &HashMap::new(),
                &ActivityDelta::default(),
                resolve,
            )
            .unwrap();
        store.pending_done(last.unwrap().0).unwrap();
        logged.iter().map(|e| e.raw.id).collect()
    }

    /// The first merge line of the profile holding `a@x.io`.
    fn first_merge(history: Vec<identity::AuditEntry>) -> Uuid {
        history
            .into_iter()
            .filter(|e| matches!(e.change, AuditChange::Merge(_)))
            .map(|e| e.id)
            .min()
            .unwrap()
    }

    fn request(profile_id: ProfileId, merge_id: Uuid) -> SplitRequest {
        SplitRequest {
            profile_id,
            merge_id,
            by: "test".into(),
            reason: "wrong".into(),
        }
    }

    /// A split's answer, or `None` (the test then says it skipped) while
    /// the error log's writes are the state area's stub: replaying a merge
    /// always logs a new refusal (the never-merge rule's).
    fn unless_errors_are_stubbed<T>(answer: StoreResult<T>) -> Option<T> {
        match answer {
            Err(StoreError::Unsupported("insert_errors")) => {
                eprintln!("SKIPPED split test: state::insert_errors is not implemented yet");
                None
            }
            answer => Some(answer.unwrap()),
        }
    }

    fn ann() -> IdentKey {
        IdentKey::new(IdentKind::Email, "a@x.io")
    }

    /// What a backend ends with, free of its random ids: each event's
    /// resolution and the identifiers of its profile, and the profiles'
    /// identifier sets with their event counts.
    type Shape = (
        Vec<(Option<String>, Vec<Vec<u8>>)>,
        Vec<(Vec<Vec<u8>>, u64)>,
    );

    fn keys_of(p: &Profile) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = p.keys().iter().map(IdentKey::to_key_bytes).collect();
        keys.sort();
        keys
    }

    fn shape(store: &impl StateStore, events: &[EventId]) -> Shape {
        let per_event = events
            .iter()
            .map(|id| {
                let state = store.event_state(*id).unwrap().unwrap();
                let profile = state
                    .profile_id
                    .and_then(|p| store.profile(p).unwrap())
                    .map(|p| keys_of(&p))
                    .unwrap_or_default();
                (state.resolution, profile)
            })
            .collect();
        let mut profiles: Vec<(Vec<Vec<u8>>, u64)> = store
            .profiles_page(&[], 100, None)
            .unwrap()
            .profiles
            .iter()
            .map(|p| (keys_of(p), p.event_count))
            .collect();
        profiles.sort();
        (per_event, profiles)
    }

    fn table_digest(pg: &PgStore) -> Vec<Option<String>> {
        [
            "identifiers",
            "profiles",
            "redirects",
            "profile_events",
            "audit",
            "event_states",
            "never_merge",
        ]
        .iter()
        .map(|table| {
            pg.db
                .block(
                    sqlx::query_scalar(&format!(
                        "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
                    ))
                    .fetch_one(&pg.db.pool),
                )
                .unwrap()
        })
        .collect()
    }

    #[test]
    fn a_split_ends_as_on_the_embedded_store() {
        let Some(pg) = temp_store() else { return };
        let sled = Store::temporary().unwrap();
        let source = SourceId::new();
        let on_pg = processed_on_pg(&pg, source, EVENTS);
        let on_sled = processed_on_sled(&sled, source, EVENTS);
        assert_eq!(
            shape(&pg, &on_pg),
            shape(&sled, &on_sled),
            "before the split"
        );

        let pg_ann = pg.profile_by(&ann()).unwrap().unwrap().id;
        let sled_ann = sled.profile_by(&ann()).unwrap().unwrap().id;
        let pg_merge = first_merge(pg.profile_history(pg_ann).unwrap());
        let sled_merge = first_merge(sled.profile_history(sled_ann).unwrap());
        let Some(pg_done) = unless_errors_are_stubbed(pg.split_profile(&request(pg_ann, pg_merge)))
        else {
            return;
        };
        let pg_done = pg_done.unwrap();
        let sled_done = sled
            .split_profile(&request(sled_ann, sled_merge))
            .unwrap()
            .unwrap();
        let summaries = |done: &SplitOutcome| -> Vec<String> {
            done.events.iter().map(|(_, o)| o.summary()).collect()
        };
        assert_eq!(summaries(&pg_done), summaries(&sled_done));
        assert_eq!(pg_done.profiles.len(), sled_done.profiles.len());
        assert_eq!(pg_done.profiles.len(), 2);
        assert_eq!(
            shape(&pg, &on_pg),
            shape(&sled, &on_sled),
            "after the split"
        );

        // Links rebuilt: each profile lists exactly its events.
        for p in pg.profiles_page(&[], 100, None).unwrap().profiles {
            let linked = pg.profile_events(p.id, 100, None).unwrap();
            assert_eq!(linked.len() as u64, p.event_count);
            for id in linked {
                // Its state names the profile it resolved to then, which
                // may have been merged into `p` since.
                let state = pg.event_state(id).unwrap().unwrap();
                let now_on = state.profile_id.and_then(|q| pg.profile(q).unwrap());
                assert_eq!(now_on.map(|q| q.id), Some(p.id));
            }
        }
        // The rule is stored and in force; a second split is refused.
        assert_eq!(pg.identity_config().never.rules().len(), 1);
        assert_eq!(
            pg.split_profile(&request(pg_ann, pg_merge))
                .unwrap()
                .unwrap_err(),
            SplitRefusal::AlreadySplit
        );
        let nobody = ProfileId::new();
        assert_eq!(
            pg.split_profile(&request(nobody, pg_merge))
                .unwrap()
                .unwrap_err(),
            SplitRefusal::ProfileNotFound(nobody)
        );
        // The next event with both identifiers no longer merges them.
        let more = processed_on_pg(&pg, source, &[(Some("a@x.io"), Some("vb"))]);
        let more_sled = processed_on_sled(&sled, source, &[(Some("a@x.io"), Some("vb"))]);
        assert_eq!(shape(&pg, &more), shape(&sled, &more_sled));
    }

    #[test]
    fn an_error_inside_the_split_leaves_everything_as_before() {
        let Some(pg) = temp_store() else { return };
        processed_on_pg(&pg, SourceId::new(), EVENTS);
        let id = pg.profile_by(&ann()).unwrap().unwrap().id;
        let merge = first_merge(pg.profile_history(id).unwrap());
        let before = table_digest(&pg);
        *FAIL_INSIDE.lock().unwrap() = Some(id);
        let failed = pg.split_profile(&request(id, merge));
        *FAIL_INSIDE.lock().unwrap() = None;
        assert!(failed.is_err());
        assert_eq!(table_digest(&pg), before);
        assert!(pg.identity_config().never.is_empty());
        let vb = IdentKey::new(IdentKind::VisitorId, "vb");
        assert_eq!(pg.profile_by(&vb).unwrap().map(|p| p.id), Some(id));
        // And the same split succeeds afterwards.
        let Some(done) = unless_errors_are_stubbed(pg.split_profile(&request(id, merge))) else {
            return;
        };
        assert!(done.is_ok());
    }

    /// What a split costs on PostgreSQL, for the bound `MAX_SPLIT_EVENTS`:
    /// `cargo test --lib store::postgres::split::tests::split_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn split_cost() {
        for n in [2_000, 19_990] {
            let Some(pg) = temp_store() else { return };
            let mut events: Vec<Ids> = vec![(Some("a@x.io"), None), (None, Some("vb"))];
            events.extend((0..n).map(|i| match i % 2 {
                0 => (Some("a@x.io"), None),
                _ => (None, Some("vb")),
            }));
            events.push((Some("a@x.io"), Some("vb")));
            processed_on_pg(&pg, SourceId::new(), &events);
            let id = pg.profile_by(&ann()).unwrap().unwrap().id;
            let merge = first_merge(pg.profile_history(id).unwrap());
            let started = std::time::Instant::now();
            let Some(done) = unless_errors_are_stubbed(pg.split_profile(&request(id, merge)))
            else {
                return;
            };
            println!(
                "split of a profile with {} events: {} ms ({} profiles after)",
                events.len(),
                started.elapsed().as_millis(),
                done.unwrap().profiles.len()
            );
        }
    }
}
