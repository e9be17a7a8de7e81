//! A seeded interactive "digital human" turn (issue 3's workload).
//!
//! Every unit carries its **media timestamp** `g` (when it belongs on the turn's timeline:
//! the header's generation timestamp, which the client aligns by) and a **release time**
//! `r <= g` (when the pipeline hands it to the transport):
//!
//! * **Text.** The LLM emits 30–50 tokens/s after a 300–600 ms time to first token; each
//!   token (10–60 B, reliable) belongs to a word, and takes the sync index and media time of
//!   that word's first audio frame. Tokens are released when the LLM produces them, which is
//!   usually well before the word is spoken.
//! * **Audio.** Speech starts once the first words exist plus the TTS latency; words last
//!   240–480 ms with 200–400 ms pauses between sentences. 20 ms frames of 60–80 B
//!   (Opus-like, reliable) cover the speech. TTS synthesises chunks of `tts_chunk_ms` in one
//!   burst, released `tts_lead_ms` ahead of the chunk's media time (never before the chunk's
//!   words exist).
//! * **Video.** 25 fps for the whole turn, P-frames of 6–10 kB and I-frames of 40–80 kB every
//!   1–2 s (droppable), rendered in real time: released at their media time.
//! * **Sync index** `k` = (media time − turn start) / 40 ms: one video frame and two audio
//!   frames per index. Deadlines relative to the media time: text and audio 150 ms, video
//!   200 ms.
//!
//! [`TurnConfig::realtime`] releases every unit at its media time instead (an application
//! that paces its own output), which isolates what path choice alone does.

#![forbid(unsafe_code)]

use camp_wire::{Modality, SyncIndex, UnitFlags};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// Turn parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnConfig {
    /// Minimum length of the speech, ms (the turn ends with the sentence that passes it).
    pub duration_ms: u64,
    /// Time to first token range, ms.
    pub ttft_ms: (u64, u64),
    /// Text tokens per second range.
    pub tokens_per_sec: (f64, f64),
    /// Text unit size range, bytes.
    pub text_bytes: (usize, usize),
    /// Audio frame size range, bytes (20 ms frames).
    pub audio_bytes: (usize, usize),
    /// P-frame size range, bytes.
    pub p_frame_bytes: (usize, usize),
    /// I-frame size range, bytes.
    pub i_frame_bytes: (usize, usize),
    /// I-frame interval range, ms.
    pub i_frame_every_ms: (u64, u64),
    /// Deadlines relative to the media time, ms: text, audio, video.
    pub deadlines_ms: [u32; 3],
    /// Word duration range, ms.
    pub word_ms: (u64, u64),
    /// Words per sentence range.
    pub sentence_words: (u32, u32),
    /// Pause after a sentence, ms.
    pub pause_ms: (u64, u64),
    /// TTS latency from a word's last token to the earliest start of its speech, ms.
    pub tts_latency_ms: (u64, u64),
    /// Audio synthesised per TTS burst, ms.
    pub tts_chunk_ms: u64,
    /// How far ahead of its media time a TTS burst is released, ms.
    pub tts_lead_ms: (u64, u64),
    /// Release every unit at its media time (no production ahead of real time).
    pub realtime: bool,
    /// Replay these units (times relative to the turn start) instead of generating a turn.
    pub replay: Option<std::sync::Arc<Vec<PlannedUnit>>>,
    /// How long a simulated run waits after the last unit for what is still in flight, ms
    /// (virtual time: an idle wait costs nothing).
    pub drain_ms: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            duration_ms: 10_000,
            ttft_ms: (300, 600),
            tokens_per_sec: (30.0, 50.0),
            text_bytes: (10, 60),
            audio_bytes: (60, 80),
            p_frame_bytes: (6_000, 10_000),
            i_frame_bytes: (40_000, 80_000),
            i_frame_every_ms: (1_000, 2_000),
            deadlines_ms: [150, 150, 200],
            word_ms: (240, 480),
            sentence_words: (8, 20),
            pause_ms: (200, 400),
            tts_latency_ms: (150, 250),
            tts_chunk_ms: 480,
            tts_lead_ms: (100, 400),
            realtime: false,
            replay: None,
            drain_ms: 5_000,
        }
    }
}

