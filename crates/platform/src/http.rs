//! HTTP plumbing shared by the services: binding, serving with graceful
//! shutdown, and a JSON body extractor whose every rejection is problem+json
//! naming the field at fault.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::Router;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::CorsOrigins;
use crate::problem::{FieldError, Problem};

/// The accept queue length asked of the kernel (capped by
/// `net.core.somaxconn`). Reconnect storms open a thousand connections at
/// once; with the standard library's 128, the kernel drops the SYNs beyond it
/// and each client waits a full second for its retransmission.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (port 0 picks a free port; see `local_addr`) with a deep
/// accept queue (see [`LISTEN_BACKLOG`]).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Timeouts and size bounds of an HTTP listener: what a client that never
/// finishes may hold (see `connection_clock`). Every request carries a copy
/// as an extension, for [`JsonBody`]'s body deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From accept (or the first byte of a later request) to a complete
    /// request head (`HERALD_HTTP_HEADER_TIMEOUT`).
    pub header_timeout: Duration,
    /// Keep-alive: from the end of a response to the first byte of the next
    /// request (`HERALD_HTTP_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// The whole request body, once its head is in (`HERALD_HTTP_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// The largest request head, request line and headers together
    /// (`HERALD_HTTP_MAX_HEAD_BYTES`); beyond it the answer is 431.
    pub max_head_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(30),
            max_head_bytes: 32 * 1024,
        }
    }
}

/// The smallest `max_head_bytes` (hyper's own floor for its read buffer).
pub const MIN_HEAD_BYTES: usize = 8 * 1024;
/// The largest `max_head_bytes` accepted.
pub const MAX_HEAD_BYTES_LIMIT: usize = 1024 * 1024;

/// Serves `router` on `listener` until `shutdown` is cancelled and every open
/// connection has finished (at most [`CLOSE_BOUND`] later). Streams must end by
/// themselves on `shutdown`. Every request carries a [`ConnectionHandle`] (see
/// [`serve_with_connection_handles`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with_connection_handles(listener, router, limits, shutdown).await
}

/// The CORS layer every service puts outermost, from `HERALD_CORS_ORIGINS`.
///
/// Allowed origins get `Access-Control-Allow-Origin` (their own origin, or `*`
/// with [`CorsOrigins::Any`]) on every answer, refusals included, so a page can
/// read a 401 or a 403. Preflights are answered for `Authorization`,
/// `Content-Type`, `Idempotency-Key` and `Last-Event-ID` (a browser's
/// `EventSource` sends it on reconnect), cached 10 minutes; `Retry-After` and
/// `Idempotent-Replayed` are exposed to scripts. Every answer carries
/// `Vary: Origin` (a shared cache must not hand one origin's answer to
/// another). A disallowed origin gets no `Access-Control-Allow-Origin`: the
/// browser then keeps the answer from the page (the request is still served
/// as usual, so a misconfigured origin logs no error). Credentials (cookies)
/// are never allowed: Herald reads none. Any `OPTIONS` request is answered
/// here as a preflight.
pub fn cors(origins: &CorsOrigins) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    match origins {
        CorsOrigins::None => layer.allow_origin(AllowOrigin::list(std::iter::empty())),
        CorsOrigins::Any => layer.allow_origin(AllowOrigin::any()),
        CorsOrigins::List(list) => layer.allow_origin(AllowOrigin::list(
            list.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        )),
    }
}

