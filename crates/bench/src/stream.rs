//! One SSE stream per task: raw socket, chunked decoding, the small parser,
//! and the checks every scenario relies on: exact count, no duplicate, no
//! out-of-order frame, no `herald.reset`, the right topic, `id` = envelope `seq`.
//!
//! A stream the server closes is reopened with `Last-Event-ID`, like a
//! browser's `EventSource`; reconnects are counted, not failures, because
//! exactly-once across reconnects is the property under test.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::contract::Contract;
use crate::http::{self, BodyDecoder, Endpoint};
use crate::sse::{self, envelope_head, Event};
use crate::stamp::Reader;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the bench started: the one clock for every timestamp.
pub fn now_us() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// A count that tasks raise and a scenario waits on.
#[derive(Debug, Default)]
pub struct Counter(AtomicUsize);

impl Counter {
    pub fn add(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Waits until the count reaches `target` for as long as it keeps
    /// rising: gives up once it has not moved for `stall`, or after
    /// `overall` whatever it does. On giving up, says how far it got.
    pub async fn wait_progressing(
        &self,
        target: usize,
        stall: Duration,
        overall: Duration,
    ) -> Result<(), Stalled> {
        let started = Instant::now();
        let mut last = self.get();
        let mut moved = started;
        while self.get() < target {
            let now = Instant::now();
            let got = self.get();
            if got != last {
                last = got;
                moved = now;
            }
            if now - moved >= stall || now - started >= overall {
                return Err(Stalled {
                    got,
                    idle: now - moved,
                    waited: now - started,
                });
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Waits until the count reaches `target`; false on timeout.
    pub async fn wait(&self, target: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.get() < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        true
    }
}

/// How far a [`Counter::wait_progressing`] got before it gave up.
#[derive(Debug, Clone, Copy)]
pub struct Stalled {
    pub got: usize,
    /// How long the count had not moved.
    pub idle: Duration,
    pub waited: Duration,
}

/// What one stream connects to and expects.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub endpoint: Endpoint,
    pub source: Option<IpAddr>,
    /// `/v1/stream?topics=…`
    pub path: String,
    pub topics: Vec<String>,
    /// `Bearer …`
    pub authorization: Arc<str>,
    /// Events expected (`n` in `0..expected` each exactly once when `dense`).
    pub expected: usize,
    pub dense: bool,
    pub last_event_id: Option<Vec<u8>>,
    /// Record the arrival time of each `n` (dense only).
    pub record_times: bool,
    /// Keep every `(seq, n)` in arrival order.
    pub collect: bool,
    pub read_buffer: usize,
    /// How the system's ids and envelopes read.
    pub contract: Contract,
    /// Raised for every new event: how far a stream with no fixed
    /// `expected` (a live check) has got.
    pub progress: Option<Arc<Counter>>,
    /// Close with a reset (`SO_LINGER` 0) rather than a FIN, leaving no
    /// socket in TIME_WAIT: the scale-out scenario closes tens of thousands
    /// at once, and while they linger (60 s) binding a port for a new
    /// connection crawls (60,000 streams took 40-65 s to open, 18 s without).
    pub reset_on_close: bool,
}

/// Everything one stream saw.
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    pub expected: usize,
    pub unique: usize,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub resets: u64,
    pub wrong_topic: u64,
    pub bad_envelope: u64,
    pub unexpected: u64,
    pub reconnects: u64,
    /// The stream could not be opened (or reopened) at all.
    pub failed: Option<String>,
    /// A hash of the `(seq, n)` sequence: streams with the same topics must agree.
    pub fingerprint: u64,
    pub last_seq: Option<i64>,
    pub opened_us: Option<u64>,
    pub completed_us: Option<u64>,
    /// Per `n`: when the frame arrived (the kernel's stamp on timed streams).
    pub recv_us: Vec<u64>,
    /// Per `n`: when the stream's task read it.
    pub read_us: Vec<u64>,
    pub collected: Vec<(i64, i64)>,
    pub first_problem: Option<String>,
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// When a read's bytes arrived, and when they were read.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    arrived: u64,
    read: u64,
}

struct Checker {
    spec_topics: Vec<Vec<u8>>,
    contract: Contract,
    progress: Option<Arc<Counter>>,
    dense: bool,
    record_times: bool,
    collect: bool,
    seen: Vec<bool>,
    report: StreamReport,
    done: Arc<Counter>,
}

impl Checker {
    fn problem(&mut self, what: impl FnOnce() -> String) {
        if self.report.first_problem.is_none() {
            self.report.first_problem = Some(what());
        }
    }

    fn on_event(&mut self, ev: Event<'_>, at: Arrival) {
        match ev.event {
            b"bench.ev" => self.on_bench_event(ev, at),
            // A gateway shutting down says so before it ends the stream: not an error.
            b"herald.reconnect" => {}
            b"herald.reset" => {
                self.report.resets += 1;
                let data = String::from_utf8_lossy(ev.data).into_owned();
                self.problem(|| format!("herald.reset {data}"));
            }
            other => {
                self.report.unexpected += 1;
                let name = String::from_utf8_lossy(other).into_owned();
                self.problem(|| format!("unexpected event type `{name}`"));
            }
        }
    }

    fn on_bench_event(&mut self, ev: Event<'_>, at: Arrival) {
        let (Some(id), Some(head)) = (self.contract.event_key(ev.id), envelope_head(ev.data)) else {
            self.report.bad_envelope += 1;
            let data = String::from_utf8_lossy(&ev.data[..ev.data.len().min(200)]).into_owned();
            self.problem(|| format!("unreadable event: {data}"));
            return;
        };
        if self.contract.has_seq() && head.seq != Some(id) {
            self.report.bad_envelope += 1;
            self.problem(|| format!("id {id} but envelope seq {:?}", head.seq));
        }
        if !self.spec_topics.iter().any(|t| t.as_slice() == head.topic) {
            self.report.wrong_topic += 1;
            let topic = String::from_utf8_lossy(head.topic).into_owned();
            self.problem(|| format!("event of topic `{topic}` on a stream not carrying it"));
            return;
        }
        let n = head.n;
        let already =
            self.dense && usize::try_from(n).ok().and_then(|i| self.seen.get(i).copied()) == Some(true);
        if let Some(last) = self.report.last_seq {
            if id <= last {
                if already || id == last {
                    self.report.duplicates += 1;
                    self.problem(|| format!("duplicate: id {id} (n {n}) after {last}"));
                } else {
                    self.report.out_of_order += 1;
                    self.problem(|| format!("out of order: id {id} after {last}"));
                }
                return;
            }
        }
        self.report.last_seq = Some(id);
        if self.dense {
            let Some(i) = usize::try_from(n).ok().filter(|i| *i < self.seen.len()) else {
                self.report.unexpected += 1;
                let len = self.seen.len();
                self.problem(|| format!("n {n} outside 0..{len}"));
                return;
            };
            if already {
                self.report.duplicates += 1;
                self.problem(|| format!("duplicate: n {n} again, as id {id}"));
                return;
            }
            self.seen[i] = true;
            if self.record_times {
                self.report.recv_us[i] = at.arrived;
                self.report.read_us[i] = at.read;
            }
        }
        if self.collect {
            self.report.collected.push((id, n));
        }
        self.report.unique += 1;
        if let Some(p) = &self.progress {
            p.add();
        }
        self.report.fingerprint = ((self.report.fingerprint ^ id as u64).wrapping_mul(FNV_PRIME) ^ n as u64)
            .wrapping_mul(FNV_PRIME);
        if self.report.unique == self.report.expected {
            self.report.completed_us = Some(at.read);
            self.done.add();
        }
    }
}

/// Shared by the streams of one group.
#[derive(Clone)]
pub struct Control {
    pub ready: Arc<Counter>,
    pub done: Arc<Counter>,
    stop: watch::Receiver<bool>,
    /// Bounds concurrent connection attempts (a SYN flood tests nothing).
    gate: Option<Arc<Semaphore>>,
    /// When set, every stream waits for it before connecting (the storm).
    start: Option<watch::Receiver<bool>>,
}

async fn run(spec: StreamSpec, mut ctl: Control) -> StreamReport {
    let mut checker = Checker {
        spec_topics: spec.topics.iter().map(|t| t.as_bytes().to_vec()).collect(),
        contract: spec.contract,
        progress: spec.progress.clone(),
        dense: spec.dense,
        record_times: spec.record_times && spec.dense,
        collect: spec.collect,
        seen: if spec.dense {
            vec![false; spec.expected]
        } else {
            Vec::new()
        },
        report: StreamReport {
            expected: spec.expected,
            fingerprint: FNV_OFFSET,
            recv_us: if spec.record_times && spec.dense {
                vec![u64::MAX; spec.expected]
            } else {
                Vec::new()
            },
            read_us: if spec.record_times && spec.dense {
                vec![u64::MAX; spec.expected]
            } else {
                Vec::new()
            },
            ..StreamReport::default()
        },
        done: ctl.done.clone(),
    };
    if let Some(start) = ctl.start.as_mut() {
        while !*start.borrow_and_update() {
            if start.changed().await.is_err() {
                break;
            }
        }
    }
    // Made once per stream, not per read: a fresh `changed()` each time
    // registers and removes a waiter on the one list every stream shares.
    let mut stop = ctl.stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    let mut parser = sse::Parser::new();
    let mut buf = vec![0u8; spec.read_buffer.max(1024)];
    let mut attempts = 0u32;
    let mut opened = false;
    loop {
        if *ctl.stop.borrow() {
            break;
        }
        let position: Option<Vec<u8>> = if parser.last_event_id().is_empty() {
            spec.last_event_id.clone()
        } else {
            Some(parser.last_event_id().to_vec())
        };
        let permit = match &ctl.gate {
            Some(g) => g.clone().acquire_owned().await.ok(),
            None => None,
        };
        let opened_result = http::open_stream(
            &spec.endpoint,
            spec.source,
            &spec.path,
            &spec.authorization,
            position.as_deref(),
            Duration::from_secs(30),
        )
        .await;
        drop(permit);
        let (conn, head, rest) = match opened_result {
            Ok((_, head, rest)) if head.status != 200 => {
                let body = String::from_utf8_lossy(&rest[..rest.len().min(300)]).into_owned();
                attempts += 1;
                // 429/503 are the servers' limits saying "later": honour them a few times.
                if matches!(head.status, 429 | 503) && attempts < 20 {
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts))).await;
                    continue;
                }
                checker.report.failed = Some(format!("HTTP {}: {body}", head.status));
                break;
            }
            Ok(ok) => ok,
            Err(e) => {
                attempts += 1;
                if attempts < 20 && !*ctl.stop.borrow() {
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempts))).await;
                    continue;
                }
                checker.report.failed = Some(format!("connect: {e}"));
                break;
            }
        };
        attempts = 0;
        if spec.reset_on_close {
            // A zero linger does not block the drop (the reason tokio
            // deprecates it): close sends the reset at once.
            #[allow(deprecated)]
            let _ = conn.set_linger(Some(Duration::ZERO));
        }
        if opened {
            checker.report.reconnects += 1;
        } else {
            opened = true;
            checker.report.opened_us = Some(now_us());
            ctl.ready.add();
        }
        // Timed streams take the kernel's arrival stamps (see `stamp`).
        let mut conn = match Reader::new(conn, checker.record_times) {
            Ok(c) => c,
            Err(e) => {
                checker.report.failed = Some(format!("socket: {e}"));
                break;
            }
        };
        let mut decoder = BodyDecoder::new(head.framing);
        let mut broken = false;
        let mut feed = |bytes: &[u8], arrived: u64, decoder: &mut BodyDecoder, checker: &mut Checker| {
            let at = Arrival {
                arrived,
                read: now_us(),
            };
            let res = decoder.feed(bytes, &mut |body| {
                parser.feed(body, &mut |ev| checker.on_event(ev, at));
            });
            res.is_err() || decoder.done()
        };
        if !rest.is_empty() && feed(&rest, now_us(), &mut decoder, &mut checker) {
            broken = true;
        }
        while !broken {
            tokio::select! {
                biased;
                r = conn.read(&mut buf) => match r {
                    Ok((0, _)) | Err(_) => broken = true,
                    Ok((n, at)) => broken = feed(&buf[..n], at, &mut decoder, &mut checker),
                },
                _ = &mut stopped => return checker.report,
            }
        }
        // The server ended the stream (slow consumer, shutdown, a proxy):
        // reconnect with Last-Event-ID, like EventSource.
    }
    checker.report
}

