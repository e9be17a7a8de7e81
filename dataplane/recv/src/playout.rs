//! Client-side alignment (draft-song-tsvwg-camp-00 §4.4): decides when each in-order unit is
//! presented, under one of the [`PlayoutPolicy`] variants. The units then wait in the
//! presentation queue (`present.rs`) until that time.
//!
//! Rules shared by every policy:
//! - A unit delivered after its scheduled presentation time is presented on delivery and
//!   counted late; a late audio unit is a stall of `delivered - scheduled`. Policies keep their
//!   timeline after a stall (later units are not shifted), so a stall costs exactly its own
//!   lateness and the next on-time unit plays at its scheduled time.
//! - A non-key video unit more than `video_skip_late_us` (default 40 ms, one frame at 25 fps)
//!   late is skipped: by the time it could be shown the next frame is due, and showing a stale
//!   face is worse than holding the last one. It is still handed to the caller at once, marked
//!   `skipped`, so a decoder can use it as a reference. Keyframes are never skipped, since the
//!   frames after them cannot be decoded without them.
//! - Presentation times of one modality never go backwards.
//!
//! CAMP policy (`D` adaptation): every delivered unit has a latency `d - (g + offset)` from
//! generation to in-order delivery `d` (its arrival, or later when it waited behind a gap); a
//! group's completion latency is the largest latency among its units, i.e. the smallest `D`
//! that would have presented the whole group on time. The *wanted* delay targets the
//! configured quantile of the last `camp_window_groups` completion latencies plus
//! `camp_margin_us`, within the policy bounds. It rises at once, both when the target rises
//! and when a single reliable unit arrives with latency + margin above it (so the speech
//! after a late frame is covered), and it decays towards the target at
//! `camp_decay_us_per_s`. A single late droppable unit (a video frame, held over or
//! skipped) does not raise it by itself: the raise would add that frame's lateness to every
//! unit after it, and with no silence in the audio it would stay until the turn ends;
//! sustained video lateness raises it through the completion quantile. Transport
//! hints ([`TransportHint`]) raise it the same way before the late units arrive.
//!
//! Every unit, whatever its modality, is presented at `g + offset + D`, where `D` is the
//! *applied* delay, which moves as follows:
//! - It rises at once whenever the wanted delay rises above it (a stall is worse than drift).
//!   A raise also moves the units already waiting in the presentation queue (on time, not yet
//!   due) later by the raise (`camp_retime_queue`), so a sync group whose audio was queued
//!   under the old `D` and whose video comes under the new one is still presented together.
//! - It is lowered (to the wanted delay) only where the audio stream has a gap: when the
//!   audio unit being scheduled starts a talkspurt. That is the first audio unit of the
//!   session, the first after an `END_OF_TURN` audio unit, or one whose generation time is
//!   at least two frame intervals after the previous audio unit's while its seq follows it
//!   (no audio was due for at least one interval: a silence, not a loss). The frame interval
//!   is the largest of the last [`AUDIO_INTERVALS`] generation-time steps inside talkspurts
//!   (the stream's own frame length, learnt, so a longer frame is never taken for a
//!   silence). The drop is at most the silence, `step - interval`, so the first unit of the
//!   talkspurt never starts before the previous one has finished. Before any audio unit has
//!   been scheduled, `D` follows the wanted delay down at once.
//! - So during continuous speech consecutive audio units are presented exactly their
//!   generation-time difference apart (the audio clock runs at the sender's rate, as a
//!   free-running audio device does), except where `D` rises. Video and text use the same
//!   `D`; a unit generated before the audio unit that last lowered `D` keeps the delay of
//!   the audio of its time (the applied delay plus that drop; raises since move both), so a
//!   late video frame of the previous talkspurt is still shown with its audio, and text and
//!   video queued ahead of that audio unit for its time or later move down with it.
//!
//! A stream without gaps (a codec that encodes its pauses, as the simulator's turns and the
//! A/V lab's Opus do) keeps the delay it rose to until its turn ends. For a player that
//! resamples audio to the presentation times, `camp_audio_stretch_ppm` (default 0, at most
//! 5000) also lets `D` fall during speech by at most that many µs per second of audio: each
//! audio unit continuing a talkspurt `step` after the previous one is presented at least
//! `step · (1 − ppm / 10^6)` after it, a bounded time-stretch the presentation times carry.
//! With `camp_lower_in_silence` off, the applied delay equals the wanted one (the rule
//! before issue 12: each decay step moves the audio clock, presenting about 0.4 % faster than
//! real time at the default decay, unannounced).
//!
//! LipSync policy (WebRTC `stream_synchronization` rule, re-derived): audio is scheduled at
//! `g + offset + anchor + audio_extra`, where `anchor` is the first audio unit's transit time
//! plus `audio_delay_us` (its jitter buffer); video at delivery + `video_extra`; text on
//! delivery. Once per 1000 ms, from the latest audio and video units of the period,
//! `relative = (a_v - a_a) - (g_v - g_a)` and `diff = relative + video_delay - audio_delay`
//! (the current buffering of each stream, so `diff` is the presentation offset the current
//! settings give); `avg = (3 avg + diff) / 4`; nothing happens while `|avg| < 30 ms`; otherwise
//! `step = clamp(avg / 2, ±80 ms)`. A positive step (video shown too late) first removes video
//! extra delay, else adds audio extra delay; a negative one first removes audio extra delay,
//! else adds video extra delay.

