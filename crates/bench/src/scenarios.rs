//! The scenarios. Each runs against one system and returns its metrics and a
//! correctness verdict; `main` runs each for Herald, then the Node.js
//! baseline, then nginx + Nchan. A [`Target`] is one system: where it takes
//! publishes and streams, which contract it speaks, which processes are its.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::check::{percentile, Verdict};
use crate::contract::Contract;
use crate::http::{Endpoint, KeepAlive};
use crate::nchan;
use crate::procfs::{self, Probe, Sample};
use crate::publish::{self, body, Publisher};
use crate::stamp;
use crate::stream::{now_us, Counter, Group, StreamReport, StreamSpec};

/// One system under test.
pub struct Target {
    /// `herald`, `baseline` or `nchan` (JSON keys).
    pub name: &'static str,
    /// Herald's API (Herald, the Node.js baseline) or Nchan's.
    pub contract: Contract,
    pub publisher: Publisher,
    pub stream: Endpoint,
    /// `Bearer …` of a reader of `bench:*`.
    pub reader: Arc<str>,
    pub probe: Probe,
    /// The processes holding the streams (`gateway`, `node`, `nginx`).
    pub stream_process: &'static str,
    pub sources: Arc<Vec<IpAddr>>,
    /// Bound on concurrent connection attempts while opening streams.
    pub max_connecting: usize,
    /// Scales every timeout (debug builds in the smoke run are slower).
    pub timeout_scale: u32,
    /// The server's error log, quoted when a check fails (nginx's, where
    /// Nchan says when it skipped messages for a subscriber).
    pub error_log: Option<std::path::PathBuf>,
}

/// The metrics and verdict of one scenario on one system.
#[derive(Debug, Default)]
pub struct Run {
    pub metrics: Map<String, Value>,
    pub verdict: Verdict,
}

impl Run {
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.get(key).and_then(Value::as_f64)
    }

    fn set(&mut self, key: &str, v: impl Into<Value>) {
        self.metrics.insert(key.to_owned(), v.into());
    }

    fn failed(reason: String) -> Self {
        let mut r = Run::default();
        r.verdict.problem(reason);
        r
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A topic key nobody used before in this run.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

impl Target {
    fn timeout(&self, secs: u64) -> Duration {
        Duration::from_secs(secs * u64::from(self.timeout_scale.max(1)))
    }

    fn spec(&self, i: usize, topics: &[String], expected: usize) -> StreamSpec {
        StreamSpec {
            endpoint: self.stream.clone(),
            source: (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()]),
            path: format!("/v1/stream?topics={}", topics.join(",")),
            topics: topics.to_vec(),
            authorization: self.reader.clone(),
            expected,
            dense: true,
            last_event_id: None,
            record_times: false,
            collect: false,
            read_buffer: 16 * 1024,
            contract: self.contract,
            progress: None,
            reset_on_close: false,
        }
    }

    fn cpu(&self, a: &Sample, b: &Sample) -> BTreeMap<String, f64> {
        self.probe.cpu_seconds(a, b)
    }

    /// CPU seconds of the system's own server processes.
    fn server_cpu(&self, cpu: &BTreeMap<String, f64>) -> f64 {
        self.probe
            .server_labels()
            .iter()
            .map(|label| cpu.get(*label).copied().unwrap_or(0.0))
            .sum()
    }

    fn stream_rss(&self) -> u64 {
        self.probe.rss_of(self.stream_process).unwrap_or(0)
    }

    /// Publishes one event on a fresh topic and waits until a stream gets it:
    /// everything accepted before is then sequenced and published. Returns its
    /// `seq`, a position every stream can resume from.
    pub async fn barrier(&self) -> Result<i64, String> {
        let topic = format!("bench:{}", unique("barrier"));
        let group = Group::spawn(vec![self.spec(0, std::slice::from_ref(&topic), 1)], None, false);
        if !group.wait_ready(self.timeout(30)).await {
            let r = group.finish().await;
            return Err(format!(
                "barrier stream did not open: {:?}",
                r.first().and_then(|r| r.failed.clone())
            ));
        }
        let out = self
            .publisher
            .all(Arc::new(vec![body(&topic, 0, "")]), 1, None, false)
            .await;
        if out.accepted != 1 {
            group.finish().await;
            return Err(format!("barrier publish failed: {:?}", out.first_error));
        }
        // Generous: after a batch phase the worker may have ~400,000 events to
        // sequence first (45.9 s on a saturated machine in one full run, and
        // more than 60 s, the old bound, in the next).
        let arrived = group.wait_done(self.timeout(300)).await;
        let reports = group.finish().await;
        match reports.first().and_then(|r| r.last_seq) {
            Some(seq) if arrived => Ok(seq),
            _ => Err("barrier event never arrived".into()),
        }
    }

    /// Where a client of each topic resumes from to get everything published
    /// from now on: after a [`Target::barrier`], its `seq` for every topic
    /// on Herald's contract; each channel's last id on Nchan's (see [`nchan`]).
    pub async fn positions(&self, topics: &[String]) -> Result<Vec<Vec<u8>>, String> {
        let seq = self.barrier().await?;
        match self.contract {
            Contract::Herald => Ok(vec![seq.to_string().into_bytes(); topics.len()]),
            Contract::Nchan => {
                let mut conn = KeepAlive::new(self.publisher.endpoint.clone(), None);
                let mut out = Vec::with_capacity(topics.len());
                for topic in topics {
                    out.push(
                        nchan::last_id(&mut conn, topic)
                            .await
                            .map_err(|e| format!("position of {topic}: {e}"))?,
                    );
                }
                Ok(out)
            }
        }
    }
}

