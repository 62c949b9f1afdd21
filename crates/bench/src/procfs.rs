//! CPU time from `/proc/<pid>/stat` and resident memory from
//! `/proc/<pid>/status`, for the server processes, the Postgres backends of one
//! database, the machine's Redis and the load generator itself.

use std::collections::{BTreeMap, HashMap};
use std::fs;

/// CPU ticks (user + system, all threads) of a process, or `None` once it is gone.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count the fields after its closing parenthesis. utime and stime are
    // fields 14 and 15, i.e. the 12th and 13th after the name.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn comm(pid: u32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_owned(),
    )
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Which processes to account for, and under which label.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The system's own server processes (`api`, `worker`, `gateway`; `node`).
    pub servers: Vec<(String, u32)>,
    /// Postgres backends whose process title names this database.
    pub pg_database: Option<String>,
    /// The Redis server listening on this port.
    pub redis_port: Option<u16>,
    pub clock_ticks_per_second: f64,
}

/// CPU ticks per process at one instant, with each process's label, and the
/// busy ticks of the whole machine (all CPUs) from `/proc/stat`.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    ticks: HashMap<u32, (String, u64)>,
    machine_busy: u64,
}

/// Busy ticks of all CPUs together: everything but idle and iowait.
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    v.iter().take(8).sum::<u64>() - v.get(3).copied().unwrap_or(0) - v.get(4).copied().unwrap_or(0)
}

impl Probe {
    pub fn sample(&self) -> Sample {
        let mut ticks = HashMap::new();
        for (label, pid) in &self.servers {
            if let Some(t) = cpu_ticks(*pid) {
                ticks.insert(*pid, (label.clone(), t));
            }
        }
        let me = std::process::id();
        if let Some(t) = cpu_ticks(me) {
            ticks.insert(me, ("bench".to_owned(), t));
        }
        if self.pg_database.is_some() || self.redis_port.is_some() {
            let db_marker = self.pg_database.as_ref().map(|db| format!(" {db} "));
            let redis_marker = self.redis_port.map(|p| format!(":{p}"));
            for pid in pids() {
                let Some(name) = comm(pid) else { continue };
                let label = match name.as_str() {
                    "postgres" => {
                        let Some(marker) = &db_marker else { continue };
                        if !cmdline(pid).is_some_and(|c| c.contains(marker.as_str())) {
                            continue;
                        }
                        "postgres"
                    }
                    "redis-server" => {
                        let Some(marker) = &redis_marker else { continue };
                        if !cmdline(pid).is_some_and(|c| c.contains(marker.as_str())) {
                            continue;
                        }
                        "redis"
                    }
                    _ => continue,
                };
                if let Some(t) = cpu_ticks(pid) {
                    ticks.insert(pid, (label.to_owned(), t));
                }
            }
        }
        Sample {
            ticks,
            machine_busy: machine_busy_ticks(),
        }
    }

    /// CPU seconds per label between two samples. A process that appeared in
    /// between (a new Postgres backend) counts from zero.
    pub fn cpu_seconds(&self, before: &Sample, after: &Sample) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for (label, _) in &self.servers {
            out.entry(label.clone()).or_default();
        }
        for (pid, (label, t1)) in &after.ticks {
            let t0 = before.ticks.get(pid).map_or(0, |(_, t)| *t);
            *out.entry(label.clone()).or_default() +=
                t1.saturating_sub(t0) as f64 / self.clock_ticks_per_second;
        }
        // Everything else the machine did meanwhile (other jobs on a shared
        // box, the kernel's softirq work for loopback traffic): the noise.
        let accounted: f64 = out.values().sum();
        let machine =
            after.machine_busy.saturating_sub(before.machine_busy) as f64 / self.clock_ticks_per_second;
        out.insert("machine".into(), machine);
        out.insert("other".into(), (machine - accounted).max(0.0));
        out
    }

    /// Total RSS of the server processes, KiB.
    pub fn servers_rss_kib(&self) -> u64 {
        self.servers.iter().filter_map(|(_, pid)| rss_kib(*pid)).sum()
    }

    /// Total RSS of the processes under `label` (nginx's master and workers
    /// are all `nginx`), KiB.
    pub fn rss_of(&self, label: &str) -> Option<u64> {
        self.servers
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, pid)| rss_kib(*pid))
            .sum()
    }

    /// The labels of the server processes, each once.
    pub fn server_labels(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (label, _) in &self.servers {
            if !out.contains(&label.as_str()) {
                out.push(label);
            }
        }
        out
    }
}

/// The children of `pid` (nginx's workers of its master), in pid order.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = pids()
        .into_iter()
        .filter(|p| {
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(pid)
        })
        .collect();
    out.sort_unstable();
    out
}

fn parent_pid(stat: &str) -> Option<u32> {
    // After the parenthesized name: state, then ppid.
    stat[stat.rfind(')')? + 1..]
        .split_ascii_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The Postgres postmaster(s) of this machine (`postgres -D …`): if the set
/// changes during a scenario, someone restarted the shared server under it.
pub fn postmasters() -> Vec<u32> {
    let mut out: Vec<u32> = pids()
        .into_iter()
        .filter(|pid| comm(*pid).as_deref() == Some("postgres"))
        .filter(|pid| cmdline(*pid).is_some_and(|c| c.contains(" -D ")))
        .collect();
    out.sort_unstable();
    out
}

/// Machine-wide TCP counters that explain connection delays: accept queues
/// that overflowed (the SYN is dropped and retried a second later) and
/// retransmitted segments.
pub fn tcp_counters() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (file, section, wanted) in [
        (
            "/proc/net/netstat",
            "TcpExt:",
            &["ListenOverflows", "ListenDrops"][..],
        ),
        ("/proc/net/snmp", "Tcp:", &["RetransSegs"][..]),
    ] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let mut lines = text.lines().filter(|l| l.starts_with(section));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            continue;
        };
        for (name, value) in names
            .split_ascii_whitespace()
            .zip(values.split_ascii_whitespace())
        {
            if wanted.contains(&name) {
                if let Ok(v) = value.parse() {
                    out.insert(name.to_owned(), v);
                }
            }
        }
    }
    out
}

/// `after - before` for every counter.
pub fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> serde_json::Value {
    serde_json::Value::Object(
        after
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.saturating_sub(before.get(k).copied().unwrap_or(0)).into(),
                )
            })
            .collect(),
    )
}

/// The machine, for the report.
pub fn machine() -> serde_json::Value {
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_kib: u64 = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_ascii_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu_model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel.trim(),
        "loadavg": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ticks_past_a_name_with_spaces_and_parentheses() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(stat_ticks(stat), Some(325));
    }

    #[test]
    fn reads_the_parent_pid() {
        let stat = "1234 (my (odd) name) S 77 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 4 0";
        assert_eq!(parent_pid(stat), Some(77));
        let me = std::process::id();
        let parent = parent_pid(&fs::read_to_string(format!("/proc/{me}/stat")).unwrap_or_default());
        assert!(parent.is_some_and(|p| children(p).contains(&me)));
    }

    #[test]
    fn reads_tcp_counters() {
        let c = tcp_counters();
        assert!(c.contains_key("ListenOverflows"), "{c:?}");
        assert!(c.contains_key("RetransSegs"), "{c:?}");
    }

    #[test]
    fn measures_this_process() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(rss_kib(me).unwrap_or(0) > 0);
    }
}
