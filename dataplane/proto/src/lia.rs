//! Coupled congestion control: RFC 6356 Linked Increases Algorithm (LIA) across the paths
//! of one CAMP session.
//!
//! Each path of a session is its own QUIC connection with its own controller, so coupling
//! happens through a [`CouplingTable`] shared by every controller a [`Server`] (or
//! [`Client`]) builds: one group per session, one slot per path, each slot holding the
//! path's current window and smoothed RTT in relaxed atomics. A path's controller is
//! attached to its (group, slot) once the path has joined a session and detached when it
//! leaves; while attached and while the table is switched on, the controller's window is
//! governed by the [`Lia`] state below instead of the configured stock algorithm.
//!
//! What this module owns: the pure arithmetic of RFC 6356 §3 ([`lia_alpha`],
//! [`lia_increase`]), the per-path NewReno-with-linked-increase state ([`Lia`]) and the
//! lock-free table. The wrapper that switches between the stock algorithm and LIA is
//! [`crate::cc::MeasuringController`].
//!
//! [`Server`]: crate::server::Server
//! [`Client`]: crate::client::Client

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::cc::PathGauges;
use crate::sched::MAX_PATHS;

/// Session groups a server's coupling table can hold. Groups are allocated in chunks as
/// session slots reach them, so this bounds concurrent sessions, not memory: a session
/// whose slot index is at or above it is not coupled (its paths keep the stock
/// controller). Session slot indices are dense (the most sessions ever open at once).
pub const DEFAULT_COUPLING_GROUPS: usize = 65_536;

/// Result of RFC 6356's alpha computation for one group of paths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiaAlpha {
    /// The aggressiveness factor `alpha` (1.0 for a lone path).
    pub alpha: f64,
    /// Sum of the windows of the paths that took part, bytes (saturating).
    pub cwnd_total: u64,
}

impl LiaAlpha {
    /// The value for a path that is alone in its group: LIA reduces to Reno.
    pub fn single(cwnd: u64) -> Self {
        Self {
            alpha: 1.0,
            cwnd_total: cwnd,
        }
    }
}

/// RFC 6356 §3: `alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i cwnd_i / rtt_i)^2`.
///
/// `paths` yields `(cwnd_bytes, srtt_us)` of every path that is in use; paths with a zero
/// window or no RTT sample are skipped. The units of RTT cancel out, so microseconds are
/// fine. With no usable path the result is alpha 1 over an empty total. Never NaN or
/// infinite: every divisor is checked to be positive and finite.
pub fn lia_alpha(paths: impl IntoIterator<Item = (u64, u64)>) -> LiaAlpha {
    let mut total = 0u64;
    let mut best = 0.0f64;
    let mut sum = 0.0f64;
    for (cwnd, srtt_us) in paths {
        if cwnd == 0 || srtt_us == 0 {
            continue;
        }
        total = total.saturating_add(cwnd);
        let (w, rtt) = (cwnd as f64, srtt_us as f64);
        best = best.max(w / (rtt * rtt));
        sum += w / rtt;
    }
    let alpha = total as f64 * best / (sum * sum);
    LiaAlpha {
        alpha: if sum > 0.0 && alpha.is_finite() {
            alpha
        } else {
            1.0
        },
        cwnd_total: total,
    }
}

/// RFC 6356 §3: the congestion-avoidance increase of path i's window, in bytes (fractional),
/// for `bytes_acked` newly acknowledged bytes:
/// `min(alpha * bytes_acked * MSS_i / cwnd_total, bytes_acked * MSS_i / cwnd_i)`.
///
/// The second term caps the path at what Reno would do on it alone. A `cwnd_total` below
/// `cwnd` (stale view of the group) is raised to `cwnd`; a non-finite or negative alpha
/// counts as 1 (Reno).
pub fn lia_increase(alpha: f64, cwnd_total: u64, cwnd: u64, bytes_acked: u64, mss: u64) -> f64 {
    let cwnd = cwnd.max(1) as f64;
    let total = (cwnd_total as f64).max(cwnd);
    let alpha = if alpha.is_finite() && alpha >= 0.0 {
        alpha
    } else {
        1.0
    };
    let acked_mss = bytes_acked as f64 * mss as f64;
    (alpha * acked_mss / total).min(acked_mss / cwnd)
}

