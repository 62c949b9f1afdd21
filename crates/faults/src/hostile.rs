//! The hostile-client stage: strangers and careless clients attack every
//! service directly (not through the load balancer, whose own limits would
//! hide Herald's) while the steady load runs, and each attack class has a
//! bound that must hold:
//!
//! - `slow-head`: heads sent a byte at a time, never finished — every
//!   connection closed within the header timeout;
//! - `unfinished-big-head`: 300 KB of header lines, never finished — refused
//!   (431) or closed within the header timeout;
//! - `idle-keep-alive`: one request, then silence — still open past the
//!   header timeout, closed by the idle timeout;
//! - `slow-body`: a body trickling a byte at a time — 408 within the body
//!   timeout;
//! - `made-up-methods`: hundreds of 2000-letter methods — 4xx each, and
//!   `/metrics` does not grow;
//! - `odd-headers`: headers over 16 KiB (431), `Last-Event-ID` and
//!   `Authorization` that are not UTF-8 (a reset, a 401), an `Idempotency-Key`
//!   that is not visible ASCII (4xx) — problem+json, never a 5xx;
//! - `hostile-strings`: NUL in a JSON value and key, a query and a path
//!   parameter — a 422 each;
//! - `paused-consumer-during-retention`: a consumer resuming before a long
//!   history pauses mid-replay while retention prunes it — it must get an
//!   unbroken run, then `herald.reset`, never a silent gap.
//!
//! Meanwhile the regular clients must lose nothing: the phase's accounting
//! is the same as for any fault.

use std::time::{Duration, Instant};

use herald_domain::sse::Parser;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::{Config, HttpBounds};

/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(2500);

/// One attack on one target and how it went.
#[derive(Debug, Clone)]
pub struct AttackResult {
    pub attack: &'static str,
    pub target: String,
    pub detail: String,
    pub failure: Option<String>,
}

/// What the attacks need to know about the stack.
pub struct Targets<'a> {
    pub config: &'a Config,
    pub service_token: String,
    pub user_token: String,
    pub run_id: String,
}

/// Runs every attack; returns one result per attack and target.
pub async fn run(t: &Targets<'_>) -> Vec<AttackResult> {
    let bounds = t.config.http_bounds;
    let retention = tokio::spawn(paused_consumer_during_retention(
        t.config.direct_url("api").unwrap_or_default(),
        t.config.direct_url("gateway1").unwrap_or_default(),
        t.service_token.clone(),
        t.user_token.clone(),
        format!("hostile:{}", &t.run_id[t.run_id.len() - 8..]),
        t.config.retention,
    ));
    let mut out = Vec::new();
    for (name, url) in &t.config.direct {
        let Some(addr) = addr_of(url) else {
            out.push(failed(
                "targets",
                name,
                format!("not an http://host:port URL: {url}"),
            ));
            continue;
        };
        out.push(result("slow-head", name, slow_head(addr, bounds).await));
        out.push(result(
            "unfinished-big-head",
            name,
            unfinished_big_head(addr, bounds).await,
        ));
        out.push(result(
            "idle-keep-alive",
            name,
            idle_keep_alive(addr, bounds).await,
        ));
        out.push(result("made-up-methods", name, made_up_methods(url).await));
    }
    if let Some(api) = t.config.direct_url("api") {
        if let Some(addr) = addr_of(&api) {
            out.push(result(
                "slow-body",
                "api",
                slow_body(addr, bounds, &t.service_token).await,
            ));
        }
        out.push(result(
            "odd-headers",
            "api",
            odd_api_headers(&api, &t.service_token).await,
        ));
        out.push(result(
            "hostile-strings",
            "api",
            hostile_strings(&api, &t.service_token, &t.user_token).await,
        ));
    }
    for (name, url) in &t.config.direct {
        if name.starts_with("gateway") {
            out.push(result(
                "odd-headers",
                name,
                odd_stream_headers(url, &t.user_token).await,
            ));
        }
    }
    let r = retention
        .await
        .unwrap_or_else(|e| Err(format!("the attack panicked: {e}")));
    out.push(result("paused-consumer-during-retention", "gateway1", r));
    out
}

