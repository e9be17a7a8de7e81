//! Modality pinning: the naive modality separation the CAMP draft warns about.
//!
//! Rule: text and audio always go on the eligible path with the lowest smoothed RTT; video
//! always goes on the eligible path with the highest bandwidth (its bottleneck-bandwidth
//! estimate [`PathView::btl_bw`], or [`PathView::send_rate`] when the path has no such
//! estimate; ties: lower RTT, then lower slot). When the pinned path has no window room the
//! unit waits for it; it never spills onto the other path.
//!
//! Source: draft-song-tsvwg-camp-00 §1 and §2.4 (challenge 3, "inter-modal arrival
//! inconsistency under naive stream separation with multipath"): separating the modalities
//! into streams and scheduling each independently over heterogeneous paths (latency-bound
//! media on the fast path, bulky video on the wide one) produces the inter-modal arrival
//! skew CAMP's consistency-aware scheduler is designed to remove.

use camp_wire::Modality;

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Pins text and audio to the lowest-RTT path and video to the widest path.
#[derive(Debug, Default, Clone)]
pub struct Pinning;

impl Pinning {
    /// Bandwidth used to rank paths for video, bytes per second.
    pub fn bandwidth(p: &PathView) -> u64 {
        if p.btl_bw > 0 {
            p.btl_bw
        } else {
            p.send_rate()
        }
    }
}

impl Scheduler for Pinning {
    fn name(&self) -> &'static str {
        "pinning"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let candidates = paths.iter().filter(|p| set.contains(p.slot as usize));
        let pinned = match unit.modality {
            Modality::Text | Modality::Audio => candidates.min_by_key(|p| (p.srtt(), p.slot)),
            Modality::Video => {
                candidates.min_by_key(|p| (std::cmp::Reverse(Self::bandwidth(p)), p.srtt(), p.slot))
            }
        };
        match pinned {
            Some(p) if p.has_room => Decision::Send(PathSet::single(p.slot as usize)),
            _ => Decision::Hold { retry_at_us: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::super::{MinRtt, PathSet};
    use super::*;

    const HOLD: Decision = Decision::Hold { retry_at_us: None };

    #[test]
    fn video_goes_to_the_widest_path_text_and_audio_to_the_fastest() {
        let mut s = Pinning;
        let p = [path(0, 10, 5), path(1, 40, 50)];
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
        assert_eq!(MinRtt.pick(&v, &p), Decision::Send(PathSet::single(0)));
        for m in [Modality::Audio, Modality::Text] {
            assert_eq!(
                s.pick(&unit(m, 0, 100, 0), &p),
                Decision::Send(PathSet::single(0))
            );
        }
    }

    #[test]
    fn waits_for_the_pinned_path_instead_of_spilling() {
        let mut s = Pinning;
        let mut p = [path(0, 10, 5), path(1, 40, 50)];
        p[1].has_room = false;
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.pick(&v, &p), HOLD);
        p[1].has_room = true;
        p[0].has_room = false;
        assert_eq!(s.pick(&unit(Modality::Audio, 0, 120, 0), &p), HOLD);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
        // The pinned path gone: the next best takes its role.
        p[1].usable = false;
        p[0].has_room = true;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn without_bottleneck_estimate_ranks_by_send_rate() {
        let mut s = Pinning;
        let mut p = [path(0, 10, 0), path(1, 40, 0)];
        // Window rates: 76.8 kB / 10 ms = 7.68 MB/s against 400 kB / 40 ms = 10 MB/s.
        p[1].cwnd = 400_000;
        assert_eq!(Pinning::bandwidth(&p[0]), 7_680_000);
        assert_eq!(Pinning::bandwidth(&p[1]), 10_000_000);
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
        // An estimate on path 0 above that wins.
        p[0].btl_bw = 12_000_000;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
    }
}
