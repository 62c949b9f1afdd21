//! `GET /v1/stream`: one SSE connection.
//!
//! Everything that can refuse a stream (token, topics, authorization, limits,
//! the bus) is checked before the response starts, so refusals are
//! problem+json with a status, never a broken stream.
//!
//! # The replay seam
//!
//! 1. Register the topics with the hub and wait until Redis confirmed the
//!    subscriptions: from now on every published event reaches our queue.
//! 2. Read the head, then replay from Postgres every event after the client's
//!    position. Anything committed before step 1 completed is visible here.
//! 3. Go live from the queue, dropping every frame at or below the last `seq`
//!    sent. An event is either visible to the replay or published after the
//!    subscription (publishing happens after commit), so nothing falls
//!    between the two, and the filter removes what is in both.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use herald_domain::{sse, LastEventId, Topic};
use herald_platform::auth::{AuthError, Principal};
use herald_platform::http::{ConnectionHandle, QueryParams, StreamSocket};
use herald_platform::problem::{FieldError, Problem};
use serde::Deserialize;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpStream;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::frame::{control, Frame};
use crate::hub::Subscription;
use crate::GatewayState;

/// Events per replay page.
pub(crate) const REPLAY_PAGE: i64 = 500;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    topics: Option<String>,
    access_token: Option<String>,
    last_event_id: Option<String>,
}

async fn authenticate(
    state: &GatewayState,
    headers: &HeaderMap,
    q: &StreamQuery,
) -> Result<Principal, Problem> {
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match (header_token, q.access_token.as_deref()) {
        (Some(t), _) => Ok(state.verifier.verify_access(t).await?),
        (None, Some(t)) => Ok(state.verifier.verify_stream(t).await?),
        (None, None) => Err(AuthError::Missing.into()),
    }
}

fn topics(state: &GatewayState, principal: &Principal, q: &StreamQuery) -> Result<Vec<Topic>, Problem> {
    let bad = |message: String| Problem::bad_request(message.clone()).with_field("topics", message);
    let mut topics: Vec<Topic> = match q.topics.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(raw) => raw
            .split(',')
            .map(str::trim)
            .map(|t| Topic::parse(t).map_err(|e| bad(format!("`{t}`: {e}"))))
            .collect::<Result<_, _>>()?,
        None if principal.stream_token && !principal.grants.is_empty() => principal
            .grants
            .iter()
            .filter_map(|g| match g {
                herald_domain::TopicPattern::Exact(t) => Some(t.clone()),
                herald_domain::TopicPattern::Kind(_) => None,
            })
            .collect(),
        None => vec![principal
            .user_topic()
            .ok_or_else(|| bad("required when the token's `sub` is not a user id".into()))?],
    };
    topics.sort();
    topics.dedup();
    let max = state.settings.max_topics_per_stream;
    if topics.len() > max {
        return Err(bad(format!(
            "at most {max} topics per stream (got {})",
            topics.len()
        )));
    }
    Ok(topics)
}

trait WithField {
    fn with_field(self, field: &str, message: String) -> Self;
}

impl WithField for Problem {
    fn with_field(mut self, field: &str, message: String) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }
}

pub async fn stream(
    State(state): State<GatewayState>,
    connection: Option<Extension<ConnectionHandle>>,
    socket: Option<Extension<StreamSocket>>,
    headers: HeaderMap,
    query: QueryParams<StreamQuery>,
) -> Response {
    // Falling behind closes the TCP connection itself: a consumer that stopped
    // reading never polls its body again, so only that frees it.
    let kick = connection.map(|Extension(c)| c.0).unwrap_or_default();
    // On the lean path the hub writes live events to the socket itself.
    let socket = socket.map(|Extension(s)| s.0);
    match open(&state, &headers, &query.0, kick, socket).await {
        Ok(r) => r,
        Err(p) => {
            state.metrics.refused.inc();
            p.into_response()
        }
    }
}

