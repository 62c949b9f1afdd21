//! The hub on a Redis Cluster: one connection per shard, merged back into
//! one `seq`-ordered sequence.
//!
//! With sharded pub/sub a topic's channel lives on the master owning its
//! slot, so the hub holds one RESP3 connection per master (`SSUBSCRIBE`
//! there for the topics whose channels it owns) and messages of different
//! shards interleave arbitrarily: seq 6 from shard B may arrive before seq 5
//! from shard A. The single-connection watermark (see the parent module)
//! would drop 5 or deliver it after 6.
//!
//! # The merge
//!
//! The worker publishes each batch as one pipeline per master ending with a
//! watermark: `SPUBLISH {prefix}:watermark:{tag} <last seq of the batch>` on
//! a channel that master owns (`platform::cluster`). A master processes one
//! worker connection's commands in order and batches are published one after
//! another, so each shard connection sees its events and watermarks in
//! increasing `seq` order. Hence, per shard connection `i`, the
//! **frontier** `f[i]` — the highest `seq` seen on it, event or watermark —
//! promises that no event `<= f[i]` will arrive on `i` any more (republished
//! duplicates excepted, which the hub drops or deduplicates by `seq`).
//!
//! [`Merge`] buffers events by `seq` and releases an event `s` only once
//! `s <= min f[i]` over the shards that carry at least one of our topic
//! channels: by then no lower event can arrive from any shard, so the hub's
//! output is strictly increasing, exactly as with one connection, and
//! `last` (the last released `seq`) keeps its meaning: after any connection
//! drops, the session ends, and the next one catches up from Postgres after
//! `last`. A shard with no topic channel of ours delivers only watermarks
//! and is left out of the minimum; its frontier stays valid meanwhile (it is
//! subscribed to its watermark channel for the whole session), so it can
//! join the minimum whenever a topic on it is subscribed.
//!
//! A fresh connection's frontier starts at `published_seq`, read *before*
//! connecting: anything a master processes later was acknowledged later, so
//! has a higher `seq` (duplicates excepted).
//!
//! # Liveness and latency
//!
//! Watermarks travel with every batch to every master, right behind the
//! batch's events, so an event waits at most for the slowest master's copy
//! of its own batch's watermark — no poll interval. With one shard in use
//! the event itself advances that shard's frontier and is released at once.
//! When nothing is published nothing is pending, so idle periods need no
//! watermarks. Should one never come (a worker that published to one
//! master and then failed for good, a topology the worker and this gateway
//! read differently), an event pending longer than [`STALL`] ends the
//! session: the next one re-reads the topology and catches up from Postgres.
//!
//! # Topology changes
//!
//! Each session reads `CLUSTER SLOTS` and connects to every master. A
//! `MOVED` answer to `SSUBSCRIBE`, a `sunsubscribe` we did not ask for (Redis
//! sends one when a slot migrates away), or a lost connection ends the
//! session; the next reads the topology again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use herald_domain::Seq;
use herald_platform::bus;
use herald_platform::cluster::{self, Topology};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionInfo, PushInfo, PushKind, Value};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{activate, catch_up, deliver, fan_out, Batch, Command, Inner, SessionError};
use crate::frame::Frame;
use crate::history;

/// How long an event may wait for the other shards' watermarks before the
/// hub gives up on the session and resynchronises from Postgres.
const STALL: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

struct Shard {
    conn: MultiplexedConnection,
    watermark: String,
}

