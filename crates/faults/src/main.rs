//! `herald-faults`: the driver of `scripts/fault-suite`.
//!
//! It opens `--clients` SSE streams through the load balancer (each reconnecting by
//! itself with `Last-Event-ID`, like a browser), publishes at a fixed `--rate` with a
//! unique payload id per request, and applies the faults in turn by running the shell
//! commands it was given. For every phase it accounts for each event: accepted, refused
//! with 503, unknown (no answer), received by each client, lost, duplicated, out of order,
//! and how long the system took to deliver everything accepted until the fault healed.
//!
//! ```text
//! herald-faults --api URL --gateway URL [--clients 40] [--rate 50] [--topics 4]
//!     [--topics-per-client 2] [--steady 2] [--recovery-bound 30] [--recovery-timeout 60]
//!     [--connect-timeout 30] [--mode NAME] [--gateway-name ADDR=NAME]...
//!     [--report PREFIX]
//!     [--idle-timeout 45]
//!     (--fault NAME [--inject CMD] [--hold SECS] [--heal CMD] [--expect-503]
//!      [--expect-kept GATEWAY] [--expect-moved GATEWAY])...
//! ```
//!
//! Tokens are minted here from `HERALD_JWT_SECRET` (HS256, audience
//! `HERALD_JWT_AUDIENCE`, issuer `HERALD_JWT_ISSUER` when set). Commands run with
//! `sh -c`. The report is printed and written to `PREFIX.json` and `PREFIX.txt`; the
//! exit status is 0 only when every phase passed.

mod client;
mod config;
mod hostile;
mod partition;
mod publisher;
mod report;
mod rolling;
mod soak;
mod tokens;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::client::ClientState;
use crate::config::{Config, FaultSpec};
use crate::publisher::PubRecord;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Locks a mutex; a panicked holder leaves plain counters behind, so keep going.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the clients, the publisher and the conductor.
pub struct Shared {
    t0: Instant,
    /// `t0` as seconds since the Unix epoch, to line the report up with service logs.
    pub t0_unix: f64,
    phase: AtomicUsize,
    pub topics: Vec<String>,
    pub clients: Vec<Arc<ClientState>>,
    /// One record per publish attempt, indexed by payload id (`pid`).
    pub pubs: Mutex<Vec<PubRecord>>,
    /// What the clients saw of each `pid`.
    pub seen: Mutex<Vec<client::Seen>>,
    /// Deliveries whose `seq` differed from the one another client saw for that `pid`
    /// in the same epoch (see `client::ClientInner::epoch`).
    pub seq_mismatches: AtomicU64,
    /// Which pid each `(epoch, seq)` was shown with: a `seq` shown with two pids in one
    /// epoch was given to two events.
    pub seq_owners: Mutex<std::collections::HashMap<(u32, i64), usize>>,
    /// Deliveries whose `(epoch, seq)` had been shown with another pid.
    pub seq_reuses: AtomicU64,
    /// Positions shown with one pid before a rewind and with another after it: reused,
    /// and covered by the `herald.reset` every client got.
    pub seqs_reused_across_rewind: AtomicU64,
    /// A client drops a stream silent this long (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// A client's stream lifetime under churn (`--churn`).
    pub churn: Option<Duration>,
    /// Set while a fault is being measured: no client churns then, so every stream
    /// that closes did so because of the fault.
    pub churn_paused: AtomicBool,
}