fn cpu_json(cpu: &BTreeMap<String, f64>) -> Value {
    Value::Object(
        cpu.iter()
            .map(|(k, v)| (k.clone(), json!(round(*v, 3))))
            .collect(),
    )
}

fn stats_ms(mut v: Vec<f64>) -> Value {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return json!(null);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({
        "count": v.len(),
        "p50": round(percentile(&v, 0.50), 3),
        "p90": round(percentile(&v, 0.90), 3),
        "p99": round(percentile(&v, 0.99), 3),
        "p999": round(percentile(&v, 0.999), 3),
        "max": round(v[v.len() - 1], 3),
        "min": round(v[0], 3),
        "mean": round(mean, 3),
    })
}

// ------------------------------------------------------------------ fan-out --

/// One topic set, many streams, events published as fast as accepted (or paced).
#[derive(Debug, Clone)]
pub struct Fanout {
    pub streams: usize,
    pub events: usize,
    pub topics_per_stream: usize,
    /// Bytes of padding in each event's `data`.
    pub pad: usize,
    pub publishers: usize,
    /// Pace publishing at one event per interval (the latency scenario).
    pub interval: Option<Duration>,
    pub record_latency: bool,
}

pub async fn fanout(t: &Target, p: &Fanout) -> Run {
    let base = unique("fan");
    let k = p.topics_per_stream.max(1);
    let topics: Vec<String> = (0..k).map(|j| format!("bench:{base}-{j}")).collect();
    let mut specs: Vec<StreamSpec> = (0..p.streams).map(|i| t.spec(i, &topics, p.events)).collect();
    for s in &mut specs {
        s.record_times = p.record_latency;
        if p.pad >= 4096 {
            s.read_buffer = 64 * 1024;
        }
    }
    let mut run = Run::default();
    let rss0 = t.stream_rss();
    let open0 = t.probe.sample();
    let tcp0 = procfs::tcp_counters();
    let opened_at = now_us();
    let group = Group::spawn(specs, Some(t.max_connecting), false);
    if !group.wait_ready(t.timeout(120)).await {
        let ready = group.ready.get();
        let reports = group.finish().await;
        run.verdict.streams(&reports);
        run.verdict
            .problem(format!("only {ready} of {} streams opened", p.streams));
        return run;
    }
    let open_s = ms(now_us() - opened_at) / 1000.0;
    let open1 = t.probe.sample();
    let open_cpu = t.cpu(&open0, &open1);
    let rss1 = t.stream_rss();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pad = "x".repeat(p.pad);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..p.events)
            .map(|i| body(&topics[i % k], i as i64, &pad))
            .collect(),
    );
    let s0 = t.probe.sample();
    let tcp1 = procfs::tcp_counters();
    let out = t
        .publisher
        .all(bodies.clone(), p.publishers, p.interval, p.record_latency)
        .await;
    let all_done = group.wait_done(t.timeout(180)).await;
    let s1 = t.probe.sample();
    let tcp2 = procfs::tcp_counters();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reports = group.finish().await;
    run.verdict.streams(&reports);
    run.verdict.same_order(&reports);
    run.verdict.publishing(&out);
    if !all_done {
        run.verdict
            .problem("timed out waiting for every stream to receive every event");
    }

    let cpu = t.cpu(&s0, &s1);
    let server_cpu = t.server_cpu(&cpu);
    let deliveries: u64 = reports.iter().map(|r| r.unique as u64).sum();
    let last = reports
        .iter()
        .filter_map(|r| r.completed_us)
        .max()
        .unwrap_or(out.finished_us);
    let wall_s = ms(last.saturating_sub(out.started_us)) / 1000.0;
    run.set("streams", p.streams);
    run.set("events", p.events);
    run.set("topics_per_stream", k);
    // The serialized `data` of the largest `n`, as `publish::body` writes it.
    let last_n = p.events.saturating_sub(1);
    let data_bytes = if pad.is_empty() {
        format!(r#"{{"n":{last_n}}}"#).len()
    } else {
        format!(r#"{{"n":{last_n},"pad":"{pad}"}}"#).len()
    };
    run.set("data_bytes", data_bytes);
    run.set("publishers", p.publishers);
    run.set("deliveries", deliveries);
    run.set("wall_s", round(wall_s, 3));
    run.set("deliveries_per_s", round(deliveries as f64 / wall_s.max(1e-9), 0));
    run.set("publish_s", round(out.elapsed().as_secs_f64(), 3));
    run.set(
        "accepted_per_s",
        round(out.accepted as f64 / out.elapsed().as_secs_f64().max(1e-9), 0),
    );
    run.set("cpu_s", cpu_json(&cpu));
    run.set("server_cpu_s", round(server_cpu, 3));
    run.set(
        "deliveries_per_server_cpu_s",
        round(deliveries as f64 / server_cpu.max(1e-9), 0),
    );
    run.set(
        "server_cpu_us_per_delivery",
        round(server_cpu * 1e6 / (deliveries.max(1)) as f64, 3),
    );
    run.set("open_s", round(open_s, 3));
    run.set("open_cpu_s", cpu_json(&open_cpu));
    run.set(
        "rss_growth_per_stream_kib",
        round(rss1.saturating_sub(rss0) as f64 / p.streams.max(1) as f64, 2),
    );
    run.set("stream_process_rss_kib", t.stream_rss());
    run.set("reconnects", run.verdict.reconnects);
    run.set("tcp_while_opening", procfs::delta(&tcp0, &tcp1));
    run.set("tcp", procfs::delta(&tcp1, &tcp2));

    if let Some(step) = p.interval {
        run.set("offered_per_s", round(1.0 / step.as_secs_f64(), 1));
    }
    if p.record_latency {
        latency_metrics(&mut run, &reports, &out);
        if let Ok(path) = std::env::var("HERALD_BENCH_EVENTS_CSV") {
            if let Err(e) = dump_events(&path, &topics[0], &reports, &out) {
                run.verdict.problem(format!("writing {path}: {e}"));
            }
        }
    }
    run
}

/// Per event of a latency run, for scripts/profile-latency: its `n`, when
/// the POST was sent, when its `202` arrived, and when its frames arrived
/// (first, median and last over the streams), in Unix microseconds (the
/// clock the servers log and Postgres stamps with).
fn dump_events(
    path: &str,
    topic: &str,
    reports: &[StreamReport],
    out: &publish::Outcome,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        f,
        "topic,n,sent_us,accepted_us,first_frame_us,median_frame_us,last_frame_us"
    )?;
    let unix = |us: u64| {
        if us == u64::MAX {
            String::new()
        } else {
            stamp::unix_us(us).to_string()
        }
    };
    for (i, accepted) in out.accepted_us.iter().enumerate() {
        let mut arrived: Vec<u64> = reports
            .iter()
            .filter_map(|r| r.recv_us.get(i).copied())
            .filter(|a| *a != u64::MAX)
            .collect();
        arrived.sort_unstable();
        let at = |k: usize| arrived.get(k).copied().unwrap_or(u64::MAX);
        writeln!(
            f,
            "{topic},{i},{},{},{},{},{}",
            unix(out.sent_us.get(i).copied().unwrap_or(u64::MAX)),
            unix(*accepted),
            unix(at(0)),
            unix(at(arrived.len() / 2)),
            unix(arrived.last().copied().unwrap_or(u64::MAX)),
        )?;
    }
    f.flush()
}