fn result(attack: &'static str, target: &str, r: Result<String, String>) -> AttackResult {
    match r {
        Ok(detail) => AttackResult {
            attack,
            target: target.to_owned(),
            detail,
            failure: None,
        },
        Err(e) => failed(attack, target, e),
    }
}

fn failed(attack: &'static str, target: &str, e: String) -> AttackResult {
    AttackResult {
        attack,
        target: target.to_owned(),
        detail: String::new(),
        failure: Some(e),
    }
}

fn addr_of(url: &str) -> Option<std::net::SocketAddr> {
    url.strip_prefix("http://")?.trim_end_matches('/').parse().ok()
}

/// Reads until the peer closes (or resets) the connection; `Err(took)` when
/// it was still open after `bound`. Returns what was read and when it closed.
async fn wait_closed(tcp: &mut TcpStream, bound: Duration) -> Result<(Vec<u8>, Duration), Duration> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at((started + bound).into(), tcp.read(&mut buf)).await {
            Err(_) => return Err(started.elapsed()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok((got, started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

async fn connect(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))
}

async fn slow_head(addr: std::net::SocketAddr, b: HttpBounds) -> Result<String, String> {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = connect(addr).await?;
                let started = Instant::now();
                let head = b"GET /v1/stream?topics=user:x HTTP/1.1\r\nHost: x\r\nX-Slow: ";
                let filler = std::iter::repeat(b'a');
                for byte in head.iter().copied().chain(filler) {
                    if started.elapsed() > b.header + SLACK || tcp.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    // Closed by the server meanwhile?
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut probe)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return Ok(started.elapsed()),
                        _ => {}
                    }
                }
                let left = (b.header + SLACK).saturating_sub(started.elapsed());
                match wait_closed(&mut tcp, left).await {
                    Ok(_) => Ok(started.elapsed()),
                    Err(_) => Err(format!("still open {:?} after connecting", started.elapsed())),
                }
            })
        })
        .collect();
    summarize(tasks, "trickled heads").await
}

/// Joins per-connection tasks that return how long the server took; fails
/// on the first that failed.
async fn summarize(
    tasks: Vec<tokio::task::JoinHandle<Result<Duration, String>>>,
    what: &str,
) -> Result<String, String> {
    let n = tasks.len();
    let mut worst = Duration::ZERO;
    for t in tasks {
        let took = t.await.map_err(|e| format!("a task panicked: {e}"))??;
        worst = worst.max(took);
    }
    Ok(format!(
        "{n} {what}, all closed, the last after {:.2}s",
        worst.as_secs_f64()
    ))
}

async fn unfinished_big_head(addr: std::net::SocketAddr, b: HttpBounds) -> Result<String, String> {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = connect(addr).await?;
                let started = Instant::now();
                let mut head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\n".to_vec();
                while head.len() < 300_000 {
                    head.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
                }
                let _ = tcp.write_all(&head).await; // the server may close mid-send
                let (got, _) = wait_closed(&mut tcp, b.header + SLACK)
                    .await
                    .map_err(|t| format!("still open {t:?} after sending"))?;
                match status_of(&got) {
                    None | Some(431) => Ok(started.elapsed()),
                    Some(s) => Err(format!("answered {s}, not 431")),
                }
            })
        })
        .collect();
    summarize(tasks, "300 KB heads").await
}

async fn idle_keep_alive(addr: std::net::SocketAddr, b: HttpBounds) -> Result<String, String> {
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            tokio::spawn(async move {
                let mut tcp = connect(addr).await?;
                tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                let started = Instant::now();
                let (got, took) = wait_closed(&mut tcp, b.idle + SLACK)
                    .await
                    .map_err(|t| format!("idle keep-alive still open after {t:?}"))?;
                if status_of(&got) != Some(200) {
                    return Err(format!("/healthz answered {:?}", status_of(&got)));
                }
                if took + Duration::from_millis(200) < b.idle {
                    return Err(format!("closed after {took:?}: before its idle timeout"));
                }
                Ok(started.elapsed())
            })
        })
        .collect();
    summarize(tasks, "idle keep-alive connections").await
}

