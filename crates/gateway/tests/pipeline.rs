//! End to end: publish over REST → outbox → sequencer → Redis → gateway → SSE,
//! with replay from Postgres. Real Postgres (a fresh database per test) and
//! real Redis (a unique prefix per test, or a private server for fault tests).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::time::Duration;

use herald_domain::Envelope;
use herald_test_support::{
    assert_strictly_increasing, redis_url, service_token, settings, user_token, user_token_with_topics,
    RedisServer, SseClient, TestApp,
};
use serde_json::json;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

fn ns(events: &[Envelope]) -> Vec<u64> {
    events.iter().map(|e| e.data["n"].as_u64().expect("n")).collect()
}

fn seqs(events: &[Envelope]) -> Vec<i64> {
    events.iter().map(|e| e.seq.get()).collect()
}

#[sqlx::test(migrations = "../../migrations")]
async fn published_event_arrives_live_with_seq_type_and_envelope(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut s = app.stream(&user_token("alice"), "user:alice", None).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.headers["cache-control"], "no-cache");
    assert_eq!(s.headers["x-accel-buffering"], "no");

    let r = app
        .publish("user:alice", "demo.hello", json!({"msg": "hi"}))
        .await;
    assert_eq!(r.status(), 202);
    let accepted: serde_json::Value = r.json().await.unwrap();
    assert!(accepted["seq"].is_null(), "seq is assigned after commit");

    let got = s.envelopes(1, WAIT).await;
    assert_eq!(got.len(), 1, "raw stream: {}", s.raw);
    let e = &got[0];
    assert_eq!(e.id.to_string(), accepted["id"].as_str().unwrap());
    assert_eq!(e.topic, "user:alice");
    assert_eq!(e.event_type, "demo.hello");
    assert_eq!(e.data, json!({"msg": "hi"}));
    assert_eq!(e.seq.get(), 1);
    assert!(
        s.raw.starts_with("retry: "),
        "a retry hint comes first: {}",
        s.raw
    );
}

/// On the lean path (a stream as its connection's first request) the hub
/// writes live events to the socket itself; a stream on a reused keep-alive
/// connection is served by hyper and gets them through its queue. Both see
/// every event once, in order, and the same ones.
#[sqlx::test(migrations = "../../migrations")]
async fn streams_on_fresh_and_reused_connections_get_the_same_exact_sequence(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = user_token("alice");
    let mut lean = app.stream(&token, "user:alice", None).await;
    assert_eq!(lean.status, 200);
    assert!(
        lean.headers.get("transfer-encoding").is_none(),
        "lean path: close-delimited"
    );

    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", app.gateway_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    health.bytes().await.unwrap();
    let req = client
        .get(format!("{}/v1/stream", app.gateway_url()))
        .query(&[("topics", "user:alice")])
        .bearer_auth(&token);
    let mut reused = SseClient::from_request(req).await;
    assert_eq!(reused.status, 200);
    assert_eq!(
        reused
            .headers
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked"),
        "the second request on a connection is hyper's"
    );

    // Bursts (coalesced writes) and single events (one write each).
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let app = &app;
            async move {
                for k in 0..25 {
                    app.publish_ok("user:alice", p * 100 + k).await;
                }
            }
        })
        .collect();
    futures_util::future::join_all(publishers).await;
    for n in 1000..1005 {
        app.publish_ok("user:alice", n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = lean.envelopes(105, WAIT).await;
    let b = reused.envelopes(105, WAIT).await;
    assert_eq!(a.len(), 105, "lean: {}", lean.raw);
    assert_eq!(b.len(), 105, "reused: {}", reused.raw);
    assert_strictly_increasing(&seqs(&a));
    assert_eq!(seqs(&a), seqs(&b));
    assert_eq!(ns(&a), ns(&b));
    let mut sorted = ns(&a);
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 105, "every event once");
}

