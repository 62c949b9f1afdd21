//! A stream's end of the hub ([`Sink`]), and delivery to it.
//!
//! # Writing for a parked stream
//!
//! Waking one task per stream per event costs more than the `send` itself
//! (the wake-up, the task's poll through its waits, the queue). So a stream
//! on the lean path, which owns its socket's [`Writer`], *parks* it in its
//! sink whenever it waits with nothing queued and nothing pending, and the
//! hub writes live frames with it, from the hub's own task. Ownership is
//! the write right: a writer is in the sink (the hub may write) or with the
//! stream's task (only it may write), never both, and it moves only under
//! the sink's lock. Frames cannot overtake each other either: the hub
//! writes for a stream only while its queue is empty (a stream with queued
//! frames does not park), and appends to the writer's pending bytes when
//! the socket is full.
//!
//! The hub delivers in batches: everything the bus had ready is framed
//! first ([`Deliveries`]), then each touched socket gets one (vectored)
//! write for all of its frames of the batch. A socket that does not take
//! everything ends the arrangement: the writer, with the rest, is returned
//! to the stream, and a wake-up through its queue sends its task to finish
//! the write (and to be cut off like any consumer that stopped reading).

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use herald_domain::Seq;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::frame::Frame;
use crate::metrics::GatewayMetrics;
use crate::socket::Writer;

/// One stream's end of the hub: its queue, its kick, and (on the lean path,
/// while it is parked) its socket's writer.
pub struct Sink {
    queue: mpsc::Sender<Frame>,
    kick: CancellationToken,
    state: Mutex<SinkState>,
}

#[derive(Debug, Default)]
struct SinkState {
    writer: Parked,
    /// The highest `seq` written or handed to the stream: frames at or
    /// below it are duplicates (the replay seam, republished events).
    last_sent: Seq,
    /// Listed in a batch of deliveries not written yet.
    listed: bool,
}

/// Whether `frame` goes out after `last_sent`: above it (else a duplicate),
/// or a rewind.
fn admits(last_sent: Seq, frame: &Frame) -> bool {
    frame.rewind || frame.seq > last_sent
}

impl SinkState {
    /// [`admits`], and if so, `frame` is the last sent.
    fn admit(&mut self, frame: &Frame) -> bool {
        let admitted = admits(self.last_sent, frame);
        if admitted {
            self.last_sent = frame.seq;
        }
        admitted
    }
}

/// Where a stream's writer is, as far as the hub is concerned.
#[derive(Debug, Default)]
enum Parked {
    /// With the stream's task, which is writing (or has no writer: a stream
    /// served by hyper): frames go to its queue.
    #[default]
    No,
    /// Parked: the hub writes with it.
    Yes(Writer),
    /// Returned by the hub, with what the socket did not take: frames go
    /// to the queue until the stream's task takes it back.
    Returned(Writer),
}

