//! The processor's commit: one sled transaction per batch over the identity
//! trees, the event states, the cursor and counters (totals and time
//! buckets), the error log and the idempotency keys.
//!
//! One transaction per batch (not per event) is what keeps the processor
//! fast: sled's commit cost is paid once for hundreds of events. It also
//! makes a batch all-or-nothing: after a crash, either every event of the
//! batch is resolved, stated, counted and the cursor moved past it, or none
//! is and the batch runs again. The closure sled runs may be retried on a
//! conflict (a support merge landing at the same moment), so everything it
//! does goes through the transaction.

use super::activity::activity_key;
use super::events::{counts_key, encode_state, CURSOR_AT_KEY, CURSOR_KEY, STORED_KEY};
use super::identity::SledTxn;
use super::log::Location;
use super::{encode, Store, StoreResult};
use crate::domain::activity::ActivityDelta;
use crate::domain::counters::Counts;
use crate::domain::identity::{Blocklist, IdentityTxn, ResolveInput};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{ErrorEntry, EventState};
use crate::store::UnitError;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;
use std::collections::HashMap;
use std::sync::Arc;

/// One processed event, ready to commit.
pub struct Planned {
    pub event_id: EventId,
    /// Where the event lives in the log (kept with its state).
    pub at: Location,
    pub state: EventState,
    pub errors: Vec<ErrorEntry>,
    /// Identity work left: the resolver input and the source's blocklist.
    pub resolve: Option<(ResolveInput, Arc<Blocklist>)>,
    /// The idempotency key (source ‖ key) this event claims.
    pub dedupe_key: Option<Vec<u8>>,
    /// Set on an event's first processing: its source, for the per-source index.
    pub index_under: Option<SourceId>,
}

/// What the pipeline decided for one event inside the unit of work: its
/// final state and the error-log entries it adds.
pub struct Resolved {
    pub state: EventState,
    pub errors: Vec<ErrorEntry>,
}

impl Resolved {
    /// The planned state and entries, unchanged (no identity work).
    pub fn as_planned(item: &Planned) -> Self {
        Self {
            state: item.state.clone(),
            errors: item.errors.clone(),
        }
    }
}

