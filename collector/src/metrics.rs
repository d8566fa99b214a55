//! The collector's own metrics, rendered as Prometheus text on `/metrics`.
//!
//! Invariants: lock-free counters and gauges (atomics), so recording never
//! blocks the ingest path; every drop or refusal the collector makes is
//! counted in one of these; names are spelled once, in [`Metrics::render`].

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the insert-latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    pub spans_received: AtomicU64,
    pub spans_accepted: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub spans_truncated: AtomicU64,
    pub spans_redacted: AtomicU64,
    pub values_truncated: AtomicU64,
    pub log_records_received: AtomicU64,
    pub content_joined: AtomicU64,
    pub content_evicted: AtomicU64,
    pub requests_refused: AtomicU64,
    pub requests_invalid: AtomicU64,
    pub batches_inserted: AtomicU64,
    pub rows_inserted: AtomicU64,
    pub insert_failures: AtomicU64,
    pub batches_spooled: AtomicU64,
    pub batches_dead_lettered: AtomicU64,
    pub batches_replayed: AtomicU64,
    pub spans_replayed: AtomicU64,
    pub insert_latency: Histogram,
    pub queue_bytes: AtomicI64,
    pub queue_spans: AtomicI64,
    pub spool_bytes: AtomicU64,
    pub spool_segments: AtomicU64,
    pub join_waiting_spans: AtomicU64,
    pub join_parked_bytes: AtomicU64,
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

impl Metrics {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let g = |a: &AtomicU64| a.load(Relaxed);
        counter(
            &mut o,
            "loupe_collector_spans_received_total",
            "Spans received in OTLP exports.",
            g(&self.spans_received),
        );
        counter(
            &mut o,
            "loupe_collector_spans_accepted_total",
            "Spans acknowledged (inserted or spooled).",
            g(&self.spans_accepted),
        );
        counter(
            &mut o,
            "loupe_collector_spans_rejected_total",
            "Spans refused: invalid ids (partial success) or in refused exports.",
            g(&self.spans_rejected),
        );
        counter(
            &mut o,
            "loupe_collector_spans_truncated_total",
            "Spans with at least one value cut to the attribute limit.",
            g(&self.spans_truncated),
        );
        counter(
            &mut o,
            "loupe_collector_spans_redacted_total",
            "Spans in which redaction replaced a secret or personal value.",
            g(&self.spans_redacted),
        );
        counter(
            &mut o,
            "loupe_collector_values_truncated_total",
            "Attribute and body values cut to the attribute limit.",
            g(&self.values_truncated),
        );
        counter(
            &mut o,
            "loupe_collector_log_records_received_total",
            "Log records received in OTLP exports.",
            g(&self.log_records_received),
        );
        counter(
            &mut o,
            "loupe_collector_content_joined_total",
            "Log content patches applied to their span.",
            g(&self.content_joined),
        );
        counter(
            &mut o,
            "loupe_collector_content_evicted_total",
            "Log content patches dropped before their span arrived (cap or age).",
            g(&self.content_evicted),
        );
        counter(
            &mut o,
            "loupe_collector_requests_refused_total",
            "Exports answered with a retryable refusal (busy, queue or spool full).",
            g(&self.requests_refused),
        );
        counter(
            &mut o,
            "loupe_collector_requests_invalid_total",
            "Exports refused as invalid (400, 413, 415, INVALID_ARGUMENT).",
            g(&self.requests_invalid),
        );
        counter(
            &mut o,
            "loupe_collector_batches_inserted_total",
            "Batches inserted into ClickHouse directly.",
            g(&self.batches_inserted),
        );
        counter(
            &mut o,
            "loupe_collector_rows_inserted_total",
            "Span rows inserted into ClickHouse (directly or by replay).",
            g(&self.rows_inserted),
        );
        counter(
            &mut o,
            "loupe_collector_insert_failures_total",
            "Inserts that failed or timed out.",
            g(&self.insert_failures),
        );
        counter(
            &mut o,
            "loupe_collector_batches_spooled_total",
            "Batches written to the durable spool.",
            g(&self.batches_spooled),
        );
        counter(
            &mut o,
            "loupe_collector_batches_dead_lettered_total",
            "Batches ClickHouse refused as invalid, kept in the spool's dead-letter directory.",
            g(&self.batches_dead_lettered),
        );
        counter(
            &mut o,
            "loupe_collector_batches_replayed_total",
            "Spooled batches inserted by replay.",
            g(&self.batches_replayed),
        );
        counter(
            &mut o,
            "loupe_collector_spans_replayed_total",
            "Spooled spans inserted by replay.",
            g(&self.spans_replayed),
        );
        let h = &self.insert_latency;
        let name = "loupe_collector_insert_duration_seconds";
        let _ = writeln!(
            o,
            "# HELP {name} Time to insert one batch.\n# TYPE {name} histogram"
        );
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}_bucket{{le=\"{le}\"}} {}",
                h.buckets[i].load(Relaxed)
            );
        }
        let count = h.count.load(Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "{name}_sum {}", h.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(o, "{name}_count {count}");
        gauge(
            &mut o,
            "loupe_collector_queue_bytes",
            "Bytes of rows accepted and not yet inserted or spooled.",
            self.queue_bytes.load(Relaxed),
        );
        gauge(
            &mut o,
            "loupe_collector_queue_spans",
            "Spans accepted and not yet inserted or spooled.",
            self.queue_spans.load(Relaxed),
        );
        let gi = |a: &AtomicU64| i64::try_from(a.load(Relaxed)).unwrap_or(i64::MAX);
        gauge(
            &mut o,
            "loupe_collector_spool_bytes",
            "Bytes in the spool waiting for replay.",
            gi(&self.spool_bytes),
        );
        gauge(
            &mut o,
            "loupe_collector_spool_segments",
            "Spool segment files.",
            gi(&self.spool_segments),
        );
        gauge(
            &mut o,
            "loupe_collector_join_waiting_spans",
            "Spans waiting for content from log records.",
            gi(&self.join_waiting_spans),
        );
        gauge(
            &mut o,
            "loupe_collector_join_parked_bytes",
            "Bytes of log content held for spans not seen yet.",
            gi(&self.join_parked_bytes),
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_a_cumulative_histogram() {
        let m = Metrics::default();
        Metrics::add(&m.spans_received, 3);
        m.insert_latency.observe(Duration::from_millis(30));
        m.insert_latency.observe(Duration::from_secs(100));
        let text = m.render();
        assert!(text.contains("loupe_collector_spans_received_total 3\n"));
        assert!(text.contains("loupe_collector_insert_duration_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("loupe_collector_insert_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("# TYPE loupe_collector_spool_bytes gauge"));
    }
}
