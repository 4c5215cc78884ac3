//! Activity over time: per source, how many events were received, resolved,
//! failed, unmapped and duplicate per minute, per hour and per day, kept as
//! counters in fixed rings (not computed by scanning events).
//!
//! # Which bucket an event counts in
//! Every count of an event goes to the bucket of its `received_at` (a
//! cohort): the bucket of 10:42 says how many events arrived then and what
//! became of them, so `received - processed` in a bucket is what is still
//! pending of it, and a replay that turns a failed event resolved moves it
//! within the bucket it arrived in (as the totals in `counters` move).
//! Error codes are occurrences: a replay adds the new code, never removes
//! an old one (which code the earlier attempt had is not kept).
//!
//! # Bounds
//! A ring has a fixed number of slots per window ([`Window::kept`]: 60
//! minutes, 48 hours, 32 days); a bucket's slot is its start divided by its
//! width, modulo that number, so a newer bucket simply replaces the one a
//! full turn older. Memory and storage are therefore at most
//! `140 slots × sources`, each slot a few counters and at most
//! [`MAX_CODES`] error codes, whatever the volume. An event older than its
//! ring's span is not counted there (its day still counts it).
//!
//! # Who writes
//! Only the processor: it counts a batch into an [`ActivityDelta`] (the
//! absolute new values of the slots the batch touched), the store writes
//! them in the batch's commit transaction, and then they are installed here
//! with [`Activity::install`]. The request path does nothing for them.

use crate::domain::counters::Counts;
use crate::domain::ids::SourceId;
use crate::domain::model::EventStatus;
use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Distinct error codes a bucket keeps; more go to [`OTHER_CODE`]. Codes
/// are constants of the code base (a few dozen), so this only bounds a
/// bucket against a future code that embeds a value.
pub const MAX_CODES: usize = 16;
/// Where codes beyond [`MAX_CODES`] are counted.
pub const OTHER_CODE: &str = "other";

/// A bucket width, and the view built from it: `minute` is the last hour
/// by minute, `hour` the last day by hour, `day` the last 30 days by day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Minute, Window::Hour, Window::Day];

    /// The width of one bucket.
    pub fn seconds(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
        }
    }

    /// Slots the ring keeps (the bound on memory and storage).
    pub fn kept(self) -> usize {
        match self {
            Window::Minute => 60,
            Window::Hour => 48,
            Window::Day => 32,
        }
    }

    /// Buckets a view shows (at most `kept`).
    pub fn shown(self) -> usize {
        match self {
            Window::Minute => 60,
            Window::Hour => 24,
            Window::Day => 30,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minute" => Some(Window::Minute),
            "hour" => Some(Window::Hour),
            "day" => Some(Window::Day),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    /// A stable one-byte tag (storage keys use it).
    pub fn tag(self) -> u8 {
        match self {
            Window::Minute => b'm',
            Window::Hour => b'h',
            Window::Day => b'd',
        }
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Window::ALL.into_iter().find(|w| w.tag() == tag)
    }

    /// The start (unix seconds) of the bucket holding `t`.
    pub fn start_of(self, t: i64) -> i64 {
        t.div_euclid(self.seconds()) * self.seconds()
    }

    /// The slot of the ring a bucket starting at `start` occupies.
    pub fn slot_of(self, start: i64) -> u16 {
        // `kept` is at most 60, so the remainder fits.
        start
            .div_euclid(self.seconds())
            .rem_euclid(self.kept() as i64) as u16
    }

    /// Is a bucket starting at `start` still kept when the newest bucket
    /// starts at `newest`? (Not older than a full turn of the ring.)
    fn keeps(self, start: i64, newest: i64) -> bool {
        let span = self.seconds() * self.kept() as i64;
        start <= newest && newest - start < span
    }
}

/// One bucket: counts of the events received in `[start, start + width)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Unix seconds.
    pub start: i64,
    pub received: u64,
    pub counts: Counts,
    /// Error codes of those events' failures, by occurrence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub codes: BTreeMap<String, u64>,
}

impl Bucket {
    fn empty(start: i64) -> Self {
        Self {
            start,
            ..Self::default()
        }
    }

    fn add_code(&mut self, code: &str) {
        let key = if self.codes.contains_key(code) || self.codes.len() < MAX_CODES {
            code
        } else {
            OTHER_CODE
        };
        *self.codes.entry(key.to_owned()).or_insert(0) += 1;
    }
}

/// Where a bucket lives: a source's ring of one window, one slot of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    pub source: SourceId,
    pub window: Window,
    pub slot: u16,
}

/// One source's rings: a bucket per (window, slot).
type Rings = HashMap<(Window, u16), Bucket>;

/// The rings of every source.
#[derive(Default)]
pub struct Activity {
    slots: Mutex<HashMap<SourceId, Rings>>,
}

