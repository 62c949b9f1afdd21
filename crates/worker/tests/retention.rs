//! Retention works in bounded steps and never stalls delivery: a prune of
//! hundreds of thousands of expired idempotency keys and events holds the
//! sequencer's row lock (which every delivery goes through) for no more
//! than the end of one small transaction, so events published meanwhile
//! arrive as fast as ever. And what it deletes is always a prefix of the log
//! recorded in `pruned_seq` in the same transaction.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_test_support::{user_token, TestApp};
use herald_worker::event_log::{upkeep, Policy};
use herald_worker::retention::prune_pass;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const KEYS: i64 = 300_000;
const EVENTS: i64 = 30_000;
const POLICY: Policy = Policy {
    partition_size: 10_000_000,
    span: Duration::from_secs(3600),
};

/// Expired history: `EVENTS` events (seq 1..) in a partition of their own,
/// and `KEYS` idempotency keys, all two days old.
async fn expired_history(pool: &PgPool) {
    herald_test_support::event_partitions(pool, EVENTS, 2).await;
    sqlx::query(
        "INSERT INTO idempotency_keys (principal, key, request_hash, status, response, created_at)
         SELECT 'svc', 'k' || g, '\\x00', 202, '{}', now() - interval '2 days'
           FROM generate_series(1, $1) g",
    )
    .bind(KEYS)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events (id, topic, type, data, seq, created_at, sequenced_at)
         SELECT gen_random_uuid(), 'room:old', 't', '{}', g, now() - interval '2 days', now() - interval '2 days'
           FROM generate_series(1, $1) g",
    )
    .bind(EVENTS)
    .execute(pool)
    .await
    .unwrap();
    herald_test_support::sequencer_at(pool, EVENTS).await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[sqlx::test(migrations = "../../migrations")]
async fn retention_never_stalls_delivery(pool: PgPool) {
    expired_history(&pool).await;
    let app = TestApp::spawn(pool.clone()).await;
    let mut stream = app.stream(&user_token("alice"), "user:alice", None).await;
    let reader = tokio::spawn(async move {
        let mut arrived = Vec::new();
        while let Some(e) = stream.envelopes(1, Duration::from_secs(3)).await.pop() {
            arrived.push((e.data["n"].as_u64().unwrap(), Instant::now()));
        }
        arrived
    });

    // Probe: how long taking the sequencer's row lock waits, every few ms.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (pool, done) = (pool.clone(), done.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let mut tx = pool.begin().await.unwrap();
                let started = Instant::now();
                sqlx::query("SELECT last_seq FROM sequencer FOR UPDATE")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                worst = worst.max(started.elapsed());
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            worst
        })
    };
    // Delivery during the prune: publish every 20 ms, time each to the stream.
    let publisher = {
        let (api, done) = (app.api_url(), done.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                let r = http
                    .post(format!("{api}/v1/events"))
                    .bearer_auth(herald_test_support::service_token())
                    .json(&json!({"topic": "user:alice", "type": "t.n", "data": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                sent.push(Instant::now());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };

    // Sealed first (the worker's upkeep does this on every pass).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        upkeep(&pool, POLICY).await.unwrap();
        let sealed: bool =
            sqlx::query_scalar("SELECT sealed_at IS NOT NULL FROM event_partitions ORDER BY lo LIMIT 1")
                .fetch_one(&pool)
                .await
                .unwrap();
        if sealed {
            break;
        }
        assert!(Instant::now() < deadline, "the expired partition never sealed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let pruned = prune_pass(
        &pool,
        Duration::from_secs(86_400),
        1_000,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let worst_lock_wait = probe.await.unwrap();
    let sent = publisher.await.unwrap();

    let arrived = reader.await.unwrap();
    let ns: Vec<u64> = arrived.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        ns,
        (1..=sent.len() as u64).collect::<Vec<_>>(),
        "every event, once, in order"
    );
    let mut latencies: Vec<Duration> = arrived
        .iter()
        .zip(&sent)
        .map(|((_, got), accepted)| got.saturating_duration_since(*accepted))
        .collect();
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );
    println!(
        "pruned {} events and {} keys in {took:?}; worst sequencer lock wait {worst_lock_wait:?}; \
         {} events delivered meanwhile, latency p50 {p50:?} p99 {p99:?} max {max:?}",
        pruned.events,
        pruned.idempotency_keys,
        latencies.len()
    );
    assert_eq!(
        (pruned.events, pruned.idempotency_keys),
        (EVENTS as u64, KEYS as u64)
    );
    let floor: i64 = sqlx::query_scalar("SELECT pruned_seq FROM sequencer")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(floor, EVENTS, "pruned_seq records the deleted prefix");
    assert!(
        worst_lock_wait < Duration::from_millis(250),
        "the sequencer lock waited {worst_lock_wait:?} behind retention"
    );
    assert!(
        latencies.len() >= 10,
        "the prune ran long enough to measure ({took:?})"
    );
    assert!(
        max < Duration::from_secs(1),
        "delivery stalled during the prune: max {max:?}"
    );
}

/// Finished scheduled deliveries older than the retention go; pending ones
/// stay however old (they are still to be delivered), and so do recent ones.
#[sqlx::test(migrations = "../../migrations")]
async fn retention_prunes_finished_scheduled_deliveries_only(pool: PgPool) {
    for (done, age_days) in [
        ("delivered", 3),
        ("cancelled", 3),
        ("pending", 3),
        ("delivered", 0),
    ] {
        sqlx::query(
            "INSERT INTO scheduled_deliveries (id, kind, deliver_at, payload, delivered_at, cancelled_at)
             VALUES ($1, 'event', now() - make_interval(days => $2), '{}',
                     CASE WHEN $3 = 'delivered' THEN now() - make_interval(days => $2) END,
                     CASE WHEN $3 = 'cancelled' THEN now() - make_interval(days => $2) END)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(age_days)
        .bind(done)
        .execute(&pool)
        .await
        .unwrap();
    }
    let pruned = prune_pass(
        &pool,
        Duration::from_secs(86_400),
        1_000,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(pruned.scheduled, 2);
    let left: Vec<(bool, bool)> = sqlx::query_as(
        "SELECT delivered_at IS NOT NULL, cancelled_at IS NOT NULL FROM scheduled_deliveries ORDER BY deliver_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        [(false, false), (true, false)],
        "the old pending one and the recent one"
    );
}