/// A set of streams started together.
pub struct Group {
    handles: Vec<JoinHandle<StreamReport>>,
    pub ready: Arc<Counter>,
    pub done: Arc<Counter>,
    stop: watch::Sender<bool>,
    start: Option<watch::Sender<bool>>,
    len: usize,
}

impl Group {
    /// Spawns one task per spec. With `gated_start`, nobody connects until
    /// [`Group::release`]; `max_connecting` bounds concurrent connects.
    pub fn spawn(specs: Vec<StreamSpec>, max_connecting: Option<usize>, gated_start: bool) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (start, start_rx) = if gated_start {
            let (tx, rx) = watch::channel(false);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let ctl = Control {
            ready: Arc::new(Counter::default()),
            done: Arc::new(Counter::default()),
            stop: stop_rx,
            gate: max_connecting.map(|n| Arc::new(Semaphore::new(n))),
            start: start_rx,
        };
        let len = specs.len();
        let handles = specs
            .into_iter()
            .map(|s| tokio::spawn(run(s, ctl.clone())))
            .collect();
        Self {
            handles,
            ready: ctl.ready,
            done: ctl.done,
            stop,
            start,
            len,
        }
    }

    /// Lets a gated group connect; returns the instant (µs) of release.
    pub fn release(&mut self) -> u64 {
        let t = now_us();
        if let Some(s) = &self.start {
            let _ = s.send(true);
        }
        t
    }

    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        self.ready.wait(self.len, timeout).await
    }

    pub async fn wait_done(&self, timeout: Duration) -> bool {
        self.done.wait(self.len, timeout).await
    }

    /// Closes every stream and returns what each saw.
    pub async fn finish(self) -> Vec<StreamReport> {
        let _ = self.stop.send(true);
        if let Some(s) = &self.start {
            let _ = s.send(true);
        }
        let mut out = Vec::with_capacity(self.handles.len());
        for h in self.handles {
            out.push(h.await.unwrap_or_else(|e| StreamReport {
                failed: Some(format!("task: {e}")),
                ..StreamReport::default()
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(expected: usize) -> Checker {
        checker_for(Contract::Herald, expected)
    }

    fn checker_for(contract: Contract, expected: usize) -> Checker {
        Checker {
            spec_topics: vec![b"bench:a".to_vec()],
            contract,
            progress: None,
            dense: true,
            record_times: false,
            collect: false,
            seen: vec![false; expected],
            report: StreamReport {
                expected,
                fingerprint: FNV_OFFSET,
                ..StreamReport::default()
            },
            done: Arc::new(Counter::default()),
        }
    }

    fn feed(c: &mut Checker, frames: &str) {
        let mut p = sse::Parser::new();
        p.feed(frames.as_bytes(), &mut |ev| {
            c.on_event(ev, Arrival { arrived: 1, read: 1 })
        });
    }

    fn ev(seq: i64, n: i64, topic: &str) -> String {
        format!(
            "id: {seq}\nevent: bench.ev\ndata: {{\"id\":\"x\",\"seq\":{seq},\"topic\":\"{topic}\",\"type\":\"bench.ev\",\"data\":{{\"n\":{n}}}}}\n\n"
        )
    }

    #[tokio::test]
    async fn a_wait_gives_up_when_the_count_stops_rising() {
        let c = Arc::new(Counter::default());
        let feeder = {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    c.add();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let r = c
            .wait_progressing(10, Duration::from_millis(300), Duration::from_secs(600))
            .await;
        let stalled = r.expect_err("5 of 10 never completes");
        assert_eq!(stalled.got, 5);
        assert!(stalled.idle >= Duration::from_millis(300), "{stalled:?}");
        assert!(stalled.waited < Duration::from_secs(10), "{stalled:?}");
        feeder.await.ok();
        assert!(c
            .wait_progressing(5, Duration::from_millis(300), Duration::from_secs(600))
            .await
            .is_ok());
    }

    #[test]
    fn an_exact_stream_completes_once() {
        let mut c = checker(2);
        feed(
            &mut c,
            &format!(
                "retry: 2000\n\nid: 4\n\n{}{}",
                ev(5, 0, "bench:a"),
                ev(9, 1, "bench:a")
            ),
        );
        assert_eq!(c.report.unique, 2);
        assert_eq!(c.report.completed_us, Some(1));
        assert_eq!(c.done.get(), 1);
        assert!(c.report.first_problem.is_none());
    }

    #[test]
    fn every_violation_is_counted() {
        let mut c = checker(3);
        let frames = [
            ev(5, 0, "bench:a"),
            ev(5, 0, "bench:a"), // duplicate
            ev(7, 2, "bench:a"),
            ev(6, 1, "bench:a"), // out of order
            ev(8, 1, "bench:b"), // wrong topic
            ev(9, 7, "bench:a"), // n out of range
            "id: 10\nevent: bench.ev\ndata: {\"seq\":11,\"topic\":\"bench:a\",\"data\":{\"n\":1}}\n\n".into(), // id ≠ seq
            "id: 12\nevent: herald.reset\ndata: {\"reason\":\"future\"}\n\n".into(),
        ]
        .concat();
        feed(&mut c, &frames);
        let r = &c.report;
        assert_eq!(r.duplicates, 1, "{r:?}");
        assert_eq!(r.out_of_order, 1, "{r:?}");
        assert_eq!(r.wrong_topic, 1, "{r:?}");
        assert_eq!(r.unexpected, 1, "{r:?}");
        assert_eq!(r.bad_envelope, 1, "{r:?}");
        assert_eq!(r.resets, 1, "{r:?}");
        assert_eq!(r.unique, 3, "{r:?}");
    }

    #[test]
    fn nchan_ids_and_bodies_are_checked_alike() {
        // What Nchan's EventSource subscriber writes: its `hi` comment, then
        // the published bodies with ids of its own form.
        let frame = |id: &str, n: i64, topic: &str| {
            format!(
                "event: bench.ev\nid: {id}\ndata: {{\"topic\":\"{topic}\",\"type\":\"bench.ev\",\"data\":{{\"n\":{n}}}}}\n\n"
            )
        };
        let progress = Arc::new(Counter::default());
        let mut c = checker_for(Contract::Nchan, 3);
        c.progress = Some(progress.clone());
        let frames = [
            ": hi\n\n".to_owned(),
            frame("1796175359:0", 0, "bench:a"),
            frame("1796175359:1", 1, "bench:a"),
            frame("1796175359:1", 1, "bench:a"), // duplicate
            frame("1796175358:7", 2, "bench:a"), // an earlier second: out of order
            frame("1796175360:0", 2, "bench:a"),
        ]
        .concat();
        feed(&mut c, &frames);
        let r = &c.report;
        assert_eq!(
            (r.unique, r.duplicates, r.out_of_order, r.bad_envelope),
            (3, 1, 1, 0),
            "{r:?}"
        );
        assert_eq!(progress.get(), 3);
        assert_eq!(c.done.get(), 1);
        // Herald's checks still insist on `id` = `seq`.
        let mut h = checker(1);
        feed(&mut h, &frame("5", 0, "bench:a"));
        assert_eq!(h.report.bad_envelope, 1, "{:?}", h.report);
    }
}