/// The request body limit (`HERALD_MAX_BODY_BYTES`) as a request extension,
/// so that [`JsonBody`]'s 413 can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Rejections: 413 over the body limit (naming it, when
/// a [`BodyLimit`] extension is present), 415 without a JSON content type,
/// 400 for malformed JSON, 422 naming the field for well-formed JSON of the
/// wrong shape.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !json_type {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Expected a JSON body",
            )
            .detail("send `Content-Type: application/json`"));
        }
        let size_limit = req.extensions().get::<BodyLimit>().copied();
        // The whole body within the listener's body timeout: a client
        // trickling a byte at a time must not hold the request forever.
        let limit = req
            .extensions()
            .get::<HttpLimits>()
            .map_or(HttpLimits::default().body_timeout, |l| l.body_timeout);
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                Problem::new(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "The request body took too long",
                )
                .detail(format!(
                    "the whole body must arrive within {} s (HERALD_HTTP_BODY_TIMEOUT)",
                    limit.as_secs_f64()
                ))
            })?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "The request body is too large",
                )
                .detail(match size_limit {
                    Some(BodyLimit(max)) => format!(
                        "the request body is larger than {max} bytes, the limit set by HERALD_MAX_BODY_BYTES"
                    ),
                    None => rejection.body_text(),
                })
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
        // Every request body is an object; serde would also accept a struct
        // written as an array, which only confuses clients.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => return Err(Problem::invalid_field("body", "must be a JSON object")),
            None => return Err(Problem::bad_request("the body is empty; send a JSON object")),
        }
        refuse_unstorable(&bytes)?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Refuses a JSON body holding a string Postgres cannot store (a NUL, which
/// JSON can only carry as the escape `\u0000`), key or value, at any depth,
/// with a 422 naming its path. Bodies without that escape cost one scan.
fn refuse_unstorable(bytes: &[u8]) -> Result<(), Problem> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    // Malformed JSON is left to `parse_json`'s 400.
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match herald_domain::text::unstorable_path(&value, "") {
        Some(path) => {
            let field = if path.is_empty() { "body".to_owned() } else { path };
            Err(Problem::invalid(vec![FieldError::new(
                field,
                herald_domain::text::NUL_MESSAGE,
            )]))
        }
        None => Ok(()),
    }
}

/// Refuses a request whose URL carries a NUL in a path or query parameter
/// (`%00`, which Postgres cannot store in any column), before any handler
/// sees it: a 422 naming the parameter (by the route template's name for a
/// path segment). Apply with `Router::layer(from_fn(refuse_unstorable_url))`
/// so the matched route is known.
pub async fn refuse_unstorable_url(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let path_field = uri.path().split('/').enumerate().find_map(|(i, segment)| {
        percent_encoding::percent_decode_str(segment)
            .any(|b| b == 0)
            .then(|| {
                let template = req.extensions().get::<axum::extract::MatchedPath>();
                template
                    .and_then(|t| t.as_str().split('/').nth(i))
                    .and_then(|t| t.strip_prefix('{')?.strip_suffix('}').map(str::to_owned))
                    .unwrap_or_else(|| "path".to_owned())
            })
    });
    let query_field = || {
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).find_map(|(k, v)| {
            if !herald_domain::text::storable(&k) {
                Some("query".to_owned())
            } else if !herald_domain::text::storable(&v) {
                Some(k.into_owned())
            } else {
                None
            }
        })
    };
    if let Some(field) = path_field.or_else(query_field) {
        return Problem::invalid(vec![FieldError::new(field, herald_domain::text::NUL_MESSAGE)])
            .into_response();
    }
    next.run(req).await
}

/// Parses JSON into `T`, mapping errors to problems that name the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io
                if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() =>
            {
                Problem::bad_request(format!("the body is not valid JSON: {inner}"))
            }
            // Well-formed JSON that serde still reports as a syntax error: a
            // value of the wrong kind (an object where an enum's string goes).
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => {
                let field = if path == "." { "body".to_owned() } else { path };
                Problem::invalid(vec![FieldError::new(field, "has the wrong type or value")])
            }
            serde_json::error::Category::Data => {
                let message = strip_position(&inner.to_string());
                let field = if path == "." {
                    missing_field(&message).unwrap_or_else(|| "body".into())
                } else {
                    match missing_field(&message) {
                        Some(f) => format!("{path}.{f}"),
                        None => path,
                    }
                };
                Problem::invalid(vec![FieldError::new(field, message)])
            }
        }
    })
}

