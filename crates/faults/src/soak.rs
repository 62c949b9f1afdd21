//! The soak: the services' resource use sampled while faults rotate, and a verdict on
//! whether any of it grows without bound.
//!
//! A sample is whatever the `--sample` command prints (`NAME VALUE` lines: each
//! process's pid, RSS and open file descriptors, the gateways' open streams, Postgres
//! connections, Redis memory and clients) plus what the driver knows itself (where its
//! clients stream). Each judged series is split by the process that produced it (its
//! pid: a restarted process starts a new series, and its first minutes are warm-up),
//! and each piece with enough samples after warm-up is judged twice:
//!
//! - **thirds**: the median of its last third minus the median of its first third;
//! - **trend**: its Theil–Sen slope (the median of the slopes between every two
//!   samples, which one outlier cannot move) times the piece's duration: what a steady
//!   trend would have added over the piece.
//!
//! Either beyond the tolerance — `max(fraction × first-third median, floor)`, the floor
//! per series below — means the series grows. Medians, not means, so that one sample
//! taken in the middle of a fault does not decide. A series with a hard bound (a
//! process's Postgres connections: its pool, plus the few it opens outside it, which
//! the sample command reports beside them) is also held to it, in every sample of the
//! piece, warm-up included.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use crate::config::SoakConfig;

/// A restarted process (or Redis) is warming up for this long: not judged.
pub const RESTART_WARMUP: f64 = 120.0;

/// One sample: when, in which phase, and the values by name.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Seconds since the driver started.
    pub t: f64,
    pub phase: usize,
    pub values: BTreeMap<String, f64>,
}

/// Parses the sample command's output: `NAME VALUE` per line; a line whose value is
/// not a number (a service that did not answer prints `-`) leaves the value out.
pub fn parse_sample(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if let Ok(v) = value.parse::<f64>() {
            if v.is_finite() {
                out.insert(name.to_owned(), v);
            }
        }
    }
    out
}

