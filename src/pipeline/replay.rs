//! Replay jobs: re-running the current mapping over a source's events of
//! one status (failed or unmapped), a batch at a time.
//!
//! A job is stored, so it resumes after a restart from where its last batch
//! ended (`after`). Replay batches run on the planner's thread only while the
//! committer is idle (see `worker::plan_step`), so the pipeline keeps a
//! single writer; they go through the same planning and identity resolution
//! as new events, and move the counters from the old status to the new one.

use super::commit::Tally;
use super::plan::{planned, Claims, SourceMemo};
use super::{Processor, StoreResult};
use crate::domain::ids::SourceId;
use crate::domain::model::EventStatus;
use crate::domain::replay::ReplayJob;
use crate::store::StateStore;
use chrono::Utc;

impl Processor {
    /// Runs a batch of the oldest open replay job; returns events examined.
    pub(super) fn replay_batch(&self) -> StoreResult<usize> {
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
        let mut claimed = Claims::default();
        let mut tally = Tally::default();
        let mut plans = Vec::new();
        for id in &ids {
            let Some((event, at)) = self.store.located_event(*id)? else {
                continue;
            };
            if event.status() != job.status {
                continue;
            }
            let plan = self.plan_mapped(
                planned(&event.raw, at),
                &event.raw,
                source,
                blocklist,
                &mapping,
                &mut claimed,
            )?;
            tally.record(&self.counters, &event.raw, Some(job.status), &plan);
            plans.push(plan);
            job.done += 1;
        }
        tally.commit(&self.store, &plans, None, &self.counters)?;
        job.after = ids.last().copied().or(job.after);
        if ids.len() < batch {
            finish_replay(&mut job);
        }
        self.store.put_replay(&job)?;
        Ok(ids.len().max(1))
    }

    /// Starts (or restarts) a replay of one status for a source.
    pub fn start_replay(&self, source: SourceId, status: EventStatus) -> StoreResult<ReplayJob> {
        let counts = self.counters.view(source);
        let total = match status {
            EventStatus::Failed => counts.failed,
            EventStatus::Unmapped => counts.unmapped,
            _ => 0,
        };
        let job = ReplayJob {
            source_id: source,
            status,
            after: None,
            total,
            done: 0,
            started_at: Utc::now(),
            finished_at: None,
        };
        self.store.put_replay(&job)?;
        Ok(job)
    }
}

fn finish_replay(job: &mut ReplayJob) {
    job.finished_at = Some(Utc::now());
}
