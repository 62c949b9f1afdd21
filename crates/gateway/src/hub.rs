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
//! # Writing directly
//!
//! Waking one task per stream per event cost more than the `send` itself
//! once the kernel's share was taken out (a third of the gateway's CPU in the
//! latency benchmark: the wake-up, the task's poll through its body and its
//! waits, the queue). So a stream on the lean path (which owns its socket,
//! [`StreamSocket`](herald_platform::http::StreamSocket)) hands the hub a
//! [`Sink`] and, whenever it is parked with nothing queued, lets the hub
//! write to the socket itself ("direct" mode). Every delivery step takes the
//! sink's lock; the stream leaves direct mode under the same lock before it
//! writes anything itself, and enters it only when its queue is empty, so
//! the two never write at once and frames never overtake each other. The
//! duplicate filter (`seq` ≤ the last sent) moves into the sink with them.
//! A socket that does not take everything ends direct mode: the rest waits
//! in the sink, a wake-up frame goes through the queue, and the stream's
//! task writes it (and is cut off like any consumer that stopped reading).
//!
//! The hub delivers in batches: everything the bus has ready is framed
//! first, then each touched socket gets one write (vectored) for all of its
//! frames of the batch. Under load that coalesces like the stream tasks'
//! queues did; one event alone is one `send` per stream, from one task.
//!
//! On a Redis Cluster the hub holds one connection per shard instead, and
//! merges them back into one `seq`-ordered sequence before the watermark
//! logic above applies: see [`cluster`].

mod cluster;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use herald_domain::{Seq, Topic};
use herald_platform::bus::{self, Bus, LocalBus};
use redis::aio::{PubSubSink, PubSubStream};
use sqlx::PgPool;
use tokio::net::TcpStream;
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

/// One stream's end of the hub: its queue, its kick, and (on the lean
/// path) its socket with the state of direct writing.
pub struct Sink {
    tx: mpsc::Sender<Frame>,
    kick: CancellationToken,
    socket: Option<Arc<TcpStream>>,
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    /// The hub may write to the socket: the stream is parked, its queue empty.
    direct: bool,
    /// The highest `seq` written or handed to the stream: the seam's filter.
    last_sent: Seq,
    /// Frames of the current batch, or what the socket did not take.
    pending: Vec<Bytes>,
    /// Listed in the current batch's deliveries.
    listed: bool,
}