async fn slow_body(addr: std::net::SocketAddr, b: HttpBounds, token: &str) -> Result<String, String> {
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let token = token.to_owned();
            tokio::spawn(async move {
                let mut tcp = connect(addr).await?;
                let body = format!(
                    r#"{{"topic":"hostile:body","type":"t","data":{{"pad":"{}"}}}}"#,
                    "x".repeat(200)
                );
                let head = format!(
                    "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                tcp.write_all(head.as_bytes())
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                let started = Instant::now();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                for byte in body.bytes() {
                    if started.elapsed() > b.body + SLACK || tcp.write_all(&[byte]).await.is_err() {
                        break;
                    }
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await
                    {
                        got.extend_from_slice(&buf[..n]);
                        if n == 0 || status_of(&got).is_some() {
                            break;
                        }
                    }
                }
                if status_of(&got).is_none() {
                    let left = (b.body + SLACK).saturating_sub(started.elapsed());
                    if let Ok((more, _)) = wait_closed(&mut tcp, left).await {
                        got.extend_from_slice(&more);
                    }
                }
                match status_of(&got) {
                    Some(408) if started.elapsed() <= b.body + SLACK => Ok(started.elapsed()),
                    other => Err(format!(
                        "answered {other:?} after {:?}, not 408 within the body timeout",
                        started.elapsed()
                    )),
                }
            })
        })
        .collect();
    summarize(tasks, "trickled bodies refused with 408").await
}

/// The number of labelled series on `/metrics` (lines with labels, histogram buckets
/// aside), and the longest label value.
async fn metrics_series(url: &str) -> Result<(usize, usize), String> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .map_err(|e| format!("/metrics: {e}"))?
        .text()
        .await
        .map_err(|e| format!("/metrics: {e}"))?;
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{') && !l.contains("le=\""))
        .count();
    let longest = text
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::len)
        .max()
        .unwrap_or(0);
    Ok((series, longest))
}

async fn made_up_methods(url: &str) -> Result<String, String> {
    let http = reqwest::Client::new();
    let (before, _) = metrics_series(url).await?;
    for i in 0..200 {
        let method = reqwest::Method::from_bytes(format!("X{}{i}", "Q".repeat(2000)).as_bytes())
            .map_err(|e| e.to_string())?;
        let status = http
            .request(method, format!("{url}/v1/events"))
            .send()
            .await
            .map_err(|e| format!("request {i}: {e}"))?
            .status()
            .as_u16();
        if !(400..500).contains(&status) {
            return Err(format!("a made-up method got {status}"));
        }
    }
    let (after, longest) = metrics_series(url).await?;
    // The other attacks running meanwhile may add a few legitimate series (a route
    // answering a new status); made-up methods must add none of their own.
    if after > before + 12 || longest > 64 {
        return Err(format!(
            "/metrics went from {before} to {after} series, longest label value {longest} bytes"
        ));
    }
    Ok(format!(
        "200 made-up methods: 4xx each; /metrics series {before} → {after}, longest label value {longest} bytes"
    ))
}

/// A raw request; returns the status and the response head.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut tcp = connect(addr).await?;
    tcp.write_all(request).await.map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline.into(), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let status = status_of(&got).ok_or_else(|| "no answer".to_owned())?;
    Ok((status, String::from_utf8_lossy(&got).into_owned()))
}

fn problem(head: &str) -> bool {
    head.to_ascii_lowercase()
        .contains("content-type: application/problem+json")
}

async fn odd_api_headers(api: &str, token: &str) -> Result<String, String> {
    let addr = addr_of(api).ok_or("bad api URL")?;
    let big = format!(
        "GET /v1/me/notifications HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    let mut cases: Vec<(&str, Vec<u8>, &[u16])> = vec![("20 KiB of headers", big.into_bytes(), &[431])];
    let mut bad_auth =
        b"GET /v1/me/notifications/counts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
            .to_vec();
    cases.push(("a non-UTF-8 Authorization", std::mem::take(&mut bad_auth), &[401]));
    let body = r#"{"topic":"hostile:k","type":"t","data":{}}"#;
    let mut key = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nIdempotency-Key: ",
        body.len()
    )
    .into_bytes();
    key.extend_from_slice(b"\x80\x81");
    key.extend_from_slice(format!("\r\n\r\n{body}").as_bytes());
    cases.push(("a non-ASCII Idempotency-Key", key, &[400, 422]));
    let mut seen = Vec::new();
    for (what, request, want) in cases {
        let (status, head) = raw(addr, &request).await?;
        if !want.contains(&status) || !problem(&head) {
            return Err(format!("{what}: {status} (want {want:?}, problem+json)"));
        }
        seen.push(format!("{what} → {status}"));
    }
    Ok(seen.join("; "))
}

