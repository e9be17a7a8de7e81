//! Per-stream acknowledgement state: which sequence numbers have been received, and when the
//! session should send a CAMP ACK for the stream.
//!
//! The state is a cumulative point (every seq below it received) plus the received ranges
//! above it, ascending and non-adjacent. A reliable stream never holds more ranges than half
//! its reorder window; a droppable stream whose gaps were declared lost keeps at most
//! `capacity` ranges and forgets the lowest beyond that, which only under-reports (a seq is
//! never claimed that was not received).

use core::ops::Range;

use camp_wire::{Modality, Seq};

use crate::Micros;

/// Most ranges one ACK carries; when more exist the highest are sent.
pub const MAX_ACK_RANGES: usize = 64;

/// An ACK the session should send for one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckToSend<'a> {
    /// Stream acknowledged.
    pub modality: Modality,
    /// Every seq below this has been received.
    pub cumulative: Seq,
    /// Received half-open ranges above `cumulative`: ascending, non-adjacent, non-empty, at
    /// most [`MAX_ACK_RANGES`], the highest ones when more exist.
    pub ranges: &'a [Range<u64>],
}

/// Set of received sequence numbers of one stream.
#[derive(Debug)]
pub(crate) struct AckRanges {
    cumulative: Seq,
    ranges: Vec<Range<u64>>,
    capacity: usize,
    largest: Option<Seq>,
}

impl AckRanges {
    /// Empty set that tracks at most `capacity` ranges above the cumulative point
    /// (at least [`MAX_ACK_RANGES`]); the storage is reserved now.
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(MAX_ACK_RANGES);
        AckRanges {
            cumulative: 0,
            ranges: Vec::with_capacity(capacity),
            capacity,
            largest: None,
        }
    }

    /// Every seq below this has been received.
    pub(crate) fn cumulative(&self) -> Seq {
        self.cumulative
    }

    /// Highest seq received so far.
    pub(crate) fn largest(&self) -> Option<Seq> {
        self.largest
    }

    /// The ranges an ACK carries now: the highest [`MAX_ACK_RANGES`].
    pub(crate) fn reported(&self) -> &[Range<u64>] {
        let skip = self.ranges.len().saturating_sub(MAX_ACK_RANGES);
        self.ranges.get(skip..).unwrap_or(&[])
    }

    /// Whether `seq` is known to have been received.
    pub(crate) fn contains(&self, seq: Seq) -> bool {
        if seq < self.cumulative {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.end <= seq);
        self.ranges.get(i).is_some_and(|r| r.start <= seq)
    }

    /// Records `seq` as received; returns `false` when it already was.
    pub(crate) fn insert(&mut self, seq: Seq) -> bool {
        if seq < self.cumulative {
            return false;
        }
        self.largest = Some(self.largest.map_or(seq, |l| l.max(seq)));
        if seq == self.cumulative {
            self.cumulative = seq.saturating_add(1);
            if self
                .ranges
                .first()
                .is_some_and(|r| r.start == self.cumulative)
            {
                self.cumulative = self.ranges.remove(0).end;
            }
            return true;
        }
        // Index of the first range that ends after `seq`.
        let i = self.ranges.partition_point(|r| r.end < seq);
        let next_seq = seq.saturating_add(1);
        match self.ranges.get(i).cloned() {
            Some(r) if r.start <= seq && seq < r.end => return false,
            Some(r) if r.end == seq => {
                // Extends range i upwards; may now touch range i + 1.
                let merged_end = match self.ranges.get(i + 1) {
                    Some(n) if n.start == next_seq => {
                        let end = n.end;
                        self.ranges.remove(i + 1);
                        end
                    }
                    _ => next_seq,
                };
                if let Some(r) = self.ranges.get_mut(i) {
                    r.end = merged_end;
                }
            }
            Some(r) if r.start == next_seq => {
                if let Some(r) = self.ranges.get_mut(i) {
                    r.start = seq;
                }
            }
            _ => {
                let mut at = i;
                if self.ranges.len() >= self.capacity {
                    if at == 0 {
                        // The new range would be the lowest one, the one to forget.
                        return true;
                    }
                    self.ranges.remove(0);
                    at -= 1;
                }
                self.ranges.insert(at, seq..next_seq);
            }
        }
        true
    }
}

