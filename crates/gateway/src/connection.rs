//! One open stream, from its first byte to its last: the preamble, the
//! replay, live frames, and the close.
//!
//! # The replay seam
//!
//! 1. The stream registered its topics with the hub and waited until the bus
//!    confirmed them (see `stream`): from then on every published event
//!    reaches its queue.
//! 2. It read the head; it replays from Postgres every event after the
//!    client's position. Anything committed before step 1 completed is
//!    visible here.
//! 3. It goes live from the queue, dropping every frame at or below the last
//!    `seq` sent. An event is either visible to the replay or published
//!    after the subscription (publishing happens after commit), so nothing
//!    falls between the two, and the filter removes what is in both.
//!
//! # Two ways out
//!
//! On the lean path the stream owns its socket ([`Connection::run`]): it
//! writes each chunk itself and, while it waits, parks its [`Writer`] in its
//! sink so the hub writes live frames without waking it. Served by hyper
//! (the single-node binary's API address), it is a response body
//! ([`Connection::into_body`]) and every frame goes through its queue.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::body::{Body, Bytes};
use herald_domain::sse;
use herald_platform::http::client_gone;
use tokio::net::TcpStream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::frame::{control, Frame};
use crate::hub::Subscription;
use crate::limits::StreamPermit;
use crate::socket::Writer;
use crate::GatewayState;

/// Events per replay page.
pub(crate) const REPLAY_PAGE: i64 = 500;
/// Frames taken from the queue into one chunk, at most.
const LIVE_CHUNK: usize = 64;

#[derive(Debug, Clone, Copy)]
enum CloseReason {
    Client,
    SlowConsumer,
    Shutdown,
    Reauth,
    Error,
}

pub(crate) struct Connection {
    _permit: StreamPermit,
    state: GatewayState,
    /// Its sink holds the last position sent.
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

/// What woke a waiting stream.
enum Wake {
    Shutdown,
    Kicked,
    Deadline,
    Frame(Option<Frame>),
    Heartbeat,
}

impl Connection {
    /// A stream that starts with `preamble`, then replays if `replay`, then
    /// goes live, until `expires_in` (its token's life) is over.
    pub(crate) fn new(
        state: GatewayState,
        permit: StreamPermit,
        subscription: Subscription,
        preamble: String,
        replay: bool,
        expires_in: Duration,
    ) -> Self {
        let heartbeat = state.settings.gateway.heartbeat;
        let kicked = subscription.kicked.clone().cancelled_owned();
        let shutdown = state.shutdown.clone().cancelled_owned();
        state.metrics.opened.inc();
        state.metrics.open_streams.inc();
        Self {
            _permit: permit,
            subscription,
            replaying: replay,
            heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat),
            deadline: Box::pin(tokio::time::sleep(expires_in)),
            shutdown: Box::pin(shutdown),
            kicked: Box::pin(kicked),
            preamble: Some(Bytes::from(preamble)),
            done: false,
            close_reason: CloseReason::Client,
            state,
        }
    }

