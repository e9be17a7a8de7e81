//! BLEST, BLocking ESTimation-based scheduling.
//!
//! Sources: S. Ferlin, Ö. Alay, O. Mehani, R. Boreli, "BLEST: Blocking Estimation-based
//! MPTCP Scheduler for Heterogeneous Networks", IFIP Networking 2016, and its Linux
//! implementation `net/mptcp/mptcp_blest.c` (multipath-tcp.org kernel).
//!
//! Rule. Let `f` be the fastest eligible path (lowest smoothed RTT, room or not) and `s` the
//! default (minRTT) choice among eligible paths with window room. If `f` has room, send on
//! it. Otherwise sending on the slower `s` occupies the connection's send window for about
//! one RTT of `s`, during which the fast path could have sent
//!
//! ```text
//! X = lambda · r · (cwnd_f + MSS_f · (r − 1) / 2),   r = srtt_s / srtt_f
//! ```
//!
//! bytes: `r` rounds of `f`, its window growing by one MSS per round (Reno congestion
//! avoidance), the paper's estimate with a real-valued `r` (the kernel rounds `r` up to
//! whole rounds, which overstates `X` by up to a window when the RTTs are close). If `X` exceeds what is left of the send window after
//! the unit is placed on `s`, `W − (size + unsent_s + in_flight_s)`, the unit would block
//! the fast path (head-of-line blocking at the receiver), so BLEST **holds** it for `f`;
//! otherwise it sends on `s`.
//!
//! lambda starts at 1.2 and is bounded to 1.0–1.3. At most once per minimum RTT of the slow
//! path (the kernel's rate limit) it moves by +0.04 if a retransmission was seen since the
//! last update, −0.01 otherwise. A retransmission here is a unit the session reinjects
//! (`UnitInfo::reinjection`), the counterpart of the kernel's meta-level retransmission.
//!
//! The send window `W`: MPTCP shares one receive window over all subflows; CAMP runs one
//! QUIC connection per path, each with its own flow control, so there is no such shared
//! window. By default `W` is the in-flight capacity the receiver needs to keep every
//! eligible path busy while the slowest one delivers, `W = Σ send_rate_i · max_i srtt_i`
//! (the MPTCP receive-buffer sizing `2 · Σ BW_i · RTT_max` of Raiciu et al., NSDI 2012,
//! without its factor 2 for fast retransmission); [`Blest::with_send_window`] fixes it
//! instead.

use camp_wire::Micros;

use super::{Decision, PathSet, PathView, Scheduler, UnitInfo, eligible};

/// Initial lambda, thousandths.
pub const BLEST_LAMBDA_INIT: u32 = 1_200;
/// Smallest lambda, thousandths.
pub const BLEST_LAMBDA_MIN: u32 = 1_000;
/// Largest lambda, thousandths.
pub const BLEST_LAMBDA_MAX: u32 = 1_300;
/// Increase of lambda after a retransmission, thousandths.
pub const BLEST_LAMBDA_BAD: u32 = 40;
/// Decrease of lambda without retransmission, thousandths.
pub const BLEST_LAMBDA_GOOD: u32 = 10;

/// BLEST scheduler.
#[derive(Debug, Clone)]
pub struct Blest {
    /// lambda in thousandths.
    lambda_milli: u32,
    /// A reinjection was seen since the last lambda update.
    retrans: bool,
    /// Time of the last lambda update (None before the first slow-path decision).
    last_update_us: Option<Micros>,
    /// Fixed send window, bytes (None: derived from the paths).
    send_window: Option<u64>,
}

impl Default for Blest {
    fn default() -> Self {
        Self {
            lambda_milli: BLEST_LAMBDA_INIT,
            retrans: false,
            last_update_us: None,
            send_window: None,
        }
    }
}

impl Blest {
    /// BLEST with a fixed connection send window of `bytes`.
    pub fn with_send_window(bytes: u64) -> Self {
        Self {
            send_window: Some(bytes),
            ..Self::default()
        }
    }

    /// Current lambda in thousandths.
    pub fn lambda_milli(&self) -> u32 {
        self.lambda_milli
    }

