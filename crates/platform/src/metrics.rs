//! A minimal Prometheus text exposition: atomic counters and gauges, rendered
//! on `GET /metrics`. No registry, no allocation on the hot path: each service
//! owns a struct of these and renders it.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Writes metrics in the Prometheus text format.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.header(name, help, "counter");
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    /// A counter with one label dimension.
    pub fn counter_vec(&mut self, name: &str, help: &str, label: &str, values: &[(&str, u64)]) -> &mut Self {
        self.header(name, help, "counter");
        for (l, v) in values {
            let _ = writeln!(self.0, "{name}{{{label}=\"{l}\"}} {v}");
        }
        self
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: i64) -> &mut Self {
        self.header(name, help, "gauge");
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    /// The Postgres pool's gauges, which every service exports.
    pub fn db_pool(&mut self, size: u32, idle: usize) -> &mut Self {
        self.gauge(
            "herald_db_pool_connections",
            "Open Postgres connections in the pool.",
            i64::from(size),
        )
        .gauge(
            "herald_db_pool_idle_connections",
            "Idle Postgres connections in the pool.",
            idle as i64,
        )
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// One latency histogram (seconds), with the buckets of the HTTP metrics.
#[derive(Debug, Default)]
pub struct LatencyHistogram(std::sync::Mutex<Histogram>);

impl LatencyHistogram {
    pub fn observe(&self, seconds: f64) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        h.record(seconds);
    }

    /// Appends the histogram as `name` in the Prometheus text format.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum);
        let _ = writeln!(out, "{name}_count {}", h.count);
    }
}

impl Histogram {
    fn record(&mut self, seconds: f64) {
        self.count += 1;
        self.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
    }
}

/// Request counts and latency histograms by route, method and status:
/// `herald_http_requests_total` and `herald_http_request_duration_seconds`.
///
/// Every label comes from a closed set, whatever a client sends: the route
/// is a template of the router (or `unmatched`), the method one of the
/// standard ones (or `other`, see [`method_label`]), the status one we
/// answered. A label drawn from raw request text would let any stranger
/// grow `/metrics` without bound.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: std::sync::Mutex<std::collections::BTreeMap<(String, &'static str, u16), Histogram>>,
}

/// The metrics label of a request method: the standard methods by name,
/// anything else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Bucket bounds in seconds: sub-millisecond to a few seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl HttpMetrics {
    /// Records one request. `route` must be a route template of the router
    /// (axum's `MatchedPath`) or `unmatched`, never the raw path.
    pub fn observe(&self, route: &str, method: &axum::http::Method, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let key = (route.to_owned(), method_label(method), status);
        series.entry(key).or_default().record(seconds);
    }

    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP herald_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE herald_http_requests_total counter\n");
        for ((route, method, status), h) in series.iter() {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                h.count
            );
        }
        out.push_str(
            "# HELP herald_http_request_duration_seconds HTTP request latency by route, method and status.\n",
        );
        out.push_str("# TYPE herald_http_request_duration_seconds histogram\n");
        for ((route, method, status), h) in series.iter() {
            let labels = format!("route=\"{route}\",method=\"{method}\",status=\"{status}\"");
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "herald_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "herald_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
    }
}
