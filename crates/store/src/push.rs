//! Push subscriptions and the push queue (`push_deliveries`).
//!
//! A notification for a user with `web_push` on enqueues one delivery per
//! subscription in the notification's transaction, due after the category's
//! `push_delay`. The worker [`claim`]s due deliveries: the claiming statement
//! pushes their `due_at` ahead by a lease, so a worker killed mid-send leaves
//! them to come due again (what was not acknowledged is sent again, nothing
//! more). Each is then [`done`] (sent, or skipped because the user already read
//! or saw it, or muted the category meanwhile), [`retry`]ed later, or dropped
//! with its subscription when the push service says it is [`gone`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_domain::preference::{CategoryDefaults, Channels, Choice};
use uuid::Uuid;

use sqlx::{PgConnection, PgPool};

/// A browser's subscription, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub expiration_time: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Stores `user`'s subscription; an endpoint already stored (the same browser
/// subscribing again, maybe for another user) is replaced. Returns whether it
/// was new.
pub async fn subscribe(
    conn: &mut PgConnection,
    user: &str,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    expiration_time: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth, expiration_time)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (endpoint) DO UPDATE
              SET user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,
                  expiration_time = EXCLUDED.expiration_time
           RETURNING (xmax = 0) AS "inserted!""#,
        Uuid::now_v7(),
        user,
        endpoint,
        p256dh,
        auth,
        expiration_time,
    )
    .fetch_one(conn)
    .await?;
    Ok(inserted)
}

/// Removes `user`'s subscription at `endpoint`; whether there was one.
pub async fn unsubscribe(conn: &mut PgConnection, user: &str, endpoint: &str) -> Result<bool, sqlx::Error> {
    let n = sqlx::query!(
        "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2",
        user,
        endpoint
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// `user`'s subscriptions, oldest first.
pub async fn subscriptions(conn: &mut PgConnection, user: &str) -> Result<Vec<Subscription>, sqlx::Error> {
    sqlx::query_as!(
        Subscription,
        "SELECT endpoint, p256dh, auth, expiration_time, created_at
           FROM push_subscriptions WHERE user_id = $1 ORDER BY created_at, endpoint",
        user
    )
    .fetch_all(conn)
    .await
}

/// Enqueues one delivery of `payload` per live subscription of `user`, due
/// after `delay`, in the caller's transaction. Returns how many.
pub async fn enqueue(
    conn: &mut PgConnection,
    user: &str,
    notification_id: Uuid,
    category: &str,
    payload: &serde_json::Value,
    delay: Duration,
) -> Result<u64, sqlx::Error> {
    let n = sqlx::query!(
        r#"INSERT INTO push_deliveries (subscription_id, user_id, notification_id, category, payload, due_at)
           SELECT s.id, s.user_id, $2, $3, $4, now() + make_interval(secs => $5::float8)
             FROM push_subscriptions s
            WHERE s.user_id = $1 AND (s.expiration_time IS NULL OR s.expiration_time > now())"#,
        user,
        notification_id,
        category,
        payload,
        delay.as_secs_f64(),
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n)
}

/// A claimed delivery, with what deciding and sending it needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub user_id: String,
    pub notification_id: Uuid,
    pub payload: serde_json::Value,
    pub subscription_id: Uuid,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    /// The user read, saw or archived the notification, or it expired: an
    /// open tab already showed it, or it no longer matters.
    pub settled: bool,
    /// The user turned `web_push` off for the category meanwhile.
    pub muted: bool,
}

/// Claims up to `limit` due deliveries for `lease` (autocommitted: the lease
/// is what protects them, not a transaction kept open while sending).
pub async fn claim(pool: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Claimed>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH claimed AS (
               UPDATE push_deliveries d
                  SET due_at = now() + make_interval(secs => $2::float8), attempts = d.attempts + 1
                WHERE d.id IN (SELECT id FROM push_deliveries
                                WHERE due_at <= now()
                                ORDER BY due_at
                                LIMIT $1
                                FOR UPDATE SKIP LOCKED)
            RETURNING d.id, d.attempts, d.created_at, d.user_id, d.notification_id, d.category,
                      d.payload, d.subscription_id)
           SELECT c.id AS "id!", c.attempts AS "attempts!", c.created_at AS "created_at!",
                  c.user_id AS "user_id!", c.notification_id AS "notification_id!",
                  c.payload AS "payload!", c.subscription_id AS "subscription_id!",
                  s.endpoint, s.p256dh, s.auth,
                  (n.id IS NOT NULL AND (n.read_at IS NOT NULL OR n.seen_at IS NOT NULL
                     OR n.archived_at IS NOT NULL OR n.snoozed_until IS NOT NULL
                     OR COALESCE(n.expires_at <= now(), false))) AS "settled!",
                  k.in_app AS "default_in_app?", k.web_push AS "default_web_push?",
                  k.required AS "required?", p.in_app AS "in_app?", p.web_push AS "web_push?"
             FROM claimed c
             JOIN push_subscriptions s ON s.id = c.subscription_id
             LEFT JOIN notifications n ON n.id = c.notification_id
             LEFT JOIN categories k ON k.category = c.category
             LEFT JOIN preferences p ON p.user_id = c.user_id AND p.category = c.category
            ORDER BY c.id"#,
        limit,
        lease.as_secs_f64(),
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            // The same rule the send applied (`CategoryDefaults::effective`),
            // on the preferences as they are now.
            let defaults = match (r.default_in_app, r.default_web_push, r.required) {
                (Some(in_app), Some(web_push), Some(required)) => CategoryDefaults {
                    channels: Channels { in_app, web_push },
                    required,
                    ..CategoryDefaults::default()
                },
                _ => CategoryDefaults::default(),
            };
            let now = defaults.effective(Choice {
                in_app: r.in_app,
                web_push: r.web_push,
            });
            Claimed {
                id: r.id,
                attempts: r.attempts,
                created_at: r.created_at,
                user_id: r.user_id,
                notification_id: r.notification_id,
                payload: r.payload,
                subscription_id: r.subscription_id,
                endpoint: r.endpoint,
                p256dh: r.p256dh,
                auth: r.auth,
                settled: r.settled,
                muted: !now.web_push,
            }
        })
        .collect())
}

/// Deliveries finished (sent, skipped or given up): gone from the queue.
pub async fn done(pool: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!("DELETE FROM push_deliveries WHERE id = ANY($1)", ids)
        .execute(pool)
        .await?;
    Ok(())
}

/// A delivery to try again after `delay`.
pub async fn retry(pool: &PgPool, id: i64, delay: Duration) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE push_deliveries SET due_at = now() + make_interval(secs => $2::float8) WHERE id = $1",
        id,
        delay.as_secs_f64(),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The push service no longer knows these subscriptions (404/410): they and
/// their queued deliveries are removed.
pub async fn gone(pool: &PgPool, subscriptions: &[Uuid]) -> Result<(), sqlx::Error> {
    if subscriptions.is_empty() {
        return Ok(());
    }
    sqlx::query!("DELETE FROM push_subscriptions WHERE id = ANY($1)", subscriptions)
        .execute(pool)
        .await?;
    Ok(())
}

/// The nearest due time in the queue, if any.
pub async fn next_due(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar!("SELECT min(due_at) FROM push_deliveries")
        .fetch_one(pool)
        .await
}
