//! The worker's push sender: delivers the push queue (`herald_store::push`) to
//! the browsers' push services.
//!
//! Every worker runs it (claiming hands each delivery to one). A claimed
//! delivery is skipped when the user already read or saw the notification, or
//! muted the category, since it was queued; otherwise its payload (with the
//! user's unread count now) is encrypted for the subscription and POSTed with
//! VAPID. The push service's answer decides: 2xx is done; 404 and 410 mean the
//! subscription is gone (deleted with its queue); 429 and 5xx (and network
//! errors) are retried with exponential backoff, honouring `Retry-After`, until
//! `MAX_ATTEMPTS` or the push's TTL; any other 4xx is a push that can never
//! succeed, dropped. Until its answer is recorded a delivery stays leased: a
//! worker killed mid-send leaves it to come due again, so at most what was in
//! flight is sent twice.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use herald_push::message::{PushMessage, Urgency, MAX_PLAINTEXT};
use herald_push::{SubscriptionKeys, WebPush};
use herald_store::push::{self, Claimed};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::WorkerMetrics;

/// One POST to a push service, at most (and less than the lease).
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// Attempts before a push is given up.
pub const MAX_ATTEMPTS: i32 = 12;
/// The longest backoff, and the longest `Retry-After` honoured.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What became of one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Read, seen, archived, expired or muted since it was queued.
    Skipped,
    Retry(Duration),
    /// The push service no longer knows the subscription.
    Gone,
    /// Can never succeed (a 4xx other than 404/410/429, or too many attempts).
    Dropped,
}

pub struct PushSender {
    pool: PgPool,
    client: reqwest::Client,
    push: WebPush,
    ttl: Duration,
    concurrency: usize,
    /// How long a claimed delivery is left alone before another worker may
    /// send it (`HERALD_PUSH_LEASE`).
    lease: Duration,
    metrics: Arc<WorkerMetrics>,
}

impl PushSender {
    pub fn new(
        pool: PgPool,
        push: WebPush,
        settings: &herald_platform::config::PushSettings,
        metrics: Arc<WorkerMetrics>,
    ) -> Result<Self, reqwest::Error> {
        // No redirects (a push service that redirects is not one), and every
        // connection through the resolver that refuses non-public addresses.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SEND_TIMEOUT.min(settings.lease.mul_f64(0.8)))
            .connect_timeout(Duration::from_secs(5))
            .dns_resolver(push.policy.resolver())
            .build()?;
        Ok(Self {
            pool,
            client,
            push,
            ttl: settings.ttl,
            concurrency: settings.concurrency,
            lease: settings.lease,
            metrics,
        })
    }

    /// Sends pushes as they come due, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        crate::due::poll(&self, &shutdown).await
    }

    /// Deliveries claimed at once: two rounds of the sends in flight, so that
    /// a claimed batch is sent well within its lease.
    fn batch(&self) -> i64 {
        (self.concurrency * 2).min(500) as i64
    }

    /// Claims one batch of due deliveries and sends them, recording each
    /// outcome as soon as it is known (so a crash resends at most what was in
    /// flight). Returns how many it claimed.
    pub async fn run_batch(&self) -> Result<usize, sqlx::Error> {
        let claimed = push::claim(&self.pool, self.batch(), self.lease).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let n = claimed.len();
        let unread = self.unread_counts(&claimed).await?;
        let recorded: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(claimed)
            .map(|c| {
                let unread = unread.get(&c.user_id).copied();
                async move {
                    let outcome = self.deliver(&c, unread).await;
                    self.record(&c, outcome).await
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        recorded.into_iter().collect::<Result<(), _>>()?;
        Ok(n)
    }

    async fn record(&self, c: &Claimed, outcome: Outcome) -> Result<(), sqlx::Error> {
        let m = &self.metrics;
        match outcome {
            Outcome::Sent => m.pushes_sent.inc(),
            Outcome::Skipped => m.pushes_skipped.inc(),
            Outcome::Dropped => m.pushes_dropped.inc(),
            Outcome::Gone => m.pushes_gone.inc(),
            Outcome::Retry(_) => m.pushes_retried.inc(),
        }
        match outcome {
            Outcome::Sent | Outcome::Skipped | Outcome::Dropped => push::done(&self.pool, &[c.id]).await,
            Outcome::Gone => push::gone(&self.pool, &[c.subscription_id]).await,
            Outcome::Retry(after) => push::retry(&self.pool, c.id, after).await,
        }
    }

    /// The unread count of every user with something to send in `claimed`.
    async fn unread_counts(&self, claimed: &[Claimed]) -> Result<HashMap<String, i64>, sqlx::Error> {
        let users: HashSet<&str> = claimed
            .iter()
            .filter(|c| !c.settled && !c.muted)
            .map(|c| c.user_id.as_str())
            .collect();
        let mut out = HashMap::with_capacity(users.len());
        let mut conn = self.pool.acquire().await?;
        for user in users {
            let counts = herald_store::inbox::counts(&mut conn, user).await?;
            out.insert(user.to_owned(), counts.unread);
        }
        Ok(out)
    }

    async fn deliver(&self, c: &Claimed, unread: Option<i64>) -> Outcome {
        if c.settled || c.muted {
            return Outcome::Skipped;
        }
        let age = (chrono::Utc::now() - c.created_at).to_std().unwrap_or_default();
        if age > self.ttl {
            return Outcome::Dropped;
        }
        let Ok(url) = self.push.policy.check(&c.endpoint) else {
            return Outcome::Gone; // no longer allowed: the subscription goes
        };
        let Ok(keys) = SubscriptionKeys::parse(&c.p256dh, &c.auth) else {
            return Outcome::Gone;
        };
        let payload = fit(&c.payload, unread);
        let topic = c.notification_id.simple().to_string();
        let msg = PushMessage {
            payload: &payload,
            ttl: self.ttl.saturating_sub(age).max(Duration::from_secs(1)),
            urgency: Urgency::Normal,
            topic: Some(&topic),
        };
        let request = match msg.request(&self.client, &url, &keys, &self.push.vapid) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "a push could not be built; dropped");
                return Outcome::Dropped;
            }
        };
        let started = Instant::now();
        let answer = request.send().await;
        self.metrics
            .push_send_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = match answer {
            Ok(r) => match r.status().as_u16() {
                200..=299 => Outcome::Sent,
                404 | 410 => Outcome::Gone,
                429 | 500..=599 => {
                    Outcome::Retry(retry_after(r.headers()).unwrap_or_else(|| backoff(c.attempts)))
                }
                status => {
                    tracing::warn!(status, "a push service refused a push for good; dropped");
                    Outcome::Dropped
                }
            },
            Err(e) => {
                tracing::debug!(error = %e, "a push did not get an answer; retrying");
                Outcome::Retry(backoff(c.attempts))
            }
        };
        match outcome {
            Outcome::Retry(_) if c.attempts >= MAX_ATTEMPTS => Outcome::Dropped,
            Outcome::Retry(after) if age + after > self.ttl => Outcome::Dropped,
            o => o,
        }
    }
}

