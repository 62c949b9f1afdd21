//! `herald-bench`: Herald's load generator and benchmark suite.
//!
//! Runs each scenario against Herald (api, worker and gateway as separate
//! processes) and, when given, the Node.js baseline and nginx + Nchan, in the
//! same run on the same machine; checks every delivery; prints a comparison
//! table and writes a JSON summary. `scripts/bench` starts everything and
//! calls it.
//!
//! ```text
//! herald-bench --herald-api URL --herald-gateway URL --herald-pids api=P,worker=P,gateway=P
//!              [--herald-db NAME] [--baseline URL --baseline-pid P [--baseline-db NAME]]
//!              [--nchan URL --nchan-pid MASTER_PID]
//!              [--smoke | --scaling | --scale] [--scenarios idle,replay,fan-out,latency,latency-light,storm,publish,scale]
//!              [--gateway-bin PATH --log-dir DIR]
//!              [--set KEY=VALUE]... [--source-addrs N] [--threads N] [--out PATH]
//! ```
//! The scale-out scenario (`--scale`, or `scale` in `--scenarios`) starts
//! gateways of its own from `--gateway-bin` and runs its streams in child
//! processes of this binary (`herald-bench --scale-loader …`, see [`scale`]).
//! Secrets come from the environment: `HERALD_JWT_SECRET` (and
//! `HERALD_JWT_AUDIENCE`), `BENCH_BASELINE_JWT_SECRET` (defaults to Herald's).

mod check;
mod contract;
mod http;
mod nchan;
mod procfs;
mod publish;
mod report;
mod scale;
mod scenarios;
mod sockopt;
mod sse;
mod stamp;
mod stream;
mod tokens;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::contract::Contract;
use crate::http::Endpoint;
use crate::procfs::Probe;
use crate::publish::Publisher;
use crate::report::{num, Row};
use crate::scale::{ScaleSetup, ScaleSizes};
use crate::scenarios::{Fanout, Run, Target};
use crate::tokens::Keys;

const SCENARIOS: [&str; 7] = [
    "idle",
    "replay",
    "fan-out",
    "latency",
    "latency-light",
    "storm",
    "publish",
];

/// Sizes of every scenario; `--set key=value` changes one.
#[derive(Debug, Clone)]
struct Sizes {
    publishers: usize,
    fanout_streams: usize,
    fanout_events: usize,
    latency_streams: usize,
    latency_rate: usize,
    latency_secs: usize,
    latency_publishers: usize,
    /// The light-load latency scenario: few streams, the same rate.
    light_streams: usize,
    light_rate: usize,
    light_secs: usize,
    light_publishers: usize,
    publish_publishers: usize,
    publish_secs: usize,
    idle_streams: usize,
    idle_settle_secs: usize,
    idle_shared: bool,
    replay_reps: usize,
    replay_missed: usize,
    storm_clients: usize,
    storm_missed: usize,
    storm_shared: bool,
    scaling_events: usize,
    scaling_subscribers: Vec<usize>,
    scaling_topic_streams: usize,
    scaling_topics: Vec<usize>,
    scaling_size_streams: usize,
    scaling_pads: Vec<usize>,
    scale: ScaleSizes,
}

impl Sizes {
    fn full() -> Self {
        Self {
            publishers: 8,
            fanout_streams: 1000,
            fanout_events: 2000,
            latency_streams: 1000,
            latency_rate: 100,
            latency_secs: 10,
            // Enough that a server answering slowly still gets the offered rate.
            latency_publishers: 32,
            light_streams: 100,
            light_rate: 100,
            light_secs: 10,
            light_publishers: 8,
            publish_publishers: 8,
            publish_secs: 10,
            idle_streams: 10_000,
            idle_settle_secs: 3,
            idle_shared: false,
            replay_reps: 20,
            replay_missed: 100,
            storm_clients: 1000,
            storm_missed: 20,
            storm_shared: false,
            scaling_events: 1000,
            scaling_subscribers: vec![100, 1000, 4000, 8000],
            scaling_topic_streams: 1000,
            scaling_topics: vec![1, 8, 64],
            scaling_size_streams: 200,
            scaling_pads: vec![0, 1024, 8192],
            // 15,000 streams per gateway (a process may hold 20,000
            // descriptors here) and one event a second: 15,000-60,000
            // deliveries a second, which leaves the two cores unsaturated.
            scale: ScaleSizes {
                gateways: vec![1, 2, 4],
                streams_per_gateway: 15_000,
                loaders_per_gateway: 1,
                rate: 1,
                secs: 30,
            },
        }
    }

