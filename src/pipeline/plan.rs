//! Planning: each new event through sniff → map, decided in memory and
//! handed to the committer as a [`Planned`] (its state, its error-log
//! entries, and the identity work left for the batch's unit of work).
//!
//! Planning writes nothing to the store, so the planner can run one batch
//! ahead of the committer on another thread. What it must remember between
//! events that are not committed yet (idempotency claims) lives in
//! [`Claims`]; a panic while planning one event is contained to that event
//! ([`Processor::plan_contained`]).

use super::{Processor, StoreResult};
use crate::domain::identity::{Blocklist, ResolveInput};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::CompiledMapping;
use crate::domain::model::{
    ErrorEntry, EventState, EventStatus, Level, MappedEvent, RawEvent, RecordContext, Stage,
};
use crate::domain::sniff::Drift;
use crate::domain::source::Source;
use crate::store::Store;
use crate::store::{EventLog, Location, Logged, Planned, StateStore};
use chrono::Utc;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A payload field that makes `plan` panic, in unit tests only.
#[cfg(test)]
pub(super) const TEST_PANIC: &str = "__inlet_test_panic";

/// Building up one event's plan: its state, its error-log entries, and
/// the identity work left for the batch transaction.
pub(super) fn planned(raw: &RawEvent, at: Location) -> Planned {
    Planned {
        event_id: raw.id,
        at,
        state: EventState {
            processed_at: Some(Utc::now()),
            ..EventState::default()
        },
        errors: Vec::new(),
        resolve: None,
        dedupe_key: None,
        index_under: None,
    }
}

fn finish(mut plan: Planned, status: EventStatus) -> Planned {
    plan.state.status = Some(status);
    plan
}

pub(super) fn fail(
    mut plan: Planned,
    raw: &RawEvent,
    stage: Stage,
    code: &str,
    reason: String,
) -> Planned {
    plan.state.errors.push(reason.clone());
    plan.errors.push(
        ErrorEntry::new(Some(raw.source_id), stage, Level::Error, code, reason).with_event(raw.id),
    );
    finish(plan, EventStatus::Failed)
}

fn warn(plan: &mut Planned, raw: &RawEvent, stage: Stage, code: &str, message: String) {
    plan.state.warnings.push(message.clone());
    plan.errors.push(
        ErrorEntry::new(Some(raw.source_id), stage, Level::Warning, code, message)
            .with_event(raw.id),
    );
}

/// The status a plan ends in (a plan without one failed).
pub(super) fn status_of(plan: &Planned) -> EventStatus {
    plan.state.status.unwrap_or(EventStatus::Failed)
}

/// Idempotency keys claimed by events not committed yet: the batch being
/// planned, and the one before it (which the committer may still be
/// writing). The store knows every older claim.
#[derive(Default)]
pub(super) struct Claims {
    previous: HashMap<Vec<u8>, EventId>,
    current: HashMap<Vec<u8>, EventId>,
}

impl Claims {
    fn get(&self, key: &[u8]) -> Option<EventId> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .copied()
    }

    fn insert(&mut self, key: Vec<u8>, event: EventId) {
        self.current.insert(key, event);
    }

    /// Drops the claims of an event that was not planned after all.
    fn release(&mut self, event: EventId) {
        self.current.retain(|_, holder| *holder != event);
    }

    /// A new batch starts: the last one's claims become `previous`, and the
    /// one before it is committed (the committer took the last batch only
    /// after finishing it).
    fn next_batch(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }
}

/// A batch of new events, mapped and ready for the committer.
pub(super) struct PlannedBatch {
    pub(super) events: Vec<Logged>,
    pub(super) plans: Vec<Planned>,
    pub(super) last: (EventId, Location),
    /// The planner's epoch when it was planned (see `Processor::forget_planned`).
    pub(super) epoch: u64,
}

/// What the planner keeps between batches.
#[derive(Default)]
pub(super) struct PlannerState {
    /// The last event handed to the committer (ahead of the committed cursor).
    taken: Option<EventId>,
    claims: Claims,
}

/// Sources looked up once per batch, with their identifier blocklists.
#[derive(Default)]
pub(super) struct SourceMemo(HashMap<SourceId, Option<(Source, Arc<Blocklist>)>>);

impl SourceMemo {
    pub(super) fn get(
        &mut self,
        store: &Store,
        id: SourceId,
    ) -> StoreResult<Option<&(Source, Arc<Blocklist>)>> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(id) {
            let loaded = store.source(id)?.map(|s| {
                let blocklist = Arc::new(Blocklist::with_extra(&s.blocked_values));
                (s, blocklist)
            });
            slot.insert(loaded);
        }
        Ok(self.0.get(&id).and_then(Option::as_ref))
    }
}

