//! Per-stream reorder buffer: holds units that arrived above the in-order point until the
//! units below them arrive (draft-song-tsvwg-camp-00 §4.1.3, "reordering data packets that
//! may have arrived out of order due to the diverse paths"), and the gap bookkeeping that
//! loss inference for droppable streams needs.
//!
//! The buffer is a ring of `window` slots indexed by `seq % window`; a unit at or beyond
//! `in_order + window` does not fit. Memory is fixed at construction.

use camp_wire::{PathId, Seq};

use crate::{Micros, UnitMeta, pool::BufId};

/// A unit held by the receiver between arrival and presentation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StoredUnit {
    pub(crate) meta: UnitMeta,
    pub(crate) path: PathId,
    pub(crate) arrival_us: Micros,
    /// Local time the unit's generation instant maps to (`gen + clock offset`).
    pub(crate) local_gen_us: Micros,
    pub(crate) buf: BufId,
    /// Index of the unit's record in the arrival log, when logging.
    pub(crate) log_id: Option<u64>,
}

/// Where a sequence number falls relative to the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Position {
    /// Below the in-order point: delivered, skipped or lost already.
    Below,
    /// Fits in the window.
    InWindow,
    /// At or beyond `in_order + window`.
    Ahead,
}

/// A gap at the in-order point with units waiting above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gap {
    /// In-order point the gap state describes.
    pub(crate) at: Seq,
    /// Earliest arrival among the units waiting above the gap.
    pub(crate) waiting_since: Micros,
    /// Lowest stored seq above the gap.
    pub(crate) next_seq: Seq,
    /// Local time by which the missing units' deadline has certainly passed, if the stream
    /// has deadlines.
    pub(crate) deadline_bound: Option<Micros>,
}

/// Reorder ring of one stream.
#[derive(Debug)]
pub(crate) struct ReorderBuffer {
    next: Seq,
    slots: Vec<Option<StoredUnit>>,
    stored: u32,
    gap: Option<Gap>,
}

impl ReorderBuffer {
    /// A buffer of `window` slots (at least 1), all allocated now.
    pub(crate) fn new(window: u32) -> Self {
        ReorderBuffer {
            next: 0,
            slots: vec![None; window.max(1) as usize],
            stored: 0,
            gap: None,
        }
    }

    fn window(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, seq: Seq) -> usize {
        // `slots` is never empty (`new` takes at least one), so the modulus is non-zero and
        // the result is a valid index.
        (seq % self.window()) as usize
    }

    /// Next sequence number the stream waits for.
    pub(crate) fn in_order(&self) -> Seq {
        self.next
    }

    /// Units stored above the in-order point.
    pub(crate) fn stored(&self) -> u32 {
        self.stored
    }

    /// Current gap, if the in-order unit is missing and later units wait.
    pub(crate) fn gap(&self) -> Option<Gap> {
        self.gap
    }

    /// Classifies `seq` against the window.
    pub(crate) fn position(&self, seq: Seq) -> Position {
        if seq < self.next {
            Position::Below
        } else if seq - self.next < self.window() {
            Position::InWindow
        } else {
            Position::Ahead
        }
    }

    /// Whether a unit with `seq` is stored.
    pub(crate) fn holds(&self, seq: Seq) -> bool {
        self.position(seq) == Position::InWindow
            && self
                .slots
                .get(self.index(seq))
                .is_some_and(|s| s.is_some_and(|u| u.meta.seq == seq))
    }

    /// Stores a unit that is in the window and not yet held; returns `false` (and stores
    /// nothing) otherwise.
    pub(crate) fn insert(&mut self, unit: StoredUnit) -> bool {
        let seq = unit.meta.seq;
        if self.position(seq) != Position::InWindow {
            return false;
        }
        let i = self.index(seq);
        match self.slots.get_mut(i) {
            Some(slot @ None) => {
                *slot = Some(unit);
                self.stored += 1;
            }
            _ => return false,
        }
        if let Some(g) = self.gap.as_mut() {
            if g.at == self.next && seq > self.next && seq < g.next_seq {
                g.next_seq = seq;
                g.deadline_bound = deadline_of(&unit);
            }
        }
        true
    }

    /// Takes the in-order unit if it is present, advancing the in-order point.
    pub(crate) fn pop_in_order(&mut self) -> Option<StoredUnit> {
        let i = self.index(self.next);
        let slot = self.slots.get_mut(i)?;
        match slot {
            Some(u) if u.meta.seq == self.next => {
                let u = *u;
                *slot = None;
                self.stored -= 1;
                self.next = self.next.saturating_add(1);
                Some(u)
            }
            _ => None,
        }
    }

    /// Declares the in-order seq lost and moves past it; returns whether it was missing (a
    /// stored unit is never skipped: it is left for `pop_in_order`).
    pub(crate) fn skip_missing(&mut self) -> bool {
        if self.holds(self.next) {
            return false;
        }
        self.next = self.next.saturating_add(1);
        true
    }