    fn smoke() -> Self {
        Self {
            publishers: 4,
            fanout_streams: 50,
            fanout_events: 200,
            latency_streams: 50,
            latency_rate: 50,
            latency_secs: 2,
            latency_publishers: 8,
            light_streams: 20,
            light_rate: 50,
            light_secs: 2,
            light_publishers: 4,
            publish_publishers: 8,
            publish_secs: 2,
            idle_streams: 200,
            idle_settle_secs: 1,
            idle_shared: false,
            replay_reps: 3,
            replay_missed: 100,
            storm_clients: 50,
            storm_missed: 20,
            storm_shared: false,
            scaling_events: 50,
            scaling_subscribers: vec![10, 50],
            scaling_topic_streams: 20,
            scaling_topics: vec![1, 4],
            scaling_size_streams: 10,
            scaling_pads: vec![0, 1024],
            scale: ScaleSizes {
                gateways: vec![1, 2],
                streams_per_gateway: 100,
                loaders_per_gateway: 2,
                rate: 10,
                secs: 1,
            },
        }
    }

    fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("--set expects KEY=VALUE, got `{assignment}`"))?;
        let one = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("--set {key}: `{v}` is not a count"))
        };
        let list = |v: &str| v.split(',').map(one).collect::<Result<Vec<_>, _>>();
        let flag = |v: &str| match v {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(format!("--set {key}: `{v}` is not 0 or 1")),
        };
        match key {
            "publishers" => self.publishers = one(value)?,
            "fanout.streams" => self.fanout_streams = one(value)?,
            "fanout.events" => self.fanout_events = one(value)?,
            "latency.streams" => self.latency_streams = one(value)?,
            "latency.rate" => self.latency_rate = one(value)?,
            "latency.secs" => self.latency_secs = one(value)?,
            "latency.publishers" => self.latency_publishers = one(value)?,
            "light.streams" => self.light_streams = one(value)?,
            "light.rate" => self.light_rate = one(value)?,
            "light.secs" => self.light_secs = one(value)?,
            "light.publishers" => self.light_publishers = one(value)?,
            "publish.publishers" => self.publish_publishers = one(value)?,
            "publish.secs" => self.publish_secs = one(value)?,
            "idle.streams" => self.idle_streams = one(value)?,
            "idle.settle_secs" => self.idle_settle_secs = one(value)?,
            "idle.shared" => self.idle_shared = flag(value)?,
            "replay.reps" => self.replay_reps = one(value)?,
            "replay.missed" => self.replay_missed = one(value)?,
            "storm.clients" => self.storm_clients = one(value)?,
            "storm.missed" => self.storm_missed = one(value)?,
            "storm.shared" => self.storm_shared = flag(value)?,
            "scaling.events" => self.scaling_events = one(value)?,
            "scaling.subscribers" => self.scaling_subscribers = list(value)?,
            "scaling.topic_streams" => self.scaling_topic_streams = one(value)?,
            "scaling.topics" => self.scaling_topics = list(value)?,
            "scaling.size_streams" => self.scaling_size_streams = one(value)?,
            "scaling.pads" => self.scaling_pads = list(value)?,
            "scale.gateways" => self.scale.gateways = list(value)?,
            "scale.streams_per_gateway" => self.scale.streams_per_gateway = one(value)?,
            "scale.loaders_per_gateway" => self.scale.loaders_per_gateway = one(value)?.max(1),
            "scale.rate" => self.scale.rate = one(value)?.max(1),
            "scale.secs" => self.scale.secs = one(value)?.max(1),
            _ => return Err(format!("--set: unknown key `{key}`")),
        }
        Ok(())
    }

    fn json(&self) -> Value {
        json!({
            "publishers": self.publishers,
            "fan-out": {"streams": self.fanout_streams, "events": self.fanout_events},
            "latency": {"streams": self.latency_streams, "events_per_s": self.latency_rate, "secs": self.latency_secs,
                        "publishers": self.latency_publishers},
            "latency-light": {"streams": self.light_streams, "events_per_s": self.light_rate, "secs": self.light_secs,
                              "publishers": self.light_publishers},
            "publish": {"publishers": self.publish_publishers, "secs": self.publish_secs},
            "idle": {"streams": self.idle_streams, "settle_secs": self.idle_settle_secs,
                     "topics": if self.idle_shared { "one shared topic" } else { "one topic per stream" }},
            "replay": {"reps": self.replay_reps, "missed": self.replay_missed},
            "storm": {"clients": self.storm_clients, "missed_each": self.storm_missed,
                      "topics": if self.storm_shared { "one shared topic" } else { "one topic per client" }},
            "scale": {"gateways": self.scale.gateways, "streams_per_gateway": self.scale.streams_per_gateway,
                      "loaders_per_gateway": self.scale.loaders_per_gateway,
                      "events_per_s": self.scale.rate, "secs": self.scale.secs},
        })
    }
}

