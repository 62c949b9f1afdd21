//! Configurable limits, each a problem+json with the right status.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_test_support::{redis_url, service_token, settings, user_token, TestApp};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrations = "../../migrations")]
async fn open_streams_are_limited_per_user_and_per_gateway(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.gateway.max_streams_per_user = 2;
    s.gateway.max_streams = 3;
    let app = TestApp::spawn_with(pool, s).await;
    let a1 = app.stream(&user_token("alice"), "", None).await;
    let a2 = app.stream(&user_token("alice"), "", None).await;
    assert_eq!((a1.status, a2.status), (200, 200));
    let a3 = app.stream(&user_token("alice"), "", None).await;
    assert_eq!(a3.status, 429);
    assert!(a3.headers.contains_key("retry-after"));
    assert_eq!(a3.headers["content-type"], "application/problem+json");
    let b1 = app.stream(&user_token("bob"), "", None).await;
    assert_eq!(b1.status, 200);
    let c1 = app.stream(&user_token("carol"), "", None).await;
    assert_eq!(c1.status, 503, "the gateway is full");
    assert!(c1.headers.contains_key("retry-after"));
}

#[sqlx::test(migrations = "../../migrations")]
async fn publish_rate_per_service_token_is_429_with_retry_after(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.api.publish_rate = 5;
    let app = TestApp::spawn_with(pool.clone(), s).await;
    let started = std::time::Instant::now();
    let mut accepted = 0u64;
    let mut refused = 0u64;
    let mut retry_after = None;
    for n in 0..20 {
        let r = app.publish("user:alice", "t.n", json!({ "n": n })).await;
        match r.status().as_u16() {
            202 => accepted += 1,
            429 => {
                refused += 1;
                retry_after = r.headers().get("retry-after").cloned();
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // A burst of 5, then 5 per second: however slow this machine is, no more
    // than that gets through.
    let allowed = 5 + (started.elapsed().as_secs_f64() * 5.0).ceil() as u64;
    assert!(accepted >= 5, "the burst is accepted ({accepted})");
    assert!(
        accepted <= allowed,
        "{accepted} accepted, at most {allowed} allowed"
    );
    assert!(refused > 0, "publishing 20 at once exceeds 5/s");
    assert!(retry_after.is_some(), "429 carries Retry-After");
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written as u64, accepted, "a refused publish writes nothing");
}

#[sqlx::test(migrations = "../../migrations")]
async fn oversized_urls_and_headers_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let long = "x".repeat(9 * 1024);
    for base in [app.api_url(), app.gateway_url()] {
        let r = http
            .get(format!("{base}/healthz?pad={long}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 414, "{base}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = http
            .get(format!("{base}/healthz"))
            .header("x-pad", "y".repeat(17 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 431, "{base}");
    }
    let r = http
        .post(format!("{}/v1/events", app.api_url()))
        .bearer_auth(service_token())
        .json(&json!({"topic": "user:a", "type": "t", "data": "z".repeat(300 * 1024)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}
