//! Lowest linger time: the packet scheduler of upstream Linux MPTCP.
//!
//! Source: Linux `net/mptcp/protocol.c`, `mptcp_subflow_get_send()`. For every active
//! subflow the kernel estimates how long the data already queued on it would linger
//! before leaving: bytes queued on the subflow (sent but unacknowledged plus not yet sent,
//! `sk_wmem_queued`) divided by its average pacing rate. It sends on the subflow with the
//! smallest linger time, keeping backup subflows apart and using the best backup only when
//! no non-backup subflow is active. Its comment notes that this is a cheap stand-in for
//! BLEST: the subflow that flushes its queue soonest cannot hold up a faster one.
//!
//! Here: linger = ([`PathView::unsent`] + [`PathView::in_flight`]) /
//! [`PathView::send_rate`] ([`PathView::linger_us`]); the new unit itself is not counted,
//! as in the kernel. Backup = `Standby` status; [`eligible`] already offers standby paths
//! only when no available one is usable. The minimum is taken over eligible paths that have
//! window room (a path without room cannot take the unit now; the kernel similarly gives up
//! when the chosen subflow's send buffer is full); with no such path the unit waits. Ties
//! go to the lower slot, like the kernel's first-in-list order.

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Lowest-linger-time scheduler.
#[derive(Debug, Default, Clone)]
pub struct LowestLinger;

impl Scheduler for LowestLinger {
    fn name(&self) -> &'static str {
        "linger"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let best = paths
            .iter()
            .filter(|p| set.contains(p.slot as usize) && p.has_room)
            .min_by_key(|p| (p.linger_us(), p.slot));
        match best {
            Some(p) => Decision::Send(PathSet::single(p.slot as usize)),
            None => Decision::Hold { retry_at_us: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::super::{MinRtt, PathSet};
    use super::*;
    use camp_wire::{Modality, PathStatus};

    #[test]
    fn empty_slow_path_beats_fast_path_with_a_long_queue() {
        let mut s = LowestLinger;
        let u = unit(Modality::Video, 0, 8_000, 0);
        // Path 0: 10 ms, 10 Mbit/s (1.25 MB/s), 250 kB queued: lingers 200 ms.
        let mut p = [path(0, 10, 10), path(1, 50, 10)];
        p[0].cwnd = 1_000_000;
        p[0].in_flight = 50_000;
        p[0].unsent = 200_000;
        assert_eq!(p[0].linger_us(), 200_000);
        assert_eq!(p[1].linger_us(), 0);
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        assert_eq!(MinRtt.pick(&u, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn ranks_by_queue_over_rate_not_by_queue_alone() {
        let mut s = LowestLinger;
        let u = unit(Modality::Audio, 0, 120, 0);
        // Path 0 holds more bytes but drains them 10x faster.
        let mut p = [path(0, 30, 100), path(1, 10, 10)];
        p[0].cwnd = 1_000_000;
        p[1].cwnd = 1_000_000;
        p[0].in_flight = 100_000; // 100 kB at 12.5 MB/s: 8 ms
        p[1].in_flight = 20_000; // 20 kB at 1.25 MB/s: 16 ms
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].in_flight = 300_000; // 24 ms
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn backup_only_without_active_paths_and_waits_without_room() {
        let mut s = LowestLinger;
        let u = unit(Modality::Text, 0, 40, 0);
        let mut p = [path(0, 10, 10), path(1, 20, 10)];
        p[0].in_flight = 60_000;
        p[1].status = PathStatus::Standby; // idle backup: linger 0, still not used
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].has_room = false;
        assert_eq!(s.pick(&u, &p), Decision::Hold { retry_at_us: None });
        p[0].usable = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }
}
