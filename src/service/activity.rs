//! Activity over time: the time-bucket counters (`domain::activity`) as a
//! view for the home page, the sources list's sparklines and
//! `GET /api/activity`, with the processor's lag and the error rate.
//!
//! Everything here reads counters the processor keeps in memory (and one
//! look at the head of its queue for the lag): no event is scanned, so the
//! cost does not grow with volume.

use super::sources::SourceList;
use super::{ServiceResult, Services};
use crate::domain::activity::{BucketView, CodeCount, Window};
use crate::domain::ids::SourceId;
use crate::store::EventLog;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

/// Error codes a view lists at most.
pub const TOP_CODES: usize = 5;

/// What to show: one source or all, over which window.
#[derive(Clone, Copy, Debug)]
pub struct ActivityQuery {
    pub source: Option<SourceId>,
    pub window: Window,
}

/// The API's `GET /api/activity` answer, and what the home page draws.
#[derive(Clone, Debug, Serialize)]
pub struct ActivityView {
    pub window: Window,
    /// The width of one bucket.
    pub bucket_seconds: i64,
    /// `null`: every source.
    pub source_id: Option<SourceId>,
    /// Oldest first; every bucket of the window, empty ones included.
    pub buckets: Vec<BucketView>,
    pub totals: WindowTotals,
    /// failed / processed over the window; `null` with nothing processed.
    pub error_rate: Option<f64>,
    /// The most frequent error codes of the window's failures.
    pub top_codes: Vec<CodeCount>,
    pub lag: Lag,
}

/// The window's buckets summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WindowTotals {
    pub received: u64,
    pub processed: u64,
    pub resolved: u64,
    pub failed: u64,
    pub unmapped: u64,
    pub duplicate: u64,
}

/// How far behind the processor is. It is one queue for every source, so
/// the age is the processor's; `pending` is the view's source's (or all).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Lag {
    /// Received and not processed yet.
    pub pending: u64,
    /// How long the oldest event still waiting has waited; `null` when
    /// nothing waits.
    pub oldest_pending_seconds: Option<i64>,
    /// When the last processed event arrived (the processor's cursor).
    pub processed_upto: Option<DateTime<Utc>>,
}

/// The sources list with each source's last day by hour (sparklines).
#[derive(Clone, Debug)]
pub struct SourcesActivity {
    pub list: SourceList,
    pub last_day: HashMap<SourceId, Vec<BucketView>>,
}

impl Services {
    /// Counts per bucket for one source (404 for an unknown one) or all.
    pub async fn activity(&self, query: ActivityQuery) -> ServiceResult<ActivityView> {
        if let Some(id) = query.source {
            self.load_source(id)?;
        }
        let now = Utc::now();
        let series = self
            .counters
            .activity()
            .series(query.source, query.window, now);
        let totals = sum(&series.buckets);
        let error_rate =
            (totals.processed > 0).then(|| totals.failed as f64 / totals.processed as f64);
        let mut top_codes = series.top_codes;
        top_codes.truncate(TOP_CODES);
        Ok(ActivityView {
            window: query.window,
            bucket_seconds: query.window.seconds(),
            source_id: query.source,
            buckets: series.buckets,
            totals,
            error_rate,
            top_codes,
            lag: self.lag(query.source, now)?,
        })
    }

    /// Every source, with its received and failed counts of the last day
    /// by hour.
    pub async fn sources_with_activity(&self) -> ServiceResult<SourcesActivity> {
        let list = self.list_sources().await?;
        let now = Utc::now();
        let activity = self.counters.activity();
        let last_day = list
            .sources
            .iter()
            .map(|s| {
                let series = activity.series(Some(s.id), Window::Hour, now);
                (s.id, series.buckets)
            })
            .collect();
        Ok(SourcesActivity { list, last_day })
    }

    fn lag(&self, source: Option<SourceId>, now: DateTime<Utc>) -> ServiceResult<Lag> {
        let pending = match source {
            Some(id) => self.counters.view(id).pending,
            None => self.counters.total().pending,
        };
        // The head of the queue: the oldest event the processor has not
        // committed (one entry read from memory, or from the log).
        let oldest = self.store.next_pending(None, 1)?;
        let oldest_pending_seconds = oldest
            .first()
            .map(|e| (now - e.raw.received_at).num_seconds().max(0));
        let processed_upto = self
            .store
            .processed_upto()?
            .and_then(|id| id.0.get_timestamp())
            .and_then(|t| {
                let (secs, nanos) = t.to_unix();
                DateTime::from_timestamp(i64::try_from(secs).ok()?, nanos)
            });
        Ok(Lag {
            pending,
            oldest_pending_seconds,
            processed_upto,
        })
    }
}

fn sum(buckets: &[BucketView]) -> WindowTotals {
    let mut t = WindowTotals::default();
    for b in buckets {
        t.received += b.received;
        t.processed += b.processed();
        t.resolved += b.resolved;
        t.failed += b.failed;
        t.unmapped += b.unmapped;
        t.duplicate += b.duplicate;
    }
    t
}