async fn resume_replays_exactly_the_missed_events(pool: PgPool, via_header: bool) {
    let app = TestApp::spawn(pool).await;
    let token = user_token("alice");
    let mut first = app.stream(&token, "user:alice", None).await;
    for n in 1..=3 {
        app.publish_ok("user:alice", n).await;
    }
    let seen = first.envelopes(3, WAIT).await;
    assert_eq!(ns(&seen), vec![1, 2, 3]);
    let last = first.last_event_id();
    drop(first);

    for n in 4..=8 {
        app.publish_ok("user:alice", n).await;
    }
    // Noise on another topic must not be replayed.
    app.publish_ok("user:bob", 99).await;

    let mut resumed = if via_header {
        app.stream(&token, "user:alice", Some(&last)).await
    } else {
        let req = reqwest::Client::new()
            .get(format!("{}/v1/stream", app.gateway_url()))
            .query(&[("topics", "user:alice"), ("last_event_id", last.as_str())])
            .bearer_auth(&token);
        SseClient::from_request(req).await
    };
    let missed = resumed.envelopes(5, WAIT).await;
    assert_eq!(ns(&missed), vec![4, 5, 6, 7, 8]);
    assert_strictly_increasing(&seqs(&missed));
    assert!(
        resumed.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing more"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn resume_with_last_event_id_header_replays_exactly_the_missed_events(pool: PgPool) {
    resume_replays_exactly_the_missed_events(pool, true).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn resume_with_last_event_id_query_param_replays_exactly_the_missed_events(pool: PgPool) {
    resume_replays_exactly_the_missed_events(pool, false).await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn reconnecting_during_continuous_publishing_has_no_gap_and_no_duplicate(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let total = 300u64;
    let publisher = app.spawn_publisher("user:alice", total, Duration::ZERO);
    let token = user_token("alice");
    let mut received: Vec<Envelope> = Vec::new();
    let mut last: Option<String> = Some("0".into());
    while received.len() < total as usize {
        let mut s = app.stream(&token, "user:alice", last.as_deref()).await;
        // Read a few events, then drop the connection mid-flow.
        let got = s.envelopes(17.min(total as usize - received.len()), WAIT).await;
        if got.is_empty() {
            let (all, sequenced): (i64, i64) = sqlx::query_as("SELECT count(*), count(seq) FROM events")
                .fetch_one(&app.pool)
                .await
                .unwrap();
            panic!(
                "stream stalled after {} events; {all} written, {sequenced} sequenced; publisher finished: {}; last id {last:?}; received {:?}",
                received.len(),
                publisher.is_finished(),
                received.iter().map(|e| (e.seq, e.data["n"].as_u64().unwrap_or(0))).collect::<Vec<_>>()
            );
        }
        received.extend(got);
        last = Some(s.last_event_id());
    }
    publisher.await.unwrap();
    assert_eq!(
        ns(&received),
        (1..=total).collect::<Vec<_>>(),
        "every event exactly once, in order"
    );
    assert_strictly_increasing(&seqs(&received));
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_publishers_give_every_subscriber_the_same_strictly_increasing_sequence(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let publishers = 8u64;
    let each = 40u64;
    let total = (publishers * each) as usize;
    let token = user_token_with_topics("watcher", &["room:*"]);
    let mut subs = Vec::new();
    for _ in 0..4 {
        subs.push(app.stream(&token, "room:a,room:b", None).await);
    }
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let api = app.api_url();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..each {
                let topic = if i % 2 == 0 { "room:a" } else { "room:b" };
                let r = http
                    .post(format!("{api}/v1/events"))
                    .bearer_auth(service_token())
                    .json(&json!({"topic": topic, "type": "t.n", "data": {"p": p, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut sequences = Vec::new();
    for s in &mut subs {
        let got = s.envelopes(total, WAIT).await;
        assert_eq!(got.len(), total, "count exact");
        assert!(
            s.next_event(Duration::from_millis(300)).await.is_none(),
            "no extra event"
        );
        assert_strictly_increasing(&seqs(&got));
        // Each publisher's events arrive in the order it published them.
        let mut per_publisher: HashMap<u64, Vec<u64>> = HashMap::new();
        for e in &got {
            per_publisher
                .entry(e.data["p"].as_u64().unwrap())
                .or_default()
                .push(e.data["i"].as_u64().unwrap());
        }
        for (p, is) in per_publisher {
            assert_eq!(is, (0..each).collect::<Vec<_>>(), "publisher {p} order");
        }
        sequences.push(got.iter().map(|e| (e.seq, e.id)).collect::<Vec<_>>());
    }
    for s in &sequences[1..] {
        assert_eq!(s, &sequences[0], "every subscriber sees the same sequence");
    }
    // Replay from the beginning yields the very same sequence.
    let mut replay = app.stream(&token, "room:a,room:b", Some("0")).await;
    let replayed = replay.envelopes(total, WAIT).await;
    assert_eq!(
        replayed.iter().map(|e| (e.seq, e.id)).collect::<Vec<_>>(),
        sequences[0]
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn worker_aborted_mid_batch_and_restarted_loses_nothing(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.worker.batch = 3;
    let mut app = TestApp::spawn_with(pool.clone(), s).await;
    let total = 150u64;
    let publisher = app.spawn_publisher("user:alice", total, Duration::ZERO);
    let mut stream = app.stream(&user_token("alice"), "user:alice", Some("0")).await;
    let collector = tokio::spawn(async move {
        let got = stream.envelopes(total as usize, Duration::from_secs(40)).await;
        let extra = stream.next_event(Duration::from_millis(500)).await;
        (got, extra)
    });
    for i in 0..8u64 {
        tokio::time::sleep(Duration::from_millis(40 + i * 7)).await;
        app.worker.take().unwrap().abort().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        app.start_worker().await;
    }
    publisher.await.unwrap();
    let (got, extra) = collector.await.unwrap();
    assert_eq!(
        ns(&got),
        (1..=total).collect::<Vec<_>>(),
        "nothing lost, duplicated or reordered"
    );
    assert_strictly_increasing(&seqs(&got));
    assert!(extra.is_none(), "no duplicate after the end: {extra:?}");
    let (distinct, max): (i64, i64) = sqlx::query_as("SELECT count(DISTINCT seq), max(seq) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((distinct, max), (total as i64, total as i64), "seq is contiguous");
}

async fn survives_redis_fault(pool: PgPool, fault: &str) {
    let mut redis = RedisServer::start();
    let app = TestApp::spawn_with(pool, settings(&redis.url())).await;
    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    let total = 120u64;
    let publisher = app.spawn_publisher("user:alice", total, Duration::from_millis(5));
    let collector = tokio::spawn(async move {
        let got = stream.envelopes(total as usize, Duration::from_secs(60)).await;
        let extra = stream.next_event(Duration::from_millis(500)).await;
        (got, extra)
    });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        match fault {
            "kill-clients" => {
                redis.kill_clients("pubsub").await;
                redis.kill_clients("normal").await;
            }
            "restart" => {
                redis.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                redis.restart();
            }
            _ => unreachable!(),
        }
    }
    publisher.await.unwrap();
    let (got, extra) = collector.await.unwrap();
    let metrics = herald_test_support::metrics(&app.gateway_url()).await;
    assert!(
        !metrics.contains("herald_redis_reconnects_total 0"),
        "the fault really hit the gateway's bus connection:\n{metrics}"
    );
    assert_eq!(
        ns(&got),
        (1..=total).collect::<Vec<_>>(),
        "nothing missing after recovery"
    );
    assert_strictly_increasing(&seqs(&got));
    assert!(extra.is_none(), "no duplicate: {extra:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn killed_redis_connections_lose_nothing_for_open_streams(pool: PgPool) {
    survives_redis_fault(pool, "kill-clients").await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn redis_restart_loses_nothing_for_open_streams(pool: PgPool) {
    survives_redis_fault(pool, "restart").await;
}

#[sqlx::test(migrations = "../../migrations")]
async fn client_dropping_from_one_gateway_resumes_on_another(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let other = app.another_gateway().await;
    let token = user_token("alice");
    let mut a = app.stream(&token, "user:alice", None).await;
    for n in 1..=4 {
        app.publish_ok("user:alice", n).await;
    }
    let first = a.envelopes(4, WAIT).await;
    assert_eq!(ns(&first), vec![1, 2, 3, 4]);
    let last = a.last_event_id();
    // Gateway A goes away; the client reconnects through the balancer to B.
    app.gateway.stop().await;
    assert!(
        a.wait_closed(Duration::from_secs(3)).await,
        "stream ends when its gateway stops"
    );
    for n in 5..=7 {
        app.publish_ok("user:alice", n).await;
    }
    let mut b = SseClient::connect(&other.url(), &token, "user:alice", Some(&last)).await;
    for n in 8..=9 {
        app.publish_ok("user:alice", n).await;
    }
    let rest = b.envelopes(5, WAIT).await;
    assert_eq!(ns(&rest), vec![5, 6, 7, 8, 9]);
    assert_strictly_increasing(&seqs(&rest));
}

/// Positions judged against the log (the replay window off: a resume the
/// window proves complete is served from it, pruned or not; see
/// `replay_window.rs`).
#[sqlx::test(migrations = "../../migrations")]
async fn reset_is_sent_for_unparsable_future_and_pruned_positions(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.gateway.replay_window_bytes = 0;
    let app = TestApp::spawn_with(pool.clone(), s).await;
    let token = user_token("alice");
    let mut live = app.stream(&token, "user:alice", None).await;
    for n in 1..=3 {
        app.publish_ok("user:alice", n).await;
    }
    assert_eq!(live.envelopes(3, WAIT).await.len(), 3);

    let mut head = 3;
    for (position, reason) in [("abc", "unparsable"), ("-5", "unparsable"), ("999", "future")] {
        let mut s = app.stream(&token, "user:alice", Some(position)).await;
        assert_eq!(s.status, 200);
        let e = s.next_event(WAIT).await.expect("a reset event");
        assert_eq!(e.event, "herald.reset", "{position}");
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["reason"], reason);
        assert_eq!(
            e.id,
            head.to_string(),
            "the reset carries the head position to continue from"
        );
        // After the reset the stream continues live from the head.
        app.publish_ok("user:alice", 10 + head as u64).await;
        head += 1;
        let next = s.envelopes(1, WAIT).await;
        assert_eq!(next[0].seq.get(), head);
        assert_eq!(live.envelopes(1, WAIT).await[0].seq.get(), head);
    }

    // Retention pruned everything up to seq 2: resuming from 1 cannot be complete.
    sqlx::query("DELETE FROM events WHERE seq <= 2")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE sequencer SET pruned_seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let mut s = app.stream(&token, "user:alice", Some("1")).await;
    let e = s.next_event(WAIT).await.expect("a reset event");
    assert_eq!(e.event, "herald.reset");
    assert!(e.data.contains("pruned"));
    // Resuming exactly at the floor is complete: no reset.
    let mut ok = app.stream(&token, "user:alice", Some("2")).await;
    let e = ok.next_event(WAIT).await.expect("the event after the floor");
    assert_eq!(e.event, "test.event");
    assert_eq!(e.id, "3");
}

#[sqlx::test(migrations = "../../migrations")]
async fn shutdown_ends_open_streams_promptly(pool: PgPool) {
    let mut app = TestApp::spawn(pool).await;
    let token = user_token("alice");
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(app.stream(&token, "user:alice", None).await);
    }
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.gateway.stop())
        .await
        .expect("gateway stops within 5 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    for s in &mut streams {
        assert!(
            s.wait_closed(Duration::from_secs(2)).await,
            "every stream is closed"
        );
    }
}

/// SIGTERM, as a rolling restart sees it: `/readyz` turns 503 at once and new
/// streams are refused with 503 problem+json and `Retry-After` (a load balancer
/// retries them elsewhere) while open streams keep going; after the grace each
/// stream gets a short `retry:` hint and `herald.reconnect` (no `id:`, so the
/// resume position is unchanged) and ends cleanly; the listener closes and the
/// gateway exits by itself; the client resumes on another gateway with nothing lost.
#[sqlx::test(migrations = "../../migrations")]
async fn sigterm_turns_unready_first_then_tells_streams_to_reconnect(pool: PgPool) {
    let grace = Duration::from_millis(800);
    let mut s = settings(&redis_url());
    s.gateway.shutdown_grace = grace;
    let mut app = TestApp::spawn_with(pool, s).await;
    let other = app.another_gateway().await;
    let url = app.gateway_url();
    let token = user_token("alice");
    let mut stream = app.stream(&token, "user:alice", None).await;
    app.publish_ok("user:alice", 1).await;
    let before = stream.envelopes(1, WAIT).await;
    let last = before[0].seq.to_string();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let sigterm = std::time::Instant::now();
    app.gateway.shutdown_token().cancel();
    let unready = loop {
        let r = http.get(format!("{url}/readyz")).send().await.unwrap();
        if r.status() == 503 {
            let problem: serde_json::Value = r.json().await.unwrap();
            assert_eq!(problem["detail"], "draining");
            break sigterm.elapsed();
        }
        assert!(sigterm.elapsed() < grace / 2, "/readyz still 200 after SIGTERM");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let refused = SseClient::connect(&url, &token, "user:alice", None).await;
    assert_eq!(refused.status, 503, "a draining gateway refuses new streams");
    assert!(refused.headers.contains_key("retry-after"));
    assert!(refused.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    assert!(sigterm.elapsed() < grace, "the checks ran inside the grace");
    assert!(!stream.ended, "open streams keep going during the grace");

    let e = stream
        .next_event(grace + Duration::from_secs(3))
        .await
        .expect("herald.reconnect before the stream ends");
    let signalled = sigterm.elapsed();
    assert_eq!(e.event, "herald.reconnect");
    assert_eq!(e.data, r#"{"reason":"shutdown"}"#);
    assert_eq!(e.id, last, "the resume position is unchanged");
    let hint: u64 = stream
        .raw
        .lines()
        .filter_map(|l| l.strip_prefix("retry: "))
        .next_back()
        .unwrap()
        .parse()
        .unwrap();
    assert!(hint <= 1000, "a short retry hint before closing: {hint}");
    assert!(
        stream.wait_closed(Duration::from_secs(2)).await,
        "then the stream ends"
    );
    assert!(
        unready < grace && signalled >= grace,
        "{unready:?} < {grace:?} <= {signalled:?}"
    );

    tokio::time::timeout(Duration::from_secs(5), app.gateway.stop())
        .await
        .expect("the gateway exits by itself");
    assert!(
        http.get(format!("{url}/readyz")).send().await.is_err(),
        "the listener is closed"
    );

    app.publish_ok("user:alice", 2).await;
    let mut resumed = SseClient::connect(&other.url(), &token, "user:alice", Some(&last)).await;
    assert_eq!(ns(&resumed.envelopes(1, WAIT).await), vec![2]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn heartbeat_comments_keep_an_idle_stream_alive(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.gateway.heartbeat = Duration::from_millis(200);
    let app = TestApp::spawn_with(pool, s).await;
    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    assert!(stream.next_event(Duration::from_millis(700)).await.is_none());
    assert!(
        stream.raw.matches(":\n\n").count() >= 2,
        "heartbeats: {:?}",
        stream.raw
    );
    assert!(!stream.ended);
}

#[sqlx::test(migrations = "../../migrations")]
async fn slow_consumer_is_cut_off_at_its_buffer_bound_and_resumes_without_loss(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.gateway.stream_buffer = 8;
    let app = TestApp::spawn_with(pool, s).await;
    let token = user_token("alice");
    let mut stalled = app.stream(&token, "user:alice", None).await;
    // The client reads nothing while ~24 MB are published for it: more than
    // loopback socket buffers hold, so the gateway's queue must fill.
    let total = 400u64;
    let blob = "x".repeat(60 * 1024);
    let http = reqwest::Client::new();
    for n in 1..=total {
        let r = http
            .post(format!("{}/v1/events", app.api_url()))
            .bearer_auth(service_token())
            .json(&json!({"topic": "user:alice", "type": "t.n", "data": {"n": n, "blob": blob}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let mut kicked = false;
    for _ in 0..100 {
        let m = herald_test_support::metrics(&app.gateway_url()).await;
        if m.contains("herald_stream_closes_total{reason=\"slow_consumer\"} 1") {
            kicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = herald_test_support::metrics(&app.gateway_url()).await;
    assert!(
        kicked,
        "the gateway cut the stream off instead of buffering without bound:\n{m}"
    );
    // The client drains what reached it, then resumes from its last id.
    let mut received = Vec::new();
    while let Some(e) = stalled.next_event(Duration::from_secs(5)).await {
        received.push(serde_json::from_str::<Envelope>(&e.data).unwrap());
    }
    assert!(stalled.ended, "the stream was closed");
    assert!((received.len() as u64) < total, "it was cut off before the end");
    let last = stalled.last_event_id();
    let mut resumed = app.stream(&token, "user:alice", Some(&last)).await;
    received.extend(resumed.envelopes(total as usize - received.len(), WAIT).await);
    assert_eq!(
        ns(&received),
        (1..=total).collect::<Vec<_>>(),
        "nothing lost across the cut"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn falling_behind_the_in_process_bus_is_caught_up_from_postgres(pool: PgPool) {
    // A bus that holds only 4 messages: a burst makes the gateway lag.
    let bus = herald_bus::Bus::Local(herald_bus::LocalBus::new(4));
    let app = TestApp::spawn_on(pool, settings(&redis_url()), bus).await;
    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    let total = 200u64;
    let tasks: Vec<_> = (0..4)
        .map(|p| {
            let api = app.api_url();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..total / 4 {
                    let r = http
                        .post(format!("{api}/v1/events"))
                        .bearer_auth(service_token())
                        .json(&json!({"topic": "user:alice", "type": "t.n", "data": {"n": p * 1000 + i}}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let got = stream.envelopes(total as usize, WAIT).await;
    assert_eq!(got.len(), total as usize, "every event, despite the lag");
    assert_strictly_increasing(&seqs(&got));
    assert!(
        stream.next_event(Duration::from_millis(300)).await.is_none(),
        "no duplicate"
    );
    let metrics = herald_test_support::metrics(&app.gateway_url()).await;
    assert!(
        !metrics.contains("herald_bus_lagged_total 0"),
        "the burst really overran the bus:\n{metrics}"
    );
}

/// Retention as the log sees it (the replay window off: a resume the window
/// still proves complete is served from it; see `replay_window.rs`).
#[sqlx::test(migrations = "../../migrations")]
async fn retention_prunes_old_history_and_resuming_there_resets(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.worker.retention = Duration::from_secs(1);
    s.gateway.replay_window_bytes = 0;
    let app = TestApp::spawn_with(pool.clone(), s).await;
    let token = user_token("alice");
    let mut live = app.stream(&token, "user:alice", None).await;
    for n in 1..=5 {
        app.publish_ok("user:alice", n).await;
    }
    assert_eq!(live.envelopes(5, WAIT).await.len(), 5);
    // Wait until retention deleted them (checked every 250 ms for a 1 s
    // retention). The floor is raised first and the partition detached after
    // it, in a later step that gives up on a busy lock until the next pass:
    // readers rely on the floor alone, so the rows may outlive it briefly.
    let (mut pruned, mut left) = (0i64, -1i64);
    for _ in 0..60 {
        (pruned, left) =
            sqlx::query_as("SELECT (SELECT pruned_seq FROM sequencer), (SELECT count(*) FROM events)")
                .fetch_one(&pool)
                .await
                .unwrap();
        if pruned >= 5 && left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(pruned, 5, "retention advanced the floor past every old event");
    assert_eq!(left, 0, "old events were deleted");
    let mut s = app.stream(&token, "user:alice", Some("2")).await;
    let e = s.next_event(WAIT).await.unwrap();
    assert_eq!(e.event, "herald.reset");
    assert!(e.data.contains("pruned"));
    // New events keep flowing after pruning.
    app.publish_ok("user:alice", 6).await;
    assert_eq!(s.envelopes(1, WAIT).await[0].seq.get(), 6);
}

#[sqlx::test(migrations = "../../migrations")]
async fn one_redis_subscription_per_topic_is_shared_by_all_streams(pool: PgPool) {
    // A dead client is noticed on the next write: heartbeats make that quick.
    let mut s = settings(&redis_url());
    s.gateway.heartbeat = Duration::from_millis(200);
    // A topic no stream carries lingers (for a resume from memory) this long.
    s.gateway.replay_linger = Duration::from_millis(300);
    let app = TestApp::spawn_with(pool, s).await;
    if app.local_bus() {
        return; // the in-process bus has no Redis subscriptions to count
    }
    let channel = herald_bus::channel(&app.settings.bus.prefix, "user:alice");
    let redis = redis::Client::open(redis_url()).unwrap();
    let conn = redis.get_multiplexed_async_connection().await.unwrap();
    let subscribers = |mut conn: redis::aio::MultiplexedConnection, channel: String| async move {
        let (_, n): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut conn)
            .await
            .unwrap();
        n
    };
    let token = user_token("alice");
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(app.stream(&token, "user:alice", None).await);
    }
    assert_eq!(
        subscribers(conn.clone(), channel.clone()).await,
        1,
        "three streams, one subscription"
    );
    drop(streams);
    // The last stream going away unsubscribes once the topic has lingered (the
    // gateway notices the closed sockets, then lets the topic go within a second).
    let mut n = 1;
    for _ in 0..50 {
        n = subscribers(conn.clone(), channel.clone()).await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 0, "no stream, no subscription");
}
