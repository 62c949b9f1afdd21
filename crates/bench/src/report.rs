//! The comparison table (Herald, the Node.js baseline, nginx + Nchan, the
//! ratios, the goals) and its rows.

use serde_json::{json, Value};

use crate::scenarios::Run;

/// One scenario's runs, by system.
pub struct Systems<'a> {
    pub herald: Option<&'a Run>,
    pub baseline: Option<&'a Run>,
    pub nchan: Option<&'a Run>,
}

/// One line of the table.
pub struct Row {
    pub scenario: &'static str,
    pub metric: String,
    pub herald: Option<f64>,
    pub baseline: Option<f64>,
    pub nchan: Option<f64>,
    /// Herald's goal against the Node.js baseline, or an absolute one.
    pub goal: String,
    /// `None` when the goal cannot be judged (no baseline, smoke run).
    pub met: Option<bool>,
    /// Why, when the goal is missed or not judged.
    pub note: String,
    /// Herald's goal against Nchan (issue 18), judged when Nchan ran.
    pub nchan_goal: String,
    pub nchan_met: Option<bool>,
    pub nchan_note: String,
}

fn ratio(h: Option<f64>, other: Option<f64>) -> Option<f64> {
    match (h, other) {
        (Some(h), Some(o)) if o != 0.0 && h.is_finite() && o.is_finite() => Some(h / o),
        _ => None,
    }
}

fn note(to: &mut String, what: &str) {
    if !to.is_empty() {
        to.push_str("; ");
    }
    to.push_str(what);
}

impl Row {
    /// Herald ÷ the Node.js baseline.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.herald, self.baseline)
    }

    /// Herald ÷ Nchan.
    pub fn ratio_nchan(&self) -> Option<f64> {
        ratio(self.herald, self.nchan)
    }

    pub fn json(&self) -> Value {
        let r3 = |r: Option<f64>| r.map(|r| (r * 1000.0).round() / 1000.0);
        json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "herald": self.herald,
            "baseline": self.baseline,
            "nchan": self.nchan,
            "ratio": r3(self.ratio()),
            "ratio_nchan": r3(self.ratio_nchan()),
            "goal": self.goal,
            "met": self.met,
            "note": self.note,
            "nchan_goal": self.nchan_goal,
            "nchan_met": self.nchan_met,
            "nchan_note": self.nchan_note,
        })
    }
}

fn at(run: Option<&Run>, path: &[&str]) -> Option<f64> {
    let run = run?;
    let mut v = run.metrics.get(path[0])?;
    for key in &path[1..] {
        v = v.get(key)?;
    }
    v.as_f64()
}

fn all_met(checks: &[Option<bool>]) -> Option<bool> {
    let mut out = true;
    for c in checks {
        out &= (*c)?;
    }
    Some(out)
}

/// The figures both latency scenarios show beside the judged ones.
const LATENCY_DETAILS: [(&str, [&str; 2]); 6] = [
    (
        "… read by the load generator, p50 (ms)",
        ["latency_accepted_read_ms", "p50"],
    ),
    (
        "… read by the load generator, p99 (ms)",
        ["latency_accepted_read_ms", "p99"],
    ),
    (
        "accepted POST → each event's first frame, p50 (ms)",
        ["latency_first_frame_ms", "p50"],
    ),
    (
        "accepted POST → each event's first frame, p99 (ms)",
        ["latency_first_frame_ms", "p99"],
    ),
    (
        "fan-out: each event's first frame → its last, p50 (ms)",
        ["latency_spread_ms", "p50"],
    ),
    (
        "fan-out: each event's first frame → its last, p99 (ms)",
        ["latency_spread_ms", "p99"],
    ),
];

