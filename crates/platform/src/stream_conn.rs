//! A lean HTTP/1.1 path for long-lived streams.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB header buffer for the whole
//! life of every connection, plus its connection state machine: for an SSE
//! stream that sits idle for hours, that is most of its memory. So the
//! server reads each connection's first request head itself (with
//! `httparse`, which hyper uses too). A `GET` for the stream path is answered
//! here: the request goes through the same axum router (same extractors,
//! middleware, problem+json refusals), and the response is written straight
//! to the socket — head first, then every body chunk as it comes, with no
//! transfer coding, delimited by closing the connection (RFC 9112 §6.3; what
//! `EventSource` and proxies expect of a stream). Nothing is buffered beyond
//! the chunk being written, and the read side only watches for the client
//! closing. Any other request is handed to hyper with the bytes already read
//! put back in front of the socket ([`Rewind`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{self, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Version};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::http::HttpLimits;

const MAX_HEADERS: usize = 64;

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
/// to hyper with what was read (hyper refuses it with 431, within what is left
/// of the same header timeout: see `connection_clock`).
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

/// Writes `response` to `tcp` and closes the connection when its body ends,
/// the client goes away, or `cut` is cancelled.
pub(crate) async fn respond(
    tcp: Arc<TcpStream>,
    version: Version,
    response: Response<Body>,
    cut: &CancellationToken,
) {
    let (parts, body) = response.into_parts();
    // A body of known length (a refusal) is sent with it; a stream is
    // delimited by the close.
    let exact = axum::body::HttpBody::size_hint(&body).exact();
    let head = head(version, parts.status, &parts.headers, exact);
    let mut body = body.into_data_stream();
    let ended = {
        // Made once for the connection, not per chunk: a stream writes one
        // chunk per event, and re-registering these each time showed up as a
        // tenth of the gateway's CPU.
        let cut = cut.cancelled();
        let gone = client_gone(&tcp);
        tokio::pin!(cut, gone);
        if write_all(&tcp, head, cut.as_mut()).await.is_err() {
            return;
        }
        loop {
            let chunk = tokio::select! {
                biased;
                _ = &mut cut => break false,
                _ = &mut gone => break false,
                chunk = body.next() => chunk,
            };
            match chunk {
                Some(Ok(chunk)) => {
                    if write_all(&tcp, chunk, cut.as_mut()).await.is_err() {
                        break false;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "stream body failed; closing");
                    break false;
                }
                None => break true,
            }
        }
    };
    // The body may have shared the socket (see `StreamSocket`): end it first,
    // so that nobody writes after the FIN.
    drop(body);
    if ended {
        // Every byte is queued: send FIN, then let the kernel deliver the rest.
        let _ = socket2::SockRef::from(&*tcp).shutdown(std::net::Shutdown::Write);
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

/// Writes all of `bytes`, giving up when the socket fails or `cut` fires
/// (a consumer that stopped reading blocks here until it is cut off). The
/// socket is usually writable: try first, wait only when it is full.
async fn write_all(
    tcp: &TcpStream,
    mut bytes: Bytes,
    mut cut: Pin<&mut WaitForCancellationFuture<'_>>,
) -> io::Result<()> {
    while bytes.has_remaining() {
        match tcp.try_write(&bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::select! {
                    biased;
                    _ = cut.as_mut() => return Err(io::ErrorKind::ConnectionAborted.into()),
                    ready = tcp.writable() => ready?,
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Resolves when the client closed its side (or the socket failed). Bytes
/// it sends meanwhile are read and dropped: a stream takes no more requests.
async fn client_gone(tcp: &TcpStream) {
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

/// A socket with bytes already read put back in front of it.
pub(crate) struct Rewind {
    prefix: Bytes,
    inner: TcpStream,
}

impl Rewind {
    pub(crate) fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
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
