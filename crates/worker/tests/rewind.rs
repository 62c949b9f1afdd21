//! History going backwards (a failover to a standby that lacked the last
//! commits): the leader notices that the log's head is below what it
//! sequenced, counts it, and holds the head there before sequencing again,
//! so that gateways see it below their watermark and reset their streams.
//! The positions above the head are then given again, to other events.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_worker::metrics::WorkerMetrics;
use herald_worker::relay::{OutboxRelay, RelayConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn insert(pool: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO events (id, topic, type, data) VALUES ($1, 'user:a', 't.n', '{}')")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn seq_of(pool: &PgPool, id: Uuid) -> Option<i64> {
    sqlx::query_scalar("SELECT seq FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_leader_that_finds_history_rewound_counts_it_and_holds_the_head(pool: PgPool) {
    let settings = herald_test_support::settings(&herald_test_support::redis_url());
    let config = RelayConfig {
        bus: herald_bus::Bus::Redis {
            url: herald_test_support::redis_url(),
            prefix: settings.bus.prefix.clone(),
        },
        poll: Duration::from_millis(10),
        batch: 100,
    };
    let metrics = Arc::new(WorkerMetrics::default());
    let relay = OutboxRelay::new(pool.clone(), config, metrics.clone()).unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    let mut last = Uuid::nil();
    for _ in 0..5 {
        last = insert(&pool).await;
    }
    until("five events are published", || async {
        sqlx::query_scalar::<_, i64>("SELECT published_seq FROM sequencer")
            .fetch_one(&pool)
            .await
            .unwrap()
            == 5
    })
    .await;
    assert_eq!(seq_of(&pool, last).await, Some(5));

    // The failover: the new primary never got positions 3 to 5, and the
    // leader's connections to the old one are gone.
    sqlx::query("DELETE FROM events WHERE seq > 2")
        .execute(&pool)
        .await
        .unwrap();
    herald_test_support::sequencer_at(&pool, 2).await;
    // Only this test's database: other tests (and sqlx's own set-up, and
    // every worker's event log upkeep) hold advisory locks too.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_locks
          WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .execute(&pool)
    .await
    .unwrap();

    until("the leader notices the rewind", || async {
        metrics.history_rewinds.get() == 1
    })
    .await;
    let noticed = Instant::now();
    let next = insert(&pool).await;
    until("the new event is sequenced", || async {
        seq_of(&pool, next).await.is_some()
    })
    .await;
    assert!(
        noticed.elapsed() >= Duration::from_secs(2),
        "the head was held for {:?} only",
        noticed.elapsed()
    );
    assert_eq!(
        seq_of(&pool, next).await,
        Some(3),
        "sequencing goes on from the new head: position 3 is given again"
    );

    shutdown.cancel();
    running.await.unwrap();
}
