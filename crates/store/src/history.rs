//! Reads of the event log that prove their own completeness.
//!
//! Retention raises `sequencer.pruned_seq` past the positions of a partition
//! of the log before it drops the partition (`herald-worker`'s `event_log`),
//! so in any one snapshot every event after `pruned_seq` is in the log; the
//! ones at or below it that are still there (their partition not detached
//! yet) are never read, so what a reader sees is exactly the events after
//! `pruned_seq`.
//! A page read in the same statement as `pruned_seq` can therefore say
//! whether it is complete: it is when `pruned_seq <= after`. A reader that
//! checked `pruned_seq` once and then read page after page could step over
//! events pruned between two pages without knowing; every reader of history
//! goes through [`events_after`] instead, and checks every page.

use herald_domain::{Envelope, Seq};
use sqlx::PgPool;

/// The head (highest visible seq) and the retention floor (history at or
/// below `pruned` is gone), read in one snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Positions {
    pub head: Seq,
    pub pruned: Seq,
}

impl Positions {
    /// Whether every event after `after` is still in the log.
    pub fn complete_after(&self, after: Seq) -> bool {
        self.pruned <= after
    }
}

/// Events after a position, with the positions read in the same snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// In `seq` order, at most the limit asked for.
    pub events: Vec<Envelope>,
    pub positions: Positions,
}

impl Page {
    /// Whether this page holds every event of its topics after `after` (up to
    /// its limit): nothing after `after` had been pruned when it was read.
    pub fn complete_after(&self, after: Seq) -> bool {
        self.positions.complete_after(after)
    }
}

/// The sequencer's positions now.
pub async fn positions(pool: &PgPool) -> Result<Positions, sqlx::Error> {
    let r =
        sqlx::query!(r#"SELECT last_seq AS "last_seq: Seq", pruned_seq AS "pruned_seq: Seq" FROM sequencer"#)
            .fetch_one(pool)
            .await?;
    Ok(Positions {
        head: r.last_seq,
        pruned: r.pruned_seq,
    })
}

/// The id of the event at `seq`, if the log holds one (a gateway checks that
/// the log still holds what it forwarded: a failover can rewrite history).
pub async fn id_at(pool: &PgPool, seq: Seq) -> Result<Option<uuid::Uuid>, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT herald_event_at($1) AS "id""#, seq.get())
        .fetch_one(pool)
        .await
}

/// Events of `topics` after `after`, in `seq` order, at most `limit`, and the
/// positions of the same snapshot (one statement: `herald_history_page`,
/// which plans the page with the partition floor as a constant, so that only
/// the partitions that may hold it are opened).
pub async fn events_after(
    pool: &PgPool,
    topics: &[String],
    after: Seq,
    limit: i64,
) -> Result<Page, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT head AS "head!: Seq", pruned AS "pruned!: Seq",
                  id AS "id?", seq AS "seq?: Seq", topic AS "topic?", type AS "event_type?",
                  data AS "data?", created_at AS "created_at?"
             FROM herald_history_page($1, $2, $3)"#,
        topics,
        after.get(),
        limit,
    )
    .fetch_all(pool)
    .await?;
    let mut positions = Positions::default();
    let mut events = Vec::with_capacity(rows.len());
    for r in rows {
        positions = Positions {
            head: r.head,
            pruned: r.pruned,
        };
        if let Some(e) = envelope(r.id, r.seq, r.topic, r.event_type, r.data, r.created_at) {
            events.push(e);
        }
    }
    Ok(Page { events, positions })
}

/// An envelope from an `events` row's columns, read as nullable (`None`: the
/// empty side of an outer join). Every read of the log maps rows here.
pub fn envelope(
    id: Option<uuid::Uuid>,
    seq: Option<Seq>,
    topic: Option<String>,
    event_type: Option<String>,
    data: Option<serde_json::Value>,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<Envelope> {
    Some(Envelope {
        id: id?,
        seq: seq?,
        topic: topic?,
        event_type: event_type?,
        data: data?,
        created_at: created_at?,
    })
}
