//! XLINK-like: minRTT placement plus proactive reinjection.
//!
//! Sources: Z. Zheng et al., "XLINK: QoE-Driven Multi-Path QUIC Transport in Large-scale
//! Video Services", ACM SIGCOMM 2021, and the reinjection control of XQUIC (Alibaba's QUIC
//! stack, where XLINK is implemented).
//!
//! Rule. A unit is placed like [`MinRtt`](super::MinRtt): the eligible path with the lowest
//! smoothed RTT that has window room, else wait. In addition every reliable unit sent on a
//! single path is copied onto another path if it is still unacknowledged after
//!
//! ```text
//! max(min(1.1 · min_srtt, 500 ms), 20 ms)
//! ```
//!
//! where `min_srtt` is the lowest smoothed RTT over the session's usable paths. The
//! scheduler only states the threshold ([`Scheduler::reinject_after_us`]); the session arms
//! the timer and places the copy (avoiding the first path) through this scheduler again.
//! Like XQUIC, which reinjects only when another path is active, no threshold is given
//! when the unit's path is the only usable, non-draining path; droppable units are never
//! reinjected.
//!
//! XLINK's priority-driven part (reinject and send the urgent media, here audio, first) is
//! not a path choice and is not done here: it comes from the session's candidate order
//! (reinjections first, then units in generation order, audio before text before video on
//! ties) and from the stream priority the session gives on each path (audio and text above
//! video, a reinjected copy one step above its modality).

use camp_wire::{PathStatus, Reliability};

use super::{Decision, MinRtt, PathView, Scheduler, UnitInfo};

/// Factor on the minimum smoothed RTT, tenths (1.1).
pub const XLINK_SRTT_FACTOR_TENTHS: u64 = 11;
/// Upper clamp of the reinjection threshold, µs.
pub const XLINK_MAX_REINJECT_US: u64 = 500_000;
/// Lower clamp of the reinjection threshold, µs.
pub const XLINK_MIN_REINJECT_US: u64 = 20_000;

/// minRTT with XLINK-style proactive reinjection.
#[derive(Debug, Default, Clone)]
pub struct Xlink {
    placement: MinRtt,
}

impl Xlink {
    /// The reinjection threshold for a given minimum smoothed RTT, µs.
    pub fn threshold_us(min_srtt_us: u64) -> u64 {
        (min_srtt_us.saturating_mul(XLINK_SRTT_FACTOR_TENTHS) / 10)
            .clamp(XLINK_MIN_REINJECT_US, XLINK_MAX_REINJECT_US)
    }
}

impl Scheduler for Xlink {
    fn name(&self) -> &'static str {
        "xlink"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        self.placement.pick(unit, paths)
    }

    fn reinject_after_us(
        &self,
        unit: &UnitInfo,
        path: &PathView,
        paths: &[PathView],
    ) -> Option<u64> {
        if unit.reliability != Reliability::Reliable {
            return None;
        }
        let usable = |p: &&PathView| p.usable && p.status != PathStatus::Drain;
        if !paths.iter().filter(usable).any(|p| p.slot != path.slot) {
            return None;
        }
        let min_srtt = paths
            .iter()
            .filter(usable)
            .map(PathView::srtt)
            .min()
            .unwrap_or(path.srtt());
        Some(Self::threshold_us(min_srtt))
    }
}

#[cfg(test)]
mod tests {
    use super::super::PathSet;
    use super::super::tests::{path, unit};
    use super::*;
    use camp_wire::Modality;

    #[test]
    fn threshold_is_1_1_min_srtt_clamped_to_20_500_ms() {
        assert_eq!(Xlink::threshold_us(0), 20_000);
        assert_eq!(Xlink::threshold_us(10_000), 20_000); // 11 ms -> 20 ms
        assert_eq!(Xlink::threshold_us(18_181), 20_000); // 19.999 ms -> 20 ms
        assert_eq!(Xlink::threshold_us(18_182), 20_000); // exactly 20.000 ms
        assert_eq!(Xlink::threshold_us(20_000), 22_000);
        assert_eq!(Xlink::threshold_us(100_000), 110_000);
        assert_eq!(Xlink::threshold_us(454_545), 499_999);
        assert_eq!(Xlink::threshold_us(454_546), 500_000);
        assert_eq!(Xlink::threshold_us(2_000_000), 500_000);
        assert_eq!(Xlink::threshold_us(u64::MAX), 500_000);
    }

    #[test]
    fn reinjects_reliable_units_after_threshold_from_the_fastest_path() {
        let s = Xlink::default();
        let a = unit(Modality::Audio, 0, 120, 0);
        let p = [path(0, 100, 10), path(1, 40, 10)];
        // Sent on the 100 ms path: the threshold follows the fastest path (40 ms).
        assert_eq!(s.reinject_after_us(&a, &p[0], &p), Some(44_000));
        let p = [path(0, 5, 10), path(1, 40, 10)];
        assert_eq!(s.reinject_after_us(&a, &p[1], &p), Some(20_000));
        let p = [path(0, 700, 10), path(1, 900, 10)];
        assert_eq!(s.reinject_after_us(&a, &p[0], &p), Some(500_000));
        // Droppable video is never reinjected.
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.reinject_after_us(&v, &p[0], &p), None);
    }

    #[test]
    fn no_threshold_without_another_usable_path() {
        let s = Xlink::default();
        let t = unit(Modality::Text, 0, 40, 0);
        let mut p = [path(0, 10, 10), path(1, 20, 10)];
        p[1].usable = false;
        assert_eq!(s.reinject_after_us(&t, &p[0], &p), None);
        p[1].usable = true;
        p[1].status = PathStatus::Drain;
        assert_eq!(s.reinject_after_us(&t, &p[0], &p), None);
        // A standby path is a place for the copy.
        p[1].status = PathStatus::Standby;
        assert_eq!(s.reinject_after_us(&t, &p[0], &p), Some(20_000));
    }

    #[test]
    fn placement_is_min_rtt() {
        let mut s = Xlink::default();
        let u = unit(Modality::Video, 0, 8_000, 0);
        let mut p = [path(0, 30, 50), path(1, 10, 5)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        p[1].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Hold { retry_at_us: None });
    }
}
