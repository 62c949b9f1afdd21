//! The worker's due-work loop: runs every item of `due_work` whose time has
//! come (see `herald_store::due`), exactly once across all workers, then
//! sleeps until the nearest due time.
//!
//! Every worker runs it, leader or not: claiming with `FOR UPDATE SKIP
//! LOCKED` hands each item to one of them. The work appends events through
//! an [`Outbox`], whose commit wakes the relay like any publish does.

use std::time::Duration;

use herald_store::due::{self, DueKind};
use herald_store::inbox;
use herald_store::outbox::Outbox;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Items done per transaction, at most.
const BATCH: i64 = 200;
/// The longest sleep: an item scheduled meanwhile for a nearer time (by
/// another process) is picked up at most this late.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs due work until `shutdown`.
pub async fn run(pool: PgPool, outbox: Outbox, shutdown: CancellationToken) {
    loop {
        loop {
            match run_batch(&outbox).await {
                Ok(n) if n as i64 == BATCH && !shutdown.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "due work failed; retrying");
                    break;
                }
            }
        }
        let wait = match due::next_due(&pool).await {
            Ok(Some(at)) => (at - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO),
            Ok(None) | Err(_) => MAX_SLEEP,
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait.clamp(Duration::from_millis(10), MAX_SLEEP)) => {}
        }
    }
}

/// Claims and does one batch of due items in one transaction. Returns how
/// many it claimed.
pub async fn run_batch(outbox: &Outbox) -> Result<usize, sqlx::Error> {
    let mut tx = outbox.begin().await?;
    let items = due::claim(&mut tx, BATCH).await?;
    if items.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let expiring: Vec<uuid::Uuid> = items
        .iter()
        .filter(|i| i.kind == DueKind::ExpireNotification)
        .map(|i| i.subject)
        .collect();
    inbox::announce_expired(&mut tx, &expiring).await?;
    tx.commit().await?;
    Ok(items.len())
}
