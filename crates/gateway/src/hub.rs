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
//!
//! A topic whose last stream left lingers (`HERALD_REPLAY_LINGER`): its bus
//! subscription and window stay, so the client that lost its connection (a
//! network blip, the common reconnect) resumes from memory on this gateway.
//! At most [`MAX_LINGERING`] topics linger, the oldest go first.

mod session;
pub mod sink;
mod window;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// Topics kept without a stream, at most: a reconnect storm of strangers
/// cannot make the gateway keep subscriptions without bound.
pub const MAX_LINGERING: usize = 100_000;

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
    /// While no stream carries it: the spell of lingering it is in (see
    /// [`Registry::lingering`]).
    idle: Option<u64>,
}

impl TopicEntry {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            subscribers: HashMap::new(),
            active: false,
            waiters: Vec::new(),
            window: Window::default(),
            idle: None,
        }
    }
}

struct Registry {
    topics: HashMap<String, TopicEntry>,
    next_id: u64,
    budget: Budget,
    /// The highest `seq` fanned out (the session's watermark, moved after
    /// the fan-out): a resume above it is not the windows' to serve.
    forwarded: Seq,
    /// How long a topic no stream carries is kept; zero: not at all.
    linger: Duration,
    /// Spells of lingering, oldest first. A spell whose topic was carried
    /// again (or lingers in a later spell) is stale and skipped.
    lingering: VecDeque<(String, u64, Instant)>,
    /// Topics lingering now, and at most.
    idle: usize,
    max_idle: usize,
    next_spell: u64,
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
    /// `window_bytes` in all (0: none) and topics lingering for `linger`
    /// after their last stream (with windows only). Fails only on a
    /// malformed bus address.
    pub fn start(
        bus: &Bus,
        window_bytes: usize,
        linger: Duration,
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
                forwarded: Seq::ZERO,
                linger: if window_bytes > 0 { linger } else { Duration::ZERO },
                lingering: VecDeque::new(),
                idle: 0,
                max_idle: MAX_LINGERING,
                next_spell: 0,
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
            let registry = &mut *registry;
            registry.next_id += 1;
            let id = registry.next_id;
            for topic in topics {
                let name = topic.as_str();
                let entry = registry
                    .topics
                    .entry(name.to_owned())
                    .or_insert_with(|| TopicEntry::new(name));
                if entry.idle.take().is_some() {
                    registry.idle -= 1;
                }
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
            self.inner.metrics.lingering_topics.set(registry.idle as i64);
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
        let registry = &mut *registry;
        let now = Instant::now();
        let mut gone = Vec::new();
        for topic in &self.topics {
            let Some(entry) = registry.topics.get_mut(topic) else {
                continue;
            };
            entry.subscribers.remove(&self.id);
            if !entry.subscribers.is_empty() || entry.idle.is_some() {
                continue;
            }
            // Confirmed and seeded topics linger; one still waiting for the
            // bus has no window worth keeping.
            if !registry.linger.is_zero() && entry.active && entry.waiters.is_empty() {
                registry.next_spell += 1;
                entry.idle = Some(registry.next_spell);
                registry.idle += 1;
                registry
                    .lingering
                    .push_back((topic.clone(), registry.next_spell, now));
            } else if let Some(entry) = registry.topics.remove(topic) {
                registry.budget.release(&entry.window);
                gone.push(topic.clone());
            }
        }
        gone.extend(registry.expire(now));
        self.inner.metrics.lingering_topics.set(registry.idle as i64);
        for topic in gone {
            let _ = self.inner.commands.send(Command::Unsubscribe(topic));
        }
    }
}

impl Registry {
    /// Drops the lingering topics whose time is up at `now`, and the oldest
    /// beyond `max_idle`. Returns them, to unsubscribe.
    fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        while let Some((topic, spell, since)) = self.lingering.front() {
            let current = self.topics.get(topic).and_then(|e| e.idle) == Some(*spell);
            if current && self.idle <= self.max_idle && now.duration_since(*since) < self.linger {
                break;
            }
            let (topic, _, _) = self.lingering.pop_front().expect("a front");
            if current {
                if let Some(entry) = self.topics.remove(&topic) {
                    self.budget.release(&entry.window);
                }
                self.idle -= 1;
                gone.push(topic);
            }
        }
        gone
    }

