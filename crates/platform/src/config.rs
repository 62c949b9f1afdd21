//! Typed settings: defaults, then an optional file (`HERALD_CONFIG_FILE`, lines
//! of `HERALD_X=value`), then the environment. A bad value stops start-up with
//! an error naming the variable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {message} (got {value:?})")]
    Invalid {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{var} must be set: {why}")]
    Missing { var: &'static str, why: &'static str },
    #[error("HERALD_CONFIG_FILE {path}: {source}")]
    File { path: String, source: std::io::Error },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The browser origins allowed to call the API and open streams
/// (`HERALD_CORS_ORIGINS`). Tokens travel in the `Authorization` header or a
/// stream token in the URL, never in cookies, so no answer ever allows
/// credentials and `*` is safe where an operator wants it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No cross-origin access (the default): no `Access-Control-Allow-Origin`.
    #[default]
    None,
    /// `*`: any origin.
    Any,
    /// Exact origins (`https://app.example.com`), lowercased, without a path.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses a comma-separated list of origins, or `*` alone.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let entries: Vec<&str> = raw.split(',').map(str::trim).filter(|e| !e.is_empty()).collect();
        if entries.is_empty() {
            return Ok(Self::None);
        }
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(Self::Any)
            } else {
                Err("`*` allows every origin and cannot be combined with others".into())
            };
        }
        let mut origins = Vec::with_capacity(entries.len());
        for entry in entries {
            let origin = parse_origin(entry)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }

    /// True when a browser page on `origin` may read the answers.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::None => false,
            Self::Any => true,
            Self::List(list) => list.iter().any(|o| o == origin),
        }
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn parse_origin(entry: &str) -> Result<String, String> {
    let bad =
        |why: &str| format!("`{entry}` is not an origin ({why}); write it like https://app.example.com:8443");
    let (scheme, rest) = entry.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad(
            "only scheme, host and port: no path, not even a trailing `/`",
        ));
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after the address"))?),
            };
            (format!("[{addr}]"), port)
        }
        None => match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (rest.to_owned(), None),
        },
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')));
    if !host_ok {
        return Err(bad("a bad host"));
    }
    if let Some(p) = port {
        if p.is_empty() || p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(bad("a bad port"));
        }
    }
    Ok(match port {
        Some(p) => format!("{scheme}://{}:{p}", host.to_ascii_lowercase()),
        None => format!("{scheme}://{}", host.to_ascii_lowercase()),
    })
}

/// JWT verification settings shared by the API and the gateway.
#[derive(Clone)]
pub struct JwtSettings {
    /// HS256 shared secret (development).
    pub secret: Option<String>,
    pub audience: String,
    pub issuer: Option<String>,
    pub leeway: Duration,
    /// Secret Herald signs its own short-lived stream tokens with; defaults to
    /// `secret`.
    pub stream_token_secret: Option<String>,
    pub stream_token_ttl: Duration,
    /// The one algorithm access tokens may use (`HERALD_JWT_ALGORITHM`).
    pub algorithm: jsonwebtoken::Algorithm,
    /// PEM public key (RS*/PS*/ES*/EdDSA), from `HERALD_JWT_PUBLIC_KEY`
    /// (the PEM itself or a path to it).
    pub public_key: Option<String>,
    /// A JWKS document with the verification keys, selected by `kid`.
    pub jwks_url: Option<String>,
    pub jwks_cache_ttl: Duration,
    pub jwks_min_refresh: Duration,
}

impl std::fmt::Debug for JwtSettings {
    // Secrets never reach logs, not even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSettings")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("stream_token_ttl", &self.stream_token_ttl)
            .field("algorithm", &self.algorithm)
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Web Push (api, worker). Without a VAPID key nothing is pushed.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// `HERALD_VAPID_PRIVATE_KEY`: PEM, or the base64url P-256 scalar.
    pub vapid_private_key: Option<Secret>,
    /// `HERALD_VAPID_SUBJECT`: `mailto:` or `https:` contact for push services.
    pub vapid_subject: Option<String>,
    /// `HERALD_PUSH_ALLOWED_HOSTS`: hosts (or `*.domain`) endpoints may have.
    pub allowed_hosts: String,
    /// `HERALD_PUSH_ALLOW_INSECURE`: also `http` and non-public addresses
    /// (tests with a local push service only).
    pub allow_insecure: bool,
    /// `HERALD_PUSH_TTL`: how long a push service keeps a push for an offline device.
    pub ttl: Duration,
    /// `HERALD_PUSH_CONCURRENCY`: pushes one worker sends at once.
    pub concurrency: usize,
    /// `HERALD_PUSH_LEASE`: how long a worker holds a claimed push before
    /// another may send it (a worker that died meanwhile).
    pub lease: Duration,
}