impl Shared {
    /// Seconds since the driver started.
    pub fn now(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// `HH:MM:SS.mmm` (UTC) of a time in seconds since start, as the services log it.
    pub fn wall_clock(&self, t: f64) -> String {
        let ms = ((self.t0_unix + t) * 1000.0) as u64 % 86_400_000;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }

    pub fn phase(&self) -> usize {
        self.phase.load(Ordering::Relaxed)
    }
}

/// What happened in one phase, as observed by the conductor.
#[derive(Debug, Clone, Default)]
pub struct PhaseRun {
    pub name: String,
    pub inject: Option<String>,
    pub heal: Option<String>,
    pub hold: f64,
    pub expect_503: bool,
    pub expect_rewind: bool,
    pub commit_in_doubt: bool,
    pub start: f64,
    pub end: f64,
    pub fault_start: Option<f64>,
    pub heal_end: Option<f64>,
    /// When every client had every event accepted before `heal_end`.
    pub recovered_at: Option<f64>,
    pub command_errors: Vec<String>,
    /// Where the clients' streams were connected (upstream address) when the phase
    /// started, and once it recovered.
    pub upstreams_before: BTreeMap<String, usize>,
    pub upstreams_after: BTreeMap<String, usize>,
    /// A rolling restart: each gateway's turn.
    pub drains: Vec<rolling::DrainStep>,
    /// The hostile-client stage: one result per attack and target.
    pub attacks: Vec<hostile::AttackResult>,
    /// What the streams did across a partition (`--expect-kept`, `--expect-moved`).
    pub streams: Vec<partition::Verdict>,
}

fn main() {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald-faults: {e}\n\n{}", config::USAGE);
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herald-faults: cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("herald-faults: {e}");
            std::process::exit(2);
        }
    }
}

fn say(shared: &Shared, msg: impl AsRef<str>) {
    let now = shared.now();
    eprintln!("[faults {now:7.2}s {}] {}", shared.wall_clock(now), msg.as_ref());
}

