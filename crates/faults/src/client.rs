//! One SSE client that behaves like a browser's `EventSource`: it keeps the last
//! event id across connections, reconnects on any disconnect after the server's
//! latest `retry:` hint (at most 2 s) with `Last-Event-ID`, and records every event it
//! is shown, and when each of its streams opened and closed (and how).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_domain::sse::{ParsedEvent, Parser};
use herald_domain::Envelope;
use serde_json::Value;
use tokio::sync::watch;

use crate::{lock, Shared};

/// The longest wait before reconnecting, whatever the server's hint says.
const MAX_RETRY: Duration = Duration::from_millis(2000);

/// Per-phase counters of one client. Events are attributed to the phase they were
/// published in (carried in their payload); connections to the phase they happened in.
#[derive(Debug, Clone, Default)]
pub struct PhaseCounters {
    pub duplicates: u64,
    pub out_of_order: u64,
    pub connects: u64,
    pub refused: BTreeMap<u16, u64>,
    pub connect_errors: u64,
    pub broken: u64,
    pub idle_timeouts: u64,
    /// `herald.reset` other than `rewound`.
    pub resets: u64,
    /// `herald.reset` with reason `rewound`: history went backwards.
    pub rewinds: u64,
    /// Events shown again after a rewind (their first position was lost with it).
    pub redelivered_after_rewind: u64,
    pub reauths: u64,
    /// `herald.reconnect` events (a gateway shutting down).
    pub reconnects: u64,
    /// Streams this client closed itself and opened again (`--churn`).
    pub churned: u64,
    pub leaks: u64,
    pub bad_frames: u64,
    pub foreign: u64,
}

/// What one client was shown of each pid, stored compactly: the publisher sends pid
/// `p` to topic `p % topics` (see `publisher::topic_of`), so the client keeps one
/// array per topic it streams, indexed by `p / topics`. A soak's two thousand clients
/// then hold what they were owed, not a slot for every event of the run.
#[derive(Debug, Default)]
pub struct Receipts {
    /// All topics of the run.
    ntopics: usize,
    /// The client's topics (indices into `Shared::topics`), one slot each.
    topics: Vec<usize>,
    /// Per slot: how many times each pid was shown (saturating).
    count: Vec<Vec<u8>>,
    /// Per slot: the epoch each pid was last shown in (see `ClientInner::epoch`).
    epoch: Vec<Vec<u8>>,
}

impl Receipts {
    pub fn new(ntopics: usize, topics: Vec<usize>) -> Self {
        let slots = topics.len();
        Self {
            ntopics: ntopics.max(1),
            topics,
            count: vec![Vec::new(); slots],
            epoch: vec![Vec::new(); slots],
        }
    }

    /// Where `pid` is kept: `None` when it was not published to one of our topics.
    fn index(&self, pid: usize) -> Option<(usize, usize)> {
        let topic = crate::publisher::topic_of(pid, self.ntopics);
        let slot = self.topics.iter().position(|t| *t == topic)?;
        Some((slot, pid / self.ntopics))
    }

    /// How many times `pid` was shown (0 for a pid of another topic).
    pub fn count(&self, pid: usize) -> u8 {
        self.index(pid)
            .and_then(|(s, i)| self.count[s].get(i).copied())
            .unwrap_or(0)
    }

    /// Records one showing of `pid` in `epoch`; returns the count and epoch it had
    /// before, or `None` when `pid` was not published to one of our topics.
    fn record(&mut self, pid: usize, epoch: u8) -> Option<(u8, u8)> {
        let (s, i) = self.index(pid)?;
        if self.count[s].len() <= i {
            self.count[s].resize(i + 1024, 0);
            self.epoch[s].resize(i + 1024, 0);
        }
        let before = (self.count[s][i], self.epoch[s][i]);
        self.count[s][i] = before.0.saturating_add(1);
        self.epoch[s][i] = epoch;
        Some(before)
    }
}

#[derive(Debug, Default)]
pub struct ClientInner {
    /// What this client was shown of each pid.
    pub got: Receipts,
    /// How many `herald.reset`s with reason `rewound` this client got: positions
    /// before and after one belong to different histories of the log (epochs).
    pub epoch: u32,
    /// Each rewind: when it reached this client, and in which phase.
    pub rewinds: Vec<(f64, usize)>,
    pub last_seq: i64,
    /// What a browser would send as `Last-Event-ID`.
    pub last_id: String,
    /// The upstream serving the open stream (nginx's `X-Upstream`), if connected.
    pub upstream: Option<String>,
    /// The first stream delivered its starting position.
    pub ready: bool,
    pub phases: Vec<PhaseCounters>,
    /// Every stream opened and closed, in order.
    pub history: Vec<StreamEvent>,
}

