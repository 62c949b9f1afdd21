//! Accounting per phase, and the printed / saved report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::client::{PhaseCounters, Seen};
use crate::config::Config;
use crate::publisher::{Outcome, PubRecord, PublisherStats};
use crate::{lock, PhaseRun, Shared};

/// The final wait, after publishing stopped, for every client to have every event.
#[derive(Debug, Clone, Default)]
pub struct Drain {
    pub seconds: Option<f64>,
    pub lagging_clients: usize,
}

pub struct Report {
    pub json: Value,
    clients: usize,
    pub passed: bool,
    rows: Vec<Row>,
    header: Vec<String>,
    footer: Vec<String>,
    summary: String,
}

/// The accounting of one phase.
#[derive(Debug, Clone, Default)]
struct Row {
    name: String,
    is_fault: bool,
    sent: u64,
    accepted: u64,
    unavailable: u64,
    bad_unavailable: u64,
    refused: BTreeMap<u16, u64>,
    server_errors: BTreeMap<u16, u64>,
    no_answer: BTreeMap<String, u64>,
    unknown: u64,
    unknown_delivered: u64,
    expected_min: u64,
    expected_max: u64,
    received_min: u64,
    received_max: u64,
    lost: u64,
    /// Missing events a rewind accounts for (`ClientInner::lost_to_rewind`), summed
    /// over clients.
    lost_to_rewind: u64,
    /// Clients told of a rewind (`herald.reset`, reason `rewound`) in this phase.
    clients_rewound: u64,
    clients_with_loss: u64,
    lost_sample: Vec<usize>,
    duplicated: u64,
    out_of_order: u64,
    order_inversions: u64,
    phantom: u64,
    counters: PhaseCounters,
    fault_window: Option<f64>,
    fault_clock: Option<String>,
    max_lag: Option<f64>,
    recovery: Option<f64>,
    catch_up: Option<f64>,
    upstreams_before: BTreeMap<String, usize>,
    upstreams_after: BTreeMap<String, usize>,
    /// A rolling restart: one line per gateway, the order of events.
    drains: Vec<String>,
    /// The hostile-client stage: one line per attack and target.
    attacks: Vec<String>,
    /// A partition: what the streams did (`partition::Verdict::line`).
    streams: Vec<String>,
    failures: Vec<String>,
}