/// One path's LIA window: NewReno (RFC 9002 §7, as quinn-proto implements it) for slow
/// start, loss and persistent congestion, RFC 6356's linked increase in congestion
/// avoidance.
#[derive(Clone, Debug)]
pub struct Lia {
    window: u64,
    ssthresh: u64,
    recovery_start: Instant,
    mss: u64,
    /// Fraction of a byte of increase not yet applied (in `[0, 1)`).
    carry: f64,
}

impl Lia {
    /// A window of `window` bytes in slow start; `now` opens no recovery period.
    pub fn new(now: Instant, window: u64, mss: u16) -> Self {
        let mss = u64::from(mss).max(1);
        Self {
            window: window.max(2 * mss),
            ssthresh: u64::MAX,
            recovery_start: now,
            mss,
            carry: 0.0,
        }
    }

    /// Current window, bytes.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Slow-start threshold, bytes (`u64::MAX` before the first loss).
    pub fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn minimum_window(&self) -> u64 {
        2 * self.mss
    }

    /// Takes over a window from another algorithm (coupling switched on or the path was
    /// attached); the slow-start threshold and recovery period are kept.
    pub fn restart_from(&mut self, window: u64) {
        self.window = window.max(self.minimum_window());
        self.carry = 0.0;
    }

    /// `bytes` acknowledged of a packet sent at `sent`. `group` gives alpha and the group's
    /// total window for this path's current window; it is only called in congestion
    /// avoidance.
    pub fn on_ack(
        &mut self,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        group: impl FnOnce(u64) -> LiaAlpha,
    ) {
        if app_limited || sent <= self.recovery_start {
            return;
        }
        if self.window < self.ssthresh {
            self.window = self.window.saturating_add(bytes);
            return;
        }
        let a = group(self.window);
        let inc = lia_increase(a.alpha, a.cwnd_total, self.window, bytes, self.mss) + self.carry;
        let whole = inc.floor();
        self.carry = (inc - whole).clamp(0.0, 1.0);
        // `as` saturates (and maps NaN to 0), which is what a window wants.
        self.window = self.window.saturating_add(whole as u64);
    }

    /// A loss (or ECN) event for a packet sent at `sent`: halve once per recovery period.
    pub fn on_congestion_event(&mut self, now: Instant, sent: Instant, persistent: bool) {
        if sent <= self.recovery_start {
            return;
        }
        self.recovery_start = now;
        self.window = (self.window / 2).max(self.minimum_window());
        self.ssthresh = self.window;
        self.carry = 0.0;
        if persistent {
            self.window = self.minimum_window();
        }
    }

    /// The path MTU changed.
    pub fn on_mtu_update(&mut self, mtu: u16) {
        self.mss = u64::from(mtu).max(1);
        self.window = self.window.max(self.minimum_window());
    }
}

/// One path slot of a group.
#[derive(Debug, Default)]
struct CoupledPath {
    active: AtomicBool,
    cwnd: AtomicU64,
    srtt_us: AtomicU64,
}

#[derive(Debug, Default)]
struct CouplingGroup {
    paths: [CoupledPath; MAX_PATHS],
}

/// Lock-free table of the windows and RTTs of every coupled path, plus the global switch.
///
/// Fixed capacity, allocated once; every operation is a handful of relaxed atomic loads
/// and stores. Writers: each attached controller writes its own slot; the server or client
/// attaches and detaches. Readers (every attached controller on each ACK in congestion
/// avoidance) may see a mix of old and new values, which only perturbs alpha briefly.
#[derive(Debug)]
pub struct CouplingTable {
    on: AtomicBool,
    /// Groups in chunks of [`GROUP_CHUNK`], each allocated when a path first attaches to
    /// one of its groups: the table follows the number of sessions, up to `groups`.
    chunks: Box<[OnceLock<Box<[CouplingGroup]>>]>,
    groups: usize,
}