impl PushSettings {
    /// Whether Web Push is configured.
    pub fn enabled(&self) -> bool {
        self.vapid_private_key.is_some()
    }
}

/// Where Postgres is (`HERALD_DATABASE_URL`), and the pool
/// (`HERALD_DATABASE_MAX_CONNECTIONS`, `HERALD_DATABASE_CONNECTION_LIFETIME`).
///
/// The URL may list several servers, as libpq's multi-host URLs do
/// (`postgres://user:pw@db1:5432,db2:5432/herald`): a primary and its
/// standbys. sqlx connects to one host only, so the URL is split here into
/// one URL per server, and `db::connect_lazy` keeps the pool on whichever
/// of them accepts writes.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// As configured. Can carry a password: redacted in `Debug`.
    pub url: Secret,
    /// One single-host URL per listed server, in the order given (just `url`
    /// when it names one server). Secrets too.
    pub servers: Vec<Secret>,
    /// Connect only to a server that accepts writes: with several servers,
    /// or `target_session_attrs=read-write` (or `primary`) on one.
    pub read_write: bool,
    pub max_connections: u32,
    /// A pooled connection is closed (when next idle) once it is this old, and
    /// replaced only if the load needs it: connections a burst opened (a
    /// resume storm reading the log) go within this long of it, rather than
    /// staying open while a steady trickle keeps every one of them in use.
    pub connection_lifetime: Duration,
}

/// Where Redis is, when the bus is Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisServers {
    /// One server (`HERALD_REDIS_URL`).
    Server(Secret),
    /// A Redis Cluster (`HERALD_REDIS_CLUSTER=true`), reached through one or
    /// more seed nodes (`HERALD_REDIS_URL`, comma-separated).
    Cluster(Vec<Secret>),
}

/// The bus (`HERALD_REDIS_URL`, `HERALD_REDIS_CLUSTER`, `HERALD_REDIS_PREFIX`).
#[derive(Debug, Clone)]
pub struct BusSettings {
    /// Redis as configured; `None` when neither `HERALD_REDIS_URL` nor
    /// `HERALD_REDIS_CLUSTER` is set. The standalone services then use the
    /// local Redis ([`BusSettings::redis_or_local`]); the single-node binary
    /// its in-process bus.
    pub redis: Option<RedisServers>,
    /// The first part of every channel name, so that deployments (and
    /// tests) can share one Redis.
    pub prefix: String,
}

/// The Redis the standalone services use when none is configured.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

impl BusSettings {
    /// The configured Redis, or the local one.
    pub fn redis_or_local(&self) -> RedisServers {
        self.redis
            .clone()
            .unwrap_or_else(|| RedisServers::Server(Secret::new(DEFAULT_REDIS_URL)))
    }
}

/// The API (`herald-api`).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub addr: SocketAddr,
    /// Largest accepted `data` of one event, in bytes of JSON.
    pub max_event_data_bytes: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// `HERALD_MAX_SCHEDULE_AHEAD`: how far ahead a `deliver_at` (scheduled
    /// delivery) or a snooze's `until` may be.
    pub max_schedule_ahead: Duration,
    /// Events per second one service token may publish (429 beyond).
    pub publish_rate: u32,
    /// Serve the demo bell page at `/demo` (development).
    pub demo: bool,
    /// Folder the demo page is read from.
    pub web_dir: std::path::PathBuf,
    /// The gateway's URL as browsers reach it (for the demo page).
    pub public_gateway_url: String,
}

/// The gateway (`herald-gateway`).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub addr: SocketAddr,
    pub heartbeat: Duration,
    pub sse_retry: Duration,
    pub max_topics_per_stream: usize,
    /// Frames queued for one stream before it counts as a slow consumer.
    pub stream_buffer: usize,
    /// Open streams one gateway accepts (503 beyond).
    pub max_streams: usize,
    /// Open streams per user (`sub`) on one gateway (429 beyond).
    pub max_streams_per_user: usize,
    /// How long a draining gateway keeps streams open after SIGTERM.
    pub shutdown_grace: Duration,
    /// Memory for the recent frames resumes are served from (all topics
    /// together); 0: every resume replays from Postgres.
    pub replay_window_bytes: usize,
    /// How long a topic whose last stream left stays subscribed with its
    /// window, for that stream's resume; zero: not at all.
    pub replay_linger: Duration,
}

