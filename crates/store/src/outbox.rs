//! Appending events to the outbox, inside the caller's transaction.
//!
//! Every write that announces something runs in an [`OutboxTx`] and calls
//! [`append`] in it, so the state and the event commit together or not at
//! all. The row has no `seq` yet: the worker's sequencer assigns it after
//! commit (see `herald_worker::sequencer`).
//!
//! # Waking the worker
//!
//! The worker sleeps on `LISTEN herald_outbox`. A `NOTIFY` inside the
//! publishing transaction would be simplest, but Postgres serializes every
//! notifying transaction's commit on one lock, WAL flush included, so
//! concurrent publishers could never share a flush (group commit) and
//! publishing would top out near one event per `fdatasync`. Instead,
//! [`OutboxTx::commit`] signals this process's notifier after the commit, and
//! the notifier sends `NOTIFY` from its own connection, coalescing every
//! signal that arrives while one is in flight and without waiting for its
//! own (content-free) commit to be flushed. A lost wake-up costs latency, not
//! events: the worker also polls.
//!
//! That hop (the API hears its commit, signals the notifier, which sends its
//! own statement) sits on every event's latency, and the lock only costs
//! when publishers commit at the same time. So a one-statement publish
//! ([`Outbox::append_alone`]) that no other publish of this process overlaps
//! carries its `NOTIFY` in its own statement: Postgres wakes the worker as
//! the commit completes, and no commit of this process waits for the lock.
//! Publishes that overlap leave it to the notifier, as before.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use herald_domain::{EventType, Topic};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

/// The channel the worker listens on.
pub const OUTBOX_CHANNEL: &str = "herald_outbox";

/// Begins outbox transactions and wakes the worker after they commit. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    pool: PgPool,
    wake: Arc<Notify>,
    /// One-statement publishes of this process in flight.
    publishing: Arc<AtomicUsize>,
}

impl Outbox {
    /// Starts the notifier task on the current runtime.
    pub fn start(pool: PgPool) -> Self {
        let wake = Arc::new(Notify::new());
        tokio::spawn(notifier(pool.clone(), wake.clone()));
        Self {
            pool,
            wake,
            publishing: Arc::default(),
        }
    }

    /// Appends one event as a transaction of its own: a single autocommitted
    /// statement, one round trip instead of three. It wakes the worker
    /// itself when no other publish of this process is in flight (see the
    /// module docs), else the notifier does after it.
    pub async fn append_alone(
        &self,
        topic: &Topic,
        event_type: &EventType,
        data: &serde_json::Value,
    ) -> Result<Appended, sqlx::Error> {
        let in_flight = InFlight::enter(&self.publishing);
        let mut conn = self.pool.acquire().await?;
        let id = Uuid::now_v7();
        // Checked once the connection is in hand: a publish that waited for
        // one is the sign of others.
        let alone = in_flight.alone();
        let appended = insert(&mut conn, id, topic, event_type, data, alone).await?;
        // `herald_timing`: the stages of publish-to-screen (scripts/profile-latency).
        tracing::trace!(target: "herald_timing", id = %appended.id, "committed");
        if alone {
            tracing::trace!(target: "herald_timing", "notified");
        } else {
            self.wake.notify_one();
        }
        Ok(appended)
    }

    /// Begins a transaction whose commit wakes the worker if it appended.
    pub async fn begin(&self) -> Result<OutboxTx, sqlx::Error> {
        Ok(OutboxTx {
            tx: self.pool.begin().await?,
            wake: self.wake.clone(),
            appended: false,
        })
    }
}

/// A transaction that may append events. Derefs to the connection, like
/// sqlx's `Transaction`.
pub struct OutboxTx {
    tx: Transaction<'static, Postgres>,
    wake: Arc<Notify>,
    appended: bool,
}

