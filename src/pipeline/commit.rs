//! Committing: a planned batch becomes durable state in one unit of work,
//! and this is where identity is resolved.
//!
//! The store's [`Store::commit_batch`] opens the unit of work (one
//! transaction over the identity trees, event states, error log, counters
//! and cursor) and hands the pipeline its identity view
//! (`&dyn IdentityTxn<Error = UnitError>`). The pipeline decides: for each
//! planned event [`resolve_identity`] runs the domain's [`identity::resolve`]
//! against that view and [`fold_outcome`] turns the outcome into the event's
//! state and warnings. The store only provides the unit of work; it decides
//! nothing about who is who. The closure may run more than once (a
//! conflicting transaction is retried), so it is pure over its inputs.
//!
//! When a whole batch cannot commit, [`Processor::commit_one_by_one`]
//! commits each event alone and fails only the ones that still cannot, so
//! one bad event never wedges the pipeline.

use super::plan::{fail, planned, status_of, PlannedBatch};
use super::{Processor, StoreResult};
use crate::domain::activity::ActivityDelta;
use crate::domain::counters::{Counters, Counts};
use crate::domain::identity::{self, Action, Earlier, IdentityTxn, Outcome};
use crate::domain::ids::{EventId, SourceId};
use crate::domain::model::{ErrorEntry, EventState, EventStatus, Level, RawEvent, Stage};
use crate::store::{
    EventLog, Location, Logged, Planned, Resolved, StateStore, Store, StoreError, UnitError,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// Status transitions of a batch, in the totals and the time buckets,
/// applied to a copy of the counters first and to the live ones only after
/// the commit.
pub(super) struct Tally {
    totals: HashMap<SourceId, Counts>,
    activity: ActivityDelta,
    /// "Now" for the buckets: which ones the rings still keep.
    now: DateTime<Utc>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            totals: HashMap::new(),
            activity: ActivityDelta::default(),
            now: Utc::now(),
        }
    }
}

impl Tally {
    /// Counts `raw`, planned as `plan`: a first processing (`from` is None)
    /// is also counted as received, in the bucket of its `received_at`.
    pub(super) fn record(
        &mut self,
        counters: &Counters,
        raw: &RawEvent,
        from: Option<EventStatus>,
        plan: &Planned,
    ) {
        let (source, to) = (raw.source_id, status_of(plan));
        self.totals
            .entry(source)
            .or_insert_with(|| counters.counts(source))
            .record(from, to);
        let codes = plan
            .errors
            .iter()
            .filter(|e| e.level == Level::Error)
            .map(|e| e.code.as_str());
        let (activity, at, now) = (counters.activity(), raw.received_at, self.now);
        match from {
            None => self
                .activity
                .first_processed(activity, source, at, now, to, codes),
            Some(from) => self
                .activity
                .reprocessed(activity, source, at, now, (from, to), codes),
        }
    }

    /// Commits `plans` with these counts in one unit of work, then installs
    /// the counts in the live counters.
    pub(super) fn commit(
        self,
        store: &Store,
        plans: &[Planned],
        cursor: Option<(EventId, Location)>,
        counters: &Counters,
    ) -> StoreResult<()> {
        self.commit_with(store, plans, cursor, counters, resolve_identity)
    }

    /// [`Tally::commit`] with the resolver chosen by the caller (a replay
    /// resolves events that resolved before again, idempotently).
    pub(super) fn commit_with(
        self,
        store: &Store,
        plans: &[Planned],
        cursor: Option<(EventId, Location)>,
        counters: &Counters,
        resolve: impl Fn(&dyn IdentityTxn<Error = UnitError>, &Planned) -> Result<Resolved, UnitError>,
    ) -> StoreResult<()> {
        store.commit_batch(plans, cursor, &self.totals, &self.activity, resolve)?;
        for (source, counts) in self.totals {
            counters.set(source, counts);
        }
        counters.activity().install(self.activity);
        Ok(())
    }
}

