//! Limits on open streams: per gateway (`HERALD_MAX_STREAMS`, 503) and per
//! user (`HERALD_MAX_STREAMS_PER_USER`, 429). A permit is held by each open
//! stream and released when the stream ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use herald_platform::problem::Problem;

#[derive(Debug, Default)]
struct Counts {
    total: AtomicUsize,
    per_user: Mutex<HashMap<String, usize>>,
}

#[derive(Debug, Clone)]
pub struct StreamLimits {
    counts: Arc<Counts>,
    max_total: usize,
    max_per_user: usize,
}

/// Held by an open stream.
#[derive(Debug)]
pub struct StreamPermit {
    counts: Arc<Counts>,
    user: String,
}

impl StreamLimits {
    pub fn new(max_total: usize, max_per_user: usize) -> Self {
        Self {
            counts: Arc::default(),
            max_total,
            max_per_user,
        }
    }

    /// Takes a permit for `user` (the token's `sub`, or a stand-in for
    /// tokens without one), or the problem to answer.
    pub fn acquire(&self, user: &str) -> Result<StreamPermit, Problem> {
        let total = self.counts.total.fetch_add(1, Ordering::AcqRel) + 1;
        if total > self.max_total {
            self.counts.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Problem::unavailable(
                "this gateway holds its maximum number of streams; retry",
                5,
            ));
        }
        let mut per_user = self.counts.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_user.entry(user.to_owned()).or_default();
        if *n >= self.max_per_user {
            drop(per_user);
            self.counts.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Problem::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many open streams",
            )
            .detail(format!(
                "at most {} open streams per user; close one first",
                self.max_per_user
            ))
            .retry_after(5));
        }
        *n += 1;
        Ok(StreamPermit {
            counts: self.counts.clone(),
            user: user.to_owned(),
        })
    }

    pub fn open(&self) -> usize {
        self.counts.total.load(Ordering::Acquire)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        let mut per_user = self.counts.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_released() {
        let l = StreamLimits::new(3, 2);
        let a1 = l.acquire("a").unwrap();
        let _a2 = l.acquire("a").unwrap();
        assert_eq!(l.acquire("a").unwrap_err().status, 429);
        let _b = l.acquire("b").unwrap();
        assert_eq!(l.acquire("c").unwrap_err().status, 503);
        drop(a1);
        assert_eq!(l.open(), 2);
        assert!(l.acquire("a").is_ok());
    }
}
