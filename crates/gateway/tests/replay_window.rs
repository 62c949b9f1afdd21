//! Resumes served from the gateway's replay window (`hub::window`), the
//! fallback to Postgres when the window cannot prove it holds everything,
//! and a history that goes backwards (a failover that lost events).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_domain::Envelope;
use herald_test_support::{
    assert_strictly_increasing, metrics, redis_url, settings, user_token, RedisServer, SseClient, TestApp,
};
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(15);

fn ns(events: &[Envelope]) -> Vec<u64> {
    events.iter().map(|e| e.data["n"].as_u64().expect("n")).collect()
}

fn seqs(events: &[Envelope]) -> Vec<i64> {
    events.iter().map(|e| e.seq.get()).collect()
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {metrics}"))
}

async fn app_with_window(pool: PgPool, redis: &str, bytes: usize) -> TestApp {
    let mut s = settings(redis);
    s.gateway.replay_window_bytes = bytes;
    TestApp::spawn_with(pool, s).await
}

/// Publishes `ns` on `user:alice` and waits until `keeper` (a stream that
/// keeps the topic carried by the gateway) has them: the hub forwarded them.
async fn publish_seen(
    app: &TestApp,
    keeper: &mut SseClient,
    ns: std::ops::RangeInclusive<u64>,
) -> Vec<Envelope> {
    let n = ns.clone().count();
    for i in ns {
        app.publish_ok("user:alice", i).await;
    }
    keeper.envelopes(n, WAIT).await
}

/// Resumes `user:alice` after position `after` (that of event 3, with 4 to 8
/// published since) and checks it gets exactly 4 to 8 from the window, then
/// 9 live, nothing twice and nothing from Postgres. Returns the metrics.
async fn resume_from_memory_after_3_of_8(app: &TestApp, token: &str, after: &str) -> String {
    let mut resumed = app.stream(token, "user:alice", Some(after)).await;
    let missed = resumed.envelopes(5, WAIT).await;
    assert_eq!(ns(&missed), [4, 5, 6, 7, 8], "raw: {}", resumed.raw);
    assert_strictly_increasing(&seqs(&missed));
    app.publish_ok("user:alice", 9).await;
    assert_eq!(ns(&resumed.envelopes(1, WAIT).await), [9], "then live");
    assert!(
        resumed.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing twice"
    );
    let m = metrics(&app.gateway_url()).await;
    assert_eq!(counter(&m, "herald_replays_from_memory_total"), 1, "{m}");
    assert_eq!(
        counter(&m, "herald_replays_total"),
        0,
        "no replay from Postgres: {m}"
    );
    m
}

/// A stream resuming a few events back, on a topic the gateway carries, gets
/// exactly what it missed from memory (no replay from Postgres), then live.
#[sqlx::test(migrations = "../../migrations")]
async fn a_resume_the_window_covers_is_served_from_memory_exactly(pool: PgPool) {
    let app = app_with_window(pool, &redis_url(), 1 << 20).await;
    let token = user_token("alice");
    let mut keeper = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut keeper, 1..=3).await;
    let after = seen[2].seq.to_string();
    publish_seen(&app, &mut keeper, 4..=8).await;

    resume_from_memory_after_3_of_8(&app, &token, &after).await;
}

/// A window too small to hold what the client missed replays from Postgres,
/// exactly; a resume within what it still holds comes from memory.
#[sqlx::test(migrations = "../../migrations")]
async fn a_resume_older_than_the_window_replays_from_postgres(pool: PgPool) {
    // A frame is ~250 bytes: the window keeps the last few events only.
    let app = app_with_window(pool, &redis_url(), 1_500).await;
    let token = user_token("alice");
    let mut keeper = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut keeper, 1..=20).await;

    let mut old = app
        .stream(&token, "user:alice", Some(&seen[1].seq.to_string()))
        .await;
    assert_eq!(ns(&old.envelopes(18, WAIT).await), (3..=20).collect::<Vec<_>>());
    let mut recent = app
        .stream(&token, "user:alice", Some(&seen[18].seq.to_string()))
        .await;
    assert_eq!(ns(&recent.envelopes(1, WAIT).await), [20]);
    for s in [&mut old, &mut recent] {
        assert!(
            s.next_event(Duration::from_millis(300)).await.is_none(),
            "nothing twice"
        );
    }

    let m = metrics(&app.gateway_url()).await;
    assert_eq!(counter(&m, "herald_replays_total"), 1, "{m}");
    assert_eq!(counter(&m, "herald_replays_from_memory_total"), 1, "{m}");
}