impl Activity {
    /// Rebuilds the rings at start from what the store persisted.
    pub fn restore(persisted: impl IntoIterator<Item = (SlotKey, Bucket)>) -> Self {
        let activity = Activity::default();
        {
            let mut slots = activity.lock();
            for (key, bucket) in persisted {
                slots
                    .entry(key.source)
                    .or_default()
                    .insert((key.window, key.slot), bucket);
            }
        }
        activity
    }

    /// Replaces every ring with what the store persisted: on a node that
    /// does not process (another node keeps the buckets), and when this
    /// node takes processing over.
    pub fn replace(&self, persisted: impl IntoIterator<Item = (SlotKey, Bucket)>) {
        let fresh = Activity::restore(persisted);
        let rings = std::mem::take(&mut *fresh.lock());
        *self.lock() = rings;
    }

    /// The map, also after a panic elsewhere poisoned the lock: buckets are
    /// only ever replaced whole, so what it holds is consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<SourceId, Rings>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: SlotKey) -> Option<Bucket> {
        self.lock()
            .get(&key.source)?
            .get(&(key.window, key.slot))
            .cloned()
    }

    /// Installs the buckets a batch has just committed.
    pub fn install(&self, delta: ActivityDelta) {
        let mut slots = self.lock();
        for (key, bucket) in delta.touched {
            slots
                .entry(key.source)
                .or_default()
                .insert((key.window, key.slot), bucket);
        }
    }

    /// The last `window.shown()` buckets up to `now`, oldest first, summed
    /// over `source` (or every source), empty buckets included; and the
    /// error codes counted in them, most frequent first.
    pub fn series(&self, source: Option<SourceId>, window: Window, now: DateTime<Utc>) -> Series {
        let newest = window.start_of(now.timestamp());
        let first = newest - window.seconds() * (window.shown() as i64 - 1);
        let mut buckets: Vec<Bucket> = (0..window.shown() as i64)
            .map(|i| Bucket::empty(first + i * window.seconds()))
            .collect();
        let slots = self.lock();
        let rings = slots
            .iter()
            .filter(|(id, _)| source.is_none_or(|s| s == **id))
            .map(|(_, ring)| ring);
        for ring in rings {
            for sum in buckets.iter_mut() {
                let Some(kept) = ring.get(&(window, window.slot_of(sum.start))) else {
                    continue;
                };
                if kept.start == sum.start {
                    add_into(sum, kept);
                }
            }
        }
        drop(slots);
        let mut codes: BTreeMap<String, u64> = BTreeMap::new();
        for bucket in &buckets {
            for (code, n) in &bucket.codes {
                *codes.entry(code.clone()).or_insert(0) += n;
            }
        }
        let mut top: Vec<CodeCount> = codes
            .into_iter()
            .map(|(code, count)| CodeCount { code, count })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        Series {
            window,
            buckets: buckets.into_iter().map(BucketView::from).collect(),
            top_codes: top,
        }
    }
}

fn add_into(sum: &mut Bucket, b: &Bucket) {
    sum.received += b.received;
    sum.counts.resolved += b.counts.resolved;
    sum.counts.failed += b.counts.failed;
    sum.counts.unmapped += b.counts.unmapped;
    sum.counts.duplicate += b.counts.duplicate;
    for (code, n) in &b.codes {
        *sum.codes.entry(code.clone()).or_insert(0) += n;
    }
}

/// A batch's changes to the rings: the absolute new value of every slot it
/// touched, computed from the live rings (the committer is their only
/// writer) and written in the batch's transaction, as `Counts` are.
#[derive(Debug, Default)]
pub struct ActivityDelta {
    touched: BTreeMap<SlotKey, Bucket>,
}

