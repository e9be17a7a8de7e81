//! The sender's unit store: per-modality queues of units waiting for a path, and the
//! retention of reliable units until a CAMP ACK covers them.
//!
//! Units stay here, not in quinn's send buffers, so the scheduler decides as late as
//! possible with fresh path state. Each modality keeps one deque ordered by sequence number:
//! `seq - front.seq` is an entry's index. An entry is encoded once (frame prefix + payload)
//! into a pooled buffer when it is submitted; buffers return to the pool when the unit is
//! acknowledged, dropped, or sent without retention, so steady state allocates nothing;
//! a store that has gone quiet gives them back ([`UnitStore::trim_if_idle`]).

use std::collections::VecDeque;

use camp_wire::{Micros, Modality, Reliability, Seq, SyncIndex, UnitHeader};

use crate::sched::PathSet;

/// Lifecycle of one unit in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitState {
    /// Waiting for its first transmission.
    Queued,
    /// Sent at least once; reliable units stay until acknowledged.
    InFlight,
    /// Waiting for a retransmission on another path (its path failed or stalled).
    Reinject,
    /// Covered by a CAMP ACK.
    Acked,
    /// Sent (droppable, not retained) or dropped: nothing more to do.
    Done,
}

/// One unit and its encoded frame.
#[derive(Debug)]
pub struct StoredUnit {
    /// The decoded header (kept for scheduling and telemetry).
    pub header: UnitHeader,
    /// The complete DATA frame (frame header + unit header + payload).
    pub frame: Vec<u8>,
    /// Current state.
    pub state: UnitState,
    /// Paths the unit was written to.
    pub sent_on: PathSet,
    /// Session-clock time of the first transmission (0 = never).
    pub first_sent_us: Micros,
    /// Session-clock time of the latest transmission (0 = never).
    pub last_sent_us: Micros,
    /// Times the unit was written to a path (first transmission and every copy).
    pub transmissions: u32,
}

/// Where a unit stands at the sender: what a test prints about a reliable unit that was
/// never delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitTrace {
    /// Modality stream.
    pub modality: Modality,
    /// Sequence number.
    pub seq: Seq,
    /// Generation (media) time, session clock.
    pub gen_time_us: Micros,
    /// Lifecycle state.
    pub state: UnitState,
    /// Paths it was written to.
    pub sent_on: PathSet,
    /// Times it was written to a path.
    pub transmissions: u32,
    /// First transmission, session clock (0 = never).
    pub first_sent_us: Micros,
    /// Latest transmission, session clock (0 = never).
    pub last_sent_us: Micros,
}

impl StoredUnit {
    /// Absolute deadline on the session clock, if the unit has one.
    pub fn deadline_us(&self) -> Option<Micros> {
        (self.header.deadline_us != 0)
            .then(|| self.header.gen_time_us + u64::from(self.header.deadline_us))
    }
}

/// Why a unit could not be accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The session already holds its maximum of queued bytes; try again later.
    #[error("session send queue full ({queued} of {limit} bytes)")]
    QueueFull {
        /// Bytes currently held.
        queued: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The payload is larger than a unit may be.
    #[error("unit payload of {0} bytes exceeds the maximum")]
    TooLarge(usize),
}

/// Counters of the unit store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounters {
    /// Units accepted per modality.
    pub submitted: [u64; Modality::COUNT],
    /// Units transmitted for the first time per modality.
    pub sent: [u64; Modality::COUNT],
    /// Retransmissions on another path per modality.
    pub reinjected: [u64; Modality::COUNT],
    /// Droppable units dropped before sending per modality, for either reason below.
    pub dropped: [u64; Modality::COUNT],
    /// Of `dropped`: the scheduler found no path that could deliver the unit by its deadline.
    pub dropped_no_path: [u64; Modality::COUNT],
    /// Of `dropped`: the deadline passed while the unit waited in the store (held for a path
    /// with room, paced, or behind the receiver's window).
    pub dropped_expired: [u64; Modality::COUNT],
    /// Units acknowledged per modality.
    pub acked: [u64; Modality::COUNT],
    /// Reinjections triggered by the end-to-end safety timeout.
    pub safety_reinjections: u64,
    /// Times a reliable unit was held because the peer's reorder window was full.
    pub window_held: [u64; Modality::COUNT],
}

/// A unit the peer acknowledged for the first time (telemetry: per-modality latency).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckedUnit {
    /// Modality stream.
    pub modality: Modality,
    /// Sequence number.
    pub seq: Seq,
    /// Generation time g, session clock.
    pub gen_time_us: Micros,
    /// First transmission, session clock.
    pub first_sent_us: Micros,
}

/// Droppable units remembered after sending, per modality, so that their ACKs still yield
/// latency samples (the units themselves are released at once).
pub const SENT_DROPPABLE_RING: usize = 512;

/// `(seq, gen, first_sent)` of a droppable unit sent; `seq == Seq::MAX` once reported.
type SentDroppable = (Seq, Micros, Micros);

/// Frame buffers of acknowledged or expired units, kept for the next units, up to
/// [`POOL_BYTES`] of capacity for large frames and [`SMALL_POOL_BYTES`] for small ones. A
/// buffer takes the size of the largest unit it ever held, so an unbounded pool (it once
/// held up to 4096 buffers) ended up with as many I-frame-sized buffers as units were ever
/// in flight at once, and a session's memory grew through its turn (~70 KB per second of
/// the standard turn). Past the bound a returned buffer is freed: bursts allocate, the
/// steady state (a deadline's worth of units) does not. Small frames (audio, text) take
/// small buffers: from one stack, an audio unit queued ahead of real time or waiting for
/// its ACK would hold whatever video frame's buffer came back last.
#[derive(Debug, Default)]
struct FramePool {
    small: Vec<Vec<u8>>,
    large: Vec<Vec<u8>>,
    small_bytes: usize,
    large_bytes: usize,
}