/// Resolves one planned event's identity inside the batch's unit of work:
/// the domain's resolver reads and writes profiles and identifier owners
/// through `txn`, and its outcome is folded into the event's state. Events
/// planned without resolution (unmapped, failed, duplicates) pass as planned.
pub(super) fn resolve_identity(
    txn: &dyn IdentityTxn<Error = UnitError>,
    plan: &Planned,
) -> Result<Resolved, UnitError> {
    let mut resolved = Resolved::as_planned(plan);
    if let Some((input, blocklist)) = &plan.resolve {
        let outcome = identity::resolve(txn, input, blocklist)?;
        fold_outcome(plan, &mut resolved.state, &mut resolved.errors, &outcome);
    }
    Ok(resolved)
}

/// [`resolve_identity`] for an event resolved before (a replay of resolved
/// events): the resolver applies only what is new (see
/// [`identity::resolve_again`]), and error-log entries the event already
/// has (same message) are not logged a second time.
pub(super) fn resolve_identity_again(
    txn: &dyn IdentityTxn<Error = UnitError>,
    plan: &Planned,
    earlier: &EventState,
) -> Result<Resolved, UnitError> {
    let mut resolved = Resolved::as_planned(plan);
    if let Some((input, blocklist)) = &plan.resolve {
        let seen = Earlier {
            profile_id: earlier.profile_id,
            refusals: earlier.identity_refused.clone(),
        };
        let outcome = identity::resolve_again(txn, input, blocklist, &seen)?;
        fold_outcome(plan, &mut resolved.state, &mut resolved.errors, &outcome);
        // Joined the same profile again: the event keeps what its arrival
        // did (`create`, `merge`), not `attach`.
        if matches!(outcome.action, Action::Attach) && outcome.profile_id == earlier.profile_id {
            resolved.state.resolution = earlier.resolution.clone().or(resolved.state.resolution);
        }
    }
    let logged_before = |e: &ErrorEntry| {
        earlier.warnings.contains(&e.message) || earlier.errors.contains(&e.message)
    };
    resolved.errors.retain(|e| !logged_before(e));
    Ok(resolved)
}

/// Folds the resolver's outcome into an event's state: refused identifiers
/// become warnings (on the event and in the error log), and the profile and
/// resolution summary are set. Pure, so a retried transaction redoes it.
fn fold_outcome(
    plan: &Planned,
    state: &mut EventState,
    entries: &mut Vec<ErrorEntry>,
    outcome: &Outcome,
) {
    let source = plan.resolve.as_ref().map(|(input, _)| input.source_id);
    for refusal in &outcome.refusals {
        let message = refusal.message();
        state.warnings.push(message.clone());
        state.identity_refused.push(message.clone());
        entries.push(
            ErrorEntry::new(
                source,
                Stage::Identity,
                Level::Warning,
                refusal.reason.code(),
                message,
            )
            .with_event(plan.event_id),
        );
    }
    // `outcome.warnings` says the same as the messages above without the
    // value (it is what a preview shows): adding it too showed every
    // refusal twice on the event page.
    state.profile_id = outcome.profile_id;
    state.resolution = Some(outcome.summary());
}

impl Processor {
    /// Writes a planned batch (identity, states, cursor, counters) and lets
    /// its events leave the queue.
    pub(super) fn commit_planned(&self, batch: PlannedBatch) -> StoreResult<()> {
        let PlannedBatch {
            events,
            plans,
            last,
            ..
        } = batch;
        if let Err(e) = self.commit_new(&events, &plans, last) {
            if matches!(e, StoreError::Fenced) {
                // Another node processed these events first (it took the
                // lease over): nothing here failed, so nothing is marked
                // failed; plan again from the committed cursor, with the
                // counts that node committed.
                self.forget_planned();
                self.resync();
                return Err(e);
            }
            tracing::warn!(error = %e, "batch commit failed; committing its events one by one");
            if let Err(e) = self.commit_one_by_one(&events, plans) {
                // Nothing past the committed cursor is kept: the planner
                // starts again from it.
                self.forget_planned();
                return Err(e);
            }
        } else {
            self.leave_for_planner(plans);
        }
        self.leave_for_planner(events);
        self.store.pending_done(last.0)?;
        self.persist_schemas()
    }