impl TurnConfig {
    /// The same turn with every unit released at its media time.
    pub fn realtime(self) -> Self {
        Self {
            realtime: true,
            ..self
        }
    }
}

/// One unit of the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedUnit {
    /// When the pipeline hands the unit to the transport, µs on the session clock.
    pub release_us: u64,
    /// Media timestamp (header generation timestamp), µs on the session clock.
    pub gen_us: u64,
    /// Modality.
    pub modality: Modality,
    /// Sync index.
    pub sync_index: SyncIndex,
    /// Payload size, bytes.
    pub size: usize,
    /// Flags.
    pub flags: UnitFlags,
    /// Deadline relative to the media time, µs.
    pub deadline_us: u32,
}

/// Length of one sync index step.
pub const SYNC_STEP_US: u64 = 40_000;
const AUDIO_FRAME_US: u64 = 20_000;

fn range_u64(rng: &mut StdRng, r: (u64, u64)) -> u64 {
    rng.random_range(r.0..=r.1.max(r.0))
}

fn range_usize(rng: &mut StdRng, r: (usize, usize)) -> usize {
    rng.random_range(r.0..=r.1.max(r.0))
}

/// Plans a turn starting at `start_us`; units sorted by release time (ties: audio, text,
/// video, then media time).
pub fn plan_turn(cfg: &TurnConfig, start_us: u64, seed: u64) -> Vec<PlannedUnit> {
    if let Some(replay) = &cfg.replay {
        let mut out: Vec<PlannedUnit> = replay
            .iter()
            .map(|u| PlannedUnit {
                release_us: start_us + if cfg.realtime { u.gen_us } else { u.release_us },
                gen_us: start_us + u.gen_us,
                ..*u
            })
            .collect();
        sort_plan(&mut out);
        return out;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let index_at = |t: u64| ((t - start_us) / SYNC_STEP_US) as SyncIndex;
    let slot_ceil = |t: u64| start_us + (t - start_us).div_ceil(SYNC_STEP_US) * SYNC_STEP_US;
    let dl = |m: Modality| cfg.deadlines_ms[m.index()] * 1000;

    // LLM tokens, grouped into words and sentences, and the speech timeline.
    let rate = rng.random_range(cfg.tokens_per_sec.0..=cfg.tokens_per_sec.1);
    let token_step = (1e6 / rate) as u64;
    let mut next_token = start_us + range_u64(&mut rng, cfg.ttft_ms) * 1000;
    let mut speech_at = 0u64; // end of the previous word on the speech timeline
    let mut words_left_in_sentence = 0u32;
    let mut speech_start = None;
    let mut speech_end = 0u64;
    // (word media start, [token release times])
    let mut texts: Vec<(u64, u64)> = Vec::new();
    let mut word_starts = Vec::new();
    while speech_start.is_none_or(|s| speech_end < s + cfg.duration_ms * 1000) {
        if words_left_in_sentence == 0 {
            words_left_in_sentence =
                rng.random_range(cfg.sentence_words.0..=cfg.sentence_words.1.max(1));
            if speech_start.is_some() {
                speech_at += range_u64(&mut rng, cfg.pause_ms) * 1000;
            }
        }
        words_left_in_sentence -= 1;
        let tokens = if rng.random_bool(0.3) { 2 } else { 1 };
        let mut releases = [0u64; 2];
        for r in releases.iter_mut().take(tokens) {
            *r = next_token;
            next_token += token_step;
        }
        let ready = releases[tokens - 1] + range_u64(&mut rng, cfg.tts_latency_ms) * 1000;
        let begin = slot_ceil(speech_at.max(ready));
        speech_start.get_or_insert(begin);
        let dur = range_u64(&mut rng, cfg.word_ms) * 1000;
        speech_at = begin + dur;
        speech_end = speech_at;
        word_starts.push((begin, ready));
        for &r in releases.iter().take(tokens) {
            texts.push((begin, r));
        }
    }
    let speech_start = speech_start.unwrap_or(start_us);
    let speech_end = slot_ceil(speech_end);

    for (begin, release) in texts {
        out.push(PlannedUnit {
            release_us: release,
            gen_us: begin,
            modality: Modality::Text,
            sync_index: index_at(begin),
            size: range_usize(&mut rng, cfg.text_bytes),
            flags: UnitFlags::empty(),
            deadline_us: dl(Modality::Text),
        });
    }

    // Audio: continuous 20 ms frames over the speech, synthesised in bursts.
    let chunk = cfg.tts_chunk_ms.max(20) * 1000;
    let mut t = speech_start;
    let mut last_release = 0;
    while t < speech_end {
        let chunk_end = (t + chunk).min(speech_end);
        // The burst needs the words it speaks: the latest word starting inside the chunk.
        let needs = word_starts
            .iter()
            .filter(|(b, _)| *b < chunk_end)
            .map(|&(_, ready)| ready)
            .max()
            .unwrap_or(0);
        let lead = range_u64(&mut rng, cfg.tts_lead_ms) * 1000;
        let release = t.saturating_sub(lead).max(needs.min(t)).max(last_release);
        last_release = release;
        let mut f = t;
        while f < chunk_end {
            out.push(PlannedUnit {
                release_us: release.min(f),
                gen_us: f,
                modality: Modality::Audio,
                sync_index: index_at(f),
                size: range_usize(&mut rng, cfg.audio_bytes),
                flags: UnitFlags::empty(),
                deadline_us: dl(Modality::Audio),
            });
            f += AUDIO_FRAME_US;
        }
        t = chunk_end;
    }

    // Video: real time, for the whole turn plus a short tail.
    let video_end = speech_end + 200_000;
    let mut next_i = start_us;
    let mut t = start_us;
    while t < video_end {
        let key = t >= next_i;
        let size = if key {
            next_i = t + range_u64(&mut rng, cfg.i_frame_every_ms) * 1000;
            range_usize(&mut rng, cfg.i_frame_bytes)
        } else {
            range_usize(&mut rng, cfg.p_frame_bytes)
        };
        out.push(PlannedUnit {
            release_us: t,
            gen_us: t,
            modality: Modality::Video,
            sync_index: index_at(t),
            size,
            flags: if key {
                UnitFlags::KEYFRAME
            } else {
                UnitFlags::empty()
            },
            deadline_us: dl(Modality::Video),
        });
        t += SYNC_STEP_US;
    }

    for m in Modality::ALL {
        if let Some(u) = out
            .iter_mut()
            .filter(|u| u.modality == m)
            .max_by_key(|u| u.gen_us)
        {
            u.flags = u.flags.with(UnitFlags::END_OF_TURN);
        }
    }
    if cfg.realtime {
        for u in &mut out {
            u.release_us = u.gen_us;
        }
    }
    sort_plan(&mut out);
    out
}

/// Release order (ties: audio, text, video, then media time). Per modality, sequence
/// numbers follow release order, so media order within a modality is kept too.
fn sort_plan(plan: &mut [PlannedUnit]) {
    let rank = |m: Modality| match m {
        Modality::Audio => 0,
        Modality::Text => 1,
        Modality::Video => 2,
    };
    plan.sort_by_key(|u| (u.release_us, rank(u.modality), u.gen_us));
}

/// One line of a JSON-lines turn trace, e.g.
/// `{"release_ms": 412.5, "media_ms": 1240, "modality": "audio", "size": 72}`; optional
/// `sync_index` (default: media time / 40 ms), `keyframe`, `end_of_turn` (booleans) and
/// `deadline_ms` (default: 150 for text and audio, 200 for video). `release_ms` defaults to
/// `media_ms` and may not exceed it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceLine {
    release_ms: Option<f64>,
    media_ms: f64,
    modality: String,
    size: usize,
    sync_index: Option<SyncIndex>,
    #[serde(default)]
    keyframe: bool,
    #[serde(default)]
    end_of_turn: bool,
    deadline_ms: Option<u32>,
}

