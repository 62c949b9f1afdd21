//! Conformance of the lean path (`http::lean`), over real sockets: what it
//! takes, what it leaves to hyper, and how it frames and ends a response.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use herald_platform::http::{serve_streams, HttpLimits, TakeOver, TakeOverOffered};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const STREAM: &str = "/v1/stream";

/// `GET /v1/stream`: an endless body of `tick` lines, marked with the path
/// that served it; `?refuse` a sized refusal; `?take` a [`TakeOver`] whose
/// owner echoes one line from the client, then ends.
async fn stream(offered: Option<Extension<TakeOverOffered>>, uri: axum::http::Uri) -> Response {
    let path = if offered.is_some() { "lean" } else { "hyper" };
    let query = uri.query().unwrap_or("");
    if query == "refuse" {
        return (StatusCode::UNAUTHORIZED, "no token here").into_response();
    }
    let mut res = if query == "take" && offered.is_some() {
        let mut res = Response::new(Body::empty());
        res.extensions_mut()
            .insert(TakeOver::new(|mut tcp: TcpStream| async move {
                tcp.write_all(b"owner: send a line\n").await.unwrap();
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while tcp.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                    line.push(byte[0]);
                }
                tcp.write_all(b"owner got: ").await.unwrap();
                tcp.write_all(&line).await.unwrap();
                tcp.write_all(b"\n").await.unwrap();
            }));
        res
    } else {
        let ticks = futures_util::stream::unfold(0u32, |n| async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some((Ok::<_, std::convert::Infallible>(format!("tick {n}\n")), n + 1))
        });
        Response::new(Body::from_stream(ticks))
    };
    res.headers_mut().insert("x-path", HeaderValue::from_static(path));
    res
}

async fn start(limits: HttpLimits) -> (SocketAddr, CancellationToken) {
    let router = Router::new()
        .route(STREAM, get(stream))
        .route("/healthz", get(|| async { "ok" }));
    let listener = herald_platform::http::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve_streams(listener, router, limits, stop.clone(), STREAM));
    (addr, stop)
}

/// Everything the server sends within `wait` (or until it closes), and
/// whether it closed.
async fn read_for(tcp: &mut TcpStream, wait: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn head_of(response: &str) -> &str {
    response.split("\r\n\r\n").next().unwrap()
}

#[tokio::test]
async fn a_stream_is_close_delimited_without_transfer_coding() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The head in three writes: it is read until complete.
    for part in ["GET /v1/str", "eam HTTP/1.1\r\nHost: x\r\n", "\r\n"] {
        tcp.write_all(part.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (got, closed) = read_for(&mut tcp, Duration::from_millis(400)).await;
    assert!(!closed, "a stream stays open");
    let head = head_of(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{got}");
    assert!(head.contains("x-path: lean"), "{got}");
    assert!(head.contains("connection: close"), "{got}");
    assert!(
        !head.contains("content-length") && !head.contains("transfer-encoding"),
        "{got}"
    );
    assert!(
        got.contains("\r\n\r\ntick 0\ntick 1\n"),
        "the body as written: {got}"
    );
}

#[tokio::test]
async fn a_refusal_is_sized_and_then_closed() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/stream?refuse HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_for(&mut tcp, Duration::from_secs(2)).await;
    assert!(closed, "{got}");
    assert!(
        got.starts_with("HTTP/1.0 401 Unauthorized\r\n"),
        "the request's version: {got}"
    );
    assert!(
        got.to_ascii_lowercase().contains("content-length: 13\r\n"),
        "{got}"
    );
    assert!(got.ends_with("\r\n\r\nno token here"), "{got}");
}

/// A request pipelined behind a stream's is never answered (a stream takes
/// no more requests); requests pipelined behind anything else all are, by
/// hyper, with the bytes the lean path read replayed in front.
#[tokio::test]
async fn pipelined_requests() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_for(&mut tcp, Duration::from_millis(400)).await;
    assert_eq!(got.matches("HTTP/1.1 ").count(), 1, "{got}");
    assert!(got.contains("tick 0"), "{got}");

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_for(&mut tcp, Duration::from_millis(400)).await;
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 3, "{got}");
    assert_eq!(got.matches("\r\n\r\nok").count(), 2, "{got}");
    assert!(
        got.contains("x-path: hyper"),
        "a later stream request is hyper's: {got}"
    );
}

/// A body announced with `Transfer-Encoding` (or `Content-Length`) is
/// hyper's to frame: the request goes there, and hyper answers it.
#[tokio::test]
async fn body_framing_goes_to_hyper() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    for request in [
        &b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
        b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let (got, _) = read_for(&mut tcp, Duration::from_millis(400)).await;
        let head = head_of(&got).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok"), "{got}");
        assert!(head.contains("x-path: hyper"), "{got}");
        assert!(
            head.contains("transfer-encoding: chunked"),
            "hyper frames the stream: {got}"
        );
    }
    // Both: `Transfer-Encoding` wins and the connection closes after the
    // answer (RFC 9112 §6.1); a final coding other than chunked leaves the
    // length unknown, which is a 400 (§6.3). hyper's rules, not ours.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_for(&mut tcp, Duration::from_secs(2)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
    assert!(closed, "{got}");
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_for(&mut tcp, Duration::from_secs(2)).await;
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(closed, "{got}");
}

#[tokio::test]
async fn an_oversized_head_is_refused_with_431() {
    let limits = HttpLimits {
        max_head_bytes: 8 * 1024,
        ..HttpLimits::default()
    };
    let (addr, _stop) = start(limits).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let big = format!(
        "GET /v1/stream HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    // The server may close before reading all of it.
    let _ = tcp.write_all(big.as_bytes()).await;
    let (got, closed) = read_for(&mut tcp, Duration::from_secs(3)).await;
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    assert!(closed, "{got}");
}

/// A client that closes its side after the request ends its stream, as it
/// would with hyper (`half_close` off): the server closes too, at once.
#[tokio::test]
async fn a_half_closed_client_ends_its_stream() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_for(&mut tcp, Duration::from_millis(200)).await;
    assert!(got.contains("tick 0"), "{got}");
    tcp.shutdown().await.unwrap();
    let (_, closed) = read_for(&mut tcp, Duration::from_secs(2)).await;
    assert!(closed, "the server closed after the client's FIN");
}

/// A [`TakeOver`] owns the socket after the head: it reads what the client
/// sends and writes its own bytes, and the connection ends with its future.
#[tokio::test]
async fn a_take_over_owns_the_socket_after_the_head() {
    let (addr, _stop) = start(HttpLimits::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /v1/stream?take HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_for(&mut tcp, Duration::from_millis(300)).await;
    assert!(!closed, "{got}");
    let head = head_of(&got).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200 ok") && head.contains("connection: close"),
        "{got}"
    );
    assert!(
        !head.contains("content-length"),
        "the owner decides the length: {got}"
    );
    assert!(got.ends_with("\r\n\r\nowner: send a line\n"), "{got}");
    tcp.write_all(b"hello\n").await.unwrap();
    let (got, closed) = read_for(&mut tcp, Duration::from_secs(2)).await;
    assert_eq!(got, "owner got: hello\n");
    assert!(closed, "the connection ends with the owner");
}
