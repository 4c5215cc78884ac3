//! A split on sled: one transaction over the identity trees, the event
//! state overrides and the never-merge rules, running the pure
//! [`identity::split`].
//!
//! What sled cannot do inside a transaction (scan) is done first, holding
//! the identity writer lock, which every identity writer takes (the
//! processor's batch commit, support actions): so what was read stays
//! true until the transaction commits. The lock is held until the new
//! never-merge rules are loaded, so the next batch resolves by them.

use super::events::encode_state;
use super::identity::SledTxn;
use super::{encode, Location, Store, StoreResult};
use crate::domain::identity::{
    self, NeverMergeRule, Profile, SplitEvent, SplitOutcome, SplitRefusal, SplitRequest,
};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::EventState;
use crate::store::split::{split_head, Blocklists, SplitHead};
use sled::Transactional;
use std::collections::HashMap;

/// Everything a split reads before its transaction.
struct Gathered {
    live: Profile,
    rules: Vec<NeverMergeRule>,
    events: Vec<SplitEvent>,
    /// Each event's stored state, place and source, to write back
    /// re-attributed.
    states: HashMap<EventId, (Location, EventState, SourceId)>,
    /// The `profile_events` keys of every id of the live profile.
    link_keys: Vec<sled::IVec>,
}

/// A test's fault: the transaction fails after the replay, before commit.
#[cfg(test)]
static FAIL_INSIDE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Store {
    /// Undoes one merge of a profile (see `domain::identity::split`).
    pub(super) fn split_profile(
        &self,
        request: &SplitRequest,
    ) -> StoreResult<Result<SplitOutcome, SplitRefusal>> {
        let _writer = self.hot.lock_writer()?;
        let gathered = match self.gather(request)? {
            Ok(g) => g,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let done = self.split_txn(request, &gathered);
        // The transaction bypassed the cache (commit or not, it is safe
        // to forget it).
        self.hot.clear();
        let done = done?;
        self.reload_identity_config()?;
        Ok(Ok(done))
    }

    fn gather(&self, request: &SplitRequest) -> StoreResult<Result<Gathered, SplitRefusal>> {
        let SplitHead {
            live,
            rules,
            events: ids,
        } = match split_head(self, request)? {
            Ok(head) => head,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let mut blocklists = Blocklists::default();
        let mut events = Vec::with_capacity(ids.len());
        let mut states = HashMap::with_capacity(ids.len());
        let mut gone = 0;
        for id in ids {
            let Some((stored, at)) = self.located_event(id)? else {
                gone += 1;
                continue;
            };
            let Some(state) = stored.state else {
                gone += 1;
                continue;
            };
            // A linked event a later replay of its mapping failed maps to
            // nothing now: it brings nothing to the rebuild.
            let Some(mapped) = state.mapped.clone() else {
                continue;
            };
            let source_id = stored.raw.source_id;
            let blocklist = blocklists.of(self, source_id)?;
            events.push(SplitEvent {
                input: identity::resolve_input(id, source_id, &mapped),
                blocklist,
                created: SplitEvent::created_by(&state),
            });
            states.insert(id, (at, state, source_id));
        }
        if gone > 0 {
            return Ok(Err(SplitRefusal::EventsGone(gone)));
        }
        let mut link_keys = Vec::new();
        for pid in std::iter::once(live.id).chain(live.merged_from.iter().copied()) {
            for key in self.trees.profile_events.scan_prefix(pid.to_bytes()).keys() {
                link_keys.push(key?);
            }
        }
        Ok(Ok(Gathered {
            live,
            rules,
            events,
            states,
            link_keys,
        }))
    }

    fn split_txn(&self, request: &SplitRequest, g: &Gathered) -> StoreResult<SplitOutcome> {
        let t = &self.trees;
        let config = self.identity_config();
        let trees = (
            &t.ident,
            &t.profiles,
            &t.redirects,
            &t.profile_events,
            &t.audit,
            &t.state_overrides,
            &t.never_merge,
            &t.errors,
        );
        let _exclusive = super::sled_exclusive();
        trees
            .transaction(
                |(ident, profiles, redirects, profile_events, audit, overrides, never, errors)| {
                    let txn = SledTxn::new(
                        (ident, profiles, redirects, profile_events, audit),
                        None,
                        config.clone(),
                    );
                    // The live profile's links are rebuilt by the replay.
                    txn.drop_record(g.live.id)?;
                    for key in &g.link_keys {
                        profile_events.remove(key)?;
                    }
                    let done = identity::split(&txn, &g.live, &g.events, &g.rules, request)?;
                    txn.finish()?;
                    for (id, outcome) in &done.events {
                        let Some((at, state, source)) = g.states.get(id) else {
                            continue;
                        };
                        for entry in identity::new_refusals(*id, *source, state, outcome) {
                            errors.insert(&entry.id.to_bytes()[..], encode(&entry))?;
                        }
                        let mut state = state.clone();
                        identity::resettle(&mut state, outcome);
                        overrides.insert(&id.to_bytes()[..], encode_state(*at, &state))?;
                    }
                    for rule in &g.rules {
                        never.insert(rule.id.as_bytes(), encode(rule))?;
                    }
                    #[cfg(test)]
                    if FAIL_INSIDE.load(std::sync::atomic::Ordering::SeqCst) {
                        return Err(sled::transaction::ConflictableTransactionError::Abort(
                            super::StoreError::ReadOnly("a test's fault inside the split"),
                        ));
                    }
                    Ok(done)
                },
            )
            .map_err(super::abort_reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::{AuditChange, Blocklist, IdentKey, IdentKind};
    use crate::domain::ids::ProfileId;
    use crate::domain::model::{MappedEvent, RawEvent};
    use crate::store::{Planned, Resolved, UnitError};
    use std::sync::Arc;

    /// The identity trees, the overrides, the rules and the error log, byte
    /// for byte.
    fn snapshot(store: &Store) -> Vec<Vec<(sled::IVec, sled::IVec)>> {
        let t = &store.trees;
        [
            &t.ident,
            &t.profiles,
            &t.redirects,
            &t.profile_events,
            &t.audit,
            &t.state_overrides,
            &t.never_merge,
            &t.errors,
        ]
        .iter()
        .map(|tree| tree.iter().map(Result::unwrap).collect())
        .collect()
    }

    /// Processes one event per (email, visitor id) through a batch commit
    /// as the processor does (mapped state, profile and resolution kept).
    fn processed(store: &Store, events: &[(Option<&str>, Option<&str>)]) {
        let source = SourceId::new();
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
        for (part, ids) in logged.chunks(500).zip(events.chunks(500)) {
            commit(store, source, part, ids, &blocklist);
        }
    }

    fn commit(
        store: &Store,
        source: SourceId,
        logged: &[crate::store::Logged],
        events: &[(Option<&str>, Option<&str>)],
        blocklist: &Arc<Blocklist>,
    ) {
        let plans: Vec<Planned> = logged
            .iter()
            .zip(events)
            .map(|(e, (email, visitor))| {
                let mapped = MappedEvent {
                    name: "seen".into(),
                    visitor_id: visitor.map(Into::into),
                    email: email.map(Into::into),
                    external_id: None,
                    event_id: None,
                    timestamp: e.raw.received_at,
                    properties: serde_json::Map::new(),
                    traits: serde_json::Map::new(),
                    idempotency_key: None,
                    mapping_version: 1,
                    identifiers: Default::default(),
                };
                crate::store::split::testing::resolved(e, source, mapped, blocklist)
            })
            .collect();
        let last = logged.last().map(|e| (e.raw.id, e.at));
        let resolve = |txn: &dyn identity::IdentityTxn<Error = UnitError>,
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
                &crate::domain::activity::ActivityDelta::default(),
                resolve,
            )
            .unwrap();
        store.pending_done(last.unwrap().0).unwrap();
    }

    /// Ann (email) and Bob (visitor id), merged by an event with both.
    fn merged(store: &Store) -> (ProfileId, uuid::Uuid) {
        processed(
            store,
            &[
                (Some("a@x.io"), None),
                (None, Some("vb")),
                (Some("a@x.io"), Some("vb")),
            ],
        );
        let id = owner(store, IdentKind::Email, "a@x.io").unwrap();
        let line = store
            .profile_history(id)
            .unwrap()
            .into_iter()
            .find(|e| matches!(e.change, AuditChange::Merge(_)))
            .unwrap();
        (id, line.id)
    }

    fn owner(store: &Store, kind: IdentKind, value: &str) -> Option<ProfileId> {
        store
            .profile_by(&IdentKey::new(kind, value))
            .unwrap()
            .map(|p| p.id)
    }

    fn request(profile_id: ProfileId, merge_id: uuid::Uuid) -> SplitRequest {
        SplitRequest {
            profile_id,
            merge_id,
            by: "test".into(),
            reason: "wrong".into(),
        }
    }

    #[test]
    fn an_error_inside_the_split_leaves_everything_as_before() {
        let store = Store::temporary().unwrap();
        let (id, merge) = merged(&store);
        let before = snapshot(&store);
        FAIL_INSIDE.store(true, std::sync::atomic::Ordering::SeqCst);
        let failed = store.split_profile(&request(id, merge));
        FAIL_INSIDE.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(failed.is_err());
        assert_eq!(snapshot(&store), before);
        assert!(store.identity_config().never.is_empty());
        assert_eq!(owner(&store, IdentKind::VisitorId, "vb"), Some(id));
    }

    #[test]
    fn a_split_rebuilds_links_and_states_and_is_refused_a_second_time() {
        let store = Store::temporary().unwrap();
        let (id, merge) = merged(&store);
        let done = store.split_profile(&request(id, merge)).unwrap().unwrap();
        assert_eq!(done.profiles.len(), 2);
        let bob = owner(&store, IdentKind::VisitorId, "vb").unwrap();
        assert_ne!(bob, id);
        assert_eq!(owner(&store, IdentKind::Email, "a@x.io"), Some(id));
        assert_eq!(store.profile_events(id, 10, None).unwrap().len(), 2);
        let bobs = store.profile_events(bob, 10, None).unwrap();
        assert_eq!(bobs.len(), 1);
        let state = store.event_state(bobs[0]).unwrap().unwrap();
        assert_eq!(state.profile_id, Some(bob));
        assert_eq!(state.resolution.as_deref(), Some("create"));
        assert_eq!(store.identity_config().never.rules().len(), 1);
        assert_eq!(
            store
                .split_profile(&request(id, merge))
                .unwrap()
                .unwrap_err(),
            SplitRefusal::AlreadySplit
        );
        let rule = done.rules[0].id;
        assert!(store.remove_never_merge(rule).unwrap().is_some());
        assert!(store.identity_config().never.is_empty());
        assert!(store.remove_never_merge(rule).unwrap().is_none());
    }

    /// What a split costs, for the bound `MAX_SPLIT_EVENTS`:
    /// `cargo test --release --lib split_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn split_cost() {
        for n in [2_000, 19_990] {
            let store = Store::temporary().unwrap();
            let mut events = vec![(Some("a@x.io"), None), (None, Some("vb"))];
            events.extend((0..n).map(|i| {
                if i % 2 == 0 {
                    (Some("a@x.io"), None)
                } else {
                    (None, Some("vb"))
                }
            }));
            events.push((Some("a@x.io"), Some("vb")));
            processed(&store, &events);
            let id = owner(&store, IdentKind::Email, "a@x.io").unwrap();
            let merge = store
                .profile_history(id)
                .unwrap()
                .into_iter()
                .find(|e| matches!(e.change, AuditChange::Merge(_)))
                .unwrap()
                .id;
            let started = std::time::Instant::now();
            let done = store.split_profile(&request(id, merge)).unwrap().unwrap();
            println!(
                "split of a profile with {} events: {} ms ({} profiles after)",
                events.len(),
                started.elapsed().as_millis(),
                done.profiles.len()
            );
        }
    }
}