impl crate::due::Queue for PushSender {
    const WHAT: &'static str = "push delivery";

    fn full(&self) -> usize {
        self.batch() as usize
    }

    fn step(&self) -> impl std::future::Future<Output = Result<usize, sqlx::Error>> + Send {
        self.run_batch()
    }

    fn next_due(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error>> + Send
    {
        push::next_due(&self.pool)
    }
}

/// The payload with `unread`, shortened to fit one push: the body first, then
/// the title, by whole characters (as many as fit).
fn fit(payload: &serde_json::Value, unread: Option<i64>) -> Vec<u8> {
    let mut p = payload.clone();
    p["unread"] = unread.into();
    let size = |p: &serde_json::Value| serde_json::to_vec(p).unwrap_or_default();
    for field in ["body", "title"] {
        if size(&p).len() <= MAX_PLAINTEXT {
            break;
        }
        let Some(text) = p[field].as_str().map(|t| t.chars().collect::<Vec<char>>()) else {
            continue;
        };
        // The most characters of `field` that fit (0 fits or not at all).
        let (mut lo, mut hi) = (0, text.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            p[field] = text[..mid].iter().collect::<String>().into();
            if size(&p).len() <= MAX_PLAINTEXT {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        p[field] = text[..lo].iter().collect::<String>().into();
    }
    size(&p)
}

/// `Retry-After` as seconds or an HTTP date, at most [`MAX_BACKOFF`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
                .to_std()
                .unwrap_or_default()
        }
    };
    Some(d.min(MAX_BACKOFF))
}

/// 1 s, 2 s, 4 s … after the `attempts`-th attempt, at most [`MAX_BACKOFF`],
/// with ±20% jitter so that a recovering push service is not hit in step.
fn backoff(attempts: i32) -> Duration {
    use std::hash::BuildHasher;
    let base = Duration::from_secs(1u64 << attempts.clamp(1, 20).saturating_sub(1)).min(MAX_BACKOFF);
    let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now()) % 401;
    base.mul_f64(0.8 + r as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_cut_to_fit_one_push() {
        let long = serde_json::json!({"id": "x", "title": "T", "body": "é".repeat(5000), "category": "c"});
        let fitted = fit(&long, Some(3));
        assert!(fitted.len() <= MAX_PLAINTEXT);
        let v: serde_json::Value = serde_json::from_slice(&fitted).unwrap_or_default();
        assert_eq!(v["unread"], 3);
        assert!(v["body"].as_str().is_some_and(|b| b.chars().count() > 1000));
        let short = serde_json::json!({"id": "x", "title": "T", "body": "hi"});
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&fit(&short, None)).unwrap_or_default()["body"],
            "hi"
        );
    }

    #[test]
    fn backoff_grows_to_a_bound_and_retry_after_is_honoured() {
        assert!(backoff(1) <= Duration::from_millis(1200) && backoff(1) >= Duration::from_millis(800));
        assert!(backoff(5) >= Duration::from_secs(12));
        assert!(backoff(40) <= MAX_BACKOFF.mul_f64(1.2));
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            "7".parse()
                .unwrap_or(reqwest::header::HeaderValue::from_static("0")),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            reqwest::header::HeaderValue::from_static("999999"),
        );
        assert_eq!(retry_after(&h), Some(MAX_BACKOFF));
    }
}
