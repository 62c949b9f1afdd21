//! Appending events to the outbox, inside the caller's transaction.
//!
//! Every write that announces something calls [`append`] in the same
//! transaction as its state change, so the state and the event commit
//! together or not at all. The row has no `seq` yet: the worker's sequencer
//! assigns it after commit (see `herald_worker::sequencer`). The `NOTIFY` is
//! delivered at commit and wakes the worker at once.

use chrono::{DateTime, Utc};
use herald_domain::{EventType, Topic};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

/// An event as written: everything but its position.
#[derive(Debug, Clone)]
pub struct Appended {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    topic: &Topic,
    event_type: &EventType,
    data: &serde_json::Value,
) -> Result<Appended, sqlx::Error> {
    let conn: &mut PgConnection = tx;
    let id = Uuid::now_v7();
    let created_at = sqlx::query_scalar!(
        r#"INSERT INTO events (id, topic, type, data) VALUES ($1, $2, $3, $4) RETURNING created_at"#,
        id,
        topic.as_str(),
        event_type.as_str(),
        data,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("SELECT pg_notify('herald_outbox', '')")
        .execute(&mut *conn)
        .await?;
    Ok(Appended { id, created_at })
}
