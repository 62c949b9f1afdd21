//! Command-line arguments.

use std::collections::HashMap;

pub const USAGE: &str = "\
usage: herald-faults --api URL --gateway URL [options] (--fault NAME [fault options])...

  --api URL                 the API (through the load balancer)
  --gateway URL             the gateways (through the load balancer)
  --clients N               SSE clients (40)
  --rate R                  publishes per second (50)
  --topics K                topics published to, round robin (4)
  --topics-per-client M     topics each client streams (2)
  --steady SECS             steady publishing before each fault and at the end (2)
  --recovery-bound SECS     a fault fails when recovery takes longer (30)
  --recovery-timeout SECS   how long to wait for recovery after the fault healed (60)
  --connect-timeout SECS    how long the clients may take to open their streams (30)
  --lag-threshold SECS      a delivery later than this after its 202 is late (0.5)
  --settle SECS             after a fault, clients must keep up (nothing late) this long
                            before it counts as recovered (3)
  --mode NAME               a label for the report (e.g. short, long)
  --gateway-name ADDR=NAME  name an upstream address in the report (repeatable)
  --report PREFIX           write PREFIX.json and PREFIX.txt (test-artifacts/fault-report)
  --direct NAME=URL         a service's own address, for the hostile stage (repeatable:
                            api, gateway1, gateway2)
  --http-bounds H,I,B       the services' HERALD_HTTP_HEADER_TIMEOUT, _IDLE_TIMEOUT and
                            _BODY_TIMEOUT, in seconds (10,60,30)
  --retention SECS          the worker's HERALD_RETENTION, in seconds (604800)
  --idle-timeout SECS       a client drops a stream that carried nothing (not even a
                            heartbeat) this long, and reconnects (45)

  --soak SECS               a soak: publish for SECS in all, and cycle through the
                            faults given (a rotation) one every --fault-interval
  --fault-interval SECS     soak: a fault starts every SECS after publishing began (240)
  --churn SECS              each client closes its stream after about SECS (0.5-1.5x,
                            spread over the clients) and reconnects at once with
                            Last-Event-ID, except while a fault is measured (off)
  --sample CMD              soak: shell command printing `NAME VALUE` lines (resource
                            use of the services), run every --sample-interval
  --sample-interval SECS    soak: how often --sample runs (60)
  --samples-csv PATH        soak: write every sample there (test-artifacts/soak-samples.csv)
  --plot PATH               soak: the plot of the samples, named in the report (the
                            suite draws it: test-artifacts/soak-plot.png)
  --warmup SECS             soak: samples this early are not judged for growth (300)
  --growth-tolerance FRAC   soak: a series grows when its rise exceeds this fraction of
                            its first third (or the series' floor, if larger) (0.25)
  --min-samples N           soak: fewer judged samples of a process leave it unjudged (9)

  --fault NAME              start a fault; the options below apply to the last --fault
  --prepare CMD             shell command run before the fault's steady period and not
                            timed (e.g. building a standby to fail over to)
  --inject CMD              shell command that applies the fault
  --hold SECS               how long the fault lasts before the heal command (0)
  --heal CMD                shell command that ends the fault
  --expect-503              the API must answer 503 problem+json with Retry-After at
                            least once during this fault
  --expect-rewind           history goes backwards in this fault (a failover to a standby
                            that lacked the last commits): every client must get
                            herald.reset with reason rewound; an event of this phase it
                            was not shown before that reset counts as lost to the rewind
                            (reported, not a failure), everything after must arrive
  --commit-in-doubt         a 503 in this fault may come from a server that died during
                            COMMIT (a failover): whether it committed is unknown, so its
                            event may be delivered (counted as unknown, not as a phantom)
  --expect-kept NAME        every stream open on gateway NAME (--gateway-name) when the
                            fault starts must stay open until it recovered (repeatable)
  --expect-moved NAME       every client streaming from gateway NAME when the fault starts
                            must resume on another gateway before it recovered
  --drain NAME=URL          a rolling restart: stop (--stop) and start (--start) the
                            gateway NAME, whose own address is URL, then the next one
                            (repeatable, in order); while it stops, its /readyz is polled
                            and its streams watched: /readyz must turn 503 before any of
                            them closes, each must end cleanly after herald.reconnect,
                            it must exit within --exit-bound, and no client may see an
                            error; nginx must route to it again before the next one stops
  --stop CMD                sends SIGTERM to {gateway} and returns once it exited
  --start CMD               starts {gateway} and returns once it is ready
  --exit-bound SECS         SIGTERM → exit, at most (5)
  --hostile                 the hostile-client stage: attack every --direct service
                            (slow and oversized heads, idle keep-alive, slow bodies, made-up
                            methods, odd headers, NUL strings, a consumer paused while
                            retention prunes its replay); each attack has its bound

environment: HERALD_JWT_SECRET (required), HERALD_JWT_AUDIENCE (herald), HERALD_JWT_ISSUER";

#[derive(Debug, Clone, Default)]
pub struct FaultSpec {
    pub name: String,
    pub prepare: Option<String>,
    pub inject: Option<String>,
    pub hold: f64,
    pub heal: Option<String>,
    pub expect_503: bool,
    /// History goes backwards: see `--expect-rewind`.
    pub expect_rewind: bool,
    /// A 503 may have committed: see `--commit-in-doubt`.
    pub commit_in_doubt: bool,
    /// Rolling restart: the gateways (name, direct URL) to stop and start in turn.
    pub drain: Vec<(String, String)>,
    pub stop: Option<String>,
    pub start: Option<String>,
    pub exit_bound: f64,
    /// The hostile-client stage (see `hostile`).
    pub hostile: bool,
    /// Gateways whose streams must stay open (see `partition::kept`).
    pub expect_kept: Vec<String>,
    /// Gateways whose clients must move elsewhere (see `partition::moved`).
    pub expect_moved: Vec<String>,
}

/// The HTTP timeouts the services run with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HttpBounds {
    pub header: std::time::Duration,
    pub idle: std::time::Duration,
    pub body: std::time::Duration,
}

