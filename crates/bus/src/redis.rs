//! Redis pub/sub, one exact channel per topic.
//!
//! The worker publishes each event's envelope JSON (exactly what clients
//! receive) to `{prefix}:topic:{topic}`, a batch as one pipeline. A gateway
//! subscribes to exactly the channels its streams need, no patterns, so
//! Redis sends it only what it will deliver. One connection carries messages
//! in the order Redis received them, which is `seq` order.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use herald_domain::Envelope;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::time::Instant;

use crate::{channel, topic_of, Batch, BusError, Publisher, Subscriber, MAX_BATCH};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle subscriber pings, to notice a connection that died
/// without a word.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Publishes on one Redis server.
pub struct RedisPublisher {
    client: redis::Client,
    prefix: String,
    conn: Option<MultiplexedConnection>,
    connects: u64,
}

impl RedisPublisher {
    pub fn new(url: &str, prefix: &str) -> Result<Self, BusError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_owned(),
            conn: None,
            connects: 0,
        })
    }

    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, BusError> {
        if self.conn.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.connects += 1;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }
}

impl Publisher for RedisPublisher {
    fn publish<'a>(&'a mut self, events: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let mut pipe = redis::pipe();
            for e in events {
                pipe.cmd("PUBLISH")
                    .arg(channel(&self.prefix, &e.topic))
                    .arg(serde_json::to_vec(e)?)
                    .ignore();
            }
            let conn = self.connection().await?;
            if let Err(e) = pipe.query_async::<()>(conn).await {
                self.conn = None; // reconnect next time
                return Err(e.into());
            }
            Ok(())
        }
        .boxed()
    }

    fn connects(&self) -> u64 {
        self.connects
    }
}

/// One pub/sub connection to one Redis server.
pub struct RedisSubscriber {
    client: redis::Client,
    prefix: String,
    conn: Option<(PubSubSink, PubSubStream)>,
    last_ping: Instant,
}

impl RedisSubscriber {
    pub fn new(url: &str, prefix: &str) -> Result<Self, BusError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_owned(),
            conn: None,
            last_ping: Instant::now(),
        })
    }

    fn sink(&mut self) -> Result<&mut PubSubSink, BusError> {
        self.conn.as_mut().map(|(sink, _)| sink).ok_or(BusError::Closed)
    }

    fn channels(&self, topics: &[String]) -> Vec<String> {
        topics.iter().map(|t| channel(&self.prefix, t)).collect()
    }
}

impl Subscriber for RedisSubscriber {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            self.conn = None;
            let pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
                .await
                .map_err(|_| BusError::Timeout)??;
            self.conn = Some(pubsub.split());
            self.last_ping = Instant::now();
            Ok(())
        }
        .boxed()
    }

    fn subscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let channels = self.channels(topics);
            Ok(self.sink()?.subscribe(&channels).await?)
        }
        .boxed()
    }

    fn unsubscribe<'a>(&'a mut self, topics: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let channels = self.channels(topics);
            Ok(self.sink()?.unsubscribe(&channels).await?)
        }
        .boxed()
    }

    fn next_batch<'a>(&'a mut self, batch: &'a mut Batch) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            let Self { conn, prefix, .. } = self;
            let (_, stream) = conn.as_mut().ok_or(BusError::Closed)?;
            // The only await: once a message is in, the rest runs to the end.
            let Some(first) = stream.next().await else {
                *conn = None;
                return Err(BusError::Closed);
            };
            take(prefix, &first, batch);
            for _ in 1..MAX_BATCH {
                match stream.next().now_or_never() {
                    Some(Some(msg)) => take(prefix, &msg, batch),
                    // Closed: deliver what came first; the next call reports it.
                    Some(None) => {
                        *conn = None;
                        break;
                    }
                    None => break,
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            if self.last_ping.elapsed() < PING_EVERY {
                return Ok(());
            }
            self.last_ping = Instant::now();
            let sink = self.sink()?;
            tokio::time::timeout(Duration::from_secs(3), sink.ping::<()>())
                .await
                .map_err(|_| BusError::Timeout)??;
            Ok(())
        }
        .boxed()
    }
}

fn take(prefix: &str, msg: &redis::Msg, batch: &mut Batch) {
    if let Some(topic) = topic_of(prefix, msg.get_channel_name()) {
        batch.push(topic, msg.get_payload_bytes());
    }
}

/// Whether any of `urls` (one server, or a cluster's seeds) answers `PING`.
pub(crate) async fn ping(urls: &[String]) -> bool {
    for url in urls {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2));
        let Ok(mut c) = client.get_multiplexed_async_connection_with_config(&config).await else {
            continue;
        };
        if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
            return true;
        }
    }
    false
}
