//! Receiver side of Consistency-Aware Multipath Transport (draft-song-tsvwg-camp-00), sans-IO.
//!
//! A [`Receiver`] takes decoded units of the three per-modality streams (text, audio, video)
//! as they arrive over any path, and owns everything the client does with them until they are
//! presented (draft §4.1.3, §4.4):
//!
//! - payload storage in pooled buffers (no allocation per unit in steady state);
//! - per-stream reordering by sequence number, deduplication of units reinjected on a second
//!   path, and a bounded window (reliable units too far ahead are refused and not
//!   acknowledged, so the sender resends them; droppable ones push the window forward);
//! - CAMP ACKs: a cumulative point plus up to [`MAX_ACK_RANGES`] ranges per stream;
//! - loss inference for droppable streams: a gap is declared lost once a later unit has waited
//!   `max(path_delta / 2, min RTT, min_gap_wait)` over the paths that recently carried the stream
//!   (MP_RTT rule of draft-ietf-tsvwg-multipath-dccp-11 §4.2.7) or once the missing unit's deadline has certainly passed; reliable streams never
//!   skip a gap;
//! - alignment: a [`PlayoutPolicy`] decides each unit's presentation time;
//! - measurement: the draft's `L`, `Delta_k` and `C` (§3.1.4), A/V presentation offsets
//!   against perception thresholds, and periodic [`FeedbackReport`]s for the sender.
//!
//! The receiver makes no system calls and never reads a clock: the caller passes the local
//! time (`Micros`, µs) into every `on_*`/`handle_*`/`poll_*` call, calls
//! [`Receiver::handle_timeout`] when [`Receiver::poll_timeout`] says so, and drains the
//! `poll_*` outputs. Sender timestamps are mapped to local time with
//! [`Receiver::set_clock_offset`].
#![forbid(unsafe_code)]

mod ack;
mod config;
mod error;
mod feedback;
mod metrics;
mod paths;
pub mod playout;
mod pool;
mod present;
mod reorder;

pub use ack::{AckToSend, MAX_ACK_RANGES};
pub use camp_wire::{CaptureId, Micros, Modality, PathId, Reliability, Seq, SyncIndex, UnitFlags};
pub use config::{PlayoutPolicy, ReceiverConfig};
pub use error::RecvError;
pub use metrics::{
    ArrivalRecord, FeedbackReport, LatencySummary, ModalitySummary, RecvCounters, RecvMetrics,
    RecvSummary, SYNC_GROUP_WINDOW, inside_bt1359, inside_is191,
};
pub use playout::{PlayedUnit, TransportHint};

use ack::{AckRanges, AckTimer};
use feedback::{FeedbackClock, PlayoutState};
use metrics::{GroupDone, SyncGroups};
use paths::PathTable;
use playout::Alignment;
use pool::{BufId, PayloadPool};
use present::{PresentQueue, Queued};
use reorder::{Position, ReorderBuffer, StoredUnit};

/// Metadata of one received unit, as decoded from its CAMP data header
/// (draft-song-tsvwg-camp-00 §3.1.1 data model, §4.2 stream format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitMeta {
    /// Stream the unit belongs to.
    pub modality: Modality,
    /// Reliability class of the stream (`r_m`); the latest unit's value governs the stream.
    pub reliability: Reliability,
    /// Keyframe / end-of-utterance / end-of-turn flags.
    pub flags: UnitFlags,
    /// Semantic synchronisation index `k`; non-decreasing along a stream's seqs.
    pub sync_index: SyncIndex,
    /// Per-stream sequence number.
    pub seq: Seq,
    /// Generation time `g_m,k` on the sender clock.
    pub gen_time_us: Micros,
    /// Deadline `delta_m` relative to `gen_time_us`; 0 means none.
    pub deadline_us: u32,
    /// Capture the unit carries.
    pub capture_id: CaptureId,
}

/// How [`Receiver::on_unit`] took a unit it did not refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// First copy: stored, and delivered as soon as the units below it are.
    Stored,
    /// A copy of a unit already received (reinjection): counted and acknowledged, not
    /// delivered again.
    Duplicate,
    /// A droppable unit whose seq had already been declared lost: acknowledged and measured,
    /// not delivered (its place in the stream is gone).
    TooLate,
}

/// Receive state of one stream.
#[derive(Debug)]
struct Stream {
    reorder: ReorderBuffer,
    ack: AckRanges,
    ack_timer: AckTimer,
    reliability: Reliability,
    /// Sync groups below this index are complete for this stream.
    complete_below: u64,
    /// A unit of this stream has arrived.
    seen: bool,
}

/// The CAMP receiver: reorder, dedup, ACK, loss inference, alignment and metrics for one
/// session (see the crate docs).
#[derive(Debug)]
pub struct Receiver {
    cfg: ReceiverConfig,
    streams: [Stream; Modality::COUNT],
    pool: PayloadPool,
    queue: PresentQueue,
    align: Alignment,
    groups: SyncGroups,
    metrics: RecvMetrics,
    paths: PathTable,
    clock_offset_us: i64,
    /// Buffer of the unit last returned by `poll_playout`, freed on the next call.
    pending_release: Option<BufId>,
    ack_cursor: usize,
    feedback: FeedbackClock,
    finished: bool,
    first_unit_at: Option<Micros>,
    log: Vec<ArrivalRecord>,
    log_base: u64,
}

impl Receiver {
    /// A receiver for one session; out-of-range config values are repaired as documented on
    /// [`ReceiverConfig`]. All steady-state memory is reserved here.
    pub fn new(config: ReceiverConfig) -> Self {
        let cfg = config.normalised();
        let window = cfg.max_units_ahead;
        let stream = |m: Modality| Stream {
            reorder: ReorderBuffer::new(window),
            // A reliable stream holds at most window/2 ranges above its in-order point,
            // which equals its cumulative point, so this capacity never forgets one.
            ack: AckRanges::new(window as usize / 2 + 2),
            ack_timer: AckTimer::default(),
            reliability: m.default_reliability(),
            complete_below: 0,
            seen: false,
        };
        let held = (cfg.max_buffered_units as usize).min(3 * window as usize + 4096);
        Receiver {
            streams: Modality::ALL.map(stream),
            pool: PayloadPool::new(held),
            queue: PresentQueue::with_capacity(cfg.max_buffered_units.min(1 << 16) as usize),
            align: Alignment::new(&cfg),
            groups: SyncGroups::new(),
            metrics: RecvMetrics::new(cfg.playout.name()),
            paths: PathTable::with_capacity(8),
            clock_offset_us: 0,
            pending_release: None,
            ack_cursor: 0,
            feedback: FeedbackClock::default(),
            finished: false,
            first_unit_at: None,
            log: Vec::new(),
            log_base: 0,
            cfg,
        }
    }

    /// The configuration in use (after repair).
    pub fn config(&self) -> &ReceiverConfig {
        &self.cfg
    }

    /// Maps a sender timestamp onto the local clock.
    fn local(&self, sender_us: Micros) -> Micros {
        sender_us.saturating_add_signed(self.clock_offset_us)
    }

    fn release_pending(&mut self) {
        if let Some(buf) = self.pending_release.take() {
            self.pool.release(buf);
        }
    }

    /// Advances the time-driven parts of alignment.
    fn advance(&mut self, now: Micros) {
        self.align.advance(now);
        self.metrics.set_playout_delay(self.align.playout_delay());
    }

    /// A unit arrived (already decoded) at local time `now_us` over `path`.
    ///
    /// The payload is copied into a pooled buffer. The unit is reordered by seq within its
    /// stream, deduplicated (a second copy is counted and makes the ACK due at once, so the
    /// sender learns it, but is never delivered twice), and delivered to the alignment buffer
    /// as soon as every unit below it has been delivered or (droppable streams only) declared
    /// lost. A reliable unit `max_units_ahead` or more above the in-order point is refused and
    /// not acknowledged; for a droppable stream such a unit pushes the window forward instead
    /// (the seqs passed over are declared lost, stored units are delivered), since the sender
    /// never resends droppable units and refusing them could stall the stream forever.
    pub fn on_unit(
        &mut self,
        now_us: Micros,
        path: PathId,
        meta: UnitMeta,
        payload: &[u8],
    ) -> Result<Accepted, RecvError> {
        self.release_pending();
        if self.finished {
            // A resent copy of a unit already received is still acknowledged, so the sender
            // can stop resending; anything new is refused.
            let st = &mut self.streams[meta.modality.index()];
            if st.ack.contains(meta.seq) {
                self.metrics.counters.duplicates += 1;
                st.ack_timer.on_received(
                    now_us,
                    true,
                    self.cfg.ack_delay(),
                    self.cfg.ack_every_units,
                );
                return Ok(Accepted::Duplicate);
            }
            self.metrics.counters.refused_finished += 1;
            return Err(RecvError::Finished);
        }
        if payload.len() > self.cfg.max_payload_len as usize {
            self.metrics.counters.refused_too_large += 1;
            return Err(RecvError::PayloadTooLarge {
                len: payload.len(),
                max: self.cfg.max_payload_len as usize,
            });
        }
        self.advance(now_us);
        self.feedback.start(now_us, self.cfg.feedback_interval_us);
        // Every copy, duplicates and late ones too: the path carries this stream.
        self.paths.on_arrival(path, meta.modality, now_us);
        let i = meta.modality.index();
        let seq = meta.seq;
        let delay = self.cfg.ack_delay();
        let every = self.cfg.ack_every_units;
        let window = u64::from(self.cfg.max_units_ahead);
        self.first_unit_at.get_or_insert(now_us);
        let st = &mut self.streams[i];
        st.reliability = meta.reliability;
        st.seen = true;

        if st.ack.contains(seq) || st.reorder.holds(seq) {
            self.metrics.counters.duplicates += 1;
            st.ack_timer.on_received(now_us, true, delay, every);
            return Ok(Accepted::Duplicate);
        }
        match st.reorder.position(seq) {
            Position::Below => {
                // Not received before yet below the in-order point: only a droppable stream
                // gets here, after the seq was declared lost.
                st.ack.insert(seq);
                st.ack_timer.on_received(now_us, true, delay, every);
                self.metrics.counters.late_after_skip += 1;
                self.on_first_arrival(now_us, path, &meta);
                return Ok(Accepted::TooLate);
            }
            Position::Ahead if meta.reliability == Reliability::Reliable => {
                self.metrics.counters.refused_too_far += 1;
                return Err(RecvError::TooFarAhead {
                    modality: meta.modality,
                    seq,
                    in_order: st.reorder.in_order(),
                    window,
                });
            }
            Position::Ahead if seq - st.reorder.in_order() > self.cfg.max_droppable_jump => {
                self.metrics.counters.refused_seq_jump += 1;
                return Err(RecvError::SeqJump {
                    modality: meta.modality,
                    seq,
                    in_order: st.reorder.in_order(),
                    limit: self.cfg.max_droppable_jump,
                });
            }
            Position::Ahead | Position::InWindow => {}
        }
        if self.pool.live_units() >= self.cfg.max_buffered_units
            || self.pool.live_bytes().saturating_add(payload.len() as u64)
                > self.cfg.max_buffered_bytes
        {
            self.metrics.counters.refused_buffer_full += 1;
            return Err(RecvError::BufferFull {
                modality: meta.modality,
                seq,
            });
        }
        if self.streams[i].reorder.position(seq) == Position::Ahead {
            self.push_window(i, seq - window + 1, now_us);
        }
        let largest = self.streams[i].ack.largest();
        let in_order_arrival = largest.map_or(seq == 0, |l| l.checked_add(1) == Some(seq));
        let log_id = self.on_first_arrival(now_us, path, &meta);
        let unit = StoredUnit {
            meta,
            path,
            arrival_us: now_us,
            local_gen_us: self.local(meta.gen_time_us),
            buf: self.pool.store(payload),
            log_id,
        };
        let st = &mut self.streams[i];
        if !st.reorder.insert(unit) {
            // Unreachable: the seq is in the window (pushed there above) and not held.
            self.pool.release(unit.buf);
            return Err(RecvError::BufferFull {
                modality: meta.modality,
                seq,
            });
        }
        st.ack.insert(seq);
        self.deliver_in_order(i, now_us);
        let st = &mut self.streams[i];
        st.reorder.refresh_gap();
        // draft §4.1.3 reordering. ACK at once when the arrival is out of order (it opens or
        // fills a gap) or units still wait above a gap, so the sender repairs it quickly
        // (RFC 9000 §13.2.1, RFC 5681 §4.2); else after ack_delay or every
        // `ack_every_units` units.
        let gap_exists = st.reorder.stored() > 0;
        st.ack_timer
            .on_received(now_us, !in_order_arrival || gap_exists, delay, every);
        self.finalise_groups(now_us);
        Ok(Accepted::Stored)
    }