    /// The lean path: owns the socket until the stream ends, the client goes
    /// away or the socket fails. Dropping the writer at the end sends FIN.
    pub(crate) async fn run(mut self, tcp: TcpStream) {
        let (read, write) = tcp.into_split();
        let mut writer = Some(Writer::new(write));
        // Made once for the connection, not per chunk.
        let gone = client_gone(read.as_ref());
        tokio::pin!(gone);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = &mut gone => return,
                chunk = self.next_chunk(&mut writer) => chunk,
            };
            // Between chunks the writer is always back with us.
            let (Some(chunk), Some(w)) = (chunk, writer.as_mut()) else {
                return;
            };
            w.push(chunk);
            let flushed = tokio::select! {
                biased;
                _ = &mut gone => return,
                flushed = w.flush() => flushed,
            };
            if flushed.is_err() {
                return;
            }
        }
    }

    /// Served by hyper: the stream as a response body.
    pub(crate) fn into_body(self) -> Body {
        Body::from_stream(futures_util::stream::unfold(self, |mut conn| async move {
            conn.next_chunk(&mut None)
                .await
                .map(|chunk| (Ok::<_, Infallible>(chunk), conn))
        }))
    }

    /// The next bytes to write (empty: only what `writer` holds), or `None`
    /// to end the stream.
    async fn next_chunk(&mut self, writer: &mut Option<Writer>) -> Option<Bytes> {
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
            // What the hub left unwritten goes out first, and by us.
            if writer.as_ref().is_some_and(Writer::has_pending) {
                return Some(Bytes::new());
            }
            match self.wait(writer).await {
                Wake::Shutdown => return self.close_for_shutdown(),
                Wake::Kicked | Wake::Frame(None) => return self.close(CloseReason::SlowConsumer, None),
                Wake::Deadline => {
                    let reauth = Bytes::from(control("herald.reauth", "token_expiring", None));
                    return self.close(CloseReason::Reauth, Some(reauth));
                }
                Wake::Frame(Some(first)) => {
                    if let Some(chunk) = self.live_chunk(first) {
                        return Some(chunk);
                    }
                }
                Wake::Heartbeat => {
                    let mut b = String::new();
                    sse::write_comment(&mut b, "");
                    return Some(Bytes::from(b));
                }
            }
        }
    }

    /// Waits for what comes next. Parked meanwhile, if it can be: while
    /// nothing is queued, the hub writes live frames with `writer` itself,
    /// and whatever wakes the stream takes the writer back first.
    async fn wait(&mut self, writer: &mut Option<Writer>) -> Wake {
        let sink = &self.subscription.sink;
        let parked = match writer.take() {
            Some(w) => match sink.park(w, &self.subscription.frames) {
                None => true,
                Some(w) => {
                    *writer = Some(w);
                    false
                }
            },
            None => false,
        };
        let wake = tokio::select! {
            biased;
            _ = self.shutdown.as_mut() => Wake::Shutdown,
            _ = self.kicked.as_mut() => Wake::Kicked,
            _ = self.deadline.as_mut() => Wake::Deadline,
            frame = self.subscription.frames.recv() => Wake::Frame(frame),
            _ = self.heartbeat.tick() => Wake::Heartbeat,
        };
        if parked {
            *writer = self.subscription.sink.unpark();
        }
        wake
    }

    /// `first` and whatever else is queued, as one chunk, but for frames at
    /// or below the last position sent (and the hub's wake-ups): `None` if
    /// nothing is left.
    fn live_chunk(&mut self, first: Frame) -> Option<Bytes> {
        let sink = &self.subscription.sink;
        // The common case: one frame, nothing else queued: sent as it is,
        // without allocating.
        if self.subscription.frames.is_empty() {
            let one = sink.accept_one(first);
            if one.is_some() {
                self.state.metrics.delivered.inc();
            }
            return one;
        }
        let mut frames = vec![first];
        while frames.len() < LIVE_CHUNK {
            match self.subscription.frames.try_recv() {
                Ok(f) => frames.push(f),
                Err(_) => break,
            }
        }
        let mut out = Vec::with_capacity(frames.len());
        let n = sink.accept(frames, &mut out);
        self.state.metrics.delivered.add(n as u64);
        join(out)
    }

    /// The next replay page as one chunk (`None`: replay is over). A page
    /// that retention cut short (history after our position was pruned since
    /// the stream opened, or between two pages) ends the replay with
    /// `herald.reset` at the head of the page's snapshot instead: the client
    /// refetches its state, and the stream continues live from there.
    async fn replay_page(&mut self) -> Result<Option<Bytes>, String> {
        let sink = &self.subscription.sink;
        let after = sink.last_sent();
        let page = self.state.replays.page(self.subscription.topics(), after).await?;
        if !page.complete_after(after) {
            self.replaying = false;
            self.state.metrics.resets.inc();
            let head = page.positions.head;
            sink.set_last_sent(head);
            return Ok(Some(Bytes::from(control("herald.reset", "pruned", Some(head)))));
        }
        let events = page.events;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(None);
        };
        let mut chunk = Vec::new();
        for e in &events {
            chunk.extend_from_slice(&Frame::from_envelope(e).bytes);
        }
        sink.set_last_sent(last);
        self.state.metrics.replayed_events.add(events.len() as u64);
        self.state.metrics.delivered.add(events.len() as u64);
        if (events.len() as i64) < REPLAY_PAGE {
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
        sse::write_retry(
            &mut frame,
            reconnect_delay_ms(self.state.settings.gateway.sse_retry),
        );
        frame.push_str(&control("herald.reconnect", "shutdown", None));
        self.close(CloseReason::Shutdown, Some(Bytes::from(frame)))
    }

    fn close(&mut self, reason: CloseReason, last: Option<Bytes>) -> Option<Bytes> {
        self.done = true;
        self.close_reason = reason;
        last
    }
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
        tracing::debug!(reason = ?self.close_reason, %last_sent, "stream closed");
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