/// A stream opening or closing (times in seconds since the driver started).
#[derive(Debug, Clone)]
pub enum StreamEvent {
    Open {
        at: f64,
        upstream: String,
    },
    Close {
        at: f64,
        upstream: String,
        /// The stream ended with `event: herald.reconnect` just before it closed.
        reconnect_signal: bool,
        /// The last `retry:` hint of the stream, in milliseconds.
        retry_ms: Option<u64>,
        /// The body ended normally (not a broken connection or an idle timeout).
        clean: bool,
    },
}

impl ClientInner {
    /// An event this client may lack because history went backwards: published in the
    /// phase of a rewind, before the client was told (`herald.reset`, reason
    /// `rewound`). A failover to a standby that lacked the last commits loses them, or
    /// gives them positions at or below the reset, which the client skips; the reset
    /// tells it so. Events sent after the reset must all arrive.
    pub fn lost_to_rewind(&self, r: &crate::publisher::PubRecord) -> bool {
        self.rewinds
            .iter()
            .any(|(at, phase)| r.phase == *phase && r.sent < *at)
    }

    pub fn phase_mut(&mut self, phase: usize) -> &mut PhaseCounters {
        if self.phases.len() <= phase {
            self.phases.resize(phase + 1, PhaseCounters::default());
        }
        &mut self.phases[phase]
    }
}

pub struct ClientState {
    pub idx: usize,
    /// Indices into `Shared::topics`.
    pub topics: Vec<usize>,
    pub inner: Mutex<ClientInner>,
}

impl ClientState {
    /// Client `idx` streaming `topics` (indices into the run's `ntopics` topics).
    pub fn new(idx: usize, topics: Vec<usize>, ntopics: usize) -> Self {
        let inner = ClientInner {
            got: Receipts::new(ntopics, topics.clone()),
            ..ClientInner::default()
        };
        Self {
            idx,
            topics,
            inner: Mutex::new(inner),
        }
    }
}

enum StreamEnd {
    Closed {
        /// The body ended normally.
        clean: bool,
        /// The last event before the end was `herald.reconnect`.
        reconnect_signal: bool,
    },
    /// We closed it ourselves, its lifetime over (`--churn`): a tab closed and opened
    /// again. The client reconnects at once with `Last-Event-ID`.
    Churned,
    Stop,
}

/// How long the `nth` stream of client `idx` lives under churn: between half and one
/// and a half times `base`, spread evenly over the clients (a golden-ratio sequence, so
/// the clients do not reconnect in waves and no random generator is needed).
fn churn_lifetime(base: Duration, idx: usize, nth: u64) -> Duration {
    const PHI: f64 = 0.618_033_988_749_895;
    let x = (idx as f64 + 1.0) * PHI + nth as f64 * 0.377;
    base.mul_f64(0.5 + x.fract())
}

