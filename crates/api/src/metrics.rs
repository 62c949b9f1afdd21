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
        .db_pool(pool_size, pool_idle);
        let mut out = x.finish();
        self.http.render(&mut out);
        out
    }
}
