//! Due work: things that must happen at a time, not on a request — a
//! notification's expiry and a snoozed notification's return, each announced
//! to its user with the new counts, and the delivery of what a service
//! scheduled (`deliver_at`).
//!
//! One table (`due_work`), one mechanism: a writer schedules an item in the
//! transaction that makes it necessary ([`schedule`]); the worker claims what
//! is due with `FOR UPDATE SKIP LOCKED` ([`claim`]), does it and deletes it
//! in one transaction, so an item runs exactly once however many workers
//! run, and a crash before the commit leaves it for the next attempt. The
//! worker sleeps until the nearest due time ([`next_due`]).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What a due item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    /// Announce that a notification expired (`notification.expired`, with
    /// the new counts) on its user's topic.
    ExpireNotification,
    /// Bring a snoozed notification back (`notification.updated`, with the
    /// new counts): see `snooze::wake_due`.
    WakeNotification,
    /// Deliver a scheduled event or notification through the outbox: see
    /// `scheduled::deliver`.
    DeliverScheduled,
}

impl DueKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::ExpireNotification => "notification.expire",
            Self::WakeNotification => "notification.wake",
            Self::DeliverScheduled => "scheduled.deliver",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "notification.expire" => Some(Self::ExpireNotification),
            "notification.wake" => Some(Self::WakeNotification),
            "scheduled.deliver" => Some(Self::DeliverScheduled),
            _ => None,
        }
    }
}

/// One claimed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    pub id: i64,
    pub kind: DueKind,
    pub subject: Uuid,
}

/// Schedules `kind` on `subject` at `at`, in the caller's transaction.
pub async fn schedule(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    kind: DueKind,
    subject: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO due_work (due_at, kind, subject) VALUES ($1, $2, $3)",
        at,
        kind.as_str(),
        subject,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` items due now, oldest first, locked until the
/// caller's transaction ends (other workers skip them), and deletes them in
/// that transaction: they are done when it commits.
pub async fn claim(conn: &mut PgConnection, limit: i64) -> Result<Vec<DueItem>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"DELETE FROM due_work
            WHERE id IN (SELECT id FROM due_work
                          WHERE due_at <= now()
                          ORDER BY due_at
                          LIMIT $1
                          FOR UPDATE SKIP LOCKED)
        RETURNING id, kind, subject"#,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match DueKind::parse(&r.kind) {
            Some(kind) => Some(DueItem {
                id: r.id,
                kind,
                subject: r.subject,
            }),
            None => {
                // The table's CHECK makes this unreachable; dropping is safe.
                tracing::warn!(kind = r.kind, "dropping due work of an unknown kind");
                None
            }
        })
        .collect())
}

/// The nearest due time, if anything is scheduled.
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!("SELECT min(due_at) FROM due_work")
        .fetch_one(pool)
        .await
}
