//! Operational metrics in the Prometheus text format, served at `/metrics`.
//!
//! Two kinds of numbers: those observed as they happen (hook requests and
//! their latency, processor batches), recorded by one call each from the
//! request path and the processor; and those Inlet already keeps elsewhere
//! (per-source counters, the flusher's statistics), copied in at scrape time
//! so there is one source of truth and nothing extra on the hot path.
//!
//! Nothing here is secret: counts, latencies and status codes, no source
//! ids, tokens or payloads.

use crate::domain::counters::Counters;
use crate::store::FlushStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Every metric Inlet exports, registered once at start.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    ingest_seconds: Histogram,
    process_seconds: Histogram,
    process_batch_events: Histogram,
    // Copied in at scrape time:
    events_ingested: Counter,
    events_processed: Family<StatusLabels, Counter>,
    lag: Gauge,
    flushes: Counter,
    flush_tickets: Counter,
    flush_batch_avg: Gauge<f64, AtomicU64>,
    flush_batch_max: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            // 100 µs .. ~3.3 s
            ingest_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            // 500 µs .. ~8 s
            process_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            // 1 .. 4096 events
            process_batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            events_ingested: Counter::default(),
            events_processed: Family::default(),
            lag: Gauge::default(),
            flushes: Counter::default(),
            flush_tickets: Counter::default(),
            flush_batch_avg: Gauge::default(),
            flush_batch_max: Gauge::default(),
        };
        m.register();
        m
    }

    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "inlet_http_requests",
            "Hook requests answered, by status code",
            self.http_requests.clone(),
        );
        r.register(
            "inlet_ingest_seconds",
            "Hook request latency: receipt to answer, including the group flush",
            self.ingest_seconds.clone(),
        );
        r.register(
            "inlet_process_seconds",
            "Processor batch duration (one sled transaction per batch)",
            self.process_seconds.clone(),
        );
        r.register(
            "inlet_process_batch_events",
            "Events per processor batch",
            self.process_batch_events.clone(),
        );
        r.register(
            "inlet_events_ingested",
            "Events stored in the log, counted at append (kept across restarts)",
            self.events_ingested.clone(),
        );
        r.register(
            "inlet_events_processed",
            "Events processed, by outcome (kept across restarts; a replay moves events between outcomes)",
            self.events_processed.clone(),
        );
        r.register(
            "inlet_processor_lag_events",
            "Events stored but not yet processed",
            self.lag.clone(),
        );
        r.register(
            "inlet_flush",
            "Group-commit flushes (fsyncs) since start",
            self.flushes.clone(),
        );
        r.register(
            "inlet_flush_tickets",
            "Writes made durable by group-commit flushes since start",
            self.flush_tickets.clone(),
        );
        r.register(
            "inlet_flush_batch_size",
            "Average writes covered by one flush since start",
            self.flush_batch_avg.clone(),
        );
        r.register(
            "inlet_flush_batch_size_max",
            "Most writes one flush covered since start",
            self.flush_batch_max.clone(),
        );
    }

    /// One hook request answered with `status` after `elapsed`.
    pub fn ingest_observed(&self, status: u16, elapsed: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: "hooks",
                status,
            })
            .inc();
        self.ingest_seconds.observe(elapsed.as_secs_f64());
    }

    /// One processor batch of `events` took `elapsed`.
    pub fn batch_processed(&self, events: usize, elapsed: Duration) {
        self.process_seconds.observe(elapsed.as_secs_f64());
        self.process_batch_events.observe(events as f64);
    }

    /// The text exposition, with the copied-in values brought up to date.
    pub fn render(&self, counters: &Counters, flush: &FlushStats) -> String {
        self.sync(counters, flush);
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }

    fn sync(&self, counters: &Counters, flush: &FlushStats) {
        let total = counters.total();
        set_counter(&self.events_ingested, total.received);
        for (status, value) in [
            ("resolved", total.resolved),
            ("failed", total.failed),
            ("unmapped", total.unmapped),
            ("duplicate", total.duplicate),
        ] {
            set_counter(
                &self
                    .events_processed
                    .get_or_create(&StatusLabels { status }),
                value,
            );
        }
        self.lag.set(clamp_i64(total.pending));
        let flushes = flush.flushes.load(Ordering::Relaxed);
        let tickets = flush.tickets.load(Ordering::Relaxed);
        set_counter(&self.flushes, flushes);
        set_counter(&self.flush_tickets, tickets);
        let avg = if flushes == 0 {
            0.0
        } else {
            tickets as f64 / flushes as f64
        };
        self.flush_batch_avg.set(avg);
        self.flush_batch_max
            .set(clamp_i64(flush.max_batch.load(Ordering::Relaxed)));
    }
}

/// Counters copied from a monotonic source of truth are stored, not added.
fn set_counter(counter: &Counter, value: u64) {
    counter.inner().store(value, Ordering::Relaxed);
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_requests_and_flush_stats_appear_in_the_text() {
        let metrics = Metrics::new();
        metrics.ingest_observed(202, Duration::from_millis(3));
        metrics.ingest_observed(202, Duration::from_millis(1));
        metrics.batch_processed(10, Duration::from_millis(2));
        let flush = FlushStats::default();
        flush.flushes.store(2, Ordering::Relaxed);
        flush.tickets.store(7, Ordering::Relaxed);
        let text = metrics.render(&Counters::default(), &flush);
        assert!(text.contains(r#"inlet_http_requests_total{route="hooks",status="202"} 2"#));
        assert!(text.contains("inlet_ingest_seconds_count 2"));
        assert!(text.contains("inlet_flush_total 2"));
        assert!(text.contains("inlet_flush_batch_size 3.5"));
        assert!(text.contains("inlet_processor_lag_events 0"));
        assert!(text.contains("inlet_process_batch_events_sum 10"));
    }
}
