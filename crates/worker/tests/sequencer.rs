//! The ordering invariant: `seq` follows commit order, never insert order.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use herald_worker::sequencer::sequence_batch;
use sqlx::PgPool;
use uuid::Uuid;

async fn insert(conn: &mut sqlx::PgConnection, n: i32) {
    sqlx::query("INSERT INTO events (id, topic, type, data) VALUES ($1, 'user:a', 't.n', jsonb_build_object('n', $2))")
        .bind(Uuid::now_v7())
        .bind(n)
        .execute(conn)
        .await
        .unwrap();
}

#[sqlx::test(migrations = "../../migrations")]
async fn seq_follows_commit_order_not_insert_order(pool: PgPool) {
    // A inserts first but commits last.
    let mut a = pool.begin().await.unwrap();
    insert(&mut a, 1).await;
    let mut b = pool.begin().await.unwrap();
    insert(&mut b, 2).await;
    b.commit().await.unwrap();

    let first = sequence_batch(&pool, 100).await.unwrap().events;
    assert_eq!(first.len(), 1, "only committed rows get a position");
    assert_eq!((first[0].seq.get(), first[0].data["n"].as_i64()), (1, Some(2)));

    // A reader that has seen seq 1 resumes "after 1"...
    a.commit().await.unwrap();
    let second = sequence_batch(&pool, 100).await.unwrap().events;
    assert_eq!((second[0].seq.get(), second[0].data["n"].as_i64()), (2, Some(1)));
    // ...and finds A, because A's position is above every position visible before it.
    let after_one: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM events WHERE seq > 1 ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(after_one, vec![(2,)]);
}

#[sqlx::test(migrations = "../../migrations")]
async fn concurrent_sequencers_hand_out_contiguous_unique_positions(pool: PgPool) {
    let mut conn = pool.acquire().await.unwrap();
    for n in 0..300 {
        insert(&mut conn, n).await;
    }
    drop(conn);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = sequence_batch(&pool, 7).await.unwrap().events;
                    if batch.is_empty() {
                        return got;
                    }
                    // Each batch is one contiguous block.
                    for w in batch.windows(2) {
                        assert_eq!(w[0].seq.next(), w[1].seq);
                    }
                    got.extend(batch.into_iter().map(|e| e.seq.get()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=300).collect::<Vec<i64>>());
    // Insertion order is kept: n grows with seq.
    let ns: Vec<(i32,)> = sqlx::query_as("SELECT (data->>'n')::int FROM events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(ns.windows(2).all(|w| w[0].0 < w[1].0));
}

/// Two relays that both believe they lead (say, one lost its lock connection
/// but not its pool) still put every event on the bus in `seq` order, because
/// publishing is fenced (an advisory lock, and the positions read once it is held).
#[sqlx::test(migrations = "../../migrations")]
async fn two_relays_leading_at_once_still_publish_in_seq_order(pool: PgPool) {
    use futures_util::StreamExt;
    use herald_worker::relay::{OutboxRelay, RelayConfig};

    let settings = herald_test_support::settings(&herald_test_support::redis_url());
    let prefix = settings.bus.prefix.clone();
    let client = redis::Client::open(herald_test_support::redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(herald_bus::channel(&prefix, "user:a"))
        .await
        .unwrap();
    let mut messages = pubsub.into_on_message();

    let total = 240;
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            for n in 0..total {
                insert(&mut conn, n).await;
            }
        })
    };
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            let config = RelayConfig {
                bus: herald_bus::Bus::Redis {
                    url: herald_test_support::redis_url(),
                    prefix: prefix.clone(),
                },
                poll: std::time::Duration::from_millis(10),
                batch: 7,
            };
            tokio::spawn(async move {
                let mut relay = OutboxRelay::new(pool.clone(), config, Default::default()).unwrap();
                for _ in 0..2_000 {
                    relay.step().await.unwrap();
                    let left: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM events WHERE seq IS NULL OR seq > (SELECT published_seq FROM sequencer)",
                    )
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                    if left == 0 && relay_done(&pool, total).await {
                        return;
                    }
                }
                panic!("relay did not finish");
            })
        })
        .collect();
    writer.await.unwrap();
    for r in relays {
        r.await.unwrap();
    }
    let mut seqs = Vec::new();
    while seqs.len() < total as usize {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next())
            .await
            .expect("every event reaches the bus")
            .unwrap();
        let e: herald_domain::Envelope = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        seqs.push(e.seq.get());
    }
    assert_eq!(
        seqs,
        (1..=total as i64).collect::<Vec<_>>(),
        "bus order is seq order, no gap, no duplicate"
    );
}

