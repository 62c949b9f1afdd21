//! Retention: deletes history, idempotency keys and finished scheduled
//! deliveries older than `HERALD_RETENTION`, oldest first, in bounded batches.
//!
//! Every step is bounded, and none holds the sequencer's row lock for more
//! than the end of one small transaction: delivery runs through that lock
//! (sequencing and publishing both take it), so a prune that held it while
//! deleting would stall every event behind it.
//!
//! History: `sequencer.pruned_seq` records the highest deleted position. An
//! events batch deletes a prefix of the log and raises `pruned_seq` in the
//! same transaction, so in any snapshot the deleted events are exactly those
//! at or below `pruned_seq` (what `herald_store::history` relies on to
//! prove a page complete). The `UPDATE` of the sequencer row comes last, so
//! the row lock is held only for the commit.
//!
//! Idempotency keys, and scheduled deliveries done (delivered or cancelled)
//! before the cutoff, are deleted in their own batches, outside any
//! transaction that touches the sequencer. Pending scheduled deliveries are
//! kept, however old.

use std::time::Duration;

use herald_domain::Seq;
use sqlx::PgPool;

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub idempotency_keys: u64,
    /// Scheduled deliveries delivered or cancelled before the cutoff.
    pub scheduled: u64,
}

/// Prunes everything older than `retention`, `batch` rows per transaction,
/// until nothing expired is left or `stop` is cancelled.
pub async fn prune_pass(
    pool: &PgPool,
    retention: Duration,
    batch: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Pruned, sqlx::Error> {
    let cutoff = cutoff(retention);
    let mut pruned = Pruned::default();
    while !stop.is_cancelled() {
        let n = prune_events(pool, cutoff, batch).await?;
        pruned.events += n;
        if n == 0 {
            break;
        }
    }
    while !stop.is_cancelled() {
        let n = prune_idempotency_keys(pool, cutoff, batch).await?;
        pruned.idempotency_keys += n;
        if n < batch as u64 {
            break;
        }
    }
    while !stop.is_cancelled() {
        let n = prune_scheduled(pool, cutoff, batch).await?;
        pruned.scheduled += n;
        if n < batch as u64 {
            break;
        }
    }
    Ok(pruned)
}

fn cutoff(retention: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX)
}

/// Prunes one batch of up to `limit` events created before `cutoff`.
/// Returns how many were deleted.
pub async fn prune_events(
    pool: &PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The oldest sequenced events, stopping at the first one still retained,
    // so pruned history is always a prefix of the log (`seq <= pruned_seq`).
    let upto: Option<Seq> = sqlx::query_scalar!(
        r#"
        WITH oldest AS (
            SELECT seq, created_at < $1 AS expired
              FROM events
             WHERE seq > (SELECT pruned_seq FROM sequencer)
             ORDER BY seq
             LIMIT $2
        )
        SELECT max(seq) AS "upto: Seq"
          FROM oldest
         WHERE expired
           AND seq < COALESCE((SELECT min(seq) FROM oldest WHERE NOT expired), 9223372036854775807)
        "#,
        cutoff,
        limit,
    )
    .fetch_one(&mut *tx)
    .await?;
    let Some(upto) = upto else {
        tx.rollback().await?;
        return Ok(0);
    };
    let deleted = sqlx::query!(
        "DELETE FROM events WHERE seq IS NOT NULL AND seq <= $1",
        upto.get()
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Last: the sequencer's row lock is held from here to the commit only.
    sqlx::query!(
        "UPDATE sequencer SET pruned_seq = GREATEST(pruned_seq, $1)",
        upto.get()
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Deletes up to `limit` idempotency keys created before `cutoff`, oldest
/// first. Returns how many were deleted.
pub async fn prune_idempotency_keys(
    pool: &PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM idempotency_keys
          WHERE (principal, key) IN (
                SELECT principal, key FROM idempotency_keys
                 WHERE created_at < $1
                 ORDER BY created_at
                 LIMIT $2)",
        cutoff,
        limit,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Deletes up to `limit` scheduled deliveries delivered or cancelled before
/// `cutoff`, oldest first (a cancel of one is then a 404, not a 409).
/// Returns how many were deleted.
pub async fn prune_scheduled(
    pool: &PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM scheduled_deliveries
          WHERE id IN (
                SELECT id FROM scheduled_deliveries
                 WHERE (delivered_at IS NOT NULL OR cancelled_at IS NOT NULL)
                   AND COALESCE(delivered_at, cancelled_at) < $1
                 ORDER BY COALESCE(delivered_at, cancelled_at)
                 LIMIT $2)",
        cutoff,
        limit,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