#[derive(Debug)]
struct Args {
    smoke: bool,
    scaling: bool,
    scenarios: Vec<String>,
    /// Run the scale-out scenario (after the others).
    scale: bool,
    gateway_bin: Option<PathBuf>,
    log_dir: PathBuf,
    out: PathBuf,
    threads: usize,
    source_addrs: usize,
    max_connecting: usize,
    herald_api: Option<String>,
    herald_gateway: Option<String>,
    herald_pids: Vec<(String, u32)>,
    herald_db: Option<String>,
    baseline: Option<String>,
    baseline_pid: Option<u32>,
    baseline_db: Option<String>,
    nchan: Option<String>,
    nchan_pid: Option<u32>,
    nchan_log: Option<PathBuf>,
    redis_port: u16,
    clk_tck: f64,
    sizes: Sizes,
}

const USAGE: &str = "usage: herald-bench --herald-api URL --herald-gateway URL \
--herald-pids api=PID,worker=PID,gateway=PID [--herald-db NAME] \
[--baseline URL --baseline-pid PID [--baseline-db NAME]] [--nchan URL --nchan-pid PID [--nchan-log PATH]] \
[--smoke | --scaling | --scale] [--gateway-bin PATH --log-dir DIR] [--scenarios LIST] [--set KEY=VALUE]... [--source-addrs N] [--threads N] \
[--max-connecting N] [--redis-port P] [--clk-tck N] [--out PATH]
(scripts/bench runs the whole thing: release build, stack, baseline, bench)";

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let smoke = argv.iter().any(|a| a == "--smoke");
    let argv_has_scenarios = argv.iter().any(|a| a == "--scenarios" || a == "--scale");
    let mut a = Args {
        smoke,
        scaling: false,
        scenarios: SCENARIOS.iter().map(|s| (*s).to_owned()).collect(),
        scale: false,
        gateway_bin: None,
        log_dir: std::env::temp_dir(),
        out: PathBuf::from("test-artifacts/bench.json"),
        threads: 2,
        source_addrs: 1,
        max_connecting: 128,
        herald_api: None,
        herald_gateway: None,
        herald_pids: Vec::new(),
        herald_db: None,
        baseline: None,
        baseline_pid: None,
        baseline_db: None,
        nchan: None,
        nchan_pid: None,
        nchan_log: None,
        redis_port: 6379,
        clk_tck: 100.0,
        sizes: if smoke { Sizes::smoke() } else { Sizes::full() },
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let count = |v: String| v.parse::<usize>().map_err(|_| format!("`{v}` is not a count"));
        match flag.as_str() {
            "--smoke" => {}
            "--scaling" => a.scaling = true,
            "--scale" => {
                a.scale = true;
                a.scenarios.clear();
            }
            "--gateway-bin" => a.gateway_bin = Some(PathBuf::from(value()?)),
            "--log-dir" => a.log_dir = PathBuf::from(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            "--scenarios" => {
                let list = value()?;
                a.scenarios = list.split(',').map(|s| s.trim().to_owned()).collect();
                for s in &a.scenarios {
                    if !SCENARIOS.contains(&s.as_str()) && s != "scale" {
                        return Err(format!(
                            "unknown scenario `{s}` (known: {}, scale)",
                            SCENARIOS.join(", ")
                        ));
                    }
                }
                a.scale = a.scenarios.iter().any(|s| s == "scale");
                a.scenarios.retain(|s| s != "scale");
            }
            "--out" => a.out = PathBuf::from(value()?),
            "--threads" => a.threads = count(value()?)?.max(1),
            "--source-addrs" => a.source_addrs = count(value()?)?.clamp(1, 250),
            "--max-connecting" => a.max_connecting = count(value()?)?.max(1),
            "--herald-api" => a.herald_api = Some(value()?),
            "--herald-gateway" => a.herald_gateway = Some(value()?),
            "--herald-pids" => {
                for part in value()?.split(',') {
                    let (label, pid) = part
                        .split_once('=')
                        .ok_or_else(|| format!("--herald-pids: expected LABEL=PID, got `{part}`"))?;
                    let pid = pid
                        .parse()
                        .map_err(|_| format!("--herald-pids: bad pid `{pid}`"))?;
                    a.herald_pids.push((label.to_owned(), pid));
                }
            }
            "--herald-db" => a.herald_db = Some(value()?),
            "--baseline" => a.baseline = Some(value()?),
            "--baseline-pid" => {
                let v = value()?;
                a.baseline_pid = Some(v.parse().map_err(|_| format!("--baseline-pid: bad pid `{v}`"))?);
            }
            "--baseline-db" => a.baseline_db = Some(value()?),
            "--nchan" => a.nchan = Some(value()?),
            "--nchan-pid" => {
                let v = value()?;
                a.nchan_pid = Some(v.parse().map_err(|_| format!("--nchan-pid: bad pid `{v}`"))?);
            }
            "--nchan-log" => a.nchan_log = Some(PathBuf::from(value()?)),
            "--redis-port" => {
                let v = value()?;
                a.redis_port = v.parse().map_err(|_| format!("--redis-port: bad port `{v}`"))?;
            }
            "--clk-tck" => a.clk_tck = count(value()?)?.max(1) as f64,
            "--set" => a.sizes.set(&value()?)?,
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if a.herald_api.is_none() || a.herald_gateway.is_none() || a.herald_pids.is_empty() {
        return Err(format!(
            "--herald-api, --herald-gateway and --herald-pids are required\n{USAGE}"
        ));
    }
    if a.baseline.is_some() != a.baseline_pid.is_some() {
        return Err("--baseline and --baseline-pid go together".into());
    }
    if a.nchan.is_some() != a.nchan_pid.is_some() {
        return Err("--nchan and --nchan-pid go together".into());
    }
    if a.smoke && a.gateway_bin.is_some() && !argv_has_scenarios {
        // The smoke run runs every scenario, the scale-out one included.
        a.scale = true;
    }
    if a.scale && a.gateway_bin.is_none() {
        return Err("the scale-out scenario needs --gateway-bin (scripts/bench --scale passes it)".into());
    }
    if a.smoke {
        // The smoke run is about correctness, no goals judged: Herald, and
        // Nchan when given (it starts in a second and keeps its mapping
        // honest), not the Node.js baseline.
        a.baseline = None;
        a.baseline_pid = None;
    }
    Ok(a)
}

fn env_or(name: &str, fallback: Option<&str>) -> Result<String, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => fallback
            .map(str::to_owned)
            .ok_or_else(|| format!("{name} must be set")),
    }
}

