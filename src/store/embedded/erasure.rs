//! Erasure everywhere: a profile's identifiers and personal fields are
//! removed from every place that copied them, not only from the profile.
//!
//! What counts as personal data, how it is searched for and what replaces
//! it is the domain's policy (`domain::redact`); this file only applies it
//! to sled's trees and the event log: identifiers anywhere (any event whose
//! log record holds one, error entries, audit lines of any profile,
//! idempotency keys), every value in the profile's own events, their error
//! entries and the learned schemas' examples.
//!
//! sled is log-structured: a value it overwrote or removed stays in its
//! files until its garbage collection reuses the space, which nothing
//! bounds. So an erasure also asks for the database to be rewritten into a
//! fresh directory at the next start (`rewrite`), the one point where no
//! handle to it is open; until then stale copies may remain in `db/`.

use super::{decode, encode, Store, StoreError, StoreResult};
use crate::domain::identity::AuditEntry;
use crate::domain::ids::{EventId, ProfileId};
use crate::domain::model::RawEvent;
use crate::domain::redact::{self, Needles, PersonalValues, LOG_MARKER};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// What one erasure removed, place by place (the erase API's answer).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureReport {
    /// The erased profile (the survivor, if an absorbed id was given).
    pub profile_id: Option<ProfileId>,
    /// The profile and every profile merged into it.
    pub profiles: usize,
    /// Identifiers removed from the identity index.
    pub identifiers: usize,
    /// Distinct values searched for (with their escaped forms).
    pub values_searched: usize,
    /// The profile's own events, scrubbed.
    pub linked_events: usize,
    /// Other events whose record held an identifier (failed, unmapped,
    /// refused at identity), scrubbed.
    pub other_events: usize,
    /// Event log records overwritten in place.
    pub log_records: usize,
    /// Error-log entries whose message or excerpt was redacted.
    pub error_entries: usize,
    /// Examples, drift examples and paths dropped from learned schemas.
    pub schema_examples: usize,
    /// Audit lines whose detail was redacted (the erasure line remains).
    pub audit_entries: usize,
    /// Idempotency keys holding an identifier, removed.
    pub dedupe_keys: usize,
    /// When the database files lose the stale copies sled keeps.
    pub database_rewrite: DatabaseRewrite,
}

/// When the database files are rewritten (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseRewrite {
    /// Requested: done before the database opens at the next start.
    #[default]
    AtNextStart,
    /// A temporary store (tests): nothing outlives it.
    NotNeeded,
}

/// How long an erasure waits for the processor to catch up.
pub const CATCH_UP: Duration = Duration::from_secs(10);