use camp_wire::{Modality, UnitFlags};

use crate::{Micros, UnitMeta, config::PlayoutPolicy};

/// Number of recent in-talkspurt audio generation-time steps the frame interval is learnt
/// from (CAMP policy).
pub const AUDIO_INTERVALS: usize = 8;

/// LipSync update period.
pub const LIP_SYNC_PERIOD_US: Micros = 1_000_000;
/// LipSync dead band: no correction while the filtered offset is smaller.
pub const LIP_SYNC_DEAD_BAND_US: i64 = 30_000;
/// LipSync largest correction per period.
pub const LIP_SYNC_MAX_STEP_US: i64 = 80_000;
/// Upper bound of either LipSync extra delay.
const LIP_SYNC_MAX_EXTRA_US: u64 = 2_000_000;

/// What the transport tells the alignment buffer ahead of time (draft §4.4: "continuous
/// feedback from the transport layer"), so the CAMP policy raises `D` before late units
/// arrive rather than after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportHint {
    /// Upcoming units are expected to take up to this long from generation to arrival, e.g.
    /// after the sender moved a stream to a slower path or reinjected units on one.
    ExpectedLatency {
        /// Expected generation-to-arrival latency, µs.
        latency_us: u32,
    },
    /// Units may now use paths whose RTTs differ by `path_delta_us` (MP_RTT exchange,
    /// draft-ietf-tsvwg-multipath-dccp-11 §4.2.7): with symmetric paths the slow one adds
    /// `path_delta / 2` one way, so upcoming latency may reach the fastest group completion
    /// latency seen recently plus that.
    PathDelta {
        /// Max − min smoothed RTT over the paths in use, µs.
        path_delta_us: u32,
    },
}

/// A unit released for presentation by [`crate::Receiver::poll_playout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayedUnit<'a> {
    /// The unit's metadata as it arrived.
    pub meta: UnitMeta,
    /// Path the (first copy of the) unit arrived on.
    pub path: crate::PathId,
    /// The payload; valid until the next call on the receiver.
    pub payload: &'a [u8],
    /// Local arrival time.
    pub arrival_us: Micros,
    /// Local time the unit was delivered in order (after reordering).
    pub delivered_us: Micros,
    /// Local presentation time: the scheduled time, or the delivery time for a late unit.
    /// Under the CAMP policy, two consecutive audio units of one talkspurt are presented
    /// exactly their generation times apart unless `D` rose between them (then further), or
    /// at least `1 − camp_audio_stretch_ppm / 10^6` of it when a stretch is allowed.
    pub present_us: Micros,
    /// Delivered after its scheduled presentation time.
    pub late: bool,
    /// A late video unit not to be shown (see the module docs); still usable for decoding.
    pub skipped: bool,
}

/// The presentation decision for one delivered unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// When to release the unit.
    pub(crate) due: Micros,
    /// How long after its scheduled time it was delivered (0 when on time).
    pub(crate) late_by: Micros,
    /// Skipped video (see module docs).
    pub(crate) skipped: bool,
}