impl OutboxTx {
    /// Commits, then wakes the worker if an event was appended.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if self.appended {
            self.wake.notify_one();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for OutboxTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for OutboxTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// An event as written: everything but its position.
#[derive(Debug, Clone)]
pub struct Appended {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Appends an event in `tx`.
pub async fn append(
    tx: &mut OutboxTx,
    topic: &Topic,
    event_type: &EventType,
    data: &serde_json::Value,
) -> Result<Appended, sqlx::Error> {
    append_as(tx, Uuid::now_v7(), topic, event_type, data).await
}

/// Appends an event with the id `id` in `tx` (a scheduled event keeps the id
/// its publisher was given when it was accepted).
pub async fn append_as(
    tx: &mut OutboxTx,
    id: Uuid,
    topic: &Topic,
    event_type: &EventType,
    data: &serde_json::Value,
) -> Result<Appended, sqlx::Error> {
    let appended = insert(tx, id, topic, event_type, data, false).await?;
    tx.appended = true;
    Ok(appended)
}

/// Appends `events` in `tx`, in order, with one statement, as one batch:
/// they share one insertion number and are ordered by their place in it, so
/// the sequencer gives them consecutive `seq` (see the migration
/// `…02_batch_positions.sql`). Returns them in the same order.
pub async fn append_many(
    tx: &mut OutboxTx,
    events: &[(&Topic, &EventType, &serde_json::Value)],
) -> Result<Vec<Appended>, sqlx::Error> {
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let topics: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    let data: Vec<&serde_json::Value> = events.iter().map(|e| e.2).collect();
    // One insertion number for the whole batch (the CTE runs once), and
    // each event's place in it.
    let rows = sqlx::query!(
        r#"
        WITH n AS (SELECT nextval(pg_get_serial_sequence('events', 'pending_no')) AS no)
        INSERT INTO events (id, pending_no, batch_pos, topic, type, data)
        OVERRIDING SYSTEM VALUE
        SELECT b.id, n.no, b.ord::int, b.topic, b.type, b.data
          FROM n, unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
                  WITH ORDINALITY AS b(id, topic, type, data, ord)
        RETURNING id, created_at
        "#,
        &ids,
        &topics as &[&str],
        &types as &[&str],
        &data as &[&serde_json::Value],
    )
    .fetch_all(&mut **tx)
    .await?;
    tx.appended = true;
    let mut created: std::collections::HashMap<Uuid, DateTime<Utc>> =
        rows.into_iter().map(|r| (r.id, r.created_at)).collect();
    Ok(ids
        .into_iter()
        .map(|id| Appended {
            id,
            created_at: created.remove(&id).unwrap_or_else(Utc::now),
        })
        .collect())
}

/// Inserts one event. With `wake`, the statement also sends the worker's
/// `NOTIFY`, so it is part of the same transaction: Postgres delivers it as
/// the commit completes (see the module docs for when that is right).
async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    topic: &Topic,
    event_type: &EventType,
    data: &serde_json::Value,
    wake: bool,
) -> Result<Appended, sqlx::Error> {
    let (topic, event_type) = (topic.as_str(), event_type.as_str());
    let created_at = if wake {
        sqlx::query_scalar!(
            r#"
            WITH e AS (INSERT INTO events (id, topic, type, data) VALUES ($1, $2, $3, $4) RETURNING created_at)
            SELECT e.created_at AS "created_at!" FROM e, pg_notify($5, '') AS n
            "#,
            id,
            topic,
            event_type,
            data,
            OUTBOX_CHANNEL,
        )
        .fetch_one(conn)
        .await?
    } else {
        sqlx::query_scalar!(
            r#"INSERT INTO events (id, topic, type, data) VALUES ($1, $2, $3, $4) RETURNING created_at"#,
            id,
            topic,
            event_type,
            data,
        )
        .fetch_one(conn)
        .await?
    };
    Ok(Appended { id, created_at })
}

/// Counts a publish in flight for as long as it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self { count }
    }

    /// Whether this is the only publish in flight.
    fn alone(&self) -> bool {
        self.count.load(Ordering::Acquire) == 1
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends one `NOTIFY` per burst of signals, from a dedicated connection with
/// `synchronous_commit = off` (the notification carries nothing that must
/// survive a crash; the events it announces were flushed by their own commit).
async fn notifier(pool: PgPool, wake: Arc<Notify>) {
    let mut conn: Option<PgConnection> = None;
    loop {
        wake.notified().await;
        if conn.is_none() {
            conn = connect(&pool).await;
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(OUTBOX_CHANNEL)
            .execute(&mut *c)
            .await;
        match sent {
            Ok(_) => tracing::trace!(target: "herald_timing", "notified"),
            Err(e) => {
                tracing::debug!(error = %e, "NOTIFY failed; the worker's poll covers it");
                conn = None;
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Option<PgConnection> {
    let connected = tokio::time::timeout(Duration::from_secs(3), async {
        let mut c = PgConnection::connect_with(&pool.connect_options()).await?;
        sqlx::query("SET synchronous_commit = off")
            .execute(&mut c)
            .await?;
        Ok::<_, sqlx::Error>(c)
    })
    .await;
    match connected {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "notifier could not connect; the worker's poll covers it");
            None
        }
        Err(_) => None,
    }
}
