//! Redis Cluster with sharded pub/sub.
//!
//! A topic's channel (the same name as on one server) is a sharded channel
//! living on the master that owns its slot ([`topology`]). So the publisher
//! sends each event to its channel's master, and a subscriber holds one RESP3
//! connection per master, `SSUBSCRIBE`d there to the channels it owns.
//!
//! # Ordering across shards
//!
//! Messages of different shards interleave arbitrarily: seq 6 from shard B
//! may arrive before seq 5 from shard A. The publisher therefore sends each
//! batch as one pipeline per master: that master's events of the batch in
//! `seq` order, then one `SPUBLISH` of the batch's last `seq` to the master's
//! watermark channel ([`Topology::watermark_channel`]). Every master gets the
//! watermark, even one owning none of the batch's events, and the batch
//! counts as published only when every master acknowledged its pipeline.
//!
//! A master processes one connection's commands in order and batches are
//! published one after another, so each shard connection sees its events
//! and watermarks in increasing `seq` order. Per shard connection `i`, the
//! **frontier** `f[i]`, the highest `seq` seen on it (event or watermark),
//! promises that no event `<= f[i]` will arrive on `i` any more (republished
//! duplicates excepted, which are dropped). The subscriber's [`merge`]
//! buffers events by `seq` and releases an event `s` only once `s <= min
//! f[i]` over the shards carrying at least one of its topic channels: by then
//! no lower event can arrive from any shard, so the output is in `seq`
//! order, exactly as from one connection. A shard with no topic channel of
//! ours delivers only watermarks and is left out of the minimum; its
//! frontier stays valid (its watermark channel is subscribed for the whole
//! connection), so it can join whenever a topic on it is subscribed.
//!
//! # Liveness
//!
//! Watermarks travel with every batch, right behind its events, so an event
//! waits at most for the slowest master's copy of its own batch's watermark;
//! with one shard in use the event itself moves the frontier and is released
//! at once. Idle periods need no watermarks: nothing is pending. Should one
//! never come (a worker that published to one master and then failed for
//! good, a topology the worker and this gateway read differently), an event
//! pending longer than [`STALL`] fails [`Subscriber::check`], and the hub
//! connects again (re-reading the topology) and catches up from Postgres.
//!
//! # Topology changes
//!
//! The publisher re-reads `CLUSTER SLOTS` after any error and every few
//! seconds. A subscriber reads it on each connect; a `MOVED` answer to
//! `SSUBSCRIBE`, a `sunsubscribe` it did not ask for (Redis sends one when a
//! slot migrates away) or a lost connection is an error, and the next
//! connection reads the topology again.

mod merge;
pub mod topology;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use herald_domain::{Envelope, Seq};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionInfo, ErrorKind, PushInfo, PushKind, RedisError, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::merge::Merge;
use self::topology::{Node, Topology};
use crate::{channel, parse, topic_of, Batch, BusError, Publisher, Subscriber, MAX_BATCH};

/// How long a topology is trusted by the publisher without an error.
const TOPOLOGY_TTL: Duration = Duration::from_secs(5);
/// How long an event may wait for the other shards' watermarks before the
/// subscriber reports a stall.
const STALL: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the subscriber pings every shard.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Publishes to a Redis Cluster: one pipeline per master and batch.
pub struct ClusterPublisher {
    seeds: Vec<ConnectionInfo>,
    prefix: String,
    topology: Option<(Topology, Instant)>,
    conns: HashMap<Node, MultiplexedConnection>,
    connects: u64,
}

impl ClusterPublisher {
    pub fn new(seeds: &[String], prefix: &str) -> Result<Self, BusError> {
        Ok(Self {
            seeds: topology::seeds(seeds)?,
            prefix: prefix.to_owned(),
            topology: None,
            conns: HashMap::new(),
            connects: 0,
        })
    }