/// The worker (`herald-worker`).
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The health listener.
    pub addr: SocketAddr,
    /// The fallback poll of the relay, when no `NOTIFY` wakes it.
    pub poll: Duration,
    /// Events sequenced and published per step, at most.
    pub batch: usize,
    /// How long events stay replayable.
    pub retention: Duration,
    /// Insertion numbers per partition of the event log, at most.
    pub partition_size: u64,
    /// How long a partition of the event log takes new events before the
    /// worker closes it (retention drops whole partitions, so events live
    /// up to `retention + span`); `None`: [`WorkerSettings::partition_span`].
    pub partition_span: Option<Duration>,
}

impl WorkerSettings {
    /// `HERALD_EVENT_PARTITION_SPAN`, or a sixteenth of the retention
    /// (between 100 ms and a day): about 17 partitions hold the history.
    pub fn partition_span(&self) -> Duration {
        self.partition_span.unwrap_or_else(|| {
            (self.retention / 16).clamp(Duration::from_millis(100), Duration::from_secs(86_400))
        })
    }
}

/// Every service's settings, parsed once at start-up. Each service reads its
/// own group and the shared ones (database, bus, JWT, HTTP, CORS).
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub bus: BusSettings,
    pub jwt: JwtSettings,
    /// Timeouts and size bounds of every HTTP listener.
    pub http: crate::http::HttpLimits,
    /// Origins whose pages may call the API and open streams (CORS).
    pub cors_origins: CorsOrigins,
    pub api: ApiSettings,
    pub gateway: GatewaySettings,
    pub worker: WorkerSettings,
    pub push: PushSettings,
    pub log_format: LogFormat,
}

/// The push services of Chrome (FCM), Firefox (Mozilla), Edge (WNS) and
/// Safari (Apple).
pub const DEFAULT_PUSH_HOSTS: &str =
    "fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com";

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn get<T: FromStr>(lookup: Lookup<'_>, var: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(var) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|e: T::Err| invalid(var, v.clone(), e.to_string())),
    }
}

fn get_duration(lookup: Lookup<'_>, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    match lookup(var) {
        None => Ok(default),
        Some(v) => parse_duration(&v).ok_or_else(|| {
            invalid(
                var,
                v.clone(),
                "expected a duration like 250ms, 30s, 5m, 12h or 7d",
            )
        }),
    }
}

/// A positive count (`0` is refused).
fn get_count(lookup: Lookup<'_>, var: &'static str, default: usize) -> Result<usize, ConfigError> {
    let n = get(lookup, var, default)?;
    if n == 0 {
        return Err(invalid(var, "0".into(), "must be at least 1"));
    }
    Ok(n)
}

/// A duration that must be positive.
fn get_positive(lookup: Lookup<'_>, var: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    let d = get_duration(lookup, var, default)?;
    if d.is_zero() {
        return Err(invalid(var, "0".into(), "must be positive"));
    }
    Ok(d)
}

fn non_empty(lookup: Lookup<'_>, var: &str) -> Option<String> {
    lookup(var).filter(|v| !v.trim().is_empty())
}

fn invalid(var: &'static str, value: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value,
        message: message.into(),
    }
}

/// Parses `250ms`, `30s`, `5m`, `12h`, `7d` (a bare number is seconds).
pub use herald_domain::duration::parse as parse_duration;

impl Settings {
    /// Reads the process environment (and `HERALD_CONFIG_FILE` when set).
    pub fn from_env() -> Result<Self, ConfigError> {
        let file = match std::env::var("HERALD_CONFIG_FILE") {
            Ok(path) if !path.is_empty() => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::File {
                    path: path.clone(),
                    source,
                })?;
                parse_env_file(&text)
            }
            _ => HashMap::new(),
        };
        Self::from_lookup(&|k| std::env::var(k).ok().or_else(|| file.get(k).cloned()))
    }

    /// Settings from any key lookup (tests pass a map).
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let gateway = GatewaySettings::parse(lookup)?;
        Ok(Self {
            database: DatabaseSettings::parse(lookup)?,
            bus: BusSettings::parse(lookup)?,
            jwt: JwtSettings::parse(lookup)?,
            http: parse_http(lookup)?,
            cors_origins: match lookup("HERALD_CORS_ORIGINS") {
                None => CorsOrigins::None,
                Some(raw) => CorsOrigins::parse(&raw)
                    .map_err(|message| invalid("HERALD_CORS_ORIGINS", raw.clone(), message))?,
            },
            api: ApiSettings::parse(lookup, &gateway)?,
            gateway,
            worker: WorkerSettings::parse(lookup)?,
            push: PushSettings::parse(lookup)?,
            log_format: match lookup("HERALD_LOG_FORMAT").as_deref().map(str::trim) {
                None | Some("") | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(invalid(
                        "HERALD_LOG_FORMAT",
                        other.into(),
                        "expected text or json",
                    ))
                }
            },
        })
    }
}