async fn odd_stream_headers(gateway: &str, token: &str) -> Result<String, String> {
    let addr = addr_of(gateway).ok_or("bad gateway URL")?;
    let mut request = format!(
        "GET /v1/stream?topics=fault:hostile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: "
    )
    .into_bytes();
    request.extend_from_slice(b"\xff\xfe\r\n\r\n");
    let mut tcp = connect(addr).await?;
    tcp.write_all(&request).await.map_err(|e| format!("send: {e}"))?;
    let mut parser = Parser::new();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = match tokio::time::timeout_at(deadline.into(), tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err(format!("no event: {}", String::from_utf8_lossy(&got))),
        };
        got.extend_from_slice(&buf[..n]);
        let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        if status_of(&got) != Some(200) {
            return Err(format!("a non-UTF-8 Last-Event-ID got {:?}", status_of(&got)));
        }
        let events = parser.feed(&got[i + 4..]);
        got.truncate(i + 4);
        if let Some(e) = events.first() {
            return if e.event == "herald.reset" && e.data.contains("unparsable") {
                Ok("a non-UTF-8 Last-Event-ID → herald.reset (unparsable)".into())
            } else {
                Err(format!("a non-UTF-8 Last-Event-ID began with {e:?}"))
            };
        }
    }
}

async fn hostile_strings(api: &str, svc: &str, user: &str) -> Result<String, String> {
    let http = reqwest::Client::new();
    let cases = [
        (
            "POST",
            "/v1/events",
            Some(json!({"topic": "hostile:s", "type": "t", "data": {"a": "x\u{0}y"}})),
            svc,
            "data.a",
        ),
        (
            "POST",
            "/v1/events",
            Some(json!({"topic": "hostile:s", "type": "t", "data": {"k\u{0}": 1}})),
            svc,
            "data",
        ),
        (
            "POST",
            "/v1/notifications",
            Some(json!({"recipients": ["a"], "category": "c", "title": "t\u{0}"})),
            svc,
            "title",
        ),
        (
            "GET",
            "/v1/me/notifications?category=a%00b",
            None,
            user,
            "category",
        ),
        ("GET", "/v1/orders/a%00b", None, user, "order_id"),
    ];
    let n = cases.len();
    for (method, path, body, token, field) in cases {
        let mut req = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?,
                format!("{api}{path}"),
            )
            .bearer_auth(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status().as_u16();
        let p: Value = r.json().await.unwrap_or(Value::Null);
        if status != 422 || p["errors"][0]["field"] != field {
            return Err(format!("{method} {path}: {status} {p} (want 422 naming {field})"));
        }
    }
    Ok(format!("{n} NUL cases: 422 naming the field each"))
}

