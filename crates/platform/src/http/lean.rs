//! The lean path: a small HTTP/1.1 server for long-lived streams.
//!
//! # Why it exists
//!
//! hyper keeps an 8 KiB read buffer (its floor: `max_buf_size` refuses
//! less) and its connection state for the whole life of every connection:
//! for an SSE stream that sits idle for hours, that is most of its memory.
//! And a body served by hyper is written only by hyper's task, so every
//! event wakes every stream's task. `scripts/bench` measured both, streams
//! served by hyper against this path: over twice the memory per idle stream
//! and a third more gateway CPU per event (BENCHMARKS.md, "Why streams
//! bypass hyper").
//!
//! # What it speaks
//!
//! Only a connection's *first* request, and only a `GET` of the stream path
//! without body framing (`Content-Length`, `Transfer-Encoding`), whose head
//! `httparse` (what hyper uses) reads complete within the header timeout and
//! the head size bound. Anything else (another method or path, a body, a
//! malformed or oversized head) goes to hyper with the bytes already read
//! replayed first, so hyper answers it exactly as it would have (400, 431,
//! keep-alive and all).
//!
//! The request goes through the same router as every other, so the same
//! extractors, middleware and problem+json refusals apply, and it carries
//! [`TakeOverOffered`]. The response is written without transfer coding: a
//! body of known length (a refusal) with `content-length`, anything else
//! delimited by closing the connection (RFC 9112 §6.3; what `EventSource`
//! and proxies expect of a stream), and `connection: close` either way. A
//! response carrying a [`TakeOver`] gets the socket right after its head and
//! owns it from then on. The connection takes no more requests: bytes the
//! client sends after its head (a pipelined request) are read and dropped,
//! and the client closing its side ends the response (as with hyper, whose
//! `half_close` is off).

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{self, HeaderMap, HeaderName, HeaderValue, Method, Request, Version};
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ConnectionHandle, HttpLimits};

const MAX_HEADERS: usize = 64;

/// Marks a request served on the lean path: its handler may answer with a
/// [`TakeOver`].
#[derive(Debug, Clone, Copy)]
pub struct TakeOverOffered;

type Owner = Box<dyn FnOnce(TcpStream) -> BoxFuture<'static, ()> + Send>;

/// A response extension by which a handler takes its connection over: once
/// the response head is written, the socket is handed to the closure, which
/// owns it (and so is its only reader and writer) until its future ends and
/// the connection closes. Honoured on the lean path only (see
/// [`TakeOverOffered`]); elsewhere the response's body is sent as usual.
#[derive(Clone)]
pub struct TakeOver(Arc<Mutex<Option<Owner>>>);

impl TakeOver {
    pub fn new<F, Fut>(owner: F) -> Self
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let owner: Owner = Box::new(move |tcp| owner(tcp).boxed());
        Self(Arc::new(Mutex::new(Some(owner))))
    }

    /// The owner, once.
    fn take(&self) -> Option<Owner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// What reading the first request head came to.
pub(crate) enum First {
    /// A request for the stream path, ready for the router.
    Stream(Box<Request<Body>>),
    /// Anything else: serve with hyper, replaying these bytes first.
    Other(Bytes),
    /// The client went away or never finished its head.
    Gone,
}

/// Reads the first request head of `tcp`, for at most the listener's header
/// timeout and head size. A head that is not complete at the size bound goes
/// to hyper with what was read (hyper refuses it with 431, within what is
/// left of the same header timeout: see `clock`).
pub(crate) async fn read_first(tcp: &mut TcpStream, stream_path: &str, limits: &HttpLimits) -> First {
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + limits.header_timeout;
    loop {
        let read = tokio::select! {
            r = tcp.read_buf(&mut buf) => r,
            _ = tokio::time::sleep_until(deadline) => return First::Gone,
        };
        match read {
            Ok(0) | Err(_) => return First::Gone,
            Ok(_) => {}
        }
        match parse(&buf, stream_path) {
            Parsed::Stream(req) => return First::Stream(req),
            Parsed::Other => return First::Other(buf.freeze()),
            Parsed::Partial if buf.len() >= limits.max_head_bytes => return First::Other(buf.freeze()),
            Parsed::Partial => {}
        }
    }
}

enum Parsed {
    Stream(Box<Request<Body>>),
    Other,
    Partial,
}

fn parse(buf: &[u8], stream_path: &str) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other, // hyper answers 400 & co.
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" || path != stream_path {
        return Parsed::Other;
    }
    let mut map = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        map.append(name, value);
    }
    // A GET with a body is legal and pointless; leave its framing to hyper.
    if map.contains_key(http::header::CONTENT_LENGTH) || map.contains_key(http::header::TRANSFER_ENCODING) {
        return Parsed::Other;
    }
    let Ok(uri) = target.parse::<http::Uri>() else {
        return Parsed::Other;
    };
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = map;
    Parsed::Stream(Box::new(request))
}