impl Store {
    /// Commits a batch in one unit of work; `cursor` (the last new event of
    /// the batch and its place in the log) moves the processor on.
    /// `resolve` runs each event's identity work against the unit's
    /// identity view and returns the event's final state; it must be pure
    /// apart from that view (a backend may run it again on a conflict).
    /// The time buckets the batch touched (`activity`, absolute values like
    /// `counts`) are written in the same transaction.
    pub(super) fn commit_batch(
        &self,
        planned: &[Planned],
        cursor: Option<(EventId, Location)>,
        counts: &HashMap<SourceId, Counts>,
        activity: &ActivityDelta,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        let indexed: Vec<(SourceId, EventId)> = planned
            .iter()
            .filter_map(|p| p.index_under.map(|s| (s, p.event_id)))
            .collect();
        let index = super::source_index::entries(&indexed);
        let counts: Vec<(Vec<u8>, Vec<u8>)> = counts
            .iter()
            .map(|(s, c)| (counts_key(*s), encode(c)))
            .chain(activity.iter().map(|(k, b)| (activity_key(k), encode(b))))
            .collect();
        // The only identity writer while this runs, so the hot-identity
        // cache is current (see `hot`).
        let _writer = self.hot.lock_writer()?;
        // Read after the writer lock: a split (which adds never-merge
        // pairs) holds it too, so this batch sees its pairs.
        let config = self.identity_config();
        let staged = std::cell::RefCell::new(super::hot::Staged::default());
        let t = &self.trees;
        let trees = (
            &t.ident,
            &t.profiles,
            &t.redirects,
            &t.profile_events,
            &t.audit,
            &t.event_state,
            &t.state_overrides,
            &t.meta,
            &t.errors,
            &t.dedupe,
            &t.events_by_source,
        );
        let _exclusive = super::sled_exclusive();
        trees
            .transaction(
                |(
                    ident,
                    profiles,
                    redirects,
                    profile_events,
                    audit,
                    states,
                    overrides,
                    meta,
                    errors,
                    dedupe,
                    by_source,
                )| {
                    // A retried run starts from nothing staged.
                    *staged.borrow_mut() = super::hot::Staged::default();
                    let txn = SledTxn::new(
                        (ident, profiles, redirects, profile_events, audit),
                        Some((&self.hot, &staged)),
                        config.clone(),
                    );
                    // New events' states go in chunks (id order); a state
                    // written again (replay) goes to the overrides.
                    let mut new_states = Vec::with_capacity(planned.len());
                    for item in planned {
                        let Resolved {
                            state,
                            errors: entries,
                        } = resolve(&txn, item)?;
                        let entry = encode_state(item.at, &state);
                        if item.index_under.is_some() {
                            new_states.push((item.event_id, entry));
                        } else {
                            overrides.insert(&item.event_id.to_bytes(), entry)?;
                        }
                        for entry in &entries {
                            errors.insert(&entry.id.to_bytes(), encode(entry))?;
                        }
                        if let Some(key) = &item.dedupe_key {
                            dedupe.insert(key.as_slice(), &item.event_id.to_bytes())?;
                        }
                    }
                    txn.finish()?;
                    for (key, chunk) in super::state_chunks::chunks(&new_states) {
                        states.insert(&key[..], chunk)?;
                    }
                    if !new_states.is_empty() {
                        let stored = meta
                            .get(STORED_KEY)?
                            .and_then(|b| Some(u64::from_be_bytes(b.as_ref().try_into().ok()?)))
                            .unwrap_or(0);
                        let stored = stored + new_states.len() as u64;
                        meta.insert(STORED_KEY, &stored.to_be_bytes())?;
                    }
                    for (key, ids) in &index {
                        by_source.insert(&key[..], ids.as_slice())?;
                    }
                    if let Some((id, at)) = cursor {
                        meta.insert(CURSOR_KEY, &id.to_bytes())?;
                        meta.insert(CURSOR_AT_KEY, &at.to_bytes())?;
                    }
                    for (key, value) in &counts {
                        meta.insert(key.as_slice(), value.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<super::StoreError>>(())
                },
            )
            .map_err(super::abort_reason)?;
        self.hot.absorb(staged.into_inner());
        Ok(())
    }
}

/// For tests: resolves each event's identity and keeps its planned state.
#[cfg(test)]
pub(crate) fn resolve_keeping_state(
    txn: &dyn IdentityTxn<Error = UnitError>,
    item: &Planned,
) -> Result<Resolved, UnitError> {
    if let Some((input, blocklist)) = &item.resolve {
        crate::domain::identity::resolve(txn, input, blocklist)?;
    }
    Ok(Resolved::as_planned(item))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::Identifiers;
    use crate::domain::ids::ProfileId;

    /// Resolves one event with `email` through the processor's batch commit
    /// (which reads through the hot-identity cache); returns its profile.
    fn resolve_in_batch(store: &Store, email: &str) -> Option<ProfileId> {
        let event_id = EventId::new();
        let source_id = SourceId::new();
        let input = ResolveInput {
            event_id,
            source_id,
            at: chrono::Utc::now(),
            ids: Identifiers {
                external_id: None,
                email: Some(email.into()),
                visitor_id: None,
                other: Default::default(),
            },
            traits: serde_json::Map::new(),
        };
        let plan = Planned {
            event_id,
            at: Location {
                segment: 1,
                offset: 0,
                len: 0,
            },
            state: EventState::default(),
            errors: Vec::new(),
            resolve: Some((input, Arc::new(Blocklist::default()))),
            dedupe_key: None,
            index_under: Some(source_id),
        };
        store
            .commit_batch(
                &[plan],
                None,
                &HashMap::new(),
                &ActivityDelta::default(),
                |txn, item| {
                    let mut resolved = Resolved::as_planned(item);
                    if let Some((input, blocklist)) = &item.resolve {
                        let outcome = crate::domain::identity::resolve(txn, input, blocklist)?;
                        resolved.state.profile_id = outcome.profile_id;
                    }
                    Ok(resolved)
                },
            )
            .unwrap();
        store.event_state(event_id).unwrap().unwrap().profile_id
    }

    /// What the time buckets add to a processor commit: batches of 500
    /// new events (no identity work) with and without the three bucket
    /// writes of one source. `cargo test --release --lib
    /// time_buckets_cost -- --ignored --nocapture`; numbers in
    /// docs/notes/charts.md.
    #[test]
    #[ignore]
    fn time_buckets_cost_per_batch() {
        use crate::domain::activity::{Activity, ActivityDelta};
        use crate::domain::model::EventStatus;
        let store = Store::temporary().unwrap();
        let (source, activity) = (SourceId::new(), Activity::default());
        let batch = |n: usize| -> Vec<Planned> {
            (0..n)
                .map(|i| Planned {
                    event_id: EventId::new(),
                    at: Location {
                        segment: 1,
                        offset: i as u64,
                        len: 1,
                    },
                    state: EventState::default(),
                    errors: Vec::new(),
                    resolve: None,
                    dedupe_key: None,
                    index_under: Some(source),
                })
                .collect()
        };
        let counts = HashMap::from([(source, Counts::default())]);
        let time = |with_buckets: bool| {
            let started = std::time::Instant::now();
            for _ in 0..200 {
                let plans = batch(500);
                let mut delta = ActivityDelta::default();
                if with_buckets {
                    let now = chrono::Utc::now();
                    for _ in &plans {
                        delta.first_processed(
                            &activity,
                            source,
                            now,
                            now,
                            EventStatus::Resolved,
                            None,
                        );
                    }
                }
                store
                    .commit_batch(&plans, None, &counts, &delta, resolve_keeping_state)
                    .unwrap();
                activity.install(delta);
            }
            started.elapsed() / 200
        };
        let (without, with) = (time(false), time(true));
        let (without, with) = (time(false).min(without), time(true).min(with));
        println!("per 500-event batch: without buckets {without:?}, with {with:?}");
    }

    #[test]
    fn the_hot_identity_cache_never_outlives_a_support_action() {
        let store = Store::temporary().unwrap();
        let first = resolve_in_batch(&store, "ann@example.org").unwrap();
        assert_eq!(resolve_in_batch(&store, "ann@example.org"), Some(first));
        // Support erases Ann; her next event must start a new profile, not
        // attach to the erased one the cache remembered.
        store.erase_profile(first).unwrap();
        let second = resolve_in_batch(&store, "ann@example.org").unwrap();
        assert_ne!(second, first);
        assert!(store.profile(first).unwrap().is_none());
        let profile = store.profile(second).unwrap().unwrap();
        assert_eq!(profile.event_count, 1);
    }
}