impl ActivityDelta {
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// The slots to write, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&SlotKey, &Bucket)> {
        self.touched.iter()
    }

    /// An event processed for the first time: received, now `to`, with the
    /// error codes of its failure (if any).
    pub fn first_processed<'c>(
        &mut self,
        activity: &Activity,
        source: SourceId,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
        to: EventStatus,
        codes: impl IntoIterator<Item = &'c str> + Clone,
    ) {
        self.each_bucket(activity, source, received_at, now, |bucket| {
            bucket.received += 1;
            bucket.counts.record(None, to);
            codes.clone().into_iter().for_each(|c| bucket.add_code(c));
        });
    }

    /// An event processed again (replay): it moves from `from` to `to` in
    /// the buckets it arrived in, where they are still kept.
    pub fn reprocessed<'c>(
        &mut self,
        activity: &Activity,
        source: SourceId,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
        (from, to): (EventStatus, EventStatus),
        codes: impl IntoIterator<Item = &'c str> + Clone,
    ) {
        self.each_bucket(activity, source, received_at, now, |bucket| {
            bucket.counts.record(Some(from), to);
            codes.clone().into_iter().for_each(|c| bucket.add_code(c));
        });
    }

    fn each_bucket(
        &mut self,
        activity: &Activity,
        source: SourceId,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
        mut change: impl FnMut(&mut Bucket),
    ) {
        for window in Window::ALL {
            if let Some(bucket) = self.bucket(activity, source, window, received_at, now) {
                change(bucket);
            }
        }
    }

    /// The bucket of `at` in a source's ring, as this batch sees it; `None`
    /// when the ring no longer keeps it (too old, or its slot already holds
    /// a newer bucket).
    fn bucket(
        &mut self,
        activity: &Activity,
        source: SourceId,
        window: Window,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<&mut Bucket> {
        let start = window.start_of(at.timestamp());
        let newest = window.start_of(now.timestamp()).max(start);
        if !window.keeps(start, newest) {
            return None;
        }
        let key = SlotKey {
            source,
            window,
            slot: window.slot_of(start),
        };
        let held = match self.touched.remove(&key) {
            Some(b) => Some(b),
            None => activity.get(key),
        };
        let bucket = match held {
            Some(b) if b.start == start => b,
            // A turn older: this bucket replaces it (it rolls off).
            Some(b) if b.start < start => Bucket::empty(start),
            Some(b) => {
                self.touched.insert(key, b);
                return None;
            }
            None => Bucket::empty(start),
        };
        Some(self.touched.entry(key).or_insert(bucket))
    }
}

/// One bucket as the API and the pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BucketView {
    pub start: DateTime<Utc>,
    pub received: u64,
    pub resolved: u64,
    pub failed: u64,
    pub unmapped: u64,
    pub duplicate: u64,
}

impl BucketView {
    pub fn processed(&self) -> u64 {
        self.resolved + self.failed + self.unmapped + self.duplicate
    }
}

impl From<Bucket> for BucketView {
    fn from(b: Bucket) -> Self {
        Self {
            // Bucket starts come from real timestamps; the epoch is only a
            // fallback for a value no clock produces.
            start: Utc
                .timestamp_opt(b.start, 0)
                .single()
                .unwrap_or(DateTime::UNIX_EPOCH),
            received: b.received,
            resolved: b.counts.resolved,
            failed: b.counts.failed,
            unmapped: b.counts.unmapped,
            duplicate: b.counts.duplicate,
        }
    }
}

/// An error code and how often it occurred in a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CodeCount {
    pub code: String,
    pub count: u64,
}

