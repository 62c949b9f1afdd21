//! Snooze: an inbox entry out of every list (but `status=snoozed`) and every
//! count until a time, then back unread at the top.
//!
//! Snoozing, unsnoozing and the wake-up are inbox changes like any other:
//! each runs under the user's inbox lock and is announced with the counts
//! after it in the same transaction. The wake-up is a state change made by
//! due work (`notification.wake`, [`wake_due`]), not a filter on the clock,
//! so the entry's return and the badge's change are one event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::due::{self, DueKind};
use crate::inbox::{announce, lock_users, owners, Notification};
use crate::outbox::OutboxTx;
use sqlx::PgConnection;

/// Snoozes the entry `id` until `until`: it leaves lists and counts, its
/// group closes, and due work wakes it at `until` ([`wake_due`]). The caller
/// holds its user's inbox lock and announces the change.
pub async fn snooze(tx: &mut OutboxTx, id: Uuid, until: DateTime<Utc>) -> Result<Notification, sqlx::Error> {
    let row = sqlx::query_as!(
        Notification,
        r#"UPDATE notifications SET snoozed_until = $2, group_open_until = NULL
            WHERE id = $1
        RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until"#,
        id,
        until,
    )
    .fetch_one(&mut **tx)
    .await?;
    due::schedule(tx, until, DueKind::WakeNotification, id).await?;
    Ok(row)
}

/// Brings the snoozed entry `id` back now: unread, unseen and at the top of
/// the list. The caller holds its user's inbox lock and announces it. Its
/// pending wake-up finds it awake and does nothing.
pub async fn unsnooze(conn: &mut PgConnection, id: Uuid) -> Result<Notification, sqlx::Error> {
    sqlx::query_as!(
        Notification,
        r#"UPDATE notifications
              SET snoozed_until = NULL, read_at = NULL, seen_at = NULL,
                  latest_id = $2, latest_at = now()
            WHERE id = $1
        RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until"#,
        id,
        Uuid::now_v7(),
    )
    .fetch_one(conn)
    .await
}

/// Wakes the snoozed entries `ids` whose `snoozed_until` has come (due work):
/// each comes back unread at the top ([`unsnooze`]) and is announced as
/// `notification.updated` with the counts after it, on its user's topic.
/// Entries woken, re-snoozed for later, archived or expired meanwhile are
/// left alone, so a stale wake-up is a no-op. Takes the users' inbox locks in
/// sorted order. Returns how many woke.
pub async fn wake_due(tx: &mut OutboxTx, ids: &[Uuid]) -> Result<usize, sqlx::Error> {
    let users = owners(tx, ids).await?;
    lock_users(tx, &users).await?;
    // Read after the locks: what changed meanwhile is seen.
    let due = sqlx::query!(
        r#"SELECT id, user_id FROM notifications
            WHERE id = ANY($1) AND snoozed_until <= now() AND archived_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())
            ORDER BY user_id, snoozed_until, id"#,
        ids
    )
    .fetch_all(&mut **tx)
    .await?;
    for r in &due {
        let row = unsnooze(tx, r.id).await?;
        announce(tx, &r.user_id, "notification.updated", Some(&row)).await?;
    }
    Ok(due.len())
}
