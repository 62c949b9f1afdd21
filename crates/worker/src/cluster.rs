//! Publishing to a Redis Cluster with sharded pub/sub.
//!
//! One batch becomes one pipeline per master: the `SPUBLISH`es of the
//! batch's events whose channels that master owns, in `seq` order, then one
//! `SPUBLISH` of the batch's last `seq` to that master's watermark channel.
//! Every master gets the watermark, even one that owns none of the batch's
//! events. The pipelines run concurrently; the batch counts as published only
//! when every master acknowledged its pipeline.
//!
//! So each master receives, in `seq` order, its own events interleaved with
//! watermarks, and a watermark `w` on master M comes after every event
//! `<= w` published on M (a republished duplicate excepted). That is all the
//! gateway's merge needs (`gateway/src/hub/cluster.rs`).
//!
//! The topology is read with `CLUSTER SLOTS` and re-read after any error
//! (`MOVED`, a lost node) and every few seconds, so added masters get
//! watermarks and moved slots are followed.

use std::collections::HashMap;
use std::time::Duration;

use herald_domain::{Envelope, Seq};
use herald_platform::bus;
use herald_platform::cluster::{self, Node, Topology};
use redis::aio::MultiplexedConnection;
use redis::{ConnectionInfo, ErrorKind, RedisError};
use tokio::time::Instant;

use crate::relay::RelayError;

/// How long a topology is trusted without an error.
const TOPOLOGY_TTL: Duration = Duration::from_secs(5);

pub struct ClusterPublisher {
    seeds: Vec<ConnectionInfo>,
    prefix: String,
    topology: Option<(Topology, Instant)>,
    conns: HashMap<Node, MultiplexedConnection>,
}

impl ClusterPublisher {
    pub fn new(seeds: &[String], prefix: String) -> Result<Self, RelayError> {
        let seeds = cluster::seeds(seeds)?;
        if seeds.is_empty() {
            return Err(RedisError::from((ErrorKind::ClientError, "no Redis Cluster seed URL")).into());
        }
        Ok(Self {
            seeds,
            prefix,
            topology: None,
            conns: HashMap::new(),
        })
    }

    /// Publishes `events` (in `seq` order, ending at `upto`) and a watermark
    /// `upto` on every master. Returns the number of new connections made.
    pub async fn publish(&mut self, events: &[Envelope], upto: Seq) -> Result<u64, RelayError> {
        let result = self.try_publish(events, upto).await;
        if result.is_err() {
            // Re-read the topology and reconnect next time.
            self.topology = None;
            self.conns.clear();
        }
        result
    }

    async fn try_publish(&mut self, events: &[Envelope], upto: Seq) -> Result<u64, RelayError> {
        let topology = self.topology().await?.clone();
        let masters = topology.masters();
        let mut pipes = vec![redis::pipe(); masters.len()];
        for e in events {
            let channel = bus::channel(&self.prefix, &e.topic);
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
            pipe.cmd("SPUBLISH").arg(channel).arg(upto).ignore();
        }
        let mut connects = 0;
        let mut conns = Vec::with_capacity(masters.len());
        for node in masters {
            if !self.conns.contains_key(node) {
                let conn = connect(&self.seeds[0], node).await?;
                self.conns.insert(node.clone(), conn);
                connects += 1;
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
        Ok(connects)
    }

    async fn topology(&mut self) -> Result<&Topology, RelayError> {
        let fresh = matches!(&self.topology, Some((_, at)) if at.elapsed() < TOPOLOGY_TTL);
        if !fresh {
            // Ask a master we are connected to, else the seeds.
            let known = match self.conns.iter_mut().next() {
                Some((node, conn)) => redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<redis::Value>(conn)
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

fn uncovered() -> RedisError {
    RedisError::from((ErrorKind::ClusterDown, "some cluster slots have no master"))
}

async fn connect(seed: &ConnectionInfo, node: &Node) -> Result<MultiplexedConnection, RelayError> {
    let info = cluster::node_info(seed, node, redis::ProtocolVersion::RESP2);
    let client = redis::Client::open(info)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(5));
    Ok(client
        .get_multiplexed_async_connection_with_config(&config)
        .await?)
}