impl FaultSpec {
    pub fn new(name: String) -> Self {
        Self {
            name,
            exit_bound: 5.0,
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub api: String,
    pub gateway: String,
    pub clients: usize,
    pub rate: f64,
    pub topics: usize,
    pub topics_per_client: usize,
    pub steady: f64,
    pub recovery_bound: f64,
    pub recovery_timeout: f64,
    pub lag_threshold: f64,
    pub settle: f64,
    pub connect_timeout: f64,
    pub mode: String,
    pub gateway_names: HashMap<String, String>,
    pub report: String,
    pub faults: Vec<FaultSpec>,
    /// Services by name at their own addresses.
    pub direct: Vec<(String, String)>,
    pub http_bounds: HttpBounds,
    /// The worker's retention, in seconds.
    pub retention: f64,
    /// A client's idle timeout, in seconds.
    pub idle_timeout: f64,
    /// A client's stream lifetime under churn, in seconds (`--churn`).
    pub churn: Option<f64>,
    /// The soak, when this run is one (`--soak`).
    pub soak: Option<SoakConfig>,
}

/// A soak: a long run with the faults as a rotation, and the services' resource use
/// sampled and judged for growth (`soak`).
#[derive(Debug, Clone, PartialEq)]
pub struct SoakConfig {
    pub seconds: f64,
    pub fault_interval: f64,
    pub sample: Option<String>,
    pub sample_interval: f64,
    pub samples_csv: String,
    /// Where the suite draws the samples (named in the report).
    pub plot: String,
    pub warmup: f64,
    pub growth_tolerance: f64,
    pub min_samples: usize,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            seconds: 3600.0,
            fault_interval: 240.0,
            sample: None,
            sample_interval: 60.0,
            samples_csv: "test-artifacts/soak-samples.csv".into(),
            plot: "test-artifacts/soak-plot.png".into(),
            warmup: 300.0,
            growth_tolerance: 0.25,
            min_samples: 9,
        }
    }
}

impl Config {
    /// The direct URL of the service `name`.
    pub fn direct_url(&self, name: &str) -> Option<String> {
        self.direct
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, u)| u.clone())
    }
}