fn latency_metrics(run: &mut Run, reports: &[StreamReport], out: &publish::Outcome) {
    let accepted = &out.accepted_us;
    let accepted_read = &out.accepted_read_us;
    let sent = &out.sent_us;
    let mut from_accept = Vec::new();
    let mut from_accept_read = Vec::new();
    let mut from_send = Vec::new();
    let mut early = 0u64;
    for r in reports {
        for (i, (arrived, read)) in r.recv_us.iter().zip(&r.read_us).enumerate() {
            if *arrived == u64::MAX || accepted.get(i).is_none_or(|a| *a == u64::MAX) {
                continue;
            }
            // The frame can beat the publisher's answer (the baseline
            // publishes to Redis before answering): that is 0 ms.
            if *arrived < accepted[i] {
                early += 1;
            }
            from_accept.push(ms(arrived.saturating_sub(accepted[i])));
            from_accept_read.push(ms(read.saturating_sub(accepted_read[i])));
            from_send.push(ms(read.saturating_sub(sent[i])));
        }
    }
    // Per event, its first frame: the pipeline's share, before the fan-out;
    // and its last: first → last is the fan-out itself (the server writing
    // one event to every stream), which needs no stamp from the publisher.
    let mut first = vec![u64::MAX; accepted.len()];
    let mut last = vec![0u64; accepted.len()];
    for r in reports {
        for (i, arrived) in r.recv_us.iter().enumerate() {
            if *arrived == u64::MAX {
                continue;
            }
            if let (Some(f), Some(l)) = (first.get_mut(i), last.get_mut(i)) {
                *f = (*f).min(*arrived);
                *l = (*l).max(*arrived);
            }
        }
    }
    let spread_ms: Vec<f64> = first
        .iter()
        .zip(&last)
        .filter(|(f, _)| **f != u64::MAX)
        .map(|(f, l)| ms(l.saturating_sub(*f)))
        .collect();
    run.set("latency_spread_ms", stats_ms(spread_ms));
    let first_ms: Vec<f64> = first
        .iter()
        .zip(accepted)
        .filter(|(f, a)| **f != u64::MAX && **a != u64::MAX)
        .map(|(f, a)| ms(f.saturating_sub(*a)))
        .collect();
    run.set("latency_first_frame_ms", stats_ms(first_ms));
    run.set("latency_accepted_ms", stats_ms(from_accept));
    run.set("latency_accepted_read_ms", stats_ms(from_accept_read));
    run.set("latency_sent_ms", stats_ms(from_send));
    run.set("frames_before_answer", early);
    let post_ms: Vec<f64> = sent
        .iter()
        .zip(accepted_read)
        .filter(|(_, a)| **a != u64::MAX)
        .map(|(s, a)| ms(a.saturating_sub(*s)))
        .collect();
    run.set("publish_answer_ms", stats_ms(post_ms));
}

