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

/// Reads [`positions`] for many callers at once. A caller's answer comes from
/// a query that *started after it asked* (the replay seam needs a head read
/// after the stream's subscription was confirmed): every caller queued while
/// one query runs is answered by the next. A reconnect storm of a thousand
/// streams costs a handful of queries instead of a thousand, and their pool
/// connections are left to the replays. Cheap to clone.
#[derive(Clone)]
pub struct HeadReader {
    requests: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<Positions, String>>>,
}

impl HeadReader {
    /// Starts the reader task on the current runtime; it ends when every
    /// handle is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (requests, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<Result<Positions, String>>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let read = positions(&pool).await.map_err(|e| e.to_string());
                for w in waiters {
                    let _ = w.send(read.clone());
                }
            }
        });
        Self { requests }
    }

    /// The positions, read after this call began.
    pub async fn read(&self) -> Result<Positions, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| "the head reader stopped".to_owned())?;
        rx.await.map_err(|_| "the head reader stopped".to_owned())?
    }
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