impl Sink {
    fn state(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position the stream has sent up to.
    pub fn last_sent(&self) -> Seq {
        self.state().last_sent
    }

    /// Records that everything up to `seq` was sent (replay, preamble).
    pub fn set_last_sent(&self, seq: Seq) {
        self.state().last_sent = seq;
    }

    /// Lets the hub write directly if nothing is waiting for the stream's
    /// own task (`queued`: its receiver). Call only when no write of the
    /// stream's is in flight.
    pub fn park(&self, queued: &mpsc::Receiver<Frame>) {
        if self.socket.is_none() {
            return;
        }
        let mut st = self.state();
        if st.pending.is_empty() && queued.is_empty() {
            st.direct = true;
        }
    }

    /// Takes writing back from the hub, with whatever it could not write.
    pub fn unpark(&self) -> Vec<Bytes> {
        let mut st = self.state();
        st.direct = false;
        std::mem::take(&mut st.pending)
    }

    /// [`Sink::accept`] for a single frame: `true` (and the bytes in `out`)
    /// if it goes out.
    pub fn accept_one(&self, frame: Frame, out: &mut Option<Bytes>) -> bool {
        let mut st = self.state();
        if frame.seq > st.last_sent {
            st.last_sent = frame.seq;
            *out = Some(frame.bytes);
            return true;
        }
        false
    }

    /// Frames from the queue that go out now, after `unpark`ed leftovers:
    /// those above the last position sent, which moves past them.
    pub fn accept(&self, frames: impl IntoIterator<Item = Frame>, out: &mut Vec<Bytes>) -> usize {
        let mut st = self.state();
        let mut n = 0;
        for f in frames {
            if f.seq > st.last_sent {
                st.last_sent = f.seq;
                out.push(f.bytes);
                n += 1;
            }
        }
        n
    }
}

/// What one batch delivers directly: the sinks with frames pending.
#[derive(Default)]
struct Batch {
    sinks: Vec<Arc<Sink>>,
    frames: u64,
}

#[derive(Default)]
struct TopicEntry {
    subscribers: HashMap<u64, Arc<Sink>>,
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
    /// Live frames, strictly increasing in `seq` (and wake-ups: frames
    /// with `seq` 0, sent when the hub leaves bytes in the sink).
    pub frames: mpsc::Receiver<Frame>,
    /// Cancelled when the stream fell behind its buffer bound.
    pub kicked: CancellationToken,
    pub sink: Arc<Sink>,
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
    /// With `socket`, the hub writes to it directly while the stream lets
    /// it (see [`Sink::park`]).
    pub async fn subscribe(
        &self,
        topics: &[Topic],
        capacity: usize,
        wait: Duration,
        kick: CancellationToken,
        socket: Option<Arc<TcpStream>>,
    ) -> Result<Subscription, HubError> {
        let (tx, frames) = mpsc::channel(capacity);
        let kicked = kick;
        let sink = Arc::new(Sink {
            tx,
            kick: kicked.clone(),
            socket,
            state: Mutex::new(SinkState::default()),
        });
        let mut pending = Vec::new();
        let id = {
            let mut state = self.inner.state();
            state.next_id += 1;
            let id = state.next_id;
            for topic in topics {
                let entry = state.topics.entry(topic.to_string()).or_default();
                let new = entry.subscribers.is_empty() && !entry.active && entry.waiters.is_empty();
                entry.subscribers.insert(id, sink.clone());
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
            sink,
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
                // Everything else already received joins this batch.
                let mut batch = Batch::default();
                let mut next = Some(msg);
                let mut taken = 0;
                while let Some(msg) = next.take() {
                    relay(inner, &msg, last, &mut batch);
                    taken += 1;
                    if taken < MAX_BATCH {
                        match stream.next().now_or_never() {
                            Some(Some(m)) => next = Some(m),
                            Some(None) => {
                                deliver(inner, batch);
                                return Err(SessionError::Closed);
                            }
                            None => {}
                        }
                    }
                }
                deliver(inner, batch);
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

/// Bus messages delivered in one batch, at most.
const MAX_BATCH: usize = 256;

/// Adds one bus message to `batch`, unless it is a republished duplicate.
fn relay(inner: &Inner, msg: &redis::Msg, last: &mut Option<Seq>, batch: &mut Batch) {
    let Some(topic) = bus::topic_of(&inner.prefix, msg.get_channel_name()) else {
        return;
    };
    let Some((_, frame)) = Frame::from_bus(msg.get_payload_bytes()) else {
        tracing::warn!(topic, "dropping an unparsable bus message");
        return;
    };
    if frame.seq <= last.unwrap_or(0) {
        return; // a republished duplicate
    }
    *last = Some(frame.seq);
    fan_out(inner, topic, frame, batch);
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
                    let mut batch = Batch::default();
                    fan_out(inner, &topic, frame, &mut batch);
                    deliver(inner, batch);
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
///
/// Each page proves itself complete against the pruning position of its own
/// snapshot. When retention deleted events the hub never forwarded (a bus
/// outage longer than the retention, or a prune racing the catch-up), no
/// stream can be served them: every stream that has not sent the page's
/// head gets `herald.reset` at that head (see [`reset_all`]), and the
/// watermark moves there. The bus subscriptions were made before the read,
/// so everything after the head arrives live.
async fn catch_up(
    inner: &Arc<Inner>,
    pool: &PgPool,
    topics: &[String],
    from: Seq,
) -> Result<Seq, sqlx::Error> {
    let mut last = from;
    if topics.is_empty() {
        return Ok(last);
    }
    loop {
        let page = history::events_after(pool, topics, last, 1_000).await?;
        if !page.complete_after(last) {
            let head = page.positions.head;
            tracing::warn!(
                from = last,
                pruned = page.positions.pruned,
                head,
                "history the hub had not forwarded was pruned; resetting its streams"
            );
            reset_all(inner, head);
            return Ok(head);
        }
        let n = page.events.len();
        let mut batch = Batch::default();
        for e in &page.events {
            last = e.seq;
            fan_out(inner, &e.topic, Frame::from_envelope(e), &mut batch);
        }
        deliver(inner, batch);
        inner.metrics.caught_up_events.add(n as u64);
        if n < 1_000 {
            return Ok(last);
        }
    }
}

/// Sends `herald.reset` at `head` to every registered stream that has not
/// sent `head` yet (the sink's filter drops it for the others), once per
/// stream whatever its number of topics.
fn reset_all(inner: &Arc<Inner>, head: Seq) {
    let frame = Frame {
        seq: head,
        bytes: Bytes::from(crate::frame::control("herald.reset", "pruned", Some(head))),
    };
    let mut batch = Batch::default();
    {
        let state = inner.state();
        let mut seen = std::collections::HashSet::new();
        for entry in state.topics.values() {
            for (id, sink) in &entry.subscribers {
                if !seen.insert(*id) {
                    continue;
                }
                if sink.state().last_sent < head {
                    inner.metrics.resets.inc();
                }
                // A stream whose queue is full resumes with `Last-Event-ID`
                // and gets its reset from its own replay.
                if !offer(sink, &frame, &mut batch) {
                    kick(inner, sink);
                }
            }
        }
    }
    deliver(inner, batch);
}

/// Offers `frame` to every stream of `topic`: added to the sink's pending
/// frames where the hub writes directly (see [`deliver`]), queued otherwise.
/// A full queue means the stream cannot keep up: it is kicked (it will
/// resume with `Last-Event-ID`).
fn fan_out(inner: &Inner, topic: &str, frame: Frame, batch: &mut Batch) {
    let mut state = inner.state();
    let Some(entry) = state.topics.get_mut(topic) else {
        return;
    };
    let mut full = Vec::new();
    for (id, sink) in &entry.subscribers {
        if !offer(sink, &frame, batch) {
            full.push(*id);
        }
    }
    for id in full {
        if let Some(sink) = entry.subscribers.remove(&id) {
            kick(inner, &sink);
        }
    }
}

/// Offers `frame` to one stream: appended to its pending frames when the hub
/// writes for it (and the frame is new to it), queued otherwise. `false`
/// when its queue is full.
fn offer(sink: &Arc<Sink>, frame: &Frame, batch: &mut Batch) -> bool {
    // Under the sink's lock: the stream cannot park (or unpark) between the
    // check and the queueing, so nothing overtakes a queued frame.
    let mut st = sink.state();
    if st.direct {
        if frame.seq > st.last_sent {
            st.last_sent = frame.seq;
            st.pending.push(frame.bytes.clone());
            batch.frames += 1;
            if !st.listed {
                st.listed = true;
                batch.sinks.push(sink.clone());
            }
        }
        return true;
    }
    !matches!(
        sink.tx.try_send(frame.clone()),
        Err(mpsc::error::TrySendError::Full(_))
    )
}

fn kick(inner: &Inner, sink: &Sink) {
    sink.kick.cancel();
    inner.kicked.fetch_add(1, Ordering::Relaxed);
}

/// Writes each sink's pending frames of `batch` to its socket, in one
/// (vectored) write. What the socket does not take stays pending, direct
/// mode ends, and a wake-up frame sends the stream's task to write it.
///
/// Many sockets are split into parts of [`PART`], each written by its own
/// task: spread over the runtime's threads, and short, so that neither the
/// hub nor the next batch waits long for a thread. Order holds whoever
/// writes when: each write takes everything pending in the sink, under its
/// lock, and a sink listed in a batch not yet written is not listed again
/// (the earlier write takes the later frames).
fn deliver(inner: &Arc<Inner>, batch: Batch) {
    if batch.frames > 0 {
        inner.metrics.delivered.add(batch.frames);
    }
    let mut sinks = batch.sinks;
    if sinks.len() <= PART {
        return write_sinks(inner, &sinks);
    }
    // All parts in tasks: the hub goes back to the bus at once, and the
    // next event's frames join the sinks still waiting for their write.
    while !sinks.is_empty() {
        let part = sinks.split_off(sinks.len().saturating_sub(PART));
        let inner = inner.clone();
        tokio::spawn(async move {
            for chunk in part.chunks(YIELD_EVERY) {
                write_sinks(&inner, chunk);
                // Let the worker poll the I/O driver: a busy worker polls it
                // only between tasks, so the bus's next message (and the
                // streams' own wake-ups) would wait behind every queued
                // delivery task.
                tokio::task::yield_now().await;
            }
        });
    }
}

/// Sockets written by one delivery task, at most (~0.6 ms of `send`s here).
const PART: usize = 128;
/// Sockets a delivery task writes between yields (~0.15 ms of `send`s).
const YIELD_EVERY: usize = 32;

fn write_sinks(inner: &Inner, sinks: &[Arc<Sink>]) {
    for sink in sinks {
        let mut st = sink.state();
        st.listed = false;
        // The stream took writing back meanwhile (with the frames).
        if !st.direct || st.pending.is_empty() {
            continue;
        }
        let Some(socket) = &sink.socket else { continue };
        match write_now(socket, &mut st.pending) {
            Ok(true) => {}
            Ok(false) => {
                st.direct = false;
                let wake = Frame {
                    seq: 0,
                    bytes: Bytes::new(),
                };
                if sink.tx.try_send(wake).is_err() {
                    kick(inner, sink);
                }
            }
            Err(e) => {
                // The connection is broken: its task sees the socket fail and
                // ends (not a slow consumer; nothing to kick).
                tracing::debug!(error = %e, "direct write failed");
                st.direct = false;
                st.pending.clear();
            }
        }
    }
}

/// Writes as much of `pending` as the socket takes without waiting and
/// removes it. `Ok(true)` when everything went.
fn write_now(socket: &TcpStream, pending: &mut Vec<Bytes>) -> std::io::Result<bool> {
    while !pending.is_empty() {
        let result = if pending.len() == 1 {
            socket.try_write(&pending[0])
        } else {
            let slices: Vec<std::io::IoSlice<'_>> = pending
                .iter()
                .take(MAX_IOV)
                .map(|b| std::io::IoSlice::new(b))
                .collect();
            socket.try_write_vectored(&slices)
        };
        let mut written = match result {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut done = 0;
        for b in pending.iter_mut() {
            if written >= b.len() {
                written -= b.len();
                done += 1;
            } else {
                bytes::Buf::advance(b, written);
                break;
            }
        }
        pending.drain(..done);
    }
    Ok(true)
}

/// Slices per vectored write (Linux takes up to 1024).
const MAX_IOV: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A socket that stops taking bytes mid-frame keeps exactly the rest, in
    /// order, and a later write finishes it: the peer reads every frame once.
    #[tokio::test]
    async fn partial_writes_keep_exactly_the_unwritten_rest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // Far more than the socket buffers hold, in odd sizes.
        let frames: Vec<Bytes> = (0..40_000u32)
            .map(|i| {
                Bytes::from(format!(
                    "id: {i}\ndata: {}\n\n",
                    "x".repeat((i % 97) as usize * 13)
                ))
            })
            .collect();
        let expected: Vec<u8> = frames.concat();
        let mut pending = frames;
        assert!(!write_now(&client, &mut pending).unwrap(), "the socket filled up");
        assert!(!pending.is_empty());
        let total = expected.len();
        let reader = tokio::spawn(async move {
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 64 * 1024];
            while got.len() < total {
                let n = server.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        while !pending.is_empty() {
            client.writable().await.unwrap();
            let _ = write_now(&client, &mut pending).unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .unwrap()
            .unwrap();
        assert!(pending.is_empty());
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }
}
