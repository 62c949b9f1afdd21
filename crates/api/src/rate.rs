//! Publish rate limit per service token (`HERALD_PUBLISH_RATE` events per
//! second, with a burst of one second's worth): a token bucket per caller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::http::StatusCode;
use herald_platform::problem::Problem;

#[derive(Debug)]
pub struct PublishRate {
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl PublishRate {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `caller`, or the 429 to answer.
    pub fn take(&self, caller: &str, n: u32) -> Result<(), Problem> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(caller.to_owned()).or_insert((self.per_second, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.per_second);
        *at = now;
        let need = f64::from(n);
        if *tokens >= need {
            *tokens -= need;
            return Ok(());
        }
        let wait = ((need - *tokens) / self.per_second).ceil().max(1.0) as u64;
        Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Publish rate exceeded",
        )
        .detail(format!(
            "this token may publish {} events per second",
            self.per_second
        ))
        .retry_after(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refuses() {
        let r = PublishRate::new(5);
        for _ in 0..5 {
            r.take("svc", 1).unwrap();
        }
        let p = r.take("svc", 1).unwrap_err();
        assert_eq!(p.status, 429);
        assert!(p.retry_after.is_some());
        r.take("other", 1).unwrap();
    }
}
