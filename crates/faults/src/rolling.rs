//! A rolling restart of the gateways: each in turn gets SIGTERM, drains, exits and is
//! started again on the same port, while the clients stream through the load
//! balancer. The conductor polls the draining gateway's own `/readyz` and watches the
//! clients' streams, so it can tell the order in which things happened.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::StreamEvent;
use crate::config::{Config, FaultSpec};
use crate::{lock, run_command, run_command_output, say, upstreams, Shared};

/// How often the draining gateway's `/readyz` is polled.
const POLL: Duration = Duration::from_millis(10);
/// Streams opened through the load balancer while a gateway drains.
const PROBES: usize = 4;

/// One gateway's turn in a rolling restart (times in seconds since the driver started).
#[derive(Debug, Clone, Default)]
pub struct DrainStep {
    pub gateway: String,
    /// The gateway's `host:port`, as nginx names it in `X-Upstream`.
    pub addr: String,
    /// Streams the gateway served when it got SIGTERM.
    pub streams_at_term: usize,
    pub term_at: f64,
    /// The first `/readyz` answer other than 200 after SIGTERM, and what it was.
    pub unready_at: Option<f64>,
    pub unready_answer: Option<String>,
    /// The first refused (or failed) connection to the gateway after SIGTERM: its
    /// listener is closed.
    pub refused_at: Option<f64>,
    /// Streams on this gateway that closed after SIGTERM: how many, the first and the
    /// last close, how many ended with `herald.reconnect` and cleanly, their `retry:`
    /// hints, and how long their clients took to stream again (and where).
    pub closed: usize,
    pub first_close: Option<f64>,
    pub last_close: Option<f64>,
    pub with_signal: usize,
    pub clean: usize,
    pub retry_ms: Vec<u64>,
    pub reconnect_delays: Vec<f64>,
    pub reconnected_to: std::collections::BTreeMap<String, usize>,
    /// Streams opened through the load balancer once `/readyz` turned unready (and
    /// before the streams closed): the status each got, and how many nginx first sent
    /// to the draining gateway (refused with 503, retried on the other one).
    pub probes: Vec<u16>,
    pub probes_retried: usize,
    /// The stop command returned: the process is gone.
    pub exited_at: Option<f64>,
    /// The start command returned: the new process answers `/readyz` with 200.
    pub ready_at: Option<f64>,
    /// nginx sent a request to the new process.
    pub routed_at: Option<f64>,
    pub failures: Vec<String>,
}

/// `http://host:port` → `host:port`.
fn addr_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// What `/readyz` answered: `200`, `503 draining` (a problem's `detail`), `refused`.
async fn readyz(http: &reqwest::Client, url: &str) -> String {
    match http.get(format!("{url}/readyz")).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or(body);
            if status == 200 {
                "200".into()
            } else {
                format!("{status} {}", reason.trim())
            }
        }
        Err(e) if e.is_connect() => "refused".into(),
        Err(_) => "error".into(),
    }
}

/// Runs the rolling restart of `fault`; returns each gateway's step. `probe_token`
/// opens the streams sent while a gateway drains.
pub async fn run(
    shared: &Arc<Shared>,
    config: &Config,
    fault: &FaultSpec,
    probe_token: &str,
) -> Vec<DrainStep> {
    let mut steps = Vec::new();
    for (name, url) in &fault.drain {
        let step = drain_one(shared, config, fault, name, url, probe_token).await;
        steps.push(step);
    }
    steps
}

/// Opens `PROBES` streams through the load balancer, one after the other, and drops
/// each once its headers came; returns their statuses and how many nginx retried.
async fn probe_streams(
    http: &reqwest::Client,
    config: &Config,
    topic: &str,
    token: &str,
) -> (Vec<u16>, usize) {
    let mut statuses = Vec::new();
    let mut retried = 0;
    for _ in 0..PROBES {
        let r = http
            .get(format!("{}/v1/stream", config.gateway))
            .query(&[("topics", topic)])
            .bearer_auth(token)
            .send()
            .await;
        match r {
            Ok(r) => {
                statuses.push(r.status().as_u16());
                let upstreams = r
                    .headers()
                    .get("x-upstream")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                retried += usize::from(upstreams.contains(','));
            }
            Err(_) => statuses.push(0),
        }
    }
    (statuses, retried)
}

