//! The correctness verdict of one scenario on one system.

use serde_json::{json, Value};

use crate::publish::Outcome;
use crate::stream::StreamReport;

#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub streams: usize,
    pub expected: u64,
    pub delivered: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub resets: u64,
    pub wrong_topic: u64,
    pub bad_envelope: u64,
    pub unexpected: u64,
    pub failed_streams: u64,
    /// Streams carrying the same topics that saw a different sequence.
    pub order_disagreements: u64,
    pub publish_errors: u64,
    /// Publishes refused with 429/503 and sent again (not a violation: the
    /// servers said "later" and wrote nothing; worth knowing, though).
    pub publish_retries: u64,
    pub reconnects: u64,
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.resets == 0
            && self.wrong_topic == 0
            && self.bad_envelope == 0
            && self.unexpected == 0
            && self.failed_streams == 0
            && self.order_disagreements == 0
            && self.publish_errors == 0
            && self.problems.is_empty()
    }

    pub fn problem(&mut self, p: impl Into<String>) {
        if self.problems.len() < 10 {
            self.problems.push(p.into());
        }
    }

    /// Adds the streams' reports.
    pub fn streams(&mut self, reports: &[StreamReport]) {
        for r in reports {
            self.streams += 1;
            self.expected += r.expected as u64;
            self.delivered += r.unique as u64;
            self.missing += r.expected.saturating_sub(r.unique) as u64;
            self.duplicates += r.duplicates;
            self.out_of_order += r.out_of_order;
            self.resets += r.resets;
            self.wrong_topic += r.wrong_topic;
            self.bad_envelope += r.bad_envelope;
            self.unexpected += r.unexpected;
            self.reconnects += r.reconnects;
            if let Some(f) = &r.failed {
                self.failed_streams += 1;
                self.problem(format!("stream failed: {f}"));
            } else if let Some(p) = &r.first_problem {
                self.problem(p.clone());
            }
        }
        if self.missing > 0 {
            let short = reports.iter().filter(|r| r.unique < r.expected).count();
            self.problem(format!("{} events missing on {short} streams", self.missing));
        }
    }

    /// Streams that carry the same topics must see the same sequence.
    pub fn same_order(&mut self, reports: &[StreamReport]) {
        let complete: Vec<&StreamReport> = reports.iter().filter(|r| r.unique == r.expected).collect();
        if let Some(first) = complete.first() {
            let differ = complete
                .iter()
                .filter(|r| r.fingerprint != first.fingerprint)
                .count() as u64;
            if differ > 0 {
                self.order_disagreements += differ;
                self.problem(format!(
                    "{differ} streams saw a different sequence than the first"
                ));
            }
        }
    }

    pub fn publishing(&mut self, out: &Outcome) {
        self.publish_errors += out.errors as u64;
        self.publish_retries += out.retries;
        if let Some(e) = &out.first_error {
            self.problem(format!("publish: {e}"));
        }
    }

    /// Adds the counts of another verdict given as its [`Verdict::json`]
    /// (a load-generator process's, in the scale-out scenario).
    pub fn absorb(&mut self, v: &Value) {
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        self.streams += n("streams") as usize;
        self.expected += n("expected");
        self.delivered += n("delivered");
        self.missing += n("missing");
        self.duplicates += n("duplicates");
        self.out_of_order += n("out_of_order");
        self.resets += n("resets");
        self.wrong_topic += n("wrong_topic");
        self.bad_envelope += n("bad_envelope");
        self.unexpected += n("unexpected");
        self.failed_streams += n("failed_streams");
        self.order_disagreements += n("order_disagreements");
        self.publish_errors += n("publish_errors");
        self.publish_retries += n("publish_retries");
        self.reconnects += n("reconnects");
        for p in v.get("problems").and_then(Value::as_array).into_iter().flatten() {
            if let Some(p) = p.as_str() {
                self.problem(p);
            }
        }
        if v.get("ok").and_then(Value::as_bool) == Some(false) && self.ok() {
            self.problem("a load generator reported a failure");
        }
    }

    pub fn summary(&self) -> String {
        if self.ok() {
            let retried = if self.publish_retries > 0 {
                format!(", {} publishes retried after 429/503", self.publish_retries)
            } else {
                String::new()
            };
            return format!(
                "ok: {} events over {} streams, exact, no duplicate, in order, no reset ({} reconnects{retried})",
                self.delivered, self.streams, self.reconnects
            );
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.missing, "missing"),
            (self.duplicates, "duplicates"),
            (self.out_of_order, "out of order"),
            (self.resets, "resets"),
            (self.wrong_topic, "wrong topic"),
            (self.bad_envelope, "bad envelopes"),
            (self.unexpected, "unexpected"),
            (self.failed_streams, "failed streams"),
            (self.order_disagreements, "order disagreements"),
            (self.publish_errors, "publish errors"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if let Some(p) = self.problems.first() {
            parts.push(format!("first: {p}"));
        }
        format!("FAIL: {}", parts.join(", "))
    }

    pub fn json(&self) -> Value {
        json!({
            "ok": self.ok(),
            "streams": self.streams,
            "expected": self.expected,
            "delivered": self.delivered,
            "missing": self.missing,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "resets": self.resets,
            "wrong_topic": self.wrong_topic,
            "bad_envelope": self.bad_envelope,
            "unexpected": self.unexpected,
            "failed_streams": self.failed_streams,
            "order_disagreements": self.order_disagreements,
            "publish_errors": self.publish_errors,
            "publish_retries": self.publish_retries,
            "reconnects": self.reconnects,
            "problems": self.problems,
        })
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[7.0], 0.01), 7.0);
    }

    #[test]
    fn a_verdict_survives_its_json() {
        let mut one = Verdict::default();
        one.streams(&[StreamReport {
            expected: 3,
            unique: 2,
            duplicates: 1,
            ..StreamReport::default()
        }]);
        let mut sum = Verdict::default();
        sum.absorb(&one.json());
        sum.absorb(&one.json());
        assert_eq!((sum.streams, sum.expected, sum.delivered), (2, 6, 4));
        assert_eq!((sum.missing, sum.duplicates), (2, 2));
        assert!(!sum.ok());
        assert_eq!(sum.problems.len(), 2, "{:?}", sum.problems);
    }

    #[test]
    fn a_missing_event_fails_the_verdict() {
        let mut v = Verdict::default();
        v.streams(&[StreamReport {
            expected: 3,
            unique: 2,
            ..StreamReport::default()
        }]);
        assert!(!v.ok());
        assert!(v.summary().contains("1 missing"));
    }
}
