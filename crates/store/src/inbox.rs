//! The inbox store: notification rows, exact counts, and the events that
//! announce every change on `user:{id}`.
//!
//! # Exact badges
//!
//! Every change to one user's inbox takes that user's inbox lock (a
//! transaction-scoped advisory lock) before touching rows, computes the
//! counts after its change, and announces them in the same transaction. So
//! per user, changes are serialized, their events commit — and are therefore
//! sequenced and delivered — in the same order, and the last event a client
//! received always carries the current counts. Counts are computed with the
//! very filters the listing uses, so they agree with the list at every instant
//! (expired entries vanish from both at `expires_at`).

use chrono::{DateTime, Utc};
use herald_domain::notification::UserId;
use herald_domain::EventType;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::outbox::{self, OutboxTx};

/// One inbox entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Notification {
    pub id: Uuid,
    pub category: String,
    pub title: String,
    pub body: Option<String>,
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    pub action_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub seen_at: Option<DateTime<Utc>>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// The badge numbers. `total` counts what `status=all` lists (not archived).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub unread: i64,
    pub unseen: i64,
    pub total: i64,
}

/// Serializes changes to `user`'s inbox until the transaction ends.
pub async fn lock_user(conn: &mut PgConnection, user: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended('herald.inbox:' || $1, 0))",
        user
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn counts(conn: &mut PgConnection, user: &str) -> Result<Counts, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE read_at IS NULL) AS "unread!",
                  count(*) FILTER (WHERE seen_at IS NULL) AS "unseen!",
                  count(*) AS "total!"
             FROM notifications
            WHERE user_id = $1 AND archived_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())"#,
        user
    )
    .fetch_one(conn)
    .await?;
    Ok(Counts {
        unread: r.unread,
        unseen: r.unseen,
        total: r.total,
    })
}

/// A new entry, as sent by a service.
pub struct NewNotification<'a> {
    pub category: &'a str,
    pub title: &'a str,
    pub body: Option<&'a str>,
    pub data: &'a serde_json::Value,
    pub action_url: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts one entry for `user` and announces it (`notification.created`).
/// The caller holds the user's inbox lock.
pub async fn insert(
    tx: &mut OutboxTx,
    user: &UserId,
    n: &NewNotification<'_>,
) -> Result<Notification, sqlx::Error> {
    let row = sqlx::query_as!(
        Notification,
        r#"INSERT INTO notifications (id, user_id, category, title, body, data, action_url, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                     read_at, seen_at, archived_at"#,
        Uuid::now_v7(),
        user.as_str(),
        n.category,
        n.title,
        n.body,
        n.data,
        n.action_url,
        n.expires_at,
    )
    .fetch_one(&mut **tx)
    .await?;
    if let Some(at) = row.expires_at {
        crate::due::schedule(tx, at, crate::due::DueKind::ExpireNotification, row.id).await?;
    }
    announce(tx, user.as_str(), "notification.created", Some(&row)).await?;
    Ok(row)
}

/// Announces the expiry of the notifications `ids` (due work: their
/// `expires_at` has passed, so lists and counts already leave them out):
/// one `notification.expired` (`{notification, counts}`) each on its user's
/// topic, with the counts after it. Archived entries, which no list or count
/// showed, announce nothing. Takes the users' inbox locks in sorted order
/// (as multi-recipient sends do), so it cannot deadlock with them.
pub async fn announce_expired(tx: &mut OutboxTx, ids: &[Uuid]) -> Result<usize, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut users: Vec<String> = sqlx::query_scalar!(
        "SELECT DISTINCT user_id FROM notifications WHERE id = ANY($1) AND archived_at IS NULL",
        ids
    )
    .fetch_all(&mut **tx)
    .await?;
    users.sort();
    for user in &users {
        lock_user(tx, user).await?;
    }
    // Read after the locks: an entry archived meanwhile is left out.
    let expired = sqlx::query!(
        r#"SELECT user_id, id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at
             FROM notifications
            WHERE id = ANY($1) AND archived_at IS NULL AND expires_at <= now()
            ORDER BY user_id, expires_at, id"#,
        ids
    )
    .fetch_all(&mut **tx)
    .await?;
    let n = expired.len();
    for r in expired {
        let row = Notification {
            id: r.id,
            category: r.category,
            title: r.title,
            body: r.body,
            data: r.data,
            action_url: r.action_url,
            created_at: r.created_at,
            expires_at: r.expires_at,
            read_at: r.read_at,
            seen_at: r.seen_at,
            archived_at: r.archived_at,
        };
        announce(tx, &r.user_id, "notification.expired", Some(&row)).await?;
    }
    Ok(n)
}