// --------------------------------------------------------------------- idle --

/// `streams` idle streams, each on its own topic (like `user:<id>`), or all on
/// one topic with `shared` (which separates the per-topic cost from the
/// per-connection one).
pub async fn idle(t: &Target, streams: usize, settle: Duration, publishers: usize, shared: bool) -> Run {
    let base = unique("idle");
    let topic_count = if shared { 1 } else { streams };
    let topics: Vec<String> = (0..topic_count).map(|i| format!("bench:{base}-{i}")).collect();
    let specs: Vec<StreamSpec> = (0..streams)
        .map(|i| {
            let mut s = t.spec(i, std::slice::from_ref(&topics[i % topic_count]), 1);
            s.read_buffer = 2048;
            s
        })
        .collect();
    let mut run = Run::default();
    let rss0 = t.stream_rss();
    let servers0 = t.probe.servers_rss_kib();
    let s0 = t.probe.sample();
    let tcp0 = procfs::tcp_counters();
    let started = now_us();
    let group = Group::spawn(specs, Some(t.max_connecting), false);
    if !group.wait_ready(t.timeout(300)).await {
        let ready = group.ready.get();
        let reports = group.finish().await;
        run.verdict.streams(&reports);
        run.verdict
            .problem(format!("only {ready} of {streams} streams opened"));
        return run;
    }
    let open_s = ms(now_us() - started) / 1000.0;
    let s1 = t.probe.sample();
    run.set("tcp_while_opening", procfs::delta(&tcp0, &procfs::tcp_counters()));
    tokio::time::sleep(settle).await;
    let s2 = t.probe.sample();
    let rss1 = t.stream_rss();
    let servers1 = t.probe.servers_rss_kib();

    // Every stream must still be there and get exactly its one event.
    let bodies = Arc::new(topics.iter().map(|topic| body(topic, 0, "")).collect::<Vec<_>>());
    let out = t.publisher.all(bodies, publishers, None, false).await;
    let all_done = group.wait_done(t.timeout(120)).await;
    let rss2 = t.stream_rss();
    let reports = group.finish().await;
    run.verdict.streams(&reports);
    run.verdict.publishing(&out);
    if !all_done {
        run.verdict
            .problem("timed out waiting for the one event of every stream");
    }
    let open_cpu = t.cpu(&s0, &s1);
    let idle_cpu = t.cpu(&s1, &s2);
    run.set("streams", streams);
    run.set("topics", topic_count);
    run.set("rss_before_kib", rss0);
    run.set("rss_open_kib", rss1);
    run.set("rss_after_traffic_kib", rss2);
    run.set(
        "rss_per_stream_kib",
        round(rss1.saturating_sub(rss0) as f64 / streams.max(1) as f64, 2),
    );
    run.set(
        "all_servers_rss_per_stream_kib",
        round(
            servers1.saturating_sub(servers0) as f64 / streams.max(1) as f64,
            2,
        ),
    );
    run.set("open_s", round(open_s, 3));
    run.set("opens_per_s", round(streams as f64 / open_s.max(1e-9), 0));
    run.set("open_cpu_s", cpu_json(&open_cpu));
    run.set(
        "server_cpu_us_per_open",
        round(t.server_cpu(&open_cpu) * 1e6 / streams.max(1) as f64, 1),
    );
    run.set("idle_cpu_s", cpu_json(&idle_cpu));
    run.set("idle_window_s", settle.as_secs_f64());
    run.set("reconnects", run.verdict.reconnects);
    run
}