impl Processor {
    /// Sniffs and maps the next durable events after those already handed
    /// to the committer.
    pub(super) fn plan_next(&self) -> StoreResult<Option<PlannedBatch>> {
        // Free what the committer left behind (see `leave_for_planner`). A
        // poisoned lock only means a panic while pushing; the values are
        // still freed.
        let garbage = {
            let mut held = self
                .garbage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *held)
        };
        drop(garbage);
        let mut planner = match self.planner.lock() {
            Ok(planner) => planner,
            // A panic while planning: start again from the committed cursor.
            Err(poisoned) => {
                let mut planner = poisoned.into_inner();
                *planner = PlannerState::default();
                self.planner.clear_poison();
                planner
            }
        };
        let upto = self.store.processed_upto()?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        // At start, and after a failed commit (the committer drops what was
        // planned past it), start again from what is committed. Only then:
        // on PostgreSQL event ids from several nodes are not in log order,
        // so comparing the cursor with what was handed out says nothing.
        if planner.taken.is_none() {
            planner.taken = upto;
        }
        let events = self.store.next_pending(planner.taken, self.config.batch)?;
        let Some(last) = events.last().map(|e| (e.raw.id, e.at)) else {
            return Ok(None);
        };
        planner.claims.next_batch();
        let mut memo = SourceMemo::default();
        let mut plans = Vec::with_capacity(events.len());
        for event in &events {
            let raw = &event.raw;
            let span = tracing::debug_span!("process", event = %raw.id, source = %raw.source_id);
            let _enter = span.enter();
            let source = memo.get(&self.store, raw.source_id)?;
            let mut plan = self.plan_contained(raw, event.at, source, &mut planner.claims)?;
            plan.index_under = Some(raw.source_id);
            plans.push(plan);
        }
        planner.taken = Some(last.0);
        Ok(Some(PlannedBatch {
            events,
            plans,
            last,
            epoch,
        }))
    }

    /// After a failed commit: batches planned past it are void (the
    /// committer skips them) and the planner starts again from the
    /// committed cursor. Both happen under the planner's lock, so a batch
    /// being planned meanwhile carries the old epoch.
    pub(super) fn forget_planned(&self) {
        let mut planner = self.planner.lock().unwrap_or_else(|poisoned| {
            self.planner.clear_poison();
            poisoned.into_inner()
        });
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *planner = PlannerState::default();
    }

    /// Whether `batch` was planned since the last failed commit.
    pub(super) fn is_current(&self, batch: &PlannedBatch) -> bool {
        batch.epoch == self.epoch.load(Ordering::SeqCst)
    }

    /// [`Self::plan`] with a panic contained to the event: it is marked
    /// `failed` (`internal_panic`) and the batch goes on. What the planner
    /// keeps stays consistent: the event's idempotency claim, if it made one,
    /// is released, and the schema registry recovers its lock from poison.
    fn plan_contained(
        &self,
        raw: &RawEvent,
        at: Location,
        source: Option<&(Source, Arc<Blocklist>)>,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let planned_event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan(raw, at, source, claimed)
        }));
        match planned_event {
            Ok(result) => result,
            Err(panic) => {
                let what = panic_message(panic.as_ref());
                tracing::error!(event = %raw.id, panic = ?what, "processing an event panicked; it is marked failed");
                claimed.release(raw.id);
                Ok(fail(
                    planned(raw, at),
                    raw,
                    Stage::Map,
                    "internal_panic",
                    format!(
                        "processing this event hit an internal error ({what}); it was not mapped"
                    ),
                ))
            }
        }
    }

    /// One new event through sniff → map, leaving resolution to the batch.
    fn plan(
        &self,
        raw: &RawEvent,
        at: Location,
        source: Option<&(Source, Arc<Blocklist>)>,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let mut plan = planned(raw, at);
        #[cfg(test)]
        if raw.payload.get(TEST_PANIC).is_some() {
            panic!("a test asked this event to panic");
        }
        if let Some(reason) = &raw.not_mappable {
            return Ok(fail(
                plan,
                raw,
                Stage::Records,
                "not_mappable",
                reason.clone(),
            ));
        }
        for drift in self
            .schemas
            .observe(raw.source_id, &raw.payload, raw.received_at)
        {
            note_drift(&mut plan, raw, &drift);
        }
        let Some((source, blocklist)) = source else {
            plan.state
                .warnings
                .push("the source was deleted before this event was processed".into());
            return Ok(finish(plan, EventStatus::Unmapped));
        };
        match self.mappings.current_or_broken(&self.store, source)? {
            None => Ok(finish(plan, EventStatus::Unmapped)),
            Some(Ok(mapping)) => self.plan_mapped(plan, raw, source, blocklist, &mapping, claimed),
            Some(Err(broken)) => {
                plan.state.failed_version = Some(broken.version);
                Ok(fail(
                    plan,
                    raw,
                    Stage::Map,
                    broken.code,
                    broken.reason.clone(),
                ))
            }
        }
    }

    /// Maps with `mapping` and plans the identity resolution (also used by replay).
    pub(super) fn plan_mapped(
        &self,
        mut plan: Planned,
        raw: &RawEvent,
        source: &Source,
        blocklist: &Arc<Blocklist>,
        mapping: &CompiledMapping,
        claimed: &mut Claims,
    ) -> StoreResult<Planned> {
        let mapped = match mapping.apply(&record_context(raw)) {
            Ok(mapped) => mapped,
            Err(e) => {
                // The event page names the version that failed it.
                plan.state.failed_version = Some(mapping.version);
                return Ok(fail(plan, raw, Stage::Map, e.code(), e.to_string()));
            }
        };
        for warning in mapped.warnings {
            warn(&mut plan, raw, Stage::Map, "map_warning", warning);
        }
        if let Some(warning) = mapped.clamped_timestamp {
            warn(&mut plan, raw, Stage::Map, "timestamp_in_future", warning);
        }
        let event = mapped.event;
        if let Some(key) = &event.idempotency_key {
            let dedupe_key = [source.id.to_bytes().as_slice(), key.as_bytes()].concat();
            let holder = match claimed.get(&dedupe_key) {
                Some(holder) => Some(holder),
                None => self.store.dedupe_holder(&dedupe_key)?,
            };
            if let Some(holder) = holder.filter(|h| *h != raw.id) {
                plan.state.warnings.push(format!(
                    "redelivery of event {holder} (idempotency key `{key}`): kept, not counted again"
                ));
                plan.state.mapped = Some(Arc::new(event));
                return Ok(finish(plan, EventStatus::Duplicate));
            }
            claimed.insert(dedupe_key.clone(), raw.id);
            plan.dedupe_key = Some(dedupe_key);
        }
        plan.resolve = Some((resolve_input(raw, source, &event), blocklist.clone()));
        plan.state.mapped = Some(Arc::new(event));
        Ok(finish(plan, EventStatus::Resolved))
    }
}