    /// Hands a committed batch's values to the planner to free: the
    /// committer is the processor's bottleneck, and freeing ~1,000 small
    /// trees of JSON values per batch was 10% of its time (measured).
    fn leave_for_planner<T: Send + 'static>(&self, values: Vec<T>) {
        // With the lock poisoned (a panic while pushing) the values are
        // simply freed here: slower, never wrong.
        if let Ok(mut garbage) = self.garbage.lock() {
            garbage.push(Box::new(values));
        }
    }

    /// Commits first-time plans with the cursor at `last`, then counts them.
    fn commit_new(
        &self,
        events: &[Logged],
        plans: &[Planned],
        last: (EventId, Location),
    ) -> StoreResult<()> {
        let mut tally = Tally::default();
        for (event, plan) in events.iter().zip(plans) {
            tally.record(&self.counters, &event.raw, None, plan);
        }
        tally.commit(&self.store, plans, Some(last), &self.counters)
    }

    /// The fallback when a whole batch cannot commit (say one event meets a
    /// profile sled cannot read): each event alone, and an event that still
    /// fails is stored as `failed` with the reason, so one bad event never
    /// wedges the pipeline. Only a store that refuses even that stops it.
    fn commit_one_by_one(&self, events: &[Logged], plans: Vec<Planned>) -> StoreResult<()> {
        for (event, plan) in events.iter().zip(plans) {
            let (raw, single) = (&event.raw, std::slice::from_ref(event));
            let last = (raw.id, event.at);
            if let Err(e) = self.commit_new(single, std::slice::from_ref(&plan), last) {
                tracing::error!(event = %raw.id, error = %e, "event could not be committed; marking it failed");
                let reason = format!(
                    "identity resolution could not be stored ({e}); replay failed events once the cause is fixed"
                );
                let mut failed = fail(
                    planned(raw, event.at),
                    raw,
                    Stage::Identity,
                    "commit_failed",
                    reason,
                );
                failed.index_under = Some(raw.source_id);
                self.commit_new(single, std::slice::from_ref(&failed), last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{processor_with_mapping, raw};
    use crate::domain::identity::{IdentKey, IdentKind};
    use crate::domain::ids::ProfileId;
    use crate::domain::model::{EventStatus, MappingSpec};
    use crate::store::{EventLog, StateStore};

    #[test]
    fn one_event_that_cannot_be_committed_fails_alone_and_the_pipeline_goes_on() {
        let (store, processor, source) = processor_with_mapping(MappingSpec {
            event_name: Some("{{type}}".into()),
            email: Some("{{email}}".into()),
            ..MappingSpec::default()
        });
        // A profile sled holds but cannot be read, owning one email.
        let broken = ProfileId::new();
        let key = IdentKey::new(IdentKind::Email, "broken@example.org");
        store
            .embedded_trees()
            .ident
            .insert(key.to_key_bytes(), &broken.to_bytes()[..])
            .unwrap();
        store
            .embedded_trees()
            .profiles
            .insert(broken.to_bytes(), &b"not json"[..])
            .unwrap();
        let events = vec![
            raw(source.id, "ann@example.org"),
            raw(source.id, "broken@example.org"),
            raw(source.id, "bob@example.org"),
        ];
        let events = store.append_events(events).unwrap().events;
        store.flush_now().unwrap();

        assert_eq!(processor.process_batch().unwrap(), 3);

        let status = |i: usize| store.event(events[i].id).unwrap().unwrap().status();
        assert_eq!(status(0), EventStatus::Resolved);
        assert_eq!(status(1), EventStatus::Failed);
        assert_eq!(status(2), EventStatus::Resolved);
        assert_eq!(store.cursor().unwrap(), Some(events[2].id));
        let counts = processor.counters.counts(source.id);
        assert_eq!((counts.resolved, counts.failed), (2, 1));
    }
}