/// State of the CAMP shared playout delay `D`.
#[derive(Debug)]
pub(crate) struct CampDelay {
    /// Wanted delay (rises at once, decays towards `target`).
    d: Micros,
    /// Applied delay: what units are scheduled with (see the module docs).
    applied: Micros,
    /// Lower `applied` only at audio gaps (else it equals `d`).
    hold: bool,
    /// An audio unit has been scheduled: from then on `applied` falls only at audio gaps.
    audio_clock: bool,
    /// How far `applied` may fall during speech, µs per second of audio (0: not at all).
    stretch_ppm: u64,
    stretch_acc: u64,
    min: Micros,
    max: Micros,
    quantile: f64,
    margin: Micros,
    decay_per_s: Micros,
    window: Vec<Micros>,
    window_cap: usize,
    window_head: usize,
    scratch: Vec<Micros>,
    target: Option<Micros>,
    last_decay_at: Option<Micros>,
    decay_acc: u64,
    raises: u64,
}

impl CampDelay {
    fn new(
        initial: u32,
        min: u32,
        max: u32,
        quantile: f64,
        margin: u32,
        decay: u32,
        window: u32,
    ) -> Self {
        let cap = window.max(1) as usize;
        CampDelay {
            d: Micros::from(initial),
            applied: Micros::from(initial),
            hold: true,
            audio_clock: false,
            stretch_ppm: 0,
            stretch_acc: 0,
            min: Micros::from(min),
            max: Micros::from(max),
            quantile,
            margin: Micros::from(margin),
            decay_per_s: Micros::from(decay),
            window: Vec::with_capacity(cap),
            window_cap: cap,
            window_head: 0,
            scratch: Vec::with_capacity(cap),
            target: None,
            last_decay_at: None,
            decay_acc: 0,
            raises: 0,
        }
    }

    /// Raises `D` at once so that a unit of latency `latency` would be on time with margin.
    fn cover(&mut self, latency: Micros) {
        let need = latency
            .saturating_add(self.margin)
            .clamp(self.min, self.max);
        if need > self.d {
            self.d = need;
        }
        self.sync_applied();
    }

    /// Keeps the applied delay consistent with the wanted one: it rises at once, and falls
    /// at once while no audio clock runs (or holding is off).
    fn sync_applied(&mut self) {
        if self.d > self.applied {
            self.applied = self.d;
            self.raises += 1;
        } else if !self.hold || !self.audio_clock {
            self.applied = self.d;
        }
    }

    /// An audio unit continues a talkspurt `step` after the previous one: with a stretch
    /// allowance, lowers the applied delay towards the wanted one by at most `step · ppm`.
    /// Returns the applied delay before.
    fn stretch(&mut self, step: Micros) -> Micros {
        let before = self.applied;
        if self.stretch_ppm == 0 || self.d >= self.applied {
            self.stretch_acc = 0;
            return before;
        }
        self.stretch_acc = self
            .stretch_acc
            .saturating_add(step.saturating_mul(self.stretch_ppm));
        let allow = self.stretch_acc / 1_000_000;
        self.stretch_acc %= 1_000_000;
        self.applied = self.d.max(self.applied.saturating_sub(allow));
        before
    }

    /// An audio talkspurt starts after a silence of `slack` (beyond the previous unit's
    /// own interval): lowers the applied delay to the wanted one, by at most `slack`.
    /// Returns the applied delay before.
    fn lower_at_gap(&mut self, slack: Micros) -> Micros {
        let before = self.applied;
        self.applied = self.d.max(self.applied.saturating_sub(slack));
        before
    }

    /// Adds a completed group's latency to the quantile window and re-targets.
    fn on_group_complete(&mut self, latency: Micros) {
        if self.window.len() < self.window_cap {
            self.window.push(latency);
        } else if let Some(slot) = self.window.get_mut(self.window_head) {
            *slot = latency;
            self.window_head = (self.window_head + 1) % self.window_cap;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.window);
        let n = self.scratch.len();
        // Nearest-rank quantile: the smallest value with at least q·n samples at or below.
        let rank = ((self.quantile * n as f64).ceil() as usize).clamp(1, n.max(1));
        let q = if n == 0 {
            0
        } else {
            let (_, v, _) = self.scratch.select_nth_unstable(rank - 1);
            *v
        };
        let target = q.saturating_add(self.margin).clamp(self.min, self.max);
        self.target = Some(target);
        if target > self.d {
            self.d = target;
        }
        self.sync_applied();
    }