pub async fn run(
    shared: Arc<Shared>,
    me: Arc<ClientState>,
    http: reqwest::Client,
    base: String,
    token: String,
    mut stop: watch::Receiver<bool>,
) {
    let topics = me
        .topics
        .iter()
        .map(|t| shared.topics[*t].as_str())
        .collect::<Vec<_>>()
        .join(",");
    let url = format!("{base}/v1/stream");
    let mut retry = MAX_RETRY;
    // Streams opened so far (each churned stream gets its own lifetime).
    let mut streams = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        let last_id = lock(&me.inner).last_id.clone();
        let mut req = http
            .get(&url)
            .query(&[("topics", topics.as_str())])
            .bearer_auth(&token);
        if !last_id.is_empty() {
            req = req.header("Last-Event-ID", last_id);
        }
        let phase = shared.phase();
        let sent = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(10), req.send()) => r,
            _ = stop.changed() => return,
        };
        match sent {
            Ok(Ok(resp)) if resp.status().as_u16() == 200 => {
                let upstream = resp
                    .headers()
                    .get("x-upstream")
                    .and_then(|v| v.to_str().ok())
                    // After a failed attempt nginx lists every upstream it tried.
                    .map(|s| s.rsplit(',').next().unwrap_or(s).trim().to_owned())
                    .unwrap_or_else(|| "unknown".to_owned());
                {
                    let mut g = lock(&me.inner);
                    g.upstream = Some(upstream.clone());
                    g.phase_mut(phase).connects += 1;
                    g.history.push(StreamEvent::Open {
                        at: shared.now(),
                        upstream: upstream.clone(),
                    });
                }
                let close_at = shared
                    .churn
                    .map(|base| tokio::time::Instant::now() + churn_lifetime(base, me.idx, streams));
                streams += 1;
                let (end, hint) = read_stream(&shared, &me, resp, &mut stop, close_at).await;
                let mut g = lock(&me.inner);
                g.upstream = None;
                if let Some(h) = hint {
                    retry = h.min(MAX_RETRY);
                }
                let (clean, reconnect_signal, churned) = match end {
                    StreamEnd::Stop => return,
                    StreamEnd::Closed {
                        clean,
                        reconnect_signal,
                    } => (clean, reconnect_signal, false),
                    StreamEnd::Churned => (true, false, true),
                };
                g.history.push(StreamEvent::Close {
                    at: shared.now(),
                    upstream,
                    reconnect_signal,
                    retry_ms: hint.map(|h| h.as_millis() as u64),
                    clean,
                });
                if churned {
                    g.phase_mut(shared.phase()).churned += 1;
                    continue;
                }
            }
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                *lock(&me.inner)
                    .phase_mut(phase)
                    .refused
                    .entry(status)
                    .or_insert(0) += 1;
            }
            Ok(Err(_)) | Err(_) => lock(&me.inner).phase_mut(phase).connect_errors += 1,
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reads one stream until it ends; returns why, and the latest `retry:` hint if one
/// came (the gateway sends one first, and a shorter one before it closes the stream
/// on shutdown).
async fn read_stream(
    shared: &Shared,
    me: &ClientState,
    mut resp: reqwest::Response,
    stop: &mut watch::Receiver<bool>,
    close_at: Option<tokio::time::Instant>,
) -> (StreamEnd, Option<Duration>) {
    let mut parser = Parser::new();
    let mut hint = None;
    let mut reconnect_signal = false;
    loop {
        let chunk = tokio::select! {
            // A connection that carries nothing, not even a heartbeat, is dead.
            c = tokio::time::timeout(shared.idle_timeout, resp.chunk()) => c,
            _ = stop.changed() => return (StreamEnd::Stop, hint),
        };
        let closed = |clean| StreamEnd::Closed {
            clean,
            reconnect_signal,
        };
        let bytes = match chunk {
            Ok(Ok(Some(b))) => b,
            Ok(Ok(None)) => return (closed(true), hint),
            Ok(Err(_)) => {
                lock(&me.inner).phase_mut(shared.phase()).broken += 1;
                return (closed(false), hint);
            }
            Err(_) => {
                lock(&me.inner).phase_mut(shared.phase()).idle_timeouts += 1;
                return (closed(false), hint);
            }
        };
        if let Some(h) = retry_hint(&bytes) {
            hint = Some(h);
        }
        let events = parser.feed(&bytes);
        let mut g = lock(&me.inner);
        for ev in events {
            // Only the very last event counts: anything after it means the stream
            // went on.
            reconnect_signal = ev.event == "herald.reconnect";
            record(shared, me, &mut g, ev);
        }
        let id = parser.last_event_id();
        if !id.is_empty() {
            g.last_id = id.to_owned();
            g.ready = true;
        }
        // Checked between chunks (a heartbeat comes every few seconds), so no read is
        // ever cut short; never while a fault is being measured.
        if close_at.is_some_and(|t| tokio::time::Instant::now() >= t)
            && !shared.churn_paused.load(Ordering::Relaxed)
        {
            return (StreamEnd::Churned, hint);
        }
    }
}

/// The last `retry:` field of a chunk (the gateway writes each one whole, in one chunk).
fn retry_hint(bytes: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(bytes).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("retry:"))
        .next_back()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