pub fn build(
    shared: &Shared,
    config: &Config,
    phases: &[PhaseRun],
    publisher: &PublisherStats,
    drain: &Drain,
    run_id: &str,
) -> Report {
    let pubs: Vec<PubRecord> = lock(&shared.pubs).clone();
    let seen: Vec<Seen> = lock(&shared.seen).clone();
    let n = phases.len();
    let mut rows: Vec<Row> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            name: p.name.clone(),
            is_fault: i > 0,
            fault_window: p.fault_start.zip(p.heal_end).map(|(a, b)| b - a),
            fault_clock: p.fault_start.map(|t| shared.wall_clock(t)),
            recovery: p.fault_start.zip(p.recovered_at).map(|(a, b)| b - a),
            catch_up: p.heal_end.zip(p.recovered_at).map(|(a, b)| b - a),
            upstreams_before: p.upstreams_before.clone(),
            upstreams_after: p.upstreams_after.clone(),
            drains: p.drains.iter().map(crate::rolling::summary).collect(),
            attacks: p
                .attacks
                .iter()
                .map(|a| match &a.failure {
                    None => format!("{} on {}: ok: {}", a.attack, a.target, a.detail),
                    Some(e) => format!("{} on {}: FAILED: {e}", a.attack, a.target),
                })
                .collect(),
            streams: p.streams.iter().map(|v| v.line.clone()).collect(),
            expected_min: u64::MAX,
            received_min: u64::MAX,
            ..Row::default()
        })
        .collect();

    // Publisher side.
    for r in &pubs {
        let row = &mut rows[r.phase.min(n - 1)];
        row.sent += 1;
        match &r.outcome {
            Outcome::Accepted => row.accepted += 1,
            Outcome::Unavailable { well_formed } => {
                row.unavailable += 1;
                if !well_formed {
                    row.bad_unavailable += 1;
                }
            }
            Outcome::Refused(s) => *row.refused.entry(*s).or_insert(0) += 1,
            Outcome::ServerError(s) => *row.server_errors.entry(*s).or_insert(0) += 1,
            Outcome::NoAnswer(k) => *row.no_answer.entry(k.clone()).or_insert(0) += 1,
            Outcome::Pending => *row.no_answer.entry("pending".into()).or_insert(0) += 1,
        }
        if r.is_unknown() {
            row.unknown += 1;
        }
    }

    // Client side: what each client was owed and shown, per phase.
    let mut phantom_pids: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut unknown_delivered: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    // Each topic's pids, so a client's accounting visits only what it was owed.
    let mut by_topic: Vec<Vec<usize>> = vec![Vec::new(); shared.topics.len()];
    for (pid, r) in pubs.iter().enumerate() {
        if let Some(list) = by_topic.get_mut(r.topic) {
            list.push(pid);
        }
    }
    for c in &shared.clients {
        let inner = lock(&c.inner);
        let mut owed = vec![0u64; n];
        let mut shown = vec![0u64; n];
        let mut lost = vec![0u64; n];
        let mut lost_to_rewind = vec![0u64; n];
        let owed_pids = c.topics.iter().filter_map(|t| by_topic.get(*t)).flatten();
        for &pid in owed_pids {
            let r = &pubs[pid];
            let p = r.phase.min(n - 1);
            let got = inner.got.count(pid) > 0;
            match &r.outcome {
                Outcome::Accepted => {
                    owed[p] += 1;
                    if got {
                        shown[p] += 1;
                    } else if inner.lost_to_rewind(r) {
                        lost_to_rewind[p] += 1;
                    } else {
                        lost[p] += 1;
                        if rows[p].lost_sample.len() < 10 {
                            rows[p].lost_sample.push(pid);
                        }
                    }
                }
                // A 503 from a primary that died during COMMIT cannot know
                // whether the standby has the commit.
                Outcome::Unavailable { .. } if got && phases[p].commit_in_doubt => {
                    unknown_delivered[p].insert(pid);
                }
                Outcome::Unavailable { .. } | Outcome::Refused(_) if got => {
                    phantom_pids[p].insert(pid);
                }
                _ if got => {
                    unknown_delivered[p].insert(pid);
                }
                _ => {}
            }
        }
        for (p, row) in rows.iter_mut().enumerate() {
            row.expected_min = row.expected_min.min(owed[p]);
            row.expected_max = row.expected_max.max(owed[p]);
            row.received_min = row.received_min.min(shown[p]);
            row.received_max = row.received_max.max(shown[p]);
            row.lost += lost[p];
            row.lost_to_rewind += lost_to_rewind[p];
            if lost[p] > 0 {
                row.clients_with_loss += 1;
            }
            if inner.rewinds.iter().any(|(_, phase)| *phase == p) {
                row.clients_rewound += 1;
            }
            if let Some(k) = inner.phases.get(p) {
                add(&mut row.counters, k);
            }
        }
    }
    for (p, row) in rows.iter_mut().enumerate() {
        row.phantom = phantom_pids[p].len() as u64;
        row.unknown_delivered = unknown_delivered[p].len() as u64;
        row.duplicated = row.counters.duplicates;
        row.out_of_order = row.counters.out_of_order;
        if shared.clients.is_empty() {
            row.expected_min = 0;
            row.received_min = 0;
        }
    }

    // Delivery lag: from the publisher's 202 to the last client shown the event.
    for (pid, r) in pubs.iter().enumerate() {
        let Some(s) = seen.get(pid).filter(|s| s.seq > 0) else {
            continue;
        };
        if r.is_accepted() {
            let lag = s.last_received - r.done;
            let row = &mut rows[r.phase.min(n - 1)];
            row.max_lag = Some(row.max_lag.map_or(lag, |m| m.max(lag)));
        }
    }

    // Acceptance order: an event accepted (202 received) before another was sent must
    // have the lower seq. Checked over accepted events that were delivered.
    // Positions of different epochs (before and after a rewind) are not compared.
    let mut by_epoch: BTreeMap<u32, (Vec<Accepted>, Vec<usize>)> = BTreeMap::new();
    for (pid, r) in pubs.iter().enumerate() {
        let Some(s) = seen.get(pid).filter(|s| s.seq > 0) else {
            continue;
        };
        if r.is_accepted() {
            let (accepted, phase) = by_epoch.entry(s.epoch).or_default();
            accepted.push(Accepted {
                sent: r.sent,
                done: r.done,
                seq: s.seq,
            });
            phase.push(r.phase.min(n - 1));
        }
    }
    for (accepted, accepted_phase) in by_epoch.values() {
        for i in inversions(accepted) {
            rows[accepted_phase[i]].order_inversions += 1;
        }
    }

    // Verdicts.
    let gateway_names: BTreeSet<&String> = config.gateway_names.values().collect();
    for (p, row) in rows.iter_mut().enumerate() {
        let run = &phases[p];
        let f = &mut row.failures;
        for (what, count) in [
            ("lost", row.lost),
            ("duplicated", row.duplicated),
            ("out of order", row.out_of_order),
            ("acceptance-order inversions", row.order_inversions),
            ("delivered although refused (phantom)", row.phantom),
            (
                "delivered on a topic the client did not ask for",
                row.counters.leaks,
            ),
            ("malformed frames", row.counters.bad_frames),
            ("herald.reset", row.counters.resets),
            (
                "herald.reset (rewound) in a fault that keeps history",
                if run.expect_rewind {
                    0
                } else {
                    row.counters.rewinds
                },
            ),
            ("herald.reauth", row.counters.reauths),
            ("503 without problem+json and Retry-After", row.bad_unavailable),
        ] {
            if count > 0 {
                f.push(format!("{count} {what}"));
            }
        }
        if !row.server_errors.is_empty() {
            f.push(format!("5xx other than 503: {:?}", row.server_errors));
        }
        if !row.refused.is_empty() {
            f.push(format!("unexpected publish refusals: {:?}", row.refused));
        }
        if row.accepted == 0 {
            f.push("no publish was accepted".into());
        }
        if run.expect_rewind && row.clients_rewound < shared.clients.len() as u64 {
            f.push(format!(
                "{} of {} clients were not told of the rewind (herald.reset, reason rewound)",
                shared.clients.len() as u64 - row.clients_rewound,
                shared.clients.len()
            ));
        }
        if run.expect_503 && row.unavailable == 0 {
            f.push("expected at least one 503 from the API, saw none".into());
        }
        for e in &run.command_errors {
            f.push(format!("command failed: {e}"));
        }
        if !run.drains.is_empty() {
            // A graceful restart behind a load balancer shows clients no error at all.
            let k = &row.counters;
            if !k.refused.is_empty() {
                f.push(format!("stream refusals seen by clients: {:?}", k.refused));
            }
            for (what, count) in [
                ("stream connect errors", k.connect_errors),
                ("broken streams", k.broken),
                ("idle timeouts", k.idle_timeouts),
            ] {
                if count > 0 {
                    f.push(format!("{count} {what}"));
                }
            }
            for step in &run.drains {
                f.extend(step.failures.iter().cloned());
            }
        }
        for v in &run.streams {
            f.extend(v.failures.iter().cloned());
        }
        for a in &run.attacks {
            if let Some(e) = &a.failure {
                f.push(format!("{} on {}: {e}", a.attack, a.target));
            }
        }
        if row.is_fault {
            // An attack stage lasts as long as its attacks: its bound is on the
            // recovery once they are over.
            let measured = if run.attacks.is_empty() {
                row.recovery
            } else {
                row.catch_up
            };
            match measured {
                None => f.push(format!(
                    "did not recover within {}s of the fault's end",
                    config.recovery_timeout
                )),
                Some(r) if r > config.recovery_bound => f.push(format!(
                    "recovery took {r:.2}s (bound {}s)",
                    config.recovery_bound
                )),
                Some(_) => {}
            }
        } else if gateway_names.len() >= 2 {
            for name in &gateway_names {
                if row.upstreams_before.get(*name).copied().unwrap_or(0) == 0 {
                    f.push(format!("no client was connected to {name}: not load-balanced"));
                }
            }
        }
    }

    let seq_mismatches = shared.seq_mismatches.load(Ordering::Relaxed);
    let seq_reuses = shared.seq_reuses.load(Ordering::Relaxed);
    let reused_across_rewind = shared.seqs_reused_across_rewind.load(Ordering::Relaxed);
    let mut global_failures = Vec::new();
    if seq_mismatches > 0 {
        global_failures.push(format!(
            "{seq_mismatches} deliveries carried another seq for the same event"
        ));
    }
    if seq_reuses > 0 {
        global_failures.push(format!(
            "{seq_reuses} deliveries carried a seq already shown with another event (no rewind in between)"
        ));
    }
    if drain.seconds.is_none() {
        global_failures.push(format!(
            "{} clients still missed events {}s after publishing stopped",
            drain.lagging_clients, config.recovery_timeout
        ));
    }

    let faults_passed = rows
        .iter()
        .filter(|r| r.is_fault && r.failures.is_empty())
        .count();
    let faults_failed = rows
        .iter()
        .filter(|r| r.is_fault && !r.failures.is_empty())
        .count();
    let baseline_failed = rows.iter().any(|r| !r.is_fault && !r.failures.is_empty());
    let mut extra = Vec::new();
    if baseline_failed {
        extra.push("baseline");
    }
    if !global_failures.is_empty() {
        extra.push("global checks");
    }
    let failed = faults_failed + extra.len();
    let summary = if extra.is_empty() {
        format!("fault-suite: {faults_passed} passed, {failed} failed")
    } else {
        format!(
            "fault-suite: {faults_passed} passed, {failed} failed (incl. {})",
            extra.join(", ")
        )
    };
    let passed = failed == 0;

    let total_accepted: u64 = rows.iter().map(|r| r.accepted).sum();
    let header = vec![
        format!(
            "Herald fault suite — mode {}, run {run_id}",
            config.mode
        ),
        format!(
            "{} clients × {} of {} topics through {}; publishing {}/s to {}; {} publishes in {:.1}s ({} throttled)",
            config.clients,
            config.topics_per_client,
            config.topics,
            config.gateway,
            config.rate,
            config.api,
            publisher.sent,
            publisher.seconds,
            publisher.throttled
        ),
        format!(
            "window = fault start → healed; recover = fault start → every client has every event accepted \
             before the fault healed and has kept up since (nothing more than {}s late) for {}s (bound {}s); \
             lag = worst 202 → last client delivery of the phase's events",
            config.lag_threshold, config.settle, config.recovery_bound
        ),
    ];
    let mut footer = vec![format!(
        "total: {total_accepted} accepted; final drain {}; seq mismatches {seq_mismatches}; \
         seqs given to two events {seq_reuses} (and {reused_across_rewind} across a rewind, after herald.reset)",
        match drain.seconds {
            Some(s) => format!("{s:.2}s"),
            None => format!("incomplete ({} clients lagging)", drain.lagging_clients),
        }
    )];
    footer.extend(global_failures.iter().map(|f| format!("FAIL: {f}")));

    let json = json!({
        "run_id": run_id,
        "started_at_unix": shared.t0_unix,
        "note": "times are seconds since started_at_unix",
        "mode": config.mode,
        "passed": passed,
        "summary": summary,
        "config": {
            "api": config.api,
            "gateway": config.gateway,
            "clients": config.clients,
            "rate": config.rate,
            "topics": config.topics,
            "topics_per_client": config.topics_per_client,
            "steady_seconds": config.steady,
            "recovery_bound_seconds": config.recovery_bound,
            "lag_threshold_seconds": config.lag_threshold,
            "settle_seconds": config.settle,
            "recovery_timeout_seconds": config.recovery_timeout,
            "gateway_names": config.gateway_names,
        },
        "publisher": {
            "sent": publisher.sent,
            "seconds": publisher.seconds,
            "throttled": publisher.throttled,
        },
        "drain_seconds": drain.seconds,
        "seq_mismatches": seq_mismatches,
        "seq_reuses": seq_reuses,
        "seqs_reused_across_rewind": reused_across_rewind,
        "global_failures": global_failures,
        "phases": rows.iter().zip(phases).map(|(r, p)| row_json(r, p)).collect::<Vec<_>>(),
    });
    Report {
        json,
        clients: shared.clients.len(),
        passed,
        rows,
        header,
        footer,
        summary,
    }
}