    /// Smallest completion latency in the window (0 before any group): the latency of the
    /// fastest path as the receiver sees it.
    fn window_min(&self) -> Micros {
        self.window.iter().copied().min().unwrap_or(0)
    }

    /// Lets `D` decay towards its target for the time elapsed since the last call.
    fn advance(&mut self, now: Micros) {
        let last = *self.last_decay_at.get_or_insert(now);
        if now <= last {
            return;
        }
        self.last_decay_at = Some(now);
        let Some(target) = self.target else { return };
        if self.d <= target {
            self.decay_acc = 0;
            return;
        }
        self.decay_acc = self
            .decay_acc
            .saturating_add((now - last).saturating_mul(self.decay_per_s));
        let step = self.decay_acc / 1_000_000;
        self.decay_acc %= 1_000_000;
        self.d = self.d.saturating_sub(step).max(target).max(self.min);
        self.sync_applied();
    }
}

/// State of the WebRTC-style lip-sync loop.
#[derive(Debug, Default)]
pub(crate) struct LipSync {
    audio_delay: Micros,
    audio_anchor: Option<Micros>,
    audio_extra: Micros,
    video_extra: Micros,
    avg_diff: i64,
    next_update: Option<Micros>,
    /// Latest audio unit of the period: (arrival, local gen, current audio buffering).
    latest_audio: Option<(Micros, Micros, i64)>,
    /// Latest video unit of the period: (arrival, local gen).
    latest_video: Option<(Micros, Micros)>,
    steps: u64,
}

/// One filter-and-step round of the lip-sync loop: returns the new filtered value and the
/// correction to apply (0 inside the dead band).
pub(crate) fn lip_sync_filter(avg: i64, diff: i64) -> (i64, i64) {
    let avg = (3 * avg + diff) / 4;
    if avg.abs() < LIP_SYNC_DEAD_BAND_US {
        return (avg, 0);
    }
    (
        avg,
        (avg / 2).clamp(-LIP_SYNC_MAX_STEP_US, LIP_SYNC_MAX_STEP_US),
    )
}

impl LipSync {
    fn advance(&mut self, now: Micros) {
        let next = *self
            .next_update
            .get_or_insert(now.saturating_add(LIP_SYNC_PERIOD_US));
        if now < next {
            return;
        }
        // Periods missed while idle are not replayed: the next one starts now.
        self.next_update = Some(if now - next >= LIP_SYNC_PERIOD_US {
            now.saturating_add(LIP_SYNC_PERIOD_US)
        } else {
            next.saturating_add(LIP_SYNC_PERIOD_US)
        });
        let (Some((aa, ag, audio_delay)), Some((va, vg))) =
            (self.latest_audio.take(), self.latest_video.take())
        else {
            return;
        };
        let relative = (va as i64 - aa as i64) - (vg as i64 - ag as i64);
        let diff = relative + self.video_extra as i64 - audio_delay;
        let (avg, step) = lip_sync_filter(self.avg_diff, diff);
        self.avg_diff = avg;
        if step == 0 {
            return;
        }
        self.steps += 1;
        let s = step.unsigned_abs();
        if step > 0 {
            if self.video_extra > 0 {
                self.video_extra = self.video_extra.saturating_sub(s);
            } else {
                self.audio_extra = (self.audio_extra + s).min(LIP_SYNC_MAX_EXTRA_US);
            }
        } else if self.audio_extra > 0 {
            self.audio_extra = self.audio_extra.saturating_sub(s);
        } else {
            self.video_extra = (self.video_extra + s).min(LIP_SYNC_MAX_EXTRA_US);
        }
    }
}

/// What the CAMP policy tracks of the audio stream to find its gaps (see the module docs).
#[derive(Debug, Default)]
struct AudioGaps {
    /// The last audio unit scheduled: (local gen, seq, END_OF_TURN).
    last: Option<(Micros, u64, bool)>,
    /// Recent in-talkspurt generation-time steps (ring).
    steps: [Micros; AUDIO_INTERVALS],
    len: usize,
    head: usize,
    /// Generation-time step of the last unit if it continued a talkspurt, else 0.
    continued: Micros,
}