async fn run(config: Config) -> Result<bool> {
    // A stream never outlives its token: the tokens outlast the run.
    let run_seconds = config.soak.as_ref().map_or(0.0, |s| s.seconds);
    let keys = tokens::Keys::from_env(run_seconds + 3600.0)?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let topics: Vec<String> = (0..config.topics)
        .map(|t| format!("fault:{}-t{t}", &run_id[run_id.len() - 8..]))
        .collect();
    let clients = (0..config.clients)
        .map(|i| {
            let picked = (0..config.topics_per_client)
                .map(|k| (i + k) % config.topics)
                .collect();
            Arc::new(ClientState::new(i, picked, config.topics))
        })
        .collect();
    let t0_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        t0_unix,
        phase: AtomicUsize::new(0),
        topics,
        clients,
        pubs: Mutex::new(Vec::new()),
        seen: Mutex::new(Vec::new()),
        seq_mismatches: AtomicU64::new(0),
        seq_owners: Mutex::new(std::collections::HashMap::new()),
        seq_reuses: AtomicU64::new(0),
        seqs_reused_across_rewind: AtomicU64::new(0),
        idle_timeout: secs(config.idle_timeout),
        churn: config.churn.map(secs),
        churn_paused: AtomicBool::new(false),
    });

    let stream_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()?;
    let (stop_clients, stop_rx) = watch::channel(false);
    let mut client_tasks = tokio::task::JoinSet::new();
    for c in &shared.clients {
        let token = keys.user_token(&format!("fault-client-{}", c.idx), &["fault:*"])?;
        client_tasks.spawn(client::run(
            shared.clone(),
            c.clone(),
            stream_http.clone(),
            config.gateway.clone(),
            token,
            stop_rx.clone(),
        ));
    }

    say(
        &shared,
        format!("{} clients connecting through {}", config.clients, config.gateway),
    );
    let deadline = shared.now() + config.connect_timeout;
    loop {
        let ready = shared.clients.iter().filter(|c| lock(&c.inner).ready).count();
        if ready == shared.clients.len() {
            break;
        }
        if shared.now() > deadline {
            let _ = stop_clients.send(true);
            return Err(format!(
                "only {ready} of {} clients opened their stream within {}s",
                shared.clients.len(),
                config.connect_timeout
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(
        &shared,
        format!("all clients streaming: {:?}", upstreams(&shared, &config)),
    );

    let publish_http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .build()?;
    let (stop_publisher, pub_stop_rx) = watch::channel(false);
    let publisher = tokio::spawn(publisher::run(
        shared.clone(),
        publish_http,
        config.api.clone(),
        keys.service_token("fault-publisher")?,
        config.rate,
        pub_stop_rx,
    ));

    // Opens streams through the load balancer while a gateway drains.
    let probe_token = keys.user_token("fault-probe", &["fault:*"])?;
    let hostile_targets = hostile::Targets {
        config: &config,
        service_token: keys.service_token("fault-hostile")?,
        user_token: keys.user_token("fault-hostile", &["fault:*", "hostile:*"])?,
        run_id: run_id.clone(),
    };
    // The soak's sampler: every --sample-interval from now until the end.
    let (stop_sampler, sampler_stop_rx) = watch::channel(false);
    let sampler = config.soak.as_ref().map(|soak| {
        tokio::spawn(sample_loop(
            shared.clone(),
            config.clone(),
            soak.clone(),
            sampler_stop_rx,
        ))
    });
    let mut phases = Vec::new();
    let baseline_start = shared.now();
    let mut baseline = PhaseRun {
        name: "baseline".into(),
        start: baseline_start,
        upstreams_before: upstreams(&shared, &config),
        ..PhaseRun::default()
    };
    say(
        &shared,
        format!("baseline: publishing {}/s for {}s", config.rate, config.steady),
    );
    tokio::time::sleep(secs(config.steady)).await;
    baseline.upstreams_after = upstreams(&shared, &config);
    phases.push(baseline);

    let schedule = schedule(&config, baseline_start);
    for (i, (fault, fault_at)) in schedule.iter().enumerate() {
        let now = shared.now();
        if let Some(prev) = phases.last_mut() {
            prev.end = now;
        }
        shared.phase.store(i + 1, Ordering::Relaxed);
        let fault_at = fault_at.unwrap_or(now + config.steady);
        let run = run_fault(
            &shared,
            &config,
            fault,
            now,
            fault_at,
            &probe_token,
            &hostile_targets,
        )
        .await;
        phases.push(run);
    }

    let end_at = match &config.soak {
        Some(soak) => (baseline_start + soak.seconds).max(shared.now() + config.steady),
        None => shared.now() + config.steady,
    };
    say(
        &shared,
        format!("final steady period of {:.0}s", end_at - shared.now()),
    );
    tokio::time::sleep(secs(end_at - shared.now())).await;
    let _ = stop_publisher.send(true);
    let publisher_stats = publisher.await.unwrap_or_default();
    let end = shared.now();
    if let Some(last) = phases.last_mut() {
        last.end = end;
    }
    say(
        &shared,
        "publisher stopped; waiting for every client to have every accepted event",
    );
    let drained = wait_caught_up(&shared, f64::INFINITY, config.recovery_timeout).await;
    let drain = report::Drain {
        seconds: drained.map(|t| t - end),
        lagging_clients: if drained.is_some() {
            0
        } else {
            lagging(&shared, f64::INFINITY)
        },
    };

    let _ = stop_clients.send(true);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(stop_deadline);
    loop {
        tokio::select! {
            next = client_tasks.join_next() => if next.is_none() { break },
            _ = &mut stop_deadline => { client_tasks.abort_all(); break }
        }
    }

    let samples = match sampler {
        Some(task) => {
            let _ = stop_sampler.send(true);
            task.await.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let mut report = report::build(&shared, &config, &phases, &publisher_stats, &drain, &run_id);
    let mut text = report::render_text(&report);
    create_parent(&config.report)?;
    if let Some(soak) = &config.soak {
        let names: Vec<String> = phases.iter().map(|p| p.name.clone()).collect();
        create_parent(&soak.samples_csv)?;
        std::fs::write(
            &soak.samples_csv,
            soak::to_csv(&samples, &names, |t| shared.wall_clock(t)),
        )?;
        let growth = soak::analyse(&samples, soak);
        text = soak::finish_report(&mut report, text, &growth, soak, &samples, &|t| {
            shared.wall_clock(t)
        });
    }
    println!("{text}");
    std::fs::write(format!("{}.txt", config.report), &text)?;
    std::fs::write(
        format!("{}.json", config.report),
        serde_json::to_string_pretty(&report.json)?,
    )?;
    eprintln!(
        "report written to {}.txt and {}.json",
        config.report, config.report
    );
    Ok(report.passed)
}

/// Creates the folder `path` is in.
fn create_parent(path: &str) -> Result<()> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    Ok(())
}

/// The faults in the order they run, each with when it is due (seconds since start;
/// `None`: after `--steady`). A soak cycles through the faults given, one every
/// `--fault-interval` after publishing began, as long as a fault due then still leaves
/// a minute (or one interval, if shorter) before the end; a repeated fault is named
/// `NAME #k`.
fn schedule(config: &Config, start: f64) -> Vec<(FaultSpec, Option<f64>)> {
    let Some(soak) = &config.soak else {
        return config.faults.iter().map(|f| (f.clone(), None)).collect();
    };
    let tail = soak.fault_interval.min(60.0);
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for k in 1.. {
        let at = start + soak.fault_interval * k as f64;
        if at > start + soak.seconds - tail || config.faults.is_empty() {
            break;
        }
        let mut f = config.faults[(k - 1) % config.faults.len()].clone();
        let n = seen.entry(f.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            f.name = format!("{} #{n}", f.name);
        }
        out.push((f, Some(at)));
    }
    out
}

/// Samples every `--sample-interval` until stopped: the `--sample` command's values,
/// and where the clients stream (`GATEWAY.clients`). A command that fails or hangs
/// (a service that does not answer in the middle of a fault) leaves its values out.
async fn sample_loop(
    shared: Arc<Shared>,
    config: Config,
    soak: config::SoakConfig,
    mut stop: watch::Receiver<bool>,
) -> Vec<soak::Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(secs(soak.sample_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let t = shared.now();
        let phase = shared.phase();
        let mut values = match &soak.sample {
            Some(cmd) => match tokio::time::timeout(Duration::from_secs(30), run_command_quiet(cmd)).await {
                Ok(Ok(text)) => soak::parse_sample(&text),
                Ok(Err(e)) => {
                    say(&shared, format!("sample: {e}"));
                    BTreeMap::new()
                }
                Err(_) => {
                    say(&shared, "sample: no answer within 30s");
                    BTreeMap::new()
                }
            },
            None => BTreeMap::new(),
        };
        for (gateway, n) in upstreams(&shared, &config) {
            values.insert(format!("{gateway}.clients"), n as f64);
        }
        // The driver's own memory (not judged: it keeps every record by design).
        if let Some(rss) = own_rss_bytes() {
            values.insert("driver.rss_bytes".into(), rss);
        }
        soak::derive(&mut values);
        out.push(soak::Sample { t, phase, values });
    }
    out
}

/// This process's resident memory, from `/proc/self/status`.
fn own_rss_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

#[allow(clippy::too_many_arguments)]
async fn run_fault(
    shared: &Arc<Shared>,
    config: &Config,
    fault: &FaultSpec,
    start: f64,
    fault_at: f64,
    probe_token: &str,
    hostile_targets: &hostile::Targets<'_>,
) -> PhaseRun {
    let mut run = PhaseRun {
        name: fault.name.clone(),
        inject: fault.inject.clone(),
        heal: fault.heal.clone(),
        hold: fault.hold,
        expect_503: fault.expect_503,
        expect_rewind: fault.expect_rewind,
        commit_in_doubt: fault.commit_in_doubt,
        start,
        ..PhaseRun::default()
    };
    if let Some(cmd) = &fault.prepare {
        say(shared, format!("{}: prepare: {cmd}", fault.name));
        if let Err(e) = run_command(cmd).await {
            run.command_errors.push(format!("prepare: {e}"));
        }
    }
    run.upstreams_before = upstreams(shared, config);
    let steady = (fault_at - shared.now()).max(0.0);
    say(shared, format!("{}: steady for {steady:.0}s", fault.name));
    tokio::time::sleep(secs(steady)).await;

    shared.churn_paused.store(true, Ordering::Relaxed);
    run.fault_start = Some(shared.now());
    if !fault.drain.is_empty() {
        run.drains = rolling::run(shared, config, fault, probe_token).await;
    }
    if fault.hostile {
        say(
            shared,
            format!("{}: attacking every service directly", fault.name),
        );
        run.attacks = hostile::run(hostile_targets).await;
        for a in &run.attacks {
            let verdict = a.failure.as_deref().unwrap_or(&a.detail);
            let mark = if a.failure.is_some() { "FAILED" } else { "ok" };
            say(
                shared,
                format!("{}: {} on {}: {mark}: {verdict}", fault.name, a.attack, a.target),
            );
        }
    }
    if let Some(cmd) = &fault.inject {
        say(shared, format!("{}: inject: {cmd}", fault.name));
        if let Err(e) = run_command(cmd).await {
            run.command_errors.push(format!("inject: {e}"));
        }
    }
    if fault.hold > 0.0 {
        say(
            shared,
            format!("{}: holding the fault for {}s", fault.name, fault.hold),
        );
        tokio::time::sleep(secs(fault.hold)).await;
    }
    if let Some(cmd) = &fault.heal {
        say(shared, format!("{}: heal: {cmd}", fault.name));
        if let Err(e) = run_command(cmd).await {
            run.command_errors.push(format!("heal: {e}"));
        }
    }
    let heal_end = shared.now();
    run.heal_end = Some(heal_end);
    say(
        shared,
        format!("{}: healed; waiting for every client to catch up", fault.name),
    );
    run.recovered_at = wait_recovered(shared, config, heal_end).await;
    match run.recovered_at {
        Some(t) => say(
            shared,
            format!(
                "{}: recovered {:.2}s after the fault started",
                fault.name,
                t - run.fault_start.unwrap_or(t)
            ),
        ),
        None => say(
            shared,
            format!(
                "{}: NOT recovered after {}s ({} clients lagging)",
                fault.name,
                config.recovery_timeout,
                lagging(shared, heal_end)
            ),
        ),
    }
    run.upstreams_after = upstreams(shared, config);
    let (from, to) = (
        run.fault_start.unwrap_or(start),
        run.recovered_at.unwrap_or_else(|| shared.now()),
    );
    for gateway in &fault.expect_kept {
        run.streams
            .push(partition::kept(shared, config, gateway, from, to));
    }
    for gateway in &fault.expect_moved {
        run.streams
            .push(partition::moved(shared, config, gateway, from, to));
    }
    for v in &run.streams {
        say(shared, format!("{}: {}", fault.name, v.line));
    }
    shared.churn_paused.store(false, Ordering::Relaxed);
    run
}

/// Runs `cmd` with `sh -c`, its output going to ours; fails on a non-zero exit.
async fn run_command(cmd: &str) -> Result<(), String> {
    let owned = cmd.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&owned)
            .stdin(std::process::Stdio::null())
            .status()
    })
    .await
    .map_err(|e| format!("the command task failed: {e}"))?
    .map_err(|e| format!("cannot run sh: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` exited with {status}"))
    }
}

