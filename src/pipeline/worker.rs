//! Thread plumbing: the planner and the committer, and how they hand work
//! over.
//!
//! The committer is one OS thread, the only writer of processed events; it
//! commits batch N while the planner (a blocking task driven by `run`)
//! sniffs and maps batch N+1, so the pipeline uses two cores (measured: see
//! docs/performance.md). The channel between them holds no batch
//! (`sync_channel(0)`), so the planner is never more than one batch ahead,
//! which is what [`super::plan::Claims`] relies on. Anything else that writes
//! (replay, retention) first waits for the committer to be idle
//! ([`quiesce`]), so there is still one writer at a time.

use super::plan::PlannedBatch;
use super::{Processor, StoreResult};
use crate::metrics::Metrics;
use crate::store::StoreError;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Work for the committer thread.
pub(super) enum Work {
    /// A planned batch of new events, and when its planning started.
    Batch(PlannedBatch, Instant),
    /// Answered once everything sent before it is committed.
    Barrier(std::sync::mpsc::Sender<()>),
}

fn committer_stopped() -> StoreError {
    StoreError::Stopped("the committer")
}

/// Starts the committer thread; it ends when every sender is dropped.
pub(super) fn spawn_committer(
    processor: Arc<Processor>,
) -> std::io::Result<(SyncSender<Work>, std::thread::JoinHandle<()>)> {
    let (work, queue) = std::sync::mpsc::sync_channel::<Work>(0);
    let handle = std::thread::Builder::new()
        .name("inlet-committer".into())
        .spawn(move || commit_loop(&processor, &processor.metrics, queue))?;
    Ok((work, handle))
}

/// The committer: the one thread that writes processed events. It ends
/// when the planner drops its sender, after the batch in hand.
fn commit_loop(processor: &Processor, metrics: &Metrics, work: Receiver<Work>) {
    for item in work {
        match item {
            Work::Batch(batch, started) => {
                if !processor.is_current(&batch) {
                    continue; // planned past a commit that failed: replanned
                }
                let events = batch.events.len();
                let span = tracing::info_span!("processor_commit", events);
                let _enter = span.enter();
                // A panic must not end the only writer: it is logged, the
                // batch is replanned from the committed cursor, and work goes on.
                let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    processor.commit_planned(batch)
                }));
                match committed {
                    Ok(Ok(())) => metrics.batch_processed(events, started.elapsed()),
                    // Not a failure: another node processes now (see `takeover`).
                    Ok(Err(StoreError::Fenced)) => {
                        tracing::info!("another node processed this batch first; replanning");
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "processor batch failed; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(_) => {
                        tracing::error!("processor batch panicked; retrying");
                        processor.forget_planned();
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
            Work::Barrier(done) => {
                // The waiter may have given up; nothing to tell then.
                let _ = done.send(());
            }
        }
    }
}

/// Waits until the committer has written everything sent so far, so the
/// caller may write too (replay, retention) without a second writer.
pub(super) fn quiesce(work: &SyncSender<Work>) -> StoreResult<()> {
    let (done, wait) = std::sync::mpsc::channel();
    work.send(Work::Barrier(done))
        .map_err(|_| committer_stopped())?;
    wait.recv().map_err(|_| committer_stopped())
}

/// One step of the planner: plan the next batch and hand it over; with
/// nothing new, run a batch of replay once the committer is idle. Returns
/// how many events it took (0: nothing to do).
pub(super) fn plan_step(processor: &Processor, work: &SyncSender<Work>) -> StoreResult<usize> {
    let started = Instant::now();
    if let Some(batch) = processor.plan_next()? {
        let taken = batch.events.len();
        work.send(Work::Batch(batch, started))
            .map_err(|_| committer_stopped())?;
        return Ok(taken);
    }
    quiesce(work)?;
    processor.replay_batch()
}
