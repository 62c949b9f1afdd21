//! A gateway that cannot reach Postgres still relays what the bus carries: live
//! delivery needs only the bus, and nothing in the hub's relay loop may wait for
//! the database (the head check, the seeding of new subscriptions' windows).
//! Postgres "out of reach" is a proxy that stops forwarding with every socket left
//! open, as across a network partition (scripts/fault-suite's
//! gateway-postgres-partition does it with a real one).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_test_support::{start_gateway, user_token, SseClient, TestApp};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

/// A TCP proxy to `upstream` that, once stalled, holds every byte in either
/// direction (connections stay open, nothing arrives).
struct StallingProxy {
    addr: SocketAddr,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || pipe(from, to, &flag));
                }
            }
        });
        Self { addr, stalled }
    }

    fn stall(&self) {
        self.stalled.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_hub_relays_live_while_postgres_does_not_answer(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let options = pool.connect_options();
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = StallingProxy::start(upstream);
    let through_proxy = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(
            (*options)
                .clone()
                .host(&proxy.addr.ip().to_string())
                .port(proxy.addr.port()),
        )
        .await
        .unwrap();
    let gateway = start_gateway(&app.settings, through_proxy, &app.bus).await;
    let token = user_token("alice");
    let mut s = SseClient::connect(&gateway.url(), &token, "user:alice", None).await;
    assert_eq!(s.status, 200);
    app.publish_ok("user:alice", 1).await;
    assert_eq!(s.envelopes(1, WAIT).await.len(), 1, "before the stall: {}", s.raw);

    proxy.stall();
    // Long enough for the hub's head check (every second) to be waiting on Postgres.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A new topic makes the hub subscribe and want the head for its window; the
    // stream itself cannot open (it reads the head), but must not hold up the hub.
    let url = gateway.url();
    let bob =
        tokio::spawn(async move { SseClient::connect(&url, &user_token("bob"), "user:bob", None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..3 {
        let r = app.publish("user:alice", "demo.n", json!({ "n": n })).await;
        assert_eq!(r.status(), 202);
    }
    let got = s.envelopes(3, Duration::from_secs(5)).await;
    assert_eq!(
        got.len(),
        3,
        "live events must arrive while Postgres does not answer: {}",
        s.raw
    );
    bob.abort();
}
