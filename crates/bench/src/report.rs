//! The comparison table (Herald, baseline, ratio, goal) and its rows.

use serde_json::{json, Value};

use crate::scenarios::Run;

/// One line of the table.
pub struct Row {
    pub scenario: &'static str,
    pub metric: String,
    pub herald: Option<f64>,
    pub baseline: Option<f64>,
    pub goal: String,
    /// `None` when the goal cannot be judged (no baseline, smoke run).
    pub met: Option<bool>,
    /// Why, when the goal is missed or not judged.
    pub note: String,
}

impl Row {
    pub fn ratio(&self) -> Option<f64> {
        match (self.herald, self.baseline) {
            (Some(h), Some(b)) if b != 0.0 && h.is_finite() && b.is_finite() => Some(h / b),
            _ => None,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "metric": self.metric,
            "herald": self.herald,
            "baseline": self.baseline,
            "ratio": self.ratio().map(|r| (r * 1000.0).round() / 1000.0),
            "goal": self.goal,
            "met": self.met,
            "note": self.note,
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

/// The rows of one scenario. `judge` is false in the smoke run (debug build,
/// tiny sizes): figures are shown, goals are not judged.
pub fn rows(scenario: &'static str, herald: Option<&Run>, baseline: Option<&Run>, judge: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut row = |metric: &str, path: &[&str], goal: &str, met: Option<bool>| {
        rows.push(Row {
            scenario,
            metric: metric.to_owned(),
            herald: at(herald, path),
            baseline: at(baseline, path),
            goal: goal.to_owned(),
            met: if judge { met } else { None },
            note: String::new(),
        });
    };
    let h = |path: &[&str]| at(herald, path);
    let b = |path: &[&str]| at(baseline, path);
    let le = |x: Option<f64>, y: Option<f64>| Some(x? <= y?);
    let ge = |x: Option<f64>, y: Option<f64>| Some(x? >= y?);
    match scenario {
        "fan-out" => {
            let p = ["deliveries_per_server_cpu_s"];
            row(
                "deliveries per CPU-second of the server processes",
                &p,
                "≥ 3× baseline",
                ge(h(&p), b(&p).map(|v| 3.0 * v)),
            );
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
            row(
                "… read by the load generator, p50 (ms)",
                &["latency_accepted_read_ms", "p50"],
                "",
                None,
            );
            row(
                "… read by the load generator, p99 (ms)",
                &["latency_accepted_read_ms", "p99"],
                "",
                None,
            );
            row(
                "accepted POST → each event's first frame, p50 (ms)",
                &["latency_first_frame_ms", "p50"],
                "",
                None,
            );
            row(
                "accepted POST → each event's first frame, p99 (ms)",
                &["latency_first_frame_ms", "p99"],
                "",
                None,
            );
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
            row("server CPU-seconds", &["server_cpu_s"], "", None);
        }
        _ => {}
    }
    for r in &mut rows {
        if r.goal.is_empty() {
            continue;
        }
        if !judge {
            r.note = "not judged (no baseline in this run)".into();
        } else if r.met.is_none() {
            r.note = if baseline.is_none() {
                "no baseline in this run".into()
            } else {
                "missing figure".into()
            };
        }
    }
    // Say when a comparison is not at equal load.
    if scenario == "latency" {
        let offered = h(&["offered_per_s"]);
        for (who, achieved) in [
            ("Herald", h(&["accepted_per_s"])),
            ("the baseline", b(&["accepted_per_s"])),
        ] {
            if let (Some(o), Some(a)) = (offered, achieved) {
                if a < 0.95 * o {
                    for r in rows.iter_mut().filter(|r| !r.goal.is_empty()) {
                        if !r.note.is_empty() {
                            r.note.push_str("; ");
                        }
                        r.note.push_str(&format!(
                            "{who} sustained only {a:.0} of the {o:.0} events/s offered"
                        ));
                    }
                }
            }
        }
    }
    for (who, run) in [("Herald", herald), ("the baseline", baseline)] {
        let restarted = run.and_then(|r| r.metrics.get("postgres_restarted")?.as_bool()) == Some(true);
        if restarted {
            for r in rows.iter_mut().filter(|r| !r.goal.is_empty()) {
                if !r.note.is_empty() {
                    r.note.push_str("; ");
                }
                r.note
                    .push_str(&format!("the machine's Postgres restarted during {who}'s run"));
            }
        }
    }
    // A goal cannot be met by an incorrect run.
    if let Some(h) = herald {
        if !h.verdict.ok() {
            for r in rows.iter_mut().filter(|r| r.met == Some(true)) {
                r.met = Some(false);
                r.note = "Herald's run was not correct".into();
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
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mark = if r.note.is_empty() {
                String::new()
            } else {
                if !notes.contains(&r.note) {
                    notes.push(r.note.clone());
                }
                let i = notes.iter().position(|n| *n == r.note).unwrap_or(0);
                format!(" [{}]", i + 1)
            };
            vec![
                r.scenario.to_owned(),
                r.metric.clone(),
                num(r.herald),
                num(r.baseline),
                r.ratio()
                    .map(|x| format!("{x:.2}×"))
                    .unwrap_or_else(|| "—".into()),
                r.goal.clone(),
                match r.met {
                    Some(true) => format!("met{mark}"),
                    Some(false) => format!("MISSED{mark}"),
                    None if r.goal.is_empty() => String::new(),
                    None => format!("—{mark}"),
                },
            ]
        })
        .collect();
    let mut out = table(
        &["scenario", "metric", "Herald", "baseline", "ratio", "goal", ""],
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
