//! What the streams did across a network partition, from each client's stream history:
//! whether the streams of a gateway stayed open (`--expect-kept`: its link to Redis or
//! Postgres was cut, its clients must not notice beyond the delay), or moved to another
//! gateway (`--expect-moved`: the clients' own path to it was cut, so each must notice
//! the silence and resume elsewhere with `Last-Event-ID`; loss and duplicates are
//! counted as for every fault).

use std::collections::HashMap;

use crate::client::StreamEvent;
use crate::config::Config;
use crate::{lock, Shared};

/// One check's outcome: a line for the report, and its failures.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub line: String,
    pub failures: Vec<String>,
}

/// A stream's gateway by name (`--gateway-name`), or its address.
fn name<'a>(names: &'a HashMap<String, String>, upstream: &'a str) -> &'a str {
    names.get(upstream).map_or(upstream, String::as_str)
}

/// The streams open on `gateway` at `from` must still be open at `to`.
pub fn kept(shared: &Shared, config: &Config, gateway: &str, from: f64, to: f64) -> Verdict {
    let mut open_at_start = 0;
    let mut closed = 0;
    for c in &shared.clients {
        let g = lock(&c.inner);
        let Some(upstream) = open_at(&g.history, from) else {
            continue;
        };
        if name(&config.gateway_names, &upstream) != gateway {
            continue;
        }
        open_at_start += 1;
        let closed_in_window = g
            .history
            .iter()
            .any(|e| matches!(e, StreamEvent::Close { at, .. } if *at >= from && *at <= to));
        if closed_in_window {
            closed += 1;
        }
    }
    let mut v = Verdict {
        line: format!(
            "streams on {gateway}: {} of {open_at_start} stayed open through the fault",
            open_at_start - closed
        ),
        failures: Vec::new(),
    };
    if open_at_start == 0 {
        v.failures
            .push(format!("no stream was on {gateway} when the fault started"));
    }
    if closed > 0 {
        v.failures.push(format!(
            "{closed} of {open_at_start} streams on {gateway} closed during the fault (they must stay connected)"
        ));
    }
    v
}

/// Every client streaming from `gateway` at `from` must have opened a stream on another
/// gateway by `to`.
pub fn moved(shared: &Shared, config: &Config, gateway: &str, from: f64, to: f64) -> Verdict {
    let mut on_it = 0;
    let mut resumed = 0;
    let mut elsewhere: HashMap<String, usize> = HashMap::new();
    for c in &shared.clients {
        let g = lock(&c.inner);
        let Some(upstream) = open_at(&g.history, from) else {
            continue;
        };
        if name(&config.gateway_names, &upstream) != gateway {
            continue;
        }
        on_it += 1;
        let other = g.history.iter().find_map(|e| match e {
            StreamEvent::Open { at, upstream } if *at >= from && *at <= to => {
                let n = name(&config.gateway_names, upstream);
                (n != gateway).then(|| n.to_owned())
            }
            _ => None,
        });
        if let Some(n) = other {
            resumed += 1;
            *elsewhere.entry(n).or_insert(0) += 1;
        }
    }
    let mut to_where: Vec<_> = elsewhere.into_iter().collect();
    to_where.sort();
    let to_where = to_where
        .iter()
        .map(|(n, k)| format!("{n}={k}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut v = Verdict {
        line: format!(
            "clients cut off from {gateway}: {resumed} of {on_it} resumed elsewhere with Last-Event-ID ({to_where})"
        ),
        failures: Vec::new(),
    };
    if on_it == 0 {
        v.failures
            .push(format!("no stream was on {gateway} when the fault started"));
    }
    if resumed < on_it {
        v.failures.push(format!(
            "{} of {on_it} clients cut off from {gateway} did not resume on another gateway",
            on_it - resumed
        ));
    }
    v
}

/// The upstream of the stream open at `t`, if any.
fn open_at(history: &[StreamEvent], t: f64) -> Option<String> {
    let mut current = None;
    for e in history {
        match e {
            StreamEvent::Open { at, upstream } if *at < t => current = Some(upstream.clone()),
            StreamEvent::Close { at, .. } if *at < t => current = None,
            _ => break,
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(at: f64, upstream: &str) -> StreamEvent {
        StreamEvent::Open {
            at,
            upstream: upstream.to_owned(),
        }
    }

    fn close(at: f64, upstream: &str) -> StreamEvent {
        StreamEvent::Close {
            at,
            upstream: upstream.to_owned(),
            reconnect_signal: false,
            retry_ms: None,
            clean: false,
        }
    }

    #[test]
    fn the_stream_open_at_a_time_is_the_last_opened_and_not_closed_before_it() {
        let h = [open(1.0, "a"), close(2.0, "a"), open(3.0, "b"), close(9.0, "b")];
        assert_eq!(open_at(&h, 0.5), None);
        assert_eq!(open_at(&h, 1.5).as_deref(), Some("a"));
        assert_eq!(open_at(&h, 2.5), None);
        assert_eq!(open_at(&h, 5.0).as_deref(), Some("b"));
        assert_eq!(open_at(&h, 10.0), None);
    }
}