impl DatabaseSettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let url = non_empty(lookup, "HERALD_DATABASE_URL")
            .map(|u| u.trim().to_owned())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/herald".into());
        // The value is a secret: errors name the variable, never show it.
        let (servers, read_write) =
            split_servers(&url).map_err(|why| invalid("HERALD_DATABASE_URL", "<redacted>".into(), why))?;
        for server in &servers {
            server.parse::<sqlx::postgres::PgConnectOptions>().map_err(|_| {
                invalid(
                    "HERALD_DATABASE_URL",
                    "<redacted>".into(),
                    "not a postgres:// URL sqlx can use",
                )
            })?;
        }
        Ok(Self {
            url: Secret::new(url),
            servers: servers.into_iter().map(Secret::new).collect(),
            read_write,
            max_connections: get(lookup, "HERALD_DATABASE_MAX_CONNECTIONS", 16)?,
            connection_lifetime: get_positive(
                lookup,
                "HERALD_DATABASE_CONNECTION_LIFETIME",
                Duration::from_secs(300),
            )?,
        })
    }
}

/// Splits a libpq-style multi-host URL (`scheme://[userinfo@]h1[:p1],h2[:p2]/db?…`)
/// into one URL per host, each with the same user, database and parameters,
/// and takes `target_session_attrs` out (sqlx does not know it). Returns the
/// URLs and whether only a read-write server will do. A single-host URL
/// without `target_session_attrs` comes back as it is.
fn split_servers(url: &str) -> Result<(Vec<String>, bool), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok((vec![url.to_owned()], false));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    if hosts.len() > 1 && hosts.iter().any(|h| h.is_empty()) {
        return Err("an empty host in the list: write host1:port1,host2:port2".into());
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut attrs = None;
    let mut kept = Vec::new();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => attrs = Some(value),
            _ => kept.push(pair),
        }
    }
    let read_write = match attrs {
        None => hosts.len() > 1,
        Some("read-write" | "primary") => true,
        Some(other) => {
            return Err(format!(
                "target_session_attrs={other}: Herald writes, so only read-write (or primary) will do"
            ))
        }
    };
    if hosts.len() == 1 && attrs.is_none() {
        return Ok((vec![url.to_owned()], false));
    }
    let query = if kept.is_empty() {
        String::new()
    } else {
        format!("?{}", kept.join("&"))
    };
    let servers = hosts
        .iter()
        .map(|host| format!("{scheme}://{userinfo}{host}{path}{query}"))
        .collect();
    Ok((servers, read_write))
}

impl BusSettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let cluster: bool = get(lookup, "HERALD_REDIS_CLUSTER", false)?;
        let url = non_empty(lookup, "HERALD_REDIS_URL");
        let redis = match (url, cluster) {
            (None, false) => None,
            (Some(url), false) => {
                check_redis_url(&url).map_err(|why| invalid("HERALD_REDIS_URL", "<redacted>".into(), why))?;
                Some(RedisServers::Server(Secret::new(url.trim())))
            }
            (url, true) => {
                let url = url.unwrap_or_else(|| DEFAULT_REDIS_URL.into());
                let seeds: Vec<Secret> = url
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect();
                if seeds.is_empty() || seeds.iter().any(|s| check_redis_url(s.expose()).is_err()) {
                    return Err(invalid(
                        "HERALD_REDIS_URL",
                        "<redacted>".into(),
                        "with HERALD_REDIS_CLUSTER=true, give one or more redis:// seed URLs, comma-separated",
                    ));
                }
                Some(RedisServers::Cluster(seeds))
            }
        };
        let prefix = non_empty(lookup, "HERALD_REDIS_PREFIX").unwrap_or_else(|| "herald".into());
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(invalid(
                "HERALD_REDIS_PREFIX",
                prefix,
                "use only A-Z a-z 0-9 _ - . :",
            ));
        }
        Ok(Self { redis, prefix })
    }
}

