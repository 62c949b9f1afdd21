//! `herald-api`: the REST API.
//!
//! Publishing writes state and an outbox row in one transaction
//! ([`outbox::append`]); reading serves history; stream tokens let browsers
//! open streams. The service is a library with a thin `main`:
//! [`Application::build`] binds (port 0 in tests) and migrates,
//! [`Application::run_until_stopped`] serves until shutdown.

pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod rate;
pub mod routes;

pub use herald_store::{inbox, outbox};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::get;
use axum::Router;
use herald_platform::auth::Verifier;
use herald_platform::config::ConfigError;
use herald_platform::{db, http, Problem, Settings};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::ApiMetrics;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<ApiMetrics>,
    pub openapi_json: axum::body::Bytes,
    pub publish_rate: Arc<rate::PublishRate>,
    /// Begins the transactions that append events (and wakes the worker).
    pub outbox: outbox::Outbox,
    /// Web Push, when a VAPID key is configured.
    pub push: Option<Arc<herald_push::WebPush>>,
}

impl AppState {
    /// Checks an event's `data` against `HERALD_MAX_EVENT_DATA_BYTES`; the
    /// error is the message for the field. Counts the serialized size without
    /// building it.
    pub fn check_event_data(&self, data: &serde_json::Value) -> Result<(), String> {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut len = Count(0);
        // Serializing a `Value` cannot fail, and counting cannot either.
        let _ = serde_json::to_writer(&mut len, data);
        let max = self.settings.api.max_event_data_bytes;
        if len.0 > max {
            return Err(format!("must be at most {max} bytes of JSON (got {})", len.0));
        }
        Ok(())
    }
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(s: &AppState) -> Self {
        s.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Real-time notifications over Server-Sent Events. Publish over REST; subscribe with `GET /v1/stream` (served by herald-gateway).",
        license(name = "Apache-2.0")
    ),
    paths(routes::stream::stream),
    components(schemas(
        Problem,
        herald_platform::problem::FieldError,
        routes::stream::ControlEvent,
        herald_domain::Envelope
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "publishing", description = "Internal services publish events (service tokens with `publish` scope)."),
        (name = "history", description = "Durable history of topics."),
        (name = "notifications", description = "Services send notifications to users' inboxes."),
        (name = "inbox", description = "The caller's inbox: list, counts, read state."),
        (name = "feeds", description = "Activity feeds."),
        (name = "orders", description = "Order status tracking."),
        (name = "streaming", description = "Live streams and stream tokens."),
        (name = "preferences", description = "What reaches each user, per category and channel."),
        (name = "push", description = "Web Push subscriptions (RFC 8030, 8291, 8292)."),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "stream_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("access_token"))),
        );
    }
}

/// The documented routes, and the OpenAPI document generated from them.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::events::publish_event))
        .routes(routes!(routes::scheduled::cancel_event))
        .routes(routes!(routes::events::publish_batch))
        .routes(routes!(routes::events::topic_history))
        .routes(routes!(routes::stream_tokens::create_stream_token))
        .routes(routes!(routes::notifications::create_notifications))
        .routes(routes!(routes::scheduled::cancel_notification))
        .routes(routes!(routes::inbox::list))
        .routes(routes!(routes::inbox::counts))
        .routes(routes!(routes::inbox::mark_read))
        .routes(routes!(routes::inbox::mark_unread))
        .routes(routes!(routes::inbox::archive))
        .routes(routes!(routes::inbox::snooze))
        .routes(routes!(routes::inbox::unsnooze))
        .routes(routes!(routes::inbox::read_all))
        .routes(routes!(routes::inbox::seen))
        .routes(routes!(
            routes::feeds::post_activity,
            routes::feeds::list_activities
        ))
        .routes(routes!(routes::orders::put_order, routes::orders::get_order))
        .routes(routes!(routes::orders::change_status))
        .routes(routes!(
            routes::preferences::get_preferences,
            routes::preferences::put_preferences
        ))
        .routes(routes!(
            routes::preferences::put_category,
            routes::preferences::get_category
        ))
        .routes(routes!(routes::push::vapid_public_key))
        .routes(routes!(
            routes::push::subscribe,
            routes::push::list,
            routes::push::unsubscribe
        ))
        .split_for_parts()
}