impl AudioGaps {
    /// The stream's frame interval: the largest recent in-talkspurt step (0 before any).
    fn interval(&self) -> Micros {
        self.steps.iter().take(self.len).copied().max().unwrap_or(0)
    }

    fn push_step(&mut self, step: Micros) {
        if let Some(slot) = self.steps.get_mut(self.head) {
            *slot = step;
        }
        self.head = (self.head + 1) % AUDIO_INTERVALS;
        self.len = (self.len + 1).min(AUDIO_INTERVALS);
    }

    /// Observes the next audio unit; returns how far the delay may fall before it (the
    /// silence before it) if it starts a talkspurt, `None` if it continues one.
    fn on_audio(&mut self, meta: &UnitMeta, local_gen: Micros) -> Option<Micros> {
        let eot = meta.flags.contains(UnitFlags::END_OF_TURN);
        let last = self.last.replace((local_gen, meta.seq, eot));
        self.continued = 0;
        let Some((g, seq, last_eot)) = last else {
            return Some(Micros::MAX);
        };
        let step = local_gen.saturating_sub(g);
        let interval = self.interval();
        let follows = seq.checked_add(1) == Some(meta.seq);
        if last_eot {
            return Some(step.saturating_sub(interval));
        }
        if !follows {
            // A loss (droppable audio): the missing frames' time is concealment, not a gap.
            return None;
        }
        if interval > 0 && step >= interval.saturating_mul(2) {
            return Some(step - interval);
        }
        if step > 0 {
            self.push_step(step);
            self.continued = step;
        }
        None
    }
}

/// Policy state and the per-modality presentation clock.
#[derive(Debug)]
pub(crate) struct Alignment {
    policy: PlayoutPolicy,
    camp: Option<CampDelay>,
    audio: AudioGaps,
    /// The last drop of the applied CAMP delay: (local gen of the audio unit that started the
    /// talkspurt, the drop). Units generated earlier keep the delay of their audio, the
    /// applied one plus the drop (raises since move both).
    drop_at: Option<(Micros, Micros)>,
    /// A drop to apply to the presentation queue: (sender gen from, amount).
    pending_drop: Option<(Micros, Micros)>,
    lip: LipSync,
    last_due: [Micros; Modality::COUNT],
    video_skip_late: Micros,
}

impl Alignment {
    /// State for `cfg.playout` (the config is already normalised).
    pub(crate) fn new(cfg: &crate::ReceiverConfig) -> Self {
        let camp = match cfg.playout {
            PlayoutPolicy::Camp {
                initial_delay_us,
                min_delay_us,
                max_delay_us,
                quantile,
            } => Some(CampDelay {
                hold: cfg.camp_lower_in_silence,
                stretch_ppm: u64::from(cfg.camp_audio_stretch_ppm),
                ..CampDelay::new(
                    initial_delay_us,
                    min_delay_us,
                    max_delay_us,
                    quantile,
                    cfg.camp_margin_us,
                    cfg.camp_decay_us_per_s,
                    cfg.camp_window_groups,
                )
            }),
            _ => None,
        };
        let lip = match cfg.playout {
            PlayoutPolicy::LipSync { audio_delay_us } => LipSync {
                audio_delay: Micros::from(audio_delay_us),
                ..LipSync::default()
            },
            _ => LipSync::default(),
        };
        Alignment {
            policy: cfg.playout,
            camp,
            audio: AudioGaps::default(),
            drop_at: None,
            pending_drop: None,
            lip,
            last_due: [0; Modality::COUNT],
            video_skip_late: Micros::from(cfg.video_skip_late_us),
        }
    }

    /// The playout delay the policy currently applies from generation to presentation:
    /// `D` for CAMP, the fixed delay, the audio buffering for lip sync, 0 on arrival.
    pub(crate) fn playout_delay(&self) -> Micros {
        match self.policy {
            PlayoutPolicy::OnArrival => 0,
            PlayoutPolicy::Fixed { delay_us } => Micros::from(delay_us),
            PlayoutPolicy::LipSync { .. } => self.lip.audio_delay + self.lip.audio_extra,
            PlayoutPolicy::Camp { .. } => self.camp.as_ref().map_or(0, |c| c.applied),
        }
    }

