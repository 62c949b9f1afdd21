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
//!
//! Snoozing is such a change, and so is the wake-up (see [`crate::snooze`]).

use chrono::{DateTime, Utc};
use herald_domain::notification::{UserId, MAX_ACTORS};
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
    /// The `group_key` its notifications were sent with, if any.
    pub group_key: Option<String>,
    /// How many notifications the entry stands for: 1, or more for a group
    /// ("Maya and 2 others commented" is 3).
    pub group_count: i32,
    /// The last few distinct `actor`s, newest first (at most 5).
    pub actors: Vec<String>,
    /// When its newest notification arrived; lists are sorted by it, newest
    /// first, so an entry a notification joined moves to the top.
    pub latest_at: DateTime<Utc>,
    /// The list position behind `latest_at` (a UUIDv7), for cursors.
    #[serde(skip)]
    pub latest_id: Uuid,
    /// Set while snoozed: the entry is out of lists (but `status=snoozed`)
    /// and counts, and comes back unread, at the top, at this time.
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// The badge numbers. `total` counts what `status=all` lists (not archived,
/// not snoozed).
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
            WHERE user_id = $1 AND archived_at IS NULL AND snoozed_until IS NULL
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

/// A new notification, as sent by a service.
pub struct NewNotification<'a> {
    pub category: &'a str,
    pub title: &'a str,
    pub body: Option<&'a str>,
    pub data: &'a serde_json::Value,
    pub action_url: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Notifications with the same recipient, category and key share one
    /// entry while it is open (see [`place`]).
    pub group_key: Option<&'a str>,
    pub actor: Option<&'a str>,
}

/// Where [`place`] put a notification.
#[derive(Debug, Clone)]
pub struct Placed {
    pub entry: Notification,
    /// It joined an existing entry (a group) rather than making one.
    pub grouped: bool,
}

/// Puts a notification into `user`'s inbox and announces it, with the new
/// counts. The caller holds the user's inbox lock.
///
/// With a `group_key`, it joins the user's open group of that category and
/// key, if there is one — unread, not archived, not snoozed, and within
/// `group_window` of the group's first notification (reading, archiving or
/// snoozing closes a group for good) — taking over its title, body, data, link and expiry, adding
/// its actor, counting one more, becoming unseen and moving to the top:
/// `notification.updated`, and unread does not change. Otherwise it is a new
/// entry (which opens a group when it has a key): `notification.created`.
pub async fn place(
    tx: &mut OutboxTx,
    user: &UserId,
    n: &NewNotification<'_>,
    group_window: std::time::Duration,
) -> Result<Placed, sqlx::Error> {
    let latest_id = Uuid::now_v7();
    let joined = match n.group_key {
        None => None,
        Some(key) => {
            sqlx::query_as!(
                Notification,
                r#"UPDATE notifications
                      SET group_count = group_count + 1,
                          actors = CASE WHEN $1::text IS NULL THEN actors
                                        ELSE (ARRAY[$1::text] || array_remove(actors, $1::text))[1:$2] END,
                          title = $3, body = $4, data = $5, action_url = $6, expires_at = $7,
                          latest_id = $8, latest_at = now(), seen_at = NULL
                    WHERE id = (SELECT id FROM notifications
                                 WHERE user_id = $9 AND category = $10 AND group_key = $11
                                   AND read_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL
                                   AND group_open_until > now()
                                   AND (expires_at IS NULL OR expires_at > now())
                                 ORDER BY latest_id DESC
                                 LIMIT 1)
                RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                          read_at, seen_at, archived_at, group_key, group_count, actors,
                          latest_at, latest_id, snoozed_until"#,
                n.actor,
                MAX_ACTORS as i32,
                n.title,
                n.body,
                n.data,
                n.action_url,
                n.expires_at,
                latest_id,
                user.as_str(),
                n.category,
                key,
            )
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    let (entry, grouped) = match joined {
        Some(entry) => (entry, true),
        None => {
            let window_ms = i64::try_from(group_window.as_millis()).unwrap_or(i64::MAX);
            let entry = sqlx::query_as!(
                Notification,
                r#"INSERT INTO notifications (id, latest_id, user_id, category, title, body, data, action_url,
                                              expires_at, group_key, group_open_until, actors)
                   VALUES ($1, $1, $2, $3, $4, $5, $6, $7, $8, $9,
                           CASE WHEN $9::text IS NULL THEN NULL
                                ELSE now() + $10::bigint * interval '1 millisecond' END,
                           CASE WHEN $11::text IS NULL THEN '{}'::text[] ELSE ARRAY[$11::text] END)
                   RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                             read_at, seen_at, archived_at, group_key, group_count, actors,
                             latest_at, latest_id, snoozed_until"#,
                latest_id,
                user.as_str(),
                n.category,
                n.title,
                n.body,
                n.data,
                n.action_url,
                n.expires_at,
                n.group_key,
                window_ms,
                n.actor,
            )
            .fetch_one(&mut **tx)
            .await?;
            (entry, false)
        }
    };
    if let Some(at) = n.expires_at {
        // A group's earlier expiry, if any, finds it unexpired and is a no-op.
        crate::due::schedule(tx, at, crate::due::DueKind::ExpireNotification, entry.id).await?;
    }
    let event = if grouped {
        "notification.updated"
    } else {
        "notification.created"
    };
    announce(tx, user.as_str(), event, Some(&entry)).await?;
    Ok(Placed { entry, grouped })
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
    let users = owners(tx, ids).await?;
    lock_users(tx, &users).await?;
    // Read after the locks: an entry archived meanwhile is left out.
    let expired = sqlx::query!(
        r#"SELECT user_id, id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until
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
            group_key: r.group_key,
            group_count: r.group_count,
            actors: r.actors,
            latest_at: r.latest_at,
            latest_id: r.latest_id,
            snoozed_until: r.snoozed_until,
        };
        announce(tx, &r.user_id, "notification.expired", Some(&row)).await?;
    }
    Ok(n)
}