fn targets(a: &Args) -> Result<Vec<Target>, String> {
    let sources: Arc<Vec<IpAddr>> = Arc::new(if a.source_addrs > 1 {
        (1..=a.source_addrs)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
            .collect()
    } else {
        Vec::new()
    });
    let timeout_scale = if a.smoke { 2 } else { 1 };
    let herald_secret = env_or("HERALD_JWT_SECRET", None)?;
    let herald_keys = Keys {
        secret: herald_secret.clone(),
        audience: env_or("HERALD_JWT_AUDIENCE", Some("herald"))?,
    };
    let mut out = vec![Target {
        name: "herald",
        contract: Contract::Herald,
        publisher: Publisher {
            endpoint: Endpoint::parse(a.herald_api.as_deref().unwrap_or_default())?,
            authorization: herald_keys.publisher()?.into(),
            sources: sources.clone(),
            contract: Contract::Herald,
        },
        stream: Endpoint::parse(a.herald_gateway.as_deref().unwrap_or_default())?,
        reader: herald_keys.reader()?.into(),
        probe: Probe {
            servers: a.herald_pids.clone(),
            pg_database: a.herald_db.clone(),
            redis_port: Some(a.redis_port),
            clock_ticks_per_second: a.clk_tck,
        },
        stream_process: "gateway",
        sources: sources.clone(),
        max_connecting: a.max_connecting,
        timeout_scale,
        error_log: None,
    }];
    if let (Some(url), Some(pid)) = (&a.baseline, a.baseline_pid) {
        let keys = Keys {
            secret: env_or("BENCH_BASELINE_JWT_SECRET", Some(&herald_secret))?,
            audience: env_or("BENCH_BASELINE_JWT_AUDIENCE", Some("herald"))?,
        };
        let endpoint = Endpoint::parse(url)?;
        out.push(Target {
            name: "baseline",
            contract: Contract::Herald,
            publisher: Publisher {
                endpoint: endpoint.clone(),
                authorization: keys.publisher()?.into(),
                sources: sources.clone(),
                contract: Contract::Herald,
            },
            stream: endpoint,
            reader: keys.reader()?.into(),
            probe: Probe {
                servers: vec![("node".to_owned(), pid)],
                pg_database: a.baseline_db.clone(),
                redis_port: Some(a.redis_port),
                clock_ticks_per_second: a.clk_tck,
            },
            stream_process: "node",
            sources: sources.clone(),
            max_connecting: a.max_connecting,
            timeout_scale,
            error_log: None,
        });
    }
    if let (Some(url), Some(master)) = (&a.nchan, a.nchan_pid) {
        // nginx's master and its workers, all labelled `nginx`: their CPU
        // and RSS are summed.
        let workers = procfs::children(master);
        if workers.is_empty() {
            return Err(format!("nginx (pid {master}) has no worker processes"));
        }
        let servers = std::iter::once(master)
            .chain(workers)
            .map(|pid| ("nginx".to_owned(), pid))
            .collect();
        let endpoint = Endpoint::parse(url)?;
        out.push(Target {
            name: "nchan",
            contract: Contract::Nchan,
            publisher: Publisher {
                endpoint: endpoint.clone(),
                // Nchan checks no token; sending one costs it nothing.
                authorization: herald_keys.publisher()?.into(),
                sources: sources.clone(),
                contract: Contract::Nchan,
            },
            stream: endpoint,
            reader: herald_keys.reader()?.into(),
            probe: Probe {
                servers,
                pg_database: None,
                redis_port: None,
                clock_ticks_per_second: a.clk_tck,
            },
            stream_process: "nginx",
            sources,
            max_connecting: a.max_connecting,
            timeout_scale,
            error_log: a.nchan_log.clone(),
        });
    }
    Ok(out)
}