/// One session on the cluster. Returns `Ok` only on shutdown.
pub(super) async fn session(
    inner: &Arc<Inner>,
    seeds: &[ConnectionInfo],
    pool: &PgPool,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    last: &mut Option<Seq>,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    // Read before connecting: everything the shards deliver from now on is
    // above it (republished duplicates excepted).
    let published: Seq = sqlx::query_scalar("SELECT published_seq FROM sequencer")
        .fetch_one(pool)
        .await?;
    let topology = tokio::time::timeout(CONNECT_TIMEOUT, Topology::fetch(seeds))
        .await
        .map_err(|_| SessionError::Timeout)??;
    if !topology.covers_all_slots() {
        return Err(SessionError::Topology("some slots have no master".into()));
    }

    let (tx, mut pushes) = mpsc::unbounded_channel::<(usize, PushInfo)>();
    let mut shards = Vec::with_capacity(topology.masters().len());
    for (i, node) in topology.masters().iter().enumerate() {
        let watermark = topology
            .watermark_channel(&inner.prefix, i)
            .ok_or_else(|| SessionError::Topology(format!("{node} owns no slot")))?;
        let tx = tx.clone();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(CONNECT_TIMEOUT)
            .set_push_sender(move |push: PushInfo| tx.send((i, push)));
        let client = redis::Client::open(cluster::node_info(&seeds[0], node, redis::ProtocolVersion::RESP3))?;
        let mut conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| SessionError::Timeout)??;
        // One channel per command: the connection matches one reply to each.
        redis::cmd("SSUBSCRIBE")
            .arg(&watermark)
            .exec_async(&mut conn)
            .await?;
        shards.push(Shard { conn, watermark });
    }
    drop(tx);

    let mut merge: Merge<(String, Frame)> = Merge::new(shards.len(), published);
    // The shard of each subscribed topic.
    let mut subscribed: HashMap<String, usize> = HashMap::new();
    // `sunsubscribe` replies we asked for and have not seen yet, by channel.
    let mut unsubscribing: HashMap<Vec<u8>, usize> = HashMap::new();

    // Re-subscribe everything registered (including topics still waiting).
    let topics: Vec<String> = inner.state().topics.keys().cloned().collect();
    let mut by_shard: Vec<Vec<&String>> = vec![Vec::new(); shards.len()];
    for topic in &topics {
        by_shard[shard_of(&topology, &inner.prefix, topic)?].push(topic);
    }
    for (i, topics) in by_shard.iter().enumerate() {
        for chunk in topics.chunks(256) {
            let mut pipe = redis::pipe();
            for topic in chunk {
                pipe.cmd("SSUBSCRIBE")
                    .arg(bus::channel(&inner.prefix, topic))
                    .ignore();
            }
            pipe.exec_async(&mut shards[i].conn).await?;
            for topic in chunk {
                merge.add_channel(i);
                subscribed.insert((*topic).clone(), i);
            }
        }
    }

    match *last {
        // First connection: start at the head. Streams replay what came before.
        None => *last = Some(history::positions(pool).await?.head),
        // Reconnection: forward what was published while we were away.
        Some(from) => *last = Some(catch_up(inner, pool, &topics, from).await?),
    }
    merge.set_last(last.unwrap_or(0));
    activate(inner, &topics);
    inner.connected.store(true, Ordering::Release);
    tracing::info!(
        topics = topics.len(),
        shards = shards.len(),
        "bus connected (Redis Cluster)"
    );

    let mut ping = tokio::time::interval(Duration::from_secs(5));
    ping.tick().await;
    let mut stall_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            push = pushes.recv() => {
                let Some((shard, push)) = push else { return Err(SessionError::Closed) };
                match push.kind {
                    PushKind::SMessage => {
                        let (Some(channel), Some(payload)) = (bytes(push.data.first()), bytes(push.data.get(1))) else {
                            continue;
                        };
                        if channel == shards[shard].watermark.as_bytes() {
                            let seq = std::str::from_utf8(payload).ok().and_then(|s| s.parse::<Seq>().ok());
                            let Some(seq) = seq else {
                                tracing::warn!("dropping an unparsable watermark");
                                continue;
                            };
                            merge.watermark(shard, seq);
                        } else {
                            let Some(topic) = std::str::from_utf8(channel).ok().and_then(|c| bus::topic_of(&inner.prefix, c)) else {
                                continue;
                            };
                            let Some((_, frame)) = Frame::from_bus(payload) else {
                                tracing::warn!(topic, "dropping an unparsable bus message");
                                continue;
                            };
                            merge.message(shard, frame.seq, (topic.to_owned(), frame));
                        }
                        release(inner, &mut merge, last);
                    }
                    PushKind::SUnsubscribe => {
                        let channel = bytes(push.data.first()).unwrap_or_default().to_vec();
                        match unsubscribing.get_mut(&channel) {
                            Some(n) if *n > 1 => *n -= 1,
                            Some(_) => {
                                unsubscribing.remove(&channel);
                            }
                            None => {
                                return Err(SessionError::Topology(format!(
                                    "{} dropped the subscription to {} (slot moved?)",
                                    topology.masters()[shard],
                                    String::from_utf8_lossy(&channel)
                                )));
                            }
                        }
                    }
                    PushKind::Disconnection => return Err(SessionError::Closed),
                    _ => {}
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return Ok(()) };
                match cmd {
                    Command::Subscribe(topic) => {
                        if !inner.state().topics.contains_key(&topic) {
                            continue;
                        }
                        if !subscribed.contains_key(&topic) {
                            let shard = shard_of(&topology, &inner.prefix, &topic)?;
                            redis::cmd("SSUBSCRIBE")
                                .arg(bus::channel(&inner.prefix, &topic))
                                .exec_async(&mut shards[shard].conn)
                                .await?;
                            merge.add_channel(shard);
                            subscribed.insert(topic.clone(), shard);
                        }
                        activate(inner, std::slice::from_ref(&topic));
                    }
                    Command::Unsubscribe(topic) => {
                        if inner.state().topics.contains_key(&topic) {
                            continue; // re-registered meanwhile
                        }
                        let Some(shard) = subscribed.remove(&topic) else { continue };
                        let channel = bus::channel(&inner.prefix, &topic);
                        *unsubscribing.entry(channel.clone().into_bytes()).or_default() += 1;
                        redis::cmd("SUNSUBSCRIBE")
                            .arg(&channel)
                            .exec_async(&mut shards[shard].conn)
                            .await?;
                        merge.remove_channel(shard);
                        // One shard fewer to wait for.
                        release(inner, &mut merge, last);
                    }
                }
            }
            _ = ping.tick() => {
                // Detects a stalled connection that never reports an error.
                for shard in &mut shards {
                    tokio::time::timeout(Duration::from_secs(3), redis::cmd("PING").query_async::<()>(&mut shard.conn))
                        .await
                        .map_err(|_| SessionError::Timeout)??;
                }
            }
            _ = stall_check.tick() => {
                if let Some(waited) = merge.waiting().filter(|w| *w > STALL) {
                    return Err(SessionError::Stalled(waited));
                }
            }
        }
    }
}