/// The text of a panic's payload (`panic!` gives `&str` or `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// What templates see for a stored event.
pub(super) fn record_context(raw: &RawEvent) -> RecordContext<'_> {
    RecordContext {
        record: &raw.payload,
        envelope: raw.envelope.as_deref(),
        headers: &raw.headers,
        received_at: raw.received_at,
    }
}

/// What the resolver needs from a mapped event.
pub(super) fn resolve_input(raw: &RawEvent, source: &Source, event: &MappedEvent) -> ResolveInput {
    // Built in the domain: a split rebuilds the same input from the state.
    crate::domain::identity::resolve_input(raw.id, source.id, event)
}

/// A schema drift the sniffer saw, as a warning in the error log.
fn note_drift(out: &mut Planned, raw: &RawEvent, drift: &Drift) {
    let code = match drift.kind {
        crate::domain::sniff::DriftKind::NewPath => "schema_new_path",
        crate::domain::sniff::DriftKind::TypeChange => "schema_type_change",
    };
    let message = format!("schema drift at `{}`: {}", drift.path, drift.detail);
    let excerpt = drift.example.as_ref().map(|e| e.to_string());
    out.errors.push(
        ErrorEntry::new(
            Some(raw.source_id),
            Stage::Sniff,
            Level::Warning,
            code,
            message,
        )
        .with_excerpt(excerpt)
        .with_event(raw.id),
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{error_codes, processor_with_mapping, raw};
    use super::TEST_PANIC;
    use crate::domain::model::{EventStatus, MappingSpec};
    use crate::store::{EventLog, StateStore};
    use serde_json::json;

    #[test]
    fn a_panic_in_one_event_fails_that_event_and_the_batch_goes_on() {
        let (store, processor, source) = processor_with_mapping(MappingSpec {
            event_name: Some("{{type}}".into()),
            email: Some("{{email}}".into()),
            event_id: Some("{{email}}".into()),
            ..MappingSpec::default()
        });
        let mut panicking = raw(source.id, "bob@example.org");
        panicking.payload[TEST_PANIC] = json!(true);
        let events = store
            .append_events(vec![
                raw(source.id, "ann@example.org"),
                panicking,
                raw(source.id, "bob@example.org"),
            ])
            .unwrap()
            .events;
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 3);

        let status = |i: usize| store.event(events[i].id).unwrap().unwrap().status();
        assert_eq!(status(0), EventStatus::Resolved);
        assert_eq!(status(1), EventStatus::Failed);
        // Same idempotency key as the panicking one: no claim was left behind.
        assert_eq!(status(2), EventStatus::Resolved);
        assert_eq!(error_codes(&store, events[1].id), vec!["internal_panic"]);
    }

    #[test]
    fn a_stored_mapping_that_breaks_a_limit_fails_its_events() {
        let deep = format!("{}x{}", "{{#if a}}".repeat(5000), "{{/if}}".repeat(5000));
        let (store, processor, source) = processor_with_mapping(MappingSpec {
            event_name: Some(deep),
            email: Some("{{email}}".into()),
            ..MappingSpec::default()
        });
        let events = store
            .append_events(vec![
                raw(source.id, "ann@example.org"),
                raw(source.id, "b@x.org"),
            ])
            .unwrap()
            .events;
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 2);

        for event in &events {
            let stored = store.event(event.id).unwrap().unwrap();
            assert_eq!(stored.status(), EventStatus::Failed);
            assert_eq!(error_codes(&store, event.id), vec!["template_too_deep"]);
        }
    }
}