/// Publishes a long history on `topic`, opens a consumer before it that
/// pauses after a few events until retention has pruned it all, then reads
/// on: an unbroken run from the start, then `herald.reset`.
async fn paused_consumer_during_retention(
    api: String,
    gateway: String,
    svc: String,
    user: String,
    topic: String,
    retention: f64,
) -> Result<String, String> {
    const TOTAL: u64 = 3000;
    const PER_REQUEST: u64 = 60;
    let http = reqwest::Client::new();
    let pad = "x".repeat(4000);
    for start in (0..TOTAL).step_by(PER_REQUEST as usize) {
        let events: Vec<Value> = (start..start + PER_REQUEST)
            .map(|n| json!({"topic": topic, "type": "hostile.n", "data": {"n": n + 1, "pad": pad}}))
            .collect();
        // A 503 here is the database too busy to answer within the API's pool
        // wait (no failover runs in this stage, so nothing was written): retry
        // when it says.
        let mut attempts = 0;
        loop {
            let r = http
                .post(format!("{api}/v1/events/batch"))
                .bearer_auth(&svc)
                .json(&json!({ "events": events }))
                .send()
                .await
                .map_err(|e| format!("publishing the history: {e}"))?;
            match r.status().as_u16() {
                202 => break,
                503 if attempts < 10 => {
                    attempts += 1;
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1)
                        .min(5);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                }
                _ => return Err(format!("publishing the history: {}", r.status())),
            }
        }
    }
    let history = |after: i64, limit: u32| {
        let (http, api, topic, user) = (http.clone(), api.clone(), topic.clone(), user.clone());
        async move {
            http.get(format!(
                "{api}/v1/topics/{topic}/events?after={after}&limit={limit}"
            ))
            .bearer_auth(&user)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json::<Value>()
            .await
            .map_err(|e| e.to_string())
        }
    };
    // Sequenced: the first position and the last.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (first, last) = loop {
        let page = history(0, 1).await?;
        let first = page["events"][0]["seq"].as_i64();
        let tail = match first {
            Some(f) => history(f + TOTAL as i64 - 2, 1000).await?,
            None => Value::Null,
        };
        let last = tail["events"]
            .as_array()
            .and_then(|e| e.iter().rev().find(|e| e["data"]["n"] == TOTAL))
            .and_then(|e| e["seq"].as_i64());
        if let (Some(f), Some(l)) = (first, last) {
            break (f, l);
        }
        if Instant::now() > deadline {
            return Err("the history was not sequenced within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let addr = addr_of(&gateway).ok_or("bad gateway URL")?;
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .set_recv_buffer_size(16 * 1024)
        .map_err(|e| e.to_string())?;
    let mut tcp = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET /v1/stream?topics={topic} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user}\r\nLast-Event-ID: {}\r\n\r\n",
        first - 1
    );
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut reader = EventReader::default();
    let mut ns = Vec::new();
    while ns.len() < 10 {
        let e = reader.next(&mut tcp).await?;
        ns.push(e.data_n()?);
    }
    // Pause until retention has pruned the whole history.
    let deadline = Instant::now() + Duration::from_secs_f64(retention + 60.0);
    loop {
        let page = history(last - 1, 1).await?;
        if page["truncated"] == true {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("retention ({retention}s) never pruned the history"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reset = loop {
        let e = reader.next(&mut tcp).await?;
        if e.event == "herald.reset" {
            break e;
        }
        ns.push(e.data_n()?);
    };
    let expected: Vec<u64> = (1..=ns.len() as u64).collect();
    if ns != expected {
        return Err(format!(
            "a gap: received {} events, not an unbroken run from 1",
            ns.len()
        ));
    }
    if ns.len() as u64 >= TOTAL {
        return Err("the whole history arrived: the prune did not race the replay".into());
    }
    Ok(format!(
        "{} of {TOTAL} events in an unbroken run, then herald.reset ({}) at {}",
        ns.len(),
        reset.data,
        reset.id
    ))
}

#[derive(Default)]
struct EventReader {
    head_done: bool,
    buffered: Vec<u8>,
    parser: Parser,
    pending: std::collections::VecDeque<herald_domain::sse::ParsedEvent>,
}

trait DataN {
    fn data_n(&self) -> Result<u64, String>;
}

impl DataN for herald_domain::sse::ParsedEvent {
    fn data_n(&self) -> Result<u64, String> {
        let v: Value = serde_json::from_str(&self.data).map_err(|e| format!("bad frame: {e}"))?;
        v["data"]["n"]
            .as_u64()
            .ok_or_else(|| format!("not an event of the history: {}", self.event))
    }
}

impl EventReader {
    async fn next(&mut self, tcp: &mut TcpStream) -> Result<herald_domain::sse::ParsedEvent, String> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Ok(e);
            }
            let n = match tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return Err("the stream ended or stalled".into()),
            };
            if self.head_done {
                self.pending.extend(self.parser.feed(&buf[..n]));
                continue;
            }
            self.buffered.extend_from_slice(&buf[..n]);
            if let Some(i) = self.buffered.windows(4).position(|w| w == b"\r\n\r\n") {
                if status_of(&self.buffered) != Some(200) {
                    return Err(format!("the stream answered {:?}", status_of(&self.buffered)));
                }
                self.head_done = true;
                let rest = self.buffered.split_off(i + 4);
                self.pending.extend(self.parser.feed(&rest));
            }
        }
    }
}