    /// Moves the in-order point straight to `target` when nothing is stored; returns how many
    /// seqs were passed over.
    pub(crate) fn jump_empty(&mut self, target: Seq) -> u64 {
        if self.stored != 0 || target <= self.next {
            return 0;
        }
        let n = target - self.next;
        self.next = target;
        n
    }

    /// Recomputes the gap after the in-order point moved: `now` is not needed because the
    /// waiting time is the earliest arrival among the stored units.
    pub(crate) fn refresh_gap(&mut self) {
        if self.stored == 0 || self.holds(self.next) {
            self.gap = None;
            return;
        }
        if self.gap.is_some_and(|g| g.at == self.next) {
            return;
        }
        let mut best: Option<Gap> = None;
        for s in self.slots.iter().flatten() {
            let seq = s.meta.seq;
            best = Some(match best {
                None => Gap {
                    at: self.next,
                    waiting_since: s.arrival_us,
                    next_seq: seq,
                    deadline_bound: deadline_of(s),
                },
                Some(mut g) => {
                    g.waiting_since = g.waiting_since.min(s.arrival_us);
                    if seq < g.next_seq {
                        g.next_seq = seq;
                        g.deadline_bound = deadline_of(s);
                    }
                    g
                }
            });
        }
        self.gap = best;
    }

    /// Removes every stored unit (used at `finish` for units a reliable gap holds back).
    pub(crate) fn drain_all(&mut self, mut f: impl FnMut(StoredUnit)) {
        for slot in &mut self.slots {
            if let Some(u) = slot.take() {
                f(u);
            }
        }
        self.stored = 0;
        self.gap = None;
    }
}

/// Local time by which a unit generated no later than `u` has missed a deadline as long as
/// `u`'s: a missing unit below `u` was generated at or before `u.gen`, so its deadline is at
/// or before `u.local_gen + u.deadline` (draft §3.1.4 deadline constraint
/// `a_m,k - g_m,k <= delta_m`, with `delta_m` per stream).
fn deadline_of(u: &StoredUnit) -> Option<Micros> {
    (u.meta.deadline_us != 0).then(|| {
        u.local_gen_us
            .saturating_add(Micros::from(u.meta.deadline_us))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PayloadPool;
    use camp_wire::{CaptureId, Modality, Reliability, UnitFlags};

    fn unit(pool: &mut PayloadPool, seq: Seq, arrival: Micros) -> StoredUnit {
        StoredUnit {
            meta: UnitMeta {
                modality: Modality::Video,
                reliability: Reliability::Droppable,
                flags: UnitFlags::empty(),
                sync_index: seq as u32,
                seq,
                gen_time_us: seq * 40_000,
                deadline_us: 100_000,
                capture_id: CaptureId(1),
            },
            path: PathId(0),
            arrival_us: arrival,
            local_gen_us: seq * 40_000,
            buf: pool.store(&[seq as u8]),
            log_id: None,
        }
    }

    #[test]
    fn gap_tracks_earliest_waiting_unit_and_lowest_seq_deadline() {
        let mut pool = PayloadPool::new(8);
        let mut r = ReorderBuffer::new(8);
        assert!(r.insert(unit(&mut pool, 3, 500)));
        assert!(r.insert(unit(&mut pool, 2, 700)));
        r.refresh_gap();
        let g = r.gap().expect("seq 0 missing with units above");
        assert_eq!((g.at, g.waiting_since, g.next_seq), (0, 500, 2));
        assert_eq!(g.deadline_bound, Some(80_000 + 100_000));
        assert!(r.insert(unit(&mut pool, 1, 900)));
        assert_eq!(
            r.gap().map(|g| g.next_seq),
            Some(1),
            "lower unit tightens the bound"
        );
        assert!(r.skip_missing());
        assert!(!r.skip_missing(), "a stored unit is never skipped");
        let got: Vec<Seq> = core::iter::from_fn(|| r.pop_in_order())
            .map(|u| u.meta.seq)
            .collect();
        assert_eq!(got, [1, 2, 3]);
        r.refresh_gap();
        assert_eq!(r.gap(), None);
    }

    #[test]
    fn window_bounds_and_duplicates() {
        let mut pool = PayloadPool::new(8);
        let mut r = ReorderBuffer::new(4);
        assert_eq!(r.position(4), Position::Ahead);
        assert!(!r.insert(unit(&mut pool, 4, 0)));
        assert!(r.insert(unit(&mut pool, 3, 0)));
        assert!(!r.insert(unit(&mut pool, 3, 1)), "duplicate slot");
        assert!(r.holds(3) && !r.holds(7));
        let mut n = 0;
        r.drain_all(|_| n += 1);
        assert_eq!((n, r.stored()), (1, 0));
        assert_eq!(r.jump_empty(10), 10);
        assert_eq!(r.in_order(), 10);
    }
}
