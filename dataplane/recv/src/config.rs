//! Receiver configuration: the playout (alignment) policy and the limits and timers of the
//! reorder, ACK and feedback machinery.
//!
//! [`ReceiverConfig::default`] gives the values the draft's use case (an LLM digital-human
//! turn) needs; [`crate::Receiver::new`] repairs inconsistent values instead of failing, and
//! documents each repair on the field concerned.

use crate::Micros;

/// Largest `camp_audio_stretch_ppm`: 0.5 % of the audio rate.
pub(crate) const MAX_AUDIO_STRETCH_PPM: u32 = 5_000;

/// How the alignment buffer decides when a delivered unit is presented
/// (draft-song-tsvwg-camp-00 §4.4).
///
/// The variants are the baselines and the CAMP policy a benchmark crosses with schedulers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PlayoutPolicy {
    /// Present every unit the moment it is delivered in order (no alignment at all).
    OnArrival,
    /// Present each unit at `gen_time + clock_offset + delay_us`; a unit delivered after that
    /// instant is presented on delivery and counted late.
    Fixed {
        /// Constant delay from generation to presentation, network latency included.
        delay_us: u32,
    },
    /// WebRTC-style lip sync: audio is played out from a jitter buffer anchored on the first
    /// audio unit (`audio_delay_us` beyond that unit's transit time), text on delivery and
    /// video on delivery plus an extra delay; once per second the relative delay of the
    /// latest video and audio units is filtered and the video (or audio) extra delay is moved
    /// by half the filtered value, at most 80 ms per step and not at all within a 30 ms dead
    /// band (see the [`crate::playout`] module docs).
    LipSync {
        /// Jitter-buffer depth of the audio stream beyond the first audio unit's transit.
        audio_delay_us: u32,
    },
    /// CAMP alignment: one playout delay `D` shared by all modalities, so sync group `k` is
    /// presented at `gen_time_k + clock_offset + D`. `D` follows a high quantile of the
    /// observed group completion latencies plus a margin: it rises at once when a group is
    /// late and decays slowly (see the [`crate::playout`] module docs).
    Camp {
        /// `D` before any group has been observed.
        initial_delay_us: u32,
        /// Lower bound of `D`.
        min_delay_us: u32,
        /// Upper bound of `D`.
        max_delay_us: u32,
        /// Quantile of the recent group completion latencies `D` targets, in `0.0..=1.0`
        /// (values outside are clamped, NaN becomes 0.99).
        quantile: f64,
    },
}

impl PlayoutPolicy {
    /// The CAMP policy with the defaults this crate recommends: start at 150 ms, stay within
    /// 20..=1000 ms, target the p99 completion latency.
    pub const fn camp_default() -> Self {
        PlayoutPolicy::Camp {
            initial_delay_us: 150_000,
            min_delay_us: 20_000,
            max_delay_us: 1_000_000,
            quantile: 0.99,
        }
    }

    /// Short name for tables ("on-arrival", "fixed", "lip-sync", "camp").
    pub const fn name(&self) -> &'static str {
        match self {
            PlayoutPolicy::OnArrival => "on-arrival",
            PlayoutPolicy::Fixed { .. } => "fixed",
            PlayoutPolicy::LipSync { .. } => "lip-sync",
            PlayoutPolicy::Camp { .. } => "camp",
        }
    }
}