/// Serializes changes to every inbox of `users` (sorted and deduplicated
/// here, the order every multi-user change takes them in, so none can
/// deadlock with another). Taking a lock the transaction holds is a no-op.
pub async fn lock_users(conn: &mut PgConnection, users: &[String]) -> Result<(), sqlx::Error> {
    let mut users: Vec<&String> = users.iter().collect();
    users.sort();
    users.dedup();
    for user in users {
        lock_user(conn, user).await?;
    }
    Ok(())
}

/// The owners of the entries `ids`.
pub async fn owners(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<String>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar!(
        "SELECT DISTINCT user_id FROM notifications WHERE id = ANY($1)",
        ids
    )
    .fetch_all(conn)
    .await
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
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until
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

/// Applies `change` to the entry `id`. Reading or archiving closes its group:
/// later notifications with its key start a new one. Archiving ends a snooze;
/// reading a snoozed entry does not (it comes back unread all the same).
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
                  archived_at = CASE WHEN $4 THEN COALESCE(archived_at, now()) ELSE archived_at END,
                  group_open_until = CASE WHEN $2 OR $4 THEN NULL ELSE group_open_until END,
                  snoozed_until = CASE WHEN $4 THEN NULL ELSE snoozed_until END
            WHERE id = $1
        RETURNING id, category, title, body, data, action_url, created_at, expires_at,
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until"#,
        id,
        read,
        unread,
        archive,
    )
    .fetch_one(conn)
    .await
}

/// Marks every visible unread entry read (closing its group); returns how
/// many changed.
pub async fn read_all(conn: &mut PgConnection, user: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        r#"UPDATE notifications
              SET read_at = now(), seen_at = COALESCE(seen_at, now()), group_open_until = NULL
            WHERE user_id = $1 AND read_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL
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
            WHERE user_id = $1 AND seen_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL
              AND (expires_at IS NULL OR expires_at > now())"#,
        user
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// One page of `user`'s inbox, newest first (by `latest_id`), strictly
/// older than `before` (a `latest_id`).
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
                  read_at, seen_at, archived_at, group_key, group_count, actors,
                  latest_at, latest_id, snoozed_until
             FROM notifications
            WHERE user_id = $1
              AND (expires_at IS NULL OR expires_at > now())
              AND ($2::uuid IS NULL OR latest_id < $2)
              AND CASE $3
                    WHEN 'unread' THEN read_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL
                    WHEN 'read' THEN read_at IS NOT NULL AND archived_at IS NULL AND snoozed_until IS NULL
                    WHEN 'archived' THEN archived_at IS NOT NULL
                    WHEN 'snoozed' THEN snoozed_until IS NOT NULL AND archived_at IS NULL
                    ELSE archived_at IS NULL AND snoozed_until IS NULL
                  END
              AND ($4::text IS NULL OR category = $4)
            ORDER BY latest_id DESC
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