/// Answers `request` through `router` and writes the response to `tcp`. A
/// response that takes the connection over returns its owner's future,
/// which the caller runs as long as it likes (the connection closes when it
/// ends); any other closes when its body ends.
pub(crate) async fn serve(
    mut tcp: TcpStream,
    mut request: Request<Body>,
    router: Router,
    limits: HttpLimits,
    handle: ConnectionHandle,
) -> Option<BoxFuture<'static, ()>> {
    use tower::ServiceExt;
    let version = request.version();
    request.extensions_mut().insert(handle);
    request.extensions_mut().insert(limits);
    request.extensions_mut().insert(TakeOverOffered);
    let Ok(response) = router.oneshot(request).await;
    let (mut parts, body) = response.into_parts();
    let owner = parts.extensions.remove::<TakeOver>().and_then(|t| t.take());
    // A body of known length (a refusal) is sent with it; a stream is
    // delimited by the close.
    let exact = match owner {
        Some(_) => None,
        None => axum::body::HttpBody::size_hint(&body).exact(),
    };
    let head = head(version, parts.status, &parts.headers, exact);
    drop(parts);
    if write_all(&tcp, head).await.is_err() {
        return None;
    }
    match owner {
        Some(owner) => Some(owner(tcp)),
        None => {
            if send_body(&tcp, body).await {
                // Every byte is queued: send FIN; the kernel delivers the rest.
                let _ = tcp.shutdown().await;
            }
            None
        }
    }
}

/// Writes every chunk of `body` as it comes, until it ends (`true`), fails,
/// or the client goes away.
async fn send_body(tcp: &TcpStream, body: Body) -> bool {
    let mut body = body.into_data_stream();
    // Made once for the connection, not per chunk.
    let gone = client_gone(tcp);
    tokio::pin!(gone);
    loop {
        let chunk = tokio::select! {
            biased;
            _ = &mut gone => return false,
            chunk = body.next() => chunk,
        };
        match chunk {
            Some(Ok(chunk)) => {
                if write_all(tcp, chunk).await.is_err() {
                    return false;
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "stream body failed; closing");
                return false;
            }
            None => return true,
        }
    }
}

fn head(version: Version, status: http::StatusCode, headers: &HeaderMap, exact: Option<u64>) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == http::header::CONNECTION
            || name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(len) = exact {
        out.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    Bytes::from(out)
}

/// Writes all of `bytes`. The socket is usually writable: try first, wait
/// only when it is full (a consumer that stopped reading waits here until
/// its connection is cut).
async fn write_all(tcp: &TcpStream, mut bytes: Bytes) -> io::Result<()> {
    while bytes.has_remaining() {
        match tcp.try_write(&bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves when the client closed its side (or the socket failed). Bytes
/// it sends meanwhile are read and dropped: a stream takes no more requests.
pub async fn client_gone(tcp: &TcpStream) {
    loop {
        if tcp.readable().await.is_err() {
            return;
        }
        let mut scratch = [0u8; 64];
        match tcp.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    #[test]
    fn a_stream_get_is_taken_and_everything_else_left_to_hyper() {
        let ok = b"GET /v1/stream?topics=a:b HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n";
        let Parsed::Stream(req) = parse(ok, "/v1/stream") else {
            panic!("not taken")
        };
        assert_eq!(req.uri().query(), Some("topics=a:b"));
        assert_eq!(req.headers()["last-event-id"], "7");
        assert_eq!(req.version(), Version::HTTP_11);
        assert!(matches!(parse(&ok[..20], "/v1/stream"), Parsed::Partial));
        for other in [
            &b"POST /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"GET /v1/streams HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /v1/stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET /v1/stream HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"\x16\x03\x01 not http",
        ] {
            assert!(matches!(parse(other, "/v1/stream"), Parsed::Other), "{other:?}");
        }
    }

    #[test]
    fn the_head_is_close_delimited_for_streams_and_sized_for_refusals() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/event-stream"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        let stream = head(Version::HTTP_11, http::StatusCode::OK, &h, None);
        assert_eq!(
            &stream[..],
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
        );
        let refusal = head(
            Version::HTTP_10,
            http::StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            Some(12),
        );
        assert_eq!(
            &refusal[..],
            b"HTTP/1.0 401 Unauthorized\r\ncontent-length: 12\r\nconnection: close\r\n\r\n"
        );
    }
}
