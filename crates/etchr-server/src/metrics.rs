//! Prometheus metrics, one recorder per [`crate::AppState`].
//!
//! The recorder is *not* installed globally: each app instance owns one and records through
//! [`metrics::with_local_recorder`]. That keeps tests that build many routers in one process
//! independent, and lets `/metrics` report exactly this instance.

use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Seconds; from the sidecar's sub-millisecond proxy overhead to a slow render of a large image.
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
];

pub const REQUESTS_TOTAL: &str = "etchr_http_requests_total";
pub const REQUEST_SECONDS: &str = "etchr_http_request_duration_seconds";
pub const RENDER_SECONDS: &str = "etchr_render_duration_seconds";
pub const RENDERS_REJECTED: &str = "etchr_renders_rejected_total";
pub const OVERHEAD_SECONDS: &str = "etchr_overhead_seconds";
pub const UPSTREAM_SECONDS: &str = "etchr_upstream_seconds";
pub const AUTH_REFUSED: &str = "etchr_auth_refused_total";
pub const LOOPS_REJECTED: &str = "etchr_loops_rejected_total";
pub const LOOPS_TOTAL: &str = "etchr_loops_total";

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let m = Self { recorder, handle };
        m.with(|| {
            describe_counter!(REQUESTS_TOTAL, "HTTP requests by route, method and status");
            describe_histogram!(
                REQUEST_SECONDS,
                Unit::Seconds,
                "HTTP request latency by route, method and status"
            );
            describe_histogram!(
                RENDER_SECONDS,
                Unit::Seconds,
                "Time spent decoding, rendering and encoding one edit"
            );
            describe_histogram!(
                OVERHEAD_SECONDS,
                Unit::Seconds,
                "The sidecar's own time per proxied or reasoned request: total minus upstream time"
            );
            describe_histogram!(
                UPSTREAM_SECONDS,
                Unit::Seconds,
                "Time spent waiting for the upstream per proxied or reasoned request"
            );
            describe_counter!(
                RENDERS_REJECTED,
                "Edits refused with 503 because the render queue was full"
            );
            describe_counter!(
                AUTH_REFUSED,
                "Requests refused by client authentication, by reason (unauthorized, rate_limited)"
            );
            describe_counter!(
                LOOPS_TOTAL,
                "Finished reasoning loops by strategy and outcome (the stop reason: answered, \
                 max_steps, deadline, planner_exhausted, tool_calls, ...; or error)"
            );
            describe_counter!(
                LOOPS_REJECTED,
                "Reasoning loops refused with 503 because reason.max_concurrent_loops were running"
            );
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// One finished HTTP request. `route` is the matched route pattern (never the raw path, so
    /// label cardinality stays bounded), or `unmatched`.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.with(|| {
            let labels = [
                ("route", route.to_string()),
                ("method", method.to_string()),
                ("status", status.to_string()),
            ];
            counter!(REQUESTS_TOTAL, &labels).increment(1);
            histogram!(REQUEST_SECONDS, &labels).record(seconds);
        });
    }

    pub fn record_render(&self, seconds: f64) {
        self.with(|| histogram!(RENDER_SECONDS).record(seconds));
    }

    /// One proxied or reasoned request: the sidecar's own time and the upstream's, by route.
    pub fn record_overhead(
        &self,
        route: &'static str,
        overhead_seconds: f64,
        upstream_seconds: f64,
    ) {
        self.with(|| {
            histogram!(OVERHEAD_SECONDS, "route" => route).record(overhead_seconds.max(0.0));
            histogram!(UPSTREAM_SECONDS, "route" => route).record(upstream_seconds.max(0.0));
        });
    }

    pub fn record_rejected_render(&self) {
        self.with(|| counter!(RENDERS_REJECTED).increment(1));
    }

    pub fn record_auth_refusal(&self, reason: &'static str) {
        self.with(|| counter!(AUTH_REFUSED, "reason" => reason).increment(1));
    }

    /// One finished loop. The stop reasons are a small fixed set, so cardinality stays bounded.
    pub fn record_loop(&self, strategy: &'static str, outcome: &str) {
        let labels = [
            ("strategy", strategy.to_string()),
            ("outcome", outcome.to_string()),
        ];
        self.with(|| counter!(LOOPS_TOTAL, &labels).increment(1));
    }

    pub fn record_rejected_loop(&self) {
        self.with(|| counter!(LOOPS_REJECTED).increment(1));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
