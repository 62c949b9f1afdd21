//! The partitioned event log's upkeep: partitions made ahead, rolled by
//! time, sealed, and dropped by retention (the migration
//! `20261202000001_partitioned_events.sql` explains the lifecycle).
//!
//! Nothing here holds a lock that stalls delivery for more than an instant:
//! partitions are made with CREATE + ATTACH and dropped with DETACH
//! CONCURRENTLY (neither blocks reads or writes of `events`); the roll takes
//! a SHARE lock on `events` for the moment of a `setval`, with a short
//! `lock_timeout` (it is tried again on the next pass when it has to wait);
//! the sequencer's row lock is held only for the commit that raises
//! `pruned_seq`.
//!
//! Order matters for what readers can prove: `pruned_seq` is raised past a
//! partition's band before the partition goes, so in any snapshot every
//! event after `pruned_seq` is in the log.

use std::time::Duration;

use herald_domain::Seq;
use sqlx::PgPool;

/// Partitions made ahead of the insertion numbers, beyond the one they are in.
pub const AHEAD: i32 = 2;

/// How long the roll waits for its SHARE lock before giving up until the
/// next pass (writers queue behind it meanwhile).
const ROLL_LOCK_TIMEOUT: &str = "50ms";

/// The upkeep's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Insertion numbers per new partition.
    pub partition_size: u64,
    /// Roll on to the next partition after this long.
    pub span: Duration,
}

/// What one pass of upkeep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Upkeep {
    pub created: u64,
    pub rolled: bool,
    pub sealed: u64,
    /// Rows found waiting below the sequencer's floor (the migration
    /// `20261203000002_sequence_floor.sql`): always 0 unless its proof has
    /// a hole; the floor then drops to them so they are sequenced.
    pub below_floor: u64,
}

/// Makes partitions ahead, rolls on when the current one has been open for
/// the span, and seals the closed ones that can no longer change.
pub async fn upkeep(pool: &PgPool, policy: Policy) -> Result<Upkeep, sqlx::Error> {
    let size = i64::try_from(policy.partition_size).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE event_log SET partition_size = $1 WHERE partition_size <> $1",
        size
    )
    .execute(pool)
    .await?;
    let mut done = Upkeep {
        created: ahead(pool).await?,
        ..Upkeep::default()
    };
    done.rolled = roll(pool, policy.span).await?;
    if done.rolled {
        done.created += ahead(pool).await?;
    }
    let sealed = sqlx::query_scalar!(r#"SELECT herald_event_partitions_seal() AS "n!""#)
        .fetch_one(pool)
        .await?;
    done.sealed = u64::try_from(sealed).unwrap_or(0);
    let below: i64 = sqlx::query_scalar("SELECT herald_sequence_floor_check()")
        .fetch_one(pool)
        .await?;
    done.below_floor = u64::try_from(below).unwrap_or(0);
    if done.below_floor > 0 {
        tracing::error!(
            rows = done.below_floor,
            "rows waited below the sequencer's floor; it was lowered to sequence them"
        );
    }
    Ok(done)
}

async fn ahead(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let made = sqlx::query_scalar!(r#"SELECT herald_event_partitions_ahead($1) AS "n!""#, AHEAD)
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(made).unwrap_or(0))
}

