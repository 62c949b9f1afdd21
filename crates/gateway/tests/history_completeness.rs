//! Every path that serves history proves it complete, or says it is not:
//! a replay that retention races, a hub catching up after a bus outage that
//! outlasted retention, and a position the client sent that is not one —
//! each ends in `herald.reset`, never in a silent gap.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_test_support::raw::RawStream;
use herald_test_support::{redis_url, settings, user_token, RedisServer, TestApp};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(20);

/// `n` sequenced events on `topic` with `bytes` of data each, as if
/// published and sequenced just now: seq 1..=n, the sequencer at n.
async fn history(pool: &PgPool, topic: &str, n: i64, bytes: usize) {
    sqlx::query(
        "INSERT INTO events (id, topic, type, data, seq, sequenced_at)
         SELECT gen_random_uuid(), $1, 'test.event', jsonb_build_object('n', g, 'pad', repeat('x', $3)), g, now()
           FROM generate_series(1, $2) g",
    )
    .bind(topic)
    .bind(n)
    .bind(bytes as i32)
    .execute(pool)
    .await
    .unwrap();
    herald_test_support::sequencer_at(pool, n).await;
}

async fn pruned_seq(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pruned_seq FROM sequencer")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A consumer resuming from the start of a long history pauses after a few
/// events; retention (of seconds) prunes the rest meanwhile. When it reads
/// on, it must get an unbroken run of events and then `herald.reset` at the
/// head, then live events: never a jump over pruned events.
#[sqlx::test(migrations = "../../migrations")]
async fn every_history_read_proves_completeness_when_retention_races_a_replay(pool: PgPool) {
    let mut s = settings(&redis_url());
    s.worker.retention = Duration::from_secs(3);
    // 2000 events of 16 KiB: a replay page (500) is 8 MiB, far more than a
    // paused consumer's socket buffers hold, so the replay is mid-way when
    // the prune comes.
    history(&pool, "user:alice", 2000, 16 * 1024).await;
    let app = TestApp::spawn_with(pool.clone(), s).await;

    let token = user_token("alice");
    let auth = format!("Authorization: Bearer {token}");
    let mut stream = RawStream::open(
        app.gateway.addr,
        "/v1/stream?topics=user:alice",
        &[auth.as_bytes(), b"Last-Event-ID: 0"],
        Some(64 * 1024),
    )
    .await;
    assert_eq!(stream.status(), Some(200));
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let e = stream.next_event(WAIT).await.expect("replay starts");
        seqs.push(e.id.parse::<i64>().unwrap());
    }
    // Pause until retention has pruned everything.
    let deadline = tokio::time::Instant::now() + WAIT;
    while pruned_seq(&pool).await < 2000 {
        assert!(tokio::time::Instant::now() < deadline, "retention never pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Read on: events, then the reset.
    let reset = loop {
        let e = stream.next_event(WAIT).await.expect("the stream goes on");
        if e.event == "herald.reset" {
            break e;
        }
        assert_eq!(e.event, "test.event", "{e:?}");
        seqs.push(e.id.parse::<i64>().unwrap());
    };
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "an unbroken run from the start, nothing skipped");
    assert!(seqs.len() < 2000, "the replay was cut short by the prune");
    assert_eq!(reset.id, "2000", "the reset carries the head");
    assert!(reset.data.contains("pruned"), "{reset:?}");

    app.publish_ok("user:alice", 1).await;
    let live = stream.next_event(WAIT).await.expect("live after the reset");
    assert_eq!(live.id, "2001");
}

/// The hub's catch-up after a bus outage reads history too: when retention
/// pruned events the hub never forwarded, every stream gets `herald.reset`
/// at the head instead of missing them silently.
#[sqlx::test(migrations = "../../migrations")]
async fn every_history_read_proves_completeness_when_a_redis_outage_outlasts_retention(pool: PgPool) {
    let mut redis = RedisServer::start();
    let mut s = settings(&redis.url());
    s.worker.retention = Duration::from_secs(2);
    let app = TestApp::spawn_with(pool.clone(), s).await;
    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    app.publish_ok("user:alice", 1).await;
    assert_eq!(stream.envelopes(1, WAIT).await.len(), 1);

    redis.kill();
    for n in 2..=6 {
        app.publish_ok("user:alice", n).await;
    }
    // Sequenced (the worker sequences before it publishes), then pruned.
    let deadline = tokio::time::Instant::now() + WAIT;
    while pruned_seq(&pool).await < 6 {
        assert!(tokio::time::Instant::now() < deadline, "retention never pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redis.restart();

    let reset = stream.next_event(WAIT).await.expect("a reset after the outage");
    assert_eq!(reset.event, "herald.reset", "{reset:?} (raw: {})", stream.raw);
    assert!(reset.data.contains("pruned"), "{reset:?}");
    let head: i64 = reset.id.parse().unwrap();
    assert!(head >= 6, "at the head: {head}");

    app.publish_ok("user:alice", 7).await;
    let live = stream.envelopes(1, WAIT).await;
    assert_eq!(live.len(), 1, "live after the reset: {}", stream.raw);
    assert!(live[0].seq.get() > head);
    let metrics = herald_test_support::metrics(&app.gateway_url()).await;
    assert!(!metrics.contains("herald_resets_total 0"), "{metrics}");
}

/// A `Last-Event-ID` that is not a position Herald hands out — whatever its
/// bytes, UTF-8 or not — is a reset, never "no position"; and the header
/// wins over `?last_event_id=`.
#[sqlx::test(migrations = "../../migrations")]
async fn every_unparsable_last_event_id_resets(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.publish_ok("user:alice", 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while herald_store::history::positions(&app.pool)
        .await
        .unwrap()
        .head
        .get()
        < 1
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = user_token("alice");
    let auth = format!("Authorization: Bearer {token}");
    for (target, header) in [
        ("/v1/stream", &b"Last-Event-ID: \xff\xfe"[..]),
        ("/v1/stream", b"Last-Event-ID: abc"),
        ("/v1/stream", b"Last-Event-ID: 1\x80"),
        // The header wins over the query parameter, both ways.
        ("/v1/stream?last_event_id=0", b"Last-Event-ID: \xff"),
    ] {
        let mut s = RawStream::open(app.gateway.addr, target, &[auth.as_bytes(), header], None).await;
        assert_eq!(s.status(), Some(200), "{header:?}");
        let first = s.next_event(WAIT).await.expect("an event");
        assert_eq!(first.event, "herald.reset", "{header:?}: {first:?}");
        assert!(first.data.contains("unparsable"), "{first:?}");
    }
    // A valid header beats an unparsable query parameter: a replay, no reset.
    let mut s = RawStream::open(
        app.gateway.addr,
        "/v1/stream?last_event_id=zzz",
        &[auth.as_bytes(), b"Last-Event-ID: 0"],
        None,
    )
    .await;
    let first = s.next_event(WAIT).await.expect("the replay");
    assert_eq!((first.event.as_str(), first.id.as_str()), ("test.event", "1"));
}
