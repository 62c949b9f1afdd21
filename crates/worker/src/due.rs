//! The worker's due-work loop: runs every item of `due_work` whose time has
//! come (see `herald_store::due`) — expiries, snooze wake-ups, scheduled
//! deliveries — exactly once across all workers, then sleeps until the
//! nearest due time.
//!
//! Every worker runs it, leader or not: claiming with `FOR UPDATE SKIP
//! LOCKED` hands each item to one of them. The work appends events through
//! an [`Outbox`], whose commit wakes the relay like any publish does.

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_store::due::{self, DueKind};
use herald_store::outbox::Outbox;
use herald_store::{inbox, scheduled, snooze};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Items done per transaction, at most.
const BATCH: i64 = 200;
/// The longest sleep: an item scheduled meanwhile for a nearer time (by
/// another process) is picked up at most this late.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Runs due work until `shutdown`. `web_push`: whether this deployment
/// pushes (scheduled notifications queue their pushes when delivered).
pub async fn run(pool: PgPool, outbox: Outbox, web_push: bool, shutdown: CancellationToken) {
    poll(
        &DueWork {
            pool,
            outbox,
            web_push,
        },
        &shutdown,
    )
    .await
}

struct DueWork {
    pool: PgPool,
    outbox: Outbox,
    web_push: bool,
}

impl Queue for DueWork {
    const WHAT: &'static str = "due work";

    fn full(&self) -> usize {
        BATCH as usize
    }

    fn step(&self) -> impl std::future::Future<Output = Result<usize, sqlx::Error>> + Send {
        run_batch(&self.outbox, self.web_push)
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
///
/// Locks are taken in one order: the scheduled deliveries' rows, then the
/// inbox locks of every user the batch touches, sorted, as every
/// multi-user change takes them — taking them kind by kind could deadlock
/// with a send to two of those users.
pub async fn run_batch(outbox: &Outbox, web_push: bool) -> Result<usize, sqlx::Error> {
    let mut tx = outbox.begin().await?;
    let items = due::claim(&mut tx, BATCH).await?;
    if items.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let of = |kind: DueKind| -> Vec<uuid::Uuid> {
        items
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.subject)
            .collect()
    };
    let (expiring, waking) = (of(DueKind::ExpireNotification), of(DueKind::WakeNotification));
    let deliveries = scheduled::lock_due(&mut tx, &of(DueKind::DeliverScheduled)).await?;
    let entries: Vec<uuid::Uuid> = expiring.iter().chain(&waking).copied().collect();
    let mut users = inbox::owners(&mut tx, &entries).await?;
    users.extend(deliveries.recipients());
    inbox::lock_users(&mut tx, &users).await?;
    inbox::announce_expired(&mut tx, &expiring).await?;
    snooze::wake_due(&mut tx, &waking).await?;
    scheduled::deliver(&mut tx, deliveries, web_push).await?;
    tx.commit().await?;
    Ok(items.len())
}
