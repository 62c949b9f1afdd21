//! A raw HTTP/1.1 client over a plain TCP socket, for tests that need to
//! control exactly what is sent and when bytes are read: a consumer that
//! pauses mid-stream, a client that sends its head one byte at a time or
//! never finishes it, bytes that are not UTF-8 in a header.

use std::net::SocketAddr;
use std::time::Duration;

use herald_domain::sse::{ParsedEvent, Parser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection, read only when the test asks.
pub struct RawConn {
    pub tcp: TcpStream,
    /// Everything read so far.
    pub received: Vec<u8>,
}

impl RawConn {
    /// Connects to `addr`. `recv_buffer`: a small receive buffer, so that a
    /// consumer that stops reading stops the server soon (the kernel would
    /// otherwise buffer megabytes on loopback).
    pub async fn connect(addr: SocketAddr, recv_buffer: Option<usize>) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n as u32).expect("SO_RCVBUF");
        }
        let tcp = socket.connect(addr).await.expect("connects");
        Self {
            tcp,
            received: Vec::new(),
        }
    }

    /// Sends raw bytes (a head, part of one, a body).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Reads until the peer closes or `timeout` passes. Returns whether it
    /// closed (EOF or reset) within the time.
    pub async fn read_until_closed(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.received.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Reads until `pred` holds for what was received, the peer closes or
    /// `timeout` passes; returns whether `pred` held.
    pub async fn read_until(&mut self, timeout: Duration, pred: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        while !pred(&self.received) {
            match tokio::time::timeout_at(deadline, self.tcp.read(&mut buf)).await {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return pred(&self.received),
                Ok(Ok(n)) => self.received.extend_from_slice(&buf[..n]),
            }
        }
        true
    }

    /// The status code of the response received, if its status line is in.
    pub fn status(&self) -> Option<u16> {
        let line = self.received.split(|b| *b == b'\n').next()?;
        let text = std::str::from_utf8(line).ok()?;
        text.split(' ').nth(1)?.trim().parse().ok()
    }
}

/// An SSE stream over a [`RawConn`]: the head is skipped, events parsed with
/// the conforming parser, and nothing is read unless asked.
pub struct RawStream {
    pub conn: RawConn,
    parser: Parser,
    head_done: bool,
    pending: std::collections::VecDeque<ParsedEvent>,
}

impl RawStream {
    /// Sends `GET {target}` with `headers` (each `Name: value`, raw bytes)
    /// and returns once the response head is in.
    pub async fn open(addr: SocketAddr, target: &str, headers: &[&[u8]], recv_buffer: Option<usize>) -> Self {
        let mut conn = RawConn::connect(addr, recv_buffer).await;
        let mut head =
            format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n").into_bytes();
        for h in headers {
            head.extend_from_slice(h);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        conn.send(&head).await.expect("request sent");
        let mut s = Self {
            conn,
            parser: Parser::new(),
            head_done: false,
            pending: Default::default(),
        };
        s.conn
            .read_until(Duration::from_secs(10), |b| {
                b.windows(4).any(|w| w == b"\r\n\r\n")
            })
            .await;
        s.take_head();
        s
    }

    fn take_head(&mut self) {
        if self.head_done {
            return;
        }
        if let Some(i) = self.conn.received.windows(4).position(|w| w == b"\r\n\r\n") {
            self.head_done = true;
            let rest = self.conn.received[i + 4..].to_vec();
            self.pending.extend(self.parser.feed(&rest));
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.conn.status()
    }

    /// The next event, or `None` on timeout or end of stream.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<ParsedEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match tokio::time::timeout_at(deadline, self.conn.tcp.read(&mut buf)).await {
                Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => {
                    let chunk = &buf[..n];
                    self.pending.extend(self.parser.feed(chunk));
                }
            }
        }
    }
}
