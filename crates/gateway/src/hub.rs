//! The hub: one Redis pub/sub connection per gateway, shared by every stream.
//!
//! Streams register the topics they carry; the hub keeps one exact Redis
//! subscription per topic, reference-counted across streams, and fans each
//! message out to the registered streams' bounded queues.
//!
//! # Exactness
//!
//! Redis pub/sub is at-most-once: messages published while the connection is
//! down are lost. The hub makes delivery exact with one watermark, `last`:
//! the highest `seq` it has forwarded (or, on first connect, the head read
//! after subscribing). The worker publishes in `seq` order, so the messages
//! the hub received before a disconnect are a prefix of what was published
//! on its channels: every lost event has `seq > last`. After reconnecting and
//! re-subscribing, the hub reads those from Postgres and forwards them before
//! resuming live delivery, and it drops any live message at or below `last`
//! (republished duplicates). Its output is therefore strictly increasing.
//!
//! A stream's own replay covers everything up to a snapshot taken after its
//! subscription was confirmed; the hub covers everything after. The stream
//! drops what it already sent (see `stream.rs`).
//!
//! On a Redis Cluster the hub holds one connection per shard instead, and
//! merges them back into one `seq`-ordered sequence before the watermark
//! logic above applies: see [`cluster`].

mod cluster;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use herald_domain::{Seq, Topic};
use herald_platform::bus::{self, Bus, LocalBus};
use redis::aio::{PubSubSink, PubSubStream};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::frame::Frame;
use crate::history;
use crate::metrics::GatewayMetrics;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the bus is unavailable")]
    Unavailable,
}

enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

struct Subscriber {
    tx: mpsc::Sender<Frame>,
    kick: CancellationToken,
}

#[derive(Default)]
struct TopicEntry {
    subscribers: HashMap<u64, Subscriber>,
    /// Confirmed by Redis at least once; new streams need not wait.
    active: bool,
    waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Default)]
struct HubState {
    topics: HashMap<String, TopicEntry>,
    next_id: u64,
}

struct Inner {
    prefix: String,
    state: Mutex<HubState>,
    commands: mpsc::UnboundedSender<Command>,
    connected: AtomicBool,
    metrics: Arc<GatewayMetrics>,
    kicked: AtomicU64,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A handle to the hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A stream's registration. Dropping it unregisters (and unsubscribes topics
/// no other stream carries).
pub struct Subscription {
    inner: Arc<Inner>,
    id: u64,
    topics: Vec<String>,
    /// Live frames, strictly increasing in `seq`.
    pub frames: mpsc::Receiver<Frame>,
    /// Cancelled when the stream fell behind its buffer bound.
    pub kicked: CancellationToken,
}

impl Hub {
    /// Starts the hub's connection task on `bus`.
    pub fn start(
        bus: Bus,
        prefix: String,
        pool: PgPool,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, redis::RedisError> {
        let bus = match bus {
            Bus::Redis { url } => Source::Redis(redis::Client::open(url.as_str())?),
            Bus::RedisCluster { seeds } => {
                let seeds = herald_platform::cluster::seeds(&seeds)?;
                if seeds.is_empty() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::ClientError,
                        "no Redis Cluster seed URL",
                    )));
                }
                Source::Cluster(seeds)
            }
            Bus::Local(local) => Source::Local(local),
        };
        let (commands, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            prefix,
            state: Mutex::new(HubState::default()),
            commands,
            connected: AtomicBool::new(false),
            metrics,
            kicked: AtomicU64::new(0),
        });
        tokio::spawn(run(inner.clone(), bus, pool, rx, shutdown));
        Ok(Self { inner })
    }

    /// Whether the bus connection is up and caught up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Registers a stream for `topics` with a queue of `capacity` frames.
    /// Returns once every topic's Redis subscription is confirmed, so that
    /// any event published from now on reaches the queue. `kick` is
    /// cancelled if the stream falls behind its queue bound.
    pub async fn subscribe(
        &self,
        topics: &[Topic],
        capacity: usize,
        wait: Duration,
        kick: CancellationToken,
    ) -> Result<Subscription, HubError> {
        let (tx, frames) = mpsc::channel(capacity);
        let kicked = kick;
        let mut pending = Vec::new();
        let id = {
            let mut state = self.inner.state();
            state.next_id += 1;
            let id = state.next_id;
            for topic in topics {
                let entry = state.topics.entry(topic.to_string()).or_default();
                let new = entry.subscribers.is_empty() && !entry.active && entry.waiters.is_empty();
                entry.subscribers.insert(
                    id,
                    Subscriber {
                        tx: tx.clone(),
                        kick: kicked.clone(),
                    },
                );
                if !entry.active {
                    let (done, wait) = oneshot::channel();
                    entry.waiters.push(done);
                    pending.push(wait);
                    if new {
                        let _ = self.inner.commands.send(Command::Subscribe(topic.to_string()));
                    }
                }
            }
            id
        };
        let subscription = Subscription {
            inner: self.inner.clone(),
            id,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            frames,
            kicked,
        };
        let confirmed = tokio::time::timeout(wait, futures_util::future::join_all(pending)).await;
        match confirmed {
            Ok(results) if results.iter().all(Result::is_ok) => Ok(subscription),
            _ => Err(HubError::Unavailable), // dropping `subscription` unregisters
        }
    }

    /// Streams disconnected for falling behind, since start.
    pub fn kicked(&self) -> u64 {
        self.inner.kicked.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.inner.state();
        for topic in &self.topics {
            if let Some(entry) = state.topics.get_mut(topic) {
                entry.subscribers.remove(&self.id);
                if entry.subscribers.is_empty() {
                    state.topics.remove(topic);
                    let _ = self.inner.commands.send(Command::Unsubscribe(topic.clone()));
                }
            }
        }
    }
}

