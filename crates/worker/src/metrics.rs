//! The worker's Prometheus metrics.

use herald_platform::metrics::{Counter, Exposition, Gauge, LatencyHistogram};

#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub sequenced: Counter,
    pub published: Counter,
    pub last_batch_size: Gauge,
    pub relay_errors: Counter,
    /// Leaderships that found the log's head below what this worker had
    /// sequenced: history went backwards (see `relay`).
    pub history_rewinds: Counter,
    pub redis_connects: Counter,
    pub leader: Gauge,
    pub pruned: Counter,
    pub pruned_idempotency_keys: Counter,
    pub pushes_sent: Counter,
    pub pushes_skipped: Counter,
    pub pushes_retried: Counter,
    pub pushes_gone: Counter,
    pub pushes_dropped: Counter,
    pub push_send_seconds: LatencyHistogram,
}

impl WorkerMetrics {
    pub fn render(&self, outbox_lag_seconds: f64, pool_size: u32, pool_idle: usize) -> String {
        let mut x = Exposition::new();
        x.counter(
            "herald_sequenced_events_total",
            "Events given a seq by this worker.",
            self.sequenced.get(),
        )
        .counter(
            "herald_published_events_total",
            "Events published to the bus by this worker.",
            self.published.get(),
        )
        .gauge(
            "herald_sequencer_batch_size",
            "Size of the last sequenced batch.",
            self.last_batch_size.get(),
        )
        .counter(
            "herald_relay_errors_total",
            "Relay interruptions (Postgres or Redis errors).",
            self.relay_errors.get(),
        )
        .counter(
            "herald_history_rewinds_total",
            "Times this worker found the log's head below what it had sequenced (a failover to a standby that lacked the last commits).",
            self.history_rewinds.get(),
        )
        .counter(
            "herald_redis_connects_total",
            "Redis (re)connections made by the relay.",
            self.redis_connects.get(),
        )
        .gauge(
            "herald_sequencer_leader",
            "1 when this worker is the sequencer leader.",
            self.leader.get(),
        )
        .counter(
            "herald_pruned_events_total",
            "Events deleted by retention.",
            self.pruned.get(),
        )
        .counter(
            "herald_pruned_idempotency_keys_total",
            "Idempotency keys deleted by retention.",
            self.pruned_idempotency_keys.get(),
        )
        .db_pool(pool_size, pool_idle);
        x.counter_vec(
            "herald_push_deliveries_total",
            "Push deliveries by outcome: sent (2xx), skipped (read, seen or muted meanwhile), retried (429, 5xx, no answer), gone (404/410: the subscription is deleted), dropped (can never succeed).",
            "outcome",
            &[
                ("sent", self.pushes_sent.get()),
                ("skipped", self.pushes_skipped.get()),
                ("retried", self.pushes_retried.get()),
                ("gone", self.pushes_gone.get()),
                ("dropped", self.pushes_dropped.get()),
            ],
        );
        let mut s = x.finish();
        self.push_send_seconds.render(
            &mut s,
            "herald_push_send_seconds",
            "Time from a push's POST to the push service's answer.",
        );
        s.push_str(&format!(
            "# HELP herald_outbox_lag_seconds Age of the oldest unsequenced event.\n# TYPE herald_outbox_lag_seconds gauge\nherald_outbox_lag_seconds {outbox_lag_seconds}\n"
        ));
        s
    }
}
