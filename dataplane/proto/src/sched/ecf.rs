//! ECF, Earliest Completion First.
//!
//! Sources: Y. Lim, E. M. Nahum, D. Towsley, R. J. Gibbens, "ECF: An MPTCP Path Scheduler
//! to Manage Heterogeneous Paths", ACM CoNEXT 2017 (Algorithm 1), and its Linux
//! implementation `net/mptcp/mptcp_ecf.c` (multipath-tcp.org kernel, `r_beta` = 4, i.e.
//! beta = 0.25).
//!
//! Rule. Let `f` be the fastest eligible path (lowest smoothed RTT, window room or not) and
//! `s` the minRTT choice among eligible paths that have room. If `f` has room (`f == s`),
//! send on it. Otherwise decide between sending on the slower `s` now and waiting for `f`:
//! ECF waits when finishing the queued data on `f` after one more round would still be
//! sooner than one trip over `s`, and `s` is slow enough that this matters.
//!
//! With `k` = bytes waiting to be scheduled, `x_f = max(k, cwnd_f)`,
//! `x_s = max(k, cwnd_s)` (the kernel's floor: at least one window is sent), `delta =
//! max(rttvar_f, rttvar_s)` and the waiting bit `w` (0 or 1), ECF **holds** for `f` iff
//!
//! ```text
//! (1)  srtt_f · (1 + x_f / cwnd_f)  <  (1 + w · beta) · (srtt_s + delta)
//! (2)  srtt_s · x_s / cwnd_s        >= 2 · srtt_f + delta
//! ```
//!
//! evaluated exactly in integers as `4 · srtt_f · (x_f + cwnd_f) < (4 + w) · cwnd_f ·
//! (srtt_s + delta)` and `srtt_s · x_s >= cwnd_s · (2 · srtt_f + delta)`. When (1) and (2)
//! hold, `w` becomes 1 (hysteresis: once waiting, the fast path keeps its 25 % bonus); when
//! (1) fails, `w` becomes 0 and the unit goes on `s`; when (1) holds but (2) fails the unit
//! goes on `s` and `w` is unchanged (as in the paper and the kernel).
//!
//! `k`: the kernel takes the connection-level bytes not yet handed to any subflow. The
//! session hands the scheduler one unit at a time and keeps the rest of its queue to
//! itself, so `k` is the unit's size; for units below a window (nearly all real-time
//! units) condition (2) reduces to `srtt_s >= 2 · srtt_f + delta`.

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Inverse of ECF's hysteresis factor beta (beta = 1 / `ECF_R_BETA` = 0.25).
pub const ECF_R_BETA: u128 = 4;

/// Earliest-completion-first scheduler.
#[derive(Debug, Default, Clone)]
pub struct Ecf {
    /// ECF's `waiting` state bit (the kernel's `switching_margin`).
    waiting: bool,
}

impl Ecf {
    /// Whether the last slow-path decision chose to wait for the fast path.
    pub fn waiting(&self) -> bool {
        self.waiting
    }

    /// ECF's choice between waiting for `fast` and sending on `slow` now; updates the
    /// waiting bit. True = wait.
    fn wait_for_fast(&mut self, k: u64, fast: &PathView, slow: &PathView) -> bool {
        let k = u128::from(k);
        let cwnd_f = u128::from(fast.cwnd.max(1));
        let cwnd_s = u128::from(slow.cwnd.max(1));
        let srtt_f = u128::from(fast.srtt());
        let srtt_s = u128::from(slow.srtt());
        let delta = u128::from(fast.rttvar_us.max(slow.rttvar_us));
        let x_f = k.max(cwnd_f);
        let x_s = k.max(cwnd_s);
        // Operands are below 2^66; products saturate only for absurd path states.
        let lhs = (ECF_R_BETA * srtt_f).saturating_mul(x_f + cwnd_f);
        let rhs = ((ECF_R_BETA + u128::from(self.waiting)) * cwnd_f).saturating_mul(srtt_s + delta);
        if lhs < rhs {
            if srtt_s.saturating_mul(x_s) >= cwnd_s.saturating_mul(2 * srtt_f + delta) {
                self.waiting = true;
                return true;
            }
            false
        } else {
            self.waiting = false;
            false
        }
    }
}