/// Errors reading a turn trace.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a valid unit.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Largest payload a replayed unit may have (the wire format's limit).
const MAX_REPLAY_SIZE: usize = 1 << 20;

/// Parses a JSON-lines turn trace (blank lines and lines starting with `#` are skipped).
pub fn parse_replay(text: &str) -> Result<Vec<PlannedUnit>, ReplayError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let bad = |reason: String| ReplayError::Line {
            line: line_no,
            reason,
        };
        let l: TraceLine = serde_json::from_str(t).map_err(|e| bad(e.to_string()))?;
        let modality = match l.modality.as_str() {
            "text" => Modality::Text,
            "audio" => Modality::Audio,
            "video" => Modality::Video,
            other => return Err(bad(format!("unknown modality {other:?}"))),
        };
        if !(l.media_ms.is_finite() && l.media_ms >= 0.0) {
            return Err(bad("media_ms must be a non-negative number".into()));
        }
        let release = l.release_ms.unwrap_or(l.media_ms);
        if !(release.is_finite() && release >= 0.0 && release <= l.media_ms) {
            return Err(bad("release_ms must be between 0 and media_ms".into()));
        }
        if l.size > MAX_REPLAY_SIZE {
            return Err(bad(format!("size {} exceeds {MAX_REPLAY_SIZE}", l.size)));
        }
        let gen_us = (l.media_ms * 1000.0) as u64;
        let mut flags = UnitFlags::empty();
        if l.keyframe {
            flags = flags.with(UnitFlags::KEYFRAME);
        }
        if l.end_of_turn {
            flags = flags.with(UnitFlags::END_OF_TURN);
        }
        let default_deadline = if modality == Modality::Video {
            200
        } else {
            150
        };
        out.push(PlannedUnit {
            release_us: (release * 1000.0) as u64,
            gen_us,
            modality,
            sync_index: l.sync_index.unwrap_or((gen_us / SYNC_STEP_US) as SyncIndex),
            size: l.size,
            flags,
            deadline_us: l.deadline_ms.unwrap_or(default_deadline) * 1000,
        });
    }
    Ok(out)
}

