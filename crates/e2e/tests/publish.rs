//! Publishing over REST: validation, authorization, idempotency, history.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::{
    admin_token, bad_tokens, service_token, user_token, user_token_with_topics, TestApp,
};
use serde_json::{json, Value};
use sqlx::PgPool;

async fn post(app: &TestApp, token: &str, body: reqwest::Body, content_type: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/events", app.api_url()))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status >= 400 {
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "status {status}"
        );
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn event_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn bad_publish_bodies_are_4xx_problems_naming_the_field_and_write_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let svc = service_token();
    // Over the per-event data limit (64 KiB), under the body limit (256 KiB).
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"type": "a.b", "data": {}}), 422, "topic"),
        (
            json!({"topic": "nocolon", "type": "a.b", "data": {}}),
            422,
            "topic",
        ),
        (json!({"topic": "User:x", "type": "a.b"}), 422, "topic"),
        (json!({"topic": "user:a b", "type": "a.b"}), 422, "topic"),
        (json!({"topic": 5, "type": "a.b"}), 422, "topic"),
        (json!({"topic": "user:a"}), 422, "type"),
        (json!({"topic": "user:a", "type": "Bad Type"}), 422, "type"),
        (json!({"topic": "user:a", "type": "x".repeat(65)}), 422, "type"),
        (
            json!({"topic": "user:a", "type": "a.b", "extra": 1}),
            422,
            "extra",
        ),
        (
            json!({"topic": "user:a", "type": "a.b", "data": {"s": big}}),
            422,
            "data",
        ),
        (json!(["not", "an", "object"]), 422, "body"),
    ];
    for (body, status, field) in cases {
        let (got, problem) = post(&app, &svc, body.to_string().into(), "application/json").await;
        let shown: String = body.to_string().chars().take(120).collect();
        assert_eq!(got, status, "{shown}: {problem}");
        if !field.is_empty() {
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
    let (got, _) = post(&app, &svc, "{\"topic\": ".into(), "application/json").await;
    assert_eq!(got, 400, "malformed JSON");
    let (got, _) = post(
        &app,
        &svc,
        "topic=user:a".into(),
        "application/x-www-form-urlencoded",
    )
    .await;
    assert_eq!(got, 415);
    let huge = format!(
        "{{\"topic\":\"user:a\",\"type\":\"a\",\"data\":\"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let (got, problem) = post(&app, &svc, huge.into(), "application/json").await;
    assert_eq!(got, 413, "request body limit");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("262144 bytes") && detail.contains("HERALD_MAX_BODY_BYTES"),
        "a 413 names the limit and its variable: {problem}"
    );

    assert_eq!(event_count(&pool).await, 0, "nothing written");
}

#[sqlx::test(migrations = "../../migrations")]
async fn publishing_needs_a_valid_service_token_with_publish_scope(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let body = json!({"topic": "user:a", "type": "a.b", "data": {}}).to_string();
    let (status, problem) = post(
        &app,
        &user_token("alice"),
        body.clone().into(),
        "application/json",
    )
    .await;
    assert_eq!(status, 403, "{problem}");
    for (case, token) in bad_tokens("svc") {
        let (status, _) = post(&app, &token, body.clone().into(), "application/json").await;
        assert_eq!(status, 401, "{case}");
    }
    assert_eq!(event_count(&pool).await, 0);
}

async fn publish_with_key(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/events", app.api_url()))
        .bearer_auth(service_token())
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn idempotency_key_replays_the_original_response_without_a_second_event(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let body = json!({"topic": "user:a", "type": "a.b", "data": {"x": 1}});
    let first = publish_with_key(&app, "key-1", &body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    // Same key, same body (keys in another order): the original answer.
    let again = publish_with_key(
        &app,
        "key-1",
        &json!({"data": {"x": 1}, "type": "a.b", "topic": "user:a"}),
    )
    .await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again, first);
    // Concurrent retries with one new key: exactly one effect.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let body = json!({"topic": "user:a", "type": "a.b", "data": {"x": 2}});
            let url = app.api_url();
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .post(format!("{url}/v1/events"))
                    .bearer_auth(service_token())
                    .header("Idempotency-Key", "key-2")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                r.json::<Value>().await.unwrap()["id"].clone()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    assert_eq!(event_count(&pool).await, 2);
}

#[sqlx::test(migrations = "../../migrations")]
async fn idempotency_key_reused_with_another_body_is_422(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let r = publish_with_key(&app, "k", &json!({"topic": "user:a", "type": "a.b", "data": 1})).await;
    assert_eq!(r.status(), 202);
    let r = publish_with_key(&app, "k", &json!({"topic": "user:a", "type": "a.b", "data": 2})).await;
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["type"], "urn:herald:problem:idempotency-key-reused");
    let r = publish_with_key(&app, &"k".repeat(300), &json!({"topic": "user:a", "type": "a.b"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["field"],
        "header:Idempotency-Key"
    );
    assert_eq!(event_count(&pool).await, 1);
}

#[sqlx::test(migrations = "../../migrations")]
async fn topic_history_pages_in_seq_order_and_is_authorized(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    for n in 1..=5 {
        app.publish_ok("room:1", n).await;
        app.publish_ok("room:2", n).await;
    }
    // Wait for the sequencer.
    for _ in 0..100 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE seq IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let http = reqwest::Client::new();
    let token = user_token_with_topics("alice", &["room:1"]);
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page: Value = http
            .get(format!(
                "{}/v1/topics/room:1/events?after={after}&limit=2",
                app.api_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["topic"], "room:1");
            seen.push(e["data"]["n"].as_u64().unwrap());
        }
        match page["next_after"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);

    let status = |path: &str, token: String| {
        let http = http.clone();
        let url = format!("{}{path}", app.api_url());
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/v1/topics/room:2/events", token.clone()).await, 403);
    assert_eq!(status("/v1/topics/room:2/events", admin_token()).await, 200);
    assert_eq!(status("/v1/topics/Bad/events", admin_token()).await, 422);
    assert_eq!(
        status("/v1/topics/room:1/events?limit=0", admin_token()).await,
        422
    );
    assert_eq!(
        status("/v1/topics/room:1/events?after=x", admin_token()).await,
        422
    );
    assert_eq!(status("/v1/topics/room:1/events", String::new()).await, 401);
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_error_is_problem_json(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let http = reqwest::Client::new();
    let cases = [
        (http.get(format!("{}/nope", app.api_url())), 404),
        (http.get(format!("{}/v1/events", app.api_url())), 405),
        (http.delete(format!("{}/v1/stream-tokens", app.api_url())), 405),
        (
            http.get(format!("{}/v1/stream", app.gateway_url()))
                .query(&[("topics", "user:a")]),
            401,
        ),
        (http.post(format!("{}/v1/stream", app.gateway_url())), 405),
    ];
    for (req, status) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["status"], status);
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn metrics_count_requests_and_latency_by_route_method_and_status(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.publish_ok("user:a", 1).await;
    app.publish_ok("user:a", 2).await;
    let r = app.publish("Bad", "t", json!({})).await;
    assert_eq!(r.status(), 422);
    let m = herald_test_support::metrics(&app.api_url()).await;
    assert!(
        m.contains(r#"herald_http_requests_total{route="/v1/events",method="POST",status="202"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"herald_http_requests_total{route="/v1/events",method="POST",status="422"} 1"#),
        "{m}"
    );
    assert!(m.contains(
        r#"herald_http_request_duration_seconds_count{route="/v1/events",method="POST",status="202"} 2"#
    ));
    assert!(m.contains("herald_api_events_accepted_total 2"));
    for name in [
        "herald_db_pool_connections",
        "herald_http_request_duration_seconds_bucket",
    ] {
        assert!(m.contains(name), "{name}");
    }
    for (url, names) in [
        (
            app.gateway_url(),
            vec![
                "herald_open_streams",
                "herald_stream_closes_total",
                "herald_deliveries_total",
                "herald_resets_total",
                "herald_redis_reconnects_total",
            ],
        ),
        (
            app.worker.as_ref().unwrap().url(),
            vec![
                "herald_outbox_lag_seconds",
                "herald_sequencer_batch_size",
                "herald_published_events_total",
            ],
        ),
    ] {
        let m = herald_test_support::metrics(&url).await;
        for name in names {
            assert!(m.contains(name), "{url}: {name}");
        }
    }
}

async fn post_batch(app: &TestApp, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/events/batch", app.api_url()))
        .bearer_auth(service_token())
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    if status >= 400 {
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    (status, r.json().await.unwrap_or(Value::Null))
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_is_delivered_whole_in_order_with_consecutive_positions(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut stream = app
        .stream(
            &user_token_with_topics("svc", &["room:a", "room:b"]),
            "room:a,room:b",
            None,
        )
        .await;
    let events: Vec<Value> = (0..40)
        .map(|i| json!({"topic": if i % 3 == 0 { "room:b" } else { "room:a" }, "type": "batch.item", "data": {"i": i}}))
        .collect();
    let (status, accepted) = post_batch(&app, None, &json!({ "events": events })).await;
    assert_eq!(status, 202, "{accepted}");
    let accepted = accepted["events"].as_array().unwrap().clone();
    assert_eq!(accepted.len(), 40);
    for (i, a) in accepted.iter().enumerate() {
        assert_eq!(a["data"]["i"], i, "answered in the order given");
        assert!(a["seq"].is_null());
    }
    let got = stream.envelopes(40, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 40);
    for (i, e) in got.iter().enumerate() {
        assert_eq!(e.data["i"], i, "delivered in the order given");
        assert_eq!(e.id.to_string(), accepted[i]["id"].as_str().unwrap());
    }
    let first = got[0].seq.get();
    let seqs: Vec<i64> = got.iter().map(|e| e.seq.get()).collect();
    assert_eq!(
        seqs,
        (first..first + 40).collect::<Vec<_>>(),
        "consecutive positions"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_bad_batch_names_the_event_and_writes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let ok = json!({"topic": "user:a", "type": "a.b", "data": {}});
    let big = json!({"topic": "user:a", "type": "a.b", "data": {"s": "x".repeat(70 * 1024)}});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"events": [ok, {"topic": "nocolon", "type": "a.b"}]}),
            "events[1].topic",
        ),
        (
            json!({"events": [ok, ok, {"topic": "user:a", "type": "Bad"}]}),
            "events[2].type",
        ),
        (json!({"events": [ok, big]}), "events[1].data"),
        (json!({"events": []}), "events"),
        (json!({"events": vec![ok.clone(); 501]}), "events"),
        (json!({"events": [ok], "extra": 1}), "extra"),
        (json!({}), "events"),
    ];
    for (body, field) in cases {
        let (status, problem) = post_batch(&app, None, &body).await;
        assert_eq!(status, 422, "{field}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(event_count(&pool).await, 0, "nothing written");
}

#[sqlx::test(migrations = "../../migrations")]
async fn the_rate_limit_counts_every_event_of_a_batch(pool: PgPool) {
    let mut settings = herald_test_support::settings(&herald_test_support::redis_url());
    settings.api.publish_rate = 10;
    let app = TestApp::spawn_with(pool.clone(), settings).await;
    let event = json!({"topic": "user:a", "type": "a.b", "data": {}});
    let (status, problem) = post_batch(&app, None, &json!({"events": vec![event.clone(); 11]})).await;
    assert_eq!(status, 429, "11 events over a burst of 10: {problem}");
    let (status, _) = post_batch(&app, None, &json!({"events": vec![event.clone(); 10]})).await;
    assert_eq!(status, 202);
    assert_eq!(event_count(&pool).await, 10);
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_batch_with_an_idempotency_key_is_written_once(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let body = json!({"events": [
        {"topic": "user:a", "type": "a.b", "data": {"n": 1}},
        {"topic": "user:b", "type": "a.b", "data": {"n": 2}},
    ]});
    let (status, first) = post_batch(&app, Some("batch-1"), &body).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = post_batch(&app, Some("batch-1"), &body).await;
    assert_eq!(status, 202);
    assert_eq!(again, first, "the original answer");
    assert_eq!(event_count(&pool).await, 2);
    let other = json!({"events": [{"topic": "user:a", "type": "a.b", "data": {"n": 3}}]});
    let (status, problem) = post_batch(&app, Some("batch-1"), &other).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(event_count(&pool).await, 2);
}

/// Batches published concurrently with each other and with single events
/// still each get consecutive positions, in the order given: no other event
/// lands inside a batch, and the sequencer never splits one.
#[sqlx::test(migrations = "../../migrations")]
async fn every_batch_gets_consecutive_positions_under_concurrency(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let batches = (0..6).map(|b| {
        let body = json!({"events": (0..300)
            .map(|i| json!({"topic": format!("room:{}", i % 4), "type": "batch.item", "data": {"b": b, "i": i}}))
            .collect::<Vec<_>>()});
        let app = &app;
        async move {
            let (status, accepted) = post_batch(app, None, &body).await;
            assert_eq!(status, 202, "{accepted}");
            accepted["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    });
    let singles = (0..60).map(|i| {
        let app = &app;
        async move { app.publish_ok("room:0", i).await }
    });
    let (ids, _) = tokio::join!(
        futures_util::future::join_all(batches),
        futures_util::future::join_all(singles)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE seq IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} never sequenced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for batch in ids {
        let uuids: Vec<uuid::Uuid> = batch.iter().map(|s| s.parse().unwrap()).collect();
        let rows: Vec<(uuid::Uuid, i64)> = sqlx::query_as("SELECT id, seq FROM events WHERE id = ANY($1)")
            .bind(&uuids)
            .fetch_all(&pool)
            .await
            .unwrap();
        let by_id: std::collections::HashMap<_, _> = rows.into_iter().collect();
        let seqs: Vec<i64> = uuids.iter().map(|id| by_id[id]).collect();
        let first = seqs[0];
        assert_eq!(
            seqs,
            (first..first + 300).collect::<Vec<_>>(),
            "consecutive, in the order given"
        );
    }
}

/// With no partition of the event log to take it (the worker makes them
/// ahead; this one never ran), a publish is a 503 problem that says what to
/// do, not a 500, and nothing is written; once a partition exists it goes
/// through.
#[sqlx::test(migrations = "../../migrations")]
async fn a_publish_with_no_partition_to_take_it_is_a_503_naming_the_worker(pool: PgPool) {
    let settings = herald_test_support::settings(&herald_test_support::redis_url());
    herald_test_support::drop_event_partitions(&pool).await;
    let api = herald_test_support::start_api(&settings, pool.clone()).await;
    let publish = |key: &'static str| {
        let url = format!("{}/v1/events", api.url());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(service_token())
                .header("idempotency-key", key)
                .json(&json!({"topic": "user:alice", "type": "t.n", "data": {}}))
                .send()
                .await
                .unwrap()
        }
    };
    for key in ["alone-1", ""] {
        let r = if key.is_empty() {
            reqwest::Client::new()
                .post(format!("{}/v1/events", api.url()))
                .bearer_auth(service_token())
                .json(&json!({"topic": "user:alice", "type": "t.n", "data": {}}))
                .send()
                .await
                .unwrap()
        } else {
            publish(key).await
        };
        assert_eq!(r.status(), 503, "key {key:?}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(r.headers().contains_key("retry-after"));
        let body: Value = r.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("herald-worker"),
            "{body}"
        );
    }
    let written: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(written, 0, "no partial write");

    sqlx::query("SELECT herald_event_partitions_ahead(2)")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        publish("alone-1").await.status(),
        202,
        "the same key, now accepted"
    );
}
