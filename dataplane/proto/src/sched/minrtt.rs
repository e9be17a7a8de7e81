//! minRTT: the default of Linux MPTCP (out of tree), XQUIC and MPQUIC implementations.
//!
//! Rule: send on the path with the lowest smoothed RTT that has congestion-window room;
//! when no eligible path has room, wait. Modality-agnostic by design: the baseline CAMP is
//! measured against.

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Lowest-smoothed-RTT scheduler.
#[derive(Debug, Default, Clone)]
pub struct MinRtt;

impl Scheduler for MinRtt {
    fn name(&self) -> &'static str {
        "minrtt"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let best = paths
            .iter()
            .filter(|p| set.contains(p.slot as usize) && p.has_room)
            .min_by_key(|p| (p.srtt(), p.slot));
        match best {
            Some(p) => Decision::Send(PathSet::single(p.slot as usize)),
            None => Decision::Hold { retry_at_us: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::*;
    use camp_wire::Modality;

    #[test]
    fn picks_lowest_rtt_with_room_else_holds() {
        let mut s = MinRtt;
        let u = unit(Modality::Video, 1, 8000, 0);
        let mut p = [path(0, 30, 50), path(1, 10, 5)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        p[1].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Hold { retry_at_us: None });
    }
}
