//! The gateway's Prometheus metrics.

use herald_platform::metrics::{Counter, Exposition, Gauge};

#[derive(Debug, Default)]
pub struct GatewayMetrics {
    pub open_streams: Gauge,
    pub opened: Counter,
    pub closed_client: Counter,
    pub closed_slow: Counter,
    pub closed_shutdown: Counter,
    pub closed_reauth: Counter,
    pub closed_error: Counter,
    pub refused: Counter,
    pub delivered: Counter,
    pub replays: Counter,
    pub replays_from_memory: Counter,
    pub replayed_events: Counter,
    pub resets: Counter,
    pub redis_reconnects: Counter,
    pub bus_lagged: Counter,
    pub caught_up_events: Counter,
    pub lingering_topics: Gauge,
}

impl GatewayMetrics {
    pub fn render(&self, pool_size: u32, pool_idle: usize) -> String {
        let mut x = Exposition::new();
        x.gauge(
            "herald_open_streams",
            "Open SSE streams.",
            self.open_streams.get(),
        )
        .counter("herald_stream_opens_total", "Streams opened.", self.opened.get())
        .counter_vec(
            "herald_stream_closes_total",
            "Streams closed, by reason.",
            "reason",
            &[
                ("client", self.closed_client.get()),
                ("slow_consumer", self.closed_slow.get()),
                ("shutdown", self.closed_shutdown.get()),
                ("reauth", self.closed_reauth.get()),
                ("error", self.closed_error.get()),
            ],
        )
        .counter(
            "herald_stream_refusals_total",
            "Stream requests refused (4xx/5xx) before opening.",
            self.refused.get(),
        )
        .counter(
            "herald_deliveries_total",
            "Event frames written to streams.",
            self.delivered.get(),
        )
        .counter(
            "herald_replays_total",
            "Streams that resumed from a position, replayed from Postgres.",
            self.replays.get(),
        )
        .counter(
            "herald_replays_from_memory_total",
            "Streams that resumed from a position, replayed from the gateway's window.",
            self.replays_from_memory.get(),
        )
        .counter(
            "herald_replayed_events_total",
            "Events replayed (from Postgres or the window).",
            self.replayed_events.get(),
        )
        .counter(
            "herald_resets_total",
            "herald.reset events sent.",
            self.resets.get(),
        )
        .counter(
            "herald_redis_reconnects_total",
            "Bus reconnections.",
            self.redis_reconnects.get(),
        )
        .gauge(
            "herald_lingering_topics",
            "Topics no stream carries, kept subscribed with their window for a resume.",
            self.lingering_topics.get(),
        )
        .counter(
            "herald_caught_up_events_total",
            "Events read from Postgres after a bus reconnect.",
            self.caught_up_events.get(),
        )
        .db_pool(pool_size, pool_idle);
        x.finish()
    }
}
