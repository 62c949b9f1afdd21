//! The replay window: the recent frames of every topic the hub carries, so
//! that a stream resuming a few seconds back (a network blip) is served from
//! memory instead of Postgres.
//!
//! # When it is complete
//!
//! A topic's window holds frames the hub forwarded for the topic, in `seq`
//! order, and a `start`: **every event of the topic with `seq > start` that
//! the hub has forwarded is in the window**. A resume after position `n` can
//! be served from the window when `start <= n`: the window has everything
//! the hub forwarded after `n`, and everything it forwards later reaches the
//! stream's queue (the snapshot is taken under the registry lock, in the
//! same step as the registration).
//!
//! The hub forwards every event of a subscribed topic once its subscription
//! is confirmed and it has read the head (the replay seam's argument, see
//! `connection`), and after an outage it forwards what it missed from
//! Postgres before anything live (see `session`), so `start` is known:
//! the head read after the topic's subscription was confirmed, or the
//! watermark the hub caught up from. Until then it is unknown and streams
//! replay from Postgres. Evicting a frame moves `start` to it; a reset (the
//! history the hub had not forwarded was pruned, or history went backwards
//! after a failover) empties every window and starts them at the reset's
//! position.
//!
//! Memory is bounded by one budget for all windows, evicting the oldest
//! frames first, whatever their topic (`HERALD_REPLAY_WINDOW_BYTES`; 0 turns
//! the window off).

use std::collections::VecDeque;
use std::sync::Arc;

use herald_domain::Seq;

use crate::frame::Frame;

/// One topic's window.
#[derive(Debug, Default)]
pub(super) struct Window {
    /// Every forwarded event above it is in `frames`; `None`: not known yet.
    start: Option<Seq>,
    frames: VecDeque<Frame>,
}

impl Window {
    /// The frames after `n`, if the window holds every one the hub forwarded.
    pub(super) fn after(&self, n: Seq) -> Option<impl Iterator<Item = &Frame> + '_> {
        if self.start? > n {
            return None;
        }
        let from = self.frames.partition_point(|f| f.seq <= n);
        Some(self.frames.range(from..))
    }

    fn bytes(&self) -> usize {
        self.frames.iter().map(|f| f.bytes.len()).sum()
    }
}

