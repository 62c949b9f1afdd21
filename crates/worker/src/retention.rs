//! Retention: deletes history older than `HERALD_RETENTION`, oldest first, in
//! bounded batches so no statement holds locks for long. `sequencer.pruned_seq`
//! records the highest deleted position; a client resuming at or below it
//! cannot be served a complete replay and gets `herald.reset`.

use std::time::Duration;

use herald_domain::Seq;
use sqlx::PgPool;

/// Prunes one batch of up to `limit` events older than `retention`.
/// Returns how many were deleted.
pub async fn prune_batch(pool: &PgPool, retention: Duration, limit: i64) -> Result<u64, sqlx::Error> {
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
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
        SELECT max(seq) AS "upto"
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
    sqlx::query!("UPDATE sequencer SET pruned_seq = GREATEST(pruned_seq, $1)", upto)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query!("DELETE FROM events WHERE seq IS NOT NULL AND seq <= $1", upto)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < $1", cutoff)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
