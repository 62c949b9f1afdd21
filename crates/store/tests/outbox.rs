//! Waking the worker: a one-statement publish that no other publish of the
//! process overlaps carries its own `NOTIFY`, delivered as it commits;
//! publishes that overlap leave it to the notifier, whose commits never hold
//! Postgres's notify lock across another publish's flush.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::time::Duration;

use herald_domain::{EventType, Topic};
use herald_store::outbox::{Outbox, OUTBOX_CHANNEL};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

fn event() -> (Topic, EventType, serde_json::Value) {
    (
        Topic::parse("user:a").unwrap(),
        EventType::parse("t.n").unwrap(),
        serde_json::json!({"n": 1}),
    )
}

async fn listening(pool: &PgPool) -> PgListener {
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(OUTBOX_CHANNEL).await.unwrap();
    listener
}

/// The pid of the backend that sent the next notification, if one comes soon.
async fn next_sender(listener: &mut PgListener, wait: Duration) -> Option<u32> {
    match tokio::time::timeout(wait, listener.recv()).await {
        Ok(n) => Some(n.unwrap().process_id()),
        Err(_) => None,
    }
}

/// A pool of one connection, opened on first use.
fn one_connection(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone())
}

#[sqlx::test(migrations = "../../migrations")]
async fn a_lone_publish_wakes_the_worker_from_its_own_statement(admin: PgPool) {
    let mut listener = listening(&admin).await;
    let pool = one_connection(&admin);
    let outbox = Outbox::start(pool.clone());
    let (topic, event_type, data) = event();
    outbox.append_alone(&topic, &event_type, &data).await.unwrap();
    let publisher: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();

    let sender = next_sender(&mut listener, Duration::from_secs(5)).await;
    assert_eq!(
        sender,
        Some(publisher as u32),
        "woken by the publishing statement"
    );
    assert_eq!(
        next_sender(&mut listener, Duration::from_millis(300)).await,
        None,
        "and only by it: the notifier was not asked"
    );
}

#[sqlx::test(migrations = "../../migrations")]
async fn overlapping_publishes_leave_the_wake_up_to_the_notifier(admin: PgPool) {
    let mut listener = listening(&admin).await;
    // One connection: the second publish is in flight while the first
    // connects, so neither is alone.
    let pool = one_connection(&admin);
    let outbox = Outbox::start(pool.clone());
    let (topic, event_type, data) = event();
    let (a, b) = tokio::join!(
        outbox.append_alone(&topic, &event_type, &data),
        outbox.append_alone(&topic, &event_type, &data),
    );
    a.unwrap();
    b.unwrap();
    let publisher: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();

    // The first saw the second in flight: the notifier wakes the worker for
    // it. (The second may find itself alone once the first is done, and
    // carry its own.)
    let mut senders = Vec::new();
    while let Some(pid) = next_sender(
        &mut listener,
        Duration::from_secs(if senders.is_empty() { 5 } else { 1 }),
    )
    .await
    {
        senders.push(pid);
    }
    assert!(
        senders.iter().any(|pid| *pid != publisher as u32),
        "woken by the notifier's own connection: {senders:?} (publisher {publisher})"
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(events, 2);
}