    /// Measurement for the first copy of a unit: latency, deadline, sync group, arrival log.
    /// Returns the log id.
    fn on_first_arrival(&mut self, now: Micros, path: PathId, meta: &UnitMeta) -> Option<u64> {
        self.metrics.counters.units_received += 1;
        // draft §3.1.4: L = average(a_m,k − g_m,k).
        let latency = now.saturating_sub(self.local(meta.gen_time_us));
        self.metrics
            .on_arrival(meta.modality, latency, meta.deadline_us);
        if let Some(done) = self.groups.on_arrival(meta.sync_index, meta.modality, now) {
            self.on_group_done(done, now);
        }
        if !self.cfg.arrival_log {
            return None;
        }
        let id = self.log_base + self.log.len() as u64;
        self.log.push(ArrivalRecord {
            modality: meta.modality,
            seq: meta.seq,
            sync_index: meta.sync_index,
            path,
            gen_us: meta.gen_time_us,
            arrival_us: now,
            present_us: None,
        });
        Some(id)
    }

    fn on_group_done(&mut self, done: GroupDone, now: Micros) {
        if let Some(delta) = done.delta {
            self.metrics.on_group(delta);
        }
        self.adjust_delay(now, |r| r.align.on_group_complete(done.completion_latency));
    }

    /// Finalises the sync groups every expected stream has passed (draft §3.1.4 `Delta_k`).
    /// An expected stream that has sent nothing `unseen_modality_grace_us` after the
    /// session's first unit stops holding groups open.
    fn finalise_groups(&mut self, now: Micros) {
        let grace_over = self.first_unit_at.is_some_and(|t| {
            now >= t.saturating_add(Micros::from(self.cfg.unseen_modality_grace_us))
        });
        let frontier = self
            .streams
            .iter()
            .zip(self.cfg.expected_modalities)
            .filter(|(s, expected)| *expected && (s.seen || !grace_over))
            .map(|(s, _)| s.complete_below)
            .min()
            .unwrap_or(u64::MAX);
        self.adjust_delay(now, |r| {
            let (metrics, align) = (&mut r.metrics, &mut r.align);
            r.groups.finalise_below(frontier, |done| {
                if let Some(delta) = done.delta {
                    metrics.on_group(delta);
                }
                align.on_group_complete(done.completion_latency);
            });
        });
    }

    /// Runs `change`, which may move the playout delay, and then keeps the presentation
    /// queue and the metrics consistent with the delay in force. This is the one place a
    /// delay change takes effect.
    ///
    /// After the CAMP delay `D` rose, every queued unit that is waiting for its scheduled
    /// time (not late, not yet due) moves later by the raise, so that all units not yet
    /// presented share one `D`. Without this, audio queued before a raise keeps the old `D`
    /// while the video of the same sync index, delivered after it, gets the new one: the pair
    /// is presented `raise` apart, often outside ATSC IS-191. The audio timeline takes the
    /// same one gap of `raise` either way; only where it falls changes. Decays never move
    /// queued units.
    fn adjust_delay(&mut self, now: Micros, change: impl FnOnce(&mut Self)) {
        let before = self.align.playout_delay();
        change(self);
        if self.cfg.camp_retime_queue
            && let Some(after) = self.align.camp_delay()
        {
            let raise = after.saturating_sub(before);
            if self.queue.retime(raise, now) {
                self.align.shift_last_due(raise, now);
            }
        }
        self.metrics.set_playout_delay(self.align.playout_delay());
    }

    /// Delivers every unit now in order on stream `i`.
    fn deliver_in_order(&mut self, i: usize, now: Micros) {
        while let Some(u) = self.streams[i].reorder.pop_in_order() {
            self.deliver(u, now);
        }
    }

    /// Hands one in-order unit to the alignment buffer.
    fn deliver(&mut self, u: StoredUnit, now: Micros) {
        let m = u.meta.modality;
        self.metrics.on_delivered(m);
        let st = &mut self.streams[m.index()];
        let passed = if u.meta.flags.contains(UnitFlags::END_OF_TURN) {
            u64::MAX
        } else {
            u64::from(u.meta.sync_index)
        };
        st.complete_below = st.complete_below.max(passed);
        let s = self
            .align
            .schedule(&u.meta, u.arrival_us, u.local_gen_us, now);
        if let Some((from_gen, drop)) = self.align.take_pending_drop() {
            // An audio talkspurt lowered `D`: what was queued ahead of it for its time (text
            // and video delivered before this audio unit) follows it down.
            let latest = self.queue.advance_from(from_gen, drop, now);
            self.align.set_last_due_after_drop(latest, now);
        }
        let c = &mut self.metrics.counters;
        if s.skipped {
            c.video_skipped += 1;
            self.feedback.note_late();
        } else if s.late_by > 0 {
            c.late += 1;
            self.feedback.note_late();
            if m == Modality::Audio {
                // A late audio frame is a playback stall as long as its lateness.
                c.stalls += 1;
                c.stall_time_us = c.stall_time_us.saturating_add(s.late_by);
            }
        }
        // After scheduling, so a late unit is judged against the delay in force when it was
        // delivered; the raised delay then covers the units after it.
        let latency = now.saturating_sub(u.local_gen_us);
        self.groups.on_delivered(u.meta.sync_index, latency);
        // Queued first, so that a raise this unit causes moves it with the units before it.
        self.adjust_delay(now, |r| {
            r.queue.push(Queued {
                due: s.due,
                order: 0,
                meta: u.meta,
                path: u.path,
                arrival_us: u.arrival_us,
                delivered_us: now,
                buf: u.buf,
                log_id: u.log_id,
                late: s.late_by > 0,
                skipped: s.skipped,
            });
            r.align.on_delivery_latency(latency);
        });
    }

    /// Moves a droppable stream's in-order point up to `target`, delivering stored units and
    /// declaring the missing seqs lost.
    fn push_window(&mut self, i: usize, target: Seq, now: Micros) {
        while self.streams[i].reorder.in_order() < target {
            let r = &mut self.streams[i].reorder;
            if r.stored() == 0 {
                let n = r.jump_empty(target);
                self.count_lost(n);
                // A peer's seq can jump by nearly 2^64 (see `count_lost`).
                let c = &mut self.metrics.counters;
                c.window_pushed = c.window_pushed.saturating_add(n);
                break;
            }
            match r.pop_in_order() {
                Some(u) => self.deliver(u, now),
                None => {
                    if r.skip_missing() {
                        self.count_lost(1);
                        let c = &mut self.metrics.counters;
                        c.window_pushed = c.window_pushed.saturating_add(1);
                    }
                }
            }
        }
        self.streams[i].reorder.refresh_gap();
    }

    /// Counts `n` droppable units declared lost. Saturating: the seqs come from the peer, so
    /// a single unit near `u64::MAX` declares almost 2^64 seqs lost, and a second such jump
    /// on another stream overflowed the sum (found by the `unit_reassembly` fuzz target).
    fn count_lost(&mut self, n: u64) {
        let c = &mut self.metrics.counters;
        c.video_lost_inferred = c.video_lost_inferred.saturating_add(n);
        self.feedback.note_lost(n);
    }

    /// `path_delta`: max − min smoothed RTT over the known paths (0 with fewer than two).
    pub fn path_delta_us(&self) -> u32 {
        self.paths.delta_us()
    }

    /// How long a unit of stream `i` that arrived at `since` waits before the gap below it is
    /// declared lost: MP-DCCP's `path_delta / 2` (§4.2.7: with symmetric RTTs a missing
    /// MP_SEQ can be assumed lost after that), over the paths that recently carried the
    /// stream, and at least the smallest RTT among them, the time QUIC takes to repair a loss
    /// on the stream's own path (see `paths.rs`).
    fn gap_wait(&self, i: usize, since: Micros) -> Micros {
        let delta = self.paths.stream_delta_us(
            Modality::ALL[i],
            since,
            Micros::from(self.cfg.path_memory_us),
        );
        let rtt = self.paths.stream_min_rtt_us(
            Modality::ALL[i],
            since,
            Micros::from(self.cfg.path_memory_us),
        );
        Micros::from((delta / 2).max(rtt).max(self.cfg.min_gap_wait_us))
    }

