//! Scheduled delivery: an event or a notification a service accepted with a
//! `deliver_at`, kept in `scheduled_deliveries` and nowhere else until then.
//!
//! Accepting writes the row and a `scheduled.deliver` due item in one
//! transaction ([`schedule`]). At `deliver_at` the worker's due loop delivers
//! it ([`deliver`]) in the transaction that claims the item: the event is
//! appended to the outbox (a notification is sent like any other, the
//! recipients' preferences and groups as they are then), so it is sequenced
//! after that commit — its `seq` is its position among everything else that
//! became visible — and it is delivered exactly once however many workers
//! run or crash. A cancel ([`cancel`]) marks the row, which delivery skips.
//!
//! Locks: delivery locks the rows (`FOR UPDATE`) before any inbox lock, and a
//! cancel locks only its row, so they cannot deadlock; neither deletes due
//! work rows (a cancelled item's due row runs and finds nothing to do).

use chrono::{DateTime, Utc};
use herald_domain::notification::UserId;
use herald_domain::{EventType, Topic};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::due::{self, DueKind};
use crate::inbox::NewNotification;
use crate::outbox::{self, OutboxTx};

/// What is scheduled.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduled {
    Event(ScheduledEvent),
    Notification(ScheduledNotification),
}

/// The kind a cancel names: `DELETE /v1/events/{id}` cancels events only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Notification,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Notification => "notification",
        }
    }
}

impl Scheduled {
    fn kind(&self) -> Kind {
        match self {
            Self::Event(_) => Kind::Event,
            Self::Notification(_) => Kind::Notification,
        }
    }

    fn payload(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::Event(e) => serde_json::to_value(e),
            Self::Notification(n) => serde_json::to_value(n),
        }
    }

    fn from_row(kind: &str, payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        if kind == Kind::Event.as_str() {
            serde_json::from_value(payload).map(Self::Event)
        } else {
            serde_json::from_value(payload).map(Self::Notification)
        }
    }
}

/// A generic event, as `POST /v1/events` accepted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduledEvent {
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
}

/// A notification, as `POST /v1/notifications` accepted it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScheduledNotification {
    pub recipients: Vec<String>,
    pub category: String,
    pub title: String,
    pub body: Option<String>,
    pub data: serde_json::Value,
    pub action_url: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub group_key: Option<String>,
    pub actor: Option<String>,
}

/// Schedules `what` for `deliver_at` under the id `id`, in the caller's
/// transaction. Returns when it was accepted.
pub async fn schedule(
    conn: &mut PgConnection,
    id: Uuid,
    deliver_at: DateTime<Utc>,
    what: &Scheduled,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let payload = what.payload().map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO scheduled_deliveries (id, kind, deliver_at, payload) VALUES ($1, $2, $3, $4)
           RETURNING created_at"#,
        id,
        what.kind().as_str(),
        deliver_at,
        payload,
    )
    .fetch_one(&mut *conn)
    .await?;
    due::schedule(conn, deliver_at, DueKind::DeliverScheduled, id).await?;
    Ok(created_at)
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// Cancelled now, or earlier: it will never be delivered.
    Cancelled,
    /// Too late: it was delivered.
    Delivered,
    /// No scheduled delivery of that kind has this id.
    NotFound,
}

/// Cancels the scheduled delivery `id` of `kind`, unless it was delivered.
pub async fn cancel(conn: &mut PgConnection, id: Uuid, kind: Kind) -> Result<Cancel, sqlx::Error> {
    // The update waits for a delivery holding the row, then sees its result.
    let cancelled = sqlx::query!(
        r#"UPDATE scheduled_deliveries SET cancelled_at = now()
            WHERE id = $1 AND kind = $2 AND delivered_at IS NULL AND cancelled_at IS NULL"#,
        id,
        kind.as_str(),
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if cancelled > 0 {
        return Ok(Cancel::Cancelled);
    }
    let row = sqlx::query!(
        "SELECT delivered_at FROM scheduled_deliveries WHERE id = $1 AND kind = $2",
        id,
        kind.as_str(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => Cancel::NotFound,
        Some(r) if r.delivered_at.is_some() => Cancel::Delivered,
        Some(_) => Cancel::Cancelled,
    })
}

/// Scheduled deliveries claimed for delivery, locked until the transaction
/// ends: the ones still pending among the ids given, in `deliver_at` order.
pub struct Due {
    items: Vec<(Uuid, Scheduled)>,
}

impl Due {
    /// The users whose inboxes delivering these will change (so the caller
    /// can take every inbox lock of its batch at once, in order).
    pub fn recipients(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|(_, s)| match s {
                Scheduled::Notification(n) => Some(n.recipients.clone()),
                Scheduled::Event(_) => None,
            })
            .flatten()
            .collect()
    }
}

/// Locks the pending deliveries among `ids` (cancelled and delivered ones
/// are left out).
pub async fn lock_due(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Due, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Due { items: Vec::new() });
    }
    let rows = sqlx::query!(
        r#"SELECT id, kind, payload FROM scheduled_deliveries
            WHERE id = ANY($1) AND delivered_at IS NULL AND cancelled_at IS NULL
            ORDER BY deliver_at, id
            FOR UPDATE"#,
        ids
    )
    .fetch_all(conn)
    .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        match Scheduled::from_row(&r.kind, r.payload) {
            Ok(s) => items.push((r.id, s)),
            // Written by `schedule`, so unreachable; leaving it pending
            // would retry it forever.
            Err(e) => tracing::error!(id = %r.id, error = %e, "dropping an unreadable scheduled delivery"),
        }
    }
    Ok(Due { items })
}

/// Delivers `due` in `tx`, in `deliver_at` order: events through the outbox,
/// notifications through [`crate::send::send`] (`web_push`: whether this
/// deployment pushes). A notification whose `expires_at` passed before it
/// could be delivered is dropped. Returns how many were delivered.
pub async fn deliver(tx: &mut OutboxTx, due: Due, web_push: bool) -> Result<usize, sqlx::Error> {
    let mut done = Vec::with_capacity(due.items.len());
    for (id, what) in due.items {
        match what {
            Scheduled::Event(e) => {
                let topic = Topic::parse(&e.topic).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                let event_type =
                    EventType::parse(&e.event_type).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                outbox::append_as(tx, id, &topic, &event_type, &e.data).await?;
            }
            Scheduled::Notification(n) => {
                if n.expires_at.is_none_or(|at| at > Utc::now()) {
                    let recipients: Vec<UserId> = n
                        .recipients
                        .iter()
                        .filter_map(|r| UserId::parse(r).ok())
                        .collect();
                    let new = NewNotification {
                        category: &n.category,
                        title: &n.title,
                        body: n.body.as_deref(),
                        data: &n.data,
                        action_url: n.action_url.as_deref(),
                        expires_at: n.expires_at,
                        group_key: n.group_key.as_deref(),
                        actor: n.actor.as_deref(),
                    };
                    crate::send::send(tx, &recipients, &new, web_push).await?;
                }
            }
        }
        done.push(id);
    }
    sqlx::query!(
        "UPDATE scheduled_deliveries SET delivered_at = now() WHERE id = ANY($1)",
        &done
    )
    .execute(&mut **tx)
    .await?;
    Ok(done.len())
}
