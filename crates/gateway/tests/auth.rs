//! Stream authentication and authorization: every refusal is problem+json
//! with its status before a single stream byte, and a stream never outlives
//! the token that opened it.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::{
    bad_tokens, redis_url, settings, sign, user_token, user_token_with_topics, SseClient, TestApp,
};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn refused(app: &TestApp, token: &str, topics: &str) -> (u16, String, Value) {
    let s = app.stream(token, topics, None).await;
    let status = s.status;
    let ct = s
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, s.problem().await)
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_tokens_are_401_problem_before_any_stream_byte(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for (case, token) in bad_tokens("alice") {
        let (status, ct, problem) = refused(&app, &token, "user:alice").await;
        assert_eq!(status, 401, "{case}");
        assert_eq!(ct, "application/problem+json", "{case}");
        assert_eq!(problem["status"], 401, "{case}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}: {problem}"
        );
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn foreign_topic_is_403_before_stream_opens(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = user_token_with_topics("alice", &["feed:*", "order:1"]);
    for topics in ["user:bob", "user:alice,user:bob", "order:2", "room:x", "feeds:x"] {
        let (status, ct, problem) = refused(&app, &token, topics).await;
        assert_eq!(status, 403, "{topics}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(problem["status"], 403);
    }
    // What the claim grants is accepted.
    let ok = app.stream(&token, "user:alice,feed:anything,order:1", None).await;
    assert_eq!(ok.status, 200);
}

#[sqlx::test(migrations = "../../migrations")]
async fn invalid_or_too_many_topics_are_400_naming_topics(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = herald_test_support::admin_token();
    let (status, _, problem) = refused(&app, &admin, "Bad Topic").await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "topics");
    let many: Vec<String> = (0..65).map(|i| format!("room:{i}")).collect();
    let (status, _, problem) = refused(&app, &admin, &many.join(",")).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("64"));
}

/// A stream token for alice, minted with a session token that expires at `exp`.
async fn mint_until(app: &TestApp, exp: u64) -> Value {
    let session = sign(&json!({"sub": "alice", "aud": "herald", "exp": exp}));
    reqwest::Client::new()
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(&session)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A stream token never outlives the token that asked for it, however long
/// the stream TTL: the stream then gets `herald.reauth` no later than the
/// session would have ended.
#[sqlx::test(migrations = "../../migrations")]
async fn a_stream_token_never_outlives_the_token_that_minted_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for left in [2u64, 30, 3600] {
        let minted = mint_until(&app, now + left).await;
        let exp = minted["expires_at"].as_u64().unwrap();
        assert!(exp <= now + left, "{left}s left: {minted}");
        assert!(
            minted["expires_in"].as_u64().unwrap() <= left.min(300),
            "{left}s left: {minted}"
        );
    }
    // A stream opened with a token whose session ends in 3 s is told to
    // reauthenticate before then.
    let minted = mint_until(&app, now + 3).await;
    let mut stream = SseClient::from_request(
        reqwest::Client::new()
            .get(format!("{}/v1/stream", app.gateway_url()))
            .query(&[("access_token", minted["token"].as_str().unwrap())]),
    )
    .await;
    assert_eq!(stream.status, 200);
    let started = std::time::Instant::now();
    let reauth = stream
        .next_event(Duration::from_secs(6))
        .await
        .expect("herald.reauth before the session ends");
    assert_eq!(reauth.event, "herald.reauth");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn stream_token_in_url_is_accepted_and_long_lived_token_in_url_is_401(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = minted["token"].as_str().unwrap();
    assert_eq!(minted["topics"], json!(["user:alice"]));
    assert!(minted["expires_in"].as_u64().unwrap() <= 300);

    let url = format!("{}/v1/stream", app.gateway_url());
    let ok = SseClient::from_request(http.get(&url).query(&[("access_token", token)])).await;
    assert_eq!(ok.status, 200);
    // The stream token carries only its topics.
    let other = SseClient::from_request(
        http.get(&url)
            .query(&[("access_token", token), ("topics", "user:bob")]),
    )
    .await;
    assert_eq!(other.status, 403);
    // A long-lived token never travels in a URL.
    let long = SseClient::from_request(
        http.get(&url)
            .query(&[("access_token", user_token("alice").as_str())]),
    )
    .await;
    assert_eq!(long.status, 401);
    assert!(long.problem().await["detail"]
        .as_str()
        .unwrap()
        .contains("stream token"));
    // And a stream token is refused by the API.
    let api = http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // Asking for a topic the caller may not read is 403.
    let denied = http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&json!({"topics": ["user:bob"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
}

#[sqlx::test(migrations = "../../migrations")]
async fn stream_sends_reauth_and_closes_when_its_token_expires(pool: PgPool) {
    let mut s = settings(&redis_url());
    // `herald.reauth` goes out a second before expiry: leave the first event
    // three seconds to arrive on a loaded machine before the stream closes.
    s.jwt.stream_token_ttl = Duration::from_secs(4);
    let app = TestApp::spawn_with(pool, s).await;
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("{}/v1/stream", app.gateway_url());
    let mut stream = SseClient::from_request(
        http.get(&url)
            .query(&[("access_token", minted["token"].as_str().unwrap())]),
    )
    .await;
    app.publish_ok("user:alice", 1).await;
    assert_eq!(stream.envelopes(1, Duration::from_secs(5)).await.len(), 1);
    let last = stream.last_event_id();
    // Published while the client is between tokens: must not be missed.
    let e = stream
        .next_event(Duration::from_secs(5))
        .await
        .expect("reauth before expiry");
    assert_eq!(e.event, "herald.reauth");
    assert!(
        stream.wait_closed(Duration::from_secs(2)).await,
        "the stream closes after reauth"
    );
    app.publish_ok("user:alice", 2).await;

    let fresh: Value = http
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token("alice"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut resumed = SseClient::from_request(
        http.get(&url)
            .query(&[("access_token", fresh["token"].as_str().unwrap())])
            .header("Last-Event-ID", last),
    )
    .await;
    let got = resumed.envelopes(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].data["n"], 2, "no event missed across the token renewal");
}

/// Mints a stream token as `user_token` for `topics`.
async fn mint(app: &TestApp, user_token: &str, topics: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/stream-tokens", app.api_url()))
        .bearer_auth(user_token)
        .json(&json!({ "topics": topics }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The topics a stream token was minted for are all it may open, whatever
/// else its subject could read: not the subject's own inbox, not an order
/// the subject is the customer of, not a topic its claims would grant.
#[sqlx::test(migrations = "../../migrations")]
async fn a_stream_token_is_a_ceiling_whatever_its_subject_may_read(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{}/v1/orders/N-1", app.api_url()))
        .bearer_auth(herald_test_support::service_token())
        .json(&json!({"customer_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let alice = user_token_with_topics("alice", &["feed:*"]);
    // Alice herself may open all three.
    assert_eq!(
        app.stream(&alice, "user:alice,order:N-1,feed:x", None)
            .await
            .status,
        200
    );

    let inbox_only = mint(&app, &alice, json!(["user:alice"])).await;
    let feed_only = mint(&app, &alice, json!(["feed:x"])).await;
    let url = format!("{}/v1/stream", app.gateway_url());
    for (token, topics, want) in [
        (&inbox_only, "user:alice", 200),
        (&inbox_only, "order:N-1", 403),
        (&inbox_only, "feed:x", 403),
        (&inbox_only, "user:alice,order:N-1", 403),
        (&feed_only, "feed:x", 200),
        (&feed_only, "feed:y", 403),
        (&feed_only, "user:alice", 403),
    ] {
        let s = SseClient::from_request(
            http.get(&url)
                .query(&[("access_token", token.as_str()), ("topics", topics)]),
        )
        .await;
        assert_eq!(s.status, want, "stream token for {topics}");
    }
    // The customer rule still mints a token for the order, which opens it.
    let order = mint(&app, &user_token("alice"), json!(["order:N-1"])).await;
    let s = SseClient::from_request(http.get(&url).query(&[("access_token", order.as_str())])).await;
    assert_eq!(s.status, 200);
}

/// Every token names its caller: without a `sub` (or with one that is empty
/// or carries control characters) it is refused at the API and the gateway
/// alike, instead of sharing one idempotency namespace, publish rate and
/// stream bucket with every other such token.
#[sqlx::test(migrations = "../../migrations")]
async fn every_token_has_an_identity_or_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let exp = herald_test_support::unix_now() + 600;
    for claims in [
        json!({"aud": "herald", "exp": exp, "scope": "publish admin"}),
        json!({"sub": "", "aud": "herald", "exp": exp, "scope": "publish"}),
        json!({"sub": "a\u{0}b", "aud": "herald", "exp": exp}),
        json!({"sub": "a\nb", "aud": "herald", "exp": exp}),
        json!({"sub": "x".repeat(256), "aud": "herald", "exp": exp}),
    ] {
        let token = herald_test_support::sign(&claims);
        let api = http
            .post(format!("{}/v1/events", app.api_url()))
            .bearer_auth(&token)
            .json(&json!({"topic": "room:x", "type": "t", "data": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 401, "api: {claims}");
        let (status, _, problem) = refused(&app, &token, "room:x").await;
        assert_eq!(status, 401, "gateway: {claims}");
        assert!(problem["detail"].as_str().unwrap().contains("sub"), "{problem}");
    }
}
