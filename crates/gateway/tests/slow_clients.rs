//! No listener lets a stranger pin a connection: a head that never
//! finishes, one sent a byte at a time, one far too big, a keep-alive
//! connection left idle, a body that trickles — each is closed (or refused)
//! within its configured bound, on the API, on the gateway (its lean
//! stream path and hyper's path alike) and on the worker's health listener.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_test_support::raw::RawConn;
use herald_test_support::{redis_url, service_token, settings, TestApp};
use sqlx::PgPool;

const HEADER: Duration = Duration::from_millis(800);
const IDLE: Duration = Duration::from_millis(2000);
const BODY: Duration = Duration::from_millis(800);
/// Scheduling slack on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);

async fn app(pool: PgPool) -> TestApp {
    let mut s = settings(&redis_url());
    s.http.header_timeout = HEADER;
    s.http.idle_timeout = IDLE;
    s.http.body_timeout = BODY;
    TestApp::spawn_with(pool, s).await
}

/// Every listener of a deployment: the API, the gateway and the worker's
/// health listener (`/healthz`, `/readyz`, `/metrics`), which serves through
/// the same `http::serve` and is as reachable.
fn listeners(app: &TestApp) -> [(&'static str, SocketAddr); 3] {
    let worker = app.worker.as_ref().expect("the worker runs").addr;
    [
        ("api", app.api.addr),
        ("gateway", app.gateway.addr),
        ("worker", worker),
    ]
}

/// Closed by the server within `bound` (and not much sooner than `floor`).
async fn closed_within(conn: &mut RawConn, floor: Duration, bound: Duration, what: &str) {
    let started = Instant::now();
    assert!(
        conn.read_until_closed(bound + SLACK).await,
        "{what}: still open after {:?}",
        bound + SLACK
    );
    let took = started.elapsed();
    assert!(
        took + Duration::from_millis(50) >= floor,
        "{what}: closed after {took:?}, before {floor:?}"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_listener_lets_a_stranger_pin_a_connection_with_a_head_that_never_ends(pool: PgPool) {
    let app = app(pool).await;
    for (name, addr) in listeners(&app) {
        // Nothing at all.
        let mut silent = RawConn::connect(addr, None).await;
        closed_within(&mut silent, HEADER, HEADER, &format!("{name}: silent")).await;

        // A byte at a time, never finishing: the bound runs from the start.
        let mut trickle = RawConn::connect(addr, None).await;
        let started = Instant::now();
        let head = b"GET /v1/stream?topics=user:alice HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for b in head
            .iter()
            .chain(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter())
        {
            if trickle.send(&[*b]).await.is_err() {
                break;
            }
            if started.elapsed() > HEADER + SLACK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = (HEADER + SLACK).saturating_sub(started.elapsed());
        assert!(
            trickle.read_until_closed(left).await,
            "{name}: a trickled head held the connection past the header timeout"
        );

        // 300 KB of header lines that never end: refused or closed, quickly.
        let mut big = RawConn::connect(addr, None).await;
        let mut head = b"GET /v1/stream HTTP/1.1\r\nHost: x\r\n".to_vec();
        while head.len() < 300_000 {
            head.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        let _ = big.send(&head).await; // the server may close mid-send
        closed_within(
            &mut big,
            Duration::ZERO,
            HEADER,
            &format!("{name}: oversized head"),
        )
        .await;
        if let Some(status) = big.status() {
            assert_eq!(status, 431, "{name}: an oversized head is 431");
        }
    }
}

/// Forty strangers each sending 300 KB of headers and never finishing hold
/// nothing for long: every one is gone within the header timeout.
#[sqlx::test(migrations = "../../migrations")]
async fn forty_unfinished_heads_are_all_gone_within_the_header_timeout(pool: PgPool) {
    let app = app(pool).await;
    for (name, addr) in listeners(&app) {
        let mut conns = Vec::new();
        for _ in 0..40 {
            let mut c = RawConn::connect(addr, None).await;
            let mut head = b"POST /v1/events HTTP/1.1\r\nHost: x\r\n".to_vec();
            head.extend_from_slice(&b"X-A: b\r\n".repeat(40_000)[..300_000 - head.len()]);
            let _ = c.send(&head).await;
            conns.push(c);
        }
        let started = Instant::now();
        for (i, c) in conns.iter_mut().enumerate() {
            let left = (HEADER + SLACK).saturating_sub(started.elapsed());
            assert!(
                c.read_until_closed(left).await,
                "{name}: connection {i} still open"
            );
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_listener_keeps_an_idle_keep_alive_connection_past_its_idle_timeout(pool: PgPool) {
    let app = app(pool).await;
    for (name, addr) in listeners(&app) {
        let mut conn = RawConn::connect(addr, None).await;
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            conn.read_until(Duration::from_secs(5), |b| b.ends_with(b"ok"))
                .await,
            "{name}: /healthz answered"
        );
        // Idle longer than the header timeout: still open (idling is not a
        // slow head), then closed at the idle timeout.
        closed_within(&mut conn, IDLE, IDLE, &format!("{name}: idle keep-alive")).await;

        // A second request in time keeps it open, with its own bounds.
        let mut conn = RawConn::connect(addr, None).await;
        for _ in 0..3 {
            conn.received.clear();
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert!(
                conn.read_until(Duration::from_secs(5), |b| b.ends_with(b"ok"))
                    .await
            );
            tokio::time::sleep(HEADER + Duration::from_millis(200)).await;
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_trickling_body_is_refused_at_the_body_timeout(pool: PgPool) {
    let app = app(pool).await;
    let token = service_token();
    let body =
        br#"{"topic":"user:alice","type":"t","data":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
    let mut conn = RawConn::connect(app.api.addr, None).await;
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.send(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for b in body.iter() {
        if conn.send(&[*b]).await.is_err() || conn.status().is_some() {
            break;
        }
        if started.elapsed() > BODY + SLACK {
            break;
        }
        // Nothing to read yet, except the answer.
        let _ = conn
            .read_until(Duration::from_millis(50), |b| !b.is_empty())
            .await;
    }
    assert!(
        conn.read_until(BODY + SLACK, |b| b.windows(4).any(|w| w == b"\r\n\r\n"))
            .await,
        "an answer within the body timeout"
    );
    assert_eq!(conn.status(), Some(408));
    let text = String::from_utf8_lossy(&conn.received).to_string();
    assert!(text.contains("application/problem+json"), "{text}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing written");
}