/// serde reports a missing field at its parent's path; name the field itself.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        topic: herald_domain::Topic,
        n: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let p = parse_json::<Body>(br#"{"topic":"Bad","n":1}"#).unwrap_err();
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "topic");
        let p = parse_json::<Body>(br#"{"topic":"a:b"}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "n");
        let p = parse_json::<Body>(br#"{"topic":"a:b","n":"x"}"#).unwrap_err();
        assert_eq!(p.errors[0].field, "n");
        let p = parse_json::<Body>(br#"{"topic":"a:b","n":1,"zz":1}"#).unwrap_err();
        assert!(p.errors[0].message.contains("zz"), "{:?}", p.errors);
        let p = parse_json::<Body>(br#"{"topic":"#).unwrap_err();
        assert_eq!(p.status, 400);
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct WithEnum {
            status: herald_domain::order::OrderStatus,
        }
        for body in [
            &br#"{"status": -5}"#[..],
            br#"{"status": {}}"#,
            br#"{"status": []}"#,
        ] {
            let p = parse_json::<WithEnum>(body).unwrap_err();
            assert_eq!(p.status, 422, "{}", String::from_utf8_lossy(body));
            assert_eq!(p.errors[0].field, "status");
        }
    }
}

/// Query-string parameters. A bad value is a 422 naming the parameter.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de)
            .map(QueryParams)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = match missing_field(&message) {
                    Some(f) => f,
                    None if path == "." => "query".into(),
                    None => path,
                };
                Problem::invalid(vec![FieldError::new(field, message)])
            })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Turns every error response that is not already problem+json (axum's own
/// 404/405/400 rejections, for instance) into one, keeping its status, its
/// text as `detail` and headers such as `Allow`. Apply with
/// `axum::middleware::map_response(problem_for_every_error)`.
pub async fn problem_for_every_error(res: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let title = status.canonical_reason().unwrap_or("Error");
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    let mut problem = Problem::new(status, &slug, title);
    if !text.is_empty() && status.is_client_error() {
        problem = problem.detail(text);
    }
    let mut out = problem.into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Lets a handler close its own TCP connection at once, even while the
/// connection is blocked writing (see [`serve_with_connection_handles`]).
#[derive(Debug, Clone)]
pub struct ConnectionHandle(pub CancellationToken);

/// The socket of a stream served on the lean path (see `stream_conn`), for a
/// handler that writes to it directly while its body is parked: the gateway's
/// hub writes live events from its own task, without waking the stream's.
/// Whoever writes must never overlap the body's own writes: the response
/// head and every chunk the body returns are written before the body is
/// polled again, so a body that lets others write only while it is parked
/// (and stops them, under a lock, before it returns a chunk) is safe.
/// Absent on hyper's path.
#[derive(Debug, Clone)]
pub struct StreamSocket(pub std::sync::Arc<tokio::net::TcpStream>);

/// How long connections may take to finish after `shutdown` before they are
/// dropped. A healthy stream ends within milliseconds; this bounds the exit of
/// a process whose client stopped reading (its response body is never polled
/// again, so it would never end by itself).
pub const CLOSE_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// Like [`serve`], but every request carries a [`ConnectionHandle`]
/// extension: cancelling it drops the connection immediately. The gateway
/// uses it to cut off a slow consumer whose socket no longer drains — the
/// response body is not polled then, so ending the body would never be seen.
///
/// On `shutdown` it stops accepting and closes the listening socket at once
/// (new connections are refused, so a load balancer fails over immediately
/// instead of waiting in the accept backlog of a process that will never
/// accept them), asks every connection to finish its response and close, and
/// returns when all have. Connections still open [`CLOSE_BOUND`] later are
/// dropped.
pub async fn serve_with_connection_handles(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_connections(listener, router, limits, shutdown, None).await
}

/// Like [`serve_with_connection_handles`], and a `GET` of `stream_path` as a
/// connection's first request takes the lean path for long-lived streams
/// (see `stream_conn`): the same router answers it, but the response is
/// written straight to the socket and delimited by closing the connection,
/// without hyper's per-connection buffers. The stream's body must end by
/// itself on `shutdown`.
pub async fn serve_streams(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    stream_path: &'static str,
) -> std::io::Result<()> {
    serve_connections(listener, router, limits, shutdown, Some(stream_path)).await
}

async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    stream_path: Option<&'static str>,
) -> std::io::Result<()> {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt;

    use crate::connection_clock::{Clock, Finished, Watched};
    use crate::stream_conn::{self, First, Rewind};

    let tracker = tokio_util::task::TaskTracker::new();
    // Cancelled when connections outlive `CLOSE_BOUND` after shutdown.
    let force = CancellationToken::new();
    loop {
        let mut tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let close = CancellationToken::new();
        let router = router.clone();
        let shutdown = shutdown.clone();
        let force = force.clone();
        tracker.spawn(async move {
            let accepted = tokio::time::Instant::now();
            let handle = ConnectionHandle(close.clone());
            let prefix = match stream_path {
                None => Bytes::new(),
                Some(path) => {
                    // An idle connection that never sends a request ends on shutdown.
                    let first = tokio::select! {
                        first = stream_conn::read_first(&mut tcp, path, &limits) => first,
                        _ = shutdown.cancelled() => First::Gone,
                        _ = force.cancelled() => First::Gone,
                    };
                    match first {
                        First::Gone => return,
                        First::Other(prefix) => prefix,
                        First::Stream(req) => {
                            let mut req = *req;
                            let version = req.version();
                            let tcp = std::sync::Arc::new(tcp);
                            req.extensions_mut().insert(handle);
                            req.extensions_mut().insert(limits);
                            req.extensions_mut().insert(StreamSocket(tcp.clone()));
                            let Ok(response) = router.oneshot(req).await;
                            let cut = close.clone();
                            tokio::select! {
                                _ = stream_conn::respond(tcp, version, response, &cut) => {}
                                _ = force.cancelled() => {}
                            }
                            return;
                        }
                    }
                }
            };
            // Bytes the lean path read are the start of the first head: its
            // time keeps running from accept.
            let clock = Clock::new(limits, accepted, !prefix.is_empty());
            let service = {
                let clock = clock.clone();
                hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                    req.extensions_mut().insert(handle.clone());
                    req.extensions_mut().insert(limits);
                    clock.request_started();
                    let clock = clock.clone();
                    let response = router.clone().oneshot(req.map(axum::body::Body::new));
                    async move {
                        let Ok(response) = response.await;
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| axum::body::Body::new(Finished::new(body, clock))),
                        )
                    }
                })
            };
            let io = TokioIo::new(Watched::new(Rewind::new(prefix, tcp), clock.clone()));
            // No hyper timer: its header timeout cannot tell keep-alive idling
            // from a slow head; the clock bounds both.
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(limits.max_head_bytes.max(MIN_HEAD_BYTES))
                .serve_connection(io, service);
            tokio::pin!(conn);
            let mut draining = false;
            loop {
                let deadline = clock.deadline();
                tokio::select! {
                    _ = conn.as_mut() => break,
                    // Dropping `conn` closes the socket, whatever it was doing.
                    _ = close.cancelled() => break,
                    _ = force.cancelled() => break,
                    _ = shutdown.cancelled(), if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    // A phase changed: look at the deadline again.
                    _ = clock.changed.notified() => {}
                    _ = sleep_until_some(deadline) => {
                        if clock.deadline().is_some_and(|d| d <= tokio::time::Instant::now()) {
                            break; // idle or a head too slow: close
                        }
                    }
                }
            }
        });
    }
    // Not accepting any more: close the socket so connection attempts are
    // refused now rather than queued until the process exits.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(CLOSE_BOUND, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            bound = ?CLOSE_BOUND,
            "connections still open after shutdown; closing them"
        );
        force.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The longest request target accepted (414 beyond).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes accepted (431 beyond).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses oversized URLs (414) and header sections (431) with problem+json.
/// Apply with `axum::middleware::from_fn(limit_request_head)`.
pub async fn limit_request_head(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let uri_len = req.uri().to_string().len();
    if uri_len > MAX_URI_BYTES {
        return Problem::new(StatusCode::URI_TOO_LONG, "uri-too-long", "The URL is too long")
            .detail(format!(
                "the request target must be at most {MAX_URI_BYTES} bytes"
            ))
            .into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "The request headers are too large",
        )
        .detail(format!("headers must total at most {MAX_HEADER_BYTES} bytes"))
        .into_response();
    }
    next.run(req).await
}