/// An accepted publish: when it was sent, when its 202 came back, its delivered `seq`.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    sent: f64,
    done: f64,
    seq: i64,
}

/// The indices of events with a lower `seq` than some event whose 202 came back
/// before they were even sent: the order in which events were accepted was not kept.
fn inversions(events: &[Accepted]) -> Vec<usize> {
    let mut by_sent: Vec<usize> = (0..events.len()).collect();
    by_sent.sort_by(|a, b| events[*a].sent.total_cmp(&events[*b].sent));
    let mut by_done: Vec<usize> = (0..events.len()).collect();
    by_done.sort_by(|a, b| events[*a].done.total_cmp(&events[*b].done));
    let mut out = Vec::new();
    let mut max_done_seq = i64::MIN;
    let mut j = 0;
    for i in by_sent {
        while j < by_done.len() && events[by_done[j]].done < events[i].sent {
            max_done_seq = max_done_seq.max(events[by_done[j]].seq);
            j += 1;
        }
        if max_done_seq > events[i].seq {
            out.push(i);
        }
    }
    out
}

fn add(total: &mut PhaseCounters, k: &PhaseCounters) {
    total.duplicates += k.duplicates;
    total.out_of_order += k.out_of_order;
    total.connects += k.connects;
    for (s, n) in &k.refused {
        *total.refused.entry(*s).or_insert(0) += n;
    }
    total.connect_errors += k.connect_errors;
    total.broken += k.broken;
    total.idle_timeouts += k.idle_timeouts;
    total.resets += k.resets;
    total.rewinds += k.rewinds;
    total.redelivered_after_rewind += k.redelivered_after_rewind;
    total.reauths += k.reauths;
    total.reconnects += k.reconnects;
    total.churned += k.churned;
    total.leaks += k.leaks;
    total.bad_frames += k.bad_frames;
    total.foreign += k.foreign;
}

