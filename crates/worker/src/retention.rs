//! Retention: drops history, and deletes idempotency keys and finished
//! scheduled deliveries, older than `HERALD_RETENTION`, oldest first.
//!
//! Every step is bounded, and none holds the sequencer's row lock for more
//! than the end of one small transaction: delivery runs through that lock
//! (sequencing and publishing both take it), so a prune that held it while
//! deleting would stall every event behind it.
//!
//! History goes a whole partition at a time (`crate::event_log::prune`):
//! `sequencer.pruned_seq` is raised past a partition's positions before it
//! is detached and dropped, so in any snapshot every event after
//! `pruned_seq` is in the log (what `herald_store::history` relies on to
//! prove a page complete). No DELETE, so no dead rows for vacuum.
//!
//! Idempotency keys, and scheduled deliveries done (delivered or cancelled)
//! before the cutoff, are deleted in their own batches, outside any
//! transaction that touches the sequencer. Pending scheduled deliveries are
//! kept, however old.

use std::time::Duration;

use sqlx::PgPool;

/// What one pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub idempotency_keys: u64,
    /// Scheduled deliveries delivered or cancelled before the cutoff.
    pub scheduled: u64,
}

/// Prunes everything older than `retention` (history by partitions, sealed
/// by [`crate::event_log::upkeep`]; the rest `batch` rows per transaction),
/// until nothing expired is left or `stop` is cancelled.
pub async fn prune_pass(
    pool: &PgPool,
    retention: Duration,
    batch: i64,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Pruned, sqlx::Error> {
    let cutoff = cutoff(retention);
    let mut pruned = Pruned::default();
    if !stop.is_cancelled() {
        pruned.events = crate::event_log::prune(pool, cutoff, stop).await?;
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
