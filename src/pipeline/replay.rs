//! Replay jobs: re-running the current mapping over a source's stored
//! events of one scope (failed, unmapped, resolved, or all of them, from a
//! received time on), a batch at a time; and single-event retries.
//!
//! A job is stored, so it resumes after a restart from where its last batch
//! ended (`after`). Replay batches run on the planner's thread only while the
//! committer is idle (see `worker::plan_step`), so the pipeline keeps a
//! single writer; they go through the same planning and identity resolution
//! as new events, and move the counters from the old status to the new one
//! (a resolved event replayed stays one resolved event).
//!
//! An event that resolved before is resolved *again*
//! ([`super::commit::resolve_identity_again`]): what the new mapping adds
//! (a trait, an identifier) reaches its profile, but it is not counted,
//! linked or audited twice, so a second replay changes nothing.
//!
//! A retry (the event page's "retry with the current version") is queued
//! in memory and run the same way before the next replay batch; it is not
//! persisted, as it is one click to ask again. Asked on a node that does
//! not process, it is queued in the store for the node that does.

use super::commit::{resolve_identity, resolve_identity_again, Tally};
use super::plan::{planned, Claims, SourceMemo};
use super::{Processor, StoreResult};
use crate::domain::events::StoredEvent;
use crate::domain::identity::Blocklist;
use crate::domain::ids::{EventId, SourceId};
use crate::domain::mapping::CompiledMapping;
use crate::domain::model::{EventState, EventStatus};
use crate::domain::replay::{ReplayJob, ReplayScope};
use crate::domain::source::Source;
use crate::store::{Location, Planned, StateStore};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Ids read per page while counting what a replay would touch.
const COUNT_PAGE: usize = 1_000;

/// One batch of replayed events being planned: their plans, the states
/// of those that resolved before, and the counter moves.
#[derive(Default)]
struct ReplayRun {
    plans: Vec<Planned>,
    earlier: HashMap<EventId, EventState>,
    tally: Tally,
    claimed: Claims,
}

impl Processor {
    /// Runs queued retries, else a batch of the oldest open replay job;
    /// returns events examined.
    pub(super) fn replay_batch(&self) -> StoreResult<usize> {
        let retried = self.retry_queued()?;
        if retried > 0 {
            return Ok(retried);
        }
        let Some(mut job) = self.store.open_replays()?.into_iter().next() else {
            return Ok(0);
        };
        let batch = self.config.batch;
        let ids = self
            .store
            .source_event_ids(job.source_id, job.after, batch)?;
        let mut memo = SourceMemo::default();
        let source = memo.get(&self.store, job.source_id)?;
        let mapping = match source {
            Some((s, _)) => self.mappings.current(&self.store, s)?,
            None => None,
        };
        let (Some((source, blocklist)), Some(mapping)) = (source, mapping) else {
            finish_replay(&mut job);
            self.store.put_replay(&job)?;
            return Ok(0);
        };
        let mut run = ReplayRun::default();
        for id in &ids {
            let Some((event, at)) = self.store.located_event(*id)? else {
                continue;
            };
            // A record that could not be mapped at all fails again without a
            // mapping looking at it (as on arrival): nothing to re-run.
            if !job.takes(event.status(), event.raw.received_at) || event.raw.not_mappable.is_some()
            {
                continue;
            }
            self.replan(&mut run, event, at, source, blocklist, &mapping)?;
            job.done += 1;
        }
        self.commit_replayed(run)?;
        job.after = ids.last().copied().or(job.after);
        if ids.len() < batch {
            finish_replay(&mut job);
        }
        self.store.put_replay(&job)?;
        Ok(ids.len().max(1))
    }

    /// Plans one stored event again through `mapping`, noting the state it
    /// had if it resolved before.
    fn replan(
        &self,
        run: &mut ReplayRun,
        event: StoredEvent,
        at: Location,
        source: &Source,
        blocklist: &Arc<Blocklist>,
        mapping: &CompiledMapping,
    ) -> StoreResult<()> {
        let from = event.status();
        let plan = self.plan_mapped(
            planned(&event.raw, at),
            &event.raw,
            source,
            blocklist,
            mapping,
            &mut run.claimed,
        )?;
        run.tally
            .record(&self.counters, &event.raw, Some(from), &plan);
        if from == EventStatus::Resolved {
            if let Some(state) = event.state {
                run.earlier.insert(event.raw.id, state);
            }
        }
        run.plans.push(plan);
        Ok(())
    }