/// `VACUUM (ANALYZE)` of every system's database before a measured window,
/// as pgbench does: what earlier scenarios left for autovacuum would
/// otherwise be cleaned up during a later one, on the Postgres both systems
/// share (it showed as 0.1-0.2 CPU-s of Postgres inside Herald's storm window
/// in full runs, and none in storm-only runs). Uses `psql` with the PG*
/// environment `scripts/bench` sets; a failure is logged, not fatal.
fn vacuum(targets: &[Target]) {
    for db in targets.iter().filter_map(|t| t.probe.pg_database.as_deref()) {
        let out = std::process::Command::new("psql")
            .args(["-X", "-q", "-w", "-d", db, "-c", "VACUUM (ANALYZE)"])
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => log(&format!(
                "warning: VACUUM of {db} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => log(&format!("warning: cannot run psql to VACUUM {db}: {e}")),
        }
    }
}

async fn run_scenario(name: &str, t: &Target, s: &Sizes) -> Run {
    match name {
        "idle" => {
            scenarios::idle(
                t,
                s.idle_streams,
                Duration::from_secs(s.idle_settle_secs as u64),
                s.publishers,
                s.idle_shared,
            )
            .await
        }
        "replay" => scenarios::replay(t, s.replay_reps, s.replay_missed, s.publishers).await,
        "fan-out" => {
            let p = Fanout {
                streams: s.fanout_streams,
                events: s.fanout_events,
                topics_per_stream: 1,
                pad: 0,
                publishers: s.publishers,
                interval: None,
                record_latency: false,
            };
            scenarios::fanout(t, &p).await
        }
        "latency" => {
            let p = paced(
                s.latency_streams,
                s.latency_rate,
                s.latency_secs,
                s.latency_publishers,
            );
            scenarios::fanout(t, &p).await
        }
        "latency-light" => {
            let p = paced(s.light_streams, s.light_rate, s.light_secs, s.light_publishers);
            scenarios::fanout(t, &p).await
        }
        "storm" => scenarios::storm(t, s.storm_clients, s.storm_missed, s.publishers, s.storm_shared).await,
        "publish" => {
            scenarios::publish(
                t,
                s.publish_publishers,
                Duration::from_secs(s.publish_secs as u64),
            )
            .await
        }
        _ => Run::default(),
    }
}

/// A latency run: `streams` on one topic, `rate` events a second for `secs`.
fn paced(streams: usize, rate: usize, secs: usize, publishers: usize) -> Fanout {
    Fanout {
        streams,
        events: rate * secs,
        topics_per_stream: 1,
        pad: 0,
        publishers,
        interval: Some(Duration::from_secs_f64(1.0 / rate.max(1) as f64)),
        record_latency: true,
    }
}

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

/// The CPU seconds a run spent, by process, for the breakdown table.
fn cpu_cells(run: &Run) -> Vec<String> {
    let cpu = run
        .metrics
        .get("cpu_s")
        .or_else(|| run.metrics.get("open_cpu_s"))
        .and_then(Value::as_object);
    [
        "api", "worker", "gateway", "node", "nginx", "postgres", "redis", "bench", "other", "machine",
    ]
    .iter()
    .map(|k| num(cpu.and_then(|c| c.get(*k)).and_then(Value::as_f64)))
    .collect()
}

/// RFC 3339 UTC of now, without a date library.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn scaling(herald: &Target, s: &Sizes, correct: &mut bool) -> Value {
    let mut points = Vec::new();
    let mut lines = Vec::new();
    let mut dims: Vec<(&str, Vec<Fanout>)> = Vec::new();
    let base = Fanout {
        streams: 0,
        events: s.scaling_events,
        topics_per_stream: 1,
        pad: 0,
        publishers: s.publishers,
        interval: None,
        record_latency: false,
    };
    dims.push((
        "subscribers",
        s.scaling_subscribers
            .iter()
            .map(|n| Fanout {
                streams: *n,
                ..base.clone()
            })
            .collect(),
    ));
    dims.push((
        "topics per stream",
        s.scaling_topics
            .iter()
            .map(|k| Fanout {
                streams: s.scaling_topic_streams,
                topics_per_stream: *k,
                ..base.clone()
            })
            .collect(),
    ));
    dims.push((
        "event size",
        s.scaling_pads
            .iter()
            .map(|pad| Fanout {
                streams: s.scaling_size_streams,
                pad: *pad,
                ..base.clone()
            })
            .collect(),
    ));
    for (dim, params) in dims {
        for p in params {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let started = std::time::Instant::now();
            let run = scenarios::fanout(herald, &p).await;
            log(&format!(
                "scaling {dim}: {} streams × {} topics, data {} B: {} ({:.1} s)",
                p.streams,
                p.topics_per_stream,
                run.metric("data_bytes").unwrap_or(0.0),
                run.verdict.summary(),
                started.elapsed().as_secs_f64()
            ));
            *correct &= run.verdict.ok();
            let cpu = run.metrics.get("cpu_s").cloned().unwrap_or(json!({}));
            let c = |k: &str| cpu.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            let deliveries = run.metric("deliveries").unwrap_or(0.0).max(1.0);
            let events = p.events.max(1) as f64;
            let per_delivery_gw = c("gateway") * 1e6 / deliveries;
            let per_event_api_worker = (c("api") + c("worker")) * 1e6 / events;
            lines.push(vec![
                dim.to_owned(),
                p.streams.to_string(),
                p.topics_per_stream.to_string(),
                format!("{:.0}", run.metric("data_bytes").unwrap_or(0.0)),
                num(Some(deliveries)),
                num(run.metric("server_cpu_s")),
                num(Some(c("api"))),
                num(Some(c("worker"))),
                num(Some(c("gateway"))),
                num(Some(per_delivery_gw)),
                num(Some(per_event_api_worker)),
                num(run.metric("deliveries_per_server_cpu_s")),
                num(Some(c("postgres"))),
                num(Some(c("redis"))),
                num(Some(c("bench"))),
                num(Some(c("other"))),
                if run.verdict.ok() {
                    "ok".into()
                } else {
                    "FAIL".into()
                },
            ]);
            points.push(json!({
                "dimension": dim,
                "streams": p.streams,
                "topics_per_stream": p.topics_per_stream,
                "events": p.events,
                "pad_bytes": p.pad,
                "gateway_cpu_us_per_delivery": (per_delivery_gw * 1000.0).round() / 1000.0,
                "api_worker_cpu_us_per_event": (per_event_api_worker * 10.0).round() / 10.0,
                "metrics": Value::Object(run.metrics.clone()),
                "correctness": run.verdict.json(),
            }));
        }
    }
    println!(
        "\nHow Herald's cost grows (fan-out of {} events as fast as accepted; CPU in seconds)\n",
        s.scaling_events
    );
    print!(
        "{}",
        report::table(
            &[
                "dimension",
                "streams",
                "topics/stream",
                "data B",
                "deliveries",
                "server CPU-s",
                "api",
                "worker",
                "gateway",
                "gw µs/delivery",
                "api+worker µs/event",
                "deliveries/CPU-s",
                "postgres",
                "redis",
                "bench",
                "other",
                "",
            ],
            &lines
        )
    );
    json!(points)
}

