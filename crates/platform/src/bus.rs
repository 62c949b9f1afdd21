//! The bus: Redis pub/sub, one exact channel per topic.
//!
//! The worker publishes each event's envelope JSON (exactly what clients
//! receive) to `{prefix}:topic:{topic}`. Gateways subscribe to exactly the
//! channels their open streams need — no pattern subscriptions — so Redis only
//! sends a gateway what it will deliver. Pub/sub is at-most-once; the gateway
//! makes delivery exact by catching up from Postgres after any reconnect.
//!
//! On a Redis Cluster ([`Bus::RedisCluster`]) the same channels are sharded
//! pub/sub channels (`SPUBLISH`/`SSUBSCRIBE`), each living on the master that
//! owns its slot, and every master also carries one watermark channel
//! ([`watermark_channel`]); see [`crate::cluster`].

use herald_domain::Seq;
use serde::Deserialize;

/// The Redis channel carrying `topic`.
pub fn channel(prefix: &str, topic: &str) -> String {
    format!("{prefix}:topic:{topic}")
}

/// The topic a channel carries, if it is one of ours.
pub fn topic_of<'a>(prefix: &str, channel: &'a str) -> Option<&'a str> {
    channel.strip_prefix(prefix)?.strip_prefix(":topic:")
}

/// The sharded channel on which the worker announces, on one cluster shard,
/// "every event up to this `seq` has been published". `tag` is a hash tag
/// chosen so that the channel lives on that shard's master
/// (see [`crate::cluster::Topology::watermark_channel`]).
pub fn watermark_channel(prefix: &str, tag: &str) -> String {
    format!("{prefix}:watermark:{{{tag}}}")
}

/// The part of an envelope a gateway needs to route and frame it, parsed
/// without building the `data` value.
#[derive(Debug, Deserialize)]
pub struct EnvelopeHead<'a> {
    pub seq: Seq,
    #[serde(rename = "type", borrow)]
    pub event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub topic: std::borrow::Cow<'a, str>,
}

impl<'a> EnvelopeHead<'a> {
    pub fn parse(payload: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_round_trip() {
        let c = channel("t-1", "user:a:b");
        assert_eq!(c, "t-1:topic:user:a:b");
        assert_eq!(topic_of("t-1", &c), Some("user:a:b"));
        assert_eq!(topic_of("t-2", &c), None);
    }

    #[test]
    fn head_ignores_data() {
        let h = EnvelopeHead::parse(
            br#"{"id":"x","seq":3,"topic":"a:b","type":"t.x","data":{"big":[1,2,3]},"created_at":"z"}"#,
        )
        .unwrap();
        assert_eq!((h.seq, &*h.event_type, &*h.topic), (3, "t.x", "a:b"));
    }
}

/// Which bus a deployment uses.
#[derive(Debug, Clone)]
pub enum Bus {
    /// Redis pub/sub: several processes and machines.
    Redis { url: String },
    /// Redis Cluster with sharded pub/sub, reached through one or more seed
    /// node URLs. See [`crate::cluster`].
    RedisCluster { seeds: Vec<String> },
    /// In-process: the single-node `herald` binary, with Postgres as the
    /// only server. Same delivery guarantees: a gateway that falls behind
    /// the channel catches up from Postgres exactly as after a Redis
    /// reconnect.
    Local(LocalBus),
}

impl Bus {
    /// The Redis bus the settings describe: a cluster when
    /// `HERALD_REDIS_CLUSTER` is set (`HERALD_REDIS_URL` then lists seed
    /// nodes, comma-separated), otherwise one Redis server.
    pub fn redis(settings: &crate::Settings) -> Self {
        if settings.redis_cluster {
            Self::RedisCluster {
                seeds: settings
                    .redis_url
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }
        } else {
            Self::Redis {
                url: settings.redis_url.clone(),
            }
        }
    }
}

/// One published event on the in-process bus: its topic and envelope JSON.
pub type LocalMessage = (std::sync::Arc<str>, bytes::Bytes);

/// An in-process broadcast bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LocalBus(tokio::sync::broadcast::Sender<LocalMessage>);

impl LocalBus {
    /// A bus buffering up to `capacity` messages per slow receiver.
    pub fn new(capacity: usize) -> Self {
        Self(tokio::sync::broadcast::channel(capacity).0)
    }

    /// Publishes to every current subscriber; never blocks.
    pub fn publish(&self, topic: &str, payload: bytes::Bytes) {
        let _ = self.0.send((topic.into(), payload));
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LocalMessage> {
        self.0.subscribe()
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16 * 1024)
    }
}