/// A Redis URL as the Redis client takes it: `redis://`, `rediss://`,
/// `redis+unix://` or `unix://`.
fn check_redis_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| format!("not a URL ({e}); write it like redis://host:6379"))?;
    match url.scheme() {
        "redis" | "rediss" if url.has_host() => Ok(()),
        "redis+unix" | "unix" => Ok(()),
        "redis" | "rediss" => Err("a redis:// URL needs a host".into()),
        other => Err(format!("the scheme must be redis, rediss or unix, not {other}")),
    }
}

impl JwtSettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let public_key = match non_empty(lookup, "HERALD_JWT_PUBLIC_KEY") {
            None => None,
            Some(v) if v.trim_start().starts_with("-----BEGIN") => Some(v),
            Some(path) => Some(std::fs::read_to_string(path.trim()).map_err(|e| {
                invalid(
                    "HERALD_JWT_PUBLIC_KEY",
                    path.clone(),
                    format!("neither PEM text nor a readable file: {e}"),
                )
            })?),
        };
        let jwks_url = non_empty(lookup, "HERALD_JWKS_URL");
        let default_alg = if public_key.is_none() && jwks_url.is_none() {
            "HS256"
        } else {
            "RS256"
        };
        let alg_raw = non_empty(lookup, "HERALD_JWT_ALGORITHM").unwrap_or_else(|| default_alg.into());
        let algorithm = match alg_raw.trim() {
            "HS256" => jsonwebtoken::Algorithm::HS256,
            "HS384" => jsonwebtoken::Algorithm::HS384,
            "HS512" => jsonwebtoken::Algorithm::HS512,
            "RS256" => jsonwebtoken::Algorithm::RS256,
            "RS384" => jsonwebtoken::Algorithm::RS384,
            "RS512" => jsonwebtoken::Algorithm::RS512,
            "PS256" => jsonwebtoken::Algorithm::PS256,
            "ES256" => jsonwebtoken::Algorithm::ES256,
            "ES384" => jsonwebtoken::Algorithm::ES384,
            "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
            other => {
                return Err(invalid(
                    "HERALD_JWT_ALGORITHM",
                    other.into(),
                    "expected HS256, HS384, HS512, RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA",
                ))
            }
        };
        let stream_token_ttl = get_duration(lookup, "HERALD_STREAM_TOKEN_TTL", Duration::from_secs(300))?;
        if stream_token_ttl > Duration::from_secs(300) || stream_token_ttl.is_zero() {
            return Err(invalid(
                "HERALD_STREAM_TOKEN_TTL",
                format!("{stream_token_ttl:?}"),
                "stream tokens live between 1 second and 5 minutes",
            ));
        }
        Ok(Self {
            secret: non_empty(lookup, "HERALD_JWT_SECRET"),
            audience: non_empty(lookup, "HERALD_JWT_AUDIENCE").unwrap_or_else(|| "herald".into()),
            issuer: non_empty(lookup, "HERALD_JWT_ISSUER"),
            leeway: get_duration(lookup, "HERALD_JWT_LEEWAY", Duration::from_secs(5))?,
            stream_token_secret: non_empty(lookup, "HERALD_STREAM_TOKEN_SECRET"),
            stream_token_ttl,
            algorithm,
            public_key,
            jwks_url,
            jwks_cache_ttl: get_duration(lookup, "HERALD_JWKS_CACHE_TTL", Duration::from_secs(300))?,
            jwks_min_refresh: get_duration(lookup, "HERALD_JWKS_MIN_REFRESH", Duration::from_secs(10))?,
        })
    }
}

fn parse_http(lookup: Lookup<'_>) -> Result<crate::http::HttpLimits, ConfigError> {
    let max_head_bytes = get(lookup, "HERALD_HTTP_MAX_HEAD_BYTES", 32 * 1024)?;
    if !(crate::http::MIN_HEAD_BYTES..=crate::http::MAX_HEAD_BYTES_LIMIT).contains(&max_head_bytes) {
        return Err(invalid(
            "HERALD_HTTP_MAX_HEAD_BYTES",
            max_head_bytes.to_string(),
            "must be between 8192 and 1048576 (a request's URL and headers must fit)",
        ));
    }
    Ok(crate::http::HttpLimits {
        header_timeout: get_positive(lookup, "HERALD_HTTP_HEADER_TIMEOUT", Duration::from_secs(10))?,
        idle_timeout: get_positive(lookup, "HERALD_HTTP_IDLE_TIMEOUT", Duration::from_secs(75))?,
        body_timeout: get_positive(lookup, "HERALD_HTTP_BODY_TIMEOUT", Duration::from_secs(30))?,
        max_head_bytes,
    })
}

