//! `herald-worker`: moves the outbox into the bus, in order.
//!
//! The service is a library with a thin `main`: [`Worker::build`] binds the
//! health listener (port 0 in tests) and [`Worker::run_until_stopped`] runs
//! the relay, retention and the health endpoints until shutdown.

pub mod due;
pub mod event_log;
pub mod metrics;
pub mod push;
pub mod relay;
pub mod retention;
pub mod sequencer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use herald_bus::Bus;
use herald_platform::{http, Settings};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::WorkerMetrics;
use crate::relay::{OutboxRelay, RelayConfig, RelayError};

pub struct Worker {
    listener: TcpListener,
    limits: herald_platform::http::HttpLimits,
    pool: PgPool,
    relay: OutboxRelay,
    retention: Duration,
    event_log: event_log::Policy,
    /// Delivers the push queue, when Web Push is configured.
    push: Option<push::PushSender>,
    /// What `/readyz` pings.
    bus: Bus,
    metrics: Arc<WorkerMetrics>,
}

#[derive(Clone)]
struct HealthState {
    pool: PgPool,
    bus: Bus,
    metrics: Arc<WorkerMetrics>,
}

impl Worker {
    /// A worker publishing to Redis (`HERALD_REDIS_URL`), or to a Redis
    /// Cluster with `HERALD_REDIS_CLUSTER`.
    pub async fn build(settings: &Settings, pool: PgPool) -> Result<Self, BuildError> {
        Self::build_on(settings, pool, Bus::from_settings(&settings.bus)).await
    }

    /// A worker publishing to `bus` (the single-node binary's is in-process).
    pub async fn build_on(settings: &Settings, pool: PgPool, bus: Bus) -> Result<Self, BuildError> {
        let listener = http::bind(settings.worker.addr).await?;
        let metrics = Arc::new(WorkerMetrics::default());
        let config = RelayConfig {
            bus: bus.clone(),
            poll: settings.worker.poll,
            batch: settings.worker.batch,
        };
        let relay = OutboxRelay::new(pool.clone(), config, metrics.clone())?;
        let web_push = herald_push::WebPush::from_settings(
            settings.push.vapid_private_key.as_ref().map(|k| k.expose()),
            settings.push.vapid_subject.as_deref(),
            &settings.push.allowed_hosts,
            settings.push.allow_insecure,
        )
        .map_err(|e| BuildError::Push(e.to_string()))?;
        let push = match web_push {
            None => None,
            Some(w) => Some(
                push::PushSender::new(pool.clone(), w, &settings.push, metrics.clone())
                    .map_err(|e| BuildError::Push(e.to_string()))?,
            ),
        };
        Ok(Self {
            listener,
            limits: settings.http,
            push,
            pool,
            relay,
            retention: settings.worker.retention,
            event_log: event_log::Policy {
                partition_size: settings.worker.partition_size,
                span: settings.worker.partition_span(),
            },
            bus,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let state = HealthState {
            pool: self.pool.clone(),
            bus: self.bus,
            metrics: self.metrics.clone(),
        };
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .with_state(state);
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let due = tokio::spawn(due::run(
            self.pool.clone(),
            herald_store::outbox::Outbox::start(self.pool.clone()),
            self.push.is_some(),
            shutdown.clone(),
        ));
        let pusher = self.push.map(|p| tokio::spawn(p.run(shutdown.clone())));
        let pruner = tokio::spawn(prune_forever(
            self.pool,
            self.retention,
            self.event_log,
            self.metrics,
            shutdown.clone(),
        ));
        let served = http::serve(self.listener, router, self.limits, shutdown.clone()).await;
        shutdown.cancel();
        let _ = relay.await;
        let _ = due.await;
        if let Some(p) = pusher {
            let _ = p.await;
        }
        let _ = pruner.await;
        served
    }
}

async fn readyz(State(s): State<HealthState>) -> (StatusCode, &'static str) {
    let db = herald_platform::db::ping(&s.pool).await;
    // The in-process bus is always up; a cluster is when a seed answers.
    let bus = s.bus.ping().await;
    match (db, bus) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable"),
    }
}

async fn metrics_text(State(s): State<HealthState>) -> String {
    let lag = sequencer::outbox_lag_seconds(&s.pool).await.unwrap_or(-1.0);
    s.metrics.render(lag, s.pool.size(), s.pool.num_idle())
}

async fn prune_forever(
    pool: PgPool,
    retention: Duration,
    policy: event_log::Policy,
    metrics: Arc<WorkerMetrics>,
    shutdown: CancellationToken,
) {
    // Short retentions (tests, demos) are checked often; long ones every 30 s.
    let every = (retention / 4)
        .min(policy.span / 2)
        .clamp(Duration::from_millis(250), Duration::from_secs(30));
    let mut first = true;
    loop {
        // Upkeep at once (partitions ahead before the first publish); the
        // first prune one interval after start-up, not in the middle of it.
        if let Err(e) = event_log::upkeep(&pool, policy).await {
            tracing::warn!(error = %e, "event log upkeep failed");
        }
        if !first {
            let started = std::time::Instant::now();
            match retention::prune_pass(&pool, retention, RETENTION_BATCH, &shutdown).await {
                Ok(p) => {
                    if p.events > 0 {
                        tracing::info!(
                            events = p.events,
                            took_ms = started.elapsed().as_millis() as u64,
                            "retention dropped expired history"
                        );
                    }
                    metrics.pruned.add(p.events);
                    metrics.pruned_idempotency_keys.add(p.idempotency_keys);
                }
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
        first = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Rows deleted per retention transaction.
const RETENTION_BATCH: i64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("binding the health listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("web push: {0}")]
    Push(String),
}
