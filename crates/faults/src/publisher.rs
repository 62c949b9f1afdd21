//! The publisher: one `POST /v1/events` per tick at a fixed rate, each with a unique
//! payload id (`pid`), never retried, every outcome recorded.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::time::MissedTickBehavior;

use crate::{lock, Shared};

/// Requests allowed in flight at once (a stalled API must not exhaust sockets).
const MAX_IN_FLIGHT: usize = 512;
/// A request without an answer after this long counts as unknown.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The topic (index) the publisher sends payload id `pid` to: round robin over the
/// run's `topics`. Clients rely on it to store what they were shown compactly
/// (`client::Receipts`).
pub fn topic_of(pid: usize, topics: usize) -> usize {
    pid % topics.max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pending,
    /// 202: the event was committed.
    Accepted,
    /// 503; `well_formed`: problem+json with `Retry-After`.
    Unavailable {
        well_formed: bool,
    },
    /// Another status below 500: refused, nothing written.
    Refused(u16),
    /// A 5xx other than 503: a server error, and the outcome is unknown.
    ServerError(u16),
    /// No answer (connection error or timeout): may or may not have been committed.
    NoAnswer(String),
}

#[derive(Debug, Clone)]
pub struct PubRecord {
    pub topic: usize,
    pub phase: usize,
    /// Seconds since start when the request was sent and when it was answered.
    pub sent: f64,
    pub done: f64,
    pub outcome: Outcome,
}

impl PubRecord {
    pub fn is_accepted(&self) -> bool {
        self.outcome == Outcome::Accepted
    }

    /// No definite answer: delivery is allowed but not required.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::ServerError(_) | Outcome::NoAnswer(_) | Outcome::Pending
        )
    }
}

#[derive(Debug, Clone, Default)]
pub struct PublisherStats {
    /// Ticks that had to wait for a free in-flight slot.
    pub throttled: u64,
    pub sent: u64,
    pub seconds: f64,
}

pub async fn run(
    shared: Arc<Shared>,
    http: reqwest::Client,
    api: String,
    token: String,
    rate: f64,
    mut stop: watch::Receiver<bool>,
) -> PublisherStats {
    let url = format!("{api}/v1/events");
    let started = shared.now();
    let mut stats = PublisherStats::default();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                stats.throttled += 1;
                match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => break,
                }
            }
        };
        let phase = shared.phase();
        let (pid, topic) = {
            let mut pubs = lock(&shared.pubs);
            let pid = pubs.len();
            let topic = topic_of(pid, shared.topics.len());
            pubs.push(PubRecord {
                topic,
                phase,
                sent: shared.now(),
                done: 0.0,
                outcome: Outcome::Pending,
            });
            (pid, topic)
        };
        stats.sent += 1;
        let body = json!({
            "topic": shared.topics[topic],
            "type": "fault.tick",
            "data": {"pid": pid, "phase": phase},
        })
        .to_string();
        let req = http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .timeout(REQUEST_TIMEOUT);
        let shared = shared.clone();
        tasks.spawn(async move {
            let outcome = classify(req.send().await).await;
            let mut pubs = lock(&shared.pubs);
            pubs[pid].done = shared.now();
            pubs[pid].outcome = outcome;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    stats.seconds = shared.now() - started;
    stats
}

async fn classify(r: reqwest::Result<reqwest::Response>) -> Outcome {
    let resp = match r {
        Ok(resp) => resp,
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "transport"
            };
            return Outcome::NoAnswer(kind.to_owned());
        }
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let retry_after = header("retry-after");
    // Read the body so the connection can be reused; a 202's status is what counts.
    let _ = resp.bytes().await;
    match status {
        202 => Outcome::Accepted,
        503 => Outcome::Unavailable {
            well_formed: content_type.starts_with("application/problem+json")
                && retry_after.trim().parse::<u64>().is_ok(),
        },
        500..=599 => Outcome::ServerError(status),
        _ => Outcome::Refused(status),
    }
}