    async fn try_publish(&mut self, events: &[Envelope]) -> Result<(), BusError> {
        let Some(upto) = events.last().map(|e| e.seq) else {
            return Ok(());
        };
        let topology = self.topology().await?.clone();
        let masters = topology.masters();
        let mut pipes = vec![redis::pipe(); masters.len()];
        for e in events {
            let channel = channel(&self.prefix, &e.topic);
            let master = topology.master_of(&channel).ok_or_else(uncovered)?;
            pipes[master]
                .cmd("SPUBLISH")
                .arg(channel)
                .arg(serde_json::to_vec(e)?)
                .ignore();
        }
        for (master, pipe) in pipes.iter_mut().enumerate() {
            let Some(channel) = topology.watermark_channel(&self.prefix, master) else {
                continue; // a master owning no slot carries no channel
            };
            pipe.cmd("SPUBLISH").arg(channel).arg(upto.get()).ignore();
        }
        let mut conns = Vec::with_capacity(masters.len());
        for node in masters {
            if !self.conns.contains_key(node) {
                let conn = connect(&self.seeds[0], node, redis::ProtocolVersion::RESP2, None).await?;
                self.conns.insert(node.clone(), conn);
                self.connects += 1;
            }
            conns.push(self.conns[node].clone());
        }
        let sent = futures_util::future::join_all(
            pipes
                .iter()
                .zip(conns.iter_mut())
                .map(|(pipe, conn)| pipe.query_async::<()>(conn)),
        )
        .await;
        for r in sent {
            r?;
        }
        Ok(())
    }

    async fn topology(&mut self) -> Result<&Topology, BusError> {
        let fresh = matches!(&self.topology, Some((_, at)) if at.elapsed() < TOPOLOGY_TTL);
        if !fresh {
            // Ask a master we are connected to, else the seeds.
            let known = match self.conns.iter_mut().next() {
                Some((node, conn)) => redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(conn)
                    .await
                    .and_then(|reply| Topology::from_slots_reply(&reply, &node.host))
                    .ok(),
                None => None,
            };
            let t = match known {
                Some(t) => t,
                None => Topology::fetch(&self.seeds).await?,
            };
            if !t.covers_all_slots() {
                return Err(uncovered().into());
            }
            if self.topology.as_ref().map(|(old, _)| old) != Some(&t) {
                tracing::info!(masters = t.masters().len(), "Redis Cluster topology read");
                self.conns.retain(|node, _| t.masters().contains(node));
            }
            self.topology = Some((t, Instant::now()));
        }
        Ok(&self.topology.as_ref().expect("just set").0)
    }
}

impl Publisher for ClusterPublisher {
    fn publish<'a>(&'a mut self, events: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let result = self.try_publish(events).await;
            if result.is_err() {
                // Re-read the topology and reconnect next time.
                self.topology = None;
                self.conns.clear();
            }
            result
        }
        .boxed()
    }

    fn connects(&self) -> u64 {
        self.connects
    }
}

fn uncovered() -> RedisError {
    RedisError::from((ErrorKind::ClusterDown, "some cluster slots have no master"))
}

async fn connect(
    seed: &ConnectionInfo,
    node: &Node,
    protocol: redis::ProtocolVersion,
    pushes: Option<(usize, mpsc::UnboundedSender<(usize, PushInfo)>)>,
) -> Result<MultiplexedConnection, BusError> {
    let client = redis::Client::open(topology::node_info(seed, node, protocol))?;
    let mut config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(CONNECT_TIMEOUT)
        .set_response_timeout(CONNECT_TIMEOUT);
    if let Some((shard, tx)) = pushes {
        config = config.set_push_sender(move |push: PushInfo| tx.send((shard, push)));
    }
    tokio::time::timeout(
        CONNECT_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| BusError::Timeout)?
    .map_err(BusError::from)
}

/// One event waiting in the merge for the other shards.
struct Pending {
    topic: String,
    event_type: String,
    envelope: String,
}

struct Shard {
    conn: MultiplexedConnection,
    watermark: String,
}