/// Responses every operation can give, documented once here: 503 when the
/// database is unavailable (with `Retry-After`), and 429 for publishing
/// endpoints over `HERALD_PUBLISH_RATE`.
fn add_common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        if path == "/v1/stream" {
            continue;
        }
        let ops = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let publishing = op.responses.responses.contains_key("403")
                && op.security.is_some()
                && op.tags.as_ref().is_some_and(|t| {
                    t.iter()
                        .any(|t| ["publishing", "notifications", "feeds", "orders"].contains(&t.as_str()))
                })
                && op.request_body.is_some();
            if publishing {
                op.responses.responses.entry("429".into()).or_insert_with(|| {
                    problem("Publish rate exceeded for this token; retry after `Retry-After` seconds")
                });
            }
            op.responses
                .responses
                .entry("503".into())
                .or_insert_with(|| problem("The database is unavailable; retry after `Retry-After` seconds"));
        }
    }
}

/// The OpenAPI document as checked into `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let (_, mut doc) = api_router();
    add_common_responses(&mut doc);
    // The stream is served by herald-gateway, not by the API.
    if let Some(stream) = doc.paths.paths.get_mut("/v1/stream") {
        stream.servers = Some(vec![utoipa::openapi::server::Server::new(
            "http://127.0.0.1:8081",
        )]);
        if let Some(server) = stream.servers.as_mut().and_then(|s| s.first_mut()) {
            server.description = Some("herald-gateway (HERALD_GATEWAY_ADDR); use your gateway's URL".into());
        }
    }
    let mut s = doc.to_pretty_json().expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// Web Push from its settings: `None` without a VAPID key; a bad key,
/// subject or host list stops start-up naming its variable.
pub fn web_push(
    s: &herald_platform::config::PushSettings,
) -> Result<Option<herald_push::WebPush>, ConfigError> {
    herald_push::WebPush::from_settings(
        s.vapid_private_key.as_ref().map(|k| k.expose()),
        s.vapid_subject.as_deref(),
        &s.allowed_hosts,
        s.allow_insecure,
    )
    .map_err(|e| ConfigError::Invalid {
        var: e.var,
        value: "<redacted>".into(),
        message: e.message,
    })
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: http::HttpLimits,
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
    #[error("applying migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Application {
    /// Verifies the configuration, applies pending migrations, binds.
    pub async fn build(settings: Settings, pool: PgPool) -> Result<Self, BuildError> {
        let verifier = Arc::new(Verifier::from_settings(&settings.jwt)?);
        verifier.warm_up().await;
        db::MIGRATOR.run(&pool).await?;
        let addr = settings.api.addr;
        let listener = http::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        let openapi_json = axum::body::Bytes::from(openapi_json());
        let push = web_push(&settings.push)?.map(Arc::new);
        let state = AppState {
            publish_rate: Arc::new(rate::PublishRate::new(settings.api.publish_rate)),
            outbox: outbox::Outbox::start(pool.clone()),
            push,
            pool,
            verifier,
            metrics: Arc::new(ApiMetrics::default()),
            openapi_json,
            settings: Arc::new(settings),
        };
        Ok(Self {
            listener,
            limits: state.settings.http,
            router: router(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves `routes` on the API address too (the single-node binary mounts
    /// the stream endpoint here).
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// `/readyz` answers 503 `draining` once `draining` is cancelled. The
    /// single-node binary passes the gateway's drain signal, so a load
    /// balancer moves away before the streams it serves here end.
    pub fn draining_on(mut self, draining: CancellationToken) -> Self {
        self.router = self.router.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let draining = draining.clone();
                async move {
                    use axum::response::IntoResponse;
                    if draining.is_cancelled() && req.uri().path() == "/readyz" {
                        return Problem::unavailable("draining", 1).into_response();
                    }
                    next.run(req).await
                }
            },
        ));
        self
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        http::serve(self.listener, self.router, self.limits, shutdown).await
    }
}

/// Records every request in `herald_http_requests_total` and
/// `herald_http_request_duration_seconds`, by route template (never the raw
/// path, which could carry ids or tokens), method and status.
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    state.metrics.http.observe(
        &route,
        &method,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// The whole API router for `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.api.max_body_bytes;
    let (api, _) = api_router();
    let api = if state.settings.api.demo {
        api.route("/demo", get(routes::demo::index))
            .route("/demo/{name}", get(routes::demo::asset))
    } else {
        api
    };
    api.route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .route("/openapi.json", get(routes::ops::openapi_json))
        .route("/docs", get(routes::ops::docs))
        .route("/docs/swagger-ui-bundle.js", get(routes::ops::docs_js))
        .route("/docs/swagger-ui.css", get(routes::ops::docs_css))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(http::BodyLimit(body_limit)))
        .layer(axum::middleware::from_fn(http::refuse_unstorable_url))
        .layer(axum::middleware::map_response(http::problem_for_every_error))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::middleware::from_fn(http::limit_request_head))
        // Outermost: every answer, refusals and preflights included.
        .layer(http::cors(&state.settings.cors_origins))
        .with_state(state)
}