async fn open(
    state: &GatewayState,
    headers: &HeaderMap,
    q: &StreamQuery,
    kick: CancellationToken,
    socket: Option<Arc<TcpStream>>,
) -> Result<Response, Problem> {
    let principal = authenticate(state, headers, q).await?;
    let topics = topics(state, &principal, q)?;
    let denied = herald_platform::auth::first_unreadable(&state.pool, &principal, &topics)
        .await
        .map_err(|_| Problem::unavailable("the database is unavailable; retry shortly", 2))?;
    if let Some(t) = denied {
        return Err(Problem::forbidden(format!("this token may not read `{t}`")));
    }
    if state.draining.is_cancelled() {
        return Err(Problem::unavailable(
            "this gateway is shutting down; reconnect",
            1,
        ));
    }
    let permit = state.limits.acquire(&principal.sub)?;
    // The header wins over `?last_event_id=` whenever it holds anything;
    // bytes that are not a position (not even UTF-8) are a reset, never
    // "no position".
    let position = match headers
        .get("last-event-id")
        .and_then(|v| LastEventId::parse_bytes(v.as_bytes()))
    {
        Some(p) => Some(p),
        None => q.last_event_id.as_deref().and_then(LastEventId::parse),
    };

    let subscription = state
        .hub
        .subscribe(
            &topics,
            state.settings.stream_buffer,
            Duration::from_secs(5),
            kick,
            socket,
        )
        .await
        .map_err(|_| Problem::unavailable("the event bus is unavailable; retry shortly", 2))?;
    let positions = state
        .heads
        .read()
        .await
        .map_err(|_| Problem::unavailable("the database is unavailable; retry shortly", 2))?;

    let mut preamble = String::new();
    sse::write_retry(&mut preamble, state.settings.sse_retry.as_millis() as u64);
    let reset = |reason: &str, preamble: &mut String| {
        state.metrics.resets.inc();
        preamble.push_str(&control("herald.reset", reason, Some(positions.head)));
        positions.head
    };
    let (last_sent, replay) = match position {
        None => {
            sse::write_position(&mut preamble, positions.head);
            (positions.head, false)
        }
        Some(LastEventId::Unparsable) => (reset("unparsable", &mut preamble), false),
        Some(LastEventId::After(n)) if n > positions.head => (reset("future", &mut preamble), false),
        Some(LastEventId::After(n)) if n < positions.pruned => (reset("pruned", &mut preamble), false),
        Some(LastEventId::After(n)) => (n, true),
    };
    if replay {
        state.metrics.replays.inc();
    }
    subscription.sink.set_last_sent(last_sent);

    // The stream must not outlive the token that opened it: `herald.reauth`
    // goes out a second before expiry.
    let expires_in = principal.remaining().saturating_sub(Duration::from_secs(1));
    let subscription_kicked = subscription.kicked.clone().cancelled_owned();
    let conn = Connection {
        _permit: permit,
        state: state.clone(),
        topics: topics.iter().map(ToString::to_string).collect(),
        subscription,
        replaying: replay,
        heartbeat: tokio::time::interval_at(
            tokio::time::Instant::now() + state.settings.heartbeat,
            state.settings.heartbeat,
        ),
        deadline: Box::pin(tokio::time::sleep(expires_in)),
        shutdown: Box::pin(state.shutdown.clone().cancelled_owned()),
        kicked: Box::pin(subscription_kicked),
        preamble: Some(Bytes::from(preamble)),
        done: false,
        close_reason: CloseReason::Client,
    };
    state.metrics.opened.inc();
    state.metrics.open_streams.inc();
    tracing::debug!(topics = ?conn.topics, last_sent, "stream opened");

    let body = Body::from_stream(futures_util::stream::unfold(conn, |mut conn| async move {
        conn.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), conn))
    }));
    let mut res = Response::new(body);
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // CORS headers, for the origins in HERALD_CORS_ORIGINS only, come from
    // the router's `platform::http::cors` layer.
    Ok(res)
}

#[derive(Debug, Clone, Copy)]
enum CloseReason {
    Client,
    SlowConsumer,
    Shutdown,
    Reauth,
    Error,
}

