//! HTTP serving shared by the services: binding, the connection loop with
//! graceful shutdown and per-phase deadlines ([`clock`]), the lean path for
//! long-lived streams ([`lean`]), and the extractors and middleware whose
//! every refusal is problem+json.
//!
//! Every connection is served by hyper, except one whose first request is a
//! `GET` of the stream path when serving with [`serve_streams`]: that one
//! takes the lean path, which answers through the same router but writes
//! the response itself, with no per-connection buffers, and can hand the
//! socket over to the handler ([`TakeOver`]).

mod clock;
mod extract;
mod lean;
mod middleware;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use self::extract::{parse_json, BodyLimit, JsonBody, QueryParams};
pub use self::lean::{client_gone, TakeOver, TakeOverOffered};
pub use self::middleware::{
    cors, limit_request_head, problem_for_every_error, refuse_unstorable_url, MAX_HEADER_BYTES, MAX_URI_BYTES,
};

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
/// finishes may hold (see [`clock`]). Every request carries a copy as an
/// extension, for [`JsonBody`]'s body deadline.
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

/// Lets a handler close its own TCP connection at once, even while the
/// connection is blocked writing. Every request carries one. The gateway
/// cuts off a slow consumer with it: a response body that is not polled any
/// more (its client stopped reading) would never end by itself.
#[derive(Debug, Clone)]
pub struct ConnectionHandle(pub CancellationToken);

/// How long connections may take to finish after `shutdown` before they are
/// dropped. A healthy stream ends within milliseconds; this bounds the exit of
/// a process whose client stopped reading.
pub const CLOSE_BOUND: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown`.
///
/// On `shutdown` it stops accepting and closes the listening socket at once
/// (new connections are refused, so a load balancer fails over immediately
/// instead of waiting in the accept backlog of a process that will never
/// accept them), asks every connection to finish its response and close, and
/// returns when all have. Streams must end by themselves on `shutdown`;
/// connections still open [`CLOSE_BOUND`] later are dropped.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_connections(listener, router, limits, shutdown, None).await
}

/// Like [`serve`], and a `GET` of `stream_path` as a connection's first
/// request takes the lean path for long-lived streams (see [`lean`]).
pub async fn serve_streams(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    stream_path: &'static str,
) -> std::io::Result<()> {
    serve_connections(listener, router, limits, shutdown, Some(stream_path)).await
}

/// What every connection's task shares.
#[derive(Clone)]
struct Listener {
    router: Router,
    limits: HttpLimits,
    stream_path: Option<&'static str>,
    shutdown: CancellationToken,
    /// Cancelled when connections outlive [`CLOSE_BOUND`] after shutdown.
    force: CancellationToken,
    /// Every connection's task, for the shutdown to wait for.
    tracker: tokio_util::task::TaskTracker,
}

async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    stream_path: Option<&'static str>,
) -> std::io::Result<()> {
    let tracker = tokio_util::task::TaskTracker::new();
    let shared = Listener {
        router,
        limits,
        stream_path,
        shutdown: shutdown.clone(),
        force: CancellationToken::new(),
        tracker: tracker.clone(),
    };
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        tracker.spawn(serve_connection(shared.clone(), tcp));
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
        shared.force.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// One connection, from accept to close: the lean path if its first request
/// is a stream's, hyper otherwise.
async fn serve_connection(l: Listener, mut tcp: TcpStream) {
    let accepted = tokio::time::Instant::now();
    let close = CancellationToken::new();
    let mut prefix = Bytes::new();
    if let Some(path) = l.stream_path {
        // An idle connection that never sends a request ends on shutdown.
        let first = tokio::select! {
            first = lean::read_first(&mut tcp, path, &l.limits) => first,
            _ = l.shutdown.cancelled() => lean::First::Gone,
            _ = l.force.cancelled() => lean::First::Gone,
        };
        match first {
            lean::First::Gone => return,
            lean::First::Other(read) => prefix = read,
            lean::First::Stream(request) => {
                let serve = lean::serve(tcp, *request, l.router, l.limits, ConnectionHandle(close.clone()));
                // Dropping a future that owns the socket closes it.
                let owner = tokio::select! {
                    owner = serve => owner,
                    _ = close.cancelled() => None,
                    _ = l.force.cancelled() => None,
                };
                // The owner runs in a task of its own, which holds only it:
                // this one's state is sized for hyper, and an idle stream
                // would carry it for hours.
                if let Some(owner) = owner {
                    let force = l.force.clone();
                    l.tracker.spawn(async move {
                        tokio::select! {
                            _ = owner => {}
                            _ = close.cancelled() => {}
                            _ = force.cancelled() => {}
                        }
                    });
                }
                return;
            }
        }
    }
    serve_hyper(l, tcp, prefix, accepted, close).await;
}

/// Serves a connection with hyper, `prefix` (bytes the lean path already
/// read) first, under the connection's [`clock::Clock`].
async fn serve_hyper(
    l: Listener,
    tcp: TcpStream,
    prefix: Bytes,
    accepted: tokio::time::Instant,
    close: CancellationToken,
) {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt;

    use self::clock::{Clock, Finished, Watched};

    let limits = l.limits;
    // Bytes the lean path read are the start of the first head: its time
    // keeps running from accept.
    let clock = Clock::new(limits, accepted, !prefix.is_empty());
    let service = {
        let clock = clock.clone();
        let handle = ConnectionHandle(close.clone());
        let router = l.router;
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
    let io = TokioIo::new(Watched::new(prefix, tcp, clock.clone()));
    // No hyper timer: its header timeout cannot tell keep-alive idling from
    // a slow head; the clock bounds both.
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
            _ = l.force.cancelled() => break,
            _ = l.shutdown.cancelled(), if !draining => {
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
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