/// Capacity the frame pool of one session keeps for large frames, bytes.
pub const POOL_BYTES: usize = 128 * 1024;

/// Frames of at most this many bytes (every audio and text unit) take small buffers.
pub const SMALL_FRAME: usize = 2048;

/// Capacity the frame pool of one session keeps for small frames, bytes (a few hundred
/// audio frames: more than a deadline's worth in flight).
pub const SMALL_POOL_BYTES: usize = 32 * 1024;

impl FramePool {
    /// A buffer for a frame of `len` bytes (of the right class: its capacity may still be
    /// short of `len`, then the frame grows it).
    fn take(&mut self, len: usize) -> Vec<u8> {
        let (stack, bytes) = if len <= SMALL_FRAME {
            (&mut self.small, &mut self.small_bytes)
        } else {
            (&mut self.large, &mut self.large_bytes)
        };
        match stack.pop() {
            Some(f) => {
                *bytes -= f.capacity();
                f
            }
            None => Vec::with_capacity(len),
        }
    }

    fn give(&mut self, frame: Vec<u8>) {
        let cap = frame.capacity();
        let (stack, bytes, bound) = if cap <= SMALL_FRAME {
            (&mut self.small, &mut self.small_bytes, SMALL_POOL_BYTES)
        } else {
            (&mut self.large, &mut self.large_bytes, POOL_BYTES)
        };
        if cap > 0 && *bytes + cap <= bound {
            *bytes += cap;
            stack.push(frame);
        }
    }

    /// Capacity held, bytes.
    fn bytes(&self) -> usize {
        self.small_bytes + self.large_bytes
    }
}

/// A store that took no frame buffer over a whole period this long is idle: it gives back
/// its pooled buffers and the spare capacity of its queues ([`UnitStore::trim_if_idle`]).
/// Far longer than the gaps inside a turn (audio every 20 ms, video every 33 ms), so a
/// session that is talking never trims and its steady state allocates nothing.
pub const IDLE_TRIM_US: Micros = 500_000;

/// Per-session unit store.
#[derive(Debug)]
pub struct UnitStore {
    queues: [VecDeque<StoredUnit>; Modality::COUNT],
    /// Index into `queues[m]` of the first entry that was never transmitted.
    next_unsent: [usize; Modality::COUNT],
    /// Next sequence number to assign per modality.
    next_seq: [Seq; Modality::COUNT],
    /// Units waiting for reinjection, in the order their paths failed.
    reinject: VecDeque<(Modality, Seq)>,
    /// Proactive reinjection deadlines `(at, modality, seq)`, in send order.
    reinject_timers: VecDeque<(Micros, Modality, Seq)>,
    pool: FramePool,
    queued_bytes: usize,
    limit: usize,
    counters: StoreCounters,
    /// Per modality, `SENT_DROPPABLE_RING` entries indexed by `seq % SENT_DROPPABLE_RING`,
    /// allocated when the modality's first droppable unit is sent (reliable modalities never
    /// need theirs) and freed by an idle trim once nothing in it can be reported.
    sent_droppable: [Vec<SentDroppable>; Modality::COUNT],
    /// Per modality: droppable seqs below this were reported or have left the ring.
    droppable_ack_floor: [Seq; Modality::COUNT],
    /// Next idle check of [`trim_if_idle`](Self::trim_if_idle), session clock.
    trim_at_us: Micros,
    /// Whether a frame buffer was taken since the last idle check.
    took_since_check: bool,
    /// The peer's reorder window in units: a reliable unit is not sent before every unit
    /// this far behind it was acknowledged (the receiver would refuse it).
    unit_window: u64,
}

/// Largest payload one unit may carry.
pub const MAX_UNIT_PAYLOAD: usize = camp_wire::MAX_BODY_LEN - camp_wire::UNIT_HEADER_LEN;

/// Application description of a unit to send.
#[derive(Clone, Copy, Debug)]
pub struct UnitSubmit<'a> {
    /// Modality stream the unit belongs to.
    pub modality: Modality,
    /// Reliability class (normally `modality.default_reliability()`).
    pub reliability: Reliability,
    /// Flags (keyframe, end of utterance, end of turn).
    pub flags: camp_wire::UnitFlags,
    /// Sync index k.
    pub sync_index: SyncIndex,
    /// Generation time g on the session clock.
    pub gen_time_us: Micros,
    /// Deadline relative to generation (0 = none).
    pub deadline_us: u32,
    /// Capture / source id.
    pub capture_id: camp_wire::CaptureId,
    /// Media payload.
    pub payload: &'a [u8],
}

impl UnitStore {
    /// An empty store holding at most `limit` bytes of frames.
    pub fn new(limit: usize) -> Self {
        Self {
            queues: Default::default(),
            next_unsent: [0; Modality::COUNT],
            next_seq: [0; Modality::COUNT],
            reinject: VecDeque::new(),
            reinject_timers: VecDeque::new(),
            pool: FramePool::default(),
            queued_bytes: 0,
            limit,
            counters: StoreCounters::default(),
            sent_droppable: Default::default(),
            droppable_ack_floor: [0; Modality::COUNT],
            trim_at_us: 0,
            took_since_check: false,
            unit_window: u64::MAX,
        }
    }

