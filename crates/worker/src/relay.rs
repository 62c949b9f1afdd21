//! The outbox relay: the worker's main loop.
//!
//! One worker at a time is the leader (a session-level Postgres advisory lock
//! held on a dedicated connection); the others wait to take over. The leader
//! repeats: sequence a batch of committed events (see [`crate::sequencer`]),
//! publish it to the bus in `seq` order, record the published position. It
//! wakes on `LISTEN herald_outbox` (every publishing commit notifies,
//! coalesced; see `herald_store::outbox`) and polls as a fallback.
//!
//! Crash safety: sequencing commits before publishing; publishing happens in
//! a transaction holding the publishers' fence (an advisory lock, taken
//! while the sequencing step runs), starts right after `published_seq`, and
//! moves `published_seq` only after the bus acknowledged the publish. A
//! worker that crashes anywhere leaves either unsequenced rows (sequenced
//! later) or sequenced-unpublished rows (published by the next
//! step of whichever worker leads). Events may be published twice, never
//! skipped and never out of order; gateways drop positions they already
//! delivered.
//!
//! History going backwards: after a failover to a standby that lacked the
//! last commits (an asynchronous one), the log's head is below positions
//! that were sequenced, published and seen, and sequencing continues from
//! it, giving those positions to other events. Gateways detect it (their
//! hub's watermark is above the head) and send every stream `herald.reset`;
//! they look every second. A leader that finds the head below what it
//! sequenced itself holds the head there for [`REWIND_HOLD`] before
//! sequencing, so that every gateway sees it below its watermark before new
//! events climb past it (a worker started after the failover cannot know).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use herald_bus::{Bus, BusError, Publisher};
use herald_domain::{Envelope, Seq};
use herald_platform::backoff::Backoff;
use herald_store::outbox::OUTBOX_CHANNEL;
use sqlx::postgres::PgListener;
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metrics::WorkerMetrics;
use crate::sequencer;

/// The advisory lock key of the sequencer leader ("herald" in ASCII).
const LEADER_LOCK: i64 = 0x6865_7261_6c64;
/// How long a busy relay lets events gather between steps.
const GATHER: Duration = Duration::from_millis(1);
/// The publishers' fence, a transaction-level advisory lock ("herale"): it
/// does not wait for a sequencing step (which holds the `sequencer` row),
/// so it is taken while the step runs.
const PUBLISH_LOCK: i64 = 0x6865_7261_6c65;
/// Opens a publishing transaction: the fence, then, in a statement of its
/// own (its snapshot is taken once the fence is held, so it sees what the
/// last publisher recorded), the positions; and an asynchronous commit
/// (`published_seq` is a hint whose loss in a crash only means publishing
/// again, which gateways drop). One round trip.
static LOCK_FOR_PUBLISHING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "BEGIN; SELECT pg_advisory_xact_lock({PUBLISH_LOCK}); \
         SELECT published_seq, last_seq, set_config('synchronous_commit', 'off', true) FROM sequencer"
    )
});
/// How long a leader that found history rewound waits before sequencing:
/// several of the gateways' one-second head checks (see the module docs).
const REWIND_HOLD: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the bus: {0}")]
    Bus(#[from] BusError),
}

/// Relay configuration.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub bus: Bus,
    pub poll: Duration,
    pub batch: usize,
}

pub struct OutboxRelay {
    pool: PgPool,
    config: RelayConfig,
    bus: Box<dyn Publisher>,
    /// The connection publishing transactions run on. Its own: they are
    /// written in raw SQL, `BEGIN` with the lock in one round trip and the
    /// record with `COMMIT` in another, and a failure between the two must
    /// not hand an open transaction back to a pool. Dropped on any error
    /// (the server rolls back), so the next step starts on a clean one.
    publishing: Option<PgConnection>,
    /// Steps completed since leadership was last (re)gained.
    healthy_steps: u64,
    /// The highest `last_seq` this worker has seen: the log's head never
    /// goes below it unless history went backwards.
    high_water: Seq,
    metrics: Arc<WorkerMetrics>,
}

