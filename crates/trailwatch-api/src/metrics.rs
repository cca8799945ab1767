//! Process metrics in the Prometheus text format (`GET /metrics`).
//!
//! A handful of atomics rather than a metrics framework: the set is small and fixed, and the hot
//! path (ingest) pays one relaxed atomic add per update.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub traces_ingested: AtomicU64,
    pub traces_duplicate: AtomicU64,
    pub traces_rejected: AtomicU64,
    pub auth_failures: AtomicU64,
    pub append_latency: Histogram,
}

pub(crate) fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

pub(crate) fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

impl Metrics {
    /// Renders every metric; `store_bytes` and `head_seq` are read by the caller at scrape time.
    pub fn render(&self, store_bytes: u64, head_seq: u64) -> String {
        let mut out = String::with_capacity(2048);
        counter(
            &mut out,
            "trailwatch_traces_ingested_total",
            "Traces accepted and durably stored.",
            self.traces_ingested.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "trailwatch_traces_duplicate_total",
            "Traces whose trace_id was already stored (acknowledged, not stored again).",
            self.traces_duplicate.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "trailwatch_traces_rejected_total",
            "Trace records rejected as invalid.",
            self.traces_rejected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "trailwatch_auth_failures_total",
            "Requests rejected for failed authentication.",
            self.auth_failures.load(Ordering::Relaxed),
        );
        self.append_latency.render(
            &mut out,
            "trailwatch_trace_append_seconds",
            "Time from handing a batch to the trace log until it is durable.",
        );
        gauge(
            &mut out,
            "trailwatch_store_size_bytes",
            "Size of the embedded database (pages in use).",
            store_bytes,
        );
        gauge(
            &mut out,
            "trailwatch_trace_log_head_seq",
            "Sequence number of the newest durable trace.",
            head_seq,
        );
        out
    }
}