impl Store {
    /// Waits until the processor has committed every event appended before
    /// this call (so none of them joins the profile after its erasure, or
    /// escapes the scrub while in flight). False after `timeout`.
    pub(super) fn wait_processed(&self, timeout: Duration) -> StoreResult<bool> {
        let target = self.pending_lock()?.last_id;
        let deadline = Instant::now() + timeout;
        loop {
            let done = {
                let pending = self.pending_lock()?;
                pending
                    .processed_upto
                    .is_some_and(|p| p.0.as_u128() >= target)
                    || pending.iter().next().is_none()
            };
            if done {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Erases a profile and every copy of its personal data (see the module
    /// doc). `redact_schemas` drops the learned schemas' examples matching
    /// the needles it is given and returns how many. `None`: no such profile.
    ///
    /// Call after `wait_processed`. Cost: a read of every log segment and
    /// of the error, audit and dedupe trees, so it grows with the data
    /// kept, not with the profile (measured, docs/notes/erasure.md).
    pub(super) fn erase_everywhere(
        &self,
        id: ProfileId,
        redact_schemas: impl FnOnce(&Needles) -> StoreResult<usize>,
    ) -> StoreResult<Option<ErasureReport>> {
        let Some(profile) = self.profile(id)? else {
            return Ok(None);
        };
        let mut values = PersonalValues::of_profile(&profile);
        let Some(linked) = self.erase_profile(profile.id)? else {
            return Ok(None);
        };
        let mut report = ErasureReport {
            profile_id: Some(profile.id),
            profiles: 1 + profile.merged_from.len(),
            identifiers: profile.keys().len(),
            linked_events: linked.len(),
            ..ErasureReport::default()
        };
        for event in &linked {
            if let Some(state) = self.event_state(*event)? {
                values.add_state(&state);
            }
        }
        let (ids, personal) = values.needles()?;
        report.values_searched = personal.len();

        let mut erased: HashSet<EventId> = HashSet::new();
        let mut places = Vec::new();
        for event in &linked {
            if let Some(at) = self.scrub_event(*event, &personal)? {
                places.push(at);
            }
            erased.insert(*event);
        }
        for (event, at) in self.logged_events_matching(&ids)? {
            // A request's shared record (envelope, headers) is no event:
            // its place is scrubbed, and its records read without it.
            let Some(event) = event else {
                places.push(at);
                continue;
            };
            if erased.insert(event) {
                report.other_events += 1;
                places.push(self.scrub_event(event, &personal)?.unwrap_or(at));
            }
        }
        // The scrubbed copies must be durable before the log forgets the originals.
        self.flush_db()?;
        self.log
            .scrub(&places, 32, LOG_MARKER)
            .map_err(StoreError::io("scrubbing the event log"))?;
        report.log_records = places.len();

        report.error_entries = self.redact_errors(&ids, &personal, &erased)?;
        report.audit_entries = self.redact_audit_matching(&ids)?;
        report.dedupe_keys = self.remove_dedupe_matching(&ids)?;
        report.schema_examples = redact_schemas(&personal)?;
        report.database_rewrite = self.request_rewrite()?;
        // An erasure is a legal obligation: make it durable before answering.
        self.flush_db()?;
        Ok(Some(report))
    }

    /// Every record in the log whose JSON holds one of `needles`: events
    /// with their id, a request's shared record with none.
    fn logged_events_matching(
        &self,
        needles: &Needles,
    ) -> StoreResult<Vec<(Option<EventId>, super::log::Location)>> {
        let log_error = StoreError::io("searching the event log");
        let mut out = Vec::new();
        if needles.is_empty() {
            return Ok(out);
        }
        for segment in self.log.all_segments().map_err(log_error)? {
            for record in self.log.segment_records(segment).map_err(log_error)? {
                let id = if super::shared::is_shared_record(&record.body) {
                    None
                } else {
                    match record.body.get(..16).and_then(EventId::from_slice) {
                        Some(id) => Some(id),
                        None => continue,
                    }
                };
                if needles.is_match(record.body.get(32..).unwrap_or_default()) {
                    out.push((id, record.at));
                }
            }
        }
        Ok(out)
    }

    /// Redacts error entries holding an identifier, and those of an erased
    /// event holding any personal value.
    fn redact_errors(
        &self,
        ids: &Needles,
        personal: &Needles,
        erased: &HashSet<EventId>,
    ) -> StoreResult<usize> {
        let mut redacted = 0;
        for item in self.trees.errors.iter() {
            let (key, bytes) = item?;
            let mut entry: crate::domain::model::ErrorEntry = decode("errors", &bytes)?;
            let own = entry.event_id.is_some_and(|e| erased.contains(&e));
            let needles = if own { personal } else { ids };
            if redact::redact_error(&mut entry, needles) {
                self.trees.errors.insert(key, encode(&entry))?;
                redacted += 1;
            }
        }
        Ok(redacted)
    }

    /// Redacts every audit line (of any profile) whose detail holds an
    /// identifier: a refusal on someone else's profile can name this one's.
    fn redact_audit_matching(&self, ids: &Needles) -> StoreResult<usize> {
        let mut redacted = 0;
        for item in self.trees.audit.iter() {
            let (key, bytes) = item?;
            if !ids.is_match(&bytes) {
                continue;
            }
            let mut entry: AuditEntry = decode("audit", &bytes)?;
            if entry.redact() {
                self.trees.audit.insert(key, encode(&entry))?;
                redacted += 1;
            }
        }
        Ok(redacted)
    }

    /// Removes idempotency keys holding an identifier (source id ‖ key).
    fn remove_dedupe_matching(&self, ids: &Needles) -> StoreResult<usize> {
        let mut removed = 0;
        for item in self.trees.dedupe.iter() {
            let (key, _) = item?;
            if ids.is_match(key.get(16..).unwrap_or_default()) {
                self.trees.dedupe.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes an event's personal data: the payload, envelope and headers
    /// are replaced by a marker (kept in `erased`; the caller overwrites the
    /// log record), and the mapped identifiers, traits and properties are
    /// cleared, in its state chunk itself (an override alone would leave the
    /// old state in the chunk). The event's existence and status remain, so
    /// counts and audit stay consistent. Returns where its record lives.
    pub(super) fn scrub_event(
        &self,
        id: EventId,
        personal: &Needles,
    ) -> StoreResult<Option<super::log::Location>> {
        let Some((event, at)) = self.located_event(id)? else {
            return Ok(None);
        };
        let mut raw: RawEvent = event.raw;
        redact::scrub_raw(&mut raw, personal);
        self.trees.erased.insert(id.to_bytes(), encode(&raw))?;
        if let Some(mut state) = event.state {
            redact::scrub_state(&mut state, personal);
            let entry = super::events::encode_state(at, &state);
            let in_chunk = super::state_chunks::replace(&self.trees.event_state, id, &entry)?;
            let overridden = self.trees.state_overrides.contains_key(id.to_bytes())?;
            if overridden || !in_chunk {
                self.trees.state_overrides.insert(id.to_bytes(), entry)?;
            }
        }
        self.pending_lock()?.forget_event(id);
        Ok(Some(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::domain::identity::{Blocklist, Identifiers, ResolveInput};
    use crate::domain::ids::SourceId;
    use crate::domain::model::{ErrorEntry, EventState, Level, Stage};
    use crate::store::Planned;
    use std::sync::Arc;

    /// `n` events of one source, `every`-th one Ann's (resolved to her
    /// profile), the others Bob's text; all processed, each with an error
    /// entry quoting its payload. Returns Ann's profile id and all ids.
    fn store_with(n: usize, every: usize) -> (Store, ProfileId, Vec<EventId>) {
        fill(Store::temporary().unwrap(), n, every)
    }

    fn fill(store: Store, n: usize, every: usize) -> (Store, ProfileId, Vec<EventId>) {
        let source = SourceId::new();
        let raws: Vec<RawEvent> = (0..n)
            .map(|i| {
                let who = if i % every == 0 { "ann@example.org" } else { "bob@example.org" };
                let payload = serde_json::json!({"email": who, "name": format!("person {i}"), "plan": "gold", "pad": "x".repeat(200)});
                let mut raw = RawEvent::received(source, payload);
                raw.not_mappable = None;
                raw
            })
            .collect();
        let events = store.append_events(raws).unwrap();
        store.flush_now().unwrap();
        let blocklist = Arc::new(Blocklist::default());
        for part in store.next_pending(None, n).unwrap().chunks(500) {
            let plans: Vec<Planned> = part
                .iter()
                .map(|e| {
                    let email = e.raw.payload["email"].as_str().unwrap().to_string();
                    let excerpt = Some(e.raw.payload.to_string());
                    Planned {
                        event_id: e.raw.id,
                        at: e.at,
                        state: EventState::default(),
                        errors: vec![ErrorEntry::new(
                            Some(source),
                            Stage::Sniff,
                            Level::Warning,
                            "w",
                            "a warning",
                        )
                        .with_excerpt(excerpt)
                        .with_event(e.raw.id)],
                        resolve: (email == "ann@example.org").then(|| {
                            (
                                ResolveInput {
                                    event_id: e.raw.id,
                                    source_id: source,
                                    at: e.raw.received_at,
                                    ids: Identifiers {
                                        email: Some(email),
                                        ..Identifiers::default()
                                    },
                                    traits: serde_json::Map::new(),
                                },
                                blocklist.clone(),
                            )
                        }),
                        dedupe_key: None,
                        index_under: Some(source),
                    }
                })
                .collect();
            let last = part.last().map(|e| (e.raw.id, e.at));
            store
                .commit_batch(
                    &plans,
                    last,
                    &std::collections::HashMap::new(),
                    &crate::domain::activity::ActivityDelta::default(),
                    crate::store::embedded::batch::resolve_keeping_state,
                )
                .unwrap();
            store.pending_done(last.unwrap().0).unwrap();
        }
        let ann = store
            .profile_by(&crate::domain::identity::IdentKey::new(
                crate::domain::identity::IdentKind::Email,
                "ann@example.org",
            ))
            .unwrap()
            .unwrap()
            .id;
        (store, ann, events.iter().map(|e| e.id).collect())
    }

    #[test]
    fn erasing_everywhere_scrubs_anns_events_and_errors_and_leaves_bobs() {
        let (store, ann, ids) = store_with(20, 4);
        assert!(store.wait_processed(Duration::from_secs(1)).unwrap());
        let report = store.erase_everywhere(ann, |_| Ok(0)).unwrap().unwrap();
        assert_eq!(
            (
                report.linked_events,
                report.other_events,
                report.log_records
            ),
            (5, 0, 5)
        );
        assert_eq!(report.error_entries, 5);
        assert_eq!(report.database_rewrite, DatabaseRewrite::NotNeeded);
        for (i, id) in ids.iter().enumerate() {
            let (event, at) = store.located_event(*id).unwrap().unwrap();
            let body = store.log.read(at).unwrap();
            let holds_ann = String::from_utf8_lossy(&body).contains("ann@");
            assert!(!holds_ann, "event {i}");
            assert_eq!(
                event.raw.payload.get("email").is_some(),
                i % 4 != 0,
                "event {i}"
            );
        }
        let errors = store
            .errors_page(&crate::store::ErrorFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(errors.len(), 20);
        assert!(errors.iter().all(|e| !format!("{e:?}").contains("ann@")));
        assert_eq!(errors.iter().filter(|e| e.excerpt.is_some()).count(), 15);
        assert!(store.erase_everywhere(ann, |_| Ok(0)).unwrap().is_none());
    }

    /// What an erasure costs: it reads the whole log and the error tree.
    /// `cargo test --lib erasure_cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn erasure_cost() {
        for n in [10_000, 50_000] {
            let (store, ann, _) = store_with(n, 100);
            let log_bytes = store.log.size_on_disk();
            let started = Instant::now();
            let report = store.erase_everywhere(ann, |_| Ok(0)).unwrap().unwrap();
            println!(
                "{n} events ({} MB log, {n} error entries): erased {} events in {:?}",
                log_bytes >> 20,
                report.linked_events,
                started.elapsed()
            );
        }
        // The database rewrite at the next start, on a real data dir.
        let dir = tempfile::tempdir().unwrap();
        let (store, ann, _) = fill(Store::open(dir.path(), 32).unwrap(), 50_000, 100);
        store.erase_everywhere(ann, |_| Ok(0)).unwrap().unwrap();
        let db_bytes = store.db.size_on_disk().unwrap();
        store.close().unwrap();
        drop(store);
        let started = Instant::now();
        let store = Store::open(dir.path(), 32).unwrap();
        println!(
            "rewrite of a {} MB database ({} MB after) at start: {:?}",
            db_bytes >> 20,
            store.db.size_on_disk().unwrap() >> 20,
            started.elapsed()
        );
    }
}