/// The connections of one subscriber session: one per master.
struct Session {
    topology: Topology,
    shards: Vec<Shard>,
    pushes: mpsc::UnboundedReceiver<(usize, PushInfo)>,
    merge: Merge<Pending>,
    /// The shard of each subscribed topic.
    subscribed: HashMap<String, usize>,
    /// `sunsubscribe` confirmations asked for and not seen yet, by channel.
    unsubscribing: HashMap<Vec<u8>, usize>,
}

/// Subscribes on a Redis Cluster: one connection per master, merged back
/// into `seq` order.
pub struct ClusterSubscriber {
    seeds: Vec<ConnectionInfo>,
    prefix: String,
    session: Option<Session>,
    last_ping: Instant,
}

impl ClusterSubscriber {
    pub fn new(seeds: &[String], prefix: &str) -> Result<Self, BusError> {
        Ok(Self {
            seeds: topology::seeds(seeds)?,
            prefix: prefix.to_owned(),
            session: None,
            last_ping: Instant::now(),
        })
    }

    fn session(&mut self) -> Result<&mut Session, BusError> {
        self.session.as_mut().ok_or(BusError::Closed)
    }

    async fn open(&self) -> Result<Session, BusError> {
        let topology = tokio::time::timeout(CONNECT_TIMEOUT, Topology::fetch(&self.seeds))
            .await
            .map_err(|_| BusError::Timeout)??;
        if !topology.covers_all_slots() {
            return Err(BusError::Topology("some slots have no master".into()));
        }
        let (tx, pushes) = mpsc::unbounded_channel();
        let mut shards = Vec::with_capacity(topology.masters().len());
        for (i, node) in topology.masters().iter().enumerate() {
            let watermark = topology
                .watermark_channel(&self.prefix, i)
                .ok_or_else(|| BusError::Topology(format!("{node} owns no slot")))?;
            let mut conn = connect(
                &self.seeds[0],
                node,
                redis::ProtocolVersion::RESP3,
                Some((i, tx.clone())),
            )
            .await?;
            // One channel per command: the connection matches one reply to each.
            redis::cmd("SSUBSCRIBE")
                .arg(&watermark)
                .exec_async(&mut conn)
                .await?;
            shards.push(Shard { conn, watermark });
        }
        Ok(Session {
            merge: Merge::new(shards.len()),
            topology,
            shards,
            pushes,
            subscribed: HashMap::new(),
            unsubscribing: HashMap::new(),
        })
    }
}

impl Session {
    fn shard_of(&self, prefix: &str, topic: &str) -> Result<usize, BusError> {
        self.topology
            .master_of(&channel(prefix, topic))
            .ok_or_else(|| BusError::Topology("a slot has no master".into()))
    }

    /// Takes one push from shard `shard` into the merge.
    fn take(&mut self, prefix: &str, shard: usize, push: PushInfo) -> Result<(), BusError> {
        match push.kind {
            PushKind::SMessage => {
                let (Some(channel), Some(payload)) = (bytes(push.data.first()), bytes(push.data.get(1)))
                else {
                    return Ok(());
                };
                if channel == self.shards[shard].watermark.as_bytes() {
                    match std::str::from_utf8(payload)
                        .ok()
                        .and_then(|s| s.parse::<Seq>().ok())
                    {
                        Some(seq) => self.merge.watermark(shard, seq),
                        None => tracing::warn!("dropping an unparsable watermark"),
                    }
                    return Ok(());
                }
                let Some(topic) = std::str::from_utf8(channel)
                    .ok()
                    .and_then(|c| topic_of(prefix, c))
                else {
                    return Ok(());
                };
                let Some((head, envelope)) = parse(payload) else {
                    tracing::warn!(topic, "dropping an unparsable bus message");
                    return Ok(());
                };
                let pending = Pending {
                    topic: topic.to_owned(),
                    event_type: head.event_type.into_owned(),
                    envelope: envelope.to_owned(),
                };
                self.merge.message(shard, head.seq, pending);
                Ok(())
            }
            PushKind::SUnsubscribe => {
                let channel = bytes(push.data.first()).unwrap_or_default().to_vec();
                match self.unsubscribing.get_mut(&channel) {
                    Some(n) if *n > 1 => *n -= 1,
                    Some(_) => {
                        self.unsubscribing.remove(&channel);
                    }
                    None => {
                        return Err(BusError::Topology(format!(
                            "{} dropped the subscription to {} (slot moved?)",
                            self.topology.masters()[shard],
                            String::from_utf8_lossy(&channel)
                        )))
                    }
                }
                Ok(())
            }
            PushKind::Disconnection => Err(BusError::Closed),
            _ => Ok(()),
        }
    }