    /// Sets the peer's reorder window (`camp_recv::ReceiverConfig::max_units_ahead`): a
    /// reliable unit `seq` is held while `seq >= oldest unacknowledged + window`, because
    /// the receiver refuses units that far ahead and they would only come back through the
    /// safety timeout. Droppable units are not held (the receiver slides its window).
    pub fn set_unit_window(&mut self, window: u32) {
        self.unit_window = u64::from(window.max(1));
    }

    /// Counters.
    pub fn counters(&self) -> &StoreCounters {
        &self.counters
    }

    /// Bytes of frames held (queued, in flight or waiting for an ACK).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Units held per modality.
    pub fn len(&self, m: Modality) -> usize {
        self.queues[m.index()].len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// Reliable units not yet acknowledged, over all modalities.
    pub fn unacked_reliable(&self) -> usize {
        self.queues
            .iter()
            .flat_map(|q| q.iter())
            .filter(|u| {
                u.header.reliability == Reliability::Reliable && u.state != UnitState::Acked
            })
            .count()
    }

    /// Traces of the reliable units not yet acknowledged, per modality in sequence order.
    pub fn unacked_traces(&self) -> Vec<UnitTrace> {
        self.queues
            .iter()
            .flat_map(|q| q.iter())
            .filter(|u| {
                u.header.reliability == Reliability::Reliable && u.state != UnitState::Acked
            })
            .map(|u| UnitTrace {
                modality: u.header.modality,
                seq: u.header.seq,
                gen_time_us: u.header.gen_time_us,
                state: u.state,
                sent_on: u.sent_on,
                transmissions: u.transmissions,
                first_sent_us: u.first_sent_us,
                last_sent_us: u.last_sent_us,
            })
            .collect()
    }

    /// Accepts a unit, assigns its sequence number and encodes its frame.
    pub fn submit(&mut self, unit: &UnitSubmit<'_>) -> Result<Seq, SubmitError> {
        if unit.payload.len() > MAX_UNIT_PAYLOAD {
            return Err(SubmitError::TooLarge(unit.payload.len()));
        }
        let frame_len = camp_wire::DATA_PREFIX_LEN + unit.payload.len();
        if self.queued_bytes + frame_len > self.limit {
            return Err(SubmitError::QueueFull {
                queued: self.queued_bytes,
                limit: self.limit,
            });
        }
        let m = unit.modality.index();
        let seq = self.next_seq[m];
        let header = UnitHeader {
            modality: unit.modality,
            reliability: unit.reliability,
            flags: unit.flags,
            sync_index: unit.sync_index,
            seq,
            gen_time_us: unit.gen_time_us,
            deadline_us: unit.deadline_us,
            capture_id: unit.capture_id,
            payload_len: unit.payload.len() as u32,
        };
        let mut frame = self.pool.take(frame_len);
        self.took_since_check = true;
        frame.clear();
        frame.resize(camp_wire::DATA_PREFIX_LEN, 0);
        // The prefix length is fixed and the payload was bounded above, so this cannot fail.
        let written = header
            .emit_prefix(&mut frame)
            .map_err(|_| SubmitError::TooLarge(0))?;
        debug_assert_eq!(written, camp_wire::DATA_PREFIX_LEN);
        frame.extend_from_slice(unit.payload);
        self.queued_bytes += frame.len();
        self.next_seq[m] = seq + 1;
        self.queues[m].push_back(StoredUnit {
            header,
            frame,
            state: UnitState::Queued,
            sent_on: PathSet::EMPTY,
            first_sent_us: 0,
            last_sent_us: 0,
            transmissions: 0,
        });
        self.counters.submitted[m] += 1;
        Ok(seq)
    }

    fn index_of(&self, m: Modality, seq: Seq) -> Option<usize> {
        let q = &self.queues[m.index()];
        let front = q.front()?.header.seq;
        let idx = usize::try_from(seq.checked_sub(front)?).ok()?;
        (idx < q.len()).then_some(idx)
    }

    /// The unit with this sequence number, if still held.
    pub fn get(&self, m: Modality, seq: Seq) -> Option<&StoredUnit> {
        self.index_of(m, seq).map(|i| &self.queues[m.index()][i])
    }

    /// Next unit to place: reinjections first (oldest failure first), then among the
    /// never-sent heads of each modality the one generated first (ties: audio, text, video),
    /// skipping modalities in `skip`. Returns (modality, seq, is_reinjection).
    pub fn next_candidate(
        &mut self,
        skip: [bool; Modality::COUNT],
    ) -> Option<(Modality, Seq, bool)> {
        while let Some(&(m, seq)) = self.reinject.front() {
            match self.get(m, seq) {
                Some(u) if u.state == UnitState::Reinject => {
                    if skip[m.index()] {
                        break;
                    }
                    return Some((m, seq, true));
                }
                _ => {
                    self.reinject.pop_front();
                }
            }
        }
        const ORDER: [Modality; 3] = [Modality::Audio, Modality::Text, Modality::Video];
        let mut best: Option<(Micros, usize, Modality, Seq)> = None;
        for (rank, m) in ORDER.into_iter().enumerate() {
            if skip[m.index()] {
                continue;
            }
            let q = &self.queues[m.index()];
            if let Some(u) = q.get(self.next_unsent[m.index()]) {
                let front = q.front().map_or(u.header.seq, |f| f.header.seq);
                if u.header.reliability == Reliability::Reliable
                    && u.header.seq - front >= self.unit_window
                {
                    self.counters.window_held[m.index()] += 1;
                    continue;
                }
                let key = (u.header.gen_time_us, rank);
                if best.is_none_or(|b| key < (b.0, b.1)) {
                    best = Some((key.0, key.1, m, u.header.seq));
                }
            }
        }
        best.map(|(_, _, m, seq)| (m, seq, false))
    }

    /// Records that the unit was written to `slot`. Droppable units are released at once
    /// (never reinjected); reliable ones stay until acknowledged.
    pub fn mark_sent(&mut self, m: Modality, seq: Seq, slot: usize, now_us: Micros) {
        let Some(i) = self.index_of(m, seq) else {
            return;
        };
        let mi = m.index();
        let u = &mut self.queues[mi][i];
        let first = u.state == UnitState::Queued;
        u.sent_on = u.sent_on.with(slot);
        u.last_sent_us = now_us;
        u.transmissions += 1;
        if first {
            u.first_sent_us = now_us;
            self.counters.sent[mi] += 1;
        } else if u.state == UnitState::Reinject {
            self.counters.reinjected[mi] += 1;
        }
        if u.header.reliability == Reliability::Reliable {
            u.state = UnitState::InFlight;
        } else {
            if first {
                let ring = &mut self.sent_droppable[mi];
                if ring.is_empty() {
                    ring.resize(SENT_DROPPABLE_RING, (Seq::MAX, 0, 0));
                }
                ring[seq as usize % SENT_DROPPABLE_RING] = (seq, u.header.gen_time_us, now_us);
            }
            u.state = UnitState::Done;
            let frame = std::mem::take(&mut u.frame);
            self.release(frame);
        }
        if first && i == self.next_unsent[mi] {
            self.advance_unsent(mi);
        }
        if self.reinject.front() == Some(&(m, seq)) {
            self.reinject.pop_front();
        }
        self.pop_finished(mi);
    }

    /// Drops a droppable unit that the scheduler found no path in time for.
    pub fn drop_unit(&mut self, m: Modality, seq: Seq) {
        if self.discard(m, seq) {
            self.counters.dropped_no_path[m.index()] += 1;
        }
    }

    /// Drops a droppable unit that will not be sent. Returns whether it was dropped.
    fn discard(&mut self, m: Modality, seq: Seq) -> bool {
        let Some(i) = self.index_of(m, seq) else {
            return false;
        };
        let mi = m.index();
        let u = &mut self.queues[mi][i];
        if u.header.reliability == Reliability::Reliable {
            debug_assert!(false, "reliable units are never dropped");
            return false;
        }
        let was_unsent = u.state == UnitState::Queued;
        u.state = UnitState::Done;
        let frame = std::mem::take(&mut u.frame);
        self.release(frame);
        self.counters.dropped[mi] += 1;
        if was_unsent && i == self.next_unsent[mi] {
            self.advance_unsent(mi);
        }
        self.pop_finished(mi);
        true
    }

    fn advance_unsent(&mut self, mi: usize) {
        let q = &self.queues[mi];
        let mut i = self.next_unsent[mi];
        while i < q.len() && q[i].state != UnitState::Queued {
            i += 1;
        }
        self.next_unsent[mi] = i;
    }

    fn release(&mut self, frame: Vec<u8>) {
        self.queued_bytes -= frame.len();
        self.pool.give(frame);
    }

    fn pop_finished(&mut self, mi: usize) {
        while let Some(u) = self.queues[mi].front() {
            if !matches!(u.state, UnitState::Acked | UnitState::Done) {
                break;
            }
            let mut u = self.queues[mi].pop_front().expect("front exists");
            let frame = std::mem::take(&mut u.frame);
            if frame.capacity() > 0 {
                self.release(frame);
            }
            self.next_unsent[mi] = self.next_unsent[mi].saturating_sub(1);
        }
    }

    /// Applies a CAMP ACK: every seq below `cumulative` and every seq in `ranges` was
    /// received. Returns the number of units newly acknowledged.
    pub fn on_ack(
        &mut self,
        m: Modality,
        cumulative: Seq,
        ranges: impl Iterator<Item = std::ops::Range<Seq>> + Clone,
    ) -> usize {
        self.on_ack_observed(m, cumulative, ranges, |_| {})
    }

    /// [`on_ack`](Self::on_ack), calling `observe` once for every unit acknowledged for the
    /// first time: reliable units the store holds, and droppable units still remembered in
    /// the last [`SENT_DROPPABLE_RING`] sent.
    pub fn on_ack_observed(
        &mut self,
        m: Modality,
        cumulative: Seq,
        ranges: impl Iterator<Item = std::ops::Range<Seq>> + Clone,
        mut observe: impl FnMut(AckedUnit),
    ) -> usize {
        let mi = m.index();
        self.observe_droppable(m, cumulative, ranges.clone(), &mut observe);
        let mut newly = 0;
        let Some(front) = self.queues[mi].front().map(|u| u.header.seq) else {
            return 0;
        };
        let mut ack_range = |q: &mut VecDeque<StoredUnit>,
                             pool: &mut FramePool,
                             bytes: &mut usize,
                             r: std::ops::Range<Seq>| {
            let lo = r.start.max(front);
            let hi = r.end.min(front + q.len() as u64);
            for seq in lo..hi {
                let u = &mut q[(seq - front) as usize];
                if matches!(u.state, UnitState::InFlight | UnitState::Reinject) {
                    u.state = UnitState::Acked;
                    let frame = std::mem::take(&mut u.frame);
                    *bytes -= frame.len();
                    pool.give(frame);
                    newly += 1;
                    observe(AckedUnit {
                        modality: m,
                        seq,
                        gen_time_us: u.header.gen_time_us,
                        first_sent_us: u.first_sent_us,
                    });
                }
            }
        };
        let q = &mut self.queues[mi];
        ack_range(q, &mut self.pool, &mut self.queued_bytes, 0..cumulative);
        for r in ranges {
            ack_range(q, &mut self.pool, &mut self.queued_bytes, r);
        }
        self.counters.acked[mi] += newly as u64;
        self.pop_finished(mi);
        newly
    }

    /// Reports acknowledged droppable units from the sent ring. Each ACK looks at no more
    /// than the ring's size per range, and the cumulative part only above the floor of what
    /// was already reported, so the cost per ACK stays bounded.
    fn observe_droppable(
        &mut self,
        m: Modality,
        cumulative: Seq,
        ranges: impl Iterator<Item = std::ops::Range<Seq>>,
        observe: &mut impl FnMut(AckedUnit),
    ) {
        let mi = m.index();
        let top = self.next_seq[mi];
        let ring = &mut self.sent_droppable[mi];
        if ring.is_empty() {
            // No droppable unit sent (reliable streams never enter the ring), or none left
            // that could be reported: nothing to look up.
            return;
        }
        let oldest = top.saturating_sub(SENT_DROPPABLE_RING as Seq);
        let floor = self.droppable_ack_floor[mi].max(oldest);
        let mut visit = |r: std::ops::Range<Seq>| {
            for seq in r.start.max(floor)..r.end.min(top) {
                let e = &mut ring[seq as usize % SENT_DROPPABLE_RING];
                if e.0 == seq {
                    observe(AckedUnit {
                        modality: m,
                        seq,
                        gen_time_us: e.1,
                        first_sent_us: e.2,
                    });
                    e.0 = Seq::MAX;
                }
            }
        };
        visit(0..cumulative);
        for r in ranges {
            visit(r);
        }
        self.droppable_ack_floor[mi] = floor.max(cumulative.min(top));
    }

    /// Schedules for reinjection every reliable unit in flight that was sent only on paths
    /// in `failed` (their only copies are on failing paths). Returns how many.
    pub fn reinject_from(&mut self, failed: PathSet) -> usize {
        let mut n = 0;
        for m in Modality::ALL {
            for u in self.queues[m.index()].iter_mut() {
                if u.state == UnitState::InFlight
                    && !u.sent_on.is_empty()
                    && u.sent_on.iter().all(|s| failed.contains(s))
                {
                    u.state = UnitState::Reinject;
                    self.reinject.push_back((m, u.header.seq));
                    n += 1;
                }
            }
        }
        n
    }

    /// Arms a proactive reinjection of a reliable unit at `at_us` unless it is acknowledged
    /// (or already duplicated) by then.
    pub fn arm_reinjection(&mut self, m: Modality, seq: Seq, at_us: Micros) {
        self.reinject_timers.push_back((at_us, m, seq));
    }

    /// Earliest armed proactive reinjection.
    pub fn next_reinjection_timer(&self) -> Option<Micros> {
        self.reinject_timers.iter().map(|t| t.0).min()
    }

    /// Fires due proactive reinjections: units still in flight on a single path are queued
    /// for a copy on another path. Returns how many.
    pub fn fire_reinjection_timers(&mut self, now_us: Micros) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.reinject_timers.len() {
            let (at, m, seq) = self.reinject_timers[i];
            if at > now_us {
                i += 1;
                continue;
            }
            self.reinject_timers.remove(i);
            let Some(idx) = self.index_of(m, seq) else {
                continue;
            };
            let u = &mut self.queues[m.index()][idx];
            if u.state == UnitState::InFlight && u.sent_on.len() == 1 {
                u.state = UnitState::Reinject;
                self.reinject.push_back((m, seq));
                n += 1;
            }
        }
        n
    }

