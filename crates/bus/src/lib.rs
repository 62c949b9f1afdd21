//! The bus: how the events the worker sequenced reach every gateway.
//!
//! # The contract
//!
//! A [`Publisher`] takes each batch the worker sequenced, in `seq` order, and
//! returns once the bus acknowledged all of it. A [`Subscriber`] is one
//! gateway's connection: it subscribes to exactly the topics the gateway's
//! streams carry and yields what was published on them in `seq` order, each
//! message's envelope head parsed once ([`Batch`]).
//!
//! Delivery is at most once. What is published while a subscriber is
//! disconnected, or while it is too slow for the bus, is lost, and the
//! subscriber says so with an error; the gateway's hub then connects again
//! and reads what it missed from Postgres. An event can also arrive twice (a
//! worker that crashed before recording its publish publishes the batch
//! again); the hub drops positions it already forwarded.
//!
//! # The buses
//!
//! - [`redis`]: Redis pub/sub, one exact channel per topic.
//! - [`cluster`]: Redis Cluster with sharded pub/sub; the subscriber merges
//!   its shard connections back into one `seq`-ordered sequence.
//! - [`local`]: an in-process broadcast channel, for the single-node binary.
//!
//! [`Bus`] names the one a deployment runs on. It is the only code that
//! knows all of them: another bus is one module and one variant there.

pub mod cluster;
pub mod local;
pub mod redis;

use std::borrow::Cow;
use std::time::Duration;

use futures_util::future::BoxFuture;
use herald_domain::{Envelope, Seq};
use herald_platform::config::{BusSettings, RedisServers};
use serde::Deserialize;

pub use crate::local::LocalBus;

/// Messages a [`Subscriber::next_batch`] takes at once, at most.
pub const MAX_BATCH: usize = 256;

/// The worker's side of the bus.
pub trait Publisher: Send {
    /// Publishes `events`, one batch in `seq` order, and returns once the bus
    /// acknowledged all of them. After an error nothing counts as published:
    /// the caller publishes the batch again.
    fn publish<'a>(&'a mut self, events: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>>;

    /// Connections opened since start (reconnections show here).
    fn connects(&self) -> u64;
}

/// A gateway's side of the bus: one connection (or, on a cluster, one set of
/// connections), driven by one task.
pub trait Subscriber: Send {
    /// Drops the current connection, if any, and opens a new one subscribed
    /// to nothing.
    fn connect(&mut self) -> BoxFuture<'_, Result<(), BusError>>;

    /// Subscribes to `topics`. Once it returns, every event published on them
    /// reaches [`Subscriber::next_batch`].
    fn subscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;

    /// Stops receiving `topics`.
    fn unsubscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>>;

    /// Everything up to `seq` reached the gateway some other way (the hub
    /// caught up from Postgres): nothing at or below it needs waiting for.
    fn caught_up(&mut self, seq: Seq) {
        let _ = seq;
    }

    /// Waits for messages, then appends to `batch` every one ready now (at
    /// most [`MAX_BATCH`]) in `seq` order. An error means messages may have
    /// been lost: connect again.
    ///
    /// Cancel-safe: dropping the future before it completes loses nothing.
    fn next_batch<'a>(&'a mut self, batch: &'a mut Batch) -> BoxFuture<'a, Result<(), BusError>>;

    /// Called about once a second: fails when the connection stalled without
    /// reporting an error.
    fn check(&mut self) -> BoxFuture<'_, Result<(), BusError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("encoding an envelope: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("fell {0} messages behind the in-process bus")]
    Lagged(u64),
    #[error("cluster topology: {0}")]
    Topology(String),
    #[error("a cluster shard sent no watermark for {0:?}")]
    Stalled(Duration),
}

/// Which bus a deployment runs on, and how to reach it.
#[derive(Clone)]
pub enum Bus {
    /// Redis pub/sub: several processes and machines.
    Redis { url: String, prefix: String },
    /// Redis Cluster with sharded pub/sub, reached through seed nodes.
    RedisCluster { seeds: Vec<String>, prefix: String },
    /// In-process: the single-node binary, with Postgres the only server.
    Local(LocalBus),
}

impl Bus {
    /// The Redis the settings name, or the local one: the bus of the
    /// standalone services.
    pub fn from_settings(settings: &BusSettings) -> Self {
        Self::redis(settings.redis_or_local(), &settings.prefix)
    }

    /// The Redis the settings name, or else an in-process bus: the bus of
    /// the single-node binary.
    pub fn configured_or_local(settings: &BusSettings) -> Self {
        match &settings.redis {
            Some(servers) => Self::redis(servers.clone(), &settings.prefix),
            None => Self::Local(LocalBus::default()),
        }
    }

    fn redis(servers: RedisServers, prefix: &str) -> Self {
        let prefix = prefix.to_owned();
        match servers {
            RedisServers::Server(url) => Self::Redis {
                url: url.expose().to_owned(),
                prefix,
            },
            RedisServers::Cluster(seeds) => Self::RedisCluster {
                seeds: seeds.iter().map(|s| s.expose().to_owned()).collect(),
                prefix,
            },
        }
    }