/// Adds the values derived from others: each gateway's descriptors beyond one per open
/// stream (every stream holds exactly one socket, so what is left must stay flat
/// however the clients are spread over the gateways).
pub fn derive(values: &mut BTreeMap<String, f64>) {
    for gw in ["gateway1", "gateway2"] {
        let fds = values.get(&format!("{gw}.fds")).copied();
        let streams = values.get(&format!("{gw}.streams")).copied();
        if let (Some(f), Some(s)) = (fds, streams) {
            values.insert(format!("{gw}.fds_beyond_streams"), f - s);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Bytes,
    Count,
}

/// A series judged for growth.
#[derive(Debug, Clone, Copy)]
struct Judged {
    name: &'static str,
    /// The value naming the process behind it: a change starts a new piece.
    incarnation: Option<&'static str>,
    /// The smallest rise counted as growth, whatever the fraction says.
    floor: f64,
    /// The sample value no sample of the series may exceed, if it has a hard bound.
    ceiling: Option<&'static str>,
    unit: Unit,
    why: &'static str,
}

const MIB: f64 = 1024.0 * 1024.0;

/// What is judged, and the floors. The api's and the worker's RSS may rise 8 MiB before
/// it counts (their allocator keeps what a burst, a backlog after a fault, made it
/// take); a gateway's 16 MiB, because its memory follows its streams (about 10 KiB
/// each in these debug builds) and one fault moves a thousand of them onto it, which
/// the allocator does not all give back when churn spreads them out again.
const JUDGED: &[Judged] = &[
    Judged {
        name: "api.rss_bytes",
        incarnation: Some("api.pid"),
        floor: 8.0 * MIB,
        ceiling: None,
        unit: Unit::Bytes,
        why: "api memory",
    },
    Judged {
        name: "api.fds",
        incarnation: Some("api.pid"),
        floor: 16.0,
        ceiling: None,
        unit: Unit::Count,
        why: "api sockets and files",
    },
    Judged {
        name: "worker.rss_bytes",
        incarnation: Some("worker.pid"),
        floor: 8.0 * MIB,
        ceiling: None,
        unit: Unit::Bytes,
        why: "worker memory",
    },
    Judged {
        name: "worker.fds",
        incarnation: Some("worker.pid"),
        floor: 16.0,
        ceiling: None,
        unit: Unit::Count,
        why: "worker sockets and files",
    },
    Judged {
        name: "gateway1.rss_bytes",
        incarnation: Some("gateway1.pid"),
        floor: 16.0 * MIB,
        ceiling: None,
        unit: Unit::Bytes,
        why: "gateway memory",
    },
    Judged {
        name: "gateway1.fds_beyond_streams",
        incarnation: Some("gateway1.pid"),
        floor: 16.0,
        ceiling: None,
        unit: Unit::Count,
        why: "gateway descriptors not held by a stream",
    },
    Judged {
        name: "gateway2.rss_bytes",
        incarnation: Some("gateway2.pid"),
        floor: 16.0 * MIB,
        ceiling: None,
        unit: Unit::Bytes,
        why: "gateway memory",
    },
    Judged {
        name: "gateway2.fds_beyond_streams",
        incarnation: Some("gateway2.pid"),
        floor: 16.0,
        ceiling: None,
        unit: Unit::Count,
        why: "gateway descriptors not held by a stream",
    },
    Judged {
        name: "api.pg_connections",
        incarnation: Some("api.pid"),
        floor: 4.0,
        ceiling: Some("api.pg_connections_bound"),
        unit: Unit::Count,
        why: "api connections to Postgres",
    },
    Judged {
        name: "worker.pg_connections",
        incarnation: Some("worker.pid"),
        floor: 4.0,
        ceiling: Some("worker.pg_connections_bound"),
        unit: Unit::Count,
        why: "worker connections to Postgres",
    },
    Judged {
        name: "gateway1.pg_connections",
        incarnation: Some("gateway1.pid"),
        floor: 4.0,
        ceiling: Some("gateway1.pg_connections_bound"),
        unit: Unit::Count,
        why: "gateway1 connections to Postgres",
    },
    Judged {
        name: "gateway2.pg_connections",
        incarnation: Some("gateway2.pid"),
        floor: 4.0,
        ceiling: Some("gateway2.pg_connections_bound"),
        unit: Unit::Count,
        why: "gateway2 connections to Postgres",
    },
    Judged {
        name: "redis.used_memory_bytes",
        incarnation: Some("redis.pid"),
        floor: 4.0 * MIB,
        ceiling: None,
        unit: Unit::Bytes,
        why: "Redis used_memory",
    },
    Judged {
        name: "redis.connected_clients",
        incarnation: None,
        floor: 4.0,
        ceiling: None,
        unit: Unit::Count,
        why: "Redis connections",
    },
];

/// The verdict on one piece of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Bounded,
    Grows,
    /// A sample above the series' hard bound.
    AboveCeiling,
    /// Too few samples after warm-up to tell.
    NotJudged,
}

#[derive(Debug, Clone)]
pub struct Piece {
    pub series: &'static str,
    /// What the series measures.
    pub what: &'static str,
    pub incarnation: Option<i64>,
    pub samples: usize,
    pub from: f64,
    pub to: f64,
    pub first_third: f64,
    pub last_third: f64,
    /// Per hour.
    pub slope: f64,
    pub trend: f64,
    pub tolerance: f64,
    /// The highest sample of the piece (warm-up included), and the bound it is held
    /// to (NaN: none).
    pub peak: f64,
    pub ceiling: f64,
    pub verdict: Verdict,
    unit: Unit,
}

/// The growth analysis of a soak.
#[derive(Debug, Clone)]
pub struct Growth {
    pub pieces: Vec<Piece>,
    /// Series no piece of which could be judged.
    pub unjudged: Vec<&'static str>,
}

impl Growth {
    pub fn passed(&self) -> bool {
        self.unjudged.is_empty() && self.growing() == 0
    }

    /// Pieces that grow or exceed their bound.
    pub fn growing(&self) -> usize {
        self.pieces
            .iter()
            .filter(|p| matches!(p.verdict, Verdict::Grows | Verdict::AboveCeiling))
            .count()
    }

    pub fn bounded(&self) -> usize {
        self.pieces
            .iter()
            .filter(|p| p.verdict == Verdict::Bounded)
            .count()
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The Theil–Sen slope of `(t, x)` points: the median of the slopes between every two
/// of them (per unit of `t`).
fn theil_sen(points: &[(f64, f64)]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 > a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    median(&slopes)
}

/// Judges a run: its `points` past warm-up (time in seconds, value) for growth, and
/// its peak against its ceiling.
fn judge(j: &Judged, run: &Run, cfg: &SoakConfig) -> Piece {
    let (incarnation, points) = (run.incarnation, &run.points[..]);
    let n = points.len();
    let mut piece = Piece {
        series: j.name,
        what: j.why,
        incarnation,
        samples: n,
        from: points.first().map_or(0.0, |p| p.0),
        to: points.last().map_or(0.0, |p| p.0),
        first_third: f64::NAN,
        last_third: f64::NAN,
        slope: f64::NAN,
        trend: f64::NAN,
        tolerance: f64::NAN,
        peak: run.peak,
        ceiling: run.ceiling,
        verdict: Verdict::NotJudged,
        unit: j.unit,
    };
    if run.peak > run.ceiling {
        piece.verdict = Verdict::AboveCeiling;
        return piece;
    }
    if n < cfg.min_samples.max(3) {
        return piece;
    }
    let k = n / 3;
    let xs: Vec<f64> = points.iter().map(|p| p.1).collect();
    piece.first_third = median(&xs[..k]);
    piece.last_third = median(&xs[n - k..]);
    let slope = theil_sen(points);
    piece.slope = slope * 3600.0;
    piece.trend = slope * (piece.to - piece.from);
    piece.tolerance = (cfg.growth_tolerance * piece.first_third.abs()).max(j.floor);
    let rise = piece.last_third - piece.first_third;
    piece.verdict = if rise > piece.tolerance || piece.trend > piece.tolerance {
        Verdict::Grows
    } else {
        Verdict::Bounded
    };
    piece
}

/// The samples of one series from one process (one pid).
struct Run {
    incarnation: Option<i64>,
    /// The piece's first sample.
    began: f64,
    /// The samples past warm-up: (seconds since start, value).
    points: Vec<(f64, f64)>,
    /// The highest sample, warm-up included (NaN: none yet).
    peak: f64,
    /// The lowest ceiling any of its samples was taken under (NaN: none).
    ceiling: f64,
}

/// Splits every judged series by incarnation, drops warm-up, and judges each piece.
pub fn analyse(samples: &[Sample], cfg: &SoakConfig) -> Growth {
    let start = samples.first().map_or(0.0, |s| s.t);
    let mut pieces = Vec::new();
    let mut unjudged = Vec::new();
    for j in JUDGED {
        let mut runs: Vec<Run> = Vec::new();
        let mut current: Option<i64> = None;
        for s in samples {
            let inc = j.incarnation.and_then(|k| s.values.get(k)).map(|v| *v as i64);
            // A new pid starts a new piece; a missing one (a process being restarted)
            // keeps the current piece.
            if (j.incarnation.is_some() && inc.is_some() && inc != current) || runs.is_empty() {
                current = inc.or(current);
                runs.push(Run {
                    incarnation: current,
                    began: s.t,
                    points: Vec::new(),
                    peak: f64::NAN,
                    ceiling: f64::NAN,
                });
            }
            let (Some(v), Some(run)) = (s.values.get(j.name), runs.last_mut()) else {
                continue;
            };
            // f64::max and min skip a NaN.
            run.peak = run.peak.max(*v);
            if let Some(c) = j.ceiling.and_then(|c| s.values.get(c)) {
                run.ceiling = run.ceiling.min(*c);
            }
            // Every piece waits out the run's warm-up; one that began later (a restarted
            // process) also RESTART_WARMUP after its first sample.
            let own = if run.began > start {
                run.began + RESTART_WARMUP
            } else {
                start
            };
            if s.t >= own.max(start + cfg.warmup) {
                run.points.push((s.t, *v));
            }
        }
        let before = pieces.len();
        for run in &runs {
            pieces.push(judge(j, run, cfg));
        }
        if !pieces[before..].iter().any(|p| p.verdict != Verdict::NotJudged) {
            unjudged.push(j.name);
        }
    }
    Growth { pieces, unjudged }
}

fn show(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Bytes => format!("{:.1} MiB", v / MIB),
        Unit::Count => format!("{v:.1}"),
    }
}

fn signed(unit: Unit, v: f64) -> String {
    let s = show(unit, v.abs());
    if v < 0.0 {
        format!("-{s}")
    } else {
        format!("+{s}")
    }
}

/// One line per piece, for the text report.
pub fn render(g: &Growth, cfg: &SoakConfig, wall: impl Fn(f64) -> String) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "growth: each series per process (pid), after {:.0}s of warm-up ({:.0}s after a restart); \
         thirds = median of the last third − median of the first third; trend = Theil–Sen slope × \
         duration; a series GROWS when either exceeds max({:.0}% of the first third, its floor); \
         fewer than {} samples: not judged",
        cfg.warmup,
        RESTART_WARMUP,
        cfg.growth_tolerance * 100.0,
        cfg.min_samples
    );
    for p in &g.pieces {
        let who = p.incarnation.map_or(String::new(), |i| format!(" pid {i},"));
        let verdict = match p.verdict {
            Verdict::Bounded => "ok",
            Verdict::Grows => "GROWS",
            Verdict::AboveCeiling => "ABOVE ITS BOUND",
            Verdict::NotJudged => "not judged",
        };
        if p.verdict == Verdict::AboveCeiling {
            let _ = writeln!(
                out,
                "  {:<28} {verdict}:{who} peak {} over its bound {} ({}–{} UTC)",
                p.series,
                show(p.unit, p.peak),
                show(p.unit, p.ceiling),
                wall(p.from),
                wall(p.to),
            );
            continue;
        }
        if p.verdict == Verdict::NotJudged {
            let _ = writeln!(
                out,
                "  {:<28} {verdict}:{who} {} samples after warm-up",
                p.series, p.samples
            );
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<28} {verdict}:{who} {} samples {}–{} UTC; first third {}, last third {} ({}); \
             trend {} over {:.0} min ({}/h); tolerance {}{}",
            p.series,
            p.samples,
            wall(p.from),
            wall(p.to),
            show(p.unit, p.first_third),
            show(p.unit, p.last_third),
            signed(p.unit, p.last_third - p.first_third),
            signed(p.unit, p.trend),
            (p.to - p.from) / 60.0,
            signed(p.unit, p.slope),
            show(p.unit, p.tolerance),
            if p.ceiling.is_finite() {
                format!(
                    "; peak {} of its bound {}",
                    show(p.unit, p.peak),
                    show(p.unit, p.ceiling)
                )
            } else {
                String::new()
            },
        );
    }
    for s in &g.unjudged {
        let _ = writeln!(
            out,
            "  {s:<28} NOT JUDGED: no piece had enough samples (a failure)"
        );
    }
    out
}

