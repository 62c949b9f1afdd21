//! The sequencer: assigns `seq` to committed outbox rows.
//!
//! # The ordering invariant
//!
//! `seq` must grow in the order events become visible to readers. A database
//! sequence consumed at insert time cannot promise that: two publishers take
//! 7 and 8, the one holding 8 commits first, a reader replays "after 6", sees
//! 8, moves its position to 8 — and never sees 7.
//!
//! So publishers insert with `seq = NULL`, and only the sequencer hands out
//! positions, in transactions that are strictly serialized by the row lock on
//! the single `sequencer` row (`SELECT … FOR UPDATE`). Each sequencing
//! transaction gives the next contiguous block of numbers to rows that were
//! already committed, and commits the rows together with the new `last_seq`.
//! Transaction *n+1* cannot take the lock before transaction *n* commits, so
//! every block becomes visible after all lower blocks: visibility order is
//! `seq` order, for every reader, always.
//!
//! The transaction is the function `herald_sequence` (its migration holds
//! the SQL): each of its statements takes a fresh snapshot, so the rows it
//! picks after the lock is granted include everything sequenced before.
//!
//! # Where the outbox read starts
//!
//! At `sequencer.floor_no`, below which no row waits or ever will, so that a
//! step does not step over the dead index entries every sequenced row leaves
//! until VACUUM. The floor rises only once every transaction that could
//! still commit a row below it has ended: those that hold an insertion
//! number (the migrations `20261203000002_sequence_floor.sql`, and
//! `20261203000005_floor_waits_for_number_holders.sql` for how they are
//! found).

use herald_domain::{Envelope, Seq};
use herald_store::history::envelope;
use sqlx::{PgConnection, PgPool};

/// Events that just got their positions, in `seq` order.
#[derive(Debug)]
pub struct Sequenced {
    pub events: Vec<Envelope>,
}

/// Sequences up to `limit` committed, unsequenced events. Returns them in
/// `seq` order, committed. Within a batch, rows keep their insertion order,
/// so one publisher's events keep the order it published them in.
///
/// The whole transaction is one call of `herald_sequence` (see its
/// migration): lock the `sequencer` row, give the next block of positions to
/// the oldest committed unsequenced rows, move `last_seq`, commit. One round
/// trip, since it sits on the path of every event's latency.
pub async fn sequence_batch(pool: &PgPool, limit: i64) -> Result<Sequenced, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        SELECT id AS "id?", seq AS "seq?: Seq", topic AS "topic?", type AS "event_type?",
               data AS "data?", created_at AS "created_at?"
          FROM herald_sequence($1)
        "#,
        limit
    )
    .fetch_all(pool)
    .await?;
    let mut events: Vec<Envelope> = rows
        .into_iter()
        .filter_map(|r| envelope(r.id, r.seq, r.topic, r.event_type, r.data, r.created_at))
        .collect();
    events.sort_unstable_by_key(|e| e.seq);
    Ok(Sequenced { events })
}

/// Sequenced events after `after`, up to `limit`, in order: what the relay
/// (re)publishes.
pub async fn sequenced_after(
    conn: &mut PgConnection,
    after: Seq,
    limit: i64,
) -> Result<Vec<Envelope>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"
        SELECT id AS "id?", seq AS "seq?: Seq", topic AS "topic?", type AS "event_type?",
               data AS "data?", created_at AS "created_at?"
          FROM events
         WHERE seq > $1 AND pending_no >= (SELECT herald_history_floor($1))
         ORDER BY seq
         LIMIT $2
        "#,
        after.get(),
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| envelope(r.id, r.seq, r.topic, r.event_type, r.data, r.created_at))
        .collect())
}

/// Seconds since the oldest unsequenced event was written (0 when none).
pub async fn outbox_lag_seconds(pool: &PgPool) -> Result<f64, sqlx::Error> {
    let lag: Option<f64> = sqlx::query_scalar!(
        r#"SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS "lag"
             FROM events WHERE seq IS NULL"#
    )
    .fetch_one(pool)
    .await?;
    Ok(lag.unwrap_or(0.0).max(0.0))
}