// ------------------------------------------------------------------- replay --

pub async fn replay(t: &Target, reps: usize, missed: usize, publishers: usize) -> Run {
    let mut run = Run::default();
    let mut times = Vec::new();
    let mut first_frame = Vec::new();
    let mut cpu_total: BTreeMap<String, f64> = BTreeMap::new();
    for rep in 0..reps {
        let topic = format!("bench:{}", unique("replay"));
        let topics = std::slice::from_ref(&topic);
        // Connected once, so the reconnect is a real one.
        let before = Group::spawn(vec![t.spec(0, topics, 0)], None, false);
        if !before.wait_ready(t.timeout(30)).await {
            before.finish().await;
            run.verdict
                .problem(format!("rep {rep}: the first stream did not open"));
            continue;
        }
        let position = match t.positions(topics).await {
            Ok(mut p) => p.remove(0),
            Err(e) => {
                before.finish().await;
                run.verdict.problem(format!("rep {rep}: {e}"));
                continue;
            }
        };
        run.verdict.streams(&before.finish().await);
        let bodies = Arc::new(
            (0..missed)
                .map(|n| body(&topic, n as i64, ""))
                .collect::<Vec<_>>(),
        );
        let out = t.publisher.all(bodies, publishers, None, false).await;
        run.verdict.publishing(&out);
        if let Err(e) = t.barrier().await {
            run.verdict.problem(format!("rep {rep}: {e}"));
            continue;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut spec = t.spec(rep, topics, missed);
        spec.last_event_id = Some(position);
        let s0 = t.probe.sample();
        let t0 = now_us();
        let group = Group::spawn(vec![spec], None, false);
        group.wait_done(t.timeout(30)).await;
        let s1 = t.probe.sample();
        let reports = group.finish().await;
        for (k, v) in t.cpu(&s0, &s1) {
            *cpu_total.entry(k).or_default() += v;
        }
        if let Some(r) = reports.first() {
            if let Some(done) = r.completed_us {
                times.push(ms(done - t0));
            }
            if let Some(open) = r.opened_us {
                first_frame.push(ms(open - t0));
            }
        }
        run.verdict.streams(&reports);
    }
    let stats = stats_ms(times);
    run.set("reps", reps);
    run.set("missed_events", missed);
    run.set("p50_ms", stats["p50"].clone());
    run.set("max_ms", stats["max"].clone());
    run.set("all_received_ms", stats);
    run.set("response_head_ms", stats_ms(first_frame));
    run.set("cpu_s", cpu_json(&cpu_total));
    run.set(
        "server_cpu_ms_per_reconnect",
        round(t.server_cpu(&cpu_total) * 1000.0 / reps.max(1) as f64, 3),
    );
    run
}

// -------------------------------------------------------------------- storm --

/// `clients` streams, each on its own topic (or all on one with `shared`),
/// disconnect, miss `missed` events each, and reconnect at the same instant.
pub async fn storm(t: &Target, clients: usize, missed: usize, publishers: usize, shared: bool) -> Run {
    let base = unique("storm");
    let topic_count = if shared { 1 } else { clients };
    let topics: Vec<String> = (0..topic_count).map(|i| format!("bench:{base}-{i}")).collect();
    let mut run = Run::default();
    let first = Group::spawn(
        (0..clients)
            .map(|i| t.spec(i, std::slice::from_ref(&topics[i % topic_count]), 0))
            .collect(),
        Some(t.max_connecting),
        false,
    );
    if !first.wait_ready(t.timeout(120)).await {
        let reports = first.finish().await;
        run.verdict.streams(&reports);
        run.verdict.problem("not every client connected the first time");
        return run;
    }
    let positions = match t.positions(&topics).await {
        Ok(p) => p,
        Err(e) => {
            first.finish().await;
            return Run::failed(e);
        }
    };
    run.verdict.streams(&first.finish().await);

    // Round-robin over the clients, so every topic's events are spread out.
    let bodies: Vec<Vec<u8>> = (0..missed)
        .flat_map(|n| topics.iter().map(move |topic| body(topic, n as i64, "")))
        .collect();
    let out = t.publisher.all(Arc::new(bodies), publishers, None, false).await;
    run.verdict.publishing(&out);
    if let Err(e) = t.barrier().await {
        run.verdict.problem(e);
        return run;
    }

    let specs: Vec<StreamSpec> = (0..clients)
        .map(|i| {
            let mut s = t.spec(i, std::slice::from_ref(&topics[i % topic_count]), missed);
            s.last_event_id = Some(positions[i % topic_count].clone());
            s
        })
        .collect();
    let mut group = Group::spawn(specs, None, true);
    // Let every task reach the start line.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s0 = t.probe.sample();
    let tcp0 = procfs::tcp_counters();
    let t0 = group.release();
    let all_done = group.wait_done(t.timeout(120)).await;
    let s1 = t.probe.sample();
    let tcp = procfs::delta(&tcp0, &procfs::tcp_counters());
    let reports = group.finish().await;
    run.verdict.streams(&reports);
    run.set("tcp", tcp);
    if !all_done {
        run.verdict
            .problem("timed out waiting for every client to catch up");
    }
    let per_client: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.completed_us.map(|d| ms(d - t0)))
        .collect();
    let heads: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.opened_us.map(|d| ms(d.saturating_sub(t0))))
        .collect();
    let last = per_client.iter().copied().fold(f64::NAN, f64::max);
    let cpu = t.cpu(&s0, &s1);
    run.set("clients", clients);
    run.set("topics", topic_count);
    run.set("missed_each", missed);
    run.set("all_caught_up_ms", round(last, 3));
    run.set("per_client_ms", stats_ms(per_client));
    run.set("response_head_ms", stats_ms(heads));
    run.set("cpu_s", cpu_json(&cpu));
    run.set("server_cpu_s", round(t.server_cpu(&cpu), 3));
    run.set("reconnects", run.verdict.reconnects);
    run
}

