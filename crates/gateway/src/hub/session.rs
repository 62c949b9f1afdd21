//! The hub's bus connection: connect, subscribe, catch up, relay; and again
//! after any failure.
//!
//! # Exactness
//!
//! The bus is at-most-once: messages published while the connection is down
//! are lost. The hub makes delivery exact with one watermark, `last`: the
//! highest `seq` it has forwarded (or, on the first connection, the head
//! read after subscribing). The subscriber yields messages in `seq` order,
//! so the messages the hub received before a failure are a prefix of what
//! was published on its topics: every lost event has `seq > last`. After
//! connecting and subscribing again, the hub reads those from Postgres and
//! forwards them ([`catch_up`]) before relaying live messages again, and it
//! drops every live message at or below `last` (republished duplicates). Its
//! output is therefore strictly increasing.
//!
//! A stream's own replay covers everything up to a snapshot taken after its
//! subscription was confirmed; the hub covers everything after. The stream
//! drops what it already sent (see `connection`).
//!
//! # History going backwards
//!
//! The log's head can only be at or above the watermark: an event is
//! sequenced before it is published. A head below it means the log lost
//! events the hub forwarded (Postgres failed over to a replica that had not
//! received them), and later events will reuse their positions. The hub
//! checks every second; when it finds the head below the watermark, or the
//! event at the watermark replaced by another (the head already climbed past
//! it again), it connects again, and every stream gets `herald.reset` at the
//! head, even those past it, whose positions mean nothing any more.
//!
//! # Postgres out of reach
//!
//! Relaying live messages needs only the bus, so the relay loop never waits
//! for Postgres: the head check runs beside it ([`HeadCheck`]), one at a time,
//! and the windows of new subscriptions are seeded only if the head comes
//! within [`SEED_WAIT`]. A gateway cut off from Postgres goes on delivering
//! what the bus carries (pinned by `tests/postgres_unreachable.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use herald_bus::{Batch, BusError, Subscriber};
use herald_domain::Seq;
use herald_platform::backoff::Backoff;
use herald_store::history;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Command, Deliveries, Inner};
use crate::frame::Frame;

/// Topics per subscribe or unsubscribe command, at most.
const SUBSCRIBE_CHUNK: usize = 256;
/// Commands taken from the queue at once, at most.
const MAX_COMMAND_BATCH: usize = 4096;
/// Events per catch-up page.
const CATCH_UP_PAGE: i64 = 1_000;
/// How long the relay loop waits for the head to seed new windows.
const SEED_WAIT: Duration = Duration::from_millis(500);

/// A head check in flight: resolves to the head when history went backwards.
type HeadCheck = Pin<Box<dyn Future<Output = Option<Seq>> + Send>>;

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("history went backwards: the log (head {head}) no longer holds the event at {last} already forwarded (a failover to a replica that had not received everything?)")]
    Rewound { head: Seq, last: Seq },
}

/// The connection task: sessions until `shutdown`, with a backoff between
/// failed ones.
pub(super) async fn run(
    inner: Arc<Inner>,
    mut bus: Box<dyn Subscriber>,
    pool: PgPool,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut session = Session {
        inner,
        pool,
        last: None,
        last_envelope: String::new(),
        rewound: false,
        batch: Batch::default(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            o = session.run(bus.as_mut(), &mut commands) => o,
        };
        let inner = &session.inner;
        // It connected: the next attempt starts at the shortest wait.
        if inner.connected.swap(false, Ordering::AcqRel) {
            backoff.reset();
        }
        match outcome {
            Ok(()) => return, // every handle dropped
            Err(SessionError::Bus(BusError::Lagged(n))) => {
                tracing::warn!(missed = n, "fell behind the bus; catching up from Postgres");
                inner.metrics.bus_lagged.inc();
            }
            Err(e @ SessionError::Rewound { .. }) => tracing::warn!(error = %e, "connecting again to reset"),
            Err(e) => {
                tracing::warn!(error = %e, "bus connection lost; reconnecting");
                inner.metrics.redis_reconnects.inc();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_wait()) => {}
        }
    }
}

struct Session {
    inner: Arc<Inner>,
    pool: PgPool,
    /// The watermark: the highest `seq` forwarded. `None` before the first
    /// connection.
    last: Option<Seq>,
    /// The envelope of the event at `last`, when the hub forwarded it (not
    /// after a reset or on the first connection): to tell that a later
    /// history reuses its position.
    last_envelope: String,
    /// History went backwards: the next connection resets every stream.
    rewound: bool,
    batch: Batch,
}