/// The connection task: connect, (re)subscribe, catch up, relay; repeat.
enum Source {
    Redis(redis::Client),
    /// A Redis Cluster's seed nodes.
    Cluster(Vec<redis::ConnectionInfo>),
    Local(LocalBus),
}

async fn run(
    inner: Arc<Inner>,
    source: Source,
    pool: PgPool,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut last: Option<Seq> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            o = async {
                match &source {
                    Source::Redis(client) => session(&inner, client, &pool, &mut commands, &mut last, &shutdown).await,
                    Source::Cluster(seeds) => cluster::session(&inner, seeds, &pool, &mut commands, &mut last, &shutdown).await,
                    Source::Local(bus) => local_session(&inner, bus, &pool, &mut commands, &mut last, &shutdown).await,
                }
            } => o,
        };
        inner.connected.store(false, Ordering::Release);
        match outcome {
            Ok(()) => return, // shutdown
            Err(SessionError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "fell behind the in-process bus; catching up from Postgres"
                );
                inner.metrics.bus_lagged.inc();
            }
            Err(e) => {
                tracing::warn!(error = %e, "bus connection lost; reconnecting");
                inner.metrics.redis_reconnects.inc();
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("fell {0} messages behind the in-process bus")]
    Lagged(u64),
    #[error("cluster topology: {0}")]
    Topology(String),
    #[error("a cluster shard sent no watermark for {0:?}; resynchronising")]
    Stalled(Duration),
}

/// One connection's lifetime. Returns `Ok` only on shutdown.
async fn session(
    inner: &Arc<Inner>,
    client: &redis::Client,
    pool: &PgPool,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    last: &mut Option<Seq>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
        .await
        .map_err(|_| SessionError::Timeout)??;
    let (mut sink, mut stream): (PubSubSink, PubSubStream) = pubsub.split();

    // Re-subscribe everything registered (including topics still waiting).
    let topics: Vec<String> = inner.state().topics.keys().cloned().collect();
    for chunk in topics.chunks(256) {
        let channels: Vec<String> = chunk.iter().map(|t| bus::channel(&inner.prefix, t)).collect();
        sink.subscribe(&channels).await?;
    }

    match *last {
        // First connection: start at the head. Streams replay what came before.
        None => *last = Some(history::positions(pool).await?.head),
        // Reconnection: forward what was published while we were away.
        Some(from) => {
            let caught_up = catch_up(inner, pool, &topics, from).await?;
            *last = Some(caught_up);
        }
    }
    activate(inner, &topics);
    inner.connected.store(true, Ordering::Release);
    tracing::info!(topics = topics.len(), "bus connected");

    let mut ping = tokio::time::interval(Duration::from_secs(5));
    ping.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            msg = stream.next() => {
                let Some(msg) = msg else { return Err(SessionError::Closed) };
                let Some(topic) = bus::topic_of(&inner.prefix, msg.get_channel_name()) else { continue };
                let Some((_, frame)) = Frame::from_bus(msg.get_payload_bytes()) else {
                    tracing::warn!(topic, "dropping an unparsable bus message");
                    continue;
                };
                let current = last.unwrap_or(0);
                if frame.seq <= current {
                    continue; // a republished duplicate
                }
                *last = Some(frame.seq);
                fan_out(inner, topic, frame);
            }
            cmd = commands.recv() => {
                let Some(first) = cmd else { return Ok(()) };
                // A reconnect storm registers hundreds of new topics at once:
                // take every queued command and confirm them in a few
                // round trips instead of one per topic.
                let mut batch = vec![first];
                while batch.len() < MAX_COMMAND_BATCH {
                    match commands.try_recv() {
                        Ok(cmd) => batch.push(cmd),
                        Err(_) => break,
                    }
                }
                let (subscribe, unsubscribe) = settle(inner, batch);
                for chunk in unsubscribe.chunks(256) {
                    let channels: Vec<String> = chunk.iter().map(|t| bus::channel(&inner.prefix, t)).collect();
                    sink.unsubscribe(&channels).await?;
                }
                for chunk in subscribe.chunks(256) {
                    let channels: Vec<String> = chunk.iter().map(|t| bus::channel(&inner.prefix, t)).collect();
                    sink.subscribe(&channels).await?;
                    activate(inner, chunk);
                }
            }
            _ = ping.tick() => {
                // Detects a stalled connection that never reports an error.
                tokio::time::timeout(Duration::from_secs(3), sink.ping::<()>())
                    .await
                    .map_err(|_| SessionError::Timeout)??;
            }
        }
    }
}