/// A window's buckets, oldest first, and its error codes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Series {
    pub window: Window,
    pub buckets: Vec<BucketView>,
    pub top_codes: Vec<CodeCount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    const T0: i64 = 1_800_000_000; // a minute boundary

    fn count(
        activity: &Activity,
        source: SourceId,
        received: i64,
        now: i64,
        to: EventStatus,
        code: Option<&str>,
    ) {
        let mut delta = ActivityDelta::default();
        delta.first_processed(activity, source, at(received), at(now), to, code);
        activity.install(delta);
    }

    fn last(activity: &Activity, source: Option<SourceId>, window: Window, now: i64) -> BucketView {
        activity
            .series(source, window, at(now))
            .buckets
            .pop()
            .unwrap()
    }

    #[test]
    fn an_event_counts_in_its_minute_hour_and_day() {
        let activity = Activity::default();
        let s = SourceId::new();
        count(&activity, s, T0 + 5, T0 + 6, EventStatus::Resolved, None);
        count(&activity, s, T0 + 7, T0 + 8, EventStatus::Failed, Some("x"));
        for window in Window::ALL {
            let b = last(&activity, Some(s), window, T0 + 10);
            assert_eq!((b.received, b.resolved, b.failed), (2, 1, 1), "{window:?}");
        }
        let series = activity.series(Some(s), Window::Minute, at(T0 + 10));
        assert_eq!(series.buckets.len(), 60);
        assert_eq!(
            series.top_codes,
            vec![CodeCount {
                code: "x".into(),
                count: 1
            }]
        );
        assert_eq!(
            last(&activity, Some(SourceId::new()), Window::Day, T0).received,
            0
        );
    }

    #[test]
    fn a_minute_rolls_off_after_an_hour_and_its_slot_is_reused() {
        let activity = Activity::default();
        let s = SourceId::new();
        count(&activity, s, T0, T0, EventStatus::Resolved, None);
        let hour_later = T0 + 3_600;
        // The same slot, a full turn later: the old count is gone from the minute ring.
        count(
            &activity,
            s,
            hour_later,
            hour_later,
            EventStatus::Failed,
            None,
        );
        let minute = last(&activity, Some(s), Window::Minute, hour_later);
        assert_eq!((minute.received, minute.resolved, minute.failed), (1, 0, 1));
        let series = activity.series(Some(s), Window::Minute, at(hour_later));
        assert_eq!(series.buckets.iter().map(|b| b.received).sum::<u64>(), 1);
        // The day still has both.
        assert_eq!(
            last(&activity, Some(s), Window::Day, hour_later).received,
            2
        );
    }

    #[test]
    fn an_event_older_than_a_ring_is_not_counted_there_nor_over_a_newer_bucket() {
        let activity = Activity::default();
        let s = SourceId::new();
        let now = T0 + 7_200;
        count(&activity, s, now, now, EventStatus::Resolved, None);
        // Two hours old: outside the minute ring, inside hour and day.
        count(&activity, s, T0, now, EventStatus::Resolved, None);
        let minutes = activity.series(Some(s), Window::Minute, at(now));
        assert_eq!(minutes.buckets.iter().map(|b| b.received).sum::<u64>(), 1);
        let hours = activity.series(Some(s), Window::Hour, at(now));
        assert_eq!(hours.buckets.iter().map(|b| b.received).sum::<u64>(), 2);
    }

    #[test]
    fn a_replay_moves_an_event_within_the_bucket_it_arrived_in() {
        let activity = Activity::default();
        let s = SourceId::new();
        count(&activity, s, T0, T0, EventStatus::Failed, Some("bad"));
        let mut delta = ActivityDelta::default();
        let moved = (EventStatus::Failed, EventStatus::Resolved);
        delta.reprocessed(&activity, s, at(T0), at(T0 + 120), moved, None);
        activity.install(delta);
        let b = last(&activity, Some(s), Window::Hour, T0 + 120);
        assert_eq!((b.received, b.resolved, b.failed), (1, 1, 0));
    }

    #[test]
    fn all_sources_sum_and_one_source_shows_only_its_own() {
        let activity = Activity::default();
        let (a, b) = (SourceId::new(), SourceId::new());
        count(&activity, a, T0, T0, EventStatus::Resolved, None);
        count(&activity, b, T0, T0, EventStatus::Failed, None);
        count(&activity, b, T0, T0, EventStatus::Failed, None);
        assert_eq!(last(&activity, None, Window::Minute, T0).received, 3);
        assert_eq!(last(&activity, Some(a), Window::Minute, T0).failed, 0);
        assert_eq!(last(&activity, Some(b), Window::Minute, T0).failed, 2);
    }

    #[test]
    fn a_bucket_keeps_a_bounded_number_of_codes() {
        let activity = Activity::default();
        let s = SourceId::new();
        for i in 0..(MAX_CODES + 5) {
            let code = format!("code_{i}");
            count(&activity, s, T0, T0, EventStatus::Failed, Some(&code));
        }
        let top = activity.series(Some(s), Window::Minute, at(T0)).top_codes;
        assert_eq!(top.len(), MAX_CODES + 1);
        assert_eq!(
            top[0],
            CodeCount {
                code: OTHER_CODE.into(),
                count: 5
            }
        );
    }

    #[test]
    fn restored_buckets_show_the_same_counts() {
        let activity = Activity::default();
        let s = SourceId::new();
        let mut delta = ActivityDelta::default();
        delta.first_processed(&activity, s, at(T0), at(T0), EventStatus::Resolved, None);
        let persisted: Vec<(SlotKey, Bucket)> =
            delta.iter().map(|(k, b)| (*k, b.clone())).collect();
        activity.install(delta);
        let restored = Activity::restore(persisted);
        for window in Window::ALL {
            assert_eq!(
                activity.series(None, window, at(T0 + 30)),
                restored.series(None, window, at(T0 + 30))
            );
        }
    }

    proptest! {
        /// Whatever arrives, each ring holds at most `kept` buckets per
        /// source, and a view sums exactly the events of its span.
        #[test]
        fn rings_are_bounded_and_views_count_their_span(
            offsets in proptest::collection::vec(0i64..(3 * 86_400), 1..200)
        ) {
            let activity = Activity::default();
            let s = SourceId::new();
            let mut times: Vec<i64> = offsets.iter().map(|o| T0 + o).collect();
            times.sort_unstable();
            for t in &times {
                count(&activity, s, *t, *t, EventStatus::Resolved, None);
            }
            let now = *times.last().unwrap();
            {
                let slots = activity.lock();
                let ring = &slots[&s];
                for window in Window::ALL {
                    let n = ring.keys().filter(|(w, _)| *w == window).count();
                    prop_assert!(n <= window.kept());
                }
            }
            for window in Window::ALL {
                let newest = window.start_of(now);
                let first = newest - window.seconds() * (window.shown() as i64 - 1);
                let expected = times.iter().filter(|t| window.start_of(**t) >= first).count();
                let series = activity.series(Some(s), window, at(now));
                let shown: u64 = series.buckets.iter().map(|b| b.received).sum();
                prop_assert_eq!(shown, expected as u64);
            }
        }
    }
}