/// The rows of one scenario. `judge` is false in the smoke run (debug build,
/// tiny sizes): figures are shown, goals are not judged. Goals against a
/// system are judged only when it ran.
pub fn rows(scenario: &'static str, sys: &Systems<'_>, judge: bool) -> Vec<Row> {
    let (herald, baseline, nchan) = (sys.herald, sys.baseline, sys.nchan);
    let judge_baseline = judge && baseline.is_some();
    let judge_nchan = judge && nchan.is_some();
    let mut rows: Vec<Row> = Vec::new();
    let mut row = |metric: &str, path: &[&str], goal: &str, met: Option<bool>| {
        rows.push(Row {
            scenario,
            metric: metric.to_owned(),
            herald: at(herald, path),
            baseline: at(baseline, path),
            nchan: at(nchan, path),
            goal: goal.to_owned(),
            met: if judge_baseline { met } else { None },
            note: String::new(),
            nchan_goal: String::new(),
            nchan_met: None,
            nchan_note: String::new(),
        });
    };
    let h = |path: &[&str]| at(herald, path);
    let b = |path: &[&str]| at(baseline, path);
    let n = |path: &[&str]| at(nchan, path);
    let le = |x: Option<f64>, y: Option<f64>| Some(x? <= y?);
    let ge = |x: Option<f64>, y: Option<f64>| Some(x? >= y?);
    // (index of the row, goal against Nchan, met)
    let mut against_nchan: Vec<(usize, &str, Option<bool>)> = Vec::new();
    match scenario {
        "fan-out" => {
            let p = ["deliveries_per_server_cpu_s"];
            row(
                "deliveries per CPU-second of the server processes",
                &p,
                "≥ 3× baseline",
                ge(h(&p), b(&p).map(|v| 3.0 * v)),
            );
            against_nchan.push((0, "≥ 5× Nchan", ge(h(&p), n(&p).map(|v| 5.0 * v))));
            row("server CPU-seconds", &["server_cpu_s"], "", None);
            row("deliveries per second (wall)", &["deliveries_per_s"], "", None);
            row("publish accepted/s", &["accepted_per_s"], "", None);
        }
        "latency" => {
            let p50 = ["latency_accepted_ms", "p50"];
            let p99 = ["latency_accepted_ms", "p99"];
            row(
                "accepted POST → frame arrives, p50 (ms)",
                &p50,
                "≤ baseline and ≤ 5",
                all_met(&[le(h(&p50), b(&p50)), le(h(&p50), Some(5.0))]),
            );
            row(
                "accepted POST → frame arrives, p99 (ms)",
                &p99,
                "≤ baseline and ≤ 25",
                all_met(&[le(h(&p99), b(&p99)), le(h(&p99), Some(25.0))]),
            );
            against_nchan.push((1, "≤ Nchan", le(h(&p99), n(&p99))));
            for (metric, path) in LATENCY_DETAILS {
                row(metric, &path, "", None);
            }
            row(
                "POST sent → frame, p50 (ms)",
                &["latency_sent_ms", "p50"],
                "",
                None,
            );
            row(
                "POST sent → frame, p99 (ms)",
                &["latency_sent_ms", "p99"],
                "",
                None,
            );
            row("server CPU-seconds", &["server_cpu_s"], "", None);
        }
        "latency-light" => {
            // Issue 18's light load: 100 streams, 100 events/s. Nchan plus
            // the hops and flushes Herald's guarantees cost.
            let p50 = ["latency_accepted_ms", "p50"];
            let p99 = ["latency_accepted_ms", "p99"];
            row("accepted POST → frame arrives, p50 (ms)", &p50, "", None);
            against_nchan.push((0, "≤ Nchan + 2 ms", le(h(&p50), n(&p50).map(|v| v + 2.0))));
            row("accepted POST → frame arrives, p99 (ms)", &p99, "", None);
            against_nchan.push((1, "≤ Nchan + 5 ms", le(h(&p99), n(&p99).map(|v| v + 5.0))));
            for (metric, path) in LATENCY_DETAILS {
                row(metric, &path, "", None);
            }
            row("server CPU-seconds", &["server_cpu_s"], "", None);
        }
        "publish" => {
            let p = ["accepted_per_s"];
            let ordered = herald.and_then(|r| r.metrics.get("in_publishing_order")?.as_bool());
            row(
                "accepted events/s, 8 keep-alive publishers",
                &p,
                "≥ 5,000, all in seq order",
                all_met(&[ge(h(&p), Some(5000.0)), ordered]),
            );
            row("server CPU µs per event", &["server_cpu_us_per_event"], "", None);
            row(
                "… via POST /v1/events/batch (50 per request, Herald only): events/s",
                &["batch_accepted_per_s"],
                "",
                None,
            );
            row(
                "… via batch: server CPU µs per event",
                &["batch_server_cpu_us_per_event"],
                "",
                None,
            );
        }
        "idle" => {
            let p = ["rss_per_stream_kib"];
            row("RSS per open stream (KiB)", &p, "≤ 8", le(h(&p), Some(8.0)));
            against_nchan.push((0, "≤ 0.7× Nchan", le(h(&p), n(&p).map(|v| 0.7 * v))));
            row(
                "server CPU µs per stream open",
                &["server_cpu_us_per_open"],
                "",
                None,
            );
        }
        "replay" => {
            let p = ["all_received_ms", "p50"];
            row(
                "reconnect → all 100 missed received, p50 (ms)",
                &p,
                "≤ 5",
                le(h(&p), Some(5.0)),
            );
            against_nchan.push((0, "≤ Nchan", le(h(&p), n(&p))));
            row("… max (ms)", &["all_received_ms", "max"], "", None);
        }
        "storm" => {
            let p = ["all_caught_up_ms"];
            row(
                "1000 reconnect at once, all caught up (ms)",
                &p,
                "≤ 0.5× baseline",
                le(h(&p), b(&p).map(|v| 0.5 * v)),
            );
            against_nchan.push((0, "≤ Nchan", le(h(&p), n(&p))));
            row("server CPU-seconds", &["server_cpu_s"], "", None);
        }
        _ => {}
    }
    for (i, goal, met) in against_nchan {
        if let Some(r) = rows.get_mut(i) {
            r.nchan_goal = goal.to_owned();
            r.nchan_met = if judge_nchan { met } else { None };
        }
    }
    for r in &mut rows {
        if !r.goal.is_empty() {
            if !judge {
                r.note = "not judged (smoke run)".into();
            } else if baseline.is_none() {
                r.note = "no baseline in this run".into();
            } else if r.met.is_none() {
                r.note = "missing figure".into();
            }
        }
        if !r.nchan_goal.is_empty() {
            if !judge {
                r.nchan_note = "not judged (smoke run)".into();
            } else if nchan.is_none() {
                r.nchan_note = "no Nchan in this run".into();
            } else if r.nchan_met.is_none() {
                r.nchan_note = "missing figure".into();
            }
        }
    }
    // Say when a comparison is not at equal load.
    if scenario == "latency" || scenario == "latency-light" {
        let offered = h(&["offered_per_s"]);
        for (who, achieved) in [
            ("Herald", h(&["accepted_per_s"])),
            ("the baseline", b(&["accepted_per_s"])),
            ("Nchan", n(&["accepted_per_s"])),
        ] {
            if let (Some(o), Some(a)) = (offered, achieved) {
                if a < 0.95 * o {
                    let what = format!("{who} sustained only {a:.0} of the {o:.0} events/s offered");
                    for r in &mut rows {
                        if !r.goal.is_empty() {
                            note(&mut r.note, &what);
                        }
                        if !r.nchan_goal.is_empty() {
                            note(&mut r.nchan_note, &what);
                        }
                    }
                }
            }
        }
    }
    for (who, run) in [("Herald", herald), ("the baseline", baseline), ("Nchan", nchan)] {
        let restarted = run.and_then(|r| r.metrics.get("postgres_restarted")?.as_bool()) == Some(true);
        if restarted {
            let what = format!("the machine's Postgres restarted during {who}'s run");
            for r in &mut rows {
                if !r.goal.is_empty() {
                    note(&mut r.note, &what);
                }
                if !r.nchan_goal.is_empty() {
                    note(&mut r.nchan_note, &what);
                }
            }
        }
    }
    // A comparison with a run that was not exact judges nothing.
    for (who, run, nchan_side) in [("the baseline", baseline, false), ("Nchan", nchan, true)] {
        if run.is_some_and(|r| !r.verdict.ok()) {
            for r in &mut rows {
                let (goal, met, why) = if nchan_side {
                    (&r.nchan_goal, &mut r.nchan_met, &mut r.nchan_note)
                } else {
                    (&r.goal, &mut r.met, &mut r.note)
                };
                if !goal.is_empty() && met.is_some() {
                    *met = None;
                    *why = format!("{who}'s run was not exact");
                }
            }
        }
    }
    // A goal cannot be met by an incorrect run.
    if let Some(h) = herald {
        if !h.verdict.ok() {
            for r in &mut rows {
                if r.met == Some(true) {
                    r.met = Some(false);
                    r.note = "Herald's run was not correct".into();
                }
                if r.nchan_met == Some(true) {
                    r.nchan_met = Some(false);
                    r.nchan_note = "Herald's run was not correct".into();
                }
            }
        }
    }
    rows
}

