//! The relay's own connections dying under it (a Postgres restart, a
//! proxy's idle timeout, an operator's `pg_terminate_backend`): its
//! publishing transaction is raw SQL on a connection of its own, so a death
//! anywhere in it must roll back, and the next step must publish from the
//! recorded position on a fresh connection — every event reaches the bus,
//! none skipped, in order (a republished one is dropped by the gateways'
//! watermark, as here).

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use herald_worker::metrics::WorkerMetrics;
use herald_worker::relay::{OutboxRelay, RelayConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The relay's publishing connection (its last statement names
/// `published_seq`; spelled in two pieces here, so that this statement does
/// not match itself on the test's other connections) and its leader lock
/// connection (the key `0x6865_7261_6c64`), in this test's database only.
async fn kill_relay_connections(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND (query LIKE '%' || 'published' || '_seq%'
                 OR pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 26725 AND objid = 1918987364))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_event_is_published_in_order_while_the_relays_connections_are_killed(pool: PgPool) {
    let settings = herald_test_support::settings(&herald_test_support::redis_url());
    let prefix = settings.bus.prefix.clone();
    let redis = redis::Client::open(herald_test_support::redis_url()).unwrap();
    let mut pubsub = redis.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(herald_bus::channel(&prefix, "user:a"))
        .await
        .unwrap();
    let mut messages = pubsub.into_on_message();

    let config = RelayConfig {
        bus: herald_bus::Bus::Redis {
            url: herald_test_support::redis_url(),
            prefix,
        },
        poll: Duration::from_millis(10),
        batch: 5,
    };
    let metrics = Arc::new(WorkerMetrics::default());
    let relay = OutboxRelay::new(pool.clone(), config, metrics.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let total = 200i64;
    let mut killed = 0;
    for n in 1..=total {
        sqlx::query("INSERT INTO events (id, topic, type, data) VALUES ($1, 'user:a', 't.n', jsonb_build_object('n', $2))")
            .bind(Uuid::now_v7())
            .bind(n)
            .execute(&pool)
            .await
            .unwrap();
        if n % 10 == 0 {
            killed += kill_relay_connections(&pool).await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let mut delivered = Vec::new();
    let mut seen = 0;
    while seen < total {
        let msg = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {seen} of {total} events reached the bus: {delivered:?}"))
            .unwrap();
        let e: herald_domain::Envelope = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        // What a gateway does: positions at or below its watermark are republished.
        if e.seq.get() > seen {
            delivered.push((e.seq.get(), e.data["n"].as_i64().unwrap()));
            seen = e.seq.get();
        }
    }
    let seqs: Vec<i64> = delivered.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "no position skipped");
    let ns: Vec<i64> = delivered.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        ns,
        (1..=total).collect::<Vec<_>>(),
        "one inserter: seq order is its order"
    );
    assert!(
        killed >= 10,
        "the relay's connections were killed {killed} times only"
    );
    assert!(metrics.relay_errors.get() > 0, "the kills interrupted the relay");

    shutdown.cancel();
    running.await.unwrap();
}
