//! The hub: one bus connection per gateway, shared by every stream.
//!
//! Streams register the topics they carry ([`Hub::subscribe`]); the hub
//! keeps one bus subscription per topic, reference-counted across streams,
//! and fans each message out to the registered streams' [`Sink`]s.
//!
//! - [`session`] drives the bus connection over any
//!   [`Subscriber`](herald_bus::Subscriber): connect, subscribe, catch up
//!   from Postgres, relay, and again after any failure. It holds the
//!   watermark that makes delivery exact.
//! - This module is the registry it fans out to.
//! - [`sink`] is each stream's end: its queue, and the writer the hub uses
//!   while the stream is parked.

mod session;
pub mod sink;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use herald_bus::{Bus, BusError};
use herald_domain::{Seq, Topic};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::sink::Deliveries;
pub use self::sink::Sink;
use crate::frame::{control, Frame};
use crate::metrics::GatewayMetrics;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the bus is unavailable")]
    Unavailable,
}

/// A change of the registry the bus connection must follow.
enum Command {
    Subscribe(String),
    Unsubscribe(String),
}

#[derive(Default)]
struct TopicEntry {
    subscribers: HashMap<u64, Arc<Sink>>,
    /// Confirmed by the bus at least once; new streams need not wait.
    active: bool,
    waiters: Vec<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Registry {
    topics: HashMap<String, TopicEntry>,
    next_id: u64,
}

struct Inner {
    registry: Mutex<Registry>,
    commands: mpsc::UnboundedSender<Command>,
    connected: AtomicBool,
    metrics: Arc<GatewayMetrics>,
}

/// A handle to the hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A stream's registration. Dropping it unregisters (and unsubscribes the
/// topics no other stream carries).
pub struct Subscription {
    inner: Arc<Inner>,
    id: u64,
    topics: Vec<String>,
    /// Live frames in `seq` order, and [`Frame::WAKE`]s.
    pub frames: mpsc::Receiver<Frame>,
    /// Cancelled when the stream fell behind its queue bound.
    pub kicked: CancellationToken,
    pub sink: Arc<Sink>,
}

impl Hub {
    /// Starts the hub's connection task on `bus`. Fails only on a malformed
    /// bus address.
    pub fn start(
        bus: &Bus,
        pool: PgPool,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let subscriber = bus.subscriber()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            registry: Mutex::new(Registry::default()),
            commands,
            connected: AtomicBool::new(false),
            metrics,
        });
        tokio::spawn(session::run(inner.clone(), subscriber, pool, rx, shutdown));
        Ok(Self { inner })
    }

    /// Whether the bus connection is up and caught up.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// Registers a stream for `topics` with a queue of `capacity` frames.
    /// Returns once the bus confirmed every topic's subscription (within
    /// `wait`), so that any event published from now on reaches the stream.
    /// `kick` is cancelled if the stream falls behind its queue bound.
    pub async fn subscribe(
        &self,
        topics: &[Topic],
        capacity: usize,
        wait: Duration,
        kick: CancellationToken,
    ) -> Result<Subscription, HubError> {
        let (tx, frames) = mpsc::channel(capacity);
        let sink = Arc::new(Sink::new(tx, kick.clone()));
        let mut confirmations = Vec::new();
        let id = {
            let mut registry = self.inner.registry();
            registry.next_id += 1;
            let id = registry.next_id;
            for topic in topics {
                let entry = registry.topics.entry(topic.to_string()).or_default();
                let new = entry.subscribers.is_empty() && !entry.active && entry.waiters.is_empty();
                entry.subscribers.insert(id, sink.clone());
                if !entry.active {
                    let (done, confirmed) = oneshot::channel();
                    entry.waiters.push(done);
                    confirmations.push(confirmed);
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
            kicked: kick,
            sink,
        };
        let confirmed = tokio::time::timeout(wait, futures_util::future::join_all(confirmations)).await;
        match confirmed {
            Ok(results) if results.iter().all(Result::is_ok) => Ok(subscription),
            _ => Err(HubError::Unavailable), // dropping `subscription` unregisters
        }
    }
}

impl Subscription {
    /// The topics it carries.
    pub fn topics(&self) -> &[String] {
        &self.topics
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = self.inner.registry();
        for topic in &self.topics {
            if let Some(entry) = registry.topics.get_mut(topic) {
                entry.subscribers.remove(&self.id);
                if entry.subscribers.is_empty() {
                    registry.topics.remove(topic);
                    let _ = self.inner.commands.send(Command::Unsubscribe(topic.clone()));
                }
            }
        }
    }
}

impl Inner {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every registered topic, including those still waiting for the bus.
    fn topics(&self) -> Vec<String> {
        self.registry().topics.keys().cloned().collect()
    }

    /// Marks topics confirmed and releases the streams waiting for them.
    fn activate(&self, topics: &[String]) {
        let mut registry = self.registry();
        for topic in topics {
            if let Some(entry) = registry.topics.get_mut(topic) {
                entry.active = true;
                for w in entry.waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
    }

    /// What a batch of commands comes to, judged against the registry now:
    /// topics to subscribe (still registered) and to unsubscribe (no longer
    /// registered), each once. A topic dropped and registered again within
    /// the batch is subscribed again, which the bus treats as a no-op.
    fn settle(&self, commands: Vec<Command>) -> (Vec<String>, Vec<String>) {
        let registry = self.registry();
        let mut subscribe = Vec::new();
        let mut unsubscribe = Vec::new();
        let mut seen = HashSet::new();
        for cmd in commands {
            let topic = match cmd {
                Command::Subscribe(t) | Command::Unsubscribe(t) => t,
            };
            if !seen.insert(topic.clone()) {
                continue;
            }
            if registry.topics.contains_key(&topic) {
                subscribe.push(topic);
            } else {
                unsubscribe.push(topic);
            }
        }
        (subscribe, unsubscribe)
    }

    /// Offers `frame` to every stream of `topic` (see [`Sink::offer`]). A
    /// stream whose queue is full cannot keep up: it is kicked (and resumes
    /// with `Last-Event-ID`).
    fn fan_out(&self, topic: &str, frame: Frame, deliveries: &mut Deliveries) {
        let mut registry = self.registry();
        let Some(entry) = registry.topics.get_mut(topic) else {
            return;
        };
        entry.subscribers.retain(|_, sink| {
            let kept = sink.offer(&frame, deliveries);
            if !kept {
                sink.kick();
            }
            kept
        });
    }

    /// Sends `herald.reset` at `head` to every registered stream that has
    /// not sent `head` yet (the sink's filter drops it for the others), once
    /// per stream whatever its number of topics.
    fn reset_all(&self, head: Seq) {
        let frame = Frame {
            seq: head,
            bytes: Bytes::from(control("herald.reset", "pruned", Some(head))),
        };
        let mut deliveries = Deliveries::default();
        {
            let registry = self.registry();
            let mut seen = HashSet::new();
            for entry in registry.topics.values() {
                for (id, sink) in &entry.subscribers {
                    if !seen.insert(*id) {
                        continue;
                    }
                    if sink.last_sent() < head {
                        self.metrics.resets.inc();
                    }
                    // A stream whose queue is full resumes with
                    // `Last-Event-ID` and gets its reset from its own replay.
                    if !sink.offer(&frame, &mut deliveries) {
                        sink.kick();
                    }
                }
            }
        }
        deliveries.write(&self.metrics);
    }
}