/// The window stays exact across bus outages: what the hub catches up from
/// Postgres after reconnecting goes into it, so a resume across the outage
/// served from memory misses nothing.
#[sqlx::test(migrations = "../../migrations")]
async fn the_window_stays_exact_across_a_bus_outage(pool: PgPool) {
    let redis = RedisServer::start();
    let app = app_with_window(pool, &redis.url(), 1 << 20).await;
    if app.local_bus() {
        return; // no Redis connection to cut
    }
    let token = user_token("alice");
    let mut keeper = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut keeper, 1..=3).await;
    let after = seen[2].seq.to_string();
    let total = 60u64;
    let publisher = app.spawn_publisher("user:alice", total, Duration::from_millis(5));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        redis.kill_clients("pubsub").await;
    }
    publisher.await.unwrap();
    // `spawn_publisher` numbers its events from 1 again: 63 in all.
    keeper.envelopes(total as usize, Duration::from_secs(60)).await;

    let mut resumed = app.stream(&token, "user:alice", Some(&after)).await;
    let missed = resumed.envelopes(total as usize, WAIT).await;
    assert_eq!(
        ns(&missed),
        (1..=total).collect::<Vec<_>>(),
        "raw: {}",
        resumed.raw
    );
    assert_strictly_increasing(&seqs(&missed));
    assert!(resumed.next_event(Duration::from_millis(300)).await.is_none());
    let m = metrics(&app.gateway_url()).await;
    assert!(
        !m.contains("herald_redis_reconnects_total 0"),
        "the outage hit the hub: {m}"
    );
    assert_eq!(counter(&m, "herald_replays_from_memory_total"), 1, "{m}");
}

/// History that goes backwards (Postgres failed over to a replica that had
/// not received the last events): every stream gets `herald.reset` at the
/// new head, even those past it, and the events published afterwards reach
/// them though their positions were seen before.
#[sqlx::test(migrations = "../../migrations")]
async fn history_going_backwards_resets_every_stream(pool: PgPool) {
    let mut app = TestApp::spawn(pool.clone()).await;
    let token = user_token("alice");
    let mut s = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut s, 1..=5).await;
    assert_eq!(seqs(&seen), [1, 2, 3, 4, 5]);

    // The "promoted replica" had everything up to seq 2 only.
    fail_over(&mut app, &pool, 2, 2).await;
    expect_rewound_reset(&mut s, "2").await;

    app.start_worker().await;
    app.publish_ok("user:alice", 6).await;
    let next = s.envelopes(1, WAIT).await;
    assert_eq!((ns(&next), seqs(&next)), (vec![6], vec![3]), "raw: {}", s.raw);
    let m = metrics(&app.gateway_url()).await;
    assert!(!m.contains("herald_resets_total 0"), "{m}");
}

/// History rewritten past the watermark before the hub looks (the promoted
/// replica lacked the last events, and a worker that never saw them already
/// numbered new ones at the same positions and beyond): the head is not below
/// the watermark, but the event there is another one. Every stream gets
/// `herald.reset` (rewound) at the new head, and what follows reaches it.
#[sqlx::test(migrations = "../../migrations")]
async fn history_rewritten_past_the_watermark_resets_every_stream(pool: PgPool) {
    let mut app = TestApp::spawn(pool.clone()).await;
    let token = user_token("alice");
    let mut s = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut s, 1..=5).await;
    assert_eq!(seqs(&seen), [1, 2, 3, 4, 5]);

    // Other events at 3..=7, never published on the bus.
    fail_over(&mut app, &pool, 2, 7).await;
    expect_rewound_reset(&mut s, "7").await;

    app.start_worker().await;
    app.publish_ok("user:alice", 6).await;
    let next = s.envelopes(1, WAIT).await;
    assert_eq!((ns(&next), seqs(&next)), (vec![6], vec![8]), "raw: {}", s.raw);
}

/// A failover to a "replica" that had the log up to `kept` only, on which
/// other events (never published on the bus) already took the positions
/// after it up to `head`. The worker is stopped first.
async fn fail_over(app: &mut TestApp, pool: &PgPool, kept: i64, head: i64) {
    app.worker.as_mut().unwrap().stop().await;
    app.worker = None;
    sqlx::query("DELETE FROM events WHERE seq > $1")
        .bind(kept)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (id, seq, topic, type, data, sequenced_at)
         SELECT gen_random_uuid(), g, 'user:alice', 't.other', '{}', now() FROM generate_series($1, $2) g",
    )
    .bind(kept + 1)
    .bind(head)
    .execute(pool)
    .await
    .unwrap();
    herald_test_support::sequencer_at(pool, head).await;
}

/// The next event on `s` is `herald.reset` (rewound) at `id`.
async fn expect_rewound_reset(s: &mut SseClient, id: &str) {
    let reset = s.next_event(WAIT).await.expect("a reset");
    assert_eq!(reset.event, "herald.reset", "raw: {}", s.raw);
    assert_eq!(reset.id, id);
    assert!(reset.data.contains("rewound"), "{reset:?}");
}