fn record(shared: &Shared, me: &ClientState, g: &mut ClientInner, ev: ParsedEvent) {
    let now_phase = shared.phase();
    match ev.event.as_str() {
        "herald.reset" => {
            let reason = serde_json::from_str::<Value>(&ev.data)
                .ok()
                .and_then(|d| d.get("reason").and_then(Value::as_str).map(str::to_owned));
            if reason.as_deref() == Some("rewound") {
                // A new history starts at the reset's position: what this client saw
                // above it was lost, and its positions will be given again.
                g.phase_mut(now_phase).rewinds += 1;
                g.epoch += 1;
                g.rewinds.push((shared.now(), now_phase));
                g.last_seq = ev.id.parse().unwrap_or(0);
            } else {
                g.phase_mut(now_phase).resets += 1;
            }
            return;
        }
        "herald.reauth" => {
            g.phase_mut(now_phase).reauths += 1;
            return;
        }
        "herald.reconnect" => {
            g.phase_mut(now_phase).reconnects += 1;
            return;
        }
        _ => {}
    }
    let env: Envelope = match serde_json::from_str(&ev.data) {
        Ok(e) => e,
        Err(_) => {
            g.phase_mut(now_phase).bad_frames += 1;
            return;
        }
    };
    let seq = env.seq.get();
    if ev.id.parse::<i64>().ok() != Some(seq) || ev.event != env.event_type {
        g.phase_mut(now_phase).bad_frames += 1;
    }
    let Some(topic) = me.topics.iter().copied().find(|t| shared.topics[*t] == env.topic) else {
        g.phase_mut(now_phase).leaks += 1;
        return;
    };
    let pid = env.data.get("pid").and_then(Value::as_u64);
    let phase = env.data.get("phase").and_then(Value::as_u64);
    let (Some(pid), Some(phase)) = (pid, phase) else {
        g.phase_mut(now_phase).foreign += 1;
        return;
    };
    let (Ok(pid), Ok(phase)) = (usize::try_from(pid), usize::try_from(phase)) else {
        g.phase_mut(now_phase).foreign += 1;
        return;
    };
    let epoch = g.epoch;
    let this_epoch = epoch.min(u8::MAX as u32) as u8;
    // A pid the publisher sent to another topic than the one it came on is not ours.
    let recorded = (crate::publisher::topic_of(pid, shared.topics.len()) == topic)
        .then(|| g.got.record(pid, this_epoch))
        .flatten();
    let Some((count, last_epoch)) = recorded else {
        g.phase_mut(now_phase).foreign += 1;
        return;
    };
    if count > 0 && last_epoch == this_epoch {
        g.phase_mut(phase).duplicates += 1;
    } else if count > 0 {
        g.phase_mut(phase).redelivered_after_rewind += 1;
    } else if seq <= g.last_seq {
        g.phase_mut(phase).out_of_order += 1;
    }
    g.last_seq = g.last_seq.max(seq);

    let now = shared.now();
    {
        let mut seen = lock(&shared.seen);
        if seen.len() <= pid {
            seen.resize(pid + 4096, Seen::default());
        }
        let s = &mut seen[pid];
        if s.seq == 0 || epoch > s.epoch {
            s.seq = seq;
            s.epoch = epoch;
        } else if s.epoch == epoch && s.seq != seq {
            shared.seq_mismatches.fetch_add(1, Ordering::Relaxed);
        }
        s.last_received = s.last_received.max(now);
    }
    // No position may be given to two events within one epoch.
    let mut owners = lock(&shared.seq_owners);
    match owners.get(&(epoch, seq)) {
        Some(owner) if *owner != pid => {
            shared.seq_reuses.fetch_add(1, Ordering::Relaxed);
        }
        Some(_) => {}
        None => {
            owners.insert((epoch, seq), pid);
            if epoch > 0 && owners.get(&(epoch - 1, seq)).is_some_and(|o| *o != pid) {
                shared.seqs_reused_across_rewind.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What the clients saw of one pid, across all of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// The `seq` it was first shown with in the latest epoch it was shown in (0:
    /// never shown).
    pub seq: i64,
    /// That epoch (see `ClientInner::epoch`).
    pub epoch: u32,
    /// When the last client to be shown it was (seconds since start).
    pub last_received: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_keep_only_the_clients_own_topics_and_count_repeats() {
        // 10 topics; this client streams topics 3 and 7.
        let mut r = Receipts::new(10, vec![3, 7]);
        assert_eq!(r.record(13, 0), Some((0, 0)));
        assert_eq!(r.record(13, 0), Some((1, 0)));
        assert_eq!(r.record(27, 1), Some((0, 0)));
        assert_eq!(r.record(14, 0), None, "pid 14 went to topic 4");
        assert_eq!(r.count(13), 2);
        assert_eq!(r.count(27), 1);
        assert_eq!(r.count(3), 0);
        assert_eq!(r.count(14), 0);
        assert_eq!(r.record(100_003, 0), Some((0, 0)));
        assert_eq!(r.count(100_003), 1);
    }

    #[test]
    fn churned_streams_live_half_to_one_and_a_half_times_the_base_spread_over_clients() {
        let base = Duration::from_secs(600);
        let lives: Vec<Duration> = (0..2000).map(|i| churn_lifetime(base, i, 0)).collect();
        assert!(lives.iter().all(|l| *l >= base / 2 && *l < base * 3 / 2));
        // Spread: every tenth of the range holds some of them.
        for k in 0..10 {
            let lo = base / 2 + base * k / 10;
            let hi = lo + base / 10;
            assert!(lives.iter().filter(|l| **l >= lo && **l < hi).count() > 150);
        }
        assert_ne!(churn_lifetime(base, 5, 0), churn_lifetime(base, 5, 1));
    }

    #[test]
    fn reads_the_retry_hint() {
        assert_eq!(
            retry_hint(b"retry: 2000\n\nid: 0\n\n"),
            Some(Duration::from_millis(2000))
        );
        assert_eq!(retry_hint(b"id: 5\ndata: x\n\n"), None);
        assert_eq!(
            retry_hint(b"retry: 2000\n\nretry: 137\n\nevent: herald.reconnect\ndata: {}\n\n"),
            Some(Duration::from_millis(137))
        );
    }
}