struct Connection {
    _permit: crate::limits::StreamPermit,
    state: GatewayState,
    topics: Vec<String>,
    /// Its sink holds the last position sent (see `hub`).
    subscription: Subscription,
    replaying: bool,
    heartbeat: tokio::time::Interval,
    // The waits of every wake-up, made once: re-creating them for each event
    // would register and deregister a timer and two cancellation waiters per
    // delivery.
    deadline: Pin<Box<tokio::time::Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    kicked: Pin<Box<WaitForCancellationFutureOwned>>,
    preamble: Option<Bytes>,
    done: bool,
    close_reason: CloseReason,
}

impl Connection {
    /// The next bytes to write, or `None` to end the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(p) = self.preamble.take() {
            return Some(p);
        }
        if self.state.shutdown.is_cancelled() {
            // Also between replay pages: a long replay does not hold up shutdown.
            return self.close_for_shutdown();
        }
        if self.replaying {
            match self.replay_page().await {
                Ok(Some(chunk)) => return Some(chunk),
                Ok(None) => self.replaying = false,
                Err(e) => {
                    tracing::warn!(error = %e, "replay failed; closing the stream so the client resumes");
                    return self.close(CloseReason::Error, None);
                }
            }
        }
        loop {
            // Parked: while nothing is queued, the hub writes live frames to
            // the socket itself. Whatever wakes us takes writing back first.
            self.subscription.sink.park(&self.subscription.frames);
            let wake = tokio::select! {
                biased;
                _ = self.shutdown.as_mut() => Wake::Shutdown,
                _ = self.kicked.as_mut() => Wake::Kicked,
                _ = self.deadline.as_mut() => Wake::Deadline,
                frame = self.subscription.frames.recv() => Wake::Frame(frame),
                _ = self.heartbeat.tick() => Wake::Heartbeat,
            };
            let mut out = self.subscription.sink.unpark();
            match wake {
                Wake::Shutdown => {
                    let last = self.close_for_shutdown();
                    out.extend(last);
                    return join(out);
                }
                Wake::Kicked => return self.close(CloseReason::SlowConsumer, None),
                Wake::Deadline => {
                    out.push(Bytes::from(control("herald.reauth", "token_expiring", None)));
                    return self.close(CloseReason::Reauth, join(out));
                }
                Wake::Frame(None) => return self.close(CloseReason::SlowConsumer, None),
                Wake::Frame(Some(first)) => {
                    if let Some(chunk) = self.live_chunk(first, out) {
                        return Some(chunk);
                    }
                }
                Wake::Heartbeat => {
                    let mut b = String::new();
                    sse::write_comment(&mut b, "");
                    out.push(Bytes::from(b));
                    return join(out);
                }
            }
        }
    }

    /// `out` (what the hub left unwritten), then `first` and whatever else
    /// is queued, as one chunk, skipping frames at or below the last
    /// position sent (and the hub's wake-ups).
    fn live_chunk(&mut self, first: Frame, mut out: Vec<Bytes>) -> Option<Bytes> {
        // The common case on the queue path: one frame, nothing left over by
        // the hub, nothing else queued: sent as it is, without allocating.
        if out.is_empty() && self.subscription.frames.is_empty() {
            let mut one = None;
            if self.subscription.sink.accept_one(first, &mut one) {
                self.state.metrics.delivered.inc();
            }
            return one;
        }
        let mut frames = vec![first];
        while frames.len() < 64 {
            match self.subscription.frames.try_recv() {
                Ok(f) => frames.push(f),
                Err(_) => break,
            }
        }
        let n = self.subscription.sink.accept(frames, &mut out);
        self.state.metrics.delivered.add(n as u64);
        join(out)
    }

    /// The next replay page as one chunk (`None`: replay is over). A page
    /// that retention cut short (history after our position was pruned since
    /// the stream opened, or between two pages) ends the replay with
    /// `herald.reset` at the head of the page's snapshot instead: the client
    /// refetches its state, and the stream continues live from there.
    async fn replay_page(&mut self) -> Result<Option<Bytes>, String> {
        let after = self.subscription.sink.last_sent();
        let page = self.state.replays.page(&self.topics, after).await?;
        if !page.complete_after(after) {
            self.replaying = false;
            self.state.metrics.resets.inc();
            let head = page.positions.head;
            self.subscription.sink.set_last_sent(head);
            return Ok(Some(Bytes::from(control("herald.reset", "pruned", Some(head)))));
        }
        let events = page.events;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let full = events.len() as i64 == REPLAY_PAGE;
        let mut chunk = Vec::new();
        for e in &events {
            chunk.extend_from_slice(&Frame::from_envelope(e).bytes);
        }
        self.subscription.sink.set_last_sent(last);
        self.state.metrics.replayed_events.add(events.len() as u64);
        self.state.metrics.delivered.add(events.len() as u64);
        if !full {
            self.replaying = false;
        }
        Ok(Some(Bytes::from(chunk)))
    }

    /// The gateway is shutting down: tell the client to reconnect soon (a
    /// `retry:` hint spread over `[0, HERALD_SSE_RETRY / 2]`, so the clients of
    /// one gateway do not all land on the others at the same instant), say why
    /// with `event: herald.reconnect` (no `id:`, so the client's resume
    /// position is unchanged; `EventSource` ignores a named event nobody
    /// listens to), then end the body cleanly. The client reconnects through
    /// the load balancer and resumes from its `Last-Event-ID`.
    fn close_for_shutdown(&mut self) -> Option<Bytes> {
        let mut frame = String::new();
        sse::write_retry(&mut frame, reconnect_delay_ms(self.state.settings.sse_retry));
        frame.push_str(&control("herald.reconnect", "shutdown", None));
        self.close(CloseReason::Shutdown, Some(Bytes::from(frame)))
    }

    fn close(&mut self, reason: CloseReason, last: Option<Bytes>) -> Option<Bytes> {
        self.done = true;
        self.close_reason = reason;
        last
    }
}