/// Groups allocated at once (about 12 KB with eight path slots each).
pub const GROUP_CHUNK: usize = 64;

impl CouplingTable {
    /// A table of up to `groups` session groups, coupling initially `on` or off. Only the
    /// chunk table is allocated here (8 bytes per [`GROUP_CHUNK`] groups); groups come
    /// as paths attach.
    pub fn new(groups: usize, on: bool) -> Self {
        Self {
            on: AtomicBool::new(on),
            chunks: (0..groups.div_ceil(GROUP_CHUNK))
                .map(|_| OnceLock::new())
                .collect(),
            groups,
        }
    }

    /// Number of groups the table can hold.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Groups allocated so far (whole chunks).
    pub fn groups_allocated(&self) -> usize {
        self.chunks.iter().filter(|c| c.get().is_some()).count() * GROUP_CHUNK
    }

    /// Group `g`, if allocated.
    fn group(&self, g: usize) -> Option<&CouplingGroup> {
        if g >= self.groups {
            return None;
        }
        self.chunks
            .get(g / GROUP_CHUNK)?
            .get()?
            .get(g % GROUP_CHUNK)
    }

    /// Group `g`, allocating its chunk first (attach only: not on the per-ACK path).
    fn group_or_alloc(&self, g: usize) -> Option<&CouplingGroup> {
        if g >= self.groups {
            return None;
        }
        self.chunks
            .get(g / GROUP_CHUNK)?
            .get_or_init(|| (0..GROUP_CHUNK).map(|_| CouplingGroup::default()).collect())
            .get(g % GROUP_CHUNK)
    }

    /// Switches coupling on or off for every attached path (takes effect at each path's
    /// next congestion-control event).
    pub fn set_enabled(&self, on: bool) {
        self.on.store(on, Relaxed);
    }

