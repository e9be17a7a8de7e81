//! The presentation queue (draft-song-tsvwg-camp-00 §4.4): delivered units wait here, each
//! with the presentation time the playout policy gave it, until they are due.
//!
//! It is a min-heap on (presentation time, insertion order), so units with the same time come
//! out first in, first out. When the CAMP playout delay `D` rises, [`PresentQueue::retime`]
//! moves the units still waiting on time by the raise, so that every unit not yet presented
//! shares one `D`; late and skipped units keep their time (they are due at once). The queue
//! remembers the latest presentation time it handed out, which is the media time buffered
//! ahead of the player (the occupancy reported in FEEDBACK).

use std::collections::BinaryHeap;

use camp_wire::Modality;

use crate::{Micros, PathId, UnitMeta, pool::BufId};

/// A delivered unit waiting in the presentation queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    pub(crate) due: Micros,
    /// Insertion order: ties on `due` are released first in, first out.
    pub(crate) order: u64,
    pub(crate) meta: UnitMeta,
    pub(crate) path: PathId,
    pub(crate) arrival_us: Micros,
    pub(crate) delivered_us: Micros,
    pub(crate) buf: BufId,
    pub(crate) log_id: Option<u64>,
    pub(crate) late: bool,
    pub(crate) skipped: bool,
}

impl Queued {
    /// Waiting for its scheduled time: neither late nor skipped, and not due at `now`.
    fn waits_on_time(&self, now: Micros) -> bool {
        !self.late && !self.skipped && self.due > now
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the earliest unit first.
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

/// Delivered units ordered by presentation time.
#[derive(Debug)]
pub(crate) struct PresentQueue {
    heap: BinaryHeap<Queued>,
    next_order: u64,
    latest_due: Micros,
}

impl PresentQueue {
    /// An empty queue with room for `capacity` units before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        PresentQueue {
            heap: BinaryHeap::with_capacity(capacity),
            next_order: 0,
            latest_due: 0,
        }
    }

    /// Queues a unit; its `order` is assigned here.
    pub(crate) fn push(&mut self, mut unit: Queued) {
        self.next_order += 1;
        unit.order = self.next_order;
        self.latest_due = self.latest_due.max(unit.due);
        self.heap.push(unit);
    }

    /// Presentation time of the earliest unit.
    pub(crate) fn next_due(&self) -> Option<Micros> {
        self.heap.peek().map(|q| q.due)
    }

