//! The cluster's topology: key slots, the slot → master map, and the names
//! of the per-master watermark channels.
//!
//! A sharded channel lives on the master owning its slot (CRC16 of the name,
//! or of its `{hash tag}`, modulo 16384). The publisher and every subscriber
//! read the topology with `CLUSTER SLOTS` and compute the same names from it.

use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Value};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The slot of `key`, honouring hash tags (`a{tag}b` hashes `tag`).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(len) = rest.iter().position(|&b| b == b'}') {
            if len > 0 {
                return &rest[..len];
            }
        }
    }
    key
}

/// CRC16-CCITT (XMODEM), the cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A node's address as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Which master owns which slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// `(first, last, master index)`, sorted by `first`.
    ranges: Vec<(u16, u16, usize)>,
    /// Sorted, so that two readers of one topology number masters alike.
    masters: Vec<Node>,
}

impl Topology {
    /// Reads the topology from the first seed that answers `CLUSTER SLOTS`.
    pub async fn fetch(seeds: &[ConnectionInfo]) -> RedisResult<Self> {
        let mut last_error = RedisError::from((ErrorKind::ClientError, "no cluster seed given"));
        for seed in seeds {
            match Self::fetch_from(seed).await {
                Ok(t) => return Ok(t),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    async fn fetch_from(seed: &ConnectionInfo) -> RedisResult<Self> {
        let client = redis::Client::open(seed.clone())?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(3));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let reply: Value = redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn).await?;
        let host = match &seed.addr {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.as_str(),
            _ => "127.0.0.1",
        };
        Self::from_slots_reply(&reply, host)
    }

    /// Parses a `CLUSTER SLOTS` reply. A master announced without an address
    /// (`""` or `"?"`) is the node that answered, `default_host`.
    pub fn from_slots_reply(reply: &Value, default_host: &str) -> RedisResult<Self> {
        let bad = |what: &str| {
            RedisError::from((
                ErrorKind::TypeError,
                "unexpected CLUSTER SLOTS reply",
                what.to_owned(),
            ))
        };
        let Value::Array(entries) = reply else {
            return Err(bad("not an array"));
        };
        let mut raw = Vec::new();
        for entry in entries {
            let Value::Array(parts) = entry else {
                return Err(bad("an entry is not an array"));
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (parts.first(), parts.get(1), parts.get(2))
            else {
                return Err(bad("an entry lacks its slots or master"));
            };
            let host = match master.first() {
                Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => return Err(bad("a master has no host")),
            };
            let host = if host.is_empty() || host == "?" {
                default_host.to_owned()
            } else {
                host
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return Err(bad("a master has no port"));
            };
            let (Ok(first), Ok(last), Ok(port)) =
                (u16::try_from(*first), u16::try_from(*last), u16::try_from(*port))
            else {
                return Err(bad("a slot or port is out of range"));
            };
            raw.push((first, last, Node { host, port }));
        }
        let mut masters: Vec<Node> = raw.iter().map(|(_, _, n)| n.clone()).collect();
        masters.sort();
        masters.dedup();
        let mut ranges: Vec<(u16, u16, usize)> = raw
            .into_iter()
            .map(|(a, b, n)| (a, b, masters.binary_search(&n).unwrap_or_default()))
            .collect();
        ranges.sort();
        Ok(Self { ranges, masters })
    }

    /// The masters, in a stable order; indices into this slice name shards.
    pub fn masters(&self) -> &[Node] {
        &self.masters
    }

    /// Whether every slot has a master (`cluster_state:ok` as far as we can tell).
    pub fn covers_all_slots(&self) -> bool {
        let mut next: u32 = 0;
        for &(first, last, _) in &self.ranges {
            if u32::from(first) > next {
                return false;
            }
            next = next.max(u32::from(last) + 1);
        }
        next == u32::from(SLOTS)
    }

    /// The master owning `slot`.
    pub fn master_of_slot(&self, slot: u16) -> Option<usize> {
        let i = self.ranges.partition_point(|&(first, _, _)| first <= slot);
        let &(_, last, master) = self.ranges.get(i.checked_sub(1)?)?;
        (slot <= last).then_some(master)
    }

    /// The master owning channel (or key) `name`.
    pub fn master_of(&self, name: &str) -> Option<usize> {
        self.master_of_slot(key_slot(name.as_bytes()))
    }

    /// The hash tag of `master`'s watermark channel: the smallest decimal
    /// number whose slot that master owns. Anyone reading the same topology
    /// gets the same tag; a master owning no slot has none.
    pub fn watermark_tag(&self, master: usize) -> Option<String> {
        if !self.ranges.iter().any(|r| r.2 == master) {
            return None;
        }
        (0u32..)
            .map(|i| i.to_string())
            .find(|tag| self.master_of_slot(key_slot(tag.as_bytes())) == Some(master))
    }

    /// The sharded channel on which the publisher announces, on `master`,
    /// "every event up to this `seq` has been published": a hash tag puts it
    /// on that master.
    pub fn watermark_channel(&self, prefix: &str, master: usize) -> Option<String> {
        Some(format!("{prefix}:watermark:{{{}}}", self.watermark_tag(master)?))
    }
}

/// Parses seed URLs; at least one.
pub fn seeds(urls: &[String]) -> RedisResult<Vec<ConnectionInfo>> {
    if urls.is_empty() {
        return Err(RedisError::from((
            ErrorKind::ClientError,
            "no Redis Cluster seed URL",
        )));
    }
    urls.iter().map(|u| u.as_str().into_connection_info()).collect()
}

/// How to reach `node`: the seed's credentials and database at the node's
/// address, speaking `protocol`.
pub fn node_info(seed: &ConnectionInfo, node: &Node, protocol: redis::ProtocolVersion) -> ConnectionInfo {
    let mut info = seed.clone();
    info.addr = match &seed.addr {
        ConnectionAddr::TcpTls {
            insecure, tls_params, ..
        } => ConnectionAddr::TcpTls {
            host: node.host.clone(),
            port: node.port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(node.host.clone(), node.port),
    };
    info.redis.protocol = protocol;
    info
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` and the cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"b"), 3300);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"foo{}{bar}"),
            key_slot(b"foo{}{bar}"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    fn int(i: i64) -> Value {
        Value::Int(i)
    }
    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }
    fn entry(first: i64, last: i64, host: &str, port: i64) -> Value {
        Value::Array(vec![
            int(first),
            int(last),
            Value::Array(vec![bulk(host), int(port), bulk("id")]),
        ])
    }

    #[test]
    fn topology_maps_slots_and_picks_watermark_tags_per_master() {
        let reply = Value::Array(vec![
            entry(10923, 16383, "127.0.0.1", 7003),
            entry(0, 5460, "127.0.0.1", 7001),
            entry(5461, 10922, "", 7002),
        ]);
        let t = Topology::from_slots_reply(&reply, "10.0.0.9").unwrap();
        assert!(t.covers_all_slots());
        let ports: Vec<u16> = t.masters().iter().map(|n| n.port).collect();
        assert_eq!(ports, [7002, 7001, 7003], "sorted by host, then port");
        assert_eq!(t.masters()[0].host, "10.0.0.9", "an empty host is the seed's");
        let by_port = |p: u16| t.masters().iter().position(|n| n.port == p);
        assert_eq!(t.master_of_slot(0), by_port(7001));
        assert_eq!(t.master_of_slot(5460), by_port(7001));
        assert_eq!(t.master_of_slot(5461), by_port(7002));
        assert_eq!(t.master_of_slot(16383), by_port(7003));
        assert_eq!(t.master_of("foo"), by_port(7003));
        for m in 0..3 {
            let ch = t.watermark_channel("p", m).unwrap();
            assert_eq!(t.master_of(&ch), Some(m), "{ch} lives on its master");
        }
        let partial = Topology::from_slots_reply(&Value::Array(vec![entry(0, 5460, "h", 1)]), "h").unwrap();
        assert!(!partial.covers_all_slots());
        assert_eq!(partial.master_of_slot(5461), None);
    }
}