impl OutboxRelay {
    pub fn new(pool: PgPool, config: RelayConfig, metrics: Arc<WorkerMetrics>) -> Result<Self, RelayError> {
        let bus = config.bus.publisher()?;
        Ok(Self {
            pool,
            config,
            bus,
            publishing: None,
            healthy_steps: 0,
            high_water: Seq::ZERO,
            metrics,
        })
    }

    /// Runs until `shutdown`: waits for leadership, then relays.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            self.healthy_steps = 0;
            let outcome = self.lead(&shutdown).await;
            // The backoff grows only across consecutive failures: a worker that
            // relayed successfully since the last error starts again at 50 ms.
            if self.healthy_steps > 0 {
                backoff.reset();
            }
            match outcome {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    tracing::warn!(error = %e, "relay interrupted; retrying");
                    self.metrics.relay_errors.inc();
                }
            }
            self.metrics.leader.set(0);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(backoff.next_wait()) => {}
            }
        }
    }

    /// Takes leadership (waiting while another worker has it) and relays
    /// until shutdown or an error.
    async fn lead(&mut self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        let mut lock_conn = PgConnection::connect_with(&self.pool.connect_options()).await?;
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK)
                .fetch_one(&mut lock_conn)
                .await?;
            if got {
                break;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
        tracing::info!("this worker is the sequencer leader");
        self.metrics.leader.set(1);
        self.check_rewind(shutdown).await?;

        let wake = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(self.pool.clone(), wake.clone()));
        let _stop_listener = AbortOnDrop(listener);
        let mut last_lock_check = tokio::time::Instant::now();
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let handled = self.step().await?;
            self.healthy_steps += 1;
            if handled >= self.config.batch {
                continue; // more is waiting
            }
            if last_lock_check.elapsed() > Duration::from_secs(1) {
                // Leadership lives with the lock connection: if it died, a
                // standby may already lead, so stop.
                lock_conn.ping().await?;
                // The publishing connection too: one that died idle is
                // replaced before an event waits on it.
                if let Some(conn) = self.publishing.as_mut() {
                    if conn.ping().await.is_err() {
                        self.publishing = None;
                    }
                }
                last_lock_check = tokio::time::Instant::now();
            }
            if handled > 1 {
                // Busy (events arrived while the last step ran): let the next
                // ones gather for a moment, so that under load each step (a
                // sequencing commit and a publish transaction) carries a batch
                // instead of one or two events. A wake-up that arrives
                // meanwhile is kept by `wake` and ends the wait below at once.
                // At light load a step carries one event and the next one is
                // not delayed.
                tokio::time::sleep(GATHER).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = wake.notified() => tracing::trace!(target: "herald_timing", "woken"),
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// Holds off sequencing for [`REWIND_HOLD`] when the log's head is below
    /// what this worker sequenced (see the module docs).
    async fn check_rewind(&mut self, shutdown: &CancellationToken) -> Result<(), RelayError> {
        let head = herald_store::history::positions(&self.pool).await?.head;
        if head < self.high_water {
            tracing::error!(
                %head,
                sequenced = %self.high_water,
                "history went backwards: the log's head is below positions this worker sequenced \
                 (a failover to a standby that lacked the last commits); they will be given to \
                 other events, and gateways reset their streams; holding the head for a moment"
            );
            self.metrics.history_rewinds.inc();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(REWIND_HOLD) => {}
            }
        }
        self.high_water = head;
        Ok(())
    }

    /// One unit of work: sequence a batch, then publish everything
    /// sequenced and not yet published. Returns how many events it handled.
    ///
    /// The publishing transaction is opened while the step runs (on its own
    /// connection: see [`LOCK_FOR_PUBLISHING`]), so that a sequenced event
    /// goes to the bus without another round trip first.
    pub async fn step(&mut self) -> Result<usize, RelayError> {
        let mut conn = match self.publishing.take() {
            Some(conn) => conn,
            None => PgConnection::connect_with(&self.pool.connect_options()).await?,
        };
        // On any error `conn` is dropped: the server rolls its transaction
        // back, nothing recorded.
        let (sequenced, positions) = tokio::join!(
            sequencer::sequence_batch(&self.pool, self.config.batch as i64),
            open_publishing(&mut conn),
        );
        let (positions, fresh) = (positions?, sequenced?.events);
        if let (Some(first), Some(last)) = (fresh.first(), fresh.last()) {
            tracing::trace!(target: "herald_timing", first = first.seq.get(), last = last.seq.get(), "sequenced");
        }
        if !fresh.is_empty() {
            self.metrics.sequenced.add(fresh.len() as u64);
            self.metrics.last_batch_size.set(fresh.len() as i64);
        }
        if let Some(e) = fresh.last() {
            self.high_water = self.high_water.max(e.seq);
        }
        let sequenced_n = fresh.len();
        let published_n = self.publish_on(&mut conn, positions, fresh).await?;
        self.publishing = Some(conn);
        Ok(sequenced_n.max(published_n))
    }

    /// Publishes sequenced events after `published_seq`, in order, at most
    /// one batch, inside the publishing transaction `conn` holds (opened by
    /// [`open_publishing`]): two more round trips when there is something to
    /// publish (the bus, the record with the commit), one when not.
    ///
    /// The fence serializes publishers: even if two workers believed they
    /// led (a lost lock connection, a partition), each starts exactly after
    /// the last acknowledged position, so the bus sees every topic's events
    /// in `seq` order. `published_seq` moves only after the bus acknowledged
    /// the batch; a crash before that means the next leader publishes the
    /// batch again (gateways drop duplicates). `fresh` (the batch just
    /// sequenced, committed) is used as is when it starts right after
    /// `published_seq`, saving a read.
    async fn publish_on(
        &mut self,
        conn: &mut PgConnection,
        positions: Positions,
        fresh: Vec<Envelope>,
    ) -> Result<usize, RelayError> {
        let Positions { published, last } = positions;
        let events = if fresh.first().map(|e| e.seq) == Some(published.next()) {
            fresh
        } else if fresh.is_empty() && published >= last {
            // `last` was read before this step's end, but an empty step moved
            // nothing: nothing to publish.
            Vec::new()
        } else {
            sequencer::sequenced_after(conn, published, self.config.batch as i64).await?
        };
        let Some(upto) = events.last().map(|e| e.seq) else {
            (&mut *conn).execute("COMMIT").await?;
            return Ok(0);
        };
        let connects = self.bus.connects();
        let sent = self.bus.publish(&events).await;
        self.metrics.redis_connects.add(self.bus.connects() - connects);
        sent?;
        let first = events.first().map_or(0, |e| e.seq.get());
        tracing::trace!(target: "herald_timing", first, last = upto.get(), "published");
        // A number, formatted: nothing from outside reaches this SQL.
        let record = format!("UPDATE sequencer SET published_seq = {}; COMMIT", upto.get());
        (&mut *conn).execute(record.as_str()).await?;
        tracing::trace!(target: "herald_timing", first, last = upto.get(), "recorded");
        self.metrics.published.add(events.len() as u64);
        Ok(events.len())
    }
}

/// What a publishing transaction found when it opened.
struct Positions {
    /// The last position the bus acknowledged.
    published: Seq,
    /// The log's head then.
    last: Seq,
}

/// Opens the publishing transaction on `conn` ([`LOCK_FOR_PUBLISHING`]).
async fn open_publishing(conn: &mut PgConnection) -> Result<Positions, sqlx::Error> {
    // Without arguments, sqlx sends the simple query protocol, which takes
    // several statements in one message; the positions are the last row.
    let rows = (&mut *conn).fetch_all(LOCK_FOR_PUBLISHING.as_str()).await?;
    let row = rows.last().ok_or(sqlx::Error::RowNotFound)?;
    Ok(Positions {
        published: row.try_get("published_seq")?,
        last: row.try_get("last_seq")?,
    })
}

/// Forwards `NOTIFY herald_outbox` to `wake`. Notifications coalesce: one
/// stored permit wakes the relay once for any number of commits.
async fn listen(pool: PgPool, wake: Arc<Notify>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if listener.listen(OUTBOX_CHANNEL).await.is_err() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // `recv` reconnects by itself; notifications lost meanwhile are
        // covered by the fallback poll.
        while listener.recv().await.is_ok() {
            wake.notify_one();
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