/// Everything that configures a [`crate::Receiver`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReceiverConfig {
    /// Alignment policy (draft §4.4).
    pub playout: PlayoutPolicy,
    /// Longest time a new unit waits before it is acknowledged (default 5 ms).
    pub ack_delay_us: u32,
    /// Number of unacknowledged units that triggers an ACK at once (default 8; 0 means 1).
    pub ack_every_units: u32,
    /// Period of the alignment feedback report (default 100 ms; 0 disables feedback).
    pub feedback_interval_us: u32,
    /// Shortest time a later unit waits before a gap in a droppable stream is declared lost,
    /// whatever the path RTT difference (default 10 ms).
    pub min_gap_wait_us: u32,
    /// How long a path that delivered a copy of a stream's unit keeps counting in that
    /// stream's gap wait (`path_delta / 2` over the paths that carry the stream; default 2 s,
    /// about 50 video frames). A path that never carries a stream, such as an idle slow path,
    /// then does not make the stream's gaps wait for it.
    pub path_memory_us: u32,
    /// Width of each stream's reorder window in units: a unit at or beyond
    /// `in_order + max_units_ahead` is refused (reliable) or pushes the window forward
    /// (droppable). Default 1024; clamped to 2..=65536.
    pub max_units_ahead: u32,
    /// Farthest a droppable stream may jump in one unit, in seqs above its in-order point
    /// (default 2^20, about 4.8 hours of 60 fps video dropped at the sender; at least
    /// `max_units_ahead`). A unit beyond it is refused ([`crate::RecvError::SeqJump`]):
    /// every seq it passes over would be declared lost, so without a bound a peer could
    /// make the loss figures read up to 2^64 with one unit.
    pub max_droppable_jump: u64,
    /// Most units held at once in reorder and playout buffers together (default 8192).
    pub max_buffered_units: u32,
    /// Most payload bytes held at once (default 64 MiB).
    pub max_buffered_bytes: u64,
    /// Longest payload accepted (default 1 MiB; values above 16 MiB become 16 MiB).
    pub max_payload_len: u32,
    /// A non-key video unit delivered more than this after its scheduled presentation is
    /// skipped rather than shown (default 40 ms, one frame at 25 fps; `u32::MAX` never skips).
    pub video_skip_late_us: u32,
    /// CAMP policy: margin added to the quantile target (default 5 ms).
    pub camp_margin_us: u32,
    /// CAMP policy: how fast `D` decays towards its target, in µs per second of session time
    /// (default 4 ms/s, i.e. 0.4 % playback-rate change, below audible tempo change).
    pub camp_decay_us_per_s: u32,
    /// CAMP policy: number of recent sync groups whose completion latency forms the quantile
    /// window (default 256, about 10 s at 25 groups/s; clamped to 1..=4096).
    pub camp_window_groups: u32,
    /// CAMP policy: when `D` rises, move the units already waiting in the presentation queue
    /// later by the same amount, so that a sync group never straddles two values of `D`
    /// (default on).
    pub camp_retime_queue: bool,
    /// CAMP policy: lower the applied `D` only where the audio stream has a gap (a silence,
    /// the start of a turn), so that the audio clock never runs fast during speech (default
    /// on; off applies every decay at once, the rule before issue 12's finding). Raises take
    /// effect at once either way. See `playout.rs`.
    pub camp_lower_in_silence: bool,
    /// CAMP policy with `camp_lower_in_silence`: how far the applied `D` may also fall
    /// *during* speech, in µs per second of audio (parts per million of the audio rate), for a
    /// player that resamples audio to the presentation times (default 0: never; clamped to
    /// 5000, i.e. at most 0.5 % faster than real time). A player with a free-running audio
    /// clock must keep 0.
    pub camp_audio_stretch_ppm: u32,
    /// Modalities the turn carries (default all three). A sync group is finalised once every
    /// expected modality's in-order point has passed it; a modality that is not expected does
    /// not hold groups open. A modality ends early by sending `END_OF_TURN`.
    pub expected_modalities: [bool; 3],
    /// An expected modality that has sent nothing this long after the session's first unit
    /// stops holding sync groups open (default 2 s: TTS and avatar rendering start after the
    /// first text tokens).
    pub unseen_modality_grace_us: u32,
    /// Record one [`crate::ArrivalRecord`] per accepted unit (default off; allocates).
    pub arrival_log: bool,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            playout: PlayoutPolicy::camp_default(),
            ack_delay_us: 5_000,
            ack_every_units: 8,
            feedback_interval_us: 100_000,
            min_gap_wait_us: 10_000,
            path_memory_us: 2_000_000,
            max_units_ahead: 1024,
            max_droppable_jump: 1 << 20,
            max_buffered_units: 8192,
            max_buffered_bytes: 64 << 20,
            max_payload_len: 1 << 20,
            video_skip_late_us: 40_000,
            camp_margin_us: 5_000,
            camp_decay_us_per_s: 4_000,
            camp_window_groups: 256,
            camp_retime_queue: true,
            camp_lower_in_silence: true,
            camp_audio_stretch_ppm: 0,
            expected_modalities: [true; 3],
            unseen_modality_grace_us: 2_000_000,
            arrival_log: false,
        }
    }
}

/// Largest payload the pool's size classes can hold.
pub(crate) const MAX_PAYLOAD_LIMIT: u32 = 1 << 24;
/// Largest reorder window per stream.
pub(crate) const MAX_UNITS_AHEAD: u32 = 1 << 16;
/// Largest CAMP quantile window.
pub(crate) const MAX_CAMP_WINDOW: u32 = 4096;

impl ReceiverConfig {
    /// Returns a copy with every out-of-range value repaired as the field docs describe.
    pub(crate) fn normalised(mut self) -> Self {
        self.ack_every_units = self.ack_every_units.max(1);
        self.max_units_ahead = self.max_units_ahead.clamp(2, MAX_UNITS_AHEAD);
        self.max_droppable_jump = self.max_droppable_jump.max(u64::from(self.max_units_ahead));
        self.max_buffered_units = self.max_buffered_units.max(1);
        self.max_payload_len = self.max_payload_len.min(MAX_PAYLOAD_LIMIT);
        self.camp_window_groups = self.camp_window_groups.clamp(1, MAX_CAMP_WINDOW);
        self.camp_audio_stretch_ppm = self.camp_audio_stretch_ppm.min(MAX_AUDIO_STRETCH_PPM);
        if let PlayoutPolicy::Camp {
            initial_delay_us,
            min_delay_us,
            max_delay_us,
            quantile,
        } = self.playout
        {
            let (lo, hi) = if min_delay_us <= max_delay_us {
                (min_delay_us, max_delay_us)
            } else {
                (max_delay_us, min_delay_us)
            };
            let q = if quantile.is_nan() {
                0.99
            } else {
                quantile.clamp(0.0, 1.0)
            };
            self.playout = PlayoutPolicy::Camp {
                initial_delay_us: initial_delay_us.clamp(lo, hi),
                min_delay_us: lo,
                max_delay_us: hi,
                quantile: q,
            };
        }
        self
    }

    /// `ack_delay_us` as [`Micros`].
    pub(crate) fn ack_delay(&self) -> Micros {
        Micros::from(self.ack_delay_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_repairs_inverted_camp_bounds_and_nan_quantile() {
        let cfg = ReceiverConfig {
            playout: PlayoutPolicy::Camp {
                initial_delay_us: 5,
                min_delay_us: 100,
                max_delay_us: 10,
                quantile: f64::NAN,
            },
            max_units_ahead: 0,
            max_droppable_jump: 1,
            ..ReceiverConfig::default()
        }
        .normalised();
        assert_eq!(
            cfg.playout,
            PlayoutPolicy::Camp {
                initial_delay_us: 10,
                min_delay_us: 10,
                max_delay_us: 100,
                quantile: 0.99
            }
        );
        assert_eq!(cfg.max_units_ahead, 2);
        assert_eq!(cfg.max_droppable_jump, 2);
    }
}
