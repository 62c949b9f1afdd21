//! Just enough HTTP/1.1 over raw tokio sockets: a keep-alive request/response
//! exchange for publishing, and a streaming response body (chunked or not)
//! for SSE. No HTTP client per stream: a stream is one `TcpStream`, one read
//! buffer and a few state machines.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::sse::find;
use crate::stamp::Reader;

/// `http://host:port` of one server.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The `Host:` header.
    pub host: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{url}`: only http:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = authority
            .parse()
            .map_err(|e| format!("`{url}`: expected http://IP:PORT ({e})"))?;
        Ok(Self {
            addr,
            host: authority.to_owned(),
        })
    }
}

/// Connects, from `source` (an address on the loopback, port chosen by the
/// kernel at connect) when given: each source address has its own ephemeral
/// ports, so tens of thousands of streams do not run out of them.
pub async fn connect(to: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = match source {
        None => TcpStream::connect(to).await?,
        Some(ip) => bound(ip)?.connect(to).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A socket bound to `ip` whose port is left to its `connect`: a `bind` to
/// port 0 would search past every port in TIME_WAIT (see `sockopt`).
fn bound(ip: IpAddr) -> io::Result<TcpSocket> {
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    crate::sockopt::bind_address_no_port(&socket)?;
    socket.bind(SocketAddr::new(ip, 0))?;
    Ok(socket)
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(usize),
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
}

/// Parses a response head if `buf` holds all of it; returns it and its length.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let Some(end) = find(buf, b"\r\n\r\n", 0) else {
        if buf.len() > 64 * 1024 {
            return Err("response head larger than 64 KiB".into());
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let n = value
                .parse()
                .map_err(|_| format!("bad content-length `{value}`"))?;
            framing = Framing::Length(n);
        }
    }
    if framing == Framing::UntilClose && (status == 204 || status == 304 || status < 200) {
        framing = Framing::Length(0);
    }
    Ok(Some((Head { status, framing }, end + 4)))
}

/// Decodes a body incrementally: chunked transfer coding, a length, or
/// everything until the connection closes.
#[derive(Debug)]
pub struct BodyDecoder {
    framing: Framing,
    state: Chunk,
    remaining: usize,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `in_ext` after a `;`.
    Size {
        in_ext: bool,
        digits: u8,
    },
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last (zero) chunk: the rest is trailers, which end the body.
    Trailer,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> Self {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        Self {
            framing,
            state: Chunk::Size {
                in_ext: false,
                digits: 0,
            },
            remaining,
            done: matches!(framing, Framing::Length(0)),
        }
    }

    /// The body is complete (the zero chunk, or the whole length, arrived).
    pub fn done(&self) -> bool {
        self.done
    }

    /// Feeds wire bytes; passes decoded body bytes to `out`. Returns how many
    /// input bytes belong to this body (the rest would be a next response).
    pub fn feed(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<usize, String> {
        match self.framing {
            Framing::UntilClose => {
                out(input);
                Ok(input.len())
            }
            Framing::Length(_) => {
                let take = self.remaining.min(input.len());
                out(&input[..take]);
                self.remaining -= take;
                self.done = self.remaining == 0;
                Ok(take)
            }
            Framing::Chunked => self.feed_chunked(input, out),
        }
    }

    fn feed_chunked(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<usize, String> {
        let mut i = 0;
        while i < input.len() && !self.done {
            match self.state {
                Chunk::Size { in_ext, digits } => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = Chunk::SizeLf,
                        b'\n' => self.end_size(digits)?,
                        b';' => self.state = Chunk::Size { in_ext: true, digits },
                        _ if in_ext => {}
                        _ => {
                            let d = (b as char).to_digit(16).ok_or("bad chunk size")?;
                            if digits >= 15 {
                                return Err("chunk size too large".into());
                            }
                            self.remaining = self.remaining * 16 + d as usize;
                            self.state = Chunk::Size {
                                in_ext,
                                digits: digits + 1,
                            };
                        }
                    }
                }
                Chunk::SizeLf => {
                    if input[i] != b'\n' {
                        return Err("bad chunk size line".into());
                    }
                    i += 1;
                    self.end_size(1)?;
                }
                Chunk::Data => {
                    let take = self.remaining.min(input.len() - i);
                    out(&input[i..i + take]);
                    i += take;
                    self.remaining -= take;
                    if self.remaining == 0 {
                        self.state = Chunk::DataCr;
                    }
                }
                Chunk::DataCr => {
                    self.state = match input[i] {
                        b'\r' => Chunk::DataLf,
                        b'\n' => Chunk::Size {
                            in_ext: false,
                            digits: 0,
                        },
                        _ => return Err("chunk data not followed by CRLF".into()),
                    };
                    i += 1;
                }
                Chunk::DataLf => {
                    if input[i] != b'\n' {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    i += 1;
                    self.state = Chunk::Size {
                        in_ext: false,
                        digits: 0,
                    };
                }
                Chunk::Trailer => {
                    // Trailers are not used by either server; the body is over.
                    self.done = true;
                    i = input.len();
                }
            }
        }
        Ok(i)
    }

    fn end_size(&mut self, digits: u8) -> Result<(), String> {
        if digits == 0 {
            return Err("empty chunk size".into());
        }
        if self.remaining == 0 {
            self.state = Chunk::Trailer;
            self.done = true;
        } else {
            self.state = Chunk::Data;
        }
        Ok(())
    }
}

/// One response to a request on a keep-alive connection.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// When its last bytes arrived ([`now_us`](crate::stream::now_us); the
    /// kernel's stamp on a stamped connection).
    pub received_us: u64,
}

/// A keep-alive HTTP/1.1 connection for `POST` (and `GET`) requests, one at a time.
pub struct KeepAlive {
    endpoint: Endpoint,
    source: Option<IpAddr>,
    conn: Option<Reader>,
    stamped: bool,
    buf: Vec<u8>,
    request: Vec<u8>,
    /// Connections opened (1 + reconnects after the server closed one).
    pub connects: u64,
}

impl KeepAlive {
    pub fn new(endpoint: Endpoint, source: Option<IpAddr>) -> Self {
        Self {
            endpoint,
            source,
            conn: None,
            stamped: false,
            buf: Vec::with_capacity(4096),
            request: Vec::with_capacity(1024),
            connects: 0,
        }
    }

    /// Takes the kernel's arrival stamps for [`Response::received_us`].
    pub fn stamped(mut self, on: bool) -> Self {
        self.stamped = on;
        self
    }

    /// Sends `POST path` with a JSON body and reads the whole response. A
    /// connection the server closed while idle is replaced once; any other
    /// failure is returned (the caller counts it: the event may or may not
    /// have been accepted, which the checks then see as a missing event).
    pub async fn post(&mut self, path: &str, authorization: &str, body: &[u8]) -> io::Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                self.endpoint.host,
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body);
        self.send().await
    }

    /// Sends `GET path` (no credentials: Nchan's channel info) and reads the
    /// whole response, like [`KeepAlive::post`].
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request.clear();
        self.request.extend_from_slice(
            format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.endpoint.host).as_bytes(),
        );
        self.send().await
    }

    async fn send(&mut self) -> io::Result<Response> {
        let fresh = self.conn.is_none();
        match self.exchange().await {
            Ok(r) => Ok(r),
            // A reused connection that died before answering anything: the
            // server closed it while idle, so the request never arrived.
            Err(e) if !fresh && e.kind() == io::ErrorKind::ConnectionAborted => {
                self.conn = None;
                self.exchange().await
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self) -> io::Result<Response> {
        if self.conn.is_none() {
            let tcp = connect(self.endpoint.addr, self.source).await?;
            self.conn = Some(Reader::new(tcp, self.stamped)?);
            self.connects += 1;
            self.buf.clear();
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let untouched = || io::Error::new(io::ErrorKind::ConnectionAborted, "closed before answering");
        if conn.write_all(&self.request).await.is_err() {
            return Err(untouched());
        }
        let mut chunk = [0u8; 8192];
        let mut received_us = crate::stream::now_us();
        let head = loop {
            match parse_head(&self.buf).map_err(io::Error::other)? {
                Some(h) => break h,
                None => {
                    let n = match conn.read(&mut chunk).await {
                        Ok((n, at)) => {
                            received_us = at;
                            n
                        }
                        Err(e) if self.buf.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                            return Err(untouched());
                        }
                        Err(e) => return Err(e),
                    };
                    if n == 0 {
                        return Err(if self.buf.is_empty() {
                            untouched()
                        } else {
                            io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-response")
                        });
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
        };
        let (head, head_len) = head;
        let mut decoder = BodyDecoder::new(head.framing);
        let mut body = Vec::new();
        let mut used = head_len;
        loop {
            let consumed = decoder
                .feed(&self.buf[used..], &mut |b| body.extend_from_slice(b))
                .map_err(io::Error::other)?;
            used += consumed;
            if decoder.done() {
                break;
            }
            self.buf.drain(..used);
            used = 0;
            let (n, at) = conn.read(&mut chunk).await?;
            received_us = at;
            if n == 0 {
                if head.framing == Framing::UntilClose {
                    self.conn = None;
                    break;
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-body"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.drain(..used.min(self.buf.len()));
        Ok(Response {
            status: head.status,
            body,
            received_us,
        })
    }
}

/// Writes a `GET` for an SSE stream and reads the response head. Returns the
/// connection, the head and whatever body bytes arrived with it.
pub async fn open_stream(
    endpoint: &Endpoint,
    source: Option<IpAddr>,
    path: &str,
    authorization: &str,
    last_event_id: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<(TcpStream, Head, Vec<u8>)> {
    let work = async {
        let mut conn = connect(endpoint.addr, source).await?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {authorization}\r\nAccept: text/event-stream\r\n",
            endpoint.host
        )
        .into_bytes();
        if let Some(id) = last_event_id {
            req.extend_from_slice(b"Last-Event-ID: ");
            req.extend_from_slice(id);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        conn.write_all(&req).await?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((head, len)) = parse_head(&buf).map_err(io::Error::other)? {
                buf.drain(..len);
                return Ok((conn, head, buf));
            }
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before the head",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response head in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_source_port_is_chosen_at_connect_not_at_bind() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let source: IpAddr = "127.0.0.2".parse().unwrap();
        // Bound, not connected: the address is taken, no port yet (a port
        // here would mean `bind` searched for one, past every TIME_WAIT).
        let socket = bound(source).unwrap();
        assert_eq!(socket.local_addr().unwrap(), SocketAddr::new(source, 0));
        let mut ports = std::collections::BTreeSet::new();
        let mut held = Vec::new();
        for _ in 0..20 {
            let conn = connect(to, Some(source)).await.unwrap();
            let local = conn.local_addr().unwrap();
            assert_eq!(local.ip(), source);
            assert_ne!(local.port(), 0);
            ports.insert(local.port());
            held.push((conn, listener.accept().await.unwrap()));
        }
        // Twenty open connections from one address: twenty ports.
        assert_eq!(ports.len(), 20, "{ports:?}");
    }

    fn decode(framing: Framing, parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = BodyDecoder::new(framing);
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut |b| out.extend_from_slice(b)).unwrap();
        }
        (out, d.done())
    }

    #[test]
    fn decodes_chunked_bodies_split_anywhere() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for i in 0..=wire.len() {
            let (out, done) = decode(Framing::Chunked, &[&wire[..i], &wire[i..]]);
            assert_eq!(out, b"hello, world", "split at {i}");
            assert!(done);
        }
        let (out, done) = decode(Framing::Chunked, &[b"a\r\n0123456789\r\n"]);
        assert_eq!(out, b"0123456789");
        assert!(!done);
    }

    #[test]
    fn parses_heads() {
        let (h, len) = parse_head(b"HTTP/1.1 202 Accepted\r\ncontent-length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.framing, len), (202, Framing::Length(3), 44));
        let (h, _) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert_eq!(
            decode(Framing::Length(3), &[b"ab", b"cd"]),
            (b"abc".to_vec(), true)
        );
    }
}