// ------------------------------------------------------------------ publish --

pub async fn publish(t: &Target, publishers: usize, duration: Duration) -> Run {
    let mut run = Run::default();
    let Some((out, cpu, order_errors)) = publish_phase(t, &mut run, publishers, duration, 1).await else {
        return run;
    };
    run.set("publishers", publishers);
    run.set("accepted", out.accepted);
    let secs = out.elapsed().as_secs_f64();
    run.set("duration_s", round(secs, 3));
    run.set("accepted_per_s", round(out.accepted as f64 / secs.max(1e-9), 0));
    run.set("cpu_s", cpu_json(&cpu));
    run.set("server_cpu_s", round(t.server_cpu(&cpu), 3));
    run.set(
        "server_cpu_us_per_event",
        round(t.server_cpu(&cpu) * 1e6 / out.accepted.max(1) as f64, 1),
    );
    run.set("in_publishing_order", order_errors == 0);
    if t.name == "herald" {
        // Herald's atomic batch endpoint, for internal services with many
        // events at once (the baseline has no equivalent).
        const BATCH: usize = 50;
        let Some((out, cpu, order_errors)) = publish_phase(t, &mut run, publishers, duration, BATCH).await
        else {
            return run;
        };
        let secs = out.elapsed().as_secs_f64();
        run.set("batch_size", BATCH);
        run.set(
            "batch_accepted_per_s",
            round(out.accepted as f64 / secs.max(1e-9), 0),
        );
        run.set(
            "batch_server_cpu_us_per_event",
            round(t.server_cpu(&cpu) * 1e6 / out.accepted.max(1) as f64, 1),
        );
        run.set("batch_in_publishing_order", order_errors == 0);
    }
    run
}