async fn relay_done(pool: &PgPool, total: i32) -> bool {
    let published: i64 = sqlx::query_scalar("SELECT published_seq FROM sequencer")
        .fetch_one(pool)
        .await
        .unwrap();
    published == i64::from(total)
}

/// A batch (one insertion number) is sequenced whole: a step that reaches its
/// first rows takes the rest too, past the step's limit, so no event that
/// commits later can land between two of its positions.
#[sqlx::test(migrations = "../../migrations")]
async fn a_step_never_splits_a_batch(pool: PgPool) {
    // Three batches of 300, one insertion number each.
    for b in 0..3i32 {
        sqlx::query(
            "WITH n AS (SELECT nextval(pg_get_serial_sequence('events', 'pending_no')) AS no)
             INSERT INTO events (id, pending_no, batch_pos, topic, type, data) OVERRIDING SYSTEM VALUE
             SELECT gen_random_uuid(), n.no, g, 'user:a', 't', jsonb_build_object('b', $1::int, 'i', g)
               FROM n, generate_series(1, 300) g",
        )
        .bind(b)
        .execute(&pool)
        .await
        .unwrap();
    }
    let first = sequence_batch(&pool, 500).await.unwrap().events;
    assert_eq!(first.len(), 600, "the 500th row's batch is taken whole");
    let second = sequence_batch(&pool, 500).await.unwrap().events;
    assert_eq!(second.len(), 300);
    for (k, batch) in first.chunks(300).chain(second.chunks(300)).enumerate() {
        let seqs: Vec<i64> = batch.iter().map(|e| e.seq.get()).collect();
        let from = seqs[0];
        assert_eq!(
            seqs,
            (from..from + 300).collect::<Vec<_>>(),
            "batch {k} consecutive"
        );
        let is: Vec<i64> = batch.iter().map(|e| e.data["i"].as_i64().unwrap()).collect();
        assert_eq!(is, (1..=300).collect::<Vec<_>>(), "in the order given");
    }
}