impl Session {
    /// One connection's lifetime. Returns `Ok` only when the hub is gone.
    async fn run(
        &mut self,
        bus: &mut dyn Subscriber,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), SessionError> {
        bus.connect().await?;
        // Everything registered, including topics still waiting.
        let topics = self.inner.topics();
        for chunk in topics.chunks(SUBSCRIBE_CHUNK) {
            bus.subscribe(chunk).await?;
        }
        let caught_up = match self.last {
            // First connection: start at the head. Streams replay what came before.
            None => history::positions(&self.pool).await?.head,
            // History went backwards: what the hub forwarded means nothing now.
            Some(_) if self.rewound => {
                let head = history::positions(&self.pool).await?.head;
                self.inner.reset_all(head, "rewound");
                self.last_envelope.clear();
                self.rewound = false;
                head
            }
            // Again: forward what was published while we were away.
            Some(from) => self.catch_up(&topics, from).await?,
        };
        // Everything after `caught_up` is forwarded from now on; windows
        // that existed are contiguous across the outage (caught up).
        self.inner.seed_windows(&topics, self.last.unwrap_or(caught_up));
        self.last = Some(caught_up);
        self.inner.forwarded(caught_up);
        bus.caught_up(caught_up);
        self.inner.activate(&topics);
        self.inner.connected.store(true, Ordering::Release);
        tracing::info!(topics = topics.len(), "bus connected");

        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.tick().await;
        let mut head_check: Option<(Seq, HeadCheck)> = None;
        loop {
            self.batch.clear();
            tokio::select! {
                taken = bus.next_batch(&mut self.batch) => {
                    taken?;
                    self.relay();
                }
                cmd = commands.recv() => {
                    let Some(first) = cmd else { return Ok(()) };
                    self.follow(bus, first, commands).await?;
                }
                rewound = async { head_check.as_mut().expect("guarded").1.as_mut().await },
                    if head_check.is_some() =>
                {
                    let (last, _) = head_check.take().expect("guarded");
                    if let Some(head) = rewound {
                        self.rewound = true;
                        return Err(SessionError::Rewound { head, last });
                    }
                }
                _ = check.tick() => {
                    self.inner.expire_lingering();
                    bus.check().await?;
                    if head_check.is_none() {
                        head_check = self.head_check();
                    }
                }
            }
        }
    }

    /// A check that history went backwards (see the module docs): the head is
    /// below the watermark, or the event at the watermark is not the one the
    /// hub forwarded, both as of when the check started. A database that does
    /// not answer is no reason to drop the bus: the next check tries again.
    fn head_check(&self) -> Option<(Seq, HeadCheck)> {
        let last = self.last?;
        let pool = self.pool.clone();
        let forwarded = forwarded_id(&self.last_envelope);
        let check = async move {
            match history::positions(&pool).await {
                Ok(p) if p.head < last => Some(p.head),
                Ok(p) => replaced(&pool, last, forwarded.as_deref())
                    .await
                    .then_some(p.head),
                Err(e) => {
                    tracing::debug!(error = %e, "reading the log's head failed; checking again later");
                    None
                }
            }
        };
        Some((last, Box::pin(check)))
    }

    /// Fans out the batch taken from the bus, but for republished
    /// duplicates, and moves the watermark.
    fn relay(&mut self) {
        let mut last = self.last.unwrap_or_default();
        // `herald_timing`: the stages of publish-to-screen (scripts/profile-latency).
        let timed = tracing::enabled!(target: "herald_timing", tracing::Level::TRACE);
        if timed {
            if let Some(first) = self.batch.iter().map(|m| m.seq).find(|s| *s > last) {
                tracing::trace!(target: "herald_timing", first = first.get(), "received");
            }
        }
        let mut deliveries = Deliveries::default();
        let mut newest = None;
        for m in self.batch.iter() {
            if m.seq <= last {
                continue;
            }
            last = m.seq;
            self.inner
                .fan_out(m.topic, Frame::from_message(&m), &mut deliveries);
            newest = Some(m.envelope);
        }
        if let Some(envelope) = newest {
            self.last_envelope.clear();
            self.last_envelope.push_str(envelope);
        }
        self.last = Some(last);
        self.inner.forwarded(last);
        deliveries.write(&self.inner.metrics);
        if timed && newest.is_some() {
            tracing::trace!(target: "herald_timing", last = last.get(), "written");
        }
    }

