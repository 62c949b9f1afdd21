//! `herald-gateway`: holds SSE connections, delivers live events from the bus
//! and replays missed ones from Postgres. Stateless: any instance serves any
//! client; no sticky sessions.
//!
//! [`Gateway::build`] binds (port 0 in tests) and starts the hub;
//! [`Gateway::run_until_stopped`] serves until shutdown, then ends every open
//! stream so clients reconnect elsewhere and resume.

mod connection;
pub mod frame;
pub mod history;
pub mod hub;
pub mod limits;
pub mod metrics;
mod socket;
pub mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use herald_bus::{Bus, BusError};
use herald_platform::auth::Verifier;
use herald_platform::config::ConfigError;
use herald_platform::{http, Problem, Settings};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::metrics::GatewayMetrics;

#[derive(Clone)]
pub struct GatewayState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub settings: Arc<Settings>,
    pub hub: Hub,
    pub metrics: Arc<GatewayMetrics>,
    pub limits: limits::StreamLimits,
    /// Coalesced head reads for opening streams.
    pub heads: history::HeadReader,
    /// Coalesced replay pages.
    pub replays: history::ReplayReader,
    /// Cancelled when shutdown begins: `/readyz` turns unready, new streams are refused.
    pub draining: CancellationToken,
    /// Cancelled when open streams must end.
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the bus: {0}")]
    Bus(#[from] BusError),
}

pub struct Gateway {
    listener: TcpListener,
    state: GatewayState,
    hub_stop: CancellationToken,
}

impl Gateway {
    /// A gateway on Redis (`HERALD_REDIS_URL`), or on a Redis Cluster with
    /// `HERALD_REDIS_CLUSTER`.
    pub async fn build(settings: Settings, pool: PgPool) -> Result<Self, BuildError> {
        let bus = Bus::from_settings(&settings.bus);
        Self::build_on(settings, pool, bus).await
    }

    /// A gateway on the given bus (the single-node binary uses an in-process one).
    pub async fn build_on(settings: Settings, pool: PgPool, bus: Bus) -> Result<Self, BuildError> {
        let verifier = Arc::new(Verifier::from_settings(&settings.jwt)?);
        verifier.warm_up().await;
        let addr = settings.gateway.addr;
        let listener = http::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        let metrics = Arc::new(GatewayMetrics::default());
        let hub_stop = CancellationToken::new();
        let hub = Hub::start(
            &bus,
            settings.gateway.replay_window_bytes,
            settings.gateway.replay_linger,
            pool.clone(),
            metrics.clone(),
            hub_stop.clone(),
        )?;
        let limits = limits::StreamLimits::new(
            settings.gateway.max_streams,
            settings.gateway.max_streams_per_user,
        );
        let state = GatewayState {
            heads: history::HeadReader::start(pool.clone()),
            replays: history::ReplayReader::start(pool.clone(), connection::REPLAY_PAGE),
            pool,
            limits,
            verifier,
            settings: Arc::new(settings),
            hub,
            metrics,
            draining: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        };
        Ok(Self {
            listener,
            state,
            hub_stop,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The stream endpoint alone, for mounting on another server (the
    /// single-node binary serves it on the API address too), with the same
    /// CORS answers as the gateway's own.
    pub fn stream_router(&self) -> Router {
        edge(
            Router::new().route("/v1/stream", get(stream::stream)),
            &self.state,
        )
        .with_state(self.state.clone())
    }

    /// Cancelled when draining begins (`/readyz` answers 503, new streams are
    /// refused). The single-node binary turns the API's `/readyz` unready
    /// with it.
    pub fn draining(&self) -> CancellationToken {
        self.state.draining.clone()
    }

    /// Cancelled when the grace is over and open streams end. The single-node
    /// binary stops its API and worker with it.
    pub fn streams_ending(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until `shutdown`, then drains (see ARCHITECTURE.md, "Shutdown"):
    ///
    /// 1. `/readyz` answers 503 `draining` and new streams are refused with 503
    ///    problem+json and `Retry-After` (a load balancer retries them on
    ///    another gateway), while the listener stays open so both answers can
    ///    be given;
    /// 2. after `HERALD_SHUTDOWN_GRACE`, every open stream gets a short
    ///    `retry:` hint and `event: herald.reconnect` and ends cleanly, and the
    ///    listener is closed (connection attempts are refused from then on);
    /// 3. it returns once connections are closed (at most
    ///    [`http::CLOSE_BOUND`] later).
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let state = self.state.clone();
        let router = Router::new()
            .route("/v1/stream", get(stream::stream))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .fallback(|| async { Problem::not_found("no such endpoint") });
        let router = edge(router, &state).with_state(state.clone());
        let stop_serving = CancellationToken::new();
        let serve = tokio::spawn(http::serve_streams(
            self.listener,
            router,
            state.settings.http,
            stop_serving.clone(),
            "/v1/stream",
        ));
        shutdown.cancelled().await;
        let started = std::time::Instant::now();
        state.draining.cancel();
        tracing::info!(
            grace = ?state.settings.gateway.shutdown_grace,
            open_streams = state.metrics.open_streams.get(),
            "draining: /readyz unready, new streams refused"
        );
        tokio::time::sleep(state.settings.gateway.shutdown_grace).await;
        tracing::info!(
            open_streams = state.metrics.open_streams.get(),
            "grace over: ending streams with herald.reconnect, closing the listener"
        );
        state.shutdown.cancel();
        stop_serving.cancel();
        let served = serve.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        self.hub_stop.cancel();
        tracing::info!(
            elapsed = ?started.elapsed(),
            "stopped: every connection closed"
        );
        served
    }
}

/// The layers every gateway answer passes, on the gateway's own listener and
/// wherever [`Gateway::stream_router`] is mounted: unstorable URLs refused,
/// every error as problem+json, the request head bounded, and outermost CORS
/// (so that refusals carry it too, for allowed origins only).
fn edge(router: Router<GatewayState>, state: &GatewayState) -> Router<GatewayState> {
    router
        .layer(axum::middleware::from_fn(http::refuse_unstorable_url))
        .layer(axum::middleware::map_response(http::problem_for_every_error))
        .layer(axum::middleware::from_fn(http::limit_request_head))
        .layer(http::cors(&state.settings.cors_origins))
}

/// 200 `ready`, or 503 problem+json whose `detail` is the reason (`draining`,
/// `redis unreachable`, `postgres unreachable`).
async fn readyz(State(s): State<GatewayState>) -> Result<(StatusCode, &'static str), Problem> {
    let unready = |reason: &str| Err(Problem::unavailable(reason, 1));
    if s.draining.is_cancelled() {
        return unready("draining");
    }
    if !s.hub.is_connected() {
        return unready("redis unreachable");
    }
    if !herald_platform::db::ping(&s.pool).await {
        return unready("postgres unreachable");
    }
    Ok((StatusCode::OK, "ready"))
}

async fn metrics_text(State(s): State<GatewayState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(s.pool.size(), s.pool.num_idle()),
    )
}