/// Publishes from `publishers` keep-alive connections for `duration` (`batch`
/// events per request), then reads every accepted event back in `seq` order
/// and checks each publisher's events came in the order it published them.
/// Nchan keeps only its last `nchan_message_buffer_length` messages, so there
/// a stream open while publishing takes the read-back's place (which costs
/// Nchan one delivery per event inside the measured window).
/// Returns the outcome, the CPU spent publishing and the order errors; `None`
/// (with the problem recorded) when the target could not be synchronized.
async fn publish_phase(
    t: &Target,
    run: &mut Run,
    publishers: usize,
    duration: Duration,
    batch: usize,
) -> Option<(crate::publish::Outcome, BTreeMap<String, f64>, u64)> {
    const STRIDE: i64 = 1_000_000_000;
    let topic = format!("bench:{}", unique("publish"));
    let collect = |spec: &mut StreamSpec| {
        spec.dense = false;
        spec.collect = true;
        spec.read_buffer = 64 * 1024;
    };
    // Nchan: the stream that checks everything live, and how far it got.
    let mut live: Option<(Group, Arc<Counter>)> = None;
    let mut start = Vec::new();
    if t.contract == Contract::Nchan {
        let progress = Arc::new(Counter::default());
        // `expected` is set once publishing says how many were accepted.
        let mut spec = t.spec(0, std::slice::from_ref(&topic), usize::MAX);
        collect(&mut spec);
        spec.progress = Some(progress.clone());
        let group = Group::spawn(vec![spec], None, false);
        if !group.wait_ready(t.timeout(30)).await {
            run.verdict.streams(&group.finish().await);
            run.verdict.problem("the checking stream did not open");
            return None;
        }
        live = Some((group, progress));
    } else {
        match t.positions(std::slice::from_ref(&topic)).await {
            Ok(mut p) => start = p.remove(0),
            Err(e) => {
                run.verdict.problem(e);
                return None;
            }
        }
    }
    let s0 = t.probe.sample();
    let (counts, out) = t
        .publisher
        .until(&topic, publishers, duration, STRIDE, batch)
        .await;
    let s1 = t.probe.sample();
    run.verdict.publishing(&out);
    let drain0 = now_us();
    if let Err(e) = t.barrier().await {
        run.verdict.problem(e);
        if let Some((group, _)) = live {
            group.finish().await;
        }
        return None;
    }
    let drain_ms = ms(now_us() - drain0);

    // Every accepted event exactly once, and each publisher's events in the
    // order it published them: read back in seq order, or as Nchan's stream
    // got them.
    let verify0 = now_us();
    let reports = match live {
        Some((group, progress)) => {
            // Every accepted event is on its way once the barrier arrived; a
            // stream that stops receiving for 15 s will not get the rest.
            if let Err(s) = progress
                .wait_progressing(out.accepted, t.timeout(15), t.timeout(300))
                .await
            {
                let said = t
                    .error_log
                    .as_deref()
                    .and_then(nchan::missed_messages)
                    .map(|(n, first)| format!("; nginx logged {n} skips, the first: {first}"))
                    .unwrap_or_else(|| "; nginx logged no skipped message".into());
                run.verdict.problem(format!(
                    "the checking stream got {} of {} accepted events, then none for {:.0} s (waited {:.0} s){said}",
                    s.got,
                    out.accepted,
                    s.idle.as_secs_f64(),
                    s.waited.as_secs_f64()
                ));
            }
            let mut reports = group.finish().await;
            for r in &mut reports {
                r.expected = out.accepted;
            }
            reports
        }
        None => {
            let mut spec = t.spec(0, std::slice::from_ref(&topic), out.accepted);
            collect(&mut spec);
            spec.last_event_id = Some(start);
            let group = Group::spawn(vec![spec], None, false);
            group.wait_done(t.timeout(300)).await;
            group.finish().await
        }
    };
    let verify_s = ms(now_us() - verify0) / 1000.0;
    run.verdict.streams(&reports);
    let mut next = vec![0i64; counts.len()];
    let mut order_errors = 0u64;
    if let Some(r) = reports.first() {
        for (seq, n) in &r.collected {
            let p = (n / STRIDE) as usize;
            let k = n % STRIDE;
            match next.get_mut(p) {
                Some(expected) if *expected == k => *expected += 1,
                _ => {
                    order_errors += 1;
                    if order_errors == 1 {
                        run.verdict.problem(format!(
                            "seq {seq}: publisher {p}'s event {k} out of publishing order"
                        ));
                    }
                }
            }
        }
    }
    for (p, (got, want)) in next.iter().zip(&counts).enumerate() {
        if *got as usize != *want {
            run.verdict.problem(format!(
                "publisher {p}: {got} events read back in order, {want} accepted"
            ));
        }
    }
    run.verdict.out_of_order += order_errors;

    let cpu = t.cpu(&s0, &s1);
    let key = if batch > 1 { "batch_" } else { "" };
    run.set(&format!("{key}per_publisher"), json!(counts));
    run.set(&format!("{key}sequenced_after_ms"), round(drain_ms, 1));
    run.set(&format!("{key}read_back_s"), round(verify_s, 3));
    run.set(
        &format!("{key}checked_by"),
        if t.contract == Contract::Nchan {
            "a stream open while publishing"
        } else {
            "reading everything back after publishing"
        },
    );
    Some((out, cpu, order_errors))
}