/// The in-process bus: every message reaches every gateway, so subscribing
/// is bookkeeping only. Falling behind the broadcast channel loses messages
/// exactly like a Redis disconnect, and is repaired the same way: a new
/// session catches up from Postgres after the watermark.
async fn local_session(
    inner: &Arc<Inner>,
    bus: &LocalBus,
    pool: &PgPool,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    last: &mut Option<Seq>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let mut rx = bus.subscribe();
    let topics: Vec<String> = inner.state().topics.keys().cloned().collect();
    match *last {
        None => *last = Some(history::positions(pool).await?.head),
        Some(from) => *last = Some(catch_up(inner, pool, &topics, from).await?),
    }
    activate(inner, &topics);
    inner.connected.store(true, Ordering::Release);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            msg = rx.recv() => match msg {
                Ok((topic, payload)) => {
                    let Some((_, frame)) = Frame::from_bus(&payload) else { continue };
                    if frame.seq <= last.unwrap_or(0) {
                        continue;
                    }
                    *last = Some(frame.seq);
                    fan_out(inner, &topic, frame);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => return Err(SessionError::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Subscribe(topic)) => activate(inner, std::slice::from_ref(&topic)),
                Some(Command::Unsubscribe(_)) => {}
                None => return Ok(()),
            },
        }
    }
}

/// Commands taken from the queue at once, at most.
const MAX_COMMAND_BATCH: usize = 4096;

/// What a batch of commands comes to, judged against the registry now:
/// topics to subscribe (still registered) and to unsubscribe (no longer
/// registered), each once. A topic dropped and registered again within the
/// batch is subscribed again, which Redis treats as a no-op.
fn settle(inner: &Inner, batch: Vec<Command>) -> (Vec<String>, Vec<String>) {
    let state = inner.state();
    let mut subscribe = Vec::new();
    let mut unsubscribe = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for cmd in batch {
        let topic = match cmd {
            Command::Subscribe(t) | Command::Unsubscribe(t) => t,
        };
        if !seen.insert(topic.clone()) {
            continue;
        }
        if state.topics.contains_key(&topic) {
            subscribe.push(topic);
        } else {
            unsubscribe.push(topic);
        }
    }
    (subscribe, unsubscribe)
}

/// Marks topics confirmed and releases the streams waiting for them.
fn activate(inner: &Inner, topics: &[String]) {
    let mut state = inner.state();
    for topic in topics {
        if let Some(entry) = state.topics.get_mut(topic) {
            entry.active = true;
            for w in entry.waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// Forwards every event of `topics` after `from`, in order. Returns the new
/// watermark.
async fn catch_up(inner: &Inner, pool: &PgPool, topics: &[String], from: Seq) -> Result<Seq, sqlx::Error> {
    let mut last = from;
    if topics.is_empty() {
        return Ok(last);
    }
    loop {
        let page = history::events_after(pool, topics, last, 1_000).await?;
        let n = page.len();
        for e in &page {
            last = e.seq;
            fan_out(inner, &e.topic, Frame::from_envelope(e));
        }
        inner.metrics.caught_up_events.add(n as u64);
        if n < 1_000 {
            return Ok(last);
        }
    }
}

/// Offers `frame` to every stream of `topic`. A full queue means the stream
/// cannot keep up: it is kicked (it will resume with `Last-Event-ID`).
fn fan_out(inner: &Inner, topic: &str, frame: Frame) {
    let mut state = inner.state();
    let Some(entry) = state.topics.get_mut(topic) else {
        return;
    };
    let mut full = Vec::new();
    for (id, sub) in &entry.subscribers {
        match sub.tx.try_send(frame.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => full.push(*id),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
    for id in full {
        if let Some(sub) = entry.subscribers.remove(&id) {
            sub.kick.cancel();
            inner.kicked.fetch_add(1, Ordering::Relaxed);
        }
    }
}