    /// Removes and returns the earliest unit if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Micros) -> Option<Queued> {
        if self.next_due()? > now {
            return None;
        }
        self.heap.pop()
    }

    /// No unit waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Media time queued ahead of presentation at `now`: latest presentation time − now, 0
    /// when empty.
    pub(crate) fn occupancy_us(&self, now: Micros) -> Micros {
        if self.heap.is_empty() {
            0
        } else {
            self.latest_due.saturating_sub(now)
        }
    }

    /// Moves every unit that waits on time at `now` later by `raise`. Returns whether the
    /// raise applied (it was not 0 and the queue was not empty), i.e. whether the policy's
    /// own record of its latest scheduled times must move too.
    pub(crate) fn retime(&mut self, raise: Micros, now: Micros) -> bool {
        if raise == 0 || self.heap.is_empty() {
            return false;
        }
        // `into_vec` and `From<Vec>` reuse the heap's buffer: no allocation.
        let mut units = core::mem::take(&mut self.heap).into_vec();
        for q in units.iter_mut().filter(|q| q.waits_on_time(now)) {
            q.due = q.due.saturating_add(raise);
            self.latest_due = self.latest_due.max(q.due);
        }
        self.heap = BinaryHeap::from(units);
        true
    }

    /// The CAMP delay fell by `drop` at a talkspurt that starts at sender generation time
    /// `from_gen`: every unit of that time or later that waits on time at `now` (text and
    /// video queued ahead of the audio that lowered the delay) moves earlier by `drop`, but
    /// not before `now` nor before a unit of its modality generated earlier (which keeps its
    /// time), so a modality's presentation times still never go backwards. Returns, per
    /// modality, the latest due time left in the queue.
    pub(crate) fn advance_from(
        &mut self,
        from_gen: Micros,
        drop: Micros,
        now: Micros,
    ) -> [Option<Micros>; Modality::COUNT] {
        let mut latest = [None; Modality::COUNT];
        if self.heap.is_empty() {
            return latest;
        }
        let moves = |q: &Queued| drop > 0 && q.meta.gen_time_us >= from_gen && q.waits_on_time(now);
        let mut units = core::mem::take(&mut self.heap).into_vec();
        let mut floor = [now; Modality::COUNT];
        for q in units.iter().filter(|q| q.meta.gen_time_us < from_gen) {
            if let Some(f) = floor.get_mut(q.meta.modality.index()) {
                *f = (*f).max(q.due);
            }
        }
        let mut queue_latest = 0;
        for q in units.iter_mut() {
            let i = q.meta.modality.index();
            if moves(q) {
                let f = floor.get(i).copied().unwrap_or(now);
                q.due = q.due.saturating_sub(drop).max(f).min(q.due);
            }
            queue_latest = queue_latest.max(q.due);
            if let Some(l) = latest.get_mut(i) {
                *l = Some(l.map_or(q.due, |v: Micros| v.max(q.due)));
            }
        }
        self.latest_due = queue_latest;
        self.heap = BinaryHeap::from(units);
        latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_wire::{CaptureId, Reliability, UnitFlags};
    use proptest::prelude::*;

    fn unit(due: Micros, late: bool, skipped: bool, tag: u32) -> Queued {
        Queued {
            due,
            order: 0,
            meta: UnitMeta {
                modality: Modality::Audio,
                reliability: Reliability::Reliable,
                flags: UnitFlags::empty(),
                sync_index: tag,
                seq: u64::from(tag),
                gen_time_us: 0,
                deadline_us: 0,
                capture_id: CaptureId(1),
            },
            path: PathId(0),
            arrival_us: 0,
            delivered_us: 0,
            buf: BufId::for_tests(tag),
            log_id: None,
            late,
            skipped,
        }
    }

    fn drain(q: &mut PresentQueue) -> Vec<(Micros, u32)> {
        let mut out = Vec::new();
        while let Some(u) = q.pop_due(Micros::MAX) {
            out.push((u.due, u.meta.sync_index));
        }
        out
    }

    #[test]
    fn pops_in_time_order_ties_first_in_first_out_and_only_when_due() {
        let mut q = PresentQueue::with_capacity(4);
        q.push(unit(30, false, false, 1));
        q.push(unit(10, false, false, 2));
        q.push(unit(30, false, false, 3));
        q.push(unit(20, false, false, 4));
        assert_eq!(q.next_due(), Some(10));
        assert!(q.pop_due(9).is_none());
        assert_eq!(q.occupancy_us(5), 25);
        assert_eq!(drain(&mut q), vec![(10, 2), (20, 4), (30, 1), (30, 3)]);
        assert!(q.is_empty());
        assert_eq!(q.occupancy_us(5), 0);
    }

    #[test]
    fn retime_moves_only_units_waiting_on_time() {
        let mut q = PresentQueue::with_capacity(4);
        q.push(unit(100, false, false, 1)); // waits: moves
        q.push(unit(40, false, false, 2)); // already due at now = 50: stays
        q.push(unit(120, true, false, 3)); // late: stays
        q.push(unit(130, false, true, 4)); // skipped: stays
        assert!(q.retime(25, 50));
        assert_eq!(drain(&mut q), vec![(40, 2), (120, 3), (125, 1), (130, 4)]);
        assert!(!q.retime(25, 50), "empty queue has nothing to move");
    }

    #[test]
    fn advance_from_moves_only_on_time_units_generated_from_the_talkspurt() {
        let mut q = PresentQueue::with_capacity(4);
        let at = |due, late, tag, gen_us, m| {
            let mut u = unit(due, late, false, tag);
            u.meta.gen_time_us = gen_us;
            u.meta.modality = m;
            u
        };
        q.push(at(100, false, 1, 10, Modality::Text)); // before the talkspurt: stays
        q.push(at(200, false, 2, 50, Modality::Text)); // moves by 30
        q.push(at(210, true, 3, 60, Modality::Video)); // late: stays
        q.push(at(70, false, 4, 60, Modality::Video)); // moves, not before now = 60
        q.push(at(190, false, 5, 70, Modality::Text)); // moves, not before text 1 (100)
        let latest = q.advance_from(50, 100, 60);
        assert_eq!(latest[Modality::Text.index()], Some(100));
        assert_eq!(latest[Modality::Video.index()], Some(210));
        assert_eq!(latest[Modality::Audio.index()], None);
        assert_eq!(q.occupancy_us(60), 150);
        assert_eq!(
            drain(&mut q),
            vec![(60, 4), (100, 1), (100, 2), (100, 5), (210, 3)]
        );
    }

    proptest! {
        /// Against a sorted-list oracle: whatever is pushed and retimed comes out sorted by
        /// (due, insertion), each unit exactly once, and occupancy is the latest due − now.
        #[test]
        fn matches_a_sorted_list(
            ops in proptest::collection::vec((0u64..1_000, any::<bool>(), 0u64..50), 1..60),
            now in 0u64..1_000,
        ) {
            let mut q = PresentQueue::with_capacity(8);
            let mut oracle: Vec<(Micros, u64, u32)> = Vec::new();
            let mut latest = 0;
            for (i, &(due, late, raise)) in ops.iter().enumerate() {
                let tag = i as u32;
                q.push(unit(due, late, false, tag));
                oracle.push((due, i as u64, tag));
                latest = latest.max(due);
                if raise % 7 == 0 {
                    q.retime(raise, now);
                    for (j, o) in oracle.iter_mut().enumerate() {
                        if !ops[j].1 && o.0 > now {
                            o.0 += raise;
                            latest = latest.max(o.0);
                        }
                    }
                }
            }
            prop_assert_eq!(q.occupancy_us(now), latest.saturating_sub(now));
            oracle.sort();
            let want: Vec<(Micros, u32)> = oracle.iter().map(|o| (o.0, o.2)).collect();
            prop_assert_eq!(drain(&mut q), want);
        }
    }
}
