//! The scale-out scenario: N fresh `herald-gateway` processes on the bus,
//! the stack's one API and one worker, `streams_per_gateway` streams on each,
//! every stream following one topic, events published at a steady rate. Every
//! stream must get every event exactly once and in order; the figure is the
//! gateways' CPU per delivery at 1 gateway against N.
//!
//! One gateway process holds at most ~19,000 streams here (a process may open
//! 20,000 descriptors), and so does one load generator: the streams are held by
//! child processes of this one ([`loader`], `herald-bench --scale-loader`), one
//! or more per gateway, each binding its sockets to several loopback source
//! addresses so that ephemeral ports never run out. A child opens its
//! streams, says `ready`, says `done` once each has every event (or its
//! deadline passed), and on `finish` closes them and prints its verdict as one
//! JSON line: the counts of [`Verdict`] and the fingerprints of its complete
//! streams, which must all be equal across every child (one topic, one order).
//!
//! Each point starts its gateways fresh (so that the RSS growth is that of
//! opening the streams, not of an allocator keeping an earlier point's pages)
//! and stops them at its end.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::check::Verdict;
use crate::contract::Contract;
use crate::http::{Endpoint, KeepAlive};
use crate::procfs::{self, Probe};
use crate::publish::body;
use crate::report::{num, table};
use crate::scenarios::Target;
use crate::stream::{now_us, Group, StreamSpec};
use crate::tokens::Keys;

/// The sizes of the scale-out scenario.
#[derive(Debug, Clone)]
pub struct ScaleSizes {
    /// Gateway counts, one point each; the first is the reference.
    pub gateways: Vec<usize>,
    pub streams_per_gateway: usize,
    pub loaders_per_gateway: usize,
    /// Events per second, published one at a time.
    pub rate: usize,
    pub secs: usize,
}

/// What the coordinator needs besides the Herald target.
pub struct ScaleSetup<'a> {
    pub gateway_bin: &'a Path,
    pub log_dir: &'a Path,
    /// The loopback addresses the loaders' sockets are bound to.
    pub sources: Vec<IpAddr>,
    pub max_connecting: usize,
    pub timeout_scale: u32,
}

fn log(msg: &str) {
    eprintln!("[bench] {msg}");
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// This process's open-file limit (soft), which its children inherit.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_ascii_whitespace().nth(3)?.parse().ok()
}

// ------------------------------------------------------------------ gateways --