async fn floor(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT floor_no FROM sequencer")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Sequencing steps more than the floor's check interval (100 ms) apart,
/// each after one more committed event.
async fn steps_apart(pool: &PgPool, steps: usize, n: i32) -> usize {
    let mut sequenced = 0;
    for _ in 0..steps {
        insert(&mut pool.acquire().await.unwrap(), n).await;
        sequenced += sequence_batch(pool, 100).await.unwrap().events.len();
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    }
    sequenced
}

/// The outbox read starts at the sequencer's floor, and the floor passes an
/// insertion number only once no transaction can still commit a row with
/// it: one that drew a number and stays open holds the floor below it
/// however many events are sequenced after, and its row is sequenced when
/// it commits. (Were the floor raised past it, its event would never get a
/// position: never delivered, never in any history.)
#[sqlx::test(migrations = "../../migrations")]
async fn an_open_transaction_holds_the_floor_below_its_row(pool: PgPool) {
    let mut open = pool.begin().await.unwrap();
    insert(&mut open, -1).await;
    let held: i64 = sqlx::query_scalar("SELECT max(pending_no) FROM events")
        .fetch_one(&mut *open)
        .await
        .unwrap();

    assert_eq!(steps_apart(&pool, 6, 1).await, 6);
    assert!(
        floor(&pool).await <= held,
        "the floor {} passed the open transaction's row {held}",
        floor(&pool).await
    );

    open.commit().await.unwrap();
    let late = sequence_batch(&pool, 100).await.unwrap().events;
    assert_eq!(late.len(), 1, "the late row is found");
    assert_eq!((late[0].seq.get(), late[0].data["n"].as_i64()), (7, Some(-1)));

    // With nothing open any more, the floor moves past everything sequenced.
    steps_apart(&pool, 4, 2).await;
    let last: i64 = sqlx::query_scalar("SELECT max(pending_no) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let now = floor(&pool).await;
    assert!(
        now > held,
        "the floor rose past the committed row ({now} <= {held})"
    );
    assert!(
        now <= last + 1,
        "the floor {now} is not past the next insertion number"
    );
    let below: i64 = sqlx::query_scalar("SELECT herald_sequence_floor_check()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(below, 0, "nothing waits below the floor");
}

/// The floor waits for a number drawn before its row exists: a transaction
/// that took an insertion number with `nextval` (as the batch path does)
/// and inserts with it later holds the floor below that number, though no
/// row shows it yet; its row is sequenced when it commits.
#[sqlx::test(migrations = "../../migrations")]
async fn a_number_drawn_before_its_row_holds_the_floor(pool: PgPool) {
    let mut open = pool.begin().await.unwrap();
    let drawn: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('events', 'pending_no'))")
        .fetch_one(&mut *open)
        .await
        .unwrap();

    assert_eq!(steps_apart(&pool, 6, 1).await, 6);
    assert!(
        floor(&pool).await <= drawn,
        "the floor {} passed the number {drawn} drawn by an open transaction",
        floor(&pool).await
    );

    sqlx::query(
        "INSERT INTO events (id, pending_no, topic, type, data) OVERRIDING SYSTEM VALUE
         VALUES ($1, $2, 'user:a', 't.n', jsonb_build_object('n', -1))",
    )
    .bind(Uuid::now_v7())
    .bind(drawn)
    .execute(&mut *open)
    .await
    .unwrap();
    open.commit().await.unwrap();
    let late = sequence_batch(&pool, 100).await.unwrap().events;
    assert_eq!(late.len(), 1, "the late row is found");
    assert_eq!(late[0].data["n"].as_i64(), Some(-1));
}

/// Only transactions that hold an insertion number hold the floor: one that
/// stays open without drawing any (a `pg_dump`, a session idle in a
/// transaction, a reader of the log) does not keep every later step reading
/// from below it.
#[sqlx::test(migrations = "../../migrations")]
async fn a_transaction_that_drew_no_number_does_not_hold_the_floor(pool: PgPool) {
    let mut open = pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM events")
        .execute(&mut *open)
        .await
        .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT herald_next_pending_no()")
        .fetch_one(&pool)
        .await
        .unwrap();

    steps_apart(&pool, 6, 1).await;
    let now = floor(&pool).await;
    assert!(
        now > before,
        "the floor {now} stayed below {before} while a transaction that drew no number was open"
    );
    open.commit().await.unwrap();
}

/// The index pages one sequencing step reads, on `conn` (one backend for
/// every count compared: a cold one's catalog reads count too).
async fn step_buffers(pool: &PgPool, conn: &mut sqlx::PgConnection) -> i64 {
    insert(&mut pool.acquire().await.unwrap(), 0).await;
    herald_test_support::buffers_touched(conn, "SELECT * FROM herald_sequence(1000)").await
}

/// What a step costs does not grow with the events sequenced before it.
/// Every sequenced row leaves a dead entry in the outbox index until VACUUM
/// (autovacuum lets a partition gather a fifth of its size), and a read
/// from the index's left edge stepped over all of them: 60,000 events put
/// ~220 more index pages under every step.
#[sqlx::test(migrations = "../../migrations")]
async fn a_step_reads_no_more_after_many_events_were_sequenced(pool: PgPool) {
    herald_test_support::autovacuum_off(&pool).await;
    steps_apart(&pool, 3, 0).await;
    let mut conn = pool.acquire().await.unwrap();
    step_buffers(&pool, &mut conn).await; // warm: plans and catalogs cached
    let before = step_buffers(&pool, &mut conn).await;

    sqlx::query(
        "INSERT INTO events (id, topic, type, data)
         SELECT gen_random_uuid(), 'user:a', 't.n', jsonb_build_object('n', g)
           FROM generate_series(1, 60000) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(sequence_batch(&pool, 100_000).await.unwrap().events.len(), 60_000);
    steps_apart(&pool, 3, 0).await;
    let after = step_buffers(&pool, &mut conn).await;
    assert!(
        after <= before + 30,
        "a step read {after} buffers after 60,000 sequenced events, {before} before"
    );
}

/// An idle worker's polls commit nothing: once the floor has caught up with
/// the insertion numbers, an empty step leaves the `sequencer` row as it was
/// (it wrote it at every look at the floor, five times a second at the
/// default poll).
#[sqlx::test(migrations = "../../migrations")]
async fn empty_steps_write_nothing_once_the_floor_caught_up(pool: PgPool) {
    steps_apart(&pool, 3, 0).await;
    for _ in 0..3 {
        sequence_batch(&pool, 100).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    }
    let version = || async {
        sqlx::query_scalar::<_, String>("SELECT xmin::text FROM sequencer")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let before = version().await;
    for _ in 0..4 {
        assert!(sequence_batch(&pool, 100).await.unwrap().events.is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    }
    assert_eq!(version().await, before, "an empty step wrote the sequencer row");
}
