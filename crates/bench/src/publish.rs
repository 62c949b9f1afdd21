//! Publishing over keep-alive connections: a fixed list of events as fast as
//! they are accepted (or paced), or as many as possible until a deadline.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::contract::Contract;
use crate::http::{Endpoint, KeepAlive};
use crate::nchan;
use crate::stream::now_us;

pub const PATH: &str = "/v1/events";
/// Herald's atomic batch endpoint (the baseline has none).
pub const BATCH_PATH: &str = "/v1/events/batch";

/// A batch body: events `n0 .. n0 + count` on `topic`.
pub fn batch_body(topic: &str, n0: i64, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + count * 64);
    out.extend_from_slice(b"{\"events\":[");
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&body(topic, n0 + i as i64, ""));
    }
    out.extend_from_slice(b"]}");
    out
}

/// The body of one event: `data` is `{"n": n}`, padded with `"pad"` to a size.
pub fn body(topic: &str, n: i64, pad: &str) -> Vec<u8> {
    if pad.is_empty() {
        format!(r#"{{"topic":"{topic}","type":"bench.ev","data":{{"n":{n}}}}}"#).into_bytes()
    } else {
        format!(r#"{{"topic":"{topic}","type":"bench.ev","data":{{"n":{n},"pad":"{pad}"}}}}"#).into_bytes()
    }
}

/// Where publishing goes.
#[derive(Clone)]
pub struct Publisher {
    pub endpoint: Endpoint,
    pub authorization: Arc<str>,
    pub sources: Arc<Vec<IpAddr>>,
    /// Herald's `POST /v1/events`, or Nchan's publisher (the topic in the path).
    pub contract: Contract,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub accepted: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Per event index, when its request was written and when the answer was
    /// read (µs, `now_us`); `u64::MAX` when not accepted. Only when recorded.
    pub sent_us: Vec<u64>,
    /// When each answer arrived (the kernel's stamp).
    pub accepted_us: Vec<u64>,
    /// When each answer was read.
    pub accepted_read_us: Vec<u64>,
    pub started_us: u64,
    pub finished_us: u64,
    pub connections: u64,
    /// Requests answered 429 or 503 (refused, nothing written) and sent again.
    pub retries: u64,
}

impl Outcome {
    pub fn elapsed(&self) -> Duration {
        Duration::from_micros(self.finished_us.saturating_sub(self.started_us))
    }
}

fn describe(r: &crate::http::Response) -> String {
    format!(
        "HTTP {}: {}",
        r.status,
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    )
}

/// Sends one event; a refusal that says "later" (429, 503: nothing was
/// written) is retried with a growing pause, as a real publisher would. Any
/// other failure is returned: whether the event was accepted is unknown.
async fn post_to_with_retries(
    conn: &mut KeepAlive,
    path: &str,
    auth: &str,
    body: &[u8],
    retries: &mut u64,
) -> Result<u64, String> {
    let mut attempt = 0u64;
    loop {
        match conn.post(path, auth, body).await {
            Ok(r) if (200..300).contains(&r.status) => return Ok(r.received_us),
            Ok(r) if matches!(r.status, 429 | 503) && attempt < 30 => {
                attempt += 1;
                *retries += 1;
                tokio::time::sleep(Duration::from_millis((100 * attempt).min(1000))).await;
            }
            Ok(r) => return Err(describe(&r)),
            Err(e) => return Err(format!("request: {e}")),
        }
    }
}

impl Publisher {
    fn source(&self, i: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }

    /// Where one event on `topic` is published.
    fn path(&self, topic: &str) -> String {
        match self.contract {
            Contract::Herald => PATH.to_owned(),
            Contract::Nchan => nchan::publish_path(topic),
        }
    }

    /// Publishes every body once over `connections` keep-alive connections,
    /// each taking the next body as soon as its previous one was answered.
    /// With `interval`, body `i` is not sent before `start + i × interval`.
    pub async fn all(
        &self,
        bodies: Arc<Vec<Vec<u8>>>,
        connections: usize,
        interval: Option<Duration>,
        record: bool,
    ) -> Outcome {
        let next = Arc::new(AtomicUsize::new(0));
        // Nchan takes the topic in the path: worked out before the clock starts.
        let paths: Option<Arc<Vec<String>>> = (self.contract == Contract::Nchan).then(|| {
            Arc::new(
                bodies
                    .iter()
                    .map(|b| self.path(nchan::topic_of(b).unwrap_or_default()))
                    .collect(),
            )
        });
        let start = Instant::now();
        let started_us = now_us();
        let mut tasks = Vec::new();
        for c in 0..connections.max(1) {
            let mut conn = KeepAlive::new(self.endpoint.clone(), self.source(c)).stamped(record);
            let auth = self.authorization.clone();
            let bodies = bodies.clone();
            let paths = paths.clone();
            let next = next.clone();
            tasks.push(tokio::spawn(async move {
                let mut done: Vec<(usize, u64, u64, u64)> = Vec::new();
                let mut errors = 0usize;
                let mut first_error = None;
                let mut retries = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= bodies.len() {
                        break;
                    }
                    if let Some(step) = interval {
                        tokio::time::sleep_until((start + step * i as u32).into()).await;
                    }
                    let path = paths.as_ref().map_or(PATH, |p| p[i].as_str());
                    let sent = now_us();
                    match post_to_with_retries(&mut conn, path, &auth, &bodies[i], &mut retries).await {
                        Ok(accepted) if record => done.push((i, sent, accepted, now_us())),
                        Ok(_) => done.push((i, 0, 0, 0)),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e);
                        }
                    }
                }
                (done, errors, first_error, conn.connects, retries)
            }));
        }
        let mut out = Outcome {
            started_us,
            ..Outcome::default()
        };
        if record {
            out.sent_us = vec![u64::MAX; bodies.len()];
            out.accepted_us = vec![u64::MAX; bodies.len()];
            out.accepted_read_us = vec![u64::MAX; bodies.len()];
        }
        for t in tasks {
            match t.await {
                Ok((done, errors, first_error, connects, retries)) => {
                    out.accepted += done.len();
                    out.errors += errors;
                    out.connections += connects;
                    out.retries += retries;
                    if out.first_error.is_none() {
                        out.first_error = first_error;
                    }
                    if record {
                        for (i, s, a, r) in done {
                            out.sent_us[i] = s;
                            out.accepted_us[i] = a;
                            out.accepted_read_us[i] = r;
                        }
                    }
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("publisher task: {e}"));
                }
            }
        }
        out.finished_us = now_us();
        out
    }

    /// `connections` publishers, each publishing sequentially (waiting for
    /// every answer) to `topic` until `duration` is over. Publisher `p`'s
    /// `k`-th event carries `n = p × stride + k`. Returns the count each got
    /// accepted (its events are `k` in `0..count`) and the outcome. With
    /// `batch` > 1, each request carries `batch` events to `BATCH_PATH`.
    pub async fn until(
        &self,
        topic: &str,
        connections: usize,
        duration: Duration,
        stride: i64,
        batch: usize,
    ) -> (Vec<usize>, Outcome) {
        let started_us = now_us();
        let deadline = Instant::now() + duration;
        let mut tasks = Vec::new();
        for p in 0..connections.max(1) {
            let mut conn = KeepAlive::new(self.endpoint.clone(), self.source(p));
            let auth = self.authorization.clone();
            let topic = topic.to_owned();
            let path = self.path(&topic);
            tasks.push(tokio::spawn(async move {
                let mut k = 0i64;
                let mut errors = 0usize;
                let mut first_error = None;
                let mut retries = 0u64;
                while Instant::now() < deadline {
                    let n0 = p as i64 * stride + k;
                    let sent = if batch > 1 {
                        let b = batch_body(&topic, n0, batch);
                        post_to_with_retries(&mut conn, BATCH_PATH, &auth, &b, &mut retries).await
                    } else {
                        let b = body(&topic, n0, "");
                        post_to_with_retries(&mut conn, &path, &auth, &b, &mut retries).await
                    };
                    match sent {
                        Ok(_) => k += batch.max(1) as i64,
                        Err(e) => {
                            // The k-th event's fate is unknown: stop, so that
                            // this publisher's accepted events stay 0..count.
                            errors += 1;
                            first_error = Some(e);
                            break;
                        }
                    }
                }
                (k as usize, errors, first_error, conn.connects, retries)
            }));
        }
        let mut counts = Vec::new();
        let mut out = Outcome {
            started_us,
            ..Outcome::default()
        };
        for t in tasks {
            match t.await {
                Ok((count, errors, first_error, connects, retries)) => {
                    counts.push(count);
                    out.accepted += count;
                    out.errors += errors;
                    out.connections += connects;
                    out.retries += retries;
                    if out.first_error.is_none() {
                        out.first_error = first_error;
                    }
                }
                Err(e) => {
                    counts.push(0);
                    out.errors += 1;
                    out.first_error
                        .get_or_insert_with(|| format!("publisher task: {e}"));
                }
            }
        }
        out.finished_us = now_us();
        (counts, out)
    }
}