    /// Whether coupling is on.
    pub fn enabled(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// Attaches the path measured by `gauges` to `(group, slot)`; false (and nothing
    /// changes) if either is out of range. The slot starts from the path's current gauges.
    pub fn attach(&self, gauges: &PathGauges, group: usize, slot: usize) -> bool {
        let Some(p) = self.group_or_alloc(group).and_then(|g| g.paths.get(slot)) else {
            return false;
        };
        let snap = gauges.snapshot();
        p.cwnd.store(snap.cwnd, Relaxed);
        p.srtt_us.store(snap.srtt_us, Relaxed);
        p.active.store(true, Relaxed);
        gauges.set_coupling_slot(Some((group, slot)));
        true
    }

    /// Detaches the path measured by `gauges` (no-op if it is not attached).
    pub fn detach(&self, gauges: &PathGauges) {
        let Some((group, slot)) = gauges.coupling_slot() else {
            return;
        };
        gauges.set_coupling_slot(None);
        if let Some(p) = self.group(group).and_then(|g| g.paths.get(slot)) {
            p.active.store(false, Relaxed);
            p.cwnd.store(0, Relaxed);
            p.srtt_us.store(0, Relaxed);
        }
    }

    /// Empties every slot of `group` (its session has closed and the group will serve the
    /// next session given the same index). Paths still pointing at the group through
    /// their gauges must have been [`detach`](Self::detach)ed first.
    pub fn clear_group(&self, group: usize) {
        if let Some(g) = self.group(group) {
            for p in &g.paths {
                p.active.store(false, Relaxed);
                p.cwnd.store(0, Relaxed);
                p.srtt_us.store(0, Relaxed);
            }
        }
    }

    /// Marks the attached path measured by `gauges` as in use (`true`, the default on
    /// attach) or not (a standby path carries no data: its window would only distort the
    /// others' alpha, so it is left out of their computation). No-op when not attached.
    pub fn set_active(&self, gauges: &PathGauges, active: bool) {
        if let Some((group, slot)) = gauges.coupling_slot() {
            if let Some(p) = self.group(group).and_then(|g| g.paths.get(slot)) {
                p.active.store(active, Relaxed);
            }
        }
    }

    /// `(cwnd, srtt_us)` of an attached slot, `None` if the slot is free or out of range.
    pub fn path(&self, group: usize, slot: usize) -> Option<(u64, u64)> {
        let p = self.group(group)?.paths.get(slot)?;
        p.active
            .load(Relaxed)
            .then(|| (p.cwnd.load(Relaxed), p.srtt_us.load(Relaxed)))
    }

    /// Sum of the windows of the attached paths of `group`, bytes.
    pub fn group_cwnd(&self, group: usize) -> u64 {
        (0..MAX_PATHS)
            .filter_map(|s| self.path(group, s))
            .fold(0u64, |acc, (w, _)| acc.saturating_add(w))
    }

    /// Records a path's current window and smoothed RTT (called by its controller).
    pub(crate) fn publish(&self, group: usize, slot: usize, cwnd: u64, srtt_us: u64) {
        if let Some(p) = self.group(group).and_then(|g| g.paths.get(slot)) {
            p.cwnd.store(cwnd, Relaxed);
            p.srtt_us.store(srtt_us, Relaxed);
        }
    }

    /// Alpha and total window of `group` as seen by the path in `own_slot`, whose own
    /// current `(own_cwnd, own_srtt_us)` replace what the table holds for it. Allocates
    /// nothing.
    pub fn alpha(
        &self,
        group: usize,
        own_slot: usize,
        own_cwnd: u64,
        own_srtt_us: u64,
    ) -> LiaAlpha {
        let Some(g) = self.group(group) else {
            return LiaAlpha::single(own_cwnd);
        };
        // A slot that has not published an RTT yet (just attached) is skipped by
        // `lia_alpha`: until its first ACK its rate is unknown, and leaving it out only
        // makes the others briefly a little more aggressive.
        let others = g
            .paths
            .iter()
            .enumerate()
            .filter(|&(i, p)| i != own_slot && p.active.load(Relaxed))
            .map(|(_, p)| (p.cwnd.load(Relaxed), p.srtt_us.load(Relaxed)));
        let own = std::iter::once((own_cwnd, own_srtt_us));
        lia_alpha(own.chain(others))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MSS: u64 = 1200;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn one_path_is_reno() {
        let a = lia_alpha([(12_000, 50_000)]);
        assert!(close(a.alpha, 1.0), "{a:?}");
        assert_eq!(a.cwnd_total, 12_000);
        // Reno: one MSS per window of acknowledged bytes.
        let inc = lia_increase(a.alpha, a.cwnd_total, 12_000, 12_000, MSS);
        assert!(close(inc, 1200.0), "{inc}");
    }

    #[test]
    fn two_equal_paths_give_alpha_one_half() {
        // 10 MSS each at 100 ms: total 20, max c/r² = 10/100², sum c/r = 0.2 (in MSS and
        // ms) → alpha = 20 · 0.001 / 0.04 = 0.5.
        let a = lia_alpha([(10 * MSS, 100_000), (10 * MSS, 100_000)]);
        assert!(close(a.alpha, 0.5), "{a:?}");
        assert_eq!(a.cwnd_total, 20 * MSS);
        // Per MSS acknowledged: 0.5 · MSS / (20 MSS) = MSS/40, half of what Reno would do
        // at the group's total window (MSS/20) and a quarter of Reno on this path alone
        // (MSS/10): the pair together grows by half an MSS per RTT.
        let inc = lia_increase(a.alpha, a.cwnd_total, 10 * MSS, MSS, MSS);
        assert!(close(inc, 30.0), "{inc}");
        let reno_alone = lia_increase(1.0, 10 * MSS, 10 * MSS, MSS, MSS);
        assert!(close(reno_alone, 120.0), "{reno_alone}");
    }

    #[test]
    fn unequal_rtts_favour_the_fast_path_within_the_reno_cap() {
        // 10 MSS at 10 ms and 10 MSS at 100 ms: c/r² = 0.1 and 0.001, sum c/r = 1.1,
        // alpha = 20 · 0.1 / 1.21 = 1.652892561983471.
        let a = lia_alpha([(10 * MSS, 10_000), (10 * MSS, 100_000)]);
        assert!(close(a.alpha, 20.0 * 0.1 / 1.21), "{a:?}");
        // Increase per MSS acked on either path: alpha / 20 MSS = 0.0826 MSS, below the
        // Reno cap of 1/10 MSS.
        let inc = lia_increase(a.alpha, a.cwnd_total, 10 * MSS, MSS, MSS);
        assert!(close(inc, 1200.0 * 1.652892561983471 / 20.0), "{inc}");
        assert!(inc < 120.0);
    }

    #[test]
    fn increase_never_exceeds_reno_on_the_path() {
        // alpha / total = 3/20 > 1/10: the cap binds.
        let inc = lia_increase(3.0, 20 * MSS, 10 * MSS, MSS, MSS);
        assert!(close(inc, 120.0), "{inc}");
    }

    #[test]
    fn degenerate_inputs_stay_finite() {
        let empty = lia_alpha(std::iter::empty());
        assert_eq!(empty, LiaAlpha::single(0));
        let skipped = lia_alpha([(0, 10_000), (5_000, 0)]);
        assert_eq!(skipped, LiaAlpha::single(0));
        let huge = lia_alpha([(u64::MAX, 1), (u64::MAX, 1)]);
        assert!(huge.alpha.is_finite());
        assert_eq!(huge.cwnd_total, u64::MAX);
        for alpha in [f64::NAN, f64::INFINITY, -1.0] {
            let inc = lia_increase(alpha, 0, 0, MSS, MSS);
            assert!(inc.is_finite() && inc >= 0.0, "{alpha}: {inc}");
        }
        assert!(lia_increase(0.5, u64::MAX, u64::MAX, u64::MAX, u64::MAX).is_finite());
    }

    #[test]
    fn lia_state_slow_starts_halves_and_collapses_like_new_reno() {
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        let mut l = Lia::new(t0, 10 * MSS, MSS as u16);
        l.on_ack(t(1), MSS, false, |_| panic!("no alpha in slow start"));
        assert_eq!(l.window(), 11 * MSS);
        l.on_ack(t(1), MSS, true, |_| panic!("app-limited"));
        assert_eq!(l.window(), 11 * MSS);
        l.on_congestion_event(t(10), t(2), false);
        assert_eq!((l.window(), l.ssthresh()), (11 * MSS / 2, 11 * MSS / 2));
        // Same recovery period: ignored.
        l.on_congestion_event(t(11), t(9), false);
        assert_eq!(l.window(), 11 * MSS / 2);
        // Congestion avoidance with the group's alpha.
        let w = l.window();
        l.on_ack(t(20), MSS, false, |own| {
            assert_eq!(own, w);
            LiaAlpha {
                alpha: 0.5,
                cwnd_total: 2 * w,
            }
        });
        // 0.5 · 1200 · 1200 / 13200 = 54.54…: 54 whole bytes, the rest carried.
        assert_eq!(l.window(), w + 54);
        l.on_congestion_event(t(30), t(25), true);
        assert_eq!(l.window(), 2 * MSS);
    }

    #[test]
    fn increase_fractions_accumulate() {
        let t0 = Instant::now();
        let mut l = Lia::new(t0, 100 * MSS, MSS as u16);
        l.on_congestion_event(
            t0 + Duration::from_millis(1),
            t0 + Duration::from_millis(1),
            false,
        );
        let w = l.window();
        // One window's worth of ACKs of 100 bytes each as a lone path: Reno adds about one
        // MSS (slightly less, because the window in the divisor grows along the way:
        // 1200 · 600 · 100 / ~60 600 ≈ 1188; no fraction is lost to rounding).
        let sent = t0 + Duration::from_millis(2);
        for _ in 0..w / 100 {
            l.on_ack(sent, 100, false, LiaAlpha::single);
        }
        let grown = l.window() - w;
        assert!((1185..=1200).contains(&grown), "{grown}");
    }

    #[test]
    fn table_attach_publish_detach() {
        let table = CouplingTable::new(2, false);
        let a = PathGauges::default();
        let b = PathGauges::default();
        assert!(table.attach(&a, 1, 0));
        assert!(table.attach(&b, 1, 3));
        assert!(!table.attach(&b, 2, 0), "group out of range");
        assert!(!table.attach(&b, 0, MAX_PATHS), "slot out of range");
        assert_eq!(a.coupling_slot(), Some((1, 0)));
        assert_eq!(b.coupling_slot(), Some((1, 3)));
        table.publish(1, 0, 10 * MSS, 100_000);
        table.publish(1, 3, 10 * MSS, 100_000);
        assert_eq!(table.group_cwnd(1), 20 * MSS);
        assert_eq!(table.group_cwnd(0), 0);
        let seen_by_a = table.alpha(1, 0, 10 * MSS, 100_000);
        assert!(close(seen_by_a.alpha, 0.5), "{seen_by_a:?}");
        table.set_active(&b, false);
        assert_eq!(
            table.alpha(1, 0, 10 * MSS, 100_000),
            LiaAlpha::single(10 * MSS)
        );
        table.set_active(&b, true);
        assert!(close(table.alpha(1, 0, 10 * MSS, 100_000).alpha, 0.5));
        table.detach(&b);
        assert_eq!(b.coupling_slot(), None);
        assert_eq!(table.path(1, 3), None);
        assert_eq!(
            table.alpha(1, 0, 10 * MSS, 100_000),
            LiaAlpha::single(10 * MSS)
        );
        table.detach(&b);
        assert_eq!(table.path(1, 0), Some((10 * MSS, 100_000)));
    }

    #[test]
    fn clearing_a_group_empties_only_that_group() {
        let table = CouplingTable::new(2, true);
        let (a, b) = (PathGauges::default(), PathGauges::default());
        assert!(table.attach(&a, 0, 0));
        assert!(table.attach(&b, 1, 2));
        table.publish(0, 0, 10 * MSS, 50_000);
        table.publish(1, 2, 12 * MSS, 60_000);
        table.clear_group(0);
        assert_eq!(table.path(0, 0), None);
        assert_eq!(table.group_cwnd(0), 0);
        assert_eq!(table.path(1, 2), Some((12 * MSS, 60_000)));
        table.clear_group(7);
    }

    #[test]
    fn groups_are_allocated_as_sessions_reach_them() {
        let table = CouplingTable::new(1_000, true);
        assert_eq!(table.groups(), 1_000);
        assert_eq!(table.groups_allocated(), 0);
        let g = PathGauges::default();
        // Group 700 (chunk 10) is usable once attached; nothing else is allocated.
        assert_eq!(table.path(700, 0), None);
        assert!(table.attach(&g, 700, 0));
        assert_eq!(table.groups_allocated(), GROUP_CHUNK);
        assert!(table.path(700, 0).is_some());
        assert_eq!(table.path(5, 0), None, "chunk 0 was never allocated");
        table.publish(700, 0, 12_000, 30_000);
        assert_eq!(table.group_cwnd(700), 12_000);
        assert_eq!(table.alpha(700, 1, 24_000, 60_000).cwnd_total, 36_000);
        // Beyond the table: refused, and reads answer as for an uncoupled path.
        assert!(!table.attach(&PathGauges::default(), 1_000, 0));
        assert_eq!(table.alpha(1_000, 0, 9_000, 1).cwnd_total, 9_000);
        table.detach(&g);
        assert_eq!(table.path(700, 0), None);
    }
}