impl Sink {
    pub(super) fn new(queue: mpsc::Sender<Frame>, kick: CancellationToken) -> Self {
        Self {
            queue,
            kick,
            state: Mutex::new(SinkState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, SinkState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The position the stream has sent up to.
    pub fn last_sent(&self) -> Seq {
        self.state().last_sent
    }

    /// Records that everything up to `seq` was sent (replay, preamble).
    pub fn set_last_sent(&self, seq: Seq) {
        self.state().last_sent = seq;
    }

    /// Hands `writer` to the hub while the stream waits, unless the stream
    /// has something to write first: frames in its `queue`, or bytes
    /// pending in the writer. Then it gets the writer back.
    pub fn park(&self, writer: Writer, queue: &mpsc::Receiver<Frame>) -> Option<Writer> {
        if writer.has_pending() {
            return Some(writer);
        }
        let mut st = self.state();
        if !queue.is_empty() {
            return Some(writer);
        }
        st.writer = Parked::Yes(writer);
        None
    }

    /// Takes the writer back from the hub (with whatever it could not
    /// write), if it was parked.
    pub fn unpark(&self) -> Option<Writer> {
        match std::mem::take(&mut self.state().writer) {
            Parked::Yes(w) | Parked::Returned(w) => Some(w),
            Parked::No => None,
        }
    }

    /// `frame`'s bytes if it goes out now (it is above the last position
    /// sent, which moves to it).
    pub fn accept_one(&self, frame: Frame) -> Option<Bytes> {
        let mut st = self.state();
        st.admit(&frame).then_some(frame.bytes)
    }

    /// The frames of `frames` that go out now (those above the last
    /// position sent, which moves past them), appended to `out`.
    pub fn accept(&self, frames: impl IntoIterator<Item = Frame>, out: &mut Vec<Bytes>) -> usize {
        let mut st = self.state();
        let mut n = 0;
        for f in frames {
            if st.admit(&f) {
                out.push(f.bytes);
                n += 1;
            }
        }
        n
    }

    /// Offers `frame`: appended to the parked writer's pending bytes (once,
    /// and listed in `batch` for writing), queued otherwise. `false` when
    /// the queue is full: the stream cannot keep up.
    pub(super) fn offer(self: &Arc<Self>, frame: &Frame, batch: &mut Deliveries) -> bool {
        // Under the lock: the stream cannot park or unpark between the check
        // and the queueing, so nothing overtakes a queued frame.
        let mut st = self.state();
        let st = &mut *st;
        let Parked::Yes(writer) = &mut st.writer else {
            return !matches!(
                self.queue.try_send(frame.clone()),
                Err(mpsc::error::TrySendError::Full(_))
            );
        };
        if admits(st.last_sent, frame) {
            st.last_sent = frame.seq;
            writer.push(frame.bytes.clone());
            batch.frames += 1;
            if !st.listed {
                st.listed = true;
                batch.sinks.push(self.clone());
            }
        }
        true
    }

    /// Disconnects the stream: it fell behind its queue bound.
    pub(super) fn kick(&self) {
        self.kick.cancel();
    }

    /// Writes what is pending for a parked stream, without waiting.
    fn write(&self) {
        let mut st = self.state();
        st.listed = false;
        let Parked::Yes(writer) = &mut st.writer else {
            return; // the stream took its writer back meanwhile, with the frames
        };
        match writer.try_flush() {
            Ok(true) => return,
            Ok(false) => {}
            // The connection is broken: the stream's task sees it and ends.
            Err(e) => tracing::debug!(error = %e, "writing for a parked stream failed"),
        }
        if let Parked::Yes(writer) = std::mem::take(&mut st.writer) {
            st.writer = Parked::Returned(writer);
        }
        if self.queue.try_send(Frame::WAKE).is_err() {
            self.kick();
        }
    }
}

/// What one batch delivers by writing: the sinks with frames pending.
#[derive(Default)]
pub(super) struct Deliveries {
    sinks: Vec<Arc<Sink>>,
    frames: u64,
}

/// Sockets written by one delivery task, at most (about half a millisecond
/// of `send`s).
const PART: usize = 128;
/// Sockets a delivery task writes between yields.
const YIELD_EVERY: usize = 32;

impl Deliveries {
    /// Writes each listed sink's pending frames, one (vectored) write each.
    ///
    /// Many sockets are split into parts of [`PART`], each written by its
    /// own task: spread over the runtime's threads, and short, so that
    /// neither the hub nor the next batch waits long for a thread. Order
    /// holds whoever writes when: each write takes everything pending for
    /// the socket, under the sink's lock, and a sink listed in a batch not
    /// yet written is not listed again (the earlier write takes the later
    /// frames).
    pub(super) fn write(self, metrics: &GatewayMetrics) {
        if self.frames > 0 {
            metrics.delivered.add(self.frames);
        }
        let mut sinks = self.sinks;
        if sinks.len() <= PART {
            sinks.iter().for_each(|s| s.write());
            return;
        }
        // All parts in tasks: the hub goes back to the bus at once, and the
        // next event's frames join the sinks still waiting for their write.
        while !sinks.is_empty() {
            let part = sinks.split_off(sinks.len().saturating_sub(PART));
            tokio::spawn(async move {
                for chunk in part.chunks(YIELD_EVERY) {
                    chunk.iter().for_each(|s| s.write());
                    // Let the worker thread poll the I/O driver: a busy
                    // worker polls it only between tasks, so the bus's next
                    // message (and the streams' own wake-ups) would wait
                    // behind every queued delivery task.
                    tokio::task::yield_now().await;
                }
            });
        }
    }
}