pub fn to_json(g: &Growth) -> Value {
    let num = |v: f64| if v.is_finite() { json!(v) } else { Value::Null };
    json!({
        "passed": g.passed(),
        "unjudged": g.unjudged,
        "pieces": g.pieces.iter().map(|p| json!({
            "series": p.series,
            "what": p.what,
            "pid": p.incarnation,
            "samples": p.samples,
            "from": p.from,
            "to": p.to,
            "first_third_median": num(p.first_third),
            "last_third_median": num(p.last_third),
            "rise": num(p.last_third - p.first_third),
            "theil_sen_slope_per_hour": num(p.slope),
            "trend_over_piece": num(p.trend),
            "tolerance": num(p.tolerance),
            "peak": num(p.peak),
            "ceiling": num(p.ceiling),
            "verdict": match p.verdict {
                Verdict::Bounded => "bounded",
                Verdict::Grows => "grows",
                Verdict::AboveCeiling => "above_ceiling",
                Verdict::NotJudged => "not_judged",
            },
        })).collect::<Vec<_>>(),
    })
}

/// The samples as CSV: time since start, UTC, phase, then every value seen (empty
/// where a sample lacks it).
pub fn to_csv(samples: &[Sample], phase_names: &[String], wall: impl Fn(f64) -> String) -> String {
    let mut names: Vec<&String> = samples.iter().flat_map(|s| s.values.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = String::from("t_seconds,utc,phase,phase_name");
    for n in &names {
        out.push(',');
        out.push_str(n);
    }
    out.push('\n');
    for s in samples {
        let phase = phase_names.get(s.phase).map_or("", String::as_str);
        let _ = write!(out, "{:.1},{},{},{}", s.t, wall(s.t), s.phase, phase);
        for n in &names {
            out.push(',');
            if let Some(v) = s.values.get(*n) {
                let _ = write!(out, "{v}");
            }
        }
        out.push('\n');
    }
    out
}

/// Everything lost, duplicated or out of order over the whole soak, from the phases
/// of the fault report.
#[derive(Debug, Clone, Default)]
struct Totals {
    accepted: u64,
    lost: u64,
    duplicated: u64,
    out_of_order: u64,
    inversions: u64,
    phantom: u64,
    faults: usize,
    faults_failed: usize,
    worst_recovery: Option<(f64, String)>,
}

fn totals(report: &Value) -> Totals {
    let mut t = Totals::default();
    let phases = report["phases"].as_array().map_or(&[][..], Vec::as_slice);
    for p in phases {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        t.accepted += p["publishes"]["accepted"].as_u64().unwrap_or(0);
        t.lost += n("lost");
        t.duplicated += n("duplicated");
        t.out_of_order += n("out_of_order");
        t.inversions += n("acceptance_order_inversions");
        t.phantom += n("phantom");
        if p["fault"].as_bool() == Some(true) {
            t.faults += 1;
            if p["passed"].as_bool() != Some(true) {
                t.faults_failed += 1;
            }
            if let Some(r) = p["recovery_seconds"].as_f64() {
                if t.worst_recovery.as_ref().is_none_or(|(w, _)| r > *w) {
                    let name = p["name"].as_str().unwrap_or("?").to_owned();
                    t.worst_recovery = Some((r, name));
                }
            }
        }
    }
    t
}

/// Adds the soak's section to the fault report (text and JSON), and its verdict: the
/// soak passes when every fault passed (nothing lost, duplicated or out of order) and
/// nothing grows. Returns the text, whose last line is the soak's summary.
pub fn finish_report(
    report: &mut crate::report::Report,
    text: String,
    growth: &Growth,
    cfg: &SoakConfig,
    samples: &[Sample],
    wall: &dyn Fn(f64) -> String,
) -> String {
    let t = totals(&report.json);
    let passed = report.passed && growth.passed();
    let summary = format!(
        "fault-suite --soak: {}; {} of {} faults passed; growth: {} pieces bounded, {} GROW, {} series not judged; \
         lost {}, duplicated {}, out of order {}",
        if passed { "PASSED" } else { "FAILED" },
        t.faults - t.faults_failed,
        t.faults,
        growth.bounded(),
        growth.growing(),
        growth.unjudged.len(),
        t.lost,
        t.duplicated,
        t.out_of_order,
    );
    let mut out = text;
    out.push_str("\n\n");
    let _ = writeln!(
        out,
        "soak: {:.0} min of publishing, a fault every {:.0}s ({} faults), samples every {:.0}s ({} samples) in {}; plot {}",
        cfg.seconds / 60.0,
        cfg.fault_interval,
        t.faults,
        cfg.sample_interval,
        samples.len(),
        cfg.samples_csv,
        cfg.plot,
    );
    let _ = writeln!(
        out,
        "totals: accepted {}; lost {}; duplicated {}; out of order {}; acceptance-order inversions {}; \
         phantom {}; worst recovery {}",
        t.accepted,
        t.lost,
        t.duplicated,
        t.out_of_order,
        t.inversions,
        t.phantom,
        t.worst_recovery
            .as_ref()
            .map_or("-".to_owned(), |(r, n)| format!("{r:.2}s ({n})")),
    );
    out.push_str(&render(growth, cfg, wall));
    out.push_str(&summary);
    report.passed = passed;
    report.json["passed"] = passed.into();
    report.json["fault_summary"] = report.json["summary"].clone();
    report.json["summary"] = summary.into();
    report.json["soak"] = json!({
        "seconds": cfg.seconds,
        "fault_interval_seconds": cfg.fault_interval,
        "sample_interval_seconds": cfg.sample_interval,
        "warmup_seconds": cfg.warmup,
        "restart_warmup_seconds": RESTART_WARMUP,
        "growth_tolerance": cfg.growth_tolerance,
        "min_samples": cfg.min_samples,
        "samples": samples.len(),
        "samples_csv": cfg.samples_csv,
        "plot": cfg.plot,
        "totals": {
            "accepted": t.accepted,
            "lost": t.lost,
            "duplicated": t.duplicated,
            "out_of_order": t.out_of_order,
            "acceptance_order_inversions": t.inversions,
            "phantom": t.phantom,
            "faults": t.faults,
            "faults_failed": t.faults_failed,
            "worst_recovery_seconds": t.worst_recovery.as_ref().map(|w| w.0),
            "worst_recovery_fault": t.worst_recovery.as_ref().map(|w| w.1.clone()),
        },
        "growth": to_json(growth),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SoakConfig {
        SoakConfig {
            warmup: 0.0,
            min_samples: 9,
            ..SoakConfig::default()
        }
    }

    fn samples(values: impl Fn(usize) -> Vec<(&'static str, f64)>, n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                t: i as f64 * 60.0,
                phase: 0,
                values: values(i).into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            })
            .collect()
    }

    fn verdict<'a>(g: &'a Growth, series: &str) -> Vec<&'a Verdict> {
        g.pieces
            .iter()
            .filter(|p| p.series == series)
            .map(|p| &p.verdict)
            .collect()
    }

    #[test]
    fn sample_output_is_read_leniently() {
        let v = parse_sample("api.pid 12\napi.rss_bytes 1024\nredis.used_memory_bytes -\nnoise\na b c\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v["api.rss_bytes"], 1024.0);
    }

    #[test]
    fn a_steady_leak_grows_and_a_flat_series_with_a_spike_does_not() {
        let s = samples(
            |i| {
                vec![
                    ("api.pid", 1.0),
                    ("api.rss_bytes", 100.0 * MIB + i as f64 * MIB),
                    ("api.fds", if i == 20 { 600.0 } else { 100.0 }),
                ]
            },
            30,
        );
        let g = analyse(&s, &cfg());
        assert_eq!(verdict(&g, "api.rss_bytes"), [&Verdict::Grows]);
        assert_eq!(verdict(&g, "api.fds"), [&Verdict::Bounded]);
        assert!(!g.passed());
    }

    #[test]
    fn a_restart_starts_a_new_piece_with_its_own_warm_up() {
        // The worker is restarted at sample 15: a new pid, and memory back to 50 MiB.
        let s = samples(
            |i| {
                let (pid, rss) = if i < 15 { (7.0, 80.0) } else { (8.0, 50.0) };
                vec![("worker.pid", pid), ("worker.rss_bytes", rss * MIB)]
            },
            40,
        );
        let g = analyse(&s, &cfg());
        let pieces: Vec<_> = g
            .pieces
            .iter()
            .filter(|p| p.series == "worker.rss_bytes")
            .collect();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].samples, 15);
        // 25 samples from the restart, the first two minutes of them warm-up.
        assert_eq!(pieces[1].samples, 23);
        assert!(pieces.iter().all(|p| p.verdict == Verdict::Bounded));
    }

    #[test]
    fn a_process_s_postgres_connections_are_held_to_its_pool() {
        // The gateway restarts at sample 15 and its new pool fills in the resume
        // burst, then gives the burst's connections back: bounded. A leak past the
        // pool, even in warm-up, is not.
        let run = |burst: f64| {
            samples(
                |i| {
                    let (pid, conns) = match i {
                        0..15 => (3.0, 4.0),
                        15..17 => (4.0, burst),
                        _ => (4.0, 4.0),
                    };
                    vec![
                        ("gateway1.pid", pid),
                        ("gateway1.pg_connections", conns),
                        ("gateway1.pg_connections_bound", 17.0),
                    ]
                },
                40,
            )
        };
        let g = analyse(&run(17.0), &cfg());
        assert_eq!(
            verdict(&g, "gateway1.pg_connections"),
            [&Verdict::Bounded, &Verdict::Bounded]
        );
        let g = analyse(&run(18.0), &cfg());
        assert_eq!(
            verdict(&g, "gateway1.pg_connections"),
            [&Verdict::Bounded, &Verdict::AboveCeiling]
        );
        assert_eq!(g.growing(), 1);
        assert!(!g.passed());
    }

    #[test]
    fn a_series_never_judged_fails_the_soak() {
        let s = samples(|_| vec![("api.pid", 1.0)], 30);
        let g = analyse(&s, &cfg());
        assert!(g.unjudged.contains(&"api.rss_bytes"));
        assert!(!g.passed());
    }

    #[test]
    fn gateway_descriptors_are_counted_beyond_their_streams() {
        let mut v = parse_sample("gateway1.fds 1040\ngateway1.streams 1000\ngateway2.fds 30\n");
        derive(&mut v);
        assert_eq!(v["gateway1.fds_beyond_streams"], 40.0);
        assert!(!v.contains_key("gateway2.fds_beyond_streams"));
    }

    #[test]
    fn theil_sen_ignores_one_outlier() {
        let mut pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 5.0)).collect();
        pts[9].1 = 1000.0;
        assert_eq!(theil_sen(&pts), 0.0);
        let line: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 2.0 * i as f64)).collect();
        assert_eq!(theil_sen(&line), 2.0);
    }
}