/// Reads a JSON-lines turn trace from a file.
pub fn load_replay(path: &std::path::Path) -> Result<Vec<PlannedUnit>, ReplayError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_replay(&text)
}

/// Writes a plan as a JSON-lines turn trace (times relative to `start_us`).
pub fn to_jsonl(plan: &[PlannedUnit], start_us: u64) -> String {
    let mut s = String::new();
    for u in plan {
        let m = match u.modality {
            Modality::Text => "text",
            Modality::Audio => "audio",
            Modality::Video => "video",
        };
        s.push_str(&format!(
            "{{\"release_ms\": {}, \"media_ms\": {}, \"modality\": \"{m}\", \"size\": {}, \"sync_index\": {}, \"keyframe\": {}, \"end_of_turn\": {}, \"deadline_ms\": {}}}\n",
            (u.release_us - start_us) as f64 / 1000.0,
            (u.gen_us - start_us) as f64 / 1000.0,
            u.size,
            u.sync_index,
            u.flags.contains(UnitFlags::KEYFRAME),
            u.flags.contains(UnitFlags::END_OF_TURN),
            u.deadline_us / 1000,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_released_no_later_than_media_time() {
        let cfg = TurnConfig::default();
        let a = plan_turn(&cfg, 0, 3);
        assert_eq!(a, plan_turn(&cfg, 0, 3));
        assert!(a.iter().all(|u| u.release_us <= u.gen_us));
        assert!(a.windows(2).all(|w| w[0].release_us <= w[1].release_us));
        let early_text = a
            .iter()
            .filter(|u| u.modality == Modality::Text && u.gen_us > u.release_us + 300_000)
            .count();
        assert!(
            early_text > 10,
            "the LLM runs ahead of speech: {early_text}"
        );
        let early_audio = a
            .iter()
            .filter(|u| u.modality == Modality::Audio && u.gen_us > u.release_us + 50_000)
            .count();
        assert!(
            early_audio > 50,
            "TTS bursts ahead of real time: {early_audio}"
        );
    }

    #[test]
    fn rates_and_sync_indices_follow_the_model() {
        let cfg = TurnConfig::default();
        let a = plan_turn(&cfg, 1_000_000, 4);
        let video: Vec<_> = a.iter().filter(|u| u.modality == Modality::Video).collect();
        assert!(video[0].flags.contains(UnitFlags::KEYFRAME));
        assert!(
            video
                .windows(2)
                .all(|w| w[1].gen_us - w[0].gen_us == SYNC_STEP_US)
        );
        assert!(
            video
                .iter()
                .enumerate()
                .all(|(i, v)| v.sync_index == i as u32)
        );
        let audio: Vec<_> = a.iter().filter(|u| u.modality == Modality::Audio).collect();
        // Audio media times are contiguous 20 ms frames, two per sync index.
        let mut media: Vec<u64> = audio.iter().map(|u| u.gen_us).collect();
        media.sort_unstable();
        assert!(media.windows(2).all(|w| w[1] - w[0] == AUDIO_FRAME_US));
        assert!(
            audio
                .iter()
                .all(|u| (u.gen_us - 1_000_000) / SYNC_STEP_US == u64::from(u.sync_index))
        );
        let speech_s = media.len() as f64 * 0.02;
        assert!(
            speech_s >= 10.0,
            "at least the configured duration: {speech_s}"
        );
        // Each text token takes the index of an audio frame.
        let audio_k: std::collections::HashSet<u32> = audio.iter().map(|u| u.sync_index).collect();
        assert!(
            a.iter()
                .filter(|u| u.modality == Modality::Text)
                .all(|t| audio_k.contains(&t.sync_index))
        );
        // Within a modality, release order and media order agree (seq follows both).
        for m in Modality::ALL {
            let g: Vec<u64> = a
                .iter()
                .filter(|u| u.modality == m)
                .map(|u| u.gen_us)
                .collect();
            assert!(g.windows(2).all(|w| w[0] <= w[1]), "{m}");
        }
    }

    #[test]
    fn a_generated_turn_round_trips_through_jsonl_and_replays_identically() {
        let cfg = TurnConfig::default();
        let plan = plan_turn(&cfg, 0, 7);
        let text = to_jsonl(&plan, 0);
        let parsed = parse_replay(&text).unwrap();
        assert_eq!(parsed, plan);
        let replay = TurnConfig {
            replay: Some(std::sync::Arc::new(parsed)),
            ..cfg
        };
        let again = plan_turn(&replay, 5_000, 99);
        assert_eq!(again.len(), plan.len());
        assert!(
            again
                .iter()
                .zip(&plan)
                .all(|(a, b)| a.gen_us == b.gen_us + 5_000)
        );
    }

    #[test]
    fn bad_replay_lines_are_clear_errors() {
        let err = |t: &str| parse_replay(t).unwrap_err().to_string();
        assert!(
            err("{\"media_ms\": 1, \"modality\": \"smell\", \"size\": 1}")
                .contains("unknown modality")
        );
        assert!(
            err("{\"media_ms\": 1, \"release_ms\": 2, \"modality\": \"text\", \"size\": 1}")
                .contains("release_ms")
        );
        assert!(
            err("{\"media_ms\": -1, \"modality\": \"text\", \"size\": 1}").contains("media_ms")
        );
        assert!(
            err("{\"media_ms\": 1, \"modality\": \"text\", \"size\": 99999999}")
                .contains("exceeds")
        );
        assert!(err("# comment\n\nnot json").starts_with("line 3"));
        assert!(
            err("{\"media_ms\": 1, \"modality\": \"text\", \"size\": 1, \"x\": 1}")
                .contains("unknown field")
        );
        let ok = parse_replay(
            "{\"media_ms\": 80, \"modality\": \"video\", \"size\": 9000, \"keyframe\": true}",
        )
        .unwrap();
        assert_eq!(ok[0].sync_index, 2);
        assert_eq!(ok[0].release_us, 80_000);
        assert_eq!(ok[0].deadline_us, 200_000);
    }

    #[test]
    fn realtime_variant_releases_at_media_time() {
        let a = plan_turn(&TurnConfig::default().realtime(), 0, 5);
        assert!(a.iter().all(|u| u.release_us == u.gen_us));
    }
}