/// What woke a parked stream.
enum Wake {
    Shutdown,
    Kicked,
    Deadline,
    Frame(Option<Frame>),
    Heartbeat,
}

/// Pieces as one chunk (`None` for none).
fn join(mut pieces: Vec<Bytes>) -> Option<Bytes> {
    match pieces.len() {
        0 => None,
        1 => pieces.pop(),
        _ => Some(Bytes::from(pieces.concat())),
    }
}

/// A reconnection delay uniformly spread over `[0, retry / 2]` milliseconds.
fn reconnect_delay_ms(retry: Duration) -> u64 {
    use std::hash::BuildHasher;
    let spread = (retry.as_millis() / 2) as u64;
    // `RandomState` is randomly keyed per thread and differs on each `new()`:
    // plenty for jitter, and no new dependency.
    let r = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    r % (spread + 1)
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.subscription.kicked.is_cancelled() {
            self.close_reason = CloseReason::SlowConsumer;
        }
        let m = &self.state.metrics;
        m.open_streams.dec();
        match self.close_reason {
            CloseReason::Client => m.closed_client.inc(),
            CloseReason::SlowConsumer => m.closed_slow.inc(),
            CloseReason::Shutdown => m.closed_shutdown.inc(),
            CloseReason::Reauth => m.closed_reauth.inc(),
            CloseReason::Error => m.closed_error.inc(),
        }
        let last_sent = self.subscription.sink.last_sent();
        tracing::debug!(reason = ?self.close_reason, last_sent, "stream closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_is_spread_over_half_the_retry_hint() {
        let delays: Vec<u64> = (0..200)
            .map(|_| reconnect_delay_ms(Duration::from_millis(2000)))
            .collect();
        assert!(delays.iter().all(|d| *d <= 1000), "{delays:?}");
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 20, "jittered: {distinct:?}");
        assert_eq!(reconnect_delay_ms(Duration::ZERO), 0);
    }
}