fn shard_of(topology: &Topology, prefix: &str, topic: &str) -> Result<usize, SessionError> {
    topology
        .master_of(&bus::channel(prefix, topic))
        .ok_or_else(|| SessionError::Topology("a slot has no master".into()))
}

fn bytes(v: Option<&Value>) -> Option<&[u8]> {
    match v? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// Fans out what the merge releases and moves the hub watermark with it.
fn release(inner: &Arc<Inner>, merge: &mut Merge<(String, Frame)>, last: &mut Option<Seq>) {
    let mut batch = Batch::default();
    for (_, (topic, frame)) in merge.release() {
        fan_out(inner, &topic, frame, &mut batch);
    }
    deliver(inner, batch);
    *last = Some(merge.last());
}

/// A k-way merge of shard connections that each deliver in increasing
/// `seq` order, punctuated by watermarks. See the module docs.
pub(super) struct Merge<T> {
    /// Per shard: the highest `seq` it has shown, event or watermark.
    frontier: Vec<Seq>,
    /// Per shard: topic channels subscribed there. Shards with none are not
    /// waited for.
    channels: Vec<usize>,
    pending: BTreeMap<Seq, T>,
    /// Since when something has been pending without any release.
    waiting_since: Option<Instant>,
    /// The last released `seq` (or the position the hub caught up to).
    last: Seq,
}

impl<T> Merge<T> {
    /// `shards` connections, each known to deliver only events above `start`.
    pub(super) fn new(shards: usize, start: Seq) -> Self {
        Self {
            frontier: vec![start; shards],
            channels: vec![0; shards],
            pending: BTreeMap::new(),
            waiting_since: None,
            last: 0,
        }
    }

    /// Events at or below `last` are dropped from now on.
    pub(super) fn set_last(&mut self, last: Seq) {
        self.last = last;
        self.pending = self.pending.split_off(&(last + 1));
    }

    pub(super) fn last(&self) -> Seq {
        self.last
    }

    pub(super) fn message(&mut self, shard: usize, seq: Seq, item: T) {
        self.watermark(shard, seq);
        if seq > self.last {
            self.pending.entry(seq).or_insert(item); // a duplicate keeps the first
            self.waiting_since.get_or_insert_with(Instant::now);
        }
    }

    pub(super) fn watermark(&mut self, shard: usize, seq: Seq) {
        let f = &mut self.frontier[shard];
        *f = (*f).max(seq);
    }

    pub(super) fn add_channel(&mut self, shard: usize) {
        self.channels[shard] += 1;
    }

    pub(super) fn remove_channel(&mut self, shard: usize) {
        self.channels[shard] = self.channels[shard].saturating_sub(1);
    }

    /// Every shard in use has shown everything up to here.
    fn horizon(&self) -> Seq {
        self.frontier
            .iter()
            .zip(&self.channels)
            .filter(|(_, &channels)| channels > 0)
            .map(|(&f, _)| f)
            .min()
            .unwrap_or(Seq::MAX)
    }

    /// The pending events no shard can precede any more, in `seq` order.
    pub(super) fn release(&mut self) -> Vec<(Seq, T)> {
        let horizon = self.horizon();
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > horizon {
                break;
            }
            let (seq, item) = entry.remove_entry();
            self.last = seq;
            out.push((seq, item));
        }
        if !out.is_empty() {
            self.waiting_since = (!self.pending.is_empty()).then(Instant::now);
        }
        out
    }

    /// How long pending events have waited without progress.
    pub(super) fn waiting(&self) -> Option<Duration> {
        self.waiting_since.map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seqs(out: Vec<(Seq, ())>) -> Vec<Seq> {
        out.into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn a_lower_seq_on_a_slower_shard_is_not_overtaken() {
        let mut m = Merge::new(2, 4);
        m.set_last(4);
        m.add_channel(0);
        m.add_channel(1);
        m.message(1, 6, ());
        assert!(m.release().is_empty(), "shard 0 may still send 5");
        m.message(0, 5, ());
        assert_eq!(seqs(m.release()), [5], "shard 1 showed 6, shard 0 showed 5");
        m.watermark(0, 6);
        assert_eq!(seqs(m.release()), [6]);
        assert_eq!(m.last(), 6);
        assert!(m.waiting().is_none());
    }

    #[test]
    fn one_shard_in_use_needs_no_watermark() {
        let mut m = Merge::new(3, 0);
        m.add_channel(2);
        m.message(2, 1, ());
        m.message(2, 3, ());
        assert_eq!(
            seqs(m.release()),
            [1, 3],
            "shards 0 and 1 carry none of our channels"
        );
    }

    #[test]
    fn duplicates_are_delivered_once() {
        let mut m = Merge::new(2, 0);
        m.add_channel(0);
        m.add_channel(1);
        m.message(0, 1, ());
        m.message(0, 1, ());
        m.watermark(1, 1);
        assert_eq!(seqs(m.release()), [1]);
        m.message(0, 1, ()); // republished after a worker crash
        m.watermark(1, 2);
        assert!(m.release().is_empty());
    }

    #[test]
    fn dropping_a_shards_last_channel_stops_waiting_for_it() {
        let mut m = Merge::new(2, 0);
        m.add_channel(0);
        m.add_channel(1);
        m.message(0, 3, ());
        assert!(m.release().is_empty());
        assert!(m.waiting().is_some());
        m.remove_channel(1);
        assert_eq!(seqs(m.release()), [3]);
    }

    /// A log spread over shards: for each event its shard, and after which
    /// events a batch (and so a watermark on every shard) ends.
    fn log() -> impl Strategy<Value = (Vec<usize>, Vec<bool>, Vec<u8>)> {
        (1usize..60).prop_flat_map(|n| {
            (
                proptest::collection::vec(0usize..3, n),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(any::<u8>(), 0..400),
            )
        })
    }

    proptest! {
        /// Whatever the interleaving of the shards' ordered deliveries, the
        /// merge releases every event exactly once, in `seq` order, and
        /// nothing remains pending once the last batch's watermarks arrived.
        #[test]
        fn any_interleaving_is_released_in_order((shard_of, batch_end, picks) in log()) {
            let n = shard_of.len();
            // Each shard's delivery: its events, and a watermark after each batch.
            let mut queues: Vec<std::collections::VecDeque<(bool, Seq)>> = vec![Default::default(); 3];
            for (i, &s) in shard_of.iter().enumerate() {
                let seq = i as Seq + 1;
                queues[s].push_back((true, seq));
                if batch_end[i] || i + 1 == n {
                    for q in &mut queues {
                        q.push_back((false, seq));
                    }
                }
            }
            let mut m = Merge::new(3, 0);
            for s in 0..3 {
                if shard_of.contains(&s) {
                    m.add_channel(s);
                }
            }
            let mut out = Vec::new();
            let mut picks = picks.into_iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let nonempty: Vec<usize> = (0..3).filter(|&s| !queues[s].is_empty()).collect();
                let s = nonempty[picks.next().map_or(0, usize::from) % nonempty.len()];
                let (event, seq) = queues[s].pop_front().expect("nonempty");
                if event {
                    m.message(s, seq, ());
                } else {
                    m.watermark(s, seq);
                }
                out.extend(seqs(m.release()));
            }
            prop_assert_eq!(out, (1..=n as Seq).collect::<Vec<_>>());
            prop_assert!(m.waiting().is_none());
        }
    }
}