async fn drain_one(
    shared: &Arc<Shared>,
    config: &Config,
    fault: &FaultSpec,
    name: &str,
    url: &str,
    probe_token: &str,
) -> DrainStep {
    let addr = addr_of(url);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("an HTTP client builds");
    let mut step = DrainStep {
        gateway: name.to_owned(),
        addr: addr.clone(),
        streams_at_term: upstreams(shared, config).get(name).copied().unwrap_or(0),
        ..DrainStep::default()
    };

    // Poll /readyz from SIGTERM until the process has exited.
    let (stop_poll, mut stop_rx) = tokio::sync::watch::channel(false);
    let (unready_tx, mut unready_rx) = tokio::sync::watch::channel(false);
    let poller = {
        let shared = shared.clone();
        let url = url.to_owned();
        let http = http.clone();
        tokio::spawn(async move {
            let mut unready: Option<(f64, String)> = None;
            let mut refused: Option<f64> = None;
            loop {
                let answer = readyz(&http, &url).await;
                let at = shared.now();
                if answer == "refused" || answer == "error" {
                    refused.get_or_insert(at);
                } else if answer != "200" && unready.is_none() {
                    unready = Some((at, answer));
                    let _ = unready_tx.send(true);
                }
                if *stop_rx.borrow() {
                    return (unready, refused);
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop_rx.changed() => {}
                }
            }
        })
    };

    // New streams while it drains: nginx must get them served elsewhere.
    let prober = {
        let http = http.clone();
        let config = config.clone();
        let topic = shared.topics[0].clone();
        let token = probe_token.to_owned();
        tokio::spawn(async move {
            let unready = tokio::time::timeout(Duration::from_secs(5), unready_rx.wait_for(|u| *u))
                .await
                .is_ok_and(|r| r.is_ok());
            if unready {
                probe_streams(&http, &config, &topic, &token).await
            } else {
                (Vec::new(), 0)
            }
        })
    };

    let stop_cmd = fault
        .stop
        .as_deref()
        .unwrap_or_default()
        .replace("{gateway}", name);
    say(shared, format!("{}: SIGTERM {name}: {stop_cmd}", fault.name));
    step.term_at = shared.now();
    match run_command_output(&stop_cmd).await {
        Ok(out) => {
            step.exited_at = Some(shared.now());
            // The stop command may report when it sent SIGTERM and saw the process
            // gone (`sigterm_unix_ns=… exit_unix_ns=…`): more exact than the moments
            // the command started and returned, which a loaded machine stretches.
            let at = |key: &str| {
                out.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .and_then(|v| v.parse::<f64>().ok())
                    .map(|ns| ns / 1e9 - shared.t0_unix)
            };
            if let (Some(term), Some(exit)) = (at("sigterm_unix_ns="), at("exit_unix_ns=")) {
                step.term_at = term;
                step.exited_at = Some(exit);
            }
        }
        Err(e) => step.failures.push(format!("{name}: stop: {e}")),
    }
    let _ = stop_poll.send(true);
    if let Ok((unready, refused)) = poller.await {
        if let Some((at, answer)) = unready {
            step.unready_at = Some(at);
            step.unready_answer = Some(answer);
        }
        step.refused_at = refused;
    }
    if let Ok((statuses, retried)) = prober.await {
        step.probes = statuses;
        step.probes_retried = retried;
    }

    let start_cmd = fault
        .start
        .as_deref()
        .unwrap_or_default()
        .replace("{gateway}", name);
    say(shared, format!("{}: starting {name}: {start_cmd}", fault.name));
    match run_command(&start_cmd).await {
        Ok(()) => step.ready_at = Some(shared.now()),
        Err(e) => step.failures.push(format!("{name}: start: {e}")),
    }

    // The next gateway may only stop once this one takes traffic through the load
    // balancer again, or the clients it drains would have nowhere to go.
    let deadline = shared.now() + config.recovery_timeout;
    let via_lb = format!("{}/readyz", config.gateway);
    while step.ready_at.is_some() && shared.now() < deadline {
        if let Ok(r) = http.get(&via_lb).send().await {
            let served_by = r
                .headers()
                .get("x-upstream")
                .and_then(|v| v.to_str().ok())
                .map(|s| s.rsplit(',').next().unwrap_or(s).trim().to_owned());
            if r.status().is_success() && served_by.as_deref() == Some(addr.as_str()) {
                step.routed_at = Some(shared.now());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The clients reconnect after at most their retry hint: let them, then look.
    let deadline = shared.now() + 10.0;
    while shared.now() < deadline && shared.clients.iter().any(|c| lock(&c.inner).upstream.is_none()) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    observe_streams(shared, &mut step);
    judge(&mut step, fault.exit_bound);
    say(shared, format!("{}: {}", fault.name, summary(&step)));
    step
}

/// Fills in what the clients saw of the gateway's streams after SIGTERM.
fn observe_streams(shared: &Shared, step: &mut DrainStep) {
    let until = step.exited_at.unwrap_or(f64::INFINITY) + 1.0;
    for c in &shared.clients {
        let g = lock(&c.inner);
        for (i, ev) in g.history.iter().enumerate() {
            let StreamEvent::Close {
                at,
                upstream,
                reconnect_signal,
                retry_ms,
                clean,
            } = ev
            else {
                continue;
            };
            if *upstream != step.addr || *at < step.term_at || *at > until {
                continue;
            }
            step.closed += 1;
            step.first_close = Some(step.first_close.map_or(*at, |f| f.min(*at)));
            step.last_close = Some(step.last_close.map_or(*at, |l| l.max(*at)));
            step.with_signal += usize::from(*reconnect_signal);
            step.clean += usize::from(*clean);
            step.retry_ms.extend(*retry_ms);
            let next_open = g.history[i + 1..].iter().find_map(|e| match e {
                StreamEvent::Open { at: o, upstream } => Some((*o, upstream.clone())),
                StreamEvent::Close { .. } => None,
            });
            if let Some((o, up)) = next_open {
                step.reconnect_delays.push(o - at);
                *step.reconnected_to.entry(up).or_insert(0) += 1;
            }
        }
    }
}

fn judge(step: &mut DrainStep, exit_bound: f64) {
    let name = step.gateway.clone();
    let f = &mut step.failures;
    if step.streams_at_term == 0 {
        f.push(format!(
            "{name}: served no stream at SIGTERM: the drain proves nothing"
        ));
    }
    match (step.unready_at, step.first_close) {
        (None, _) => f.push(format!(
            "{name}: /readyz never answered other than 200 between SIGTERM and exit"
        )),
        (Some(u), Some(c)) if c < u => f.push(format!(
            "{name}: a stream closed {:.3}s after SIGTERM, before /readyz turned unready ({:.3}s)",
            c - step.term_at,
            u - step.term_at
        )),
        _ => {}
    }
    if let Some(answer) = &step.unready_answer {
        if !answer.starts_with("503") {
            f.push(format!(
                "{name}: /readyz answered `{answer}` while draining, not 503"
            ));
        }
    }
    if step.closed < step.streams_at_term {
        f.push(format!(
            "{name}: {} streams at SIGTERM, only {} seen closing",
            step.streams_at_term, step.closed
        ));
    }
    if step.with_signal < step.closed {
        f.push(format!(
            "{name}: {} of {} streams closed without herald.reconnect",
            step.closed - step.with_signal,
            step.closed
        ));
    }
    if step.clean < step.closed {
        f.push(format!(
            "{name}: {} of {} streams did not end cleanly",
            step.closed - step.clean,
            step.closed
        ));
    }
    if let Some(exited) = step.exited_at {
        let took = exited - step.term_at;
        if took > exit_bound {
            f.push(format!(
                "{name}: exited {took:.2}s after SIGTERM (bound {exit_bound}s)"
            ));
        }
    }
    if step.probes.len() < PROBES {
        f.push(format!(
            "{name}: only {} of {PROBES} streams were opened while it drained",
            step.probes.len()
        ));
    }
    if step.probes.iter().any(|s| *s != 200) {
        f.push(format!(
            "{name}: streams opened through the load balancer while it drained got {:?}, not all 200",
            step.probes
        ));
    }
    if step.ready_at.is_some() && step.routed_at.is_none() {
        f.push(format!(
            "{name}: nginx never routed to it again after its restart"
        ));
    }
}

fn rel(t: Option<f64>, from: f64) -> String {
    t.map_or("never".into(), |t| format!("+{:.3}s", t - from))
}

/// One line: the order of events of a step, relative to SIGTERM.
pub fn summary(s: &DrainStep) -> String {
    let delays = if s.reconnect_delays.is_empty() {
        "-".to_owned()
    } else {
        let max = s.reconnect_delays.iter().copied().fold(0.0, f64::max);
        let mean = s.reconnect_delays.iter().sum::<f64>() / s.reconnect_delays.len() as f64;
        format!("mean {mean:.3}s, max {max:.3}s")
    };
    let retry = match (s.retry_ms.iter().min(), s.retry_ms.iter().max()) {
        (Some(a), Some(b)) => format!("{a}-{b} ms"),
        _ => "-".into(),
    };
    format!(
        "{}: SIGTERM with {} streams; /readyz {} {}; {} new streams through nginx meanwhile got {:?} ({} retried off the draining gateway); \
         streams closed {}..{} ({} closed, {} after herald.reconnect, {} clean, retry {retry}); \
         listener refused {}; exited {}; ready again {}; routed by nginx {}; clients streaming again after {delays} on {:?}",
        s.gateway,
        s.streams_at_term,
        s.unready_answer.as_deref().unwrap_or("-"),
        rel(s.unready_at, s.term_at),
        s.probes.len(),
        s.probes,
        s.probes_retried,
        rel(s.first_close, s.term_at),
        rel(s.last_close, s.term_at),
        s.closed,
        s.with_signal,
        s.clean,
        rel(s.refused_at, s.term_at),
        rel(s.exited_at, s.term_at),
        rel(s.ready_at, s.term_at),
        rel(s.routed_at, s.term_at),
        s.reconnected_to,
    )
}

pub fn to_json(s: &DrainStep) -> Value {
    let since = |t: Option<f64>| t.map(|t| t - s.term_at);
    json!({
        "gateway": s.gateway,
        "addr": s.addr,
        "streams_at_sigterm": s.streams_at_term,
        "sigterm_at": s.term_at,
        "seconds_after_sigterm": {
            "readyz_unready": since(s.unready_at),
            "first_stream_closed": since(s.first_close),
            "last_stream_closed": since(s.last_close),
            "listener_refused": since(s.refused_at),
            "exited": since(s.exited_at),
            "ready_again": since(s.ready_at),
            "routed_by_lb": since(s.routed_at),
        },
        "readyz_unready_answer": s.unready_answer,
        "streams_opened_while_draining": s.probes,
        "streams_opened_while_draining_retried": s.probes_retried,
        "streams_closed": s.closed,
        "closed_after_herald_reconnect": s.with_signal,
        "closed_cleanly": s.clean,
        "retry_hints_ms": s.retry_ms,
        "reconnect_delays_seconds": s.reconnect_delays,
        "reconnected_to": s.reconnected_to,
        "failures": s.failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> DrainStep {
        DrainStep {
            gateway: "gw1".into(),
            addr: "127.0.0.1:1".into(),
            streams_at_term: 2,
            term_at: 10.0,
            unready_at: Some(10.01),
            unready_answer: Some("503 draining".into()),
            closed: 2,
            first_close: Some(10.5),
            last_close: Some(10.51),
            with_signal: 2,
            clean: 2,
            exited_at: Some(10.6),
            probes: vec![200; PROBES],
            ready_at: Some(11.5),
            routed_at: Some(12.0),
            ..DrainStep::default()
        }
    }

    #[test]
    fn a_clean_drain_passes() {
        let mut s = good();
        judge(&mut s, 5.0);
        assert!(s.failures.is_empty(), "{:?}", s.failures);
        assert_eq!(addr_of("http://127.0.0.1:1/x"), "127.0.0.1:1");
    }

    #[test]
    fn streams_closing_before_readyz_turned_unready_fail() {
        let mut s = good();
        s.unready_at = Some(10.7);
        judge(&mut s, 5.0);
        assert!(
            s.failures.iter().any(|f| f.contains("before /readyz")),
            "{:?}",
            s.failures
        );
    }

    #[test]
    fn a_missing_signal_a_slow_exit_and_no_unready_answer_fail() {
        let mut s = good();
        s.with_signal = 1;
        s.exited_at = Some(20.0);
        judge(&mut s, 5.0);
        assert_eq!(s.failures.len(), 2, "{:?}", s.failures);
        let mut s = good();
        s.unready_at = None;
        judge(&mut s, 5.0);
        assert!(s.failures.iter().any(|f| f.contains("never answered")));
    }
}
