//! The partitioned event log: what retention drops is whole partitions, and
//! no read after a position ever steps over an event that is still owed.
//!
//! - A partition is sealed (its band of positions final) only when no row
//!   can still land in it: a transaction that drew an insertion number
//!   before the partition closed holds the seal off until it ends, and its
//!   row is found by every replay afterwards.
//! - Every history read while partitions roll, seal and drop under a
//!   steady publish is complete after its position, or says it is not.
//! - An existing (unpartitioned) log is converted in place: its events stay
//!   readable, its unsequenced ones get their positions after the ones
//!   already given, in order, and it is dropped like any partition once
//!   its events expire.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::borrow::Cow;
use std::time::{Duration, Instant};

use herald_domain::Seq;
use herald_store::history::events_after;
use herald_worker::event_log::{prune, upkeep, Policy};
use herald_worker::sequencer::sequence_batch;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TOPIC: &str = "user:a";

/// Rolls at every pass: every upkeep that finds events in the current
/// partition closes it.
const ROLL_ALWAYS: Policy = Policy {
    partition_size: 10_000_000,
    span: Duration::from_millis(1),
};

async fn insert(conn: &mut sqlx::PgConnection, n: i64) {
    sqlx::query(
        "INSERT INTO events (id, topic, type, data) VALUES ($1, $2, 't.n', jsonb_build_object('n', $3))",
    )
    .bind(Uuid::now_v7())
    .bind(TOPIC)
    .bind(n)
    .execute(conn)
    .await
    .unwrap();
}