    /// Bytes `fast` could send during one RTT of `slow`, times lambda.
    pub fn fast_bytes(&self, fast: &PathView, slow: &PathView) -> u64 {
        // r · (cwnd + mss · (r − 1) / 2) with r = s / f, in integers:
        // s · (2 · f · cwnd + mss · (s − f)) / (2 · f²).
        let f = u128::from(fast.srtt());
        let s = u128::from(slow.srtt());
        let mss = u128::from(fast.mtu);
        // Operands are below 2^64; products saturate only for absurd path states.
        let growth = mss.saturating_mul(s.saturating_sub(f));
        let num = s.saturating_mul(
            (2 * f)
                .saturating_mul(u128::from(fast.cwnd))
                .saturating_add(growth),
        );
        let bytes = num / (2 * f).saturating_mul(f);
        let x = bytes.saturating_mul(u128::from(self.lambda_milli)) / 1_000;
        u64::try_from(x).unwrap_or(u64::MAX)
    }

    /// The connection send window for this decision.
    fn window(&self, set: PathSet, paths: &[PathView]) -> u64 {
        if let Some(w) = self.send_window {
            return w;
        }
        let candidates = || paths.iter().filter(|p| set.contains(p.slot as usize));
        let max_srtt = u128::from(candidates().map(PathView::srtt).max().unwrap_or(0));
        let w = candidates()
            .map(|p| u128::from(p.send_rate()).saturating_mul(max_srtt) / 1_000_000)
            .fold(0u128, u128::saturating_add);
        u64::try_from(w).unwrap_or(u64::MAX)
    }

    /// The kernel's lambda update, at most once per minimum RTT of the slow path.
    fn update_lambda(&mut self, now_us: Micros, slow: &PathView) {
        let interval = if slow.min_rtt_us > 0 {
            slow.min_rtt_us
        } else {
            slow.srtt()
        };
        let Some(last) = self.last_update_us else {
            self.last_update_us = Some(now_us);
            return;
        };
        if now_us.saturating_sub(last) < interval {
            return;
        }
        self.lambda_milli = if self.retrans {
            self.lambda_milli + BLEST_LAMBDA_BAD
        } else {
            self.lambda_milli.saturating_sub(BLEST_LAMBDA_GOOD)
        }
        .clamp(BLEST_LAMBDA_MIN, BLEST_LAMBDA_MAX);
        self.retrans = false;
        self.last_update_us = Some(now_us);
    }
}

