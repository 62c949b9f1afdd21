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

    pub fn finish(self) -> String {
        self.0
    }
}
