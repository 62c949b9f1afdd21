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
//! - [`window`] keeps each topic's recent frames, so that a resume a few
//!   seconds back is served from memory when the window provably covers it.

mod session;
pub mod sink;
mod window;

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
use self::window::{Budget, Window};
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

struct TopicEntry {
    name: Arc<str>,
    subscribers: HashMap<u64, Arc<Sink>>,
    /// Confirmed by the bus at least once; new streams need not wait.
    active: bool,
    waiters: Vec<oneshot::Sender<()>>,
    window: Window,
}

impl TopicEntry {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            subscribers: HashMap::new(),
            active: false,
            waiters: Vec::new(),
            window: Window::default(),
        }
    }
}

struct Registry {
    topics: HashMap<String, TopicEntry>,
    next_id: u64,
    budget: Budget,
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
    /// Asked to resume after a position the replay windows cover: every
    /// frame after it the hub forwarded before the registration, in `seq`
    /// order (the rest arrives in `frames`).
    pub from_memory: Option<Vec<Frame>>,
}

impl Hub {
    /// Starts the hub's connection task on `bus`, with replay windows of
    /// `window_bytes` in all (0: none). Fails only on a malformed bus address.
    pub fn start(
        bus: &Bus,
        window_bytes: usize,
        pool: PgPool,
        metrics: Arc<GatewayMetrics>,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let subscriber = bus.subscriber()?;
        let (commands, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            registry: Mutex::new(Registry {
                topics: HashMap::new(),
                next_id: 0,
                budget: Budget::new(window_bytes),
            }),
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
    /// `kick` is cancelled if the stream falls behind its queue bound. With
    /// `resume`, the frames after it come from the replay windows when they
    /// cover it ([`Subscription::from_memory`]).
    pub async fn subscribe(
        &self,
        topics: &[Topic],
        capacity: usize,
        wait: Duration,
        kick: CancellationToken,
        resume: Option<Seq>,
    ) -> Result<Subscription, HubError> {
        let (tx, frames) = mpsc::channel(capacity);
        let sink = Arc::new(Sink::new(tx, kick.clone()));
        let mut confirmations = Vec::new();
        let (id, from_memory) = {
            let mut registry = self.inner.registry();
            registry.next_id += 1;
            let id = registry.next_id;
            for topic in topics {
                let name = topic.as_str();
                let entry = registry
                    .topics
                    .entry(name.to_owned())
                    .or_insert_with(|| TopicEntry::new(name));
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
            let from_memory = resume.and_then(|after| registry.remembered_after(topics, after));
            (id, from_memory)
        };
        let subscription = Subscription {
            inner: self.inner.clone(),
            id,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            frames,
            kicked: kick,
            sink,
            from_memory,
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
                    if let Some(entry) = registry.topics.remove(topic) {
                        registry.budget.release(&entry.window);
                    }
                    let _ = self.inner.commands.send(Command::Unsubscribe(topic.clone()));
                }
            }
        }
    }
}

impl Registry {
    /// Every frame after `after` of `topics` when each topic's window covers
    /// it (the topic is confirmed, and its window starts at or before
    /// `after`), merged in `seq` order.
    fn remembered_after(&self, topics: &[Topic], after: Seq) -> Option<Vec<Frame>> {
        let mut frames = Vec::new();
        for topic in topics {
            let entry = self.topics.get(topic.as_str()).filter(|e| e.active)?;
            frames.extend(entry.window.after(after)?.cloned());
        }
        // An event has one topic: no duplicates to merge away.
        frames.sort_unstable_by_key(|f| f.seq);
        Some(frames)
    }

    /// Drops the oldest frames, whatever their topic, until within budget.
    fn evict(&mut self) {
        while self.budget.over() {
            let Some((topic, seq)) = self.budget.oldest() else {
                break;
            };
            if let Some(entry) = self.topics.get_mut(&*topic) {
                self.budget.evict(&mut entry.window, seq);
            }
        }
        if self.budget.stale() {
            self.budget
                .rebuild(self.topics.values().map(|e| (&e.name, &e.window)));
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
        let registry = &mut *registry;
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
        registry.budget.record(&entry.name, &mut entry.window, &frame);
        registry.evict();
    }

    /// Whether replay windows are kept.
    fn windows(&self) -> bool {
        self.registry().budget.enabled()
    }

    /// Sets the replay windows' start of `topics` where it is not known yet:
    /// the hub has forwarded (or will) every event of theirs after `start`.
    fn seed_windows(&self, topics: &[String], start: Seq) {
        let mut registry = self.registry();
        let registry = &mut *registry;
        for topic in topics {
            if let Some(entry) = registry.topics.get_mut(topic) {
                registry.budget.seed(&mut entry.window, start);
            }
        }
    }

    /// Sends `herald.reset` at `head` to every registered stream, once per
    /// stream whatever its number of topics, and restarts every replay
    /// window at `head`. `reason` `pruned`: history the hub had not
    /// forwarded is gone, and streams that sent `head` already drop the
    /// reset (the sink's filter); `rewound`: history went backwards to
    /// `head`, and every stream gets it.
    fn reset_all(&self, head: Seq, reason: &str) {
        let mut frame = Frame::new(head, Bytes::from(control("herald.reset", reason, Some(head))));
        frame.rewind = reason == "rewound";
        let mut deliveries = Deliveries::default();
        {
            let mut registry = self.registry();
            let registry = &mut *registry;
            for entry in registry.topics.values_mut() {
                registry.budget.restart(&mut entry.window, head);
            }
            let mut seen = HashSet::new();
            for entry in registry.topics.values() {
                for (id, sink) in &entry.subscribers {
                    if !seen.insert(*id) {
                        continue;
                    }
                    if frame.rewind || sink.last_sent() < head {
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
