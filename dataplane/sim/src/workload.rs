//! A seeded LLM "digital human" turn: text tokens, 20 ms audio frames and 25 fps video,
//! with sync indices every 40 ms (one video frame, two audio frames; a token takes the index
//! of the audio frame being spoken when it is produced).
//!
//! This is the simple real-time turn used by the core tests; every unit is produced at its
//! media time.

use camp_wire::{Modality, SyncIndex, UnitFlags};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Turn parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnConfig {
    /// Length of the turn from its start to the last video frame, ms.
    pub duration_ms: u64,
    /// Time to first token range, ms.
    pub ttft_ms: (u64, u64),
    /// Text tokens per second range.
    pub tokens_per_sec: (f64, f64),
    /// Text unit size range, bytes.
    pub text_bytes: (usize, usize),
    /// Audio frame size range, bytes (20 ms Opus-like frames).
    pub audio_bytes: (usize, usize),
    /// P-frame size range, bytes.
    pub p_frame_bytes: (usize, usize),
    /// I-frame size range, bytes.
    pub i_frame_bytes: (usize, usize),
    /// I-frame interval range, ms.
    pub i_frame_every_ms: (u64, u64),
    /// Deadlines relative to generation, ms: text, audio, video.
    pub deadlines_ms: [u32; 3],
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            duration_ms: 5_000,
            ttft_ms: (300, 600),
            tokens_per_sec: (30.0, 50.0),
            text_bytes: (10, 60),
            audio_bytes: (60, 80),
            p_frame_bytes: (6_000, 10_000),
            i_frame_bytes: (40_000, 80_000),
            i_frame_every_ms: (1_000, 2_000),
            deadlines_ms: [150, 150, 200],
        }
    }
}

/// One unit of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedUnit {
    /// Generation time, µs on the session clock.
    pub gen_us: u64,
    /// Modality.
    pub modality: Modality,
    /// Sync index.
    pub sync_index: SyncIndex,
    /// Payload size, bytes.
    pub size: usize,
    /// Flags.
    pub flags: UnitFlags,
    /// Deadline relative to generation, µs.
    pub deadline_us: u32,
}

/// Length of one sync index step.
pub const SYNC_STEP_US: u64 = 40_000;

/// Plans a turn starting at `start_us`; units sorted by generation time (ties: audio,
/// text, video).
pub fn plan_turn(cfg: &TurnConfig, start_us: u64, seed: u64) -> Vec<PlannedUnit> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let end_us = start_us + cfg.duration_ms * 1000;
    let index_at = |t: u64| ((t - start_us) / SYNC_STEP_US) as SyncIndex;
    let dl = |m: Modality| cfg.deadlines_ms[m.index()] * 1000;

    // Video: 25 fps for the whole turn, an I-frame first and then every 1–2 s.
    let mut next_i = start_us;
    let mut t = start_us;
    while t < end_us {
        let key = t >= next_i;
        let size = if key {
            next_i = t + rng.random_range(cfg.i_frame_every_ms.0..=cfg.i_frame_every_ms.1) * 1000;
            rng.random_range(cfg.i_frame_bytes.0..=cfg.i_frame_bytes.1)
        } else {
            rng.random_range(cfg.p_frame_bytes.0..=cfg.p_frame_bytes.1)
        };
        let flags = if key {
            UnitFlags::KEYFRAME
        } else {
            UnitFlags::empty()
        };
        out.push(PlannedUnit {
            gen_us: t,
            modality: Modality::Video,
            sync_index: index_at(t),
            size,
            flags,
            deadline_us: dl(Modality::Video),
        });
        t += SYNC_STEP_US;
    }

    // Speech starts at the first token, aligned to a sync step.
    let ttft = rng.random_range(cfg.ttft_ms.0..=cfg.ttft_ms.1) * 1000;
    let speech_start = start_us + ttft.div_ceil(SYNC_STEP_US) * SYNC_STEP_US;
    let mut t = speech_start;
    while t < end_us {
        out.push(PlannedUnit {
            gen_us: t,
            modality: Modality::Audio,
            sync_index: index_at(t),
            size: rng.random_range(cfg.audio_bytes.0..=cfg.audio_bytes.1),
            flags: UnitFlags::empty(),
            deadline_us: dl(Modality::Audio),
        });
        t += 20_000;
    }

    let rate = rng.random_range(cfg.tokens_per_sec.0..=cfg.tokens_per_sec.1);
    let step = (1e6 / rate) as u64;
    let mut t = speech_start;
    while t < end_us {
        out.push(PlannedUnit {
            gen_us: t,
            modality: Modality::Text,
            sync_index: index_at(t),
            size: rng.random_range(cfg.text_bytes.0..=cfg.text_bytes.1),
            flags: UnitFlags::empty(),
            deadline_us: dl(Modality::Text),
        });
        t += step;
    }
    let last_of = |out: &mut Vec<PlannedUnit>, m: Modality| {
        if let Some(u) = out.iter_mut().rev().find(|u| u.modality == m) {
            u.flags = u.flags.with(UnitFlags::END_OF_TURN);
        }
    };
    for m in Modality::ALL {
        last_of(&mut out, m);
    }
    let rank = |m: Modality| match m {
        Modality::Audio => 0,
        Modality::Text => 1,
        Modality::Video => 2,
    };
    out.sort_by_key(|u| (u.gen_us, rank(u.modality)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_has_expected_rates_and_is_deterministic() {
        let cfg = TurnConfig::default();
        let a = plan_turn(&cfg, 0, 3);
        assert_eq!(a, plan_turn(&cfg, 0, 3));
        let count = |m| a.iter().filter(|u| u.modality == m).count();
        assert_eq!(count(Modality::Video), 125);
        let audio = count(Modality::Audio);
        assert!((220..=235).contains(&audio), "{audio}");
        assert!(a.windows(2).all(|w| w[0].gen_us <= w[1].gen_us));
        let v: Vec<_> = a.iter().filter(|u| u.modality == Modality::Video).collect();
        assert!(v[0].flags.contains(UnitFlags::KEYFRAME));
        assert_eq!(v[10].sync_index, 10);
        // Two audio frames per sync index.
        let first_audio = a.iter().find(|u| u.modality == Modality::Audio).unwrap();
        let same_k = a
            .iter()
            .filter(|u| u.modality == Modality::Audio && u.sync_index == first_audio.sync_index)
            .count();
        assert_eq!(same_k, 2);
    }
}