/// A loopback port nobody listens on, below the ephemeral range (32768+) so
/// that no outgoing connection holds it, as `scripts/lib/stack.sh` picks them.
fn free_port(salt: usize) -> Result<u16, String> {
    let seed = std::process::id() as usize ^ (now_us() as usize);
    for i in 0..500 {
        let port = 20_000 + (seed.wrapping_mul(7919) + (salt * 500 + i) * 104_729) % 12_000;
        let port = port as u16;
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port in 20000-31999".into())
}

/// One `herald-gateway` this scenario started.
struct Gateway {
    child: Child,
    pid: u32,
    url: String,
    log: PathBuf,
}

impl Gateway {
    /// Starts a gateway with the stack's environment (which `scripts/bench`
    /// exported) on its own port, and waits for its `/readyz`.
    async fn start(bin: &Path, log: PathBuf, salt: usize, ready_within: Duration) -> Result<Self, String> {
        let port = free_port(salt)?;
        let addr = format!("127.0.0.1:{port}");
        let url = format!("http://{addr}");
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .env("HERALD_GATEWAY_ADDR", &addr)
            .env("HERALD_PUBLIC_GATEWAY_URL", &url)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pid = child.id().ok_or("the gateway exited at once")?;
        let mut gw = Self { child, pid, url, log };
        let endpoint = Endpoint::parse(&gw.url)?;
        let deadline = Instant::now() + ready_within;
        loop {
            if let Ok(Some(status)) = gw.child.try_wait() {
                return Err(format!(
                    "gateway {} exited ({status}) before /readyz; see {}",
                    gw.url,
                    gw.log.display()
                ));
            }
            let mut conn = KeepAlive::new(endpoint.clone(), None);
            if let Ok(r) = conn.get("/readyz").await {
                if r.status == 200 {
                    return Ok(gw);
                }
            }
            if Instant::now() >= deadline {
                gw.stop().await;
                return Err(format!(
                    "gateway {} not ready after {} s; see {}",
                    gw.url,
                    ready_within.as_secs(),
                    gw.log.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM (its streams are closed by then), SIGKILL after 15 s.
    async fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                log(&format!("gateway {} ignored SIGTERM for 15 s: SIGKILL", self.pid));
                let _ = self.child.kill().await;
            }
        }
    }
}

// ------------------------------------------------------------------- loaders --

/// One load-generator child process, talked to over its stdin and stdout.
struct Loader {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    name: String,
}

impl Loader {
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        name: String,
        gateway: &str,
        topic: &str,
        streams: usize,
        events: usize,
        sources: &[IpAddr],
        max_connecting: usize,
        deadline_secs: u64,
    ) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("the bench's own path: {e}"))?;
        let sources: Vec<String> = sources.iter().map(IpAddr::to_string).collect();
        let mut child = Command::new(exe)
            .args([
                "--scale-loader",
                "--gateway",
                gateway,
                "--topic",
                topic,
                "--streams",
                &streams.to_string(),
                "--events",
                &events.to_string(),
                "--sources",
                &sources.join(","),
                "--max-connecting",
                &max_connecting.to_string(),
                "--deadline-secs",
                &deadline_secs.to_string(),
                "--name",
                &name,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting load generator {name}: {e}"))?;
        let pid = child.id().ok_or("a load generator exited at once")?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        Ok(Self {
            child,
            pid,
            stdin,
            lines: BufReader::new(stdout).lines(),
            name,
        })
    }

    /// The next line that starts with `word`, or an error naming what came
    /// instead (another line, the end of its output, the deadline).
    async fn expect(&mut self, word: &str, deadline: Instant) -> Result<String, String> {
        match tokio::time::timeout_at(deadline.into(), self.lines.next_line()).await {
            Err(_) => Err(format!("{}: no `{word}` before the deadline", self.name)),
            Ok(Err(e)) => Err(format!("{}: reading its output: {e}", self.name)),
            Ok(Ok(None)) => Err(format!("{}: exited before `{word}`", self.name)),
            Ok(Ok(Some(line))) => match line.strip_prefix(word) {
                Some(rest) => Ok(rest.trim().to_owned()),
                None => Err(format!("{}: expected `{word}`, got `{line}`", self.name)),
            },
        }
    }

    async fn say(&mut self, line: &str) {
        let _ = self.stdin.write_all(format!("{line}\n").as_bytes()).await;
        let _ = self.stdin.flush().await;
    }
}

/// `herald-bench --scale-loader …`: one load-generator process. See the
/// module comment for its protocol.
pub async fn loader(argv: Vec<String>) -> Result<bool, String> {
    let mut gateway = None;
    let mut topic = None;
    let (mut streams, mut events, mut max_connecting, mut deadline_secs) = (0usize, 0usize, 128usize, 300u64);
    let mut sources: Vec<IpAddr> = Vec::new();
    let mut name = String::from("loader");
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let count = |v: String| v.parse::<usize>().map_err(|_| format!("`{v}` is not a count"));
        match flag.as_str() {
            "--scale-loader" => {}
            "--gateway" => gateway = Some(Endpoint::parse(&value()?)?),
            "--topic" => topic = Some(value()?),
            "--streams" => streams = count(value()?)?,
            "--events" => events = count(value()?)?,
            "--max-connecting" => max_connecting = count(value()?)?.max(1),
            "--deadline-secs" => deadline_secs = count(value()?)? as u64,
            "--name" => name = value()?,
            "--sources" => {
                for s in value()?.split(',').filter(|s| !s.is_empty()) {
                    sources.push(s.parse().map_err(|_| format!("--sources: bad address `{s}`"))?);
                }
            }
            other => return Err(format!("--scale-loader: unknown argument `{other}`")),
        }
    }
    let gateway = gateway.ok_or("--scale-loader needs --gateway")?;
    let topic = topic.ok_or("--scale-loader needs --topic")?;
    let keys = Keys {
        secret: std::env::var("HERALD_JWT_SECRET").map_err(|_| "HERALD_JWT_SECRET must be set")?,
        audience: std::env::var("HERALD_JWT_AUDIENCE").unwrap_or_else(|_| "herald".into()),
    };
    let reader: Arc<str> = keys.reader()?.into();
    let specs: Vec<StreamSpec> = (0..streams)
        .map(|i| StreamSpec {
            endpoint: gateway.clone(),
            source: (!sources.is_empty()).then(|| sources[i % sources.len()]),
            path: format!("/v1/stream?topics={topic}"),
            topics: vec![topic.clone()],
            authorization: reader.clone(),
            expected: events,
            dense: true,
            last_event_id: None,
            record_times: false,
            collect: false,
            read_buffer: 2048,
            contract: Contract::Herald,
            progress: None,
            // 60,000 closed at the end of a point would otherwise sit in
            // TIME_WAIT and slow the next point's connects to a crawl.
            reset_on_close: true,
        })
        .collect();
    let started = now_us();
    let group = Group::spawn(specs, Some(max_connecting), false);
    let ready = group.wait_ready(Duration::from_secs(deadline_secs)).await;
    let open_s = (now_us() - started) as f64 / 1e6;
    println!("ready {} {ready} {open_s:.3}", group.ready.get());
    let stdin = tokio::io::stdin();
    let mut commands = BufReader::new(stdin).lines();
    // Events come once the coordinator publishes: `go` says it has started.
    let go = commands.next_line().await.ok().flatten();
    if go.as_deref() == Some("go") {
        let done = group.wait_done(Duration::from_secs(deadline_secs)).await;
        println!("done {} {done}", group.done.get());
        // Until `finish` (or the coordinator's end): the streams stay open,
        // so that a late duplicate would still be seen.
        let _ = commands.next_line().await;
    }
    let reports = group.finish().await;
    let mut verdict = Verdict::default();
    verdict.streams(&reports);
    let mut fingerprints: BTreeMap<u64, usize> = BTreeMap::new();
    for r in reports.iter().filter(|r| r.unique == r.expected) {
        *fingerprints.entry(r.fingerprint).or_default() += 1;
    }
    let result = json!({
        "name": name,
        "verdict": verdict.json(),
        "fingerprints": fingerprints.iter().map(|(f, n)| json!([f.to_string(), n])).collect::<Vec<_>>(),
        "open_s": round(open_s, 3),
    });
    println!("result {result}");
    Ok(verdict.ok())
}

// --------------------------------------------------------------- coordinator --

/// One point: `gateways` fresh gateways, their streams, the publishing window.
async fn point(
    herald: &Target,
    setup: &ScaleSetup<'_>,
    s: &ScaleSizes,
    gateways: usize,
) -> (Map<String, Value>, Verdict) {
    let mut m = Map::new();
    let mut verdict = Verdict::default();
    let scale = u64::from(setup.timeout_scale.max(1));
    let mut gws: Vec<Gateway> = Vec::new();
    for i in 0..gateways {
        let log_path = setup
            .log_dir
            .join(format!("scale-{gateways}gw-gateway{}.log", i + 1));
        match Gateway::start(
            setup.gateway_bin,
            log_path,
            gateways * 10 + i,
            Duration::from_secs(60 * scale),
        )
        .await
        {
            Ok(g) => gws.push(g),
            Err(e) => {
                verdict.problem(e);
                for g in &mut gws {
                    g.stop().await;
                }
                return (m, verdict);
            }
        }
    }
    let outcome = measure(herald, setup, s, &gws, &mut m, &mut verdict).await;
    if let Err(e) = outcome {
        verdict.problem(e);
    }
    for g in &mut gws {
        g.stop().await;
    }
    (m, verdict)
}

async fn measure(
    herald: &Target,
    setup: &ScaleSetup<'_>,
    s: &ScaleSizes,
    gws: &[Gateway],
    m: &mut Map<String, Value>,
    verdict: &mut Verdict,
) -> Result<(), String> {
    let scale = u64::from(setup.timeout_scale.max(1));
    let topic = format!("bench:scale-{}-{}gw-{}", std::process::id(), gws.len(), now_us());
    let events = s.rate * s.secs;
    let streams = s.streams_per_gateway * gws.len();
    // A freshly started process settles its allocations first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0: Vec<u64> = gws.iter().map(|g| procfs::rss_kib(g.pid).unwrap_or(0)).collect();

    let per_loader = s.streams_per_gateway.div_ceil(s.loaders_per_gateway.max(1));
    // A gateway holds one descriptor per stream (plus its pools), and so
    // does a loader: say so before opening thousands of streams in vain.
    if let Some(limit) = open_file_limit() {
        if s.streams_per_gateway as u64 + 256 > limit {
            return Err(format!(
                "{} streams per gateway need more than the open-file limit of {limit} \
                 (raise it, `ulimit -n`, or set scale.streams_per_gateway)",
                s.streams_per_gateway
            ));
        }
    }
    let open_deadline = 120 * scale + (streams / 200) as u64;
    let done_deadline = s.secs as u64 + 120 * scale;
    let mut loaders: Vec<Loader> = Vec::new();
    for (gi, g) in gws.iter().enumerate() {
        let mut left = s.streams_per_gateway;
        for li in 0..s.loaders_per_gateway.max(1) {
            let n = per_loader.min(left);
            left -= n;
            if n == 0 {
                break;
            }
            let k = loaders.len();
            // Each loader starts at its own source address, so that every
            // address carries about the same number of streams.
            let mut sources = setup.sources.clone();
            if !sources.is_empty() {
                let by = k % sources.len();
                sources.rotate_left(by);
            }
            loaders.push(Loader::spawn(
                format!("loader {}.{}", gi + 1, li + 1),
                &g.url,
                &topic,
                n,
                events,
                &sources,
                setup.max_connecting,
                open_deadline.max(done_deadline),
            )?);
        }
    }
    let tcp0 = procfs::tcp_counters();
    let opened_at = Instant::now();
    let deadline = opened_at + Duration::from_secs(open_deadline + 10);
    let mut opened = 0usize;
    for l in &mut loaders {
        let line = l.expect("ready", deadline).await?;
        let mut parts = line.split_ascii_whitespace();
        let n: usize = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        opened += n;
        if parts.next() != Some("true") {
            verdict.problem(format!("{}: only {n} of its streams opened", l.name));
        }
    }
    let open_s = opened_at.elapsed().as_secs_f64();
    if opened < streams {
        // Nothing to measure: close what did open and keep its verdict.
        for l in &mut loaders {
            l.say("finish").await;
        }
        collect(&mut loaders, verdict, Duration::from_secs(60 * scale)).await?;
        return Err(format!("only {opened} of {streams} streams opened"));
    }
    let tcp_open = procfs::delta(&tcp0, &procfs::tcp_counters());
    log(&format!(
        "scale {} gateways: {opened} of {streams} streams open in {open_s:.1} s",
        gws.len()
    ));
    // Idle: let the gateways settle, then their RSS.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss1: Vec<u64> = gws.iter().map(|g| procfs::rss_kib(g.pid).unwrap_or(0)).collect();
    let growth: u64 = rss1.iter().zip(&rss0).map(|(a, b)| a.saturating_sub(*b)).sum();

    let mut servers: Vec<(String, u32)> = herald
        .probe
        .servers
        .iter()
        .filter(|(label, _)| label != "gateway")
        .cloned()
        .collect();
    servers.extend(gws.iter().map(|g| ("gateway".to_owned(), g.pid)));
    servers.extend(loaders.iter().map(|l| ("load".to_owned(), l.pid)));
    let probe = Probe {
        servers,
        ..herald.probe.clone()
    };
    for l in &mut loaders {
        l.say("go").await;
    }
    let s0 = probe.sample();
    let window0 = Instant::now();
    let bodies = Arc::new(
        (0..events)
            .map(|n| body(&topic, n as i64, ""))
            .collect::<Vec<_>>(),
    );
    let interval = Duration::from_secs_f64(1.0 / s.rate.max(1) as f64);
    let out = herald.publisher.all(bodies, 2, Some(interval), false).await;
    verdict.publishing(&out);
    let deadline = Instant::now() + Duration::from_secs(done_deadline);
    for l in &mut loaders {
        let line = l.expect("done", deadline).await?;
        if !line.ends_with("true") {
            verdict.problem(format!(
                "{}: not every stream got every event ({line} done)",
                l.name
            ));
        }
    }
    let s1 = probe.sample();
    let window_s = window0.elapsed().as_secs_f64();
    for l in &mut loaders {
        l.say("finish").await;
    }
    collect(&mut loaders, verdict, Duration::from_secs(60 * scale)).await?;

    let cpu = probe.cpu_seconds(&s0, &s1);
    let c = |k: &str| cpu.get(k).copied().unwrap_or(0.0);
    let deliveries = verdict.delivered as f64;
    let gateway_cpu = c("gateway");
    let server_cpu = c("api") + c("worker") + gateway_cpu;
    m.insert("gateways".into(), json!(gws.len()));
    m.insert("streams".into(), json!(streams));
    m.insert("streams_opened".into(), json!(opened));
    m.insert("loaders".into(), json!(loaders.len()));
    m.insert("events".into(), json!(events));
    m.insert("accepted".into(), json!(out.accepted));
    m.insert("offered_per_s".into(), json!(s.rate));
    m.insert("deliveries".into(), json!(verdict.delivered));
    m.insert("open_s".into(), json!(round(open_s, 3)));
    m.insert("tcp_while_opening".into(), tcp_open);
    m.insert("window_s".into(), json!(round(window_s, 3)));
    m.insert(
        "cpu_s".into(),
        Value::Object(
            cpu.iter()
                .map(|(k, v)| (k.clone(), json!(round(*v, 3))))
                .collect(),
        ),
    );
    m.insert("gateway_cpu_s".into(), json!(round(gateway_cpu, 3)));
    m.insert("server_cpu_s".into(), json!(round(server_cpu, 3)));
    m.insert(
        "gateway_cpu_us_per_delivery".into(),
        json!(round(gateway_cpu * 1e6 / deliveries.max(1.0), 3)),
    );
    m.insert(
        "server_cpu_us_per_delivery".into(),
        json!(round(server_cpu * 1e6 / deliveries.max(1.0), 3)),
    );
    m.insert(
        "deliveries_per_server_cpu_s".into(),
        json!(round(deliveries / server_cpu.max(1e-9), 0)),
    );
    m.insert(
        "deliveries_per_gateway_cpu_s".into(),
        json!(round(deliveries / gateway_cpu.max(1e-9), 0)),
    );
    m.insert("gateway_rss_before_kib".into(), json!(rss0));
    m.insert("gateway_rss_open_kib".into(), json!(rss1));
    m.insert(
        "rss_per_stream_kib".into(),
        json!(round(growth as f64 / opened.max(1) as f64, 2)),
    );
    Ok(())
}

/// Reads every loader's `result`, adds its verdict, and checks that every
/// complete stream of every loader saw the same sequence (one topic).
async fn collect(loaders: &mut [Loader], verdict: &mut Verdict, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut fingerprints: BTreeMap<String, usize> = BTreeMap::new();
    for l in loaders.iter_mut() {
        let line = l.expect("result", deadline).await?;
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{}: its result: {e}", l.name))?;
        verdict.absorb(&v["verdict"]);
        for f in v["fingerprints"].as_array().into_iter().flatten() {
            if let (Some(fp), Some(n)) = (f[0].as_str(), f[1].as_u64()) {
                *fingerprints.entry(fp.to_owned()).or_default() += n as usize;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), l.child.wait()).await;
    }
    if fingerprints.len() > 1 {
        let most = fingerprints.values().max().copied().unwrap_or(0);
        let differ: usize = fingerprints.values().sum::<usize>() - most;
        verdict.order_disagreements += differ as u64;
        verdict.problem(format!(
            "{differ} streams saw a different sequence than the others"
        ));
    }
    Ok(())
}

/// Runs every point and prints the table; returns the JSON of the points.
pub async fn run(herald: &Target, setup: &ScaleSetup<'_>, s: &ScaleSizes, correct: &mut bool) -> Value {
    let mut points: Vec<(Map<String, Value>, Verdict)> = Vec::new();
    for &g in &s.gateways {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let (m, v) = point(herald, setup, s, g).await;
        log(&format!(
            "scale {g} gateways × {} streams, {} events at {}/s: {} ({:.1} s)",
            s.streams_per_gateway,
            s.rate * s.secs,
            s.rate,
            v.summary(),
            started.elapsed().as_secs_f64()
        ));
        *correct &= v.ok();
        points.push((m, v));
    }
    let f = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);
    let reference = points
        .first()
        .and_then(|(m, _)| f(m, "gateway_cpu_us_per_delivery"));
    let mut lines = Vec::new();
    let mut out = Vec::new();
    for (m, v) in &points {
        let cpu = m.get("cpu_s").cloned().unwrap_or(json!({}));
        let c = |k: &str| cpu.get(k).and_then(Value::as_f64);
        let ratio = match (f(m, "gateway_cpu_us_per_delivery"), reference) {
            (Some(x), Some(r)) if r > 0.0 => Some(x / r),
            _ => None,
        };
        // Counts: thousands separated, never decimals.
        let int = |k: &str| match m.get(k).and_then(Value::as_u64) {
            Some(v) if v >= 1000 => num(Some(v as f64)),
            Some(v) => v.to_string(),
            None => "—".into(),
        };
        lines.push(vec![
            int("gateways"),
            int("streams"),
            int("events"),
            num(f(m, "deliveries")),
            if v.ok() { "exact".into() } else { "FAIL".into() },
            num(f(m, "gateway_cpu_s")),
            num(c("api").zip(c("worker")).map(|(a, w)| a + w)),
            num(f(m, "deliveries_per_server_cpu_s")),
            num(f(m, "gateway_cpu_us_per_delivery")),
            ratio.map_or_else(|| "—".into(), |r| format!("{r:.2}×")),
            num(f(m, "rss_per_stream_kib")),
            num(f(m, "open_s")),
            num(c("load")),
            num(c("postgres")),
            num(c("redis")),
            num(c("other")),
            num(c("machine")),
        ]);
        let mut p = m.clone();
        p.insert(
            "gateway_cost_ratio_to_first".into(),
            json!(ratio.map(|r| round(r, 3))),
        );
        p.insert("correctness".into(), v.json());
        out.push(Value::Object(p));
    }
    println!(
        "\nScale-out: one topic followed by every stream, {} streams per gateway, {} events at {}/s \
         (CPU in seconds over the publishing window)\n",
        s.streams_per_gateway,
        s.rate * s.secs,
        s.rate
    );
    print!(
        "{}",
        table(
            &[
                "gateways",
                "streams",
                "events",
                "deliveries",
                "",
                "gateways CPU-s",
                "api+worker",
                "deliveries/server CPU-s",
                "gw µs/delivery",
                "÷ first",
                "RSS KiB/stream",
                "open s",
                "load gen",
                "postgres",
                "redis",
                "other",
                "machine",
            ],
            &lines
        )
    );
    json!(out)
}
