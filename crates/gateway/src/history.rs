//! What the gateway reads from Postgres: the sequencer's position and the
//! durable history it replays.

use herald_domain::{Envelope, Seq};
use sqlx::PgPool;

/// The head (highest visible seq) and the retention floor (history at or
/// below `pruned` is gone).
#[derive(Debug, Clone, Copy)]
pub struct Positions {
    pub head: Seq,
    pub pruned: Seq,
}

pub async fn positions(pool: &PgPool) -> Result<Positions, sqlx::Error> {
    let r = sqlx::query!("SELECT last_seq, pruned_seq FROM sequencer")
        .fetch_one(pool)
        .await?;
    Ok(Positions {
        head: r.last_seq,
        pruned: r.pruned_seq,
    })
}

/// Events of `topics` after `after`, in `seq` order, at most `limit`.
pub async fn events_after(
    pool: &PgPool,
    topics: &[String],
    after: Seq,
    limit: i64,
) -> Result<Vec<Envelope>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, seq AS "seq!", topic, type AS event_type, data, created_at
             FROM events
            WHERE topic = ANY($1) AND seq > $2
            ORDER BY seq
            LIMIT $3"#,
        topics,
        after,
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Envelope {
            id: r.id,
            seq: r.seq,
            topic: r.topic,
            event_type: r.event_type,
            data: r.data,
            created_at: r.created_at,
        })
        .collect())
}
