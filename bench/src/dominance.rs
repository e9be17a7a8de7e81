//! Viewer-side dominance (issue 9): does a simple scheduler beat CAMP on what a viewer sees?
//!
//! A viewer sees four things: how much of the video plays, whether speech is on time, whether
//! lips and voice are in sync, and how long the answer lags. A baseline `B` *dominates* CAMP on
//! a profile when either
//!
//! 1. it is no worse on all four (video −0.5 point, audio misses +0.1 point, outside IS-191
//!    +0.3 point, total delay +5 ms) and clearly better on one (video +2 points, audio
//!    −0.5 point, IS-191 −0.5 point, total delay −20 ms); or
//! 2. it shows at least 5 points more video at no more than 40 ms more total delay, with
//!    audio and sync no worse.
//!
//! The tolerances are the issue's; they are deliberately coarse so that seed noise is not
//! reported as a domination.

use serde::Serialize;

/// What a viewer sees of one scheduler on one profile (shares as fractions, delay in ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Viewer {
    /// Share of planned video frames shown.
    pub video_shown: f64,
    /// Share of audio frames that missed their deadline.
    pub audio_miss: f64,
    /// Share of sync groups presented outside ATSC IS-191.
    pub outside_is191: f64,
    /// Mean total delay felt by the viewer (presentation − media time), ms.
    pub total_delay_ms: f64,
}

/// Why `B` dominates CAMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// No worse on all four measures and clearly better on one.
    NoWorseAndBetter,
    /// At least 5 points more video at no more than 40 ms more delay, audio and sync no worse.
    MoreVideo,
}

const POINT: f64 = 0.01;

/// Whether `b` dominates `camp`, and by which rule (the first that holds).
pub fn dominates(b: &Viewer, camp: &Viewer) -> Option<Rule> {
    let audio_no_worse = b.audio_miss <= camp.audio_miss + 0.1 * POINT;
    let sync_no_worse = b.outside_is191 <= camp.outside_is191 + 0.3 * POINT;
    let no_worse = b.video_shown >= camp.video_shown - 0.5 * POINT
        && audio_no_worse
        && sync_no_worse
        && b.total_delay_ms <= camp.total_delay_ms + 5.0;
    let clearly_better = b.video_shown >= camp.video_shown + 2.0 * POINT
        || b.audio_miss <= camp.audio_miss - 0.5 * POINT
        || b.outside_is191 <= camp.outside_is191 - 0.5 * POINT
        || b.total_delay_ms <= camp.total_delay_ms - 20.0;
    if no_worse && clearly_better {
        return Some(Rule::NoWorseAndBetter);
    }
    let more_video = b.video_shown >= camp.video_shown + 5.0 * POINT
        && b.total_delay_ms <= camp.total_delay_ms + 40.0
        && audio_no_worse
        && sync_no_worse;
    more_video.then_some(Rule::MoreVideo)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAMP: Viewer = Viewer {
        video_shown: 0.90,
        audio_miss: 0.006,
        outside_is191: 0.008,
        total_delay_ms: 150.0,
    };

    #[test]
    fn equal_or_within_tolerance_is_no_domination() {
        assert_eq!(dominates(&CAMP, &CAMP), None);
        let close = Viewer {
            video_shown: 0.915,
            audio_miss: 0.0065,
            outside_is191: 0.010,
            total_delay_ms: 154.0,
        };
        assert_eq!(dominates(&close, &CAMP), None);
    }

    #[test]
    fn no_worse_everywhere_and_clearly_better_on_one_dominates() {
        for better in [
            Viewer {
                video_shown: 0.92,
                ..CAMP
            },
            Viewer {
                audio_miss: 0.0,
                ..CAMP
            },
            Viewer {
                outside_is191: 0.002,
                ..CAMP
            },
            Viewer {
                total_delay_ms: 130.0,
                ..CAMP
            },
        ] {
            assert_eq!(
                dominates(&better, &CAMP),
                Some(Rule::NoWorseAndBetter),
                "{better:?}"
            );
        }
        // Clearly better on one but worse beyond tolerance on another: no.
        let mixed = Viewer {
            video_shown: 0.95,
            audio_miss: 0.008,
            ..CAMP
        };
        assert_eq!(dominates(&mixed, &CAMP), None);
    }

    #[test]
    fn much_more_video_at_a_bounded_delay_cost_dominates() {
        let b = Viewer {
            video_shown: 0.96,
            total_delay_ms: 185.0,
            ..CAMP
        };
        assert_eq!(dominates(&b, &CAMP), Some(Rule::MoreVideo));
        let too_slow = Viewer {
            total_delay_ms: 195.0,
            ..b
        };
        assert_eq!(dominates(&too_slow, &CAMP), None);
        let worse_audio = Viewer {
            audio_miss: 0.01,
            ..b
        };
        assert_eq!(dominates(&worse_audio, &CAMP), None);
    }
}
