//! OTIAS, Out-of-order Transmission for In-order Arrival Scheduling.
//!
//! Sources: F. Yang, Q. Wang, P. D. Amer, "Out-of-order transmission for in-order arrival
//! scheduling for multipath TCP", IEEE AINA Workshops 2014, and XQUIC's historical OTIAS
//! scheduler (`xqc_scheduler_otias`).
//!
//! Rule. For each eligible path estimate when a packet handed to it now would arrive:
//!
//! ```text
//! metric = wait + srtt / 2
//! wait   = 0                                              if queued < cwnd_space
//!        = floor((queued − cwnd_space + MSS) / cwnd) · srtt  otherwise
//! ```
//!
//! with `cwnd_space = cwnd − in_flight` (the window room), `MSS` the path's maximum datagram
//! size ([`PathView::mtu`]) and `cwnd` at least one MSS. `queued` is what XQUIC counts: the
//! bytes already scheduled on the path and not yet sent ([`PathView::unsent`]); bytes in
//! flight enter only through `cwnd_space`. `wait` is the number of whole RTTs the packet
//! waits behind that backlog, so the metric is an estimated one-way arrival time, and the
//! packet goes to the path where it would arrive first, even if that is a slower path, so
//! that packets sent out of order arrive in order.
//!
//! The unit goes to the path with the smallest metric (ties: lower slot, XQUIC's list
//! order). If that path has no window room right now the unit waits for it: its `wait`
//! already prices the queue, and XQUIC likewise queues the packet on that path.

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// OTIAS scheduler.
#[derive(Debug, Default, Clone)]
pub struct Otias;

impl Otias {
    /// Estimated arrival of a packet handed to `p` now, µs after now.
    pub fn metric_us(p: &PathView) -> u64 {
        let srtt = p.srtt();
        let mss = p.mtu.max(1);
        let space = p.cwnd.saturating_sub(p.in_flight);
        let wait = if p.unsent < space {
            0
        } else {
            let rounds = (p.unsent - space).saturating_add(mss) / p.cwnd.max(mss);
            rounds.saturating_mul(srtt)
        };
        wait.saturating_add(srtt / 2)
    }
}

impl Scheduler for Otias {
    fn name(&self) -> &'static str {
        "otias"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        let set = eligible(unit, paths);
        let best = paths
            .iter()
            .filter(|p| set.contains(p.slot as usize))
            .min_by_key(|p| (Self::metric_us(p), p.slot));
        match best {
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
    use camp_wire::Modality;

    const HOLD: Decision = Decision::Hold { retry_at_us: None };

    /// A 10 ms path with a 10-packet window, full, and `unsent` bytes waiting.
    fn full(unsent: u64) -> PathView {
        let mut p = path(0, 10, 50);
        p.cwnd = 12_000;
        p.in_flight = 12_000;
        p.unsent = unsent;
        p.has_room = false;
        p
    }

    #[test]
    fn metric_is_whole_rtts_of_wait_plus_half_an_rtt() {
        assert_eq!(Otias::metric_us(&path(0, 40, 50)), 20_000);
        // Full window, nothing queued: the next packet leaves within this round.
        assert_eq!(Otias::metric_us(&full(0)), 5_000);
        // 24 kB queued behind a full 12 kB window: floor((24 000 + 1 200) / 12 000) = 2.
        assert_eq!(Otias::metric_us(&full(24_000)), 25_000);
        // Room for 6 kB, 3 kB queued: no wait.
        let mut p = full(3_000);
        p.in_flight = 6_000;
        assert_eq!(Otias::metric_us(&p), 5_000);
    }

    #[test]
    fn ranks_by_wait_plus_half_rtt() {
        let mut s = Otias;
        let u = unit(Modality::Video, 0, 1_200, 0);
        // Fast path 25 ms away (two rounds of backlog), slow path 20 ms: take the slow one.
        let p = [full(24_000), path(1, 40, 50)];
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
        // Slow path 30 ms away: the packet arrives sooner by waiting for the fast path,
        // where minRTT would send it on the slow one.
        let p = [full(24_000), path(1, 60, 50)];
        assert_eq!(s.pick(&u, &p), HOLD);
        assert_eq!(MinRtt.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn a_lightly_loaded_faster_path_is_worth_waiting_for() {
        let mut s = Otias;
        let u = unit(Modality::Audio, 0, 120, 0);
        let mut p = [full(0), path(1, 15, 50)];
        assert_eq!(s.pick(&u, &p), HOLD);
        p[0].has_room = true;
        p[0].in_flight = 0;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(0)));
        p[0].usable = false;
        assert_eq!(s.pick(&u, &p), Decision::Send(PathSet::single(1)));
    }
}