/// The budget shared by every window, and the order frames entered them in.
#[derive(Debug)]
pub(super) struct Budget {
    limit: usize,
    used: usize,
    /// Frames in all windows.
    live: usize,
    /// Oldest first (the hub forwards in `seq` order, so this is `seq`
    /// order): a frame's topic and `seq`. Entries whose frame left its
    /// window some other way (a reset, its topic gone) are skipped when
    /// they come up, and dropped by [`Budget::rebuild`] when they outnumber
    /// the live ones.
    order: VecDeque<(Arc<str>, Seq)>,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: 0,
            live: 0,
            order: VecDeque::new(),
        }
    }

    pub(super) fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// Appends `frame` to `topic`'s `window`. What is over budget is then
    /// evicted by the registry, from whichever windows hold it
    /// ([`Budget::oldest`], [`Budget::evict`]).
    pub(super) fn record(&mut self, topic: &Arc<str>, window: &mut Window, frame: &Frame) {
        if !self.enabled() {
            return;
        }
        window.frames.push_back(frame.clone());
        self.used += frame.bytes.len();
        self.live += 1;
        self.order.push_back((topic.clone(), frame.seq));
    }

    /// Whether frames must go.
    pub(super) fn over(&self) -> bool {
        self.used > self.limit
    }

    /// Whether the order is mostly entries of frames gone some other way.
    pub(super) fn stale(&self) -> bool {
        self.order.len() > 2 * self.live + 1024
    }

    /// The oldest frame's topic and `seq`, removed from the order.
    pub(super) fn oldest(&mut self) -> Option<(Arc<str>, Seq)> {
        self.order.pop_front()
    }

    /// Drops `window`'s oldest frame if it is `seq`; the window then starts
    /// there.
    pub(super) fn evict(&mut self, window: &mut Window, seq: Seq) {
        if window.frames.front().is_some_and(|f| f.seq == seq) {
            self.drop_front(window);
            window.start = Some(window.start.map_or(seq, |s| s.max(seq)));
        }
    }

    /// Sets `window`'s start if it is not known yet, dropping what is below.
    pub(super) fn seed(&mut self, window: &mut Window, start: Seq) {
        if window.start.is_some() || !self.enabled() {
            return;
        }
        window.start = Some(start);
        while window.frames.front().is_some_and(|f| f.seq <= start) {
            self.drop_front(window);
        }
    }

    /// Empties `window`, which from now on holds everything after `start`.
    pub(super) fn restart(&mut self, window: &mut Window, start: Seq) {
        self.release(window);
        window.frames.clear();
        window.start = self.enabled().then_some(start);
    }

    /// Forgets `window`'s frames (its topic has no stream left, or it restarts).
    pub(super) fn release(&mut self, window: &Window) {
        self.used -= window.bytes();
        self.live -= window.frames.len();
    }

    /// The order again from the windows themselves, without stale entries.
    pub(super) fn rebuild<'a>(&mut self, windows: impl Iterator<Item = (&'a Arc<str>, &'a Window)>) {
        let mut order: Vec<(Arc<str>, Seq)> = windows
            .flat_map(|(topic, w)| w.frames.iter().map(move |f| (topic.clone(), f.seq)))
            .collect();
        order.sort_unstable_by_key(|(_, seq)| *seq);
        self.order = order.into();
    }

    fn drop_front(&mut self, window: &mut Window) {
        if let Some(f) = window.frames.pop_front() {
            self.used -= f.bytes.len();
            self.live -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use bytes::Bytes;

    use super::*;

    fn frame(seq: i64) -> Frame {
        Frame::new(Seq::new(seq), Bytes::from(vec![b'x'; 10]))
    }

    fn seqs<'a>(frames: impl Iterator<Item = &'a Frame>) -> Vec<i64> {
        frames.map(|f| f.seq.get()).collect()
    }

    #[test]
    fn a_window_serves_only_what_it_provably_holds() {
        let mut budget = Budget::new(1_000);
        let topic: Arc<str> = "user:a".into();
        let mut w = Window::default();
        budget.record(&topic, &mut w, &frame(3));
        assert!(w.after(Seq::new(2)).is_none(), "start unknown: nothing is proved");
        budget.seed(&mut w, Seq::new(2));
        budget.record(&topic, &mut w, &frame(5));
        assert_eq!(seqs(w.after(Seq::new(2)).unwrap()), [3, 5]);
        assert_eq!(seqs(w.after(Seq::new(3)).unwrap()), [5]);
        assert_eq!(seqs(w.after(Seq::new(9)).unwrap()), Vec::<i64>::new());
        assert!(w.after(Seq::new(1)).is_none(), "before the start");
        budget.restart(&mut w, Seq::new(7));
        assert!(w.after(Seq::new(5)).is_none());
        assert_eq!(seqs(w.after(Seq::new(7)).unwrap()), Vec::<i64>::new());
        assert_eq!(budget.used, 0);
    }

    #[test]
    fn eviction_takes_the_oldest_frame_and_moves_the_start() {
        let mut budget = Budget::new(25);
        let (a, b): (Arc<str>, Arc<str>) = ("user:a".into(), "user:b".into());
        let (mut wa, mut wb) = (Window::default(), Window::default());
        budget.seed(&mut wa, Seq::ZERO);
        budget.seed(&mut wb, Seq::ZERO);
        budget.record(&a, &mut wa, &frame(1));
        budget.record(&b, &mut wb, &frame(2));
        budget.record(&a, &mut wa, &frame(3));
        assert!(budget.over());
        let (topic, seq) = budget.oldest().unwrap();
        assert_eq!((&*topic, seq), ("user:a", Seq::new(1)));
        budget.evict(&mut wa, seq);
        assert!(!budget.over());
        assert!(
            wa.after(Seq::ZERO).is_none(),
            "1 is gone: a resume after 0 needs Postgres"
        );
        assert_eq!(seqs(wa.after(Seq::new(1)).unwrap()), [3]);
        assert_eq!(seqs(wb.after(Seq::ZERO).unwrap()), [2]);
    }

    #[test]
    fn a_budget_of_zero_keeps_nothing_and_proves_nothing() {
        let mut budget = Budget::new(0);
        let topic: Arc<str> = "user:a".into();
        let mut w = Window::default();
        budget.seed(&mut w, Seq::ZERO);
        budget.record(&topic, &mut w, &frame(1));
        assert!(w.after(Seq::ZERO).is_none());
        budget.restart(&mut w, Seq::new(4));
        assert!(w.after(Seq::new(4)).is_none());
    }
}