    /// End-to-end safety net: a reliable unit in flight whose latest transmission is older
    /// than `timeout_us` is queued for reinjection even though no path looks failed (its
    /// copy may have fallen into a hole no transport signal reports, e.g. a receiver that
    /// could not attribute it). Returns how many.
    pub fn fire_safety_timeouts(&mut self, now_us: Micros, timeout_us: u64) -> usize {
        let mut n = 0;
        for m in Modality::ALL {
            for u in self.queues[m.index()].iter_mut() {
                if u.state == UnitState::InFlight && u.last_sent_us + timeout_us <= now_us {
                    u.state = UnitState::Reinject;
                    self.reinject.push_back((m, u.header.seq));
                    n += 1;
                }
            }
        }
        self.counters.safety_reinjections += n as u64;
        n
    }

    /// When [`fire_safety_timeouts`](Self::fire_safety_timeouts) would next fire something,
    /// judged from the oldest units of each modality (units are sent roughly in sequence
    /// order, so this stays cheap enough to ask on every event; the firing itself scans all).
    pub fn next_safety_timeout(&self, timeout_us: u64) -> Option<Micros> {
        const LOOK: usize = 8;
        self.queues
            .iter()
            .flat_map(|q| q.iter().take(LOOK))
            .filter(|u| u.state == UnitState::InFlight)
            .map(|u| u.last_sent_us + timeout_us)
            .min()
    }