    /// Moves each modality's latest scheduled presentation time later by `raise` if it is
    /// still ahead of `now` (the queued units behind it were moved by the same amount).
    pub(crate) fn shift_last_due(&mut self, raise: Micros, now: Micros) {
        for last in self.last_due.iter_mut().filter(|l| **l > now) {
            *last = last.saturating_add(raise);
        }
    }

    /// Current applied CAMP `D`, if the policy is CAMP.
    pub(crate) fn camp_delay(&self) -> Option<Micros> {
        self.camp.as_ref().map(|c| c.applied)
    }

    /// Current wanted CAMP delay (what `D` falls to at the next audio gap), if CAMP.
    pub(crate) fn camp_wanted_delay(&self) -> Option<Micros> {
        self.camp.as_ref().map(|c| c.d)
    }

    /// The drop of `D` the last scheduled unit caused, for the presentation queue: units of
    /// sender generation time `.0` or later move earlier by `.1`.
    pub(crate) fn take_pending_drop(&mut self) -> Option<(Micros, Micros)> {
        self.pending_drop.take()
    }

    /// After the queue moved by a drop: each modality's latest scheduled time that was still
    /// ahead of `now` becomes the latest left in the queue.
    pub(crate) fn set_last_due_after_drop(
        &mut self,
        latest: [Option<Micros>; Modality::COUNT],
        now: Micros,
    ) {
        // Audio never moves: every queued audio unit was generated before the talkspurt.
        let audio = Modality::Audio.index();
        for (_, (last, q)) in self
            .last_due
            .iter_mut()
            .zip(latest)
            .enumerate()
            .filter(|(i, _)| *i != audio)
        {
            if *last > now {
                *last = q.unwrap_or(now).max(now);
            }
        }
    }

    /// The CAMP delay for a unit generated at `local_gen`, after an audio unit has had its
    /// chance to lower it.
    fn camp_delay_for(&self, c: &CampDelay, local_gen: Micros) -> Micros {
        match self.drop_at {
            Some((g, drop)) if local_gen < g => c.applied.saturating_add(drop),
            _ => c.applied,
        }
    }

    /// CAMP: an audio unit is scheduled; lowers `D` if it starts a talkspurt.
    fn camp_on_audio(&mut self, meta: &UnitMeta, local_gen: Micros) {
        let Some(c) = self.camp.as_mut() else { return };
        let slack = self.audio.on_audio(meta, local_gen);
        let first = !c.audio_clock;
        c.audio_clock = true;
        if first || !c.hold {
            return;
        }
        let before = match slack {
            Some(slack) => c.lower_at_gap(slack),
            None => c.stretch(self.audio.continued),
        };
        if before > c.applied {
            let drop = before - c.applied;
            self.drop_at = Some((local_gen, drop));
            self.pending_drop = Some((meta.gen_time_us, drop));
        }
    }

    /// Number of times CAMP raised `D`.
    pub(crate) fn camp_raises(&self) -> u64 {
        self.camp.as_ref().map_or(0, |c| c.raises)
    }

    /// Current lip-sync extra delays (audio, video) and the number of corrections made.
    pub(crate) fn lip_sync_state(&self) -> (Micros, Micros, u64) {
        (self.lip.audio_extra, self.lip.video_extra, self.lip.steps)
    }

    /// Advances the time-driven parts of the policy (CAMP decay, lip-sync period).
    pub(crate) fn advance(&mut self, now: Micros) {
        if let Some(c) = self.camp.as_mut() {
            c.advance(now);
        }
        if matches!(self.policy, PlayoutPolicy::LipSync { .. }) {
            self.lip.advance(now);
        }
    }

    /// Observes a delivered unit's latency from generation to in-order delivery (CAMP raises
    /// `D` to cover it).
    pub(crate) fn on_delivery_latency(&mut self, latency: Micros) {
        if let Some(c) = self.camp.as_mut() {
            c.cover(latency);
        }
    }

    /// Observes a completed sync group's completion latency (CAMP quantile window).
    pub(crate) fn on_group_complete(&mut self, latency: Micros) {
        if let Some(c) = self.camp.as_mut() {
            c.on_group_complete(latency);
        }
    }

