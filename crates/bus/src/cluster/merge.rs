//! The k-way merge of a cluster subscriber's shard connections (see the
//! parent module for why it is correct).

use std::collections::BTreeMap;
use std::time::Duration;

use herald_domain::Seq;
use tokio::time::Instant;

/// A k-way merge of shard connections that each deliver in increasing
/// `seq` order, punctuated by watermarks. See the module docs.
pub(crate) struct Merge<T> {
    /// Per shard: the highest `seq` it has shown, event or watermark.
    frontier: Vec<Seq>,
    /// Per shard: topic channels subscribed there. Shards with none are not
    /// waited for.
    channels: Vec<usize>,
    pending: BTreeMap<Seq, T>,
    /// Since when something has been pending without any release.
    waiting_since: Option<Instant>,
    /// The last released `seq` (or the position the hub caught up to).
    last: Seq,
}

impl<T> Merge<T> {
    /// `shards` connections.
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            frontier: vec![Seq::ZERO; shards],
            channels: vec![0; shards],
            pending: BTreeMap::new(),
            waiting_since: None,
            last: Seq::ZERO,
        }
    }

    /// Everything up to `last` arrived some other way: events at or below it
    /// are dropped from now on, and no shard needs waiting for them (a
    /// shard's frontier is a promise about what can still arrive that
    /// matters, and nothing at or below `last` does).
    pub(crate) fn set_last(&mut self, last: Seq) {
        if last <= self.last {
            return;
        }
        self.last = last;
        self.pending = self.pending.split_off(&last.next());
        for f in &mut self.frontier {
            *f = (*f).max(last);
        }
    }

    #[cfg(test)]
    fn last(&self) -> Seq {
        self.last
    }

    pub(crate) fn message(&mut self, shard: usize, seq: Seq, item: T) {
        self.watermark(shard, seq);
        if seq > self.last {
            self.pending.entry(seq).or_insert(item); // a duplicate keeps the first
            self.waiting_since.get_or_insert_with(Instant::now);
        }
    }

    pub(crate) fn watermark(&mut self, shard: usize, seq: Seq) {
        let f = &mut self.frontier[shard];
        *f = (*f).max(seq);
    }

    pub(crate) fn add_channel(&mut self, shard: usize) {
        self.channels[shard] += 1;
    }

    pub(crate) fn remove_channel(&mut self, shard: usize) {
        self.channels[shard] = self.channels[shard].saturating_sub(1);
    }

    /// Every shard in use has shown everything up to here.
    fn horizon(&self) -> Seq {
        self.frontier
            .iter()
            .zip(&self.channels)
            .filter(|(_, &channels)| channels > 0)
            .map(|(&f, _)| f)
            .min()
            .unwrap_or(Seq::MAX)
    }

    /// The pending events no shard can precede any more, in `seq` order.
    pub(crate) fn release(&mut self) -> Vec<(Seq, T)> {
        let horizon = self.horizon();
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > horizon {
                break;
            }
            let (seq, item) = entry.remove_entry();
            self.last = seq;
            out.push((seq, item));
        }
        if !out.is_empty() {
            self.waiting_since = (!self.pending.is_empty()).then(Instant::now);
        }
        out
    }

    /// How long pending events have waited without progress.
    pub(crate) fn waiting(&self) -> Option<Duration> {
        self.waiting_since.map(|t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;
    use proptest::prelude::*;

    fn s(n: i64) -> Seq {
        Seq::new(n)
    }

    fn seqs(out: Vec<(Seq, ())>) -> Vec<i64> {
        out.into_iter().map(|(s, _)| s.get()).collect()
    }

    #[test]
    fn a_lower_seq_on_a_slower_shard_is_not_overtaken() {
        let mut m = Merge::new(2);
        m.set_last(s(4));
        m.add_channel(0);
        m.add_channel(1);
        m.message(1, s(6), ());
        assert!(m.release().is_empty(), "shard 0 may still send 5");
        m.message(0, s(5), ());
        assert_eq!(seqs(m.release()), [5], "shard 1 showed 6, shard 0 showed 5");
        m.watermark(0, s(6));
        assert_eq!(seqs(m.release()), [6]);
        assert_eq!(m.last(), s(6));
        assert!(m.waiting().is_none());
    }

    #[test]
    fn one_shard_in_use_needs_no_watermark() {
        let mut m = Merge::new(3);
        m.add_channel(2);
        m.message(2, s(1), ());
        m.message(2, s(3), ());
        assert_eq!(
            seqs(m.release()),
            [1, 3],
            "shards 0 and 1 carry none of our channels"
        );
    }

    #[test]
    fn duplicates_are_delivered_once() {
        let mut m = Merge::new(2);
        m.add_channel(0);
        m.add_channel(1);
        m.message(0, s(1), ());
        m.message(0, s(1), ());
        m.watermark(1, s(1));
        assert_eq!(seqs(m.release()), [1]);
        m.message(0, s(1), ()); // republished after a worker crash
        m.watermark(1, s(2));
        assert!(m.release().is_empty());
    }

    #[test]
    fn dropping_a_shards_last_channel_stops_waiting_for_it() {
        let mut m = Merge::new(2);
        m.add_channel(0);
        m.add_channel(1);
        m.message(0, s(3), ());
        assert!(m.release().is_empty());
        assert!(m.waiting().is_some());
        m.remove_channel(1);
        assert_eq!(seqs(m.release()), [3]);
    }

    /// A log spread over shards: for each event its shard, and after which
    /// events a batch (and so a watermark on every shard) ends.
    fn log() -> impl Strategy<Value = (Vec<usize>, Vec<bool>, Vec<u8>)> {
        (1usize..60).prop_flat_map(|n| {
            (
                proptest::collection::vec(0usize..3, n),
                proptest::collection::vec(any::<bool>(), n),
                proptest::collection::vec(any::<u8>(), 0..400),
            )
        })
    }

    proptest! {
        /// Whatever the interleaving of the shards' ordered deliveries, the
        /// merge releases every event exactly once, in `seq` order, and
        /// nothing remains pending once the last batch's watermarks arrived.
        #[test]
        fn any_interleaving_is_released_in_order((shard_of, batch_end, picks) in log()) {
            let n = shard_of.len();
            // Each shard's delivery: its events, and a watermark after each batch.
            let mut queues: Vec<std::collections::VecDeque<(bool, Seq)>> = vec![Default::default(); 3];
            for (i, &s) in shard_of.iter().enumerate() {
                let seq = Seq::new(i as i64 + 1);
                queues[s].push_back((true, seq));
                if batch_end[i] || i + 1 == n {
                    for q in &mut queues {
                        q.push_back((false, seq));
                    }
                }
            }
            let mut m = Merge::new(3);
            for s in 0..3 {
                if shard_of.contains(&s) {
                    m.add_channel(s);
                }
            }
            let mut out = Vec::new();
            let mut picks = picks.into_iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let nonempty: Vec<usize> = (0..3).filter(|&s| !queues[s].is_empty()).collect();
                let s = nonempty[picks.next().map_or(0, usize::from) % nonempty.len()];
                let (event, seq) = queues[s].pop_front().expect("nonempty");
                if event {
                    m.message(s, seq, ());
                } else {
                    m.watermark(s, seq);
                }
                out.extend(seqs(m.release()));
            }
            prop_assert_eq!(out, (1..=n as i64).collect::<Vec<_>>());
            prop_assert!(m.waiting().is_none());
        }
    }
}