    /// Commits a replayed batch: events resolved before are resolved again
    /// (idempotently), the others as new.
    fn commit_replayed(&self, run: ReplayRun) -> StoreResult<()> {
        let ReplayRun {
            plans,
            earlier,
            tally,
            ..
        } = run;
        if plans.is_empty() {
            return Ok(());
        }
        tally.commit_with(
            &self.store,
            &plans,
            None,
            &self.counters,
            |txn, plan| match earlier.get(&plan.event_id) {
                Some(state) => resolve_identity_again(txn, plan, state),
                None => resolve_identity(txn, plan),
            },
        )
    }

    /// Runs the retries asked for since the last batch; returns how many.
    fn retry_queued(&self) -> StoreResult<usize> {
        let ids = self.take_retries()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut memo = SourceMemo::default();
        let mut run = ReplayRun::default();
        for id in &ids {
            let Some((event, at)) = self.store.located_event(*id)? else {
                continue;
            };
            if !ReplayScope::All.takes(event.status()) || event.raw.not_mappable.is_some() {
                continue;
            }
            let Some((source, blocklist)) = memo.get(&self.store, event.raw.source_id)? else {
                continue;
            };
            let Some(mapping) = self.mappings.current(&self.store, source)? else {
                continue;
            };
            self.replan(&mut run, event, at, source, blocklist, &mapping)?;
        }
        self.commit_replayed(run)?;
        Ok(ids.len())
    }

    /// Queues one event to be re-run through its source's current mapping
    /// (the caller checked that it can be) and wakes the pipeline.
    /// On a node that does not process, the retry goes through the store
    /// to the node that does.
    pub fn retry(&self, event: EventId) -> StoreResult<()> {
        if self.config.cluster && !self.may_process() {
            return self.store.queue_retry(event);
        }
        self.retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
        self.new_events.notify_one();
        Ok(())
    }

    /// Starts (or restarts) a replay of one status for a source.
    pub fn start_replay(&self, source: SourceId, status: EventStatus) -> StoreResult<ReplayJob> {
        let version = self.store.source(source)?.and_then(|s| s.mapping_version);
        self.start_replay_of(source, ReplayScope::from(status), None, version)
    }

    /// Starts (or restarts) a replay of `scope` for a source, of events
    /// received at or after `since`, through mapping `version` (recorded
    /// for the progress text; the job runs whatever is current).
    pub fn start_replay_of(
        &self,
        source: SourceId,
        scope: ReplayScope,
        since: Option<DateTime<Utc>>,
        version: Option<u32>,
    ) -> StoreResult<ReplayJob> {
        let total = self.replay_count(source, scope, since)?;
        let job = ReplayJob {
            source_id: source,
            status: scope,
            since,
            version,
            after: None,
            total,
            done: 0,
            started_at: Utc::now(),
            finished_at: None,
        };
        self.store.put_replay(&job)?;
        Ok(job)
    }

    /// How many events a replay of `scope` (from `since`) would re-run:
    /// from the counters when it has no time bound, else by reading the
    /// source's events (states and arrival times).
    pub fn replay_count(
        &self,
        source: SourceId,
        scope: ReplayScope,
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<u64> {
        let Some(since) = since else {
            let counts = self.counters.view(source);
            return Ok(match scope {
                ReplayScope::Failed => counts.failed,
                ReplayScope::Unmapped => counts.unmapped,
                ReplayScope::Resolved => counts.resolved,
                ReplayScope::All => counts.failed + counts.unmapped + counts.resolved,
            });
        };
        let mut after = None;
        let mut count = 0;
        loop {
            let ids = self.store.source_event_ids(source, after, COUNT_PAGE)?;
            for id in &ids {
                let taken = self
                    .store
                    .event(*id)?
                    .is_some_and(|e| scope.takes(e.status()) && e.raw.received_at >= since);
                count += u64::from(taken);
            }
            if ids.len() < COUNT_PAGE {
                return Ok(count);
            }
            after = ids.last().copied();
        }
    }
}

fn finish_replay(job: &mut ReplayJob) {
    job.finished_at = Some(Utc::now());
}