    /// Gives back what an idle store keeps for the next burst. When no frame buffer was
    /// taken over a whole [`IDLE_TRIM_US`]: the pooled buffers, the capacity of empty
    /// queues, and each sent-droppable ring from which no ACK can report anything any more.
    /// Cheap enough to call on every scheduling pass (it looks once per period); returns
    /// whether it trimmed. A trimmed store allocates again at its next burst.
    pub fn trim_if_idle(&mut self, now_us: Micros) -> bool {
        if now_us < self.trim_at_us {
            return false;
        }
        self.trim_at_us = now_us + IDLE_TRIM_US;
        if std::mem::take(&mut self.took_since_check) {
            return false;
        }
        self.pool = FramePool::default();
        for q in &mut self.queues {
            if q.is_empty() {
                *q = VecDeque::new();
            }
        }
        if self.reinject.is_empty() {
            self.reinject = VecDeque::new();
        }
        if self.reinject_timers.is_empty() {
            self.reinject_timers = VecDeque::new();
        }
        for m in Modality::ALL {
            let mi = m.index();
            // As in `observe_droppable`: seqs below this are never reported.
            let floor = self.droppable_ack_floor[mi]
                .max(self.next_seq[mi].saturating_sub(SENT_DROPPABLE_RING as Seq));
            if self.sent_droppable[mi]
                .iter()
                .all(|e| e.0 == Seq::MAX || e.0 < floor)
            {
                self.sent_droppable[mi] = Vec::new();
            }
        }
        true
    }