/// Formats a figure with thousands separators or a few decimals.
pub fn num(v: Option<f64>) -> String {
    let Some(v) = v else { return "—".into() };
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A plain-text table with aligned columns.
pub fn table(header: &[&str], lines: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for l in lines {
        for (i, c) in l.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let fmt_line = |cells: Vec<String>, out: &mut String| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(c.chars().count());
            line.push_str(c);
            if i + 1 < cells.len() {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    fmt_line(header.iter().map(|s| (*s).to_owned()).collect(), &mut out);
    fmt_line(widths.iter().map(|w| "-".repeat(*w)).collect(), &mut out);
    for l in lines {
        fmt_line(l.clone(), &mut out);
    }
    out
}

pub fn comparison_table(rows: &[Row]) -> String {
    let mut notes: Vec<String> = Vec::new();
    let mut mark = |goal: &str, met: Option<bool>, why: &str| -> String {
        let mark = if why.is_empty() {
            String::new()
        } else {
            if !notes.iter().any(|n| n == why) {
                notes.push(why.to_owned());
            }
            let i = notes.iter().position(|n| n == why).unwrap_or(0);
            format!(" [{}]", i + 1)
        };
        match met {
            Some(true) => format!("met{mark}"),
            Some(false) => format!("MISSED{mark}"),
            None if goal.is_empty() => String::new(),
            None => format!("—{mark}"),
        }
    };
    let times = |r: Option<f64>| r.map(|x| format!("{x:.2}×")).unwrap_or_else(|| "—".into());
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.scenario.to_owned(),
                r.metric.clone(),
                num(r.herald),
                num(r.baseline),
                num(r.nchan),
                times(r.ratio()),
                times(r.ratio_nchan()),
                r.goal.clone(),
                mark(&r.goal, r.met, &r.note),
                r.nchan_goal.clone(),
                mark(&r.nchan_goal, r.nchan_met, &r.nchan_note),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "scenario",
            "metric",
            "Herald",
            "Node",
            "Nchan",
            "÷ Node",
            "÷ Nchan",
            "goal",
            "",
            "goal vs Nchan",
            "",
        ],
        &lines,
    );
    for (i, n) in notes.iter().enumerate() {
        out.push_str(&format!("[{}] {n}\n", i + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(num(Some(1234567.0)), "1,234,567");
        assert_eq!(num(Some(123.4)), "123");
        assert_eq!(num(Some(12.34)), "12.3");
        assert_eq!(num(Some(1.234)), "1.23");
        assert_eq!(num(None), "—");
    }
}
