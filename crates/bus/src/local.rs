//! The in-process bus: a broadcast channel, for the single-node binary
//! (Postgres the only server).
//!
//! Every message reaches every subscriber, so subscribing is the hub's
//! bookkeeping only. A subscriber that falls behind the channel's capacity
//! loses messages exactly as on a Redis disconnect, reports it
//! ([`BusError::Lagged`]), and is repaired the same way: the hub connects
//! again and catches up from Postgres.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use herald_domain::Envelope;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::{Batch, BusError, Publisher, Subscriber, MAX_BATCH};

/// One published event: its topic and envelope JSON.
type LocalMessage = (Arc<str>, Bytes);

/// An in-process broadcast bus. Cheap to clone; clones are the same bus.
#[derive(Debug, Clone)]
pub struct LocalBus(broadcast::Sender<LocalMessage>);

impl LocalBus {
    /// A bus buffering up to `capacity` messages for a slow subscriber.
    pub fn new(capacity: usize) -> Self {
        Self(broadcast::channel(capacity).0)
    }

    pub fn publisher(&self) -> LocalPublisher {
        LocalPublisher(self.0.clone())
    }

    pub fn subscriber(&self) -> LocalSubscriber {
        LocalSubscriber {
            bus: self.0.clone(),
            rx: None,
            lagged: None,
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16 * 1024)
    }
}

pub struct LocalPublisher(broadcast::Sender<LocalMessage>);

impl Publisher for LocalPublisher {
    fn publish<'a>(&'a mut self, events: &'a [Envelope]) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            for e in events {
                // No subscriber yet is not an error: nobody missed anything.
                let _ = self
                    .0
                    .send((e.topic.as_str().into(), serde_json::to_vec(e)?.into()));
            }
            Ok(())
        }
        .boxed()
    }

    fn connects(&self) -> u64 {
        0
    }
}

pub struct LocalSubscriber {
    bus: broadcast::Sender<LocalMessage>,
    rx: Option<broadcast::Receiver<LocalMessage>>,
    /// Messages missed while draining a batch, reported by the next call.
    lagged: Option<u64>,
}

impl Subscriber for LocalSubscriber {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        self.rx = Some(self.bus.subscribe());
        self.lagged = None;
        futures_util::future::ready(Ok(())).boxed()
    }

    fn subscribe<'a>(&'a mut self, _: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        futures_util::future::ready(Ok(())).boxed()
    }

    fn unsubscribe<'a>(&'a mut self, _: &'a [String]) -> BoxFuture<'a, Result<(), BusError>> {
        futures_util::future::ready(Ok(())).boxed()
    }

    fn next_batch<'a>(&'a mut self, batch: &'a mut Batch) -> BoxFuture<'a, Result<(), BusError>> {
        async move {
            if let Some(n) = self.lagged.take() {
                return Err(BusError::Lagged(n));
            }
            let rx = self.rx.as_mut().ok_or(BusError::Closed)?;
            let (topic, payload) = match rx.recv().await {
                Ok(m) => m,
                Err(RecvError::Lagged(n)) => return Err(BusError::Lagged(n)),
                Err(RecvError::Closed) => return Err(BusError::Closed),
            };
            batch.push(&topic, &payload);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok((topic, payload)) => {
                        batch.push(&topic, &payload);
                    }
                    Err(TryRecvError::Lagged(n)) => {
                        self.lagged = Some(n);
                        break;
                    }
                    Err(_) => break,
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn check(&mut self) -> BoxFuture<'_, Result<(), BusError>> {
        futures_util::future::ready(Ok(())).boxed()
    }
}