impl Scheduler for Ecf {
    fn name(&self) -> &'static str {
        "ecf"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        const HOLD: Decision = Decision::Hold { retry_at_us: None };
        let set = eligible(unit, paths);
        let candidates = || paths.iter().filter(|p| set.contains(p.slot as usize));
        let Some(fast) = candidates().min_by_key(|p| (p.srtt(), p.slot)) else {
            return HOLD;
        };
        let Some(slow) = candidates()
            .filter(|p| p.has_room)
            .min_by_key(|p| (p.srtt(), p.slot))
        else {
            return HOLD;
        };
        if slow.slot != fast.slot && self.wait_for_fast(u64::from(unit.size), fast, slow) {
            return HOLD;
        }
        Decision::Send(PathSet::single(slow.slot as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{path, unit};
    use super::super::{MinRtt, PathSet};
    use super::*;
    use camp_wire::Modality;

    const HOLD: Decision = Decision::Hold { retry_at_us: None };

    /// Fast path 10 ms (full window), slow path `slow_ms`; rttvar 1 ms and 4 ms.
    fn two(slow_ms: u64) -> [PathView; 2] {
        let mut p = [path(0, 10, 50), path(1, slow_ms, 50)];
        p[0].has_room = false;
        p[0].rttvar_us = 1_000;
        p[1].rttvar_us = 4_000;
        p
    }

    #[test]
    fn sends_on_fast_path_when_it_has_room() {
        let mut s = Ecf::default();
        let mut p = two(40);
        p[0].has_room = true;
        let a = unit(Modality::Audio, 0, 120, 0);
        assert_eq!(s.pick(&a, &p), Decision::Send(PathSet::single(0)));
        p[0].has_room = false;
        p[1].has_room = false;
        assert_eq!(s.pick(&a, &p), HOLD);
    }

    #[test]
    fn waits_for_fast_path_when_slow_path_would_finish_later() {
        let mut s = Ecf::default();
        // (1) 10 · 2 = 20 < 40 + 4; (2) 40 >= 2 · 10 + 4: wait.
        let p = two(40);
        let a = unit(Modality::Audio, 0, 120, 0);
        assert_eq!(s.pick(&a, &p), HOLD);
        assert!(s.waiting());
        assert_eq!(MinRtt.pick(&a, &p), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn sends_on_slow_path_when_it_would_finish_sooner() {
        // (2) fails: 20 < 2 · 10 + 4, the slow path is only twice as slow.
        let mut s = Ecf::default();
        let a = unit(Modality::Audio, 0, 120, 0);
        assert_eq!(s.pick(&a, &two(20)), Decision::Send(PathSet::single(1)));
        assert!(!s.waiting());
        // (1) fails: 1 MB through the fast path takes 10 · (1 + 13.6) ms > 40 + 4 ms.
        let v = unit(Modality::Video, 0, 1_048_576, 0);
        assert_eq!(s.pick(&v, &two(40)), Decision::Send(PathSet::single(1)));
    }

    #[test]
    fn hysteresis_keeps_waiting_within_beta() {
        // x_f = 4 windows: fast completion 10 · 5 = 50 ms vs slow 40 + 4 = 44 ms.
        let big = unit(Modality::Video, 0, 4 * 64 * 1200, 0);
        let p = two(40);
        // Not waiting before: 50 >= 44, send on the slow path.
        let mut fresh = Ecf::default();
        assert_eq!(fresh.pick(&big, &p), Decision::Send(PathSet::single(1)));
        assert!(!fresh.waiting());
        // Waiting before: 50 < 1.25 · 44 = 55, and (2) 4 · 40 >= 24: keep waiting.
        let mut s = Ecf::default();
        let a = unit(Modality::Audio, 0, 120, 0);
        assert_eq!(s.pick(&a, &p), HOLD);
        assert_eq!(s.pick(&big, &p), HOLD);
        assert!(s.waiting());
        // Beyond the margin (10 · 7 = 70 >= 55) it gives up waiting and resets the bit.
        let bigger = unit(Modality::Video, 0, 6 * 64 * 1200, 0);
        assert_eq!(s.pick(&bigger, &p), Decision::Send(PathSet::single(1)));
        assert!(!s.waiting());
        assert_eq!(s.pick(&big, &p), Decision::Send(PathSet::single(1)));
    }
}