async fn run(a: Args) -> Result<bool, String> {
    stream::now_us();
    let load_at_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_at_start = load_at_start.trim();
    let targets = targets(&a)?;
    log(&format!(
        "machine: {} CPUs ({}), load average at start: {load_at_start}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        procfs::machine()["cpu_model"].as_str().unwrap_or("?"),
    ));
    let mode = if a.smoke {
        "smoke"
    } else if a.scaling {
        "scaling"
    } else if a.scale && a.scenarios.is_empty() {
        "scale"
    } else {
        "full"
    };
    log(&format!(
        "{mode} run: {} against {}",
        if a.scaling {
            "scaling points".to_owned()
        } else if a.scale {
            a.scenarios
                .iter()
                .map(String::as_str)
                .chain(["scale"])
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            a.scenarios.join(", ")
        },
        targets.iter().map(|t| t.name).collect::<Vec<_>>().join(" and ")
    ));
    // Herald's exactness decides the exit status. A baseline that loses or
    // reorders events (Nchan's inter-worker IPC drops messages under a burst,
    // and says so in its log) is reported as such, and no goal is judged
    // against that run, but it is not a fault of the system under test.
    let mut correct = true;
    let mut inexact_baselines: Vec<String> = Vec::new();
    let mut results: Vec<(String, Vec<(&'static str, Run)>)> = Vec::new();
    if !a.scaling {
        for name in &a.scenarios {
            let mut runs = Vec::new();
            for t in &targets {
                if !a.smoke {
                    vacuum(&targets);
                }
                tokio::time::sleep(Duration::from_millis(if a.smoke { 200 } else { 1500 })).await;
                let started = std::time::Instant::now();
                let postmasters = procfs::postmasters();
                let mut run = run_scenario(name, t, &a.sizes).await;
                log(&format!(
                    "{name} on {}: {} ({:.1} s)",
                    t.name,
                    run.verdict.summary(),
                    started.elapsed().as_secs_f64()
                ));
                if procfs::postmasters() != postmasters {
                    log(&format!(
                        "warning: the machine's Postgres restarted during {name} on {}: its figures are not comparable",
                        t.name
                    ));
                    run.metrics.insert("postgres_restarted".into(), json!(true));
                }
                if t.name == "herald" {
                    correct &= run.verdict.ok();
                } else if !run.verdict.ok() {
                    inexact_baselines.push(format!("{} in {name}", t.name));
                }
                runs.push((t.name, run));
            }
            results.push((name.clone(), runs));
        }
    }
    let scaling_json = if a.scaling {
        match targets.first() {
            Some(h) => scaling(h, &a.sizes, &mut correct).await,
            None => json!(null),
        }
    } else {
        json!(null)
    };
    let scale_json = match (a.scale, targets.first(), a.gateway_bin.as_deref()) {
        (true, Some(herald), Some(gateway_bin)) => {
            let setup = ScaleSetup {
                gateway_bin,
                log_dir: &a.log_dir,
                // 127.0.0.2 onwards: the stack's own clients use 127.0.0.1.
                sources: (0..a.source_addrs.min(250))
                    .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
                    .collect(),
                max_connecting: a.max_connecting,
                timeout_scale: herald.timeout_scale,
            };
            if !a.smoke {
                vacuum(&targets[..1]);
            }
            scale::run(herald, &setup, &a.sizes.scale, &mut correct).await
        }
        _ => json!(null),
    };

    // ------------------------------------------------------------ output --
    let judge = !a.smoke && targets.len() > 1;
    let mut rows: Vec<Row> = Vec::new();
    for (name, runs) in &results {
        let find = |sys: &str| runs.iter().find(|(s, _)| *s == sys).map(|(_, r)| r);
        let Some(scenario) = SCENARIOS.iter().find(|s| *s == name) else {
            continue;
        };
        let systems = report::Systems {
            herald: find("herald"),
            baseline: find("baseline"),
            nchan: find("nchan"),
        };
        rows.extend(report::rows(scenario, &systems, !a.smoke));
    }
    if !results.is_empty() {
        println!(
            "\nHerald vs the Node.js baseline and nginx + Nchan ({mode} run; ratio = Herald ÷ the other)\n"
        );
        print!("{}", report::comparison_table(&rows));
        println!("\nCorrectness (count exact, no duplicate, no out-of-order, no reset)\n");
        let lines: Vec<Vec<String>> = results
            .iter()
            .flat_map(|(name, runs)| {
                runs.iter()
                    .map(move |(sys, r)| vec![name.clone(), (*sys).to_owned(), r.verdict.summary()])
            })
            .collect();
        print!("{}", report::table(&["scenario", "system", "verdict"], &lines));
        println!(
            "\nCPU-seconds by process during each measured window (idle: opening the streams; \
             other = the rest of the machine, machine = all CPUs busy)\n"
        );
        let lines: Vec<Vec<String>> = results
            .iter()
            .flat_map(|(name, runs)| {
                runs.iter().map(move |(sys, r)| {
                    let mut l = vec![name.clone(), (*sys).to_owned()];
                    l.extend(cpu_cells(r));
                    l
                })
            })
            .collect();
        print!(
            "{}",
            report::table(
                &[
                    "scenario", "system", "api", "worker", "gateway", "node", "nginx", "postgres", "redis",
                    "bench", "other", "machine",
                ],
                &lines
            )
        );
    }

    let mut scen = Map::new();
    for (name, runs) in &results {
        let mut entry = Map::new();
        for (sys, r) in runs {
            entry.insert(
                (*sys).to_owned(),
                json!({"metrics": Value::Object(r.metrics.clone()), "correctness": r.verdict.json()}),
            );
        }
        scen.insert(name.clone(), Value::Object(entry));
    }
    let met = rows
        .iter()
        .flat_map(|r| [r.met, r.nchan_met])
        .filter(|m| *m == Some(true))
        .count();
    let missed = rows
        .iter()
        .flat_map(|r| [r.met, r.nchan_met])
        .filter(|m| *m == Some(false))
        .count();
    let command = std::env::var("BENCH_COMMAND").unwrap_or_else(|_| {
        std::iter::once("herald-bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut machine = procfs::machine();
    machine["loadavg_at_start"] = json!(load_at_start);
    let summary = json!({
        "mode": mode,
        "date": now_rfc3339(),
        "command": command,
        "machine": machine,
        "load_generator": {
            "threads": a.threads,
            "source_addresses": a.source_addrs,
            "max_connecting": a.max_connecting,
        },
        "systems": targets.iter().map(|t| json!({
            "name": t.name,
            "processes": t.probe.servers.iter().map(|(l, p)| json!({"label": l, "pid": p})).collect::<Vec<_>>(),
            "postgres_database": t.probe.pg_database,
        })).collect::<Vec<_>>(),
        "sizes": a.sizes.json(),
        "table": rows.iter().map(Row::json).collect::<Vec<_>>(),
        "scenarios": Value::Object(scen),
        "scaling": scaling_json,
        "scale": scale_json,
        "correct": correct,
        "inexact_baselines": inexact_baselines,
        "goals": {"met": met, "missed": missed, "judged": judge},
    });
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&a.out, text + "\n").map_err(|e| format!("writing {}: {e}", a.out.display()))?;
    println!();
    if judge {
        println!("goals: {met} met, {missed} missed");
    }
    println!(
        "correctness: {}; JSON summary in {}",
        if correct {
            "every Herald scenario exact"
        } else {
            "Herald VIOLATIONS (see above)"
        },
        a.out.display()
    );
    if !inexact_baselines.is_empty() {
        println!(
            "baselines not exact (reported above, no goal judged against them): {}",
            inexact_baselines.join(", ")
        );
    }
    Ok(correct)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--scale-loader") {
        // A load generator of the scale-out scenario: one thread, so that
        // several of them share the two cores with the servers.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        return match runtime
            .map_err(|e| e.to_string())
            .and_then(|r| r.block_on(scale::loader(argv)))
        {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("herald-bench --scale-loader: {e}");
                ExitCode::from(2)
            }
        };
    }
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herald-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("herald-bench: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_date() {
        let d = now_rfc3339();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.starts_with("20"));
    }

    #[test]
    fn parses_arguments() {
        let argv: Vec<String> = [
            "--smoke",
            "--herald-api",
            "http://127.0.0.1:1",
            "--herald-gateway",
            "http://127.0.0.1:2",
            "--herald-pids",
            "api=1,worker=2,gateway=3",
            "--set",
            "fanout.streams=7",
            "--baseline",
            "http://127.0.0.1:3",
            "--baseline-pid",
            "4",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let a = parse_args(argv).unwrap();
        assert!(a.smoke);
        assert_eq!(a.sizes.fanout_streams, 7);
        assert_eq!(a.herald_pids.len(), 3);
        assert!(a.baseline.is_none(), "the smoke run is Herald only");
    }
}