impl Config {
    pub fn from_args(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut c = Config {
            api: String::new(),
            gateway: String::new(),
            clients: 40,
            rate: 50.0,
            topics: 4,
            topics_per_client: 2,
            steady: 2.0,
            recovery_bound: 30.0,
            recovery_timeout: 60.0,
            lag_threshold: 0.5,
            settle: 3.0,
            connect_timeout: 30.0,
            mode: "custom".into(),
            gateway_names: HashMap::new(),
            report: "test-artifacts/fault-report".into(),
            faults: Vec::new(),
            direct: Vec::new(),
            http_bounds: HttpBounds {
                header: std::time::Duration::from_secs(10),
                idle: std::time::Duration::from_secs(60),
                body: std::time::Duration::from_secs(30),
            },
            retention: 7.0 * 86_400.0,
            idle_timeout: 45.0,
            churn: None,
            soak: None,
        };
        let mut soak = SoakConfig::default();
        let mut soak_seconds = None;
        let mut args = args;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--api" => c.api = value()?.trim_end_matches('/').to_owned(),
                "--gateway" => c.gateway = value()?.trim_end_matches('/').to_owned(),
                "--clients" => c.clients = number(&flag, &value()?)?,
                "--rate" => c.rate = seconds(&flag, &value()?)?,
                "--topics" => c.topics = number(&flag, &value()?)?,
                "--topics-per-client" => c.topics_per_client = number(&flag, &value()?)?,
                "--steady" => c.steady = seconds(&flag, &value()?)?,
                "--recovery-bound" => c.recovery_bound = seconds(&flag, &value()?)?,
                "--recovery-timeout" => c.recovery_timeout = seconds(&flag, &value()?)?,
                "--settle" => c.settle = seconds(&flag, &value()?)?,
                "--lag-threshold" => c.lag_threshold = seconds(&flag, &value()?)?,
                "--connect-timeout" => c.connect_timeout = seconds(&flag, &value()?)?,
                "--mode" => c.mode = value()?,
                "--gateway-name" => {
                    let v = value()?;
                    let (addr, name) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--gateway-name takes ADDR=NAME, got {v}"))?;
                    c.gateway_names.insert(addr.to_owned(), name.to_owned());
                }
                "--report" => c.report = value()?,
                "--direct" => {
                    let v = value()?;
                    let (name, url) = v
                        .split_once('=')
                        .ok_or_else(|| format!("--direct takes NAME=URL, got {v}"))?;
                    c.direct
                        .push((name.to_owned(), url.trim_end_matches('/').to_owned()));
                }
                "--http-bounds" => {
                    let v = value()?;
                    let parts: Vec<f64> = v
                        .split(',')
                        .map(|s| seconds(&flag, s.trim()))
                        .collect::<Result<_, _>>()?;
                    let [h, i, b] = parts[..] else {
                        return Err(format!("--http-bounds takes HEADER,IDLE,BODY seconds, got {v}"));
                    };
                    let d = std::time::Duration::from_secs_f64;
                    c.http_bounds = HttpBounds {
                        header: d(h),
                        idle: d(i),
                        body: d(b),
                    };
                }
                "--retention" => c.retention = seconds(&flag, &value()?)?,
                "--idle-timeout" => c.idle_timeout = seconds(&flag, &value()?)?,
                "--churn" => c.churn = Some(positive(&flag, &value()?)?),
                "--soak" => soak_seconds = Some(positive(&flag, &value()?)?),
                "--fault-interval" => soak.fault_interval = positive(&flag, &value()?)?,
                "--sample" => soak.sample = Some(value()?),
                "--sample-interval" => soak.sample_interval = positive(&flag, &value()?)?,
                "--samples-csv" => soak.samples_csv = value()?,
                "--plot" => soak.plot = value()?,
                "--warmup" => soak.warmup = seconds(&flag, &value()?)?,
                "--growth-tolerance" => soak.growth_tolerance = positive(&flag, &value()?)?,
                "--min-samples" => soak.min_samples = number(&flag, &value()?)?.max(3),
                "--hostile" => {
                    c.faults
                        .last_mut()
                        .ok_or_else(|| "--hostile must follow a --fault NAME".to_owned())?
                        .hostile = true;
                }
                "--fault" => c.faults.push(FaultSpec::new(value()?)),
                "--prepare" | "--inject" | "--hold" | "--heal" | "--expect-503" | "--expect-rewind"
                | "--commit-in-doubt" | "--drain" | "--stop" | "--start" | "--exit-bound"
                | "--expect-kept" | "--expect-moved" => {
                    let v = if matches!(
                        flag.as_str(),
                        "--expect-503" | "--expect-rewind" | "--commit-in-doubt"
                    ) {
                        String::new()
                    } else {
                        value()?
                    };
                    let f = c
                        .faults
                        .last_mut()
                        .ok_or_else(|| format!("{flag} must follow a --fault NAME"))?;
                    match flag.as_str() {
                        "--prepare" => f.prepare = Some(v),
                        "--inject" => f.inject = Some(v),
                        "--heal" => f.heal = Some(v),
                        "--hold" => f.hold = seconds(&flag, &v)?,
                        "--drain" => {
                            let (name, url) = v
                                .split_once('=')
                                .ok_or_else(|| format!("--drain takes NAME=URL, got {v}"))?;
                            f.drain
                                .push((name.to_owned(), url.trim_end_matches('/').to_owned()));
                        }
                        "--stop" => f.stop = Some(v),
                        "--start" => f.start = Some(v),
                        "--exit-bound" => f.exit_bound = seconds(&flag, &v)?,
                        "--expect-kept" => f.expect_kept.push(v),
                        "--expect-moved" => f.expect_moved.push(v),
                        "--expect-rewind" => f.expect_rewind = true,
                        "--commit-in-doubt" => f.commit_in_doubt = true,
                        _ => f.expect_503 = true,
                    }
                }
                "-h" | "--help" => return Err("help".into()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if c.api.is_empty() || c.gateway.is_empty() {
            return Err("--api and --gateway are required".into());
        }
        if c.clients == 0 || c.topics == 0 || c.topics_per_client == 0 {
            return Err("--clients, --topics and --topics-per-client must be at least 1".into());
        }
        if c.topics_per_client > c.topics {
            return Err("--topics-per-client cannot exceed --topics".into());
        }
        if c.rate <= 0.0 {
            return Err("--rate must be positive".into());
        }
        if let Some(secs) = soak_seconds {
            if c.faults.is_empty() {
                return Err("--soak needs at least one --fault to rotate through".into());
            }
            if c.faults.iter().any(|f| f.hostile || f.expect_rewind) {
                return Err("--soak: the hostile stage and rewinding faults are not for a rotation".into());
            }
            soak.seconds = secs;
            c.soak = Some(soak);
        }
        for f in &c.faults {
            if !f.drain.is_empty() && (f.stop.is_none() || f.start.is_none()) {
                return Err(format!("{}: --drain needs --stop and --start", f.name));
            }
            if f.hostile && (c.direct_url("api").is_none() || c.direct_url("gateway1").is_none()) {
                return Err(format!(
                    "{}: --hostile needs --direct api=URL and --direct gateway1=URL",
                    f.name
                ));
            }
        }
        Ok(c)
    }
}

fn number(flag: &str, v: &str) -> Result<usize, String> {
    v.parse()
        .map_err(|_| format!("{flag} takes a whole number, got {v}"))
}

fn positive(flag: &str, v: &str) -> Result<f64, String> {
    match seconds(flag, v)? {
        s if s > 0.0 => Ok(s),
        _ => Err(format!("{flag} takes a positive number, got {v}")),
    }
}

fn seconds(flag: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("{flag} takes a non-negative number, got {v}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::from_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn fault_options_apply_to_the_last_fault() {
        let c = parse(&[
            "--api",
            "http://a/",
            "--gateway",
            "http://g",
            "--clients",
            "3",
            "--fault",
            "one",
            "--inject",
            "kill it",
            "--hold",
            "1.5",
            "--heal",
            "start it",
            "--fault",
            "two",
            "--prepare",
            "build a standby",
            "--expect-503",
            "--expect-rewind",
            "--commit-in-doubt",
            "--gateway-name",
            "127.0.0.1:1=gw1",
            "--expect-kept",
            "gw1",
            "--expect-moved",
            "gw2",
            "--idle-timeout",
            "6",
        ])
        .unwrap();
        assert_eq!(c.api, "http://a");
        assert_eq!(c.clients, 3);
        assert_eq!(c.faults.len(), 2);
        assert_eq!(c.faults[0].inject.as_deref(), Some("kill it"));
        assert_eq!(c.faults[0].hold, 1.5);
        assert_eq!(c.faults[0].heal.as_deref(), Some("start it"));
        assert!(!c.faults[0].expect_503);
        assert!(c.faults[1].expect_503 && c.faults[1].inject.is_none());
        assert!(c.faults[1].expect_rewind && !c.faults[0].expect_rewind);
        assert!(c.faults[1].commit_in_doubt && !c.faults[0].commit_in_doubt);
        assert_eq!(c.faults[1].prepare.as_deref(), Some("build a standby"));
        assert_eq!(c.faults[0].prepare, None);
        assert_eq!(c.gateway_names["127.0.0.1:1"], "gw1");
        assert_eq!(c.faults[0].exit_bound, 5.0);
        assert_eq!(c.faults[1].expect_kept, ["gw1"]);
        assert_eq!(c.faults[1].expect_moved, ["gw2"]);
        assert!(c.faults[0].expect_kept.is_empty());
        assert_eq!(c.idle_timeout, 6.0);
    }

    #[test]
    fn a_rolling_restart_names_its_gateways_in_order() {
        let c = parse(&[
            "--api",
            "a",
            "--gateway",
            "g",
            "--fault",
            "roll",
            "--drain",
            "gw1=http://127.0.0.1:1/",
            "--drain",
            "gw2=http://127.0.0.1:2",
            "--stop",
            "stop {gateway}",
            "--start",
            "start {gateway}",
            "--exit-bound",
            "3",
        ])
        .unwrap();
        let f = &c.faults[0];
        assert_eq!(
            f.drain,
            vec![
                ("gw1".to_owned(), "http://127.0.0.1:1".to_owned()),
                ("gw2".to_owned(), "http://127.0.0.1:2".to_owned())
            ]
        );
        assert_eq!(f.stop.as_deref(), Some("stop {gateway}"));
        assert_eq!(f.exit_bound, 3.0);
        assert!(parse(&["--api", "a", "--gateway", "g", "--fault", "r", "--drain", "x=y"]).is_err());
    }

    #[test]
    fn a_soak_rotates_its_faults_and_samples() {
        let c = parse(&[
            "--api",
            "a",
            "--gateway",
            "g",
            "--soak",
            "360",
            "--fault-interval",
            "90",
            "--sample",
            "ctl sample",
            "--sample-interval",
            "20",
            "--warmup",
            "60",
            "--churn",
            "120",
            "--fault",
            "one",
            "--inject",
            "x",
        ])
        .unwrap();
        let soak = c.soak.unwrap();
        assert_eq!(soak.seconds, 360.0);
        assert_eq!(soak.fault_interval, 90.0);
        assert_eq!(soak.sample.as_deref(), Some("ctl sample"));
        assert_eq!(soak.sample_interval, 20.0);
        assert_eq!(soak.warmup, 60.0);
        assert_eq!(soak.min_samples, 9);
        assert_eq!(c.churn, Some(120.0));
        assert!(parse(&["--api", "a", "--gateway", "g", "--soak", "60"]).is_err());
        assert!(parse(&["--api", "a", "--gateway", "g", "--soak", "0", "--fault", "x"]).is_err());
        assert!(parse(&["--api", "a", "--gateway", "g", "--fault", "x"])
            .unwrap()
            .soak
            .is_none());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["--gateway", "http://g"]).is_err());
        assert!(parse(&["--api", "a", "--gateway", "g", "--inject", "x"]).is_err());
        assert!(parse(&["--api", "a", "--gateway", "g", "--rate", "-1"]).is_err());
        assert!(parse(&[
            "--api",
            "a",
            "--gateway",
            "g",
            "--topics",
            "2",
            "--topics-per-client",
            "3"
        ])
        .is_err());
    }
}