/// A gateway that notices a closed stream quickly (heartbeats every 100 ms),
/// with a window and topics lingering for `linger` after their last stream.
async fn app_lingering(pool: PgPool, linger: Duration) -> TestApp {
    let mut s = settings(&redis_url());
    s.gateway.replay_window_bytes = 1 << 20;
    s.gateway.replay_linger = linger;
    s.gateway.heartbeat = Duration::from_millis(100);
    TestApp::spawn_with(pool, s).await
}

async fn wait_for_gauge(app: &TestApp, name: &str, want: u64) {
    let mut m = String::new();
    for _ in 0..100 {
        m = metrics(&app.gateway_url()).await;
        if counter(&m, name) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {want}: {m}");
}

/// The common reconnect: the user's only stream drops (a network blip), events
/// arrive meanwhile, and it comes back. Its topic lingered, so the gateway
/// kept receiving them, and the resume is served from memory, exactly.
#[sqlx::test(migrations = "../../migrations")]
async fn a_stream_that_comes_back_to_a_topic_no_one_carried_meanwhile_resumes_from_memory(pool: PgPool) {
    let app = app_lingering(pool, Duration::from_secs(30)).await;
    let token = user_token("alice");
    let mut only = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut only, 1..=3).await;
    let after = seen[2].seq.to_string();
    drop(only);
    wait_for_gauge(&app, "herald_lingering_topics", 1).await;
    for i in 4..=8 {
        app.publish_ok("user:alice", i).await;
    }

    let m = resume_from_memory_after_3_of_8(&app, &token, &after).await;
    assert_eq!(counter(&m, "herald_lingering_topics"), 0, "carried again: {m}");
}

/// After the linger the topic is let go (its bus subscription too), and a
/// resume replays from Postgres, as exactly.
#[sqlx::test(migrations = "../../migrations")]
async fn a_topic_is_let_go_after_the_linger_and_a_later_resume_replays_from_postgres(pool: PgPool) {
    let app = app_lingering(pool, Duration::from_millis(300)).await;
    let token = user_token("alice");
    let mut only = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut only, 1..=3).await;
    let after = seen[2].seq.to_string();
    drop(only);
    wait_for_gauge(&app, "herald_lingering_topics", 1).await;
    wait_for_gauge(&app, "herald_lingering_topics", 0).await;
    for i in 4..=6 {
        app.publish_ok("user:alice", i).await;
    }

    let mut back = app.stream(&token, "user:alice", Some(&after)).await;
    assert_eq!(ns(&back.envelopes(3, WAIT).await), [4, 5, 6], "raw: {}", back.raw);
    assert!(
        back.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing twice"
    );
    let m = metrics(&app.gateway_url()).await;
    assert_eq!(counter(&m, "herald_replays_total"), 1, "{m}");
    assert_eq!(counter(&m, "herald_replays_from_memory_total"), 0, "{m}");
}

/// With the window on, a position beyond everything the hub forwarded is
/// still a `future` reset (the window covers nothing there), and one the
/// window holds is served from it even after retention pruned it from
/// Postgres: the reset is for a replay that cannot be proved complete, and
/// this one is.
#[sqlx::test(migrations = "../../migrations")]
async fn the_window_judges_future_and_pruned_positions_by_what_it_holds(pool: PgPool) {
    let app = app_with_window(pool.clone(), &redis_url(), 1 << 20).await;
    let token = user_token("alice");
    let mut keeper = app.stream(&token, "user:alice", None).await;
    let seen = publish_seen(&app, &mut keeper, 1..=4).await;
    let head = seen[3].seq.get();

    let mut ahead = app
        .stream(&token, "user:alice", Some(&(head + 100).to_string()))
        .await;
    let e = ahead.next_event(WAIT).await.expect("a reset");
    assert_eq!(e.event, "herald.reset");
    assert!(e.data.contains("future"), "{}", e.data);
    assert_eq!(e.id, head.to_string());

    sqlx::query("DELETE FROM events WHERE seq <= $1")
        .bind(seen[2].seq.get())
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE sequencer SET pruned_seq = $1")
        .bind(seen[2].seq.get())
        .execute(&pool)
        .await
        .unwrap();
    let mut covered = app
        .stream(&token, "user:alice", Some(&seen[0].seq.to_string()))
        .await;
    assert_eq!(
        ns(&covered.envelopes(3, WAIT).await),
        [2, 3, 4],
        "raw: {}",
        covered.raw
    );
    assert!(
        covered.next_event(Duration::from_millis(300)).await.is_none(),
        "nothing twice"
    );
    let m = metrics(&app.gateway_url()).await;
    assert_eq!(counter(&m, "herald_replays_from_memory_total"), 1, "{m}");
}