    /// The bus's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis { .. } => "redis",
            Self::RedisCluster { .. } => "redis-cluster",
            Self::Local(_) => "in-process",
        }
    }

    /// A publisher on this bus. Fails only on a malformed URL.
    pub fn publisher(&self) -> Result<Box<dyn Publisher>, BusError> {
        Ok(match self {
            Self::Redis { url, prefix } => Box::new(redis::RedisPublisher::new(url, prefix)?),
            Self::RedisCluster { seeds, prefix } => Box::new(cluster::ClusterPublisher::new(seeds, prefix)?),
            Self::Local(bus) => Box::new(bus.publisher()),
        })
    }

    /// A subscriber on this bus, not yet connected. Fails only on a
    /// malformed URL.
    pub fn subscriber(&self) -> Result<Box<dyn Subscriber>, BusError> {
        Ok(match self {
            Self::Redis { url, prefix } => Box::new(redis::RedisSubscriber::new(url, prefix)?),
            Self::RedisCluster { seeds, prefix } => Box::new(cluster::ClusterSubscriber::new(seeds, prefix)?),
            Self::Local(bus) => Box::new(bus.subscriber()),
        })
    }

    /// Whether the bus answers now (for `/readyz`).
    pub async fn ping(&self) -> bool {
        match self {
            Self::Redis { url, .. } => redis::ping(std::slice::from_ref(url)).await,
            Self::RedisCluster { seeds, .. } => redis::ping(seeds).await,
            Self::Local(_) => true,
        }
    }
}

impl std::fmt::Debug for Bus {
    // URLs can carry passwords: name the bus, never its address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The Redis channel carrying `topic`.
pub fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}:topic:{topic}")
}

/// The topic a channel carries, if it is one of ours.
fn topic_of<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel.strip_prefix(prefix)?.strip_prefix(":topic:")
}

/// The part of an envelope a gateway routes and frames by, parsed without
/// building the `data` value.
#[derive(Debug, Deserialize)]
struct EnvelopeHead<'a> {
    seq: Seq,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
}

/// One published event as a subscriber yields it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub seq: Seq,
    pub topic: &'a str,
    pub event_type: &'a str,
    /// The envelope's JSON, exactly as published (what clients receive).
    pub envelope: &'a str,
}

/// Messages taken from the bus at once, in one buffer reused from batch to
/// batch: taking a message costs a copy, never an allocation.
#[derive(Debug, Default)]
pub struct Batch {
    text: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    seq: Seq,
    topic: (usize, usize),
    event_type: (usize, usize),
    envelope: (usize, usize),
}

impl Batch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.items.clear();
    }

    /// The messages, in the order taken.
    pub fn iter(&self) -> impl Iterator<Item = Message<'_>> + '_ {
        self.items.iter().map(|i| Message {
            seq: i.seq,
            topic: &self.text[i.topic.0..i.topic.1],
            event_type: &self.text[i.event_type.0..i.event_type.1],
            envelope: &self.text[i.envelope.0..i.envelope.1],
        })
    }

    /// Adds the message `payload` (an envelope's JSON) published on
    /// `topic`'s channel. A payload that is not an envelope is dropped with a
    /// warning: `false`.
    pub fn push(&mut self, topic: &str, payload: &[u8]) -> bool {
        match parse(payload) {
            Some((head, envelope)) => {
                self.push_parsed(head.seq, topic, &head.event_type, envelope);
                true
            }
            None => {
                tracing::warn!(topic, "dropping an unparsable bus message");
                false
            }
        }
    }

    fn push_parsed(&mut self, seq: Seq, topic: &str, event_type: &str, envelope: &str) {
        let mut span = |s: &str| {
            let start = self.text.len();
            self.text.push_str(s);
            (start, self.text.len())
        };
        let item = Item {
            seq,
            topic: span(topic),
            event_type: span(event_type),
            envelope: span(envelope),
        };
        self.items.push(item);
    }
}

/// An envelope's head and its text, if `payload` is one.
fn parse(payload: &[u8]) -> Option<(EnvelopeHead<'_>, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let head: EnvelopeHead<'_> = serde_json::from_str(text).ok()?;
    Some((head, text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    #[test]
    fn channel_round_trip() {
        let c = channel("t-1", "user:a:b");
        assert_eq!(c, "t-1:topic:user:a:b");
        assert_eq!(topic_of("t-1", &c), Some("user:a:b"));
        assert_eq!(topic_of("t-2", &c), None);
    }

    #[test]
    fn a_batch_keeps_each_message_whole_and_drops_what_is_not_an_envelope() {
        let mut b = Batch::default();
        let one = br#"{"id":"x","seq":3,"topic":"a:b","type":"t.x","data":{"big":[1,2,3]},"created_at":"z"}"#;
        assert!(b.push("a:b", one));
        assert!(!b.push("a:b", b"not json"));
        assert!(!b.push("a:b", &[0xff, b'{']));
        assert!(b.push("c:d", br#"{"seq":4,"type":"t.\u00e9"}"#));
        let got: Vec<Message<'_>> = b.iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            Message {
                seq: Seq::new(3),
                topic: "a:b",
                event_type: "t.x",
                envelope: std::str::from_utf8(one).unwrap(),
            }
        );
        assert_eq!(
            (got[1].seq, got[1].topic, got[1].event_type),
            (Seq::new(4), "c:d", "t.é")
        );
        b.clear();
        assert!(b.is_empty());
    }
}