fn row_json(r: &Row, p: &PhaseRun) -> Value {
    json!({
        "name": r.name,
        "fault": r.is_fault,
        "passed": r.failures.is_empty(),
        "failures": r.failures,
        "inject": p.inject,
        "hold_seconds": p.hold,
        "heal": p.heal,
        "started_at": p.start,
        "ended_at": p.end,
        "fault_started_at": p.fault_start,
        "fault_started_utc": r.fault_clock,
        "healed_at": p.heal_end,
        "recovered_at": p.recovered_at,
        "fault_window_seconds": r.fault_window,
        "recovery_seconds": r.recovery,
        "max_delivery_lag_seconds": r.max_lag,
        "recovered_after_heal_seconds": r.catch_up,
        "publishes": {
            "sent": r.sent,
            "accepted": r.accepted,
            "unavailable_503": r.unavailable,
            "unavailable_503_malformed": r.bad_unavailable,
            "refused": r.refused,
            "server_errors": r.server_errors,
            "no_answer": r.no_answer,
            "unknown": r.unknown,
            "unknown_delivered": r.unknown_delivered,
        },
        "per_client": {
            "expected_min": r.expected_min,
            "expected_max": r.expected_max,
            "received_min": r.received_min,
            "received_max": r.received_max,
        },
        "lost": r.lost,
        "rewind": {
            "lost_to_rewind": r.lost_to_rewind,
            "clients_rewound": r.clients_rewound,
            "redelivered_after_rewind": r.counters.redelivered_after_rewind,
        },
        "clients_with_loss": r.clients_with_loss,
        "lost_pid_sample": r.lost_sample,
        "duplicated": r.duplicated,
        "out_of_order": r.out_of_order,
        "acceptance_order_inversions": r.order_inversions,
        "phantom": r.phantom,
        "streams": {
            "connects": r.counters.connects,
            "refused": r.counters.refused,
            "connect_errors": r.counters.connect_errors,
            "broken": r.counters.broken,
            "idle_timeouts": r.counters.idle_timeouts,
            "resets": r.counters.resets,
            "rewound_resets": r.counters.rewinds,
            "reauths": r.counters.reauths,
            "reconnect_events": r.counters.reconnects,
            "churned": r.counters.churned,
            "leaks": r.counters.leaks,
            "malformed_frames": r.counters.bad_frames,
            "foreign_events": r.counters.foreign,
        },
        "upstreams_before": r.upstreams_before,
        "upstreams_after": r.upstreams_after,
        "streams_across_partition": r.streams,
        "rolling_restart": p.drains.iter().map(crate::rolling::to_json).collect::<Vec<_>>(),
        "attacks": p.attacks.iter().map(|a| json!({
            "attack": a.attack,
            "target": a.target,
            "passed": a.failure.is_none(),
            "detail": a.failure.as_deref().unwrap_or(&a.detail),
        })).collect::<Vec<_>>(),
    })
}