/// Publishes an inbox event on `user:{user}` carrying the current counts
/// (and the notification it is about, if any). Returns the counts.
pub async fn announce(
    tx: &mut OutboxTx,
    user: &str,
    event_type: &str,
    notification: Option<&Notification>,
) -> Result<Counts, sqlx::Error> {
    let counts = counts(tx, user).await?;
    let mut data = serde_json::json!({ "counts": counts });
    if let Some(n) = notification {
        data["notification"] = serde_json::to_value(n).unwrap_or_default();
    }
    let topic = UserId::parse(user)
        .map(|u| u.topic())
        .map_err(sqlx::Error::Protocol)?;
    let event_type = EventType::parse(event_type).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    outbox::append(tx, &topic, &event_type, &data).await?;
    Ok(counts)
}

/// The entry `id` of `user`, locked for update; `None` if it is not theirs,
/// does not exist or has expired.
pub async fn find_for_update(
    conn: &mut PgConnection,
    user: &str,
    id: Uuid,
) -> Result<Option<Notification>, sqlx::Error> {
    sqlx::query_as!(
        Notification,
        r#"SELECT id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at
             FROM notifications
            WHERE id = $1 AND user_id = $2 AND (expires_at IS NULL OR expires_at > now())
            FOR UPDATE"#,
        id,
        user
    )
    .fetch_optional(conn)
    .await
}

/// The state changes of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Read,
    Unread,
    Archive,
}

impl Change {
    /// Whether applying the change to `n` would change anything.
    pub fn changes(self, n: &Notification) -> bool {
        match self {
            Self::Read => n.read_at.is_none(),
            Self::Unread => n.read_at.is_some(),
            Self::Archive => n.archived_at.is_none(),
        }
    }
}

pub async fn apply(conn: &mut PgConnection, id: Uuid, change: Change) -> Result<Notification, sqlx::Error> {
    let (read, unread, archive) = (
        change == Change::Read,
        change == Change::Unread,
        change == Change::Archive,
    );
    sqlx::query_as!(
        Notification,
        r#"UPDATE notifications
              SET read_at = CASE WHEN $2 THEN COALESCE(read_at, now()) WHEN $3 THEN NULL ELSE read_at END,
                  seen_at = CASE WHEN $2 THEN COALESCE(seen_at, now()) ELSE seen_at END,
                  archived_at = CASE WHEN $4 THEN COALESCE(archived_at, now()) ELSE archived_at END
            WHERE id = $1
        RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at"#,
        id,
        read,
        unread,
        archive,
    )
    .fetch_one(conn)
    .await
}

/// Marks every visible unread entry read; returns how many changed.
pub async fn read_all(conn: &mut PgConnection, user: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        r#"UPDATE notifications SET read_at = now(), seen_at = COALESCE(seen_at, now())
            WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())"#,
        user
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Marks every visible unseen entry seen; returns how many changed.
pub async fn seen_all(conn: &mut PgConnection, user: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        r#"UPDATE notifications SET seen_at = now()
            WHERE user_id = $1 AND seen_at IS NULL AND archived_at IS NULL
              AND (expires_at IS NULL OR expires_at > now())"#,
        user
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// One page of `user`'s inbox, newest first, strictly older than `before`.
pub async fn page(
    conn: &mut PgConnection,
    user: &str,
    status: &str,
    category: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as!(
        Notification,
        r#"SELECT id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at
             FROM notifications
            WHERE user_id = $1
              AND (expires_at IS NULL OR expires_at > now())
              AND ($2::uuid IS NULL OR id < $2)
              AND CASE $3
                    WHEN 'unread' THEN read_at IS NULL AND archived_at IS NULL
                    WHEN 'read' THEN read_at IS NOT NULL AND archived_at IS NULL
                    WHEN 'archived' THEN archived_at IS NOT NULL
                    ELSE archived_at IS NULL
                  END
              AND ($4::text IS NULL OR category = $4)
            ORDER BY id DESC
            LIMIT $5"#,
        user,
        before,
        status,
        category,
        limit,
    )
    .fetch_all(conn)
    .await
}
