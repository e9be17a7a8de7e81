//! Redundant: every unit on every path.
//!
//! Rule: send a copy of each unit on every eligible path that has congestion-window room
//! now; wait when none has room. The classic redundant MPTCP scheduler
//! (`net/mptcp/mptcp_redundant.c`, multipath-tcp.org kernel) and the redundant mode of
//! multipath QUIC stacks: the lowest latency any path offers, paid for with one full copy
//! of the traffic per path. [`eligible`] still applies, so standby paths carry copies only
//! when no available path is usable.

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Sends every unit on all eligible paths with room.
#[derive(Debug, Default, Clone)]
pub struct Redundant;

impl Scheduler for Redundant {
    fn name(&self) -> &'static str {
        "redundant"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let send = paths
            .iter()
            .filter(|p| set.contains(p.slot as usize) && p.has_room)
            .fold(PathSet::EMPTY, |s, p| s.with(p.slot as usize));
        if send.is_empty() {
            Decision::Hold { retry_at_us: None }
        } else {
            Decision::Send(send)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::*;
    use camp_wire::{Modality, PathStatus};

    #[test]
    fn sends_on_every_eligible_path_with_room() {
        let mut s = Redundant;
        let u = unit(Modality::Audio, 0, 120, 0);
        let mut p = [
            path(0, 10, 10),
            path(1, 20, 10),
            path(2, 30, 10),
            path(3, 5, 10),
        ];
        p[3].status = PathStatus::Standby;
        assert_eq!(
            s.pick(&u, &p),
            Decision::Send(PathSet::single(0).with(1).with(2))
        );
        p[1].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0).with(2)));
        p[0].has_room = false;
        p[2].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Hold { retry_at_us: None });
    }

    #[test]
    fn respects_avoid_and_falls_back_to_standby() {
        let mut s = Redundant;
        let mut u = unit(Modality::Text, 0, 40, 0);
        let mut p = [path(0, 10, 10), path(1, 20, 10), path(2, 30, 10)];
        u.avoid = PathSet::single(1);
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0).with(2)));
        p[0].usable = false;
        p[2].usable = false;
        p[1].status = PathStatus::Standby;
        u.avoid = PathSet::EMPTY;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }
}