    /// Moves what the merge can release into `batch`.
    fn release(&mut self, batch: &mut Batch) {
        for (seq, p) in self.merge.release() {
            batch.push_parsed(seq, &p.topic, &p.event_type, &p.envelope);
        }
    }
}

fn bytes(v: Option<&Value>) -> Option<&[u8]> {
    match v? {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

impl Subscriber for ClusterSubscriber {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            self.session = None;
            let session = self.open().await?;
            tracing::info!(shards = session.shards.len(), "Redis Cluster connected");
            self.session = Some(session);
            self.last_ping = Instant::now();
            Ok(())
        }
        .boxed()
    }

    fn subscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let prefix = self.prefix.clone();
            let s = self.session()?;
            let mut by_shard: Vec<Vec<&String>> = vec![Vec::new(); s.shards.len()];
            for topic in topics {
                if !s.subscribed.contains_key(topic) {
                    by_shard[s.shard_of(&prefix, topic)?].push(topic);
                }
            }
            for (i, topics) in by_shard.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
                let mut pipe = redis::pipe();
                for topic in topics {
                    pipe.cmd("SSUBSCRIBE").arg(channel(&prefix, topic)).ignore();
                }
                pipe.exec_async(&mut s.shards[i].conn).await?;
                for topic in topics {
                    s.merge.add_channel(i);
                    s.subscribed.insert((*topic).clone(), i);
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn unsubscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let prefix = self.prefix.clone();
            let s = self.session()?;
            for topic in topics {
                let Some(shard) = s.subscribed.remove(topic) else {
                    continue;
                };
                let channel = channel(&prefix, topic);
                *s.unsubscribing.entry(channel.clone().into_bytes()).or_default() += 1;
                redis::cmd("SUNSUBSCRIBE")
                    .arg(&channel)
                    .exec_async(&mut s.shards[shard].conn)
                    .await?;
                // One shard fewer to wait for: the next batch may release more.
                s.merge.remove_channel(shard);
            }
            Ok(())
        }
        .boxed()
    }

    fn caught_up(&mut self, seq: Seq) {
        if let Some(s) = &mut self.session {
            s.merge.set_last(seq);
        }
    }

    fn next_batch<'a>(&'a mut self, batch: &'a mut Batch) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let prefix = self.prefix.clone();
            let s = self.session()?;
            loop {
                s.release(batch);
                if !batch.is_empty() {
                    return Ok(());
                }
                // The only await; what follows runs to the end.
                let (shard, push) = s.pushes.recv().await.ok_or(BusError::Closed)?;
                s.take(&prefix, shard, push)?;
                for _ in 1..MAX_BATCH {
                    match s.pushes.try_recv() {
                        Ok((shard, push)) => s.take(&prefix, shard, push)?,
                        Err(_) => break,
                    }
                }
            }
        }
        .boxed()
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            let ping = self.last_ping.elapsed() >= PING_EVERY;
            if ping {
                self.last_ping = Instant::now();
            }
            let s = self.session()?;
            if let Some(waited) = s.merge.waiting().filter(|w| *w > STALL) {
                return Err(BusError::Stalled(waited));
            }
            if ping {
                for shard in &mut s.shards {
                    tokio::time::timeout(
                        Duration::from_secs(3),
                        redis::cmd("PING").query_async::<()>(&mut shard.conn),
                    )
                    .await
                    .map_err(|_| BusError::Timeout)??;
                }
            }
            Ok(())
        }
        .boxed()
    }
}
