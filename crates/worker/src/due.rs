//! The worker's due-work loop: runs every item of `due_work` whose time has
//! come (see `herald_store::due`), exactly once across all workers, then
//! sleeps until the nearest due time.
//!
//! Every worker runs it, leader or not: claiming with `FOR UPDATE SKIP
//! LOCKED` hands each item to one of them. The work appends events through
//! an [`Outbox`], whose commit wakes the relay like any publish does.

use std::time::Duration;

use chrono::{DateTime, Utc};
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
    poll(&DueWork { pool, outbox }, &shutdown).await
}

struct DueWork {
    pool: PgPool,
    outbox: Outbox,
}

impl Queue for DueWork {
    const WHAT: &'static str = "due work";

    fn full(&self) -> usize {
        BATCH as usize
    }

    fn step(&self) -> impl std::future::Future<Output = Result<usize, sqlx::Error>> + Send {
        run_batch(&self.outbox)
    }

    fn next_due(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<DateTime<Utc>>, sqlx::Error>> + Send {
        due::next_due(&self.pool)
    }
}

/// A queue of timed work the worker runs (due work, pushes).
pub trait Queue {
    /// What it is, for the log.
    const WHAT: &'static str;
    /// A step that took this many items may have left more.
    fn full(&self) -> usize;
    /// Does one batch; how many items it took.
    fn step(&self) -> impl std::future::Future<Output = Result<usize, sqlx::Error>> + Send;
    /// When the next item comes due, if any.
    fn next_due(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<DateTime<Utc>>, sqlx::Error>> + Send;
}

/// Runs `queue` until `shutdown`: steps until one is not full, then sleeps
/// until the next item is due (at most [`MAX_SLEEP`], at least 10 ms). An
/// error is logged and retried after the sleep.
pub async fn poll<Q: Queue>(queue: &Q, shutdown: &CancellationToken) {
    loop {
        loop {
            match queue.step().await {
                Ok(n) if n >= queue.full() && !shutdown.is_cancelled() => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "{} failed; retrying", Q::WHAT);
                    break;
                }
            }
        }
        let wait = match queue.next_due().await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
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