    /// When stream `i`'s current gap is declared lost, if it is droppable and has one.
    fn gap_expiry(&self, i: usize) -> Option<Micros> {
        let st = self.streams.get(i)?;
        if st.reliability != Reliability::Droppable {
            return None;
        }
        let g = st.reorder.gap()?;
        let by_wait = g
            .waiting_since
            .saturating_add(self.gap_wait(i, g.waiting_since));
        Some(g.deadline_bound.map_or(by_wait, |d| d.min(by_wait)))
    }

    /// Records the smoothed RTT of a path (from the client's own estimate or the sender's RTT
    /// report); `path_delta` follows.
    pub fn set_path_rtt(&mut self, path: PathId, smoothed_us: u32) {
        self.paths.set_rtt(path, smoothed_us);
    }

    /// Forgets a path (closed or failed); it no longer counts in `path_delta`.
    pub fn remove_path(&mut self, path: PathId) {
        self.paths.remove(path);
    }

    /// Sets the offset that maps sender timestamps onto the local clock:
    /// `local = sender + offset` (0 when both share a clock, as in the simulator).
    pub fn set_clock_offset(&mut self, offset_us: i64) {
        self.clock_offset_us = offset_us;
    }

    /// Transport hint for the CAMP policy (see [`TransportHint`]): raises `D` ahead of time so
    /// that units about to take a slower path are not late; other policies ignore it.
    pub fn on_transport_hint(&mut self, now_us: Micros, hint: TransportHint) {
        self.advance(now_us);
        self.adjust_delay(now_us, |r| r.align.on_transport_hint(hint));
    }

    /// Runs the timers that are due at `now_us`: loss inference on droppable streams and the
    /// time-driven parts of alignment.
    ///
    /// A gap in a droppable stream is declared lost once the earliest unit waiting above it
    /// has waited `max(path_delta / 2, min_gap_wait)`, or once the missing units' deadline has
    /// certainly passed: they were generated no later than the lowest unit waiting above the
    /// gap, so their deadline is at or before that unit's `gen + offset + deadline`.
    /// Reliable streams never skip a gap.
    pub fn handle_timeout(&mut self, now_us: Micros) {
        self.release_pending();
        self.advance(now_us);
        for i in 0..Modality::COUNT {
            while self.gap_expiry(i).is_some_and(|t| t <= now_us) {
                self.skip_gap(i, now_us);
            }
        }
        self.finalise_groups(now_us);
    }

    /// Declares stream `i`'s gap lost and delivers the units that were waiting above it.
    fn skip_gap(&mut self, i: usize, now: Micros) {
        if let Some(g) = self.streams[i].reorder.gap() {
            let c = &mut self.metrics.counters;
            c.gaps_skipped += 1;
            c.gap_wait_us = c
                .gap_wait_us
                .saturating_add(now.saturating_sub(g.waiting_since));
        }
        let mut lost = 0;
        {
            let r = &mut self.streams[i].reorder;
            while r.stored() > 0 && r.skip_missing() {
                lost += 1;
            }
        }
        self.count_lost(lost);
        self.deliver_in_order(i, now);
        self.streams[i].reorder.refresh_gap();
    }

    /// The earliest time at which [`Receiver::handle_timeout`] or a `poll_*` method has
    /// something to do: an ACK timer, a gap timer, the next playout release or the next
    /// feedback report. A time at or before the current time means "now".
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Micros> {
        let acks = self.streams.iter().filter_map(|s| s.ack_timer.due_at());
        let gaps = (0..Modality::COUNT).filter_map(|i| self.gap_expiry(i));
        let playout = self.queue.next_due();
        let feedback = if self.finished {
            None
        } else {
            self.feedback.next_due()
        };
        acks.chain(gaps).chain(playout).chain(feedback).min()
    }