fn split(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn range(a: u64, b: u64) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    for h in &r.header {
        let _ = writeln!(out, "{h}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<24} {:<6} {:>6} {:>5} {:>5} {:>11} {:>11} {:>5} {:>4} {:>4} {:>4} {:>5} {:>6} {:>8} {:>6} {:>9}  gateways (start → end)",
        "phase", "result", "accept", "503", "unkn", "owed/client", "recv/client", "lost", "dup", "ooo", "inv", "phant", "reconn", "window s", "lag s", "recover s"
    );
    for row in &r.rows {
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:>6} {:>5} {:>5} {:>11} {:>11} {:>5} {:>4} {:>4} {:>4} {:>5} {:>6} {:>8} {:>6} {:>9}  {} → {}",
            row.name,
            if row.failures.is_empty() { "PASS" } else { "FAIL" },
            row.accepted,
            row.unavailable,
            row.unknown,
            range(row.expected_min, row.expected_max),
            range(row.received_min, row.received_max),
            row.lost,
            row.duplicated,
            row.out_of_order,
            row.order_inversions,
            row.phantom,
            row.counters.connects,
            row.fault_window.map_or("-".into(), |s| format!("{s:.2}")),
            row.max_lag.map_or("-".into(), |s| format!("{s:.2}")),
            row.recovery.map_or("-".into(), |s| format!("{s:.2}")),
            split(&row.upstreams_before),
            split(&row.upstreams_after),
        );
    }
    out.push('\n');
    for row in &r.rows {
        let mut notes = Vec::new();
        if let Some(t) = &row.fault_clock {
            notes.push(format!("fault at {t} UTC"));
        }
        if let Some(c) = row.catch_up {
            notes.push(format!("recovered {c:.2}s after healing"));
        }
        if !row.no_answer.is_empty() {
            notes.push(format!("no answer: {:?}", row.no_answer));
        }
        if row.unknown_delivered > 0 {
            notes.push(format!(
                "{} unknown-outcome publishes delivered",
                row.unknown_delivered
            ));
        }
        let k = &row.counters;
        if !k.refused.is_empty() {
            notes.push(format!("stream refusals {:?}", k.refused));
        }
        if k.connect_errors + k.broken + k.idle_timeouts > 0 {
            notes.push(format!(
                "stream connect errors {}, broken {}, idle timeouts {}",
                k.connect_errors, k.broken, k.idle_timeouts
            ));
        }
        if row.lost > 0 {
            notes.push(format!(
                "{} clients lost events, e.g. pids {:?}",
                row.clients_with_loss, row.lost_sample
            ));
        }
        if k.rewinds > 0 || row.lost_to_rewind > 0 {
            notes.push(format!(
                "history rewound: {} of {} clients got herald.reset (rewound); {} deliveries \
                 lost to the rewind (reported by the reset), {} shown again after it",
                row.clients_rewound, r.clients, row.lost_to_rewind, k.redelivered_after_rewind
            ));
        }
        if k.foreign > 0 {
            notes.push(format!("{} events without a pid", k.foreign));
        }
        if k.reconnects > 0 {
            notes.push(format!("{} herald.reconnect events", k.reconnects));
        }
        for f in &row.failures {
            notes.push(format!("FAIL: {f}"));
        }
        for d in row.drains.iter().chain(&row.attacks).chain(&row.streams) {
            let _ = writeln!(out, "{}: {d}", row.name);
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "{}: {}", row.name, notes.join("; "));
        }
    }
    for f in &r.footer {
        let _ = writeln!(out, "{f}");
    }
    let _ = write!(out, "{}", r.summary);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sent: f64, done: f64, seq: i64) -> Accepted {
        Accepted { sent, done, seq }
    }

    #[test]
    fn overlapping_publishes_may_take_either_order() {
        // Both in flight at once: no order is promised between them.
        assert!(inversions(&[ev(0.0, 1.0, 2), ev(0.5, 1.5, 1)]).is_empty());
    }

    #[test]
    fn sequential_publishes_must_keep_their_order() {
        let events = [ev(0.0, 1.0, 5), ev(2.0, 3.0, 6), ev(4.0, 5.0, 3)];
        assert_eq!(inversions(&events), vec![2]);
        assert!(inversions(&[ev(0.0, 1.0, 1), ev(2.0, 3.0, 2)]).is_empty());
    }

    #[test]
    fn ranges_and_splits_render_compactly() {
        assert_eq!(range(3, 3), "3");
        assert_eq!(range(3, 5), "3-5");
        let m = BTreeMap::from([("gateway1".to_owned(), 2), ("gateway2".to_owned(), 3)]);
        assert_eq!(split(&m), "gateway1=2 gateway2=3");
    }
}