    /// Makes the bus follow the registry: `first` and every command queued
    /// behind it, in a few round trips. (A reconnect storm registers
    /// hundreds of new topics at once.)
    async fn follow(
        &self,
        bus: &mut dyn Subscriber,
        first: Command,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), BusError> {
        let mut queued = vec![first];
        while queued.len() < MAX_COMMAND_BATCH {
            match commands.try_recv() {
                Ok(cmd) => queued.push(cmd),
                Err(_) => break,
            }
        }
        let (subscribe, unsubscribe) = self.inner.settle(queued);
        for chunk in unsubscribe.chunks(SUBSCRIBE_CHUNK) {
            bus.unsubscribe(chunk).await?;
        }
        for chunk in subscribe.chunks(SUBSCRIBE_CHUNK) {
            bus.subscribe(chunk).await?;
            self.inner.activate(chunk);
        }
        // The head read after the confirmations: every event of these topics
        // after it reaches the hub, so their windows can start there.
        // Without it (Postgres slow or out of reach) they stay unseeded: their
        // streams replay from Postgres, and the relay loop does not wait.
        if !subscribe.is_empty() && self.inner.windows() {
            if let Ok(Ok(p)) = tokio::time::timeout(SEED_WAIT, history::positions(&self.pool)).await {
                self.inner.seed_windows(&subscribe, p.head);
            }
        }
        Ok(())
    }

    /// Forwards every event of `topics` after `from`, in order. Returns the
    /// new watermark.
    ///
    /// Each page proves itself complete against the pruning position of its
    /// own snapshot. When retention deleted events the hub never forwarded
    /// (a bus outage longer than the retention, or a prune racing the
    /// catch-up), no stream can be served them: every stream that has not
    /// sent the page's head gets `herald.reset` at that head, and the
    /// watermark moves there. The subscriptions were made before the read,
    /// so everything after the head arrives live.
    async fn catch_up(&mut self, topics: &[String], from: Seq) -> Result<Seq, sqlx::Error> {
        let mut last = from;
        loop {
            let page = history::events_after(&self.pool, topics, last, CATCH_UP_PAGE).await?;
            let head = page.positions.head;
            if head < last {
                tracing::warn!(%head, forwarded = %last, "history went backwards; resetting every stream");
                self.inner.reset_all(head, "rewound");
                self.last_envelope.clear();
                return Ok(head);
            }
            if !page.complete_after(last) {
                tracing::warn!(
                    from = %last,
                    pruned = %page.positions.pruned,
                    %head,
                    "history the hub had not forwarded was pruned; resetting its streams"
                );
                self.inner.reset_all(head, "pruned");
                self.last_envelope.clear();
                return Ok(head);
            }
            let n = page.events.len();
            let mut deliveries = Deliveries::default();
            for e in &page.events {
                last = e.seq;
                self.inner
                    .fan_out(&e.topic, Frame::from_envelope(e), &mut deliveries);
            }
            deliveries.write(&self.inner.metrics);
            if let Some(e) = page.events.last() {
                self.last_envelope = serde_json::to_string(e).unwrap_or_default();
            }
            self.inner.metrics.caught_up_events.add(n as u64);
            if (n as i64) < CATCH_UP_PAGE {
                return Ok(last);
            }
        }
    }
}

/// The id of the event in `envelope`, the one forwarded at the watermark (none
/// after a reset or on the first connection).
fn forwarded_id(envelope: &str) -> Option<String> {
    let forwarded: serde_json::Value = serde_json::from_str(envelope).ok()?;
    forwarded["id"].as_str().map(str::to_owned)
}

/// Whether the log holds another event at `last` than `forwarded`, the one
/// forwarded there. (None there, pruned say, proves nothing.)
async fn replaced(pool: &PgPool, last: Seq, forwarded: Option<&str>) -> bool {
    let Some(id) = forwarded else { return false };
    match history::id_at(pool, last).await {
        Ok(Some(now)) => now.to_string() != id,
        Ok(None) => false,
        Err(e) => {
            tracing::debug!(error = %e, "reading the event at the watermark failed; checking again later");
            false
        }
    }
}