    /// The ACK the session should send now, if any, one stream per call.
    ///
    /// Per stream: all seqs below `cumulative` were received, plus up to [`MAX_ACK_RANGES`]
    /// ranges above it (the highest when there are more). An ACK becomes due when new units
    /// (or duplicates) arrived and either `ack_delay` elapsed since the first unacknowledged
    /// one, `ack_every_units` are unacknowledged, or the arrival was out of order or a
    /// duplicate (then at once).
    #[must_use]
    pub fn poll_ack(&mut self, now_us: Micros) -> Option<AckToSend<'_>> {
        self.release_pending();
        let i = (0..Modality::COUNT)
            .map(|j| (self.ack_cursor + j) % Modality::COUNT)
            .find(|&i| {
                self.streams[i]
                    .ack_timer
                    .due_at()
                    .is_some_and(|t| t <= now_us)
            })?;
        self.ack_cursor = (i + 1) % Modality::COUNT;
        self.metrics.counters.acks_sent += 1;
        let st = &mut self.streams[i];
        st.ack_timer.sent();
        Some(AckToSend {
            modality: Modality::ALL[i],
            cumulative: st.ack.cumulative(),
            ranges: st.ack.reported(),
        })
    }

    /// Current acknowledgement state of a stream (cumulative point and the ranges an ACK would
    /// carry), without consuming a pending ACK.
    pub fn ack_state(&self, modality: Modality) -> (Seq, &[core::ops::Range<u64>]) {
        let st = &self.streams[modality.index()];
        (st.ack.cumulative(), st.ack.reported())
    }

    /// Next seq a stream waits for (everything below was delivered or declared lost).
    pub fn in_order_point(&self, modality: Modality) -> Seq {
        self.streams[modality.index()].reorder.in_order()
    }

    /// The next unit due for presentation at `now_us`, in presentation order (ties in
    /// delivery order). The payload borrow lasts until the next call on the receiver.
    ///
    /// `present_us` is the scheduled time (a caller that polls later presents later, which the
    /// receiver cannot see). Skipped video units come out at once with `skipped` set.
    #[must_use]
    pub fn poll_playout(&mut self, now_us: Micros) -> Option<PlayedUnit<'_>> {
        self.release_pending();
        let q = self.queue.pop_due(now_us)?;
        if !q.skipped {
            let m = q.meta.modality;
            self.metrics
                .on_presented(m, q.due.saturating_sub(q.arrival_us));
            if let Some(offset) = self.groups.on_present(q.meta.sync_index, m, q.due) {
                self.metrics.on_av_offset(offset);
            }
            if let Some(rec) = q
                .log_id
                .and_then(|id| id.checked_sub(self.log_base))
                .and_then(|j| self.log.get_mut(j as usize))
            {
                rec.present_us = Some(q.due);
            }
        }
        self.pending_release = Some(q.buf);
        Some(PlayedUnit {
            meta: q.meta,
            path: q.path,
            payload: self.pool.get(q.buf),
            arrival_us: q.arrival_us,
            delivered_us: q.delivered_us,
            present_us: q.due,
            late: q.late,
            skipped: q.skipped,
        })
    }

    /// The periodic alignment feedback for the sender, every `feedback_interval_us` from the
    /// first unit until [`Receiver::finish`] (draft §4.4: "continuous feedback"). Values cover
    /// the interval since the previous report and saturate at `u32::MAX`.
    #[must_use]
    pub fn poll_feedback(&mut self, now_us: Micros) -> Option<FeedbackReport> {
        self.release_pending();
        if self.finished || !self.feedback.is_due(now_us) {
            return None;
        }
        self.advance(now_us);
        let (skew_mean_us, skew_p95_us) = self.metrics.take_interval_skew();
        let report = self.feedback.take(
            now_us,
            self.cfg.feedback_interval_us,
            PlayoutState {
                playout_delay_us: self.align.playout_delay(),
                buffer_occupancy_us: self.queue.occupancy_us(now_us),
                skew_mean_us,
                skew_p95_us,
            },
        );
        self.metrics.counters.feedback_sent += 1;
        Some(report)
    }

    /// Marks the end of the turn/session at `now_us`.
    ///
    /// Droppable streams deliver everything they hold (remaining gaps are declared lost);
    /// reliable units held behind a gap can never be delivered in order and are counted in
    /// `unreleased_at_finish` and freed. Every open sync group is finalised. Units already in
    /// the presentation queue keep their scheduled times: keep calling
    /// [`Receiver::poll_playout`] until [`Receiver::is_idle`]. Later units are refused and
    /// feedback stops; ACKs may still be polled.
    pub fn finish(&mut self, now_us: Micros) {
        self.release_pending();
        if self.finished {
            return;
        }
        self.advance(now_us);
        for i in 0..Modality::COUNT {
            if self.streams[i].reliability == Reliability::Droppable {
                while self.streams[i].reorder.stored() > 0 {
                    self.skip_gap(i, now_us);
                }
            } else {
                let pool = &mut self.pool;
                let counters = &mut self.metrics.counters;
                self.streams[i].reorder.drain_all(|u| {
                    counters.unreleased_at_finish += 1;
                    pool.release(u.buf);
                });
            }
            self.streams[i].complete_below = u64::MAX;
        }
        self.finished = true;
        self.finalise_groups(now_us);
    }

    /// Whether nothing is held: no unit waits for reordering or presentation.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.streams.iter().all(|s| s.reorder.stored() == 0)
    }

    /// Units held now (reorder and presentation buffers together).
    pub fn buffered_units(&self) -> u32 {
        self.pool.live_units()
    }

    /// Payload bytes held now.
    pub fn buffered_bytes(&self) -> u64 {
        self.pool.live_bytes()
    }

    /// The playout delay the policy applies now (CAMP `D`, the fixed delay, lip-sync audio
    /// buffering, 0 on arrival), µs.
    pub fn playout_delay_us(&self) -> Micros {
        self.align.playout_delay()
    }

    /// The delay the CAMP policy wants (`D` falls to it at the next gap in the audio stream;
    /// see `playout.rs`), µs; `None` for other policies.
    pub fn camp_wanted_delay_us(&self) -> Option<Micros> {
        self.align.camp_wanted_delay()
    }

    /// Number of times the CAMP policy raised `D` (0 for other policies).
    pub fn camp_delay_raises(&self) -> u64 {
        self.align.camp_raises()
    }

    /// Lip-sync state: (audio extra delay, video extra delay, corrections made), µs.
    pub fn lip_sync_state(&self) -> (Micros, Micros, u64) {
        self.align.lip_sync_state()
    }

    /// Histograms and totals of the run.
    pub fn metrics(&self) -> &RecvMetrics {
        &self.metrics
    }

    /// Event counters.
    pub fn counters(&self) -> &RecvCounters {
        &self.metrics.counters
    }

    /// All figures as plain values.
    pub fn summary(&self) -> RecvSummary {
        self.metrics.summary()
    }

    /// Takes the arrival records logged so far (empty unless `arrival_log` is on). Records of
    /// units not yet presented have `present_us = None` and are not updated later.
    pub fn take_arrival_log(&mut self) -> Vec<ArrivalRecord> {
        self.log_base += self.log.len() as u64;
        std::mem::take(&mut self.log)
    }

    /// Latest arrival of a copy of a text or audio unit (the reliable streams) on a path
    /// other than `except`, from the per-path bookkeeping the gap timers use; for timing a
    /// failover without the arrival log.
    pub fn last_reliable_arrival_except(&self, except: Option<PathId>) -> Option<Micros> {
        self.paths
            .last_arrival_except(except, |m| m.default_reliability() == Reliability::Reliable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1_000;

    fn meta(m: Modality, seq: Seq, k: SyncIndex, gen_us: Micros) -> UnitMeta {
        UnitMeta {
            modality: m,
            reliability: m.default_reliability(),
            flags: UnitFlags::empty(),
            sync_index: k,
            seq,
            gen_time_us: gen_us,
            deadline_us: 0,
            capture_id: CaptureId(1),
        }
    }

    fn rx(playout: PlayoutPolicy) -> Receiver {
        Receiver::new(ReceiverConfig {
            playout,
            ..ReceiverConfig::default()
        })
    }

    /// (modality, seq, present, late, skipped) of a presented unit.
    type Played = (Modality, Seq, Micros, bool, bool);

    /// Everything due at `now`.
    fn drain(r: &mut Receiver, now: Micros) -> Vec<Played> {
        let mut out = Vec::new();
        while let Some(u) = r.poll_playout(now) {
            out.push((u.meta.modality, u.meta.seq, u.present_us, u.late, u.skipped));
        }
        out
    }

    fn seqs(v: &[Played]) -> Vec<Seq> {
        v.iter().map(|u| u.1).collect()
    }

    /// A receiver that accepts any droppable jump, to test the counters' last line of defence.
    fn unbounded_jumps() -> Receiver {
        Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::OnArrival,
            max_droppable_jump: u64::MAX,
            ..ReceiverConfig::default()
        })
    }

    /// A peer cannot make the loss figures read ~2^64 with one unit: a droppable seq more
    /// than `max_droppable_jump` past the in-order point is refused and counted, and the
    /// stream goes on from where it was.
    #[test]
    fn a_droppable_jump_past_the_limit_is_refused_and_declares_nothing_lost() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        let limit = r.cfg.max_droppable_jump;
        let video = |seq| UnitMeta {
            reliability: Reliability::Droppable,
            ..meta(Modality::Video, seq, 0, 0)
        };
        for seq in [u64::MAX - 1, limit + 1] {
            assert_eq!(
                r.on_unit(MS, PathId(0), video(seq), b"x"),
                Err(RecvError::SeqJump {
                    modality: Modality::Video,
                    seq,
                    in_order: 0,
                    limit,
                })
            );
        }
        let c = r.counters();
        assert_eq!((c.refused_seq_jump, c.video_lost_inferred), (2, 0));
        // A jump of exactly the limit is a legitimate (if long) run of sender drops.
        assert_eq!(
            r.on_unit(MS, PathId(0), video(limit), b"x"),
            Ok(Accepted::Stored)
        );
        let window = u64::from(r.cfg.max_units_ahead);
        assert_eq!(r.counters().video_lost_inferred, limit - window + 1);
        assert_eq!(r.counters().refused_seq_jump, 2);
    }

    /// Regression (fuzz target `unit_reassembly`): two droppable streams whose first unit
    /// has a seq near `u64::MAX` each declare almost 2^64 seqs lost; the sum overflowed the
    /// loss counters (a panic with overflow checks, a wrap without).
    #[test]
    fn loss_counters_saturate_when_peer_seqs_jump_near_u64_max() {
        let mut r = unbounded_jumps();
        for m in [Modality::Video, Modality::Audio] {
            let unit = UnitMeta {
                reliability: Reliability::Droppable,
                ..meta(m, u64::MAX - 1, 0, 0)
            };
            assert_eq!(
                r.on_unit(MS, PathId(0), unit, b"x"),
                Ok(Accepted::Stored),
                "{m:?}"
            );
        }
        let c = r.counters();
        assert_eq!(c.video_lost_inferred, u64::MAX);
        assert_eq!(c.window_pushed, u64::MAX);
        let report = r.poll_feedback(10_000 * MS).expect("feedback due");
        assert_eq!(report.lost_units, u32::MAX);
    }

    /// Regression (fuzz target `unit_reassembly`, CI of 2026-12-03): once `window_pushed` had
    /// saturated, a window push over a stream holding units skipped a missing seq with
    /// `+= 1`, which overflowed.
    #[test]
    fn a_window_push_over_held_units_after_the_counters_saturated_does_not_overflow() {
        let mut r = unbounded_jumps();
        for m in [Modality::Video, Modality::Audio] {
            let unit = UnitMeta {
                reliability: Reliability::Droppable,
                ..meta(m, u64::MAX - 1, 0, 0)
            };
            assert_eq!(r.on_unit(MS, PathId(0), unit, b"x"), Ok(Accepted::Stored));
        }
        assert_eq!(r.counters().window_pushed, u64::MAX);
        // Text: seq 1 is held above the missing seq 0; a unit a window ahead pushes the
        // window over both, which skips seq 0 with units held.
        let window = u64::from(r.cfg.max_units_ahead);
        for seq in [1, 1 + window + 5] {
            let unit = UnitMeta {
                reliability: Reliability::Droppable,
                ..meta(Modality::Text, seq, 0, 0)
            };
            assert_eq!(r.on_unit(MS, PathId(0), unit, b"x"), Ok(Accepted::Stored));
        }
        assert_eq!(r.counters().window_pushed, u64::MAX);
        assert_eq!(r.counters().video_lost_inferred, u64::MAX);
    }

    #[test]
    fn reorder_across_two_paths_delivers_each_reliable_unit_once_in_order() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        let (p0, p1) = (PathId(0), PathId(1));
        let arrivals = [
            (0, p0),
            (2, p1),
            (1, p0),
            (2, p0),
            (4, p1),
            (3, p0),
            (1, p1),
            (0, p1),
        ];
        let mut got = Vec::new();
        for (t, (seq, path)) in arrivals.into_iter().enumerate() {
            let res = r.on_unit(
                t as Micros * MS,
                path,
                meta(Modality::Text, seq, seq as u32, 0),
                &[seq as u8],
            );
            assert!(res.is_ok());
            while let Some(u) = r.poll_playout(t as Micros * MS) {
                assert_eq!(u.payload, &[u.meta.seq as u8]);
                got.push(u.meta.seq);
            }
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert_eq!(r.counters().duplicates, 3);
        assert_eq!(r.counters().units_received, 5);
        assert_eq!(r.metrics().delivered(Modality::Text), 5);
        assert!(r.is_idle());
    }

    #[test]
    fn duplicate_is_reported_and_makes_the_ack_due_at_once() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        let m = meta(Modality::Audio, 0, 0, 0);
        assert_eq!(r.on_unit(0, PathId(0), m, b"a"), Ok(Accepted::Stored));
        assert!(r.poll_ack(0).is_none(), "in-order unit waits for ack_delay");
        assert_eq!(r.on_unit(MS, PathId(1), m, b"a"), Ok(Accepted::Duplicate));
        let ack = r.poll_ack(MS).expect("duplicate triggers an ACK at once");
        assert_eq!(
            (ack.modality, ack.cumulative, ack.ranges.len()),
            (Modality::Audio, 1, 0)
        );
        assert_eq!(drain(&mut r, MS).len(), 1);
    }

    #[test]
    fn a_reliable_gap_is_never_skipped() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.set_path_rtt(PathId(0), 10_000);
        r.set_path_rtt(PathId(1), 50_000);
        for seq in 1..4 {
            r.on_unit(0, PathId(1), meta(Modality::Audio, seq, 0, 0), b"x")
                .expect("accepted");
        }
        r.handle_timeout(3_600_000_000);
        assert!(drain(&mut r, 3_600_000_000).is_empty());
        assert_eq!(r.in_order_point(Modality::Audio), 0);
        assert_eq!(r.counters().video_lost_inferred, 0);
        r.on_unit(
            3_600_000_001,
            PathId(0),
            meta(Modality::Audio, 0, 0, 0),
            b"x",
        )
        .expect("accepted");
        assert_eq!(seqs(&drain(&mut r, 3_600_000_001)), [0, 1, 2, 3]);
    }

    #[test]
    fn a_video_gap_is_skipped_after_half_the_path_delta() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.set_path_rtt(PathId(0), 20_000);
        r.set_path_rtt(PathId(1), 80_000);
        assert_eq!(r.path_delta_us(), 60_000);
        // Both paths carry video (a path counts in the stream's gap wait once it did).
        r.on_unit(1_000, PathId(1), meta(Modality::Video, 0, 0, 0), b"v0")
            .expect("accepted");
        r.on_unit(2_000, PathId(0), meta(Modality::Video, 2, 2, 80_000), b"v2")
            .expect("accepted");
        r.on_unit(
            3_000,
            PathId(0),
            meta(Modality::Video, 3, 3, 120_000),
            b"v3",
        )
        .expect("accepted");
        while r.poll_ack(3_000).is_some() {}
        assert_eq!(seqs(&drain(&mut r, 3_000)), [0]);
        // Seq 2 has waited since 2 ms; path_delta / 2 = 30 ms > min_gap_wait (10 ms).
        assert_eq!(r.poll_timeout(), Some(32_000));
        r.handle_timeout(31_999);
        assert_eq!(r.in_order_point(Modality::Video), 1);
        r.handle_timeout(32_000);
        assert_eq!(r.in_order_point(Modality::Video), 4);
        assert_eq!(r.counters().video_lost_inferred, 1);
        assert_eq!(seqs(&drain(&mut r, 32_000)), [2, 3]);
        // The lost unit turns up later: acknowledged, measured, never delivered.
        let late = r.on_unit(
            40_000,
            PathId(1),
            meta(Modality::Video, 1, 1, 40_000),
            b"v1",
        );
        assert_eq!(late, Ok(Accepted::TooLate));
        assert_eq!(r.ack_state(Modality::Video).0, 4);
        assert!(drain(&mut r, 40_000).is_empty());
        // Removing the slow path shrinks path_delta to 0: min_gap_wait applies.
        r.remove_path(PathId(1));
        assert_eq!(r.path_delta_us(), 0);
    }

    #[test]
    fn a_video_gap_is_skipped_when_the_missing_deadline_has_passed() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.set_path_rtt(PathId(0), 0);
        r.set_path_rtt(PathId(1), 400_000);
        let mut m = meta(Modality::Video, 1, 1, 5_000);
        m.deadline_us = 15_000;
        r.on_unit(6_000, PathId(0), m, b"v1").expect("accepted");
        // A copy on the slow path too: the stream uses both, so the wait is 200 ms.
        assert_eq!(
            r.on_unit(6_000, PathId(1), m, b"v1"),
            Ok(Accepted::Duplicate)
        );
        // Wait rule: 6 ms + 200 ms; deadline rule: seq 0 was generated at or before 5 ms, so
        // its deadline passed by 5 + 15 = 20 ms.
        while r.poll_ack(6_000).is_some() {}
        assert_eq!(r.poll_timeout(), Some(20_000));
        r.handle_timeout(20_000);
        assert_eq!(r.in_order_point(Modality::Video), 2);
    }

    #[test]
    fn a_path_that_carries_no_video_does_not_lengthen_the_video_gap_wait() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.set_path_rtt(PathId(0), 5_000);
        r.set_path_rtt(PathId(1), 600_000);
        // Audio uses the slow path; video only the fast one.
        r.on_unit(1_000, PathId(1), meta(Modality::Audio, 0, 0, 0), b"a0")
            .expect("accepted");
        r.on_unit(2_000, PathId(0), meta(Modality::Video, 1, 1, 0), b"v1")
            .expect("accepted");
        while r.poll_ack(7_000).is_some() {}
        drain(&mut r, 7_000);
        // Waits min_gap_wait (10 ms), not path_delta / 2 = 297.5 ms.
        assert_eq!(r.poll_timeout(), Some(12_000));
        r.handle_timeout(12_000);
        assert_eq!(r.in_order_point(Modality::Video), 2);
        assert_eq!(r.counters().gaps_skipped, 1);
        assert_eq!(r.counters().gap_wait_us, 10_000);
    }

    #[test]
    fn ack_carries_exact_cumulative_point_and_ranges() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        let pattern = [0, 1, 2, 6, 5, 8, 12, 10, 11];
        for (t, seq) in pattern.into_iter().enumerate() {
            r.on_unit(
                t as Micros,
                PathId(0),
                meta(Modality::Text, seq, 0, 0),
                b"t",
            )
            .expect("accepted");
        }
        let ack = r.poll_ack(100).expect("gaps make the ACK due at once");
        assert_eq!(ack.modality, Modality::Text);
        assert_eq!(ack.cumulative, 3);
        assert_eq!(ack.ranges, &[5..7, 8..9, 10..13]);
        assert!(r.poll_ack(100).is_none(), "sent; nothing new");
    }

    #[test]
    fn ack_timing_follows_delay_count_and_gap_rules() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.on_unit(0, PathId(0), meta(Modality::Text, 0, 0, 0), b"t")
            .expect("accepted");
        assert_eq!(drain(&mut r, 0).len(), 1);
        assert_eq!(r.poll_timeout(), Some(5_000));
        assert!(r.poll_ack(4_999).is_none());
        assert_eq!(r.poll_ack(5_000).map(|a| a.cumulative), Some(1));
        for seq in 1..8 {
            r.on_unit(10_000, PathId(0), meta(Modality::Text, seq, 0, 0), b"t")
                .expect("accepted");
            assert!(r.poll_ack(10_000).is_none(), "{seq} of 8 unacked units");
        }
        r.on_unit(10_000, PathId(0), meta(Modality::Text, 8, 0, 0), b"t")
            .expect("accepted");
        assert_eq!(
            r.poll_ack(10_000).map(|a| a.cumulative),
            Some(9),
            "8 unacked units"
        );
        r.on_unit(11_000, PathId(0), meta(Modality::Text, 10, 0, 0), b"t")
            .expect("accepted");
        let ack = r.poll_ack(11_000).expect("a gap opened: ACK at once");
        assert_eq!(
            (ack.cumulative, ack.ranges),
            (9, core::slice::from_ref(&(10..11)))
        );
        // In order with the largest, but units still wait above the gap: at once.
        r.on_unit(12_000, PathId(0), meta(Modality::Text, 11, 0, 0), b"t")
            .expect("accepted");
        assert!(r.poll_ack(12_000).is_some(), "gap still open");
        // The gap fills: at once; afterwards in-order units wait for ack_delay again.
        r.on_unit(13_000, PathId(0), meta(Modality::Text, 9, 0, 0), b"t")
            .expect("accepted");
        assert_eq!(r.poll_ack(13_000).map(|a| a.cumulative), Some(12));
        r.on_unit(14_000, PathId(0), meta(Modality::Text, 12, 0, 0), b"t")
            .expect("accepted");
        assert!(r.poll_ack(14_000).is_none());
        assert!(r.poll_ack(19_000).is_some());
    }

    #[test]
    fn groups_of_a_modality_that_never_comes_close_after_the_grace_time() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        for k in 0..3u32 {
            let t = Micros::from(k) * 40 * MS;
            r.on_unit(
                t + 10,
                PathId(0),
                meta(Modality::Text, k.into(), k, t),
                b"t",
            )
            .expect("accepted");
            r.on_unit(
                t + 30,
                PathId(0),
                meta(Modality::Audio, k.into(), k, t),
                b"a",
            )
            .expect("accepted");
        }
        assert_eq!(r.metrics().skew_groups(), 0, "video might still come");
        r.handle_timeout(2_000_010);
        assert_eq!(
            r.metrics().skew_groups(),
            2,
            "groups 0 and 1 closed without video"
        );
        assert_eq!(r.metrics().skew_c_us(), Some(20.0));
    }

    #[test]
    fn camp_delay_covers_head_of_line_blocking_of_reliable_units() {
        let mut r = rx(PlayoutPolicy::Camp {
            initial_delay_us: 50_000,
            min_delay_us: 10_000,
            max_delay_us: 500_000,
            quantile: 0.99,
        });
        r.on_unit(20 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        // Seq 1 is lost on its path; seq 2 arrives at 60 ms but waits for the resend.
        r.on_unit(
            60 * MS,
            PathId(0),
            meta(Modality::Audio, 2, 1, 40 * MS),
            b"a",
        )
        .expect("accepted");
        assert_eq!(
            r.playout_delay_us(),
            50_000,
            "arrival latency 20 ms is covered"
        );
        r.on_unit(
            180 * MS,
            PathId(1),
            meta(Modality::Audio, 1, 0, 20 * MS),
            b"a",
        )
        .expect("accepted");
        // Seq 1: 160 ms from generation to delivery; seq 2 (delivered with it) 140 ms.
        assert_eq!(r.playout_delay_us(), 165_000);
        let late: Vec<bool> =
            core::iter::from_fn(|| r.poll_playout(500 * MS).map(|u| u.late)).collect();
        assert_eq!(
            late,
            [false, true, false],
            "seq 2 is scheduled with the raised D"
        );
        assert_eq!(r.counters().stalls, 1);
    }

    #[test]
    fn too_far_ahead_is_refused_without_losing_accepted_units() {
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::OnArrival,
            max_units_ahead: 4,
            ..ReceiverConfig::default()
        });
        for seq in 1..4 {
            r.on_unit(0, PathId(0), meta(Modality::Text, seq, 0, 0), b"t")
                .expect("in window");
        }
        let e = r.on_unit(0, PathId(0), meta(Modality::Text, 4, 0, 0), b"t");
        assert_eq!(
            e,
            Err(RecvError::TooFarAhead {
                modality: Modality::Text,
                seq: 4,
                in_order: 0,
                window: 4
            })
        );
        assert_eq!(
            r.ack_state(Modality::Text),
            (0, core::slice::from_ref(&(1..4))),
            "refused unit is not acked"
        );
        r.on_unit(1, PathId(1), meta(Modality::Text, 0, 0, 0), b"t")
            .expect("fills the gap");
        r.on_unit(2, PathId(0), meta(Modality::Text, 4, 0, 0), b"t")
            .expect("now in window");
        assert_eq!(seqs(&drain(&mut r, 2)), [0, 1, 2, 3, 4]);
        assert_eq!(r.counters().refused_too_far, 1);
    }

    #[test]
    fn droppable_unit_beyond_the_window_pushes_it_forward() {
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::OnArrival,
            max_units_ahead: 4,
            ..ReceiverConfig::default()
        });
        r.on_unit(0, PathId(0), meta(Modality::Video, 1, 1, 0), b"v")
            .expect("in window");
        r.on_unit(1, PathId(0), meta(Modality::Video, 10, 10, 0), b"v")
            .expect("pushes the window");
        // Window moves to 7..11: seq 0 and 2..=6 are lost, seq 1 is delivered, 10 waits.
        assert_eq!(r.in_order_point(Modality::Video), 7);
        assert_eq!(r.counters().video_lost_inferred, 6);
        assert_eq!(seqs(&drain(&mut r, 1)), [1]);
    }

    #[test]
    fn delta_k_and_c_match_a_hand_computed_example() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        let mut seq = [0u64; 3];
        let mut send = |r: &mut Receiver, m: Modality, k: SyncIndex, at: Micros| {
            let s = &mut seq[m.index()];
            r.on_unit(at, PathId(0), meta(m, *s, k, 0), b"u")
                .expect("accepted");
            *s += 1;
        };
        // k = 1: text 100, audio 110 and 130, video 125 → Delta_1 = 30.
        send(&mut r, Modality::Text, 1, 100);
        send(&mut r, Modality::Audio, 1, 110);
        send(&mut r, Modality::Video, 1, 125);
        send(&mut r, Modality::Audio, 1, 130);
        // k = 2: text 200, video 210, audio 240 and 250 → Delta_2 = 50.
        send(&mut r, Modality::Text, 2, 200);
        send(&mut r, Modality::Video, 2, 210);
        send(&mut r, Modality::Audio, 2, 240);
        send(&mut r, Modality::Audio, 2, 250);
        assert_eq!(
            r.metrics().skew_groups(),
            1,
            "group 1 passed by every stream, group 2 open"
        );
        assert_eq!(r.metrics().skew_c_us(), Some(30.0));
        // k = 3: video only, does not count.
        send(&mut r, Modality::Video, 3, 300);
        r.finish(400);
        assert_eq!(r.metrics().skew_groups(), 2);
        assert_eq!(r.metrics().skew_c_us(), Some(40.0));
        let s = r.summary();
        assert_eq!(s.skew_c_us, 40.0);
        assert_eq!(s.skew_max_us, 50);
    }

    #[test]
    fn on_arrival_presents_on_delivery() {
        let mut r = rx(PlayoutPolicy::OnArrival);
        r.on_unit(30 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        r.on_unit(50 * MS, PathId(0), meta(Modality::Video, 0, 0, 0), b"v")
            .expect("accepted");
        assert_eq!(
            drain(&mut r, 50 * MS),
            [
                (Modality::Audio, 0, 30 * MS, false, false),
                (Modality::Video, 0, 50 * MS, false, false)
            ]
        );
        assert_eq!(r.summary().av_offset_mean_us, 20_000.0);
    }

    #[test]
    fn fixed_delay_presents_at_gen_plus_delay_late_on_delivery_and_skips_stale_video() {
        let mut r = rx(PlayoutPolicy::Fixed { delay_us: 60_000 });
        r.set_clock_offset(1_000);
        // Sender gen times 0 / 20 / 0 / 40 ms map to local 1 / 21 / 1 / 41 ms.
        r.on_unit(30 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        r.on_unit(50 * MS, PathId(0), meta(Modality::Video, 0, 0, 0), b"v")
            .expect("accepted");
        r.on_unit(
            91 * MS,
            PathId(1),
            meta(Modality::Audio, 1, 0, 20 * MS),
            b"a",
        )
        .expect("accepted");
        r.on_unit(
            150 * MS,
            PathId(1),
            meta(Modality::Video, 1, 1, 40 * MS),
            b"v",
        )
        .expect("accepted");
        let mut kf = meta(Modality::Video, 2, 2, 80 * MS);
        kf.flags = UnitFlags::KEYFRAME;
        r.on_unit(200 * MS, PathId(1), kf, b"k").expect("accepted");
        assert!(r.poll_playout(60 * MS).is_none());
        assert_eq!(
            drain(&mut r, 300 * MS),
            [
                (Modality::Audio, 0, 61 * MS, false, false),
                (Modality::Video, 0, 61 * MS, false, false),
                // Due 81 ms, delivered 91 ms: late, a 10 ms stall.
                (Modality::Audio, 1, 91 * MS, true, false),
                // Due 101 ms, delivered 150 ms: 49 ms > one frame late, skipped.
                (Modality::Video, 1, 150 * MS, true, true),
                // A keyframe is never skipped: shown late on delivery.
                (Modality::Video, 2, 200 * MS, true, false),
            ]
        );
        let c = r.counters();
        assert_eq!(
            (c.late, c.stalls, c.stall_time_us, c.video_skipped),
            (2, 1, 10 * MS, 1)
        );
        assert_eq!(r.summary().av_indices, 1);
    }

    #[test]
    fn camp_presents_every_modality_at_gen_plus_shared_delay() {
        let mut r = rx(PlayoutPolicy::Camp {
            initial_delay_us: 60_000,
            min_delay_us: 10_000,
            max_delay_us: 500_000,
            quantile: 0.99,
        });
        r.on_unit(10 * MS, PathId(0), meta(Modality::Text, 0, 0, 0), b"t")
            .expect("accepted");
        r.on_unit(30 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        r.on_unit(50 * MS, PathId(1), meta(Modality::Video, 0, 0, 0), b"v")
            .expect("accepted");
        r.on_unit(
            50 * MS,
            PathId(0),
            meta(Modality::Audio, 1, 0, 20 * MS),
            b"a",
        )
        .expect("accepted");
        assert_eq!(
            r.playout_delay_us(),
            60_000,
            "latencies + 5 ms margin stay below D"
        );
        assert_eq!(
            drain(&mut r, 100 * MS),
            [
                (Modality::Text, 0, 60 * MS, false, false),
                (Modality::Audio, 0, 60 * MS, false, false),
                (Modality::Video, 0, 60 * MS, false, false),
                (Modality::Audio, 1, 80 * MS, false, false),
            ]
        );
        // A video frame 90 ms late: presented on arrival, counted late, D rises to cover it.
        r.on_unit(
            130 * MS,
            PathId(1),
            meta(Modality::Video, 1, 1, 40 * MS),
            b"v",
        )
        .expect("accepted");
        assert_eq!(r.playout_delay_us(), 95_000);
        assert_eq!(
            drain(&mut r, 130 * MS),
            [(Modality::Video, 1, 130 * MS, true, false)]
        );
        let s = r.summary();
        assert_eq!(s.av_indices, 1);
        assert_eq!(s.av_offset_mean_us, 0.0);
        assert_eq!(s.outside_bt1359, 0.0);
    }

    #[test]
    fn lip_sync_plays_audio_from_its_jitter_buffer_and_video_on_arrival() {
        let mut r = rx(PlayoutPolicy::LipSync {
            audio_delay_us: 20_000,
        });
        r.on_unit(30 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        r.on_unit(35 * MS, PathId(0), meta(Modality::Text, 0, 0, 0), b"t")
            .expect("accepted");
        r.on_unit(60 * MS, PathId(1), meta(Modality::Video, 0, 0, 0), b"v")
            .expect("accepted");
        r.on_unit(
            70 * MS,
            PathId(0),
            meta(Modality::Audio, 1, 0, 20 * MS),
            b"a",
        )
        .expect("accepted");
        r.on_unit(
            95 * MS,
            PathId(0),
            meta(Modality::Audio, 2, 1, 40 * MS),
            b"a",
        )
        .expect("accepted");
        assert_eq!(
            drain(&mut r, 200 * MS),
            [
                (Modality::Text, 0, 35 * MS, false, false),
                // Anchor: first audio transit 30 ms + 20 ms jitter buffer.
                (Modality::Audio, 0, 50 * MS, false, false),
                (Modality::Video, 0, 60 * MS, false, false),
                (Modality::Audio, 1, 70 * MS, false, false),
                (Modality::Audio, 2, 95 * MS, true, false),
            ]
        );
        assert_eq!(r.counters().stall_time_us, 5 * MS);
    }

    /// Sends one group per 40 ms: text, two audio frames and a video frame of index k, each
    /// arriving `lat` after its generation time (video after `video_lat`).
    fn send_group(r: &mut Receiver, k: u32, lat: Micros, video_lat: Micros) -> Micros {
        let g = Micros::from(k) * 40 * MS;
        let k64 = Micros::from(k);
        let mut units = [
            (Modality::Text, k64, g, lat),
            (Modality::Audio, 2 * k64, g, lat),
            (Modality::Audio, 2 * k64 + 1, g + 20 * MS, lat),
            (Modality::Video, k64, g, video_lat),
        ];
        units.sort_by_key(|u| u.2 + u.3);
        for (m, seq, gen_us, l) in units {
            r.handle_timeout(gen_us + l);
            r.on_unit(gen_us + l, PathId(0), meta(m, seq, k, gen_us), b"u")
                .expect("accepted");
            while r.poll_playout(gen_us + l).is_some() {}
        }
        g + 40 * MS
    }

    #[test]
    fn camp_delay_rises_at_once_on_a_late_group_and_falls_only_at_a_silence() {
        let mut r = rx(PlayoutPolicy::Camp {
            initial_delay_us: 60_000,
            min_delay_us: 20_000,
            max_delay_us: 500_000,
            quantile: 0.99,
        });
        for k in 0..50 {
            send_group(&mut r, k, 30 * MS, 30 * MS);
        }
        // Target 30 + 5 ms; the wanted delay decays from 60 ms at 4 ms/s over about 2 s, but
        // the audio has had no gap: D holds.
        let w0 = r.camp_wanted_delay_us().expect("camp");
        assert!((51_000..=53_000).contains(&w0), "{w0}");
        assert_eq!(r.playout_delay_us(), 60_000);
        send_group(&mut r, 50, 30 * MS, 200 * MS);
        assert_eq!(
            r.playout_delay_us(),
            205_000,
            "rises at once to cover the late group"
        );
        for k in 51..100 {
            send_group(&mut r, k, 30 * MS, 30 * MS);
        }
        // Up to 100 groups the nearest-rank p99 is the largest one: the late group holds D.
        assert_eq!(r.camp_wanted_delay_us(), Some(205_000));
        for k in 100..126 {
            send_group(&mut r, k, 30 * MS, 30 * MS);
        }
        // From the 101st group on, the outlier is beyond the p99 and the wanted delay decays
        // at 4 ms/s: about one second of decay by the end (group 100 completes at ~4.07 s,
        // the last unit arrives at ~5.05 s). Speech goes on: D holds.
        let w1 = r.camp_wanted_delay_us().expect("camp");
        assert!((200_000..=202_000).contains(&w1), "{w1}");
        assert_eq!(r.playout_delay_us(), 205_000);
        assert_eq!(r.camp_delay_raises(), 1);
        // A 240 ms silence (groups 126..=131 carry text and video only), then speech again:
        // D falls to the wanted delay at the first audio frame after it.
        for k in 126..132 {
            let g = Micros::from(k) * 40 * MS;
            for (m, seq) in [(Modality::Text, k), (Modality::Video, k)] {
                r.on_unit(g + 30 * MS, PathId(0), meta(m, seq.into(), k, g), b"u")
                    .expect("accepted");
            }
        }
        assert_eq!(r.playout_delay_us(), 205_000, "no audio yet: D holds");
        let g = 132 * 40 * MS;
        r.on_unit(
            g + 30 * MS,
            PathId(0),
            meta(Modality::Audio, 252, 132, g),
            b"a",
        )
        .expect("accepted");
        let w2 = r.camp_wanted_delay_us().expect("camp");
        assert!(w2 < w1, "{w2} {w1}");
        assert_eq!(r.playout_delay_us(), w2, "D jumps down at the silence");
    }

    /// What a speech scenario presented: (modality, local gen, present, late) in
    /// presentation order.
    type Shown = Vec<(Modality, Micros, Micros, bool)>;

    /// A speech scenario for [`speech`] (latencies in ms).
    #[derive(Clone, Copy)]
    struct Talk {
        l0: Micros,
        fall: Micros,
        n1: u64,
        silence: u64,
        n2: u64,
        jitter: Micros,
        seed: u64,
        lower_in_silence: bool,
        stretch_ppm: u32,
    }

    /// Two talkspurts of 20 ms audio frames (`n1` frames, a silence of `silence` frame slots
    /// with no audio, `n2` frames) with a text token per 40 ms of speech and 25 fps video all
    /// along. A unit generated at `g` arrives `lat(g) - jitter` after it, where `lat` falls
    /// linearly from `l0` ms to `l0 - fall` ms over the first talkspurt and stays there; the
    /// first units have no jitter, so `l0` is the largest latency. D starts at `l0 + 5` ms.
    fn speech(t: Talk) -> (Shown, Receiver) {
        let Talk {
            l0,
            fall,
            n1,
            silence,
            n2,
            jitter,
            seed,
            lower_in_silence,
            stretch_ppm,
        } = t;
        const FRAME: Micros = 20 * MS;
        let t1 = n1 * FRAME;
        let lat = |g: Micros| l0 * MS - fall * MS * g.min(t1) / t1;
        let mut rng = seed | 1;
        let mut jit = |g: Micros| {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            if g == 0 {
                0
            } else {
                (rng >> 33) % (jitter + 1)
            }
        };
        let mut units = Vec::new();
        let total = n1 + silence + n2;
        let speaking = |slot: u64| slot < n1 || slot >= n1 + silence;
        let (mut audio_seq, mut text_seq, mut video_seq) = (0, 0, 0);
        for slot in 0..total {
            let g = slot * FRAME;
            let k = (slot / 2) as u32;
            let mut add = |m: Modality, seq: &mut Seq| {
                let mut u = meta(m, *seq, k, g);
                if m == Modality::Video && slot % 50 == 0 {
                    u.flags = UnitFlags::KEYFRAME;
                }
                *seq += 1;
                units.push((g + lat(g) - jit(g), u));
            };
            if speaking(slot) {
                add(Modality::Audio, &mut audio_seq);
            }
            if slot % 2 == 0 {
                if speaking(slot) {
                    add(Modality::Text, &mut text_seq);
                }
                add(Modality::Video, &mut video_seq);
            }
        }
        units.sort_by_key(|u| u.0);
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::Camp {
                initial_delay_us: ((l0 + 5) * MS) as u32,
                min_delay_us: 10_000,
                max_delay_us: 1_000_000,
                quantile: 0.99,
            },
            camp_window_groups: 10,
            camp_decay_us_per_s: 50_000,
            camp_lower_in_silence: lower_in_silence,
            camp_audio_stretch_ppm: stretch_ppm,
            ..ReceiverConfig::default()
        });
        let mut shown = Vec::new();
        let mut take = |r: &mut Receiver, now: Micros| {
            while let Some(u) = r.poll_playout(now) {
                shown.push((u.meta.modality, u.meta.gen_time_us, u.present_us, u.late));
            }
        };
        for (at, m) in units {
            take(&mut r, at);
            r.handle_timeout(at);
            r.on_unit(at, PathId(0), m, b"u").expect("accepted");
        }
        r.finish(total * FRAME + 10_000 * MS);
        take(&mut r, Micros::MAX);
        (shown, r)
    }

    /// (gen, present) of one modality, in generation order.
    fn of(shown: &Shown, m: Modality) -> Vec<(Micros, Micros)> {
        let mut v: Vec<_> = shown
            .iter()
            .filter(|u| u.0 == m)
            .map(|u| (u.1, u.2))
            .collect();
        v.sort();
        v
    }

    proptest::proptest! {
        /// For continuous audio with falling network delay, the audio clock runs at the
        /// sender's rate: inside a talkspurt consecutive presentation times are exactly the
        /// generation times apart, and the delay never falls; it falls at the first silence
        /// (by at most the silence), and video and text are presented with the delay of the
        /// audio of their time.
        #[test]
        fn camp_audio_clock_never_drifts_during_speech(
            l0 in 40u64..300,
            fall in 0u64..40,
            n1 in 50u64..300,
            silence in 2u64..30,
            n2 in 10u64..100,
            jitter in proptest::prop_oneof![proptest::strategy::Just(0u64), 0u64..4_000],
            seed in proptest::prelude::any::<u64>(),
        ) {
            let (shown, r) = speech(Talk {
                l0,
                fall,
                n1,
                silence,
                n2,
                jitter,
                seed,
                lower_in_silence: true,
                stretch_ppm: 0,
            });
            proptest::prop_assert!(shown.iter().all(|u| !u.3), "nothing is late");
            let audio = of(&shown, Modality::Audio);
            proptest::prop_assert_eq!(audio.len() as u64, n1 + n2);
            let delay = |u: &(Micros, Micros)| u.1 - u.0;
            let d1 = (l0 + 5) * MS;
            // First talkspurt: every latency is at most l0, so D never rises: exact clock.
            for u in &audio[..n1 as usize] {
                proptest::prop_assert_eq!(delay(u), d1);
            }
            for w in audio[..n1 as usize].windows(2) {
                proptest::prop_assert_eq!(w[1].1 - w[0].1, w[1].0 - w[0].0);
            }
            // Second talkspurt: the delay only rises (a raise is a stall-avoiding jump).
            for w in audio[n1 as usize..].windows(2) {
                proptest::prop_assert!(delay(&w[1]) >= delay(&w[0]));
                proptest::prop_assert!(w[1].1 - w[0].1 >= w[1].0 - w[0].0);
            }
            let (last, first) = (audio[n1 as usize - 1], audio[n1 as usize]);
            let d2 = delay(&first);
            proptest::prop_assert!(d2 <= d1);
            proptest::prop_assert!(d2 + silence * 20 * MS >= d1, "falls by at most the silence");
            proptest::prop_assert!(first.1 >= last.1 + 20 * MS, "the last frame is played out");
            if fall >= 10 {
                proptest::prop_assert!(d2 < d1, "the delay falls at the first silence");
            }
            if r.camp_delay_raises() == 0 {
                // Lip sync: each modality at the audio's delay for its time, never backwards.
                let g_sw = first.0;
                for m in [Modality::Video, Modality::Text] {
                    let mut prev = 0;
                    for (g, p) in of(&shown, m) {
                        let want = (g + if g < g_sw { d1 } else { d2 }).max(prev);
                        proptest::prop_assert_eq!(p, want, "{:?} gen {}", m, g);
                        prev = want;
                    }
                }
            }
        }
    }

    #[test]
    fn without_lowering_in_silence_the_audio_clock_runs_fast() {
        let talk = Talk {
            l0: 150,
            fall: 40,
            n1: 200,
            silence: 10,
            n2: 50,
            jitter: 0,
            seed: 1,
            lower_in_silence: false,
            stretch_ppm: 0,
        };
        let (shown, _) = speech(talk);
        let audio = of(&shown, Modality::Audio);
        let short = audio[..200]
            .windows(2)
            .filter(|w| w[1].1 - w[0].1 < w[1].0 - w[0].0)
            .count();
        assert!(short > 0, "the old rule drifts during speech");
        let (shown, _) = speech(Talk {
            lower_in_silence: true,
            ..talk
        });
        let audio = of(&shown, Modality::Audio);
        assert!(
            audio[..200].windows(2).all(|w| w[1].1 - w[0].1 == 20 * MS),
            "the new rule does not"
        );
        // With a stretch allowance of 0.4 % the delay falls during speech too, but no frame
        // comes less than 0.4 % of its 20 ms early.
        let (shown, _) = speech(Talk {
            lower_in_silence: true,
            stretch_ppm: 4_000,
            ..talk
        });
        let audio = of(&shown, Modality::Audio);
        let diffs: Vec<Micros> = audio[..200].windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert!(diffs.iter().all(|&d| d >= 19_920), "{diffs:?}");
        assert!(diffs.iter().any(|&d| d < 20 * MS));
        let delay = |u: &(Micros, Micros)| u.1 - u.0;
        assert!(delay(&audio[199]) < delay(&audio[0]));
        assert!(
            delay(&audio[0]) - delay(&audio[199]) <= 199 * 80,
            "at most 80 µs per frame"
        );
    }

    #[test]
    fn a_late_audio_frame_still_raises_the_delay_at_once() {
        let mut r = rx(PlayoutPolicy::Camp {
            initial_delay_us: 60_000,
            min_delay_us: 20_000,
            max_delay_us: 500_000,
            quantile: 0.99,
        });
        let mut shown = Vec::new();
        for seq in 0..20u64 {
            let g = seq * 20 * MS;
            let lat = if seq == 10 { 100 * MS } else { 30 * MS };
            let at = g + lat;
            r.on_unit(
                at,
                PathId(0),
                meta(Modality::Audio, seq, (seq / 2) as u32, g),
                b"a",
            )
            .expect("accepted");
            shown.extend(drain(&mut r, at));
        }
        shown.extend(drain(&mut r, Micros::MAX));
        // Frame 10 waited 100 ms: 40 ms late for D = 60 ms; D rises to 105 ms at once and
        // frames 11.. arrived (30 ms) before it: they queue behind it in order.
        assert_eq!(r.playout_delay_us(), 105_000);
        assert_eq!(r.counters().stalls, 1);
        assert_eq!(r.counters().stall_time_us, 40 * MS);
        let at = |seq: u64| shown.iter().find(|u| u.1 == seq).expect("shown").2;
        assert_eq!(at(9), 9 * 20 * MS + 60 * MS);
        assert_eq!(at(10), 10 * 20 * MS + 100 * MS);
        for seq in 11..20 {
            assert_eq!(at(seq), seq * 20 * MS + 105 * MS, "seq {seq}");
        }
    }

    #[test]
    fn a_turn_boundary_lowers_the_delay() {
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::Camp {
                initial_delay_us: 200_000,
                min_delay_us: 20_000,
                max_delay_us: 500_000,
                quantile: 0.99,
            },
            expected_modalities: [false, true, false],
            ..ReceiverConfig::default()
        });
        for seq in 0..100u64 {
            let g = seq * 20 * MS;
            let mut m = meta(Modality::Audio, seq, (seq / 2) as u32, g);
            if seq == 99 {
                m.flags = UnitFlags::END_OF_TURN;
            }
            r.on_unit(g + 30 * MS, PathId(0), m, b"a")
                .expect("accepted");
        }
        assert_eq!(r.playout_delay_us(), 200_000, "held through the speech");
        // The next turn starts right after (no silence) at a new frame time.
        let g = 100 * 20 * MS;
        r.on_unit(
            g + 30 * MS,
            PathId(0),
            meta(Modality::Audio, 100, 50, g),
            b"a",
        )
        .expect("accepted");
        let w = r.camp_wanted_delay_us().expect("camp");
        assert!(w < 200_000);
        // Back-to-back turns leave no silence to absorb a drop.
        assert_eq!(r.playout_delay_us(), 200_000);
        let mut e = meta(Modality::Audio, 101, 50, g + 20 * MS);
        e.flags = UnitFlags::END_OF_TURN;
        r.on_unit(g + 50 * MS, PathId(0), e, b"a")
            .expect("accepted");
        // A turn starting 35 ms after the last one's last frame: less than two frames, so not
        // a silence by itself, but a turn boundary with 15 ms of room: D falls by up to 15 ms.
        let g = g + 55 * MS;
        r.on_unit(
            g + 30 * MS,
            PathId(0),
            meta(Modality::Audio, 102, 51, g),
            b"a",
        )
        .expect("accepted");
        let w = r.camp_wanted_delay_us().expect("camp");
        assert_eq!(r.playout_delay_us(), w.max(185_000));
        assert!(r.playout_delay_us() < 200_000);
    }

    /// Audio of sync index 1 is queued at D = 60 ms; a late video frame of index 0 raises D
    /// to 95 ms; the video of index 1 then arrives on time for the new D. Returns what was
    /// presented and the share of A/V indices outside IS-191.
    fn raise_while_audio_is_queued(retime: bool) -> (Vec<Played>, f64) {
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::Camp {
                initial_delay_us: 60_000,
                min_delay_us: 20_000,
                max_delay_us: 500_000,
                quantile: 0.99,
            },
            camp_retime_queue: retime,
            ..ReceiverConfig::default()
        });
        let mut out = Vec::new();
        let unit = |r: &mut Receiver, at: Micros, m: Modality, seq: Seq, k: u32| {
            r.on_unit(
                at,
                PathId(0),
                meta(m, seq, k, Micros::from(k) * 40 * MS),
                b"u",
            )
            .expect("accepted");
        };
        unit(&mut r, 10 * MS, Modality::Audio, 0, 0);
        out.extend(drain(&mut r, 60 * MS));
        unit(&mut r, 65 * MS, Modality::Audio, 1, 1);
        // 90 ms after its media time: 30 ms late (shown, not skipped); D rises to 95 ms.
        unit(&mut r, 90 * MS, Modality::Video, 0, 0);
        assert_eq!(r.playout_delay_us(), 95_000);
        out.extend(drain(&mut r, 90 * MS));
        // 80 ms after its media time: on time for D = 95 ms.
        unit(&mut r, 120 * MS, Modality::Video, 1, 1);
        out.extend(drain(&mut r, 300 * MS));
        (out, r.summary().outside_is191)
    }

    #[test]
    fn a_camp_delay_raise_moves_the_queued_units_with_it() {
        let (played, outside) = raise_while_audio_is_queued(true);
        assert_eq!(
            played,
            [
                (Modality::Audio, 0, 60 * MS, false, false),
                (Modality::Video, 0, 90 * MS, true, false),
                // Queued for 40 + 60 ms, moved by the 35 ms raise to 40 + 95 ms.
                (Modality::Audio, 1, 135 * MS, false, false),
                (Modality::Video, 1, 135 * MS, false, false),
            ]
        );
        // Index 0 is 30 ms apart (its audio had already played), index 1 is together.
        assert_eq!(outside, 0.5);
        let (played, outside) = raise_while_audio_is_queued(false);
        assert!(played.contains(&(Modality::Audio, 1, 100 * MS, false, false)));
        assert!(played.contains(&(Modality::Video, 1, 135 * MS, false, false)));
        assert_eq!(outside, 1.0, "without retiming index 1 is 35 ms apart too");
    }

    #[test]
    fn transport_hint_raises_camp_delay_ahead_of_time() {
        let mut r = rx(PlayoutPolicy::Camp {
            initial_delay_us: 20_000,
            min_delay_us: 20_000,
            max_delay_us: 1_000_000,
            quantile: 0.99,
        });
        for k in 0..4 {
            send_group(&mut r, k, 30 * MS, 30 * MS);
        }
        assert_eq!(r.playout_delay_us(), 35_000, "30 ms groups + 5 ms margin");
        // The sender reports paths 200 ms apart in RTT: 30 ms + 100 ms + 5 ms margin.
        let path_delta = TransportHint::PathDelta {
            path_delta_us: 200_000,
        };
        r.on_transport_hint(200 * MS, path_delta);
        assert_eq!(r.playout_delay_us(), 135_000);
        let expected = TransportHint::ExpectedLatency {
            latency_us: 300_000,
        };
        r.on_transport_hint(200 * MS, expected);
        assert_eq!(r.playout_delay_us(), 305_000);
        let mut f = rx(PlayoutPolicy::Fixed { delay_us: 80_000 });
        f.on_transport_hint(0, expected);
        assert_eq!(f.playout_delay_us(), 80_000, "only CAMP takes hints");
    }

    #[test]
    fn feedback_reports_each_interval_while_active() {
        let mut r = rx(PlayoutPolicy::Fixed { delay_us: 100_000 });
        assert!(
            r.poll_feedback(1_000_000).is_none(),
            "inactive before the first unit"
        );
        for k in 0..3 {
            send_group(&mut r, k, 30 * MS, 50 * MS);
        }
        // The first unit came at 30 ms, so the first report is due at 130 ms.
        assert!(r.poll_feedback(130 * MS - 1).is_none());
        let f = r.poll_feedback(150 * MS).expect("first interval over");
        assert_eq!(f.interval_us, 120_000, "covers the time actually elapsed");
        assert_eq!(f.playout_delay_us, 100_000);
        assert_eq!(
            f.skew_mean_us, 20_000,
            "groups 0 and 1 complete, Delta = 20 ms each"
        );
        assert_eq!((f.late_units, f.lost_units), (0, 0));
        assert!(f.buffer_occupancy_us > 0);
        assert!(
            r.poll_feedback(229 * MS).is_none(),
            "next one 100 ms after the due time"
        );
        assert!(r.poll_feedback(230 * MS).is_some());
        r.finish(260 * MS);
        assert!(r.poll_feedback(300 * MS).is_none(), "stops after finish");
    }

    #[test]
    fn finish_counts_reliable_units_stuck_behind_a_gap_and_keeps_schedules() {
        let mut r = rx(PlayoutPolicy::Fixed { delay_us: 100_000 });
        r.on_unit(10 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a")
            .expect("accepted");
        r.on_unit(
            10 * MS,
            PathId(0),
            meta(Modality::Audio, 2, 1, 40 * MS),
            b"a",
        )
        .expect("accepted");
        r.on_unit(
            10 * MS,
            PathId(0),
            meta(Modality::Video, 1, 1, 40 * MS),
            b"v",
        )
        .expect("accepted");
        r.finish(20 * MS);
        assert_eq!(r.counters().unreleased_at_finish, 1);
        assert_eq!(r.counters().video_lost_inferred, 1);
        assert_eq!(
            r.on_unit(30 * MS, PathId(0), meta(Modality::Text, 0, 0, 0), b"t"),
            Err(RecvError::Finished)
        );
        while r.poll_ack(30 * MS).is_some() {}
        // A resend of a received unit is still acknowledged so the sender can stop.
        assert_eq!(
            r.on_unit(30 * MS, PathId(0), meta(Modality::Audio, 0, 0, 0), b"a"),
            Ok(Accepted::Duplicate)
        );
        assert_eq!(r.poll_ack(30 * MS).map(|a| a.cumulative), Some(1));
        assert!(!r.is_idle());
        assert!(r.poll_playout(99 * MS).is_none());
        assert_eq!(seqs(&drain(&mut r, 140 * MS)), [0, 1]);
        assert!(r.is_idle());
    }

    #[test]
    fn arrival_log_records_presentation_times() {
        let mut r = Receiver::new(ReceiverConfig {
            playout: PlayoutPolicy::Fixed { delay_us: 50_000 },
            arrival_log: true,
            ..ReceiverConfig::default()
        });
        r.on_unit(10 * MS, PathId(3), meta(Modality::Text, 0, 7, 0), b"t")
            .expect("accepted");
        assert_eq!(drain(&mut r, 60 * MS).len(), 1);
        let log = r.take_arrival_log();
        assert_eq!(
            log,
            [ArrivalRecord {
                modality: Modality::Text,
                seq: 0,
                sync_index: 7,
                path: PathId(3),
                gen_us: 0,
                arrival_us: 10 * MS,
                present_us: Some(50 * MS),
            }]
        );
        assert!(r.take_arrival_log().is_empty());
    }

    #[test]
    fn hostile_inputs_are_counted_not_panics() {
        let mut r = Receiver::new(ReceiverConfig {
            max_payload_len: 4,
            ..ReceiverConfig::default()
        });
        assert_eq!(
            r.on_unit(0, PathId(0), meta(Modality::Text, 0, 0, 0), &[0; 5]),
            Err(RecvError::PayloadTooLarge { len: 5, max: 4 })
        );
        r.set_clock_offset(i64::MIN);
        r.on_unit(
            0,
            PathId(0),
            meta(Modality::Video, u64::MAX, u32::MAX, u64::MAX),
            b"",
        )
        .expect("pushes window");
        r.set_clock_offset(i64::MAX);
        r.on_unit(
            u64::MAX,
            PathId(0),
            meta(Modality::Audio, 0, u32::MAX, u64::MAX),
            b"",
        )
        .expect("accepted");
        r.handle_timeout(u64::MAX);
        while r.poll_playout(u64::MAX).is_some() {}
        while r.poll_ack(u64::MAX).is_some() {}
        let _ = r.poll_feedback(u64::MAX);
        r.finish(u64::MAX);
        let _ = r.summary();
    }
}
