//! Single best path: the single-path QUIC baseline.
//!
//! Rule: the first time it is asked, the scheduler picks the eligible path with the lowest
//! smoothed RTT and then sends every unit on that one path, whatever happens to the RTT of
//! the others. When the path has no congestion-window room the unit waits for it (one
//! connection, one window). The scheduler moves to another path only when its path stops
//! being eligible for the unit ([`eligible`]: closed, draining, a better precedence class
//! appeared, or the unit must avoid it because the session reinjects it after the path
//! stalled) and then sticks to the new one: the analogue of a single-path QUIC connection
//! migrating after its path failed. It never spreads units over several paths.
//!
//! This models the "traditional single-path transmission" the draft starts from
//! (draft-song-tsvwg-camp-00 §2.4, challenge 1) and the single-path QUIC reference XLINK
//! is compared with (Zheng et al., SIGCOMM 2021).

use camp_wire::PathId;

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Sticks to one path, chosen by lowest smoothed RTT.
#[derive(Debug, Default, Clone)]
pub struct SinglePath {
    /// The path in use: slot and id (slots are reused, ids are not).
    current: Option<(u8, PathId)>,
}

impl SinglePath {
    /// The path the scheduler currently sticks to, if it chose one.
    pub fn current(&self) -> Option<PathId> {
        self.current.map(|(_, id)| id)
    }
}

impl Scheduler for SinglePath {
    fn name(&self) -> &'static str {
        "single"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let still = self.current.and_then(|(slot, id)| {
            paths
                .iter()
                .find(|p| p.slot == slot && p.id == id && set.contains(slot as usize))
        });
        let chosen = match still {
            Some(p) => p,
            None => {
                let Some(p) = paths
                    .iter()
                    .filter(|p| set.contains(p.slot as usize))
                    .min_by_key(|p| (p.srtt(), p.slot))
                else {
                    return Decision::Hold { retry_at_us: None };
                };
                self.current = Some((p.slot, p.id));
                p
            }
        };
        if chosen.has_room {
            Decision::Send(PathSet::single(chosen.slot as usize))
        } else {
            Decision::Hold { retry_at_us: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::super::{MinRtt, PathSet};
    use super::*;
    use camp_wire::{Modality, PathStatus};

    const HOLD: Decision = Decision::Hold { retry_at_us: None };

    #[test]
    fn sticks_to_first_lowest_rtt_path_and_holds_when_it_is_full() {
        let mut s = SinglePath::default();
        let u = unit(Modality::Audio, 0, 120, 0);
        let mut p = [path(0, 20, 10), path(1, 10, 10)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        assert_eq!(s.current(), Some(PathId(1)));
        // Path 1 becomes slower than path 0: single-path QUIC does not notice.
        p[1].srtt_us = 50_000;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        // Its window fills: wait for it (minRTT would spill onto path 0).
        p[1].has_room = false;
        assert_eq!(s.pick(&u, &p), HOLD);
        assert_eq!(MinRtt.pick(&u, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn switches_only_when_its_path_stops_being_eligible() {
        let mut s = SinglePath::default();
        let u = unit(Modality::Video, 0, 8_000, 0);
        let mut p = [path(0, 20, 10), path(1, 10, 10), path(2, 30, 10)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        p[1].usable = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        // The old path comes back, faster than ever: stay.
        p[1].usable = true;
        p[1].srtt_us = 1_000;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        // Draining the current path moves to the best remaining one.
        p[0].status = PathStatus::Drain;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        // A path of higher precedence makes the current one ineligible.
        p[2].precedence = 9;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(2)));
        assert_eq!(s.current(), Some(PathId(2)));
    }

    #[test]
    fn a_new_path_in_a_reused_slot_is_a_different_path() {
        let mut s = SinglePath::default();
        let u = unit(Modality::Text, 0, 40, 0);
        let mut p = [path(0, 10, 10), path(1, 20, 10)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].id = PathId(7);
        p[0].srtt_us = 30_000;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn a_reinjection_avoiding_its_path_moves_it() {
        let mut s = SinglePath::default();
        let mut u = unit(Modality::Audio, 0, 120, 0);
        let p = [path(0, 10, 10), path(1, 20, 10)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        u.reinjection = true;
        u.avoid = PathSet::single(0);
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        assert_eq!(s.current(), Some(PathId(1)));
        let u2 = unit(Modality::Audio, 1, 120, 0);
        assert_eq!(s.pick(&u2, &p), Decision::Send(PathSet::single(1)));
    }
}