    /// Applies a transport hint: raises CAMP's `D` ahead of time; other policies ignore it.
    pub(crate) fn on_transport_hint(&mut self, hint: TransportHint) {
        let Some(c) = self.camp.as_mut() else { return };
        let latency = match hint {
            TransportHint::ExpectedLatency { latency_us } => Micros::from(latency_us),
            TransportHint::PathDelta { path_delta_us } => c
                .window_min()
                .saturating_add(Micros::from(path_delta_us / 2)),
        };
        c.cover(latency);
    }

    /// Decides when a unit delivered in order at `delivered` is presented.
    pub(crate) fn schedule(
        &mut self,
        meta: &UnitMeta,
        arrival: Micros,
        local_gen: Micros,
        delivered: Micros,
    ) -> Schedule {
        let m = meta.modality;
        let target = match self.policy {
            PlayoutPolicy::OnArrival => None,
            PlayoutPolicy::Fixed { delay_us } => {
                Some(local_gen.saturating_add(Micros::from(delay_us)))
            }
            PlayoutPolicy::Camp { .. } => {
                if m == Modality::Audio {
                    self.camp_on_audio(meta, local_gen);
                }
                let d = self
                    .camp
                    .as_ref()
                    .map_or(0, |c| self.camp_delay_for(c, local_gen));
                Some(local_gen.saturating_add(d))
            }
            PlayoutPolicy::LipSync { .. } => match m {
                Modality::Audio => {
                    let anchor = *self.lip.audio_anchor.get_or_insert(
                        arrival
                            .saturating_sub(local_gen)
                            .saturating_add(self.lip.audio_delay),
                    );
                    Some(
                        local_gen
                            .saturating_add(anchor)
                            .saturating_add(self.lip.audio_extra),
                    )
                }
                Modality::Video => {
                    self.lip.latest_video = Some((arrival, local_gen));
                    Some(delivered.saturating_add(self.lip.video_extra))
                }
                Modality::Text => None,
            },
        };
        let (mut due, late_by) = match target {
            Some(t) if delivered > t => (delivered, delivered - t),
            Some(t) => (t, 0),
            None => (delivered, 0),
        };
        if m == Modality::Video
            && late_by > self.video_skip_late
            && !meta.flags.contains(UnitFlags::KEYFRAME)
        {
            return Schedule {
                due: delivered,
                late_by,
                skipped: true,
            };
        }
        let i = m.index();
        if let Some(last) = self.last_due.get_mut(i) {
            due = due.max(*last);
            *last = due;
        }
        if m == Modality::Audio && matches!(self.policy, PlayoutPolicy::LipSync { .. }) {
            self.lip.latest_audio = Some((arrival, local_gen, due as i64 - arrival as i64));
        }
        Schedule {
            due,
            late_by,
            skipped: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReceiverConfig;

    #[test]
    fn lip_sync_filter_has_dead_band_and_clamp() {
        // avg = (3·0 + 100 ms)/4 = 25 ms: inside the 30 ms dead band.
        assert_eq!(lip_sync_filter(0, 100_000), (25_000, 0));
        // avg = (3·20 ms + 60 ms)/4 = 30 ms: at the band edge, step avg/2 = 15 ms.
        assert_eq!(lip_sync_filter(20_000, 60_000), (30_000, 15_000));
        // avg = (3·200 ms + 400 ms)/4 = 250 ms: step 125 ms clamped to 80 ms.
        assert_eq!(lip_sync_filter(200_000, 400_000), (250_000, 80_000));
        assert_eq!(lip_sync_filter(-200_000, -400_000), (-250_000, -80_000));
        assert_eq!(lip_sync_filter(-20_000, -39_000), (-24_750, 0));
    }

    #[test]
    fn camp_quantile_is_nearest_rank_with_margin_and_bounds() {
        let mut c = CampDelay::new(10_000, 10_000, 200_000, 0.9, 1_000, 4_000, 10);
        for lat in [10, 20, 30, 40, 50, 60, 70, 80, 90, 100].map(|ms| ms * 1_000) {
            c.on_group_complete(lat);
        }
        // p90 of 10..=100 ms by nearest rank is the 9th value, 90 ms; + 1 ms margin.
        assert_eq!(c.target, Some(91_000));
        assert_eq!(c.d, 91_000);
        // The window slides: ten 20 ms groups push the old values out.
        for _ in 0..10 {
            c.on_group_complete(20_000);
        }
        assert_eq!(c.target, Some(21_000));
        assert_eq!(c.d, 91_000, "D never drops at once");
        c.advance(0);
        c.advance(1_000_000);
        assert_eq!(c.d, 87_000, "4 ms per second");
        c.advance(100_000_000);
        assert_eq!(c.d, 21_000, "never below target");
    }

    fn audio(seq: u64, gen_us: Micros, flags: UnitFlags) -> UnitMeta {
        UnitMeta {
            modality: Modality::Audio,
            reliability: Modality::Audio.default_reliability(),
            flags,
            sync_index: 0,
            seq,
            gen_time_us: gen_us,
            deadline_us: 0,
            capture_id: camp_wire::CaptureId(0),
        }
    }

    #[test]
    fn audio_gaps_learn_the_frame_interval_and_find_silences() {
        let mut a = AudioGaps::default();
        let none = UnitFlags::empty();
        assert_eq!(
            a.on_audio(&audio(0, 0, none), 0),
            Some(Micros::MAX),
            "first"
        );
        assert_eq!(a.on_audio(&audio(1, 20_000, none), 20_000), None);
        assert_eq!(a.interval(), 20_000);
        // 39 ms: under two frames, not a silence.
        assert_eq!(a.on_audio(&audio(2, 59_000, none), 59_000), None);
        assert_eq!(a.interval(), 39_000, "the largest recent step");
        // 100 ms after a 39 ms step: a silence of 100 − 39 ms.
        assert_eq!(a.on_audio(&audio(3, 159_000, none), 159_000), Some(61_000));
        assert_eq!(a.interval(), 39_000, "a silence is not a frame");
        // A seq skipped (a lost frame): its time is not a silence.
        assert_eq!(a.on_audio(&audio(5, 300_000, none), 300_000), None);
        // Eight 20 ms steps push the 39 ms one out of the window.
        for i in 0..8u64 {
            let g = 320_000 + i * 20_000;
            assert_eq!(a.on_audio(&audio(6 + i, g, none), g), None);
        }
        assert_eq!(a.interval(), 20_000);
        // After END_OF_TURN any step beyond one frame is room to lower.
        let g = 480_000;
        assert_eq!(a.on_audio(&audio(14, g, UnitFlags::END_OF_TURN), g), None);
        assert_eq!(
            a.on_audio(&audio(15, g + 30_000, none), g + 30_000),
            Some(10_000)
        );
    }

    #[test]
    fn lip_sync_corrections_clamp_and_respect_dead_band() {
        let cfg = ReceiverConfig {
            playout: PlayoutPolicy::LipSync { audio_delay_us: 0 },
            ..ReceiverConfig::default()
        };
        let mut a = Alignment::new(&cfg);
        let meta = |m: Modality, g: Micros| UnitMeta {
            modality: m,
            reliability: m.default_reliability(),
            flags: UnitFlags::empty(),
            sync_index: 0,
            seq: 0,
            gen_time_us: g,
            deadline_us: 0,
            capture_id: camp_wire::CaptureId(0),
        };
        a.advance(0);
        // Video transit 500 ms, audio 10 ms: video shown 490 ms after its audio.
        let mut t = 0;
        let mut prev = (0, 0, 0);
        let mut steps_seen = Vec::new();
        for period in 0..6u64 {
            let g = period * 1_000_000;
            a.schedule(&meta(Modality::Audio, g), g + 10_000, g, g + 10_000);
            a.schedule(&meta(Modality::Video, g), g + 500_000, g, g + 500_000);
            t += LIP_SYNC_PERIOD_US;
            a.advance(t);
            let now = a.lip_sync_state();
            steps_seen.push(now.0 as i64 - prev.0 as i64);
            prev = now;
        }
        // avg: 122.5 ms → step 61.25 ms; then grows until clamped at 80 ms.
        assert_eq!(steps_seen[0], 61_250);
        assert!(steps_seen.iter().all(|&s| s <= LIP_SYNC_MAX_STEP_US));
        assert!(steps_seen.contains(&LIP_SYNC_MAX_STEP_US), "{steps_seen:?}");
        assert_eq!(
            prev.1, 0,
            "video had no extra delay to remove, so audio was delayed"
        );
    }
}
