//! The deadlines of one hyper-served connection: what a client that never
//! finishes may hold.
//!
//! A connection is always in one of three phases, and each has its bound
//! ([`HttpLimits`]):
//!
//! - **idle**, waiting for the first byte of a request: `idle_timeout` after
//!   the previous response (keep-alive), or `header_timeout` after accept for
//!   a new connection, which has sent nothing yet;
//! - **head**, a request has begun but its head is not complete:
//!   `header_timeout` from its first byte (or from accept);
//! - **busy**, a request is being answered: no connection deadline (the body
//!   has its own, in `JsonBody`; a handler may take as long as it takes).
//!
//! hyper's own `header_read_timeout` cannot tell idle from head (it runs from
//! the end of the previous response), so the clock lives here: [`Watched`]
//! sees the bytes arrive, the service marks requests in and out
//! ([`Clock::request_started`], [`Finished`]), and the connection's task
//! closes the socket at [`Clock::deadline`].

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::HttpLimits;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in progress; `first`: nothing was ever received.
    Idle { first: bool },
    /// A request head is arriving.
    Head,
    /// Requests are being answered.
    Busy,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    in_flight: u32,
}

/// One connection's phase and when it began. Shared by its I/O, its service
/// and its task.
#[derive(Debug)]
pub(crate) struct Clock {
    state: Mutex<State>,
    /// Wakes the task when a deadline may have moved.
    pub(crate) changed: Notify,
    limits: HttpLimits,
}

impl Clock {
    /// A connection accepted at `accepted`. `head_begun`: bytes of its first
    /// request were already read (by the lean stream path).
    pub(crate) fn new(limits: HttpLimits, accepted: Instant, head_begun: bool) -> Arc<Self> {
        let phase = if head_begun {
            Phase::Head
        } else {
            Phase::Idle { first: true }
        };
        Arc::new(Self {
            state: Mutex::new(State {
                phase,
                since: accepted,
                in_flight: 0,
            }),
            changed: Notify::new(),
            limits,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the connection must be closed unless its phase changes first.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let st = self.state();
        match st.phase {
            Phase::Idle { first: true } | Phase::Head => Some(st.since + self.limits.header_timeout),
            Phase::Idle { first: false } => Some(st.since + self.limits.idle_timeout),
            Phase::Busy => None,
        }
    }

    fn bytes_arrived(&self) {
        let mut st = self.state();
        if let Phase::Idle { first } = st.phase {
            st.phase = Phase::Head;
            if !first {
                // The head's time runs from its first byte.
                st.since = Instant::now();
            }
            drop(st);
            self.changed.notify_one();
        }
    }

    /// A request head was parsed and handed to the service.
    pub(crate) fn request_started(&self) {
        let mut st = self.state();
        st.in_flight += 1;
        st.phase = Phase::Busy;
    }

    fn request_finished(&self) {
        let mut st = self.state();
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            st.phase = Phase::Idle { first: false };
            st.since = Instant::now();
            drop(st);
            self.changed.notify_one();
        }
    }
}

/// A connection's socket as hyper sees it: the bytes the lean path already
/// read (the start of the first request) come first, and every read that
/// brings request bytes is told to the [`Clock`].
pub(crate) struct Watched {
    prefix: Bytes,
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl Watched {
    pub(crate) fn new(prefix: Bytes, inner: TcpStream, clock: Arc<Clock>) -> Self {
        Self { prefix, inner, clock }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            // Counted from accept already (the clock began in the head phase).
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            bytes::Buf::advance(&mut self.prefix, n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that tells its [`Clock`] when it is done (dropped: sent,
/// or abandoned with the connection).
pub(crate) struct Finished<B> {
    inner: B,
    clock: Arc<Clock>,
}

impl<B> Finished<B> {
    pub(crate) fn new(inner: B, clock: Arc<Clock>) -> Self {
        Self { inner, clock }
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        self.clock.request_finished();
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Finished<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_head_bytes: 32 * 1024,
        }
    }

    /// Each phase has its bound: a new connection its header timeout from
    /// accept, a request in progress none, keep-alive its idle timeout from
    /// the response, and a later head its header timeout from its first byte.
    #[tokio::test]
    async fn every_phase_of_a_connection_has_its_deadline() {
        let t0 = Instant::now();
        let clock = Clock::new(limits(), t0, false);
        assert_eq!(clock.deadline(), Some(t0 + Duration::from_secs(10)));
        clock.bytes_arrived();
        assert_eq!(
            clock.deadline(),
            Some(t0 + Duration::from_secs(10)),
            "still from accept"
        );
        clock.request_started();
        assert_eq!(clock.deadline(), None);
        clock.request_finished();
        let idle = clock.deadline().expect("idle has a deadline");
        assert!(idle >= t0 + Duration::from_secs(60));
        clock.bytes_arrived();
        let head = clock.deadline().expect("a head has a deadline");
        assert!(head < idle && head >= t0 + Duration::from_secs(10));
        let handed_over = Clock::new(limits(), t0, true);
        assert_eq!(handed_over.deadline(), Some(t0 + Duration::from_secs(10)));
    }
}