    /// Bytes of capacity the store keeps outside its units' frames: the frame pool, the
    /// queues' and reinjection lists' capacity and the sent-droppable rings.
    pub fn spare_bytes(&self) -> usize {
        use std::mem::size_of;
        self.pool.bytes()
            + self.queues.iter().map(VecDeque::capacity).sum::<usize>() * size_of::<StoredUnit>()
            + self.reinject.capacity() * size_of::<(Modality, Seq)>()
            + self.reinject_timers.capacity() * size_of::<(Micros, Modality, Seq)>()
            + self.sent_droppable.iter().map(Vec::capacity).sum::<usize>()
                * size_of::<SentDroppable>()
    }

    /// Droppable units still queued whose deadline is before `now_us`: dropped and counted.
    pub fn expire(&mut self, now_us: Micros) -> usize {
        self.expire_observed(now_us, |_, _| {})
    }

    /// [`expire`](Self::expire), calling `dropped` with each unit it drops.
    pub fn expire_observed(
        &mut self,
        now_us: Micros,
        mut dropped: impl FnMut(Modality, Seq),
    ) -> usize {
        let mut n = 0;
        for m in Modality::ALL {
            let mi = m.index();
            loop {
                let i = self.next_unsent[mi];
                let Some(u) = self.queues[mi].get(i) else {
                    break;
                };
                let expired = u.header.reliability == Reliability::Droppable
                    && u.deadline_us().is_some_and(|d| d < now_us);
                if !expired {
                    break;
                }
                let seq = u.header.seq;
                if self.discard(m, seq) {
                    self.counters.dropped_expired[mi] += 1;
                    dropped(m, seq);
                }
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_wire::{CaptureId, UnitFlags};

    fn submit(s: &mut UnitStore, m: Modality, g: u64, len: usize) -> Seq {
        s.submit(&UnitSubmit {
            modality: m,
            reliability: m.default_reliability(),
            flags: UnitFlags::empty(),
            sync_index: (g / 40_000) as u32,
            gen_time_us: g,
            deadline_us: 150_000,
            capture_id: CaptureId(1),
            payload: &vec![0xAB; len],
        })
        .expect("room")
    }

    #[test]
    fn frame_pool_keeps_at_most_its_byte_bound() {
        let mut pool = FramePool::default();
        for _ in 0..64 {
            pool.give(Vec::with_capacity(16 * 1024));
        }
        assert_eq!(pool.large.len(), POOL_BYTES / (16 * 1024));
        assert!(pool.bytes() <= POOL_BYTES);
        let f = pool.take(10_000);
        assert_eq!(f.capacity(), 16 * 1024);
        assert_eq!(pool.bytes(), POOL_BYTES - 16 * 1024);
        pool.give(Vec::new());
        assert_eq!(
            pool.large.len(),
            POOL_BYTES / (16 * 1024) - 1,
            "empty buffers are not kept"
        );
        // A small frame does not take a large buffer, and small buffers have their own bound.
        let small = pool.take(200);
        assert_eq!(small.capacity(), 200);
        for _ in 0..1_000 {
            pool.give(Vec::with_capacity(200));
        }
        assert_eq!(pool.small.len(), SMALL_POOL_BYTES / 200);
        assert_eq!(pool.take(100).capacity(), 200);
        while !pool.large.is_empty() {
            pool.take(SMALL_FRAME + 1);
        }
        while !pool.small.is_empty() {
            pool.take(1);
        }
        assert_eq!((pool.bytes(), pool.take(0).capacity()), (0, 0));
    }

    #[test]
    fn candidates_follow_generation_order_with_audio_first_on_ties() {
        let mut s = UnitStore::new(1 << 20);
        submit(&mut s, Modality::Video, 10, 100);
        submit(&mut s, Modality::Text, 10, 10);
        submit(&mut s, Modality::Audio, 10, 60);
        submit(&mut s, Modality::Audio, 5, 60);
        // Audio seq 0 was generated at 10, audio seq 1 at 5: per-modality order is by seq, so
        // audio's head is seq 0 (gen 10), tied with text and video: audio wins the tie.
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Audio, 0, false))
        );
        s.mark_sent(Modality::Audio, 0, 0, 20);
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Audio, 1, false))
        );
        s.mark_sent(Modality::Audio, 1, 0, 20);
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Text, 0, false))
        );
        assert_eq!(
            s.next_candidate([false, true, true]),
            Some((Modality::Text, 0, false))
        );
        assert_eq!(
            s.next_candidate([true, true, false]),
            Some((Modality::Video, 0, false))
        );
    }

    #[test]
    fn reliable_units_are_kept_until_acked_and_reinjected_when_their_path_fails() {
        let mut s = UnitStore::new(1 << 20);
        for i in 0..4 {
            submit(&mut s, Modality::Text, i, 20);
        }
        for seq in 0..4 {
            s.mark_sent(Modality::Text, seq, (seq % 2) as usize, 1);
        }
        assert_eq!(s.unacked_reliable(), 4);
        assert_eq!(s.on_ack(Modality::Text, 1, std::iter::once(2..3)), 2);
        assert_eq!(
            s.len(Modality::Text),
            3,
            "seq 0 popped, 1..4 held (1 and 3 unacked)"
        );
        // Path 1 carried seq 1 and 3.
        assert_eq!(s.reinject_from(PathSet::single(1)), 2);
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Text, 1, true))
        );
        s.mark_sent(Modality::Text, 1, 0, 2);
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Text, 3, true))
        );
        s.mark_sent(Modality::Text, 3, 0, 2);
        assert_eq!(s.next_candidate([false; 3]), None);
        assert_eq!(s.counters().reinjected[0], 2);
        assert_eq!(s.on_ack(Modality::Text, 4, std::iter::empty()), 2);
        assert!(s.is_empty());
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn safety_timeout_reinjects_units_unacknowledged_for_too_long() {
        let mut s = UnitStore::new(1 << 20);
        submit(&mut s, Modality::Audio, 0, 60);
        submit(&mut s, Modality::Audio, 1, 60);
        s.mark_sent(Modality::Audio, 0, 0, 1_000);
        s.mark_sent(Modality::Audio, 1, 0, 500_000);
        assert_eq!(s.next_safety_timeout(1_000_000), Some(1_001_000));
        assert_eq!(s.fire_safety_timeouts(1_000_999, 1_000_000), 0);
        assert_eq!(s.fire_safety_timeouts(1_001_000, 1_000_000), 1);
        assert_eq!(
            s.next_candidate([false; 3]),
            Some((Modality::Audio, 0, true))
        );
        s.mark_sent(Modality::Audio, 0, 1, 1_001_000);
        assert_eq!(s.next_safety_timeout(1_000_000), Some(1_500_000));
        assert_eq!(s.counters().safety_reinjections, 1);
    }

    #[test]
    fn units_sent_on_a_surviving_path_too_are_not_reinjected() {
        let mut s = UnitStore::new(1 << 20);
        submit(&mut s, Modality::Audio, 0, 60);
        s.mark_sent(Modality::Audio, 0, 0, 1);
        s.mark_sent(Modality::Audio, 0, 1, 1);
        assert_eq!(s.reinject_from(PathSet::single(0)), 0);
        assert_eq!(s.reinject_from(PathSet::single(0).with(1)), 1);
    }

    #[test]
    fn droppable_units_are_released_on_send_and_expire_past_deadline() {
        let mut s = UnitStore::new(1 << 20);
        submit(&mut s, Modality::Video, 0, 1000);
        submit(&mut s, Modality::Video, 40_000, 1000);
        s.mark_sent(Modality::Video, 0, 0, 1);
        assert_eq!(s.len(Modality::Video), 1);
        assert_eq!(s.expire(100_000), 0);
        assert_eq!(s.expire(190_001), 1);
        assert!(s.is_empty());
        assert_eq!(s.counters().dropped[2], 1);
        assert_eq!(s.counters().dropped_expired[2], 1);
        assert_eq!(s.counters().dropped_no_path[2], 0);
        assert_eq!(s.queued_bytes(), 0);
    }

    #[test]
    fn acks_report_each_unit_once_reliable_and_droppable() {
        let mut s = UnitStore::new(1 << 20);
        for g in 0..4 {
            submit(&mut s, Modality::Text, g * 1000, 10);
            submit(&mut s, Modality::Video, g * 1000, 10);
        }
        for seq in 0..4 {
            s.mark_sent(Modality::Text, seq, 0, 100 + seq);
            s.mark_sent(Modality::Video, seq, 1, 200 + seq);
        }
        let mut seen = Vec::new();
        // Text: cumulative 1 plus range 2..3; video: range 1..3 only.
        s.on_ack_observed(Modality::Text, 1, std::iter::once(2..3), |u| seen.push(u));
        s.on_ack_observed(Modality::Video, 0, std::iter::once(1..3), |u| seen.push(u));
        let got: Vec<(Modality, Seq, Micros, Micros)> = seen
            .iter()
            .map(|u| (u.modality, u.seq, u.gen_time_us, u.first_sent_us))
            .collect();
        assert_eq!(
            got,
            vec![
                (Modality::Text, 0, 0, 100),
                (Modality::Text, 2, 2000, 102),
                (Modality::Video, 1, 1000, 201),
                (Modality::Video, 2, 2000, 202),
            ]
        );
        // Repeated and overlapping ACKs report only what is new.
        seen.clear();
        s.on_ack_observed(Modality::Text, 4, std::iter::empty(), |u| seen.push(u));
        s.on_ack_observed(Modality::Video, 4, std::iter::once(1..3), |u| seen.push(u));
        let seqs: Vec<(Modality, Seq)> = seen.iter().map(|u| (u.modality, u.seq)).collect();
        assert_eq!(
            seqs,
            vec![
                (Modality::Text, 1),
                (Modality::Text, 3),
                (Modality::Video, 0),
                (Modality::Video, 3)
            ]
        );
        seen.clear();
        s.on_ack_observed(Modality::Video, 4, std::iter::empty(), |u| seen.push(u));
        assert!(seen.is_empty());
        // A forged huge cumulative point costs at most the ring and reports nothing new.
        s.on_ack_observed(Modality::Video, u64::MAX - 1, std::iter::empty(), |u| {
            seen.push(u)
        });
        assert!(seen.is_empty());
    }

    #[test]
    fn droppable_acks_older_than_the_ring_are_not_reported() {
        let mut s = UnitStore::new(64 << 20);
        let n = SENT_DROPPABLE_RING as u64 + 10;
        for g in 0..n {
            submit(&mut s, Modality::Video, g, 10);
            s.mark_sent(Modality::Video, g, 0, g);
        }
        let mut seen = Vec::new();
        s.on_ack_observed(Modality::Video, n, std::iter::empty(), |u| seen.push(u.seq));
        assert_eq!(seen.len(), SENT_DROPPABLE_RING);
        assert_eq!(seen.first(), Some(&10));
    }

    #[test]
    fn sent_droppable_rings_exist_only_for_droppable_modalities_until_idle() {
        let mut s = UnitStore::new(64 << 20);
        for g in 0..4 {
            for m in Modality::ALL {
                let seq = submit(&mut s, m, g, 10);
                s.mark_sent(m, seq, 0, g);
            }
        }
        let rings = |s: &UnitStore| s.sent_droppable.each_ref().map(Vec::len);
        let video = Modality::Video.index();
        let mut expect = [0; Modality::COUNT];
        expect[video] = SENT_DROPPABLE_RING;
        assert_eq!(rings(&s), expect, "only video is droppable by default");
        // Units taken in this period: no trim. Then a quiet period, but video seq 3 may
        // still be reported by a late ACK: the ring stays, the pool goes.
        assert!(!s.trim_if_idle(100));
        s.on_ack(Modality::Video, 3, std::iter::empty());
        assert!(s.pool.bytes() > 0);
        assert!(s.trim_if_idle(100 + IDLE_TRIM_US));
        assert_eq!((s.pool.bytes(), rings(&s)), (0, expect));
        let mut seen = Vec::new();
        s.on_ack_observed(Modality::Video, 4, std::iter::empty(), |u| seen.push(u.seq));
        assert_eq!(seen, vec![3]);
        // Nothing left to report: the next idle check frees the ring; a new droppable
        // unit brings it back.
        assert!(!s.trim_if_idle(100 + IDLE_TRIM_US + 1));
        assert!(s.trim_if_idle(100 + 2 * IDLE_TRIM_US));
        assert_eq!(rings(&s), [0; Modality::COUNT]);
        let seq = submit(&mut s, Modality::Video, 10, 10);
        s.mark_sent(Modality::Video, seq, 0, 10);
        assert_eq!(rings(&s), expect);
        seen.clear();
        s.on_ack_observed(Modality::Video, seq + 1, std::iter::empty(), |u| {
            seen.push(u.seq)
        });
        assert_eq!(seen, vec![seq]);
    }

    #[test]
    fn reliable_units_wait_for_the_peers_reorder_window() {
        let mut s = UnitStore::new(1 << 20);
        s.set_unit_window(3);
        for g in 0..5 {
            submit(&mut s, Modality::Text, g, 10);
            submit(&mut s, Modality::Video, g, 10);
        }
        let none = [false; Modality::COUNT];
        let mut sent = Vec::new();
        while let Some((m, seq, _)) = s.next_candidate(none) {
            s.mark_sent(m, seq, 0, 1);
            sent.push((m, seq));
        }
        // Text 0..3 fit the window; 3 and 4 wait; video is never held.
        let text: Vec<Seq> = sent
            .iter()
            .filter(|(m, _)| *m == Modality::Text)
            .map(|x| x.1)
            .collect();
        let video = sent.iter().filter(|(m, _)| *m == Modality::Video).count();
        assert_eq!((text, video), (vec![0, 1, 2], 5));
        assert!(s.counters().window_held[Modality::Text.index()] > 0);
        // Acknowledging the oldest opens the window by one.
        s.on_ack(Modality::Text, 1, std::iter::empty());
        assert_eq!(s.next_candidate(none), Some((Modality::Text, 3, false)));
        s.mark_sent(Modality::Text, 3, 0, 2);
        assert_eq!(s.next_candidate(none), None);
        // An out-of-order ACK does not open it: the receiver's window starts at its
        // first missing unit.
        s.on_ack(Modality::Text, 1, std::iter::once(2..4));
        assert_eq!(s.next_candidate(none), None);
        s.on_ack(Modality::Text, 4, std::iter::empty());
        assert_eq!(s.next_candidate(none), Some((Modality::Text, 4, false)));
    }

    #[test]
    fn queue_limit_refuses_instead_of_losing() {
        let mut s = UnitStore::new(2 * (camp_wire::DATA_PREFIX_LEN + 100));
        submit(&mut s, Modality::Text, 0, 100);
        submit(&mut s, Modality::Text, 1, 100);
        let err = s
            .submit(&UnitSubmit {
                modality: Modality::Text,
                reliability: Reliability::Reliable,
                flags: UnitFlags::empty(),
                sync_index: 0,
                gen_time_us: 2,
                deadline_us: 0,
                capture_id: CaptureId::COMPOSED,
                payload: &[0; 100],
            })
            .unwrap_err();
        assert!(matches!(err, SubmitError::QueueFull { .. }));
        assert_eq!(s.len(Modality::Text), 2);
    }

    #[test]
    fn each_drop_is_counted_under_its_reason_once() {
        let mut s = UnitStore::new(1 << 20);
        submit(&mut s, Modality::Video, 0, 1000);
        submit(&mut s, Modality::Video, 40_000, 1000);
        s.drop_unit(Modality::Video, 0);
        s.drop_unit(Modality::Video, 0); // already gone: not counted again
        assert_eq!(s.expire(240_001), 1);
        let c = s.counters();
        assert_eq!(
            (c.dropped_no_path[2], c.dropped_expired[2], c.dropped[2]),
            (1, 1, 2)
        );
    }
}