async fn partitions(pool: &PgPool) -> Vec<(String, bool, Option<i64>, Option<i64>)> {
    sqlx::query_as("SELECT name, sealed_at IS NOT NULL, min_seq, max_seq FROM event_partitions ORDER BY lo")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn sequence_all(pool: &PgPool) -> Vec<i64> {
    let mut seqs = Vec::new();
    loop {
        let batch = sequence_batch(pool, 1000).await.unwrap().events;
        if batch.is_empty() {
            return seqs;
        }
        seqs.extend(batch.iter().map(|e| e.seq.get()));
    }
}

/// Upkeep passes until one has sealed something, or `wait` is over.
async fn seal(pool: &PgPool, wait: Duration) -> u64 {
    let deadline = Instant::now() + wait;
    loop {
        let u = upkeep(pool, ROLL_ALWAYS).await.unwrap();
        if u.sealed > 0 || Instant::now() >= deadline {
            return u.sealed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Upkeep passes until the oldest partition is sealed, or `wait` is over.
async fn first_sealed(pool: &PgPool, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        upkeep(pool, ROLL_ALWAYS).await.unwrap();
        if partitions(pool).await[0].1 || Instant::now() >= deadline {
            return partitions(pool).await[0].1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The same straggler, in a session that reports no activity
/// (`track_activities = off`: no `xact_start` in `pg_stat_activity`). The
/// seal judged stragglers by `xact_start` and sealed under it; the row,
/// committed into a sealed partition, was never sequenced.
#[sqlx::test(migrations = "../../migrations")]
async fn a_straggler_that_reports_no_activity_still_holds_the_seal_off(pool: PgPool) {
    herald_test_support::event_partitions(&pool, 4, 3).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET track_activities = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut straggler = sqlx::Connection::begin(&mut *conn).await.unwrap();
    insert(&mut straggler, 0).await;
    for n in 1..=5 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    assert_eq!(sequence_all(&pool).await, [1, 2, 3, 4, 5]);
    assert!(
        !first_sealed(&pool, Duration::from_millis(500)).await,
        "a transaction that drew a number in the first partition still runs"
    );
    straggler.commit().await.unwrap();
    assert_eq!(
        sequence_all(&pool).await,
        [6],
        "the straggler's event is sequenced"
    );
    assert!(first_sealed(&pool, Duration::from_secs(5)).await);
    let first = &partitions(&pool).await[0];
    assert_eq!((first.2, first.3), (Some(1), Some(6)), "{first:?}");
}

#[sqlx::test(migrations = "../../migrations")]
async fn no_partition_seals_while_a_transaction_that_drew_a_number_in_it_runs(pool: PgPool) {
    // Partitions of 4 insertion numbers: the first closes with the 4th insert.
    herald_test_support::event_partitions(&pool, 4, 3).await;
    // A straggler: its row's insertion number is in the first partition,
    // and it commits only after that partition closed.
    let mut straggler = pool.begin().await.unwrap();
    insert(&mut straggler, 0).await;
    for n in 1..=5 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    assert_eq!(sequence_all(&pool).await, [1, 2, 3, 4, 5]);
    // While a writer's transaction is open the roll cannot take its lock:
    // it gives up after its lock timeout instead of holding writers off.
    let started = Instant::now();
    let u = upkeep(&pool, ROLL_ALWAYS).await.unwrap();
    assert!(!u.rolled, "no roll while a writer's transaction is open");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    assert!(
        !first_sealed(&pool, Duration::from_millis(500)).await,
        "the straggler's transaction still runs: the first partition may not seal"
    );
    straggler.commit().await.unwrap();
    assert!(
        !first_sealed(&pool, Duration::from_millis(500)).await,
        "its row waits for a seq: still the first partition may not seal"
    );
    assert_eq!(sequence_all(&pool).await, [6]);
    assert!(first_sealed(&pool, Duration::from_secs(5)).await);
    let first = &partitions(&pool).await[0];
    assert_eq!(
        (first.1, first.2, first.3),
        (true, Some(1), Some(6)),
        "the band includes the straggler's position: {first:?}"
    );
    let second = &partitions(&pool).await[1];
    assert_eq!((second.2, second.3), (Some(4), Some(5)), "{second:?}");

    // Every replay after a position finds what is after it, the straggler too.
    for after in 0..=6 {
        let page = events_after(&pool, &[TOPIC.to_string()], Seq::new(after), 100)
            .await
            .unwrap();
        let seqs: Vec<i64> = page.events.iter().map(|e| e.seq.get()).collect();
        assert_eq!(seqs, (after + 1..=6).collect::<Vec<_>>(), "after {after}");
    }
}

fn stalled<T>(what: &str) -> impl FnOnce(tokio::time::error::Elapsed) -> T + '_ {
    move |_| panic!("{what} waited for the lock on the oldest partition")
}

/// Retention's last steps hold ACCESS EXCLUSIVE on an old partition (DETACH
/// … FINALIZE, DROP). Nothing on the delivery path may need one: sequencing,
/// a replay page after a recent position and the gateways' check of the
/// event at their watermark open only the partitions that may hold what they
/// read, so none of them waits behind such a lock (they used to plan and lock
/// every partition, and a retention pass stalled delivery).
#[sqlx::test(migrations = "../../migrations")]
async fn the_delivery_path_never_waits_for_a_lock_on_an_old_partition(pool: PgPool) {
    herald_test_support::event_partitions(&pool, 4, 3).await;
    for n in 1..=6 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    assert_eq!(sequence_all(&pool).await, [1, 2, 3, 4, 5, 6]);
    assert!(first_sealed(&pool, Duration::from_secs(5)).await);
    let (oldest, ..) = partitions(&pool).await.remove(0);

    let mut retention = pool.begin().await.unwrap();
    sqlx::raw_sql(&format!("LOCK TABLE \"{oldest}\" IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *retention)
        .await
        .unwrap();
    for n in 7..=8 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    let fresh = tokio::time::timeout(Duration::from_secs(5), sequence_batch(&pool, 100))
        .await
        .unwrap_or_else(stalled("sequencing"))
        .unwrap();
    assert_eq!(
        fresh.events.iter().map(|e| e.seq.get()).collect::<Vec<_>>(),
        [7, 8]
    );
    let page = tokio::time::timeout(
        Duration::from_secs(5),
        events_after(&pool, &[TOPIC.to_string()], Seq::new(5), 100),
    )
    .await
    .unwrap_or_else(stalled("a replay page"))
    .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq.get()).collect::<Vec<_>>(),
        [6, 7, 8]
    );
    let at = tokio::time::timeout(
        Duration::from_secs(5),
        herald_store::history::id_at(&pool, Seq::new(7)),
    )
    .await
    .unwrap_or_else(stalled("the check of the event at a watermark"))
    .unwrap();
    assert_eq!(at, Some(fresh.events[0].id));
    retention.rollback().await.unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn every_history_read_is_complete_or_says_so_while_partitions_are_dropped(pool: PgPool) {
    const EVENTS: i64 = 3_000;
    let stop = CancellationToken::new();
    // Publisher and sequencer: one topic, so a complete page after N is
    // exactly N+1, N+2, ...
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for n in 1..=EVENTS {
                insert(&mut pool.acquire().await.unwrap(), n).await;
                if n % 10 == 0 {
                    sequence_all(&pool).await;
                }
            }
            sequence_all(&pool).await;
        })
    };
    // Upkeep and retention with a cutoff in the future: every sealed
    // partition goes, as fast as they seal.
    let pruner = {
        let (pool, stop) = (pool.clone(), stop.clone());
        tokio::spawn(async move {
            let mut dropped = 0u64;
            while !stop.is_cancelled() {
                upkeep(&pool, ROLL_ALWAYS).await.unwrap();
                let cutoff = chrono::Utc::now() + chrono::Duration::days(1);
                dropped += prune(&pool, cutoff, &stop).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            dropped
        })
    };
    // Readers from every kind of position: behind the prune, at it, near the head.
    let mut complete = 0;
    let mut truncated = 0;
    let mut after = 0i64;
    while !writer.is_finished() || after < EVENTS {
        let page = events_after(&pool, &[TOPIC.to_string()], Seq::new(after), 50)
            .await
            .unwrap();
        let seqs: Vec<i64> = page.events.iter().map(|e| e.seq.get()).collect();
        if page.complete_after(Seq::new(after)) {
            complete += 1;
            assert_eq!(
                seqs,
                (after + 1..).take(seqs.len()).collect::<Vec<_>>(),
                "a page that claims completeness after {after} skipped an event \
                 (pruned up to {:?})",
                page.positions.pruned
            );
            after = seqs.last().copied().unwrap_or(after);
        } else {
            truncated += 1;
            // Resume where the log is whole, like a client after a reset.
            after = page.positions.pruned.get();
        }
        // And a reader far behind: from half-way back, where the prune is.
        let behind = after / 2;
        let page = events_after(&pool, &[TOPIC.to_string()], Seq::new(behind), 50)
            .await
            .unwrap();
        let old: Vec<i64> = page.events.iter().map(|e| e.seq.get()).collect();
        if page.complete_after(Seq::new(behind)) {
            complete += 1;
            assert_eq!(
                old,
                (behind + 1..).take(old.len()).collect::<Vec<_>>(),
                "a page that claims completeness after {behind} skipped an event"
            );
        } else {
            truncated += 1;
            assert!(
                old.iter().all(|s| *s > behind),
                "a truncated page still holds only what is after {behind}"
            );
        }
        if seqs.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    writer.await.unwrap();
    stop.cancel();
    let dropped = pruner.await.unwrap();
    println!("{complete} complete pages, {truncated} truncated, {dropped} events dropped");
    assert!(dropped > 0, "retention dropped partitions meanwhile");
    assert!(complete > 10, "pages were read: {complete}");
    assert!(truncated > 0, "some reads were behind the prune: {truncated}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass")
            .fetch_one(&pool)
            .await
            .unwrap();
    let tracked = partitions(&pool).await.len() as i64;
    assert_eq!(
        left, tracked,
        "every partition attached is tracked, none half-dropped"
    );
}

/// The migrations before the partitioned log.
fn unpartitioned() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("../../migrations");
    m.migrations = Cow::Owned(
        m.migrations
            .iter()
            .filter(|x| x.version < 20261202000001)
            .cloned()
            .collect(),
    );
    m
}

#[sqlx::test(migrations = false)]
async fn an_existing_log_is_converted_in_place(pool: PgPool) {
    unpartitioned().run(&pool).await.unwrap();
    for n in 1..=6 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    // Four sequenced before the conversion, two still in the outbox.
    let before: Vec<i64> = sqlx::query_scalar("SELECT seq FROM herald_sequence(4)")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(before.len(), 4);

    sqlx::migrate!("../../migrations").run(&pool).await.unwrap();
    let kind: String = sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE relname = 'events'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kind, "p", "events is partitioned");
    for n in 7..=8 {
        insert(&mut pool.acquire().await.unwrap(), n).await;
    }
    assert_eq!(sequence_all(&pool).await, [5, 6, 7, 8]);
    let page = events_after(&pool, &[TOPIC.to_string()], Seq::new(0), 100)
        .await
        .unwrap();
    let ns: Vec<i64> = page
        .events
        .iter()
        .map(|e| e.data["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, (1..=8).collect::<Vec<_>>(), "every event, in insertion order");
    assert!(page.complete_after(Seq::new(0)));

    // The old table is the first partition; it seals and goes with its events.
    assert_eq!(partitions(&pool).await[0].0, "events_legacy");
    sqlx::query("UPDATE events SET created_at = now() - interval '2 days' WHERE seq <= 6")
        .execute(&pool)
        .await
        .unwrap();
    assert!(seal(&pool, Duration::from_secs(5)).await > 0);
    let cutoff = chrono::Utc::now() - chrono::Duration::days(1);
    let dropped = prune(&pool, cutoff, &CancellationToken::new()).await.unwrap();
    assert_eq!(dropped, 6, "the converted events, and no more");
    let legacy: Option<String> = sqlx::query_scalar("SELECT to_regclass('events_legacy')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(legacy, None, "the old table is gone");
    let page = events_after(&pool, &[TOPIC.to_string()], Seq::new(6), 100)
        .await
        .unwrap();
    assert!(page.complete_after(Seq::new(6)));
    assert_eq!(page.events.len(), 2);
    assert!(!page.complete_after(Seq::new(5)), "what went is known to be gone");
}
