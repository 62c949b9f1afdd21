//! The API's Prometheus metrics.

use herald_platform::metrics::{Counter, Exposition, HttpMetrics};

#[derive(Debug, Default)]
pub struct ApiMetrics {
    pub published: Counter,
    pub http: HttpMetrics,
}

impl ApiMetrics {
    pub fn render(&self, pool_size: u32, pool_idle: usize) -> String {
        let mut x = Exposition::new();
        x.counter(
            "herald_api_events_accepted_total",
            "Events accepted by POST /v1/events.",
            self.published.get(),
        )
        .gauge(
            "herald_db_pool_connections",
            "Open Postgres connections in the pool.",
            i64::from(pool_size),
        )
        .gauge(
            "herald_db_pool_idle_connections",
            "Idle Postgres connections in the pool.",
            pool_idle as i64,
        );
        let mut out = x.finish();
        self.http.render(&mut out);
        out
    }
}