impl ApiSettings {
    fn parse(lookup: Lookup<'_>, gateway: &GatewaySettings) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: get(
                lookup,
                "HERALD_API_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            max_event_data_bytes: get(lookup, "HERALD_MAX_EVENT_DATA_BYTES", 64 * 1024)?,
            max_body_bytes: get(lookup, "HERALD_MAX_BODY_BYTES", 256 * 1024)?,
            max_schedule_ahead: {
                let d = get_duration(
                    lookup,
                    "HERALD_MAX_SCHEDULE_AHEAD",
                    Duration::from_secs(30 * 86_400),
                )?;
                if d < Duration::from_secs(1) {
                    return Err(invalid(
                        "HERALD_MAX_SCHEDULE_AHEAD",
                        format!("{d:?}"),
                        "must be at least 1s",
                    ));
                }
                d
            },
            publish_rate: get(lookup, "HERALD_PUBLISH_RATE", 10_000)?,
            demo: get(lookup, "HERALD_DEMO", false)?,
            web_dir: non_empty(lookup, "HERALD_WEB_DIR")
                .unwrap_or_else(|| "web".into())
                .into(),
            public_gateway_url: non_empty(lookup, "HERALD_PUBLIC_GATEWAY_URL")
                .unwrap_or_else(|| format!("http://{}", gateway.addr)),
        })
    }
}

impl GatewaySettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: get(
                lookup,
                "HERALD_GATEWAY_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8081)),
            )?,
            heartbeat: get_positive(lookup, "HERALD_HEARTBEAT", Duration::from_secs(15))?,
            sse_retry: get_duration(lookup, "HERALD_SSE_RETRY", Duration::from_secs(2))?,
            max_topics_per_stream: get_count(lookup, "HERALD_MAX_TOPICS_PER_STREAM", 64)?,
            stream_buffer: get_count(lookup, "HERALD_STREAM_BUFFER", 1024)?,
            max_streams: get(lookup, "HERALD_MAX_STREAMS", 100_000)?,
            max_streams_per_user: get(lookup, "HERALD_MAX_STREAMS_PER_USER", 100)?,
            shutdown_grace: get_duration(lookup, "HERALD_SHUTDOWN_GRACE", Duration::from_millis(500))?,
            replay_window_bytes: get(lookup, "HERALD_REPLAY_WINDOW_BYTES", 32 * 1024 * 1024)?,
            replay_linger: get_duration(lookup, "HERALD_REPLAY_LINGER", Duration::from_secs(30))?,
        })
    }
}

impl WorkerSettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let poll = get_duration(lookup, "HERALD_WORKER_POLL", Duration::from_millis(200))?;
        if poll > Duration::from_millis(250) || poll.is_zero() {
            return Err(invalid(
                "HERALD_WORKER_POLL",
                format!("{poll:?}"),
                "the fallback poll must be between 1ms and 250ms",
            ));
        }
        Ok(Self {
            addr: get(
                lookup,
                "HERALD_WORKER_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8082)),
            )?,
            poll,
            batch: get_count(lookup, "HERALD_WORKER_BATCH", 500)?,
            retention: get_duration(lookup, "HERALD_RETENTION", Duration::from_secs(7 * 86_400))?,
            partition_size: get_count(lookup, "HERALD_EVENT_PARTITION_SIZE", 10_000_000)? as u64,
            partition_span: match non_empty(lookup, "HERALD_EVENT_PARTITION_SPAN") {
                None => None,
                Some(_) => Some(get_positive(
                    lookup,
                    "HERALD_EVENT_PARTITION_SPAN",
                    Duration::ZERO,
                )?),
            },
        })
    }
}

impl PushSettings {
    fn parse(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let push = Self {
            vapid_private_key: non_empty(lookup, "HERALD_VAPID_PRIVATE_KEY").map(Secret),
            vapid_subject: non_empty(lookup, "HERALD_VAPID_SUBJECT"),
            allowed_hosts: non_empty(lookup, "HERALD_PUSH_ALLOWED_HOSTS")
                .unwrap_or_else(|| DEFAULT_PUSH_HOSTS.into()),
            allow_insecure: get(lookup, "HERALD_PUSH_ALLOW_INSECURE", false)?,
            ttl: get_positive(lookup, "HERALD_PUSH_TTL", Duration::from_secs(86_400))?,
            concurrency: get_count(lookup, "HERALD_PUSH_CONCURRENCY", 32)?,
            lease: get_duration(lookup, "HERALD_PUSH_LEASE", Duration::from_secs(60))?,
        };
        match (&push.vapid_private_key, &push.vapid_subject) {
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "HERALD_VAPID_SUBJECT",
                    why: "push services need a contact (mailto: or https:) with the VAPID key",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "HERALD_VAPID_PRIVATE_KEY",
                    why: "HERALD_VAPID_SUBJECT is set, but pushes are signed with a VAPID key",
                })
            }
            _ => {}
        }
        if push.lease < Duration::from_secs(1) {
            return Err(invalid(
                "HERALD_PUSH_LEASE",
                format!("{:?}", push.lease),
                "must be at least 1s (longer than a push takes to send)",
            ));
        }
        if push.ttl > Duration::from_secs(28 * 86_400) {
            return Err(invalid(
                "HERALD_PUSH_TTL",
                format!("{:?}", push.ttl),
                "at most 28d",
            ));
        }
        Ok(push)
    }
}

fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(&|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_product_contract() {
        let s = with(&[]).unwrap();
        assert_eq!(
            s.database.url.expose(),
            "postgres://postgres@127.0.0.1:5432/herald"
        );
        assert_eq!(s.bus.prefix, "herald");
        assert_eq!(
            s.bus.redis, None,
            "the single-node binary runs its in-process bus"
        );
        assert_eq!(
            s.bus.redis_or_local(),
            RedisServers::Server(Secret::new("redis://127.0.0.1:6379"))
        );
        assert_eq!(s.jwt.audience, "herald");
        assert_eq!(s.api.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.gateway.heartbeat, Duration::from_secs(15));
        assert_eq!(s.worker.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(s.worker.partition_size, 10_000_000);
        assert_eq!(s.worker.partition_span(), Duration::from_secs(7 * 86_400 / 16));
        assert!(s.http.header_timeout <= Duration::from_secs(30));
        assert_eq!(s.http.max_head_bytes, 32 * 1024);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = with(&[("HERALD_API_ADDR", "nope")]).unwrap_err().to_string();
        assert!(e.starts_with("HERALD_API_ADDR"), "{e}");
        let e = with(&[("HERALD_RETENTION", "7 weeks")]).unwrap_err().to_string();
        assert!(e.starts_with("HERALD_RETENTION"), "{e}");
        let e = with(&[("HERALD_WORKER_POLL", "1s")]).unwrap_err().to_string();
        assert!(e.starts_with("HERALD_WORKER_POLL"), "{e}");
        for var in [
            "HERALD_HTTP_HEADER_TIMEOUT",
            "HERALD_HTTP_IDLE_TIMEOUT",
            "HERALD_HTTP_BODY_TIMEOUT",
            "HERALD_HTTP_MAX_HEAD_BYTES",
        ] {
            let e = with(&[(var, "0")]).unwrap_err().to_string();
            assert!(e.starts_with(var), "{e}");
        }
    }

    #[test]
    fn redis_cluster_takes_comma_separated_seeds() {
        let s = with(&[
            ("HERALD_REDIS_CLUSTER", "true"),
            ("HERALD_REDIS_URL", "redis://10.0.0.1:7000, redis://10.0.0.2:7000"),
        ])
        .unwrap();
        assert_eq!(
            s.bus.redis,
            Some(RedisServers::Cluster(vec![
                Secret::new("redis://10.0.0.1:7000"),
                Secret::new("redis://10.0.0.2:7000")
            ]))
        );
        let e = with(&[("HERALD_REDIS_CLUSTER", "yes")]).unwrap_err().to_string();
        assert!(e.starts_with("HERALD_REDIS_CLUSTER"), "{e}");
        let e = with(&[
            ("HERALD_REDIS_CLUSTER", "true"),
            ("HERALD_REDIS_URL", "redis://a:1,nope"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("HERALD_REDIS_URL"), "{e}");
        assert!(!matches!(
            with(&[]).unwrap().bus.redis,
            Some(RedisServers::Cluster(_))
        ));
        let e = with(&[("HERALD_REDIS_URL", "http://a:1")])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("HERALD_REDIS_URL"), "{e}");
    }

    #[test]
    fn cors_origins_are_exact_origins_or_a_lone_star() {
        assert_eq!(
            with(&[]).unwrap().cors_origins,
            CorsOrigins::None,
            "empty by default"
        );
        assert_eq!(
            with(&[("HERALD_CORS_ORIGINS", " ")]).unwrap().cors_origins,
            CorsOrigins::None
        );
        assert_eq!(
            with(&[("HERALD_CORS_ORIGINS", "*")]).unwrap().cors_origins,
            CorsOrigins::Any
        );
        let s = with(&[(
            "HERALD_CORS_ORIGINS",
            "https://App.Example.com, http://127.0.0.1:5173,http://[::1]:8000,https://app.example.com",
        )])
        .unwrap();
        assert_eq!(
            s.cors_origins,
            CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://127.0.0.1:5173".into(),
                "http://[::1]:8000".into(),
            ])
        );
        assert!(s.cors_origins.allows("http://127.0.0.1:5173"));
        assert!(!s.cors_origins.allows("http://127.0.0.1:5174"));
        assert!(!CorsOrigins::None.allows("https://app.example.com"));
        for bad in [
            "*, https://a.example",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://app.example.com:0",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://app_example.com",
            "null",
        ] {
            let e = with(&[("HERALD_CORS_ORIGINS", bad)]).unwrap_err().to_string();
            assert!(e.starts_with("HERALD_CORS_ORIGINS"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_schedule_horizon_defaults_to_30_days_and_must_be_positive() {
        assert_eq!(
            with(&[]).unwrap().api.max_schedule_ahead,
            Duration::from_secs(30 * 86_400)
        );
        let s = with(&[("HERALD_MAX_SCHEDULE_AHEAD", "12h")]).unwrap();
        assert_eq!(s.api.max_schedule_ahead, Duration::from_secs(43_200));
        for bad in ["0s", "soon"] {
            let e = with(&[("HERALD_MAX_SCHEDULE_AHEAD", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("HERALD_MAX_SCHEDULE_AHEAD"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_multi_host_database_url_becomes_one_url_per_server() {
        let servers = |url: &str| {
            let s = with(&[("HERALD_DATABASE_URL", url)]).unwrap().database;
            let urls: Vec<String> = s.servers.iter().map(|s| s.expose().to_owned()).collect();
            (urls, s.read_write)
        };
        // One server: as given, and no read-write check (nothing to choose from).
        assert_eq!(
            servers("postgres://u:p@db:5432/herald?sslmode=disable"),
            (
                vec!["postgres://u:p@db:5432/herald?sslmode=disable".to_owned()],
                false
            )
        );
        assert_eq!(
            servers(
                "postgres://u:p%40x@db1:5432,db2:6432/herald?sslmode=disable&target_session_attrs=read-write"
            ),
            (
                vec![
                    "postgres://u:p%40x@db1:5432/herald?sslmode=disable".to_owned(),
                    "postgres://u:p%40x@db2:6432/herald?sslmode=disable".to_owned(),
                ],
                true
            )
        );
        // Several servers imply read-write; hosts may omit the port, be IPv6.
        assert_eq!(
            servers("postgresql://db1,[::1]:5433/herald"),
            (
                vec![
                    "postgresql://db1/herald".to_owned(),
                    "postgresql://[::1]:5433/herald".to_owned(),
                ],
                true
            )
        );
        // One server, asked to be the primary.
        assert_eq!(
            servers("postgres://db/herald?target_session_attrs=primary"),
            (vec!["postgres://db/herald".to_owned()], true)
        );
    }

    #[test]
    fn a_database_url_herald_cannot_use_is_refused_without_showing_it() {
        for url in [
            "postgres://u:pg-pass-1@db1,,db2/herald",
            "postgres://u:pg-pass-1@db1,db2/herald?target_session_attrs=read-only",
            "postgres://u:pg-pass-1@db1,db2/herald?target_session_attrs=any",
            "postgres://u:pg-pass-1@db1:port,db2/herald",
        ] {
            let e = with(&[("HERALD_DATABASE_URL", url)]).unwrap_err().to_string();
            assert!(e.contains("HERALD_DATABASE_URL"), "{e}");
            assert!(!e.contains("pg-pass-1"), "{e}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = with(&[
            ("HERALD_JWT_SECRET", "hunter2"),
            ("HERALD_DATABASE_URL", "postgres://herald:pg-pass-1@db,db2/herald"),
            ("HERALD_REDIS_URL", "redis://:redis-pass-2@cache:6379"),
            ("HERALD_VAPID_PRIVATE_KEY", "vapid-key-3"),
            ("HERALD_VAPID_SUBJECT", "mailto:ops@example.com"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        for secret in ["hunter2", "pg-pass-1", "redis-pass-2", "vapid-key-3"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Nor in the error naming a bad Redis URL.
        let e = with(&[("HERALD_REDIS_URL", "redis//:redis-pass-2@cache")]).unwrap_err();
        assert!(!e.to_string().contains("redis-pass-2"), "{e}");
    }
}