/// Rolls on when due. A lock timeout is not an error: the next pass tries again.
async fn roll(pool: &PgPool, span: Duration) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(ROLL_LOCK_TIMEOUT)
        .execute(&mut *tx)
        .await?;
    let span_ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
    let rolled = sqlx::query_scalar!(
        r#"SELECT herald_event_log_roll(make_interval(secs => $1::float8 / 1000)) AS "rolled!""#,
        span_ms as f64
    )
    .fetch_one(&mut *tx)
    .await;
    match rolled {
        Ok(rolled) => {
            tx.commit().await?;
            Ok(rolled)
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
            tracing::debug!("event log roll waited too long for its lock; next pass");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A sealed partition retention may drop.
#[derive(Debug, Clone)]
struct Expired {
    name: String,
    max_seq: Option<i64>,
    events: i64,
}

/// Drops the oldest sealed partitions whose every event was created before
/// `cutoff`, oldest first, stopping at the first that is not (so what goes
/// is always the oldest part of the log). Finishes any drop an earlier pass
/// left half done. Returns how many events went.
pub async fn prune(
    pool: &PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<u64, sqlx::Error> {
    let unfinished: Vec<String> =
        sqlx::query_scalar!("SELECT name FROM event_partitions WHERE detaching ORDER BY lo")
            .fetch_all(pool)
            .await?;
    for name in unfinished {
        if !finish_drop(pool, &name).await? {
            return Ok(0);
        }
    }
    let mut pruned = 0u64;
    while !stop.is_cancelled() {
        let oldest = sqlx::query!(
            r#"SELECT name, max_seq, events AS "events?",
                      sealed_at IS NOT NULL AND (max_created IS NULL OR max_created < $1) AS "expired!"
                 FROM event_partitions
                ORDER BY lo
                LIMIT 1"#,
            cutoff
        )
        .fetch_optional(pool)
        .await?;
        let Some(oldest) = oldest else { break };
        // The partition the insertion numbers are in is never sealed, so the
        // loop ends there at the latest.
        if !oldest.expired {
            break;
        }
        let expired = Expired {
            name: oldest.name,
            max_seq: oldest.max_seq,
            events: oldest.events.unwrap_or(0),
        };
        start_drop(pool, &expired).await?;
        // Its events are gone for readers from here (pruned_seq is past them).
        pruned += u64::try_from(expired.events).unwrap_or(0);
        if !finish_drop(pool, &expired.name).await? {
            break;
        }
    }
    Ok(pruned)
}

/// Raises `pruned_seq` past the partition's band and marks it going, in one
/// transaction; the sequencer's row lock is taken last, for the commit only.
async fn start_drop(pool: &PgPool, p: &Expired) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE event_partitions SET detaching = true WHERE name = $1",
        p.name
    )
    .execute(&mut *tx)
    .await?;
    if let Some(top) = p.max_seq {
        sqlx::query!(
            "UPDATE sequencer SET pruned_seq = GREATEST(pruned_seq, $1)",
            Seq::new(top).get()
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// How long a step of a drop waits for a lock. DETACH CONCURRENTLY's last
/// step takes the partition's ACCESS EXCLUSIVE lock, and a sequencing step
/// (which holds the sequencer row) locks every partition: queued behind a
/// long wait, it would stall delivery. Past this the drop gives up until the
/// next pass, from where it stopped.
const DROP_LOCK_TIMEOUT: &str = "100ms";

/// Detaches (CONCURRENTLY: no lock that blocks reads or writes) and drops a
/// partition marked going, from whatever step an earlier attempt reached.
/// Returns false when a step gave up on its lock timeout.
async fn finish_drop(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    let ident = quoted(name)?;
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT set_config('lock_timeout', $1, false)")
        .bind(DROP_LOCK_TIMEOUT)
        .execute(&mut *conn)
        .await?;
    let done = loop {
        let state = sqlx::query!(
            r#"SELECT to_regclass($1) IS NOT NULL AS "exists!",
                      (SELECT i.inhdetachpending FROM pg_inherits i
                        WHERE i.inhrelid = to_regclass($1)) AS "pending?""#,
            name
        )
        .fetch_one(&mut *conn)
        .await?;
        let ddl = match (state.exists, state.pending) {
            (false, _) => break true,
            (true, None) => format!("DROP TABLE {ident}"),
            (true, Some(false)) => format!("ALTER TABLE events DETACH PARTITION {ident} CONCURRENTLY"),
            (true, Some(true)) => format!("ALTER TABLE events DETACH PARTITION {ident} FINALIZE"),
        };
        // One statement, outside any transaction block (CONCURRENTLY needs that).
        match sqlx::query(&ddl).persistent(false).execute(&mut *conn).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                tracing::debug!(partition = name, "dropping waited too long for a lock; next pass");
                break false;
            }
            Err(e) => return Err(e),
        }
    };
    sqlx::query("RESET lock_timeout").execute(&mut *conn).await?;
    if done {
        sqlx::query!("DELETE FROM event_partitions WHERE name = $1", name)
            .execute(&mut *conn)
            .await?;
    }
    Ok(done)
}

/// A partition's name as an SQL identifier. Names come from the migration
/// (`events_legacy`, `events_p<number>`); anything else is refused rather
/// than spliced into DDL.
fn quoted(name: &str) -> Result<String, sqlx::Error> {
    let plain = name.starts_with("events_")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain {
        Ok(format!("\"{name}\""))
    } else {
        Err(sqlx::Error::Protocol(format!(
            "unexpected event partition name {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_names_the_log_makes_are_spliced_into_ddl() {
        assert_eq!(quoted("events_p101").ok().as_deref(), Some("\"events_p101\""));
        assert_eq!(quoted("events_legacy").ok().as_deref(), Some("\"events_legacy\""));
        for bad in [
            "events_p1\"; DROP TABLE x; --",
            "other",
            "events_P1",
            "events_p 1",
            "",
        ] {
            assert!(quoted(bad).is_err(), "{bad:?}");
        }
    }
}