impl Scheduler for Blest {
    fn name(&self) -> &'static str {
        "blest"
    }

    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision {
        const HOLD: Decision = Decision::Hold { retry_at_us: None };
        if unit.reinjection {
            self.retrans = true;
        }
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
        if slow.slot != fast.slot {
            self.update_lambda(unit.now_us, slow);
            let fast_bytes = self.fast_bytes(fast, slow);
            let slow_bytes = u64::from(unit.size)
                .saturating_add(slow.unsent)
                .saturating_add(slow.in_flight);
            let avail = self.window(set, paths).saturating_sub(slow_bytes);
            if fast_bytes > avail {
                return HOLD;
            }
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

    /// Fast path 10 ms with a full window of 76.8 kB, slow path 15 ms with room.
    fn two() -> [PathView; 2] {
        let mut p = [path(0, 10, 50), path(1, 15, 50)];
        p[0].has_room = false;
        p[0].in_flight = p[0].cwnd;
        p
    }

    #[test]
    fn fast_bytes_follow_window_growth_over_the_slow_rtt() {
        let s = Blest::default();
        let p = two();
        // r = 1.5 rounds: 1.5 · (76 800 + 1 200 · 0.25) = 115 650 bytes, × 1.2.
        assert_eq!(s.fast_bytes(&p[0], &p[1]), 138_780);
        let mut slow = p[1];
        slow.srtt_us = 100_000; // r = 10: 10 · (76 800 + 1 200 · 4.5) = 822 000, × 1.2
        assert_eq!(s.fast_bytes(&p[0], &slow), 986_400);
    }

    #[test]
    fn holds_then_sends_as_lambda_changes() {
        // W = 153 kB; an 8 kB unit on the empty slow path leaves 145 kB.
        let mut s = Blest::with_send_window(153_000);
        let p = two();
        let mut t = 0;
        let mut pick = |s: &mut Blest, reinjection: bool| {
            let mut v = unit(Modality::Video, 0, 8_000, t);
            v.reinjection = reinjection;
            t += 20; // more than the slow path's min RTT: lambda may move each time
            s.pick(&v, &p)
        };
        // lambda 1.2: 138 780 <= 145 000: minRTT's choice stands.
        assert_eq!(pick(&mut s, false), Decision::Send(PathSet::single(1)));
        assert_eq!(s.lambda_milli(), 1_200);
        // A reinjection: lambda 1.24, 143 406 still fits.
        assert_eq!(pick(&mut s, true), Decision::Send(PathSet::single(1)));
        assert_eq!(s.lambda_milli(), 1_240);
        // Another: lambda 1.28, 148 032 > 145 000: hold for the fast path.
        assert_eq!(pick(&mut s, true), HOLD);
        assert_eq!(s.lambda_milli(), 1_280);
        assert_eq!(
            MinRtt.pick(&unit(Modality::Video, 0, 8_000, 0), &p),
            Decision::Send(PathSet::single(1))
        );
        // Clean rounds bring lambda down by 0.01 each: at 1.25 (144 562) it fits again.
        for _ in 0..2 {
            assert_eq!(pick(&mut s, false), HOLD);
        }
        assert_eq!(pick(&mut s, false), Decision::Send(PathSet::single(1)));
        assert_eq!(s.lambda_milli(), 1_250);
        // lambda stays within 1.0..=1.3.
        for _ in 0..50 {
            pick(&mut s, false);
        }
        assert_eq!(s.lambda_milli(), BLEST_LAMBDA_MIN);
        for _ in 0..50 {
            pick(&mut s, true);
        }
        assert_eq!(s.lambda_milli(), BLEST_LAMBDA_MAX);
    }

    #[test]
    fn lambda_moves_at_most_once_per_slow_path_min_rtt() {
        let mut s = Blest::with_send_window(10_000_000);
        let p = two();
        for ms in 0..15 {
            let mut v = unit(Modality::Video, 0, 8_000, ms);
            v.reinjection = true;
            s.pick(&v, &p);
        }
        assert_eq!(s.lambda_milli(), BLEST_LAMBDA_INIT);
        s.pick(&unit(Modality::Video, 0, 8_000, 15), &p);
        assert_eq!(s.lambda_milli(), BLEST_LAMBDA_INIT + BLEST_LAMBDA_BAD);
    }

    #[test]
    fn holds_then_sends_as_slow_backlog_and_fast_window_change() {
        let mut s = Blest::with_send_window(153_000);
        let mut p = two();
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
        // 10 kB already in flight on the slow path: 135 kB left < 138 780.
        p[1].in_flight = 10_000;
        assert_eq!(s.pick(&v, &p), HOLD);
        // The fast path's window halves (a loss): it could send far less meanwhile.
        p[0].cwnd /= 2;
        p[0].in_flight = p[0].cwnd;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
        // A fast path with room is always used.
        p[0].in_flight = 0;
        p[0].has_room = true;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(0)));
    }

    #[test]
    fn default_window_is_the_aggregate_rate_over_the_largest_rtt() {
        let mut p = [path(0, 10, 80), path(1, 100, 8)];
        p[0].cwnd = 100_000;
        p[1].cwnd = 200_000;
        // 10 MB/s and 1 MB/s (bottleneck-limited) over 100 ms.
        let s = Blest::default();
        assert_eq!(s.window(PathSet::single(0).with(1), &p), 1_100_000);
        // A very slow second path: the fast one could send 1.26 MB meanwhile, more than
        // the window left: wait for the fast path (minRTT would use the slow one).
        p[0].has_room = false;
        let mut s = Blest::default();
        let v = unit(Modality::Video, 0, 8_000, 0);
        assert_eq!(s.pick(&v, &p), HOLD);
        assert_eq!(MinRtt.pick(&v, &p), Decision::Send(PathSet::single(1)));
        // Comparable paths (12 ms, 10 MB/s): W = 240 kB, X = 144 172: send on the second.
        p[1].srtt_us = 12_000;
        p[1].btl_bw = 10_000_000;
        assert_eq!(s.pick(&v, &p), Decision::Send(PathSet::single(1)));
    }
}