    /// Every frame after `after` of `topics` when each topic's window covers
    /// it (the topic is confirmed, its window starts at or before `after`,
    /// and the hub forwarded up to `after` at least), merged in `seq` order.
    fn remembered_after(&self, topics: &[Topic], after: Seq) -> Option<Vec<Frame>> {
        if after > self.forwarded {
            return None;
        }
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

    /// The session's watermark moved to `seq` (down too, after a reset).
    fn forwarded(&self, seq: Seq) {
        self.registry().forwarded = seq;
    }

    /// Whether replay windows are kept.
    fn windows(&self) -> bool {
        self.registry().budget.enabled()
    }

    /// Unsubscribes the lingering topics whose time is up.
    fn expire_lingering(&self) {
        let gone = {
            let mut registry = self.registry();
            let gone = registry.expire(Instant::now());
            self.metrics.lingering_topics.set(registry.idle as i64);
            gone
        };
        for topic in gone {
            let _ = self.commands.send(Command::Unsubscribe(topic));
        }
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
            registry.forwarded = head;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(linger: Duration, max_idle: usize) -> Registry {
        Registry {
            topics: HashMap::new(),
            next_id: 0,
            budget: Budget::new(1 << 20),
            forwarded: Seq::ZERO,
            linger,
            lingering: VecDeque::new(),
            idle: 0,
            max_idle,
            next_spell: 0,
        }
    }

    fn leave(r: &mut Registry, topic: &str, at: Instant) {
        let entry = r
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| TopicEntry::new(topic));
        r.next_spell += 1;
        entry.idle = Some(r.next_spell);
        r.idle += 1;
        r.lingering.push_back((topic.to_owned(), r.next_spell, at));
    }

    fn carry_again(r: &mut Registry, topic: &str) {
        if r.topics.get_mut(topic).and_then(|e| e.idle.take()).is_some() {
            r.idle -= 1;
        }
    }

    #[test]
    fn lingering_topics_go_when_their_time_is_up_and_the_oldest_beyond_the_cap() {
        let t0 = Instant::now();
        let linger = Duration::from_secs(30);
        let mut r = registry(linger, 2);
        leave(&mut r, "a", t0);
        leave(&mut r, "b", t0 + Duration::from_secs(1));
        assert!(
            r.expire(t0 + Duration::from_secs(2)).is_empty(),
            "within the linger, under the cap"
        );
        leave(&mut r, "c", t0 + Duration::from_secs(2));
        assert_eq!(
            r.expire(t0 + Duration::from_secs(2)),
            ["a"],
            "over the cap: the oldest goes"
        );
        assert_eq!(r.idle, 2);
        // `b` is carried again, then left again later: its first spell is stale.
        carry_again(&mut r, "b");
        leave(&mut r, "b", t0 + Duration::from_secs(20));
        assert_eq!(
            r.expire(t0 + linger + Duration::from_secs(2)),
            ["c"],
            "c's time is up; b's first spell is skipped"
        );
        assert!(r.topics.contains_key("b"));
        assert_eq!(r.expire(t0 + linger + Duration::from_secs(20)), ["b"]);
        assert_eq!((r.idle, r.lingering.len(), r.topics.len()), (0, 0, 0));
    }

    #[test]
    fn a_topic_carried_again_does_not_expire() {
        let t0 = Instant::now();
        let mut r = registry(Duration::from_secs(1), 10);
        leave(&mut r, "a", t0);
        carry_again(&mut r, "a");
        assert!(r.expire(t0 + Duration::from_secs(60)).is_empty());
        assert!(
            r.topics.contains_key("a"),
            "still registered: a stream carries it"
        );
        assert!(r.lingering.is_empty(), "the stale spell is dropped");
    }
}