/// `sh -c cmd` with no stdin and our stderr, its output collected.
async fn sh_output(cmd: &str) -> Result<std::process::Output, String> {
    let owned = cmd.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&owned)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await
    .map_err(|e| format!("the command task failed: {e}"))?
    .map_err(|e| format!("cannot run sh: {e}"))
}

/// Runs `cmd` with `sh -c` and returns its stdout, which is not copied anywhere (its
/// stderr goes to ours); fails on a non-zero exit. The command must bound its own
/// waits (the suite's sampler runs every client under `timeout`).
async fn run_command_quiet(cmd: &str) -> Result<String, String> {
    let out = sh_output(cmd).await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`{cmd}` exited with {}", out.status))
    }
}

/// Like [`run_command`], but returns what the command wrote to stdout (and copies it
/// to our stderr, where the rest of the commands' output goes).
async fn run_command_output(cmd: &str) -> Result<String, String> {
    let out = sh_output(cmd).await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprint!("{stdout}");
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("`{cmd}` exited with {}", out.status))
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Where the clients are connected now: upstream name (or address) → clients.
fn upstreams(shared: &Shared, config: &Config) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for c in &shared.clients {
        let name = match &lock(&c.inner).upstream {
            Some(addr) => config
                .gateway_names
                .get(addr)
                .cloned()
                .unwrap_or_else(|| addr.clone()),
            None => "disconnected".to_owned(),
        };
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// For each topic, the pids published in phase `since_phase` or later and accepted
/// (202) no later than `cutoff`, ascending.
fn targets(shared: &Shared, cutoff: f64, since_phase: usize) -> Vec<Vec<usize>> {
    let mut per_topic = vec![Vec::new(); shared.topics.len()];
    for (pid, r) in lock(&shared.pubs).iter().enumerate() {
        if r.is_accepted() && r.done <= cutoff && r.phase >= since_phase {
            per_topic[r.topic].push(pid);
        }
    }
    per_topic
}

/// Advances each client's position in each of its topics' target lists past what it
/// has received; returns how many clients still miss something.
fn advance(shared: &Shared, targets: &[Vec<usize>], frontier: &mut [Vec<usize>]) -> usize {
    let mut behind = 0;
    let pubs = lock(&shared.pubs);
    for (c, pos) in shared.clients.iter().zip(frontier.iter_mut()) {
        let inner = lock(&c.inner);
        let mut complete = true;
        for (slot, topic) in c.topics.iter().enumerate() {
            let list = &targets[*topic];
            let p = &mut pos[slot];
            // An event a rewind took from this client is not waited for (see
            // `ClientInner::lost_to_rewind`).
            while *p < list.len() && (inner.got.count(list[*p]) > 0 || inner.lost_to_rewind(&pubs[list[*p]]))
            {
                *p += 1;
            }
            complete &= *p == list.len();
        }
        if !complete {
            behind += 1;
        }
    }
    behind
}

fn lagging(shared: &Shared, cutoff: f64) -> usize {
    let targets = targets(shared, cutoff, 0);
    let mut frontier: Vec<Vec<usize>> = shared.clients.iter().map(|c| vec![0; c.topics.len()]).collect();
    advance(shared, &targets, &mut frontier)
}

/// Waits until every client has every event accepted no later than `cutoff` (and, for
/// an infinite cutoff, every accepted event); returns when, or `None` after `timeout`.
async fn wait_caught_up(shared: &Shared, cutoff: f64, timeout: f64) -> Option<f64> {
    let deadline = shared.now() + timeout;
    let targets = targets(shared, cutoff, 0);
    let mut frontier: Vec<Vec<usize>> = shared.clients.iter().map(|c| vec![0; c.topics.len()]).collect();
    loop {
        if advance(shared, &targets, &mut frontier) == 0 {
            return Some(shared.now());
        }
        if shared.now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The events accepted so far, growing as time passes: each topic's list only ever
/// gets new pids appended, so per-client cursors over it stay valid.
struct Eligible {
    /// Events published before this phase are not waited for.
    since_phase: usize,
    /// Pubs below this index have all been looked at.
    low_water: usize,
    seen: Vec<bool>,
    /// Accepted, but answered after the cutoff so far.
    staged: Vec<(f64, usize)>,
    per_topic: Vec<Vec<usize>>,
}

impl Eligible {
    fn new(topics: usize, since_phase: usize) -> Self {
        Self {
            since_phase,
            low_water: 0,
            seen: Vec::new(),
            staged: Vec::new(),
            per_topic: vec![Vec::new(); topics],
        }
    }

    /// Adds every event accepted (202 received) no later than `cutoff`.
    fn update(&mut self, shared: &Shared, cutoff: f64) {
        let pubs = lock(&shared.pubs);
        if self.seen.len() < pubs.len() {
            self.seen.resize(pubs.len(), false);
        }
        for (pid, r) in pubs.iter().enumerate().skip(self.low_water) {
            if self.seen[pid] || r.outcome == publisher::Outcome::Pending {
                continue;
            }
            self.seen[pid] = true;
            if r.is_accepted() && r.phase >= self.since_phase {
                self.staged.push((r.done, pid));
            }
        }
        while self.low_water < self.seen.len() && self.seen[self.low_water] {
            self.low_water += 1;
        }
        let mut i = 0;
        while i < self.staged.len() {
            let (done, pid) = self.staged[i];
            if done <= cutoff {
                self.per_topic[pubs[pid].topic].push(pid);
                self.staged.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

/// Waits until the system has recovered from a fault that healed at `heal_end`: every
/// client has every event accepted before `heal_end`, and has kept up since (every
/// event accepted more than `lag_threshold` ago delivered) for `settle` seconds. A
/// fault whose effect shows only after it "healed" (a component that notices late,
/// a backoff) is therefore not over before its late deliveries are. Returns when the
/// clients were both caught up and keeping up (the start of that final stretch).
///
/// Only the events of this phase count: one an earlier phase lost is that phase's
/// loss (and the final drain's), and must not make every later fault look as if it
/// never recovered.
async fn wait_recovered(shared: &Shared, config: &Config, heal_end: f64) -> Option<f64> {
    let deadline = heal_end + config.recovery_timeout;
    let phase = shared.phase();
    let backlog = targets(shared, heal_end, phase);
    let slots = |c: &Arc<ClientState>| vec![0; c.topics.len()];
    let mut backlog_pos: Vec<Vec<usize>> = shared.clients.iter().map(slots).collect();
    let mut live_pos: Vec<Vec<usize>> = shared.clients.iter().map(slots).collect();
    let mut eligible = Eligible::new(shared.topics.len(), phase);
    let mut caught_up: Option<f64> = None;
    let mut keeping_up_since: Option<f64> = None;
    loop {
        let now = shared.now();
        if caught_up.is_none() && advance(shared, &backlog, &mut backlog_pos) == 0 {
            caught_up = Some(now);
        }
        eligible.update(shared, now - config.lag_threshold);
        if advance(shared, &eligible.per_topic, &mut live_pos) == 0 {
            keeping_up_since.get_or_insert(now);
        } else {
            keeping_up_since = None;
        }
        if let (Some(c), Some(k)) = (caught_up, keeping_up_since) {
            if now - k >= config.settle {
                return Some(c.max(k));
            }
        }
        if now > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let base = ["--api", "a", "--gateway", "g"];
        Config::from_args(base.iter().chain(args).map(|s| s.to_string())).unwrap()
    }

    #[test]
    fn a_soak_cycles_its_faults_at_fixed_times_and_leaves_a_tail() {
        let c = config(&[
            "--soak",
            "3600",
            "--fault-interval",
            "240",
            "--fault",
            "a",
            "--fault",
            "b",
            "--fault",
            "c",
        ]);
        let s = schedule(&c, 10.0);
        // Due at 250, 490, …, 3370: the next (3610) is past the end less a minute.
        assert_eq!(s.len(), 14);
        assert_eq!(s[0].1, Some(250.0));
        assert_eq!(s[13].1, Some(10.0 + 14.0 * 240.0));
        let names: Vec<&str> = s.iter().map(|(f, _)| f.name.as_str()).collect();
        assert_eq!(&names[..5], ["a", "b", "c", "a #2", "b #2"]);
        let short = config(&["--soak", "360", "--fault-interval", "90", "--fault", "a"]);
        assert_eq!(schedule(&short, 0.0).len(), 3);
    }

    #[test]
    fn without_a_soak_each_fault_runs_once_after_the_steady_period() {
        let c = config(&["--fault", "a", "--fault", "b"]);
        let s = schedule(&c, 0.0);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|(_, at)| at.is_none()));
    }
}