/// When the next ACK of one stream is due (RFC 9000 §13.2-style delayed ACKs).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckTimer {
    /// Time at which an ACK becomes due; `None` when nothing new was received.
    due_at: Option<Micros>,
    unacked: u32,
}

impl AckTimer {
    /// Notes a received unit. `immediate` asks for an ACK at once: the unit was out of order
    /// (it opened or filled a gap) or a duplicate, which the sender must learn about quickly.
    pub(crate) fn on_received(&mut self, now: Micros, immediate: bool, delay: Micros, every: u32) {
        self.unacked = self.unacked.saturating_add(1);
        let due = if immediate || self.unacked >= every {
            now
        } else {
            now.saturating_add(delay)
        };
        self.due_at = Some(self.due_at.map_or(due, |d| d.min(due)));
    }

    /// Time the ACK is due, if one is pending.
    pub(crate) fn due_at(&self) -> Option<Micros> {
        self.due_at
    }

    /// Clears the pending ACK after it was handed to the session.
    pub(crate) fn sent(&mut self) {
        self.due_at = None;
        self.unacked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(seqs: &[u64]) -> AckRanges {
        let mut a = AckRanges::new(MAX_ACK_RANGES);
        for &s in seqs {
            a.insert(s);
        }
        a
    }

    #[test]
    fn crafted_pattern_gives_exact_cumulative_and_ranges() {
        // Received: 0 1 2 | 5 6 | 8 | 10 11 12, then 4 arrives (extends 5..7 downwards).
        let mut a = set_of(&[2, 0, 1, 6, 5, 8, 12, 10, 11]);
        assert_eq!(a.cumulative(), 3);
        assert_eq!(a.reported(), &[5..7, 8..9, 10..13]);
        assert!(a.insert(4));
        assert_eq!(a.reported(), &[4..7, 8..9, 10..13]);
        // 9 bridges 8..9 and 10..13.
        assert!(a.insert(9));
        assert_eq!(a.reported(), &[4..7, 8..13]);
        // 3 fills the first gap and swallows 4..7 into the cumulative point.
        assert!(a.insert(3));
        assert_eq!(a.cumulative(), 7);
        assert_eq!(a.reported(), core::slice::from_ref(&(8..13)));
        assert!(!a.insert(10), "duplicate");
        assert!(!a.insert(0), "duplicate below cumulative");
        assert!(a.contains(12) && !a.contains(7) && !a.contains(13));
        assert_eq!(a.largest(), Some(12));
    }

    #[test]
    fn more_than_64_ranges_reports_the_highest() {
        let seqs: Vec<u64> = (1..=70).map(|i| i * 2).collect();
        let mut a = AckRanges::new(128);
        for &s in &seqs {
            a.insert(s);
        }
        let r = a.reported();
        assert_eq!(r.len(), MAX_ACK_RANGES);
        assert_eq!(r.first(), Some(&(14..15)));
        assert_eq!(r.last(), Some(&(140..141)));
    }

    #[test]
    fn full_capacity_forgets_the_lowest_range_only() {
        let mut a = AckRanges::new(MAX_ACK_RANGES);
        for i in 1..=(MAX_ACK_RANGES as u64 + 1) {
            a.insert(i * 2);
        }
        assert_eq!(a.reported().len(), MAX_ACK_RANGES);
        assert_eq!(a.reported().first(), Some(&(4..5)), "range 2..3 forgotten");
        assert!(
            !a.contains(2),
            "forgetting under-reports, never over-reports"
        );
    }

    #[test]
    fn ack_timer_waits_for_delay_or_count_and_fires_at_once_on_gaps() {
        let mut t = AckTimer::default();
        t.on_received(100, false, 5_000, 8);
        assert_eq!(t.due_at(), Some(5_100));
        t.on_received(200, true, 5_000, 8);
        assert_eq!(t.due_at(), Some(200));
        t.sent();
        assert_eq!(t.due_at(), None);
        for i in 0..8 {
            t.on_received(1_000 + i, false, 5_000, 8);
        }
        assert_eq!(t.due_at(), Some(1_007), "8th unacked unit triggers at once");
    }
}
