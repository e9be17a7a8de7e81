//! Per-path congestion-controller wrapper: measures what quinn-proto keeps private.
//!
//! quinn-proto does not expose bytes in flight, raw RTT samples, RTT variance or a delivery
//! rate. Every CAMP path connection is therefore configured with a [`MeasuringFactory`]
//! whose controller delegates congestion decisions to a stock quinn controller (Cubic by
//! default) and records those figures into a shared [`PathGauges`]. The session and the
//! telemetry exporter read the gauges; nothing here blocks (relaxed atomics, written only by
//! the thread that drives the connection).
//!
//! Optionally the wrapper couples the paths of a session (RFC 6356 LIA, see [`crate::lia`]):
//! the stock controller keeps being fed every event, and a [`Lia`] state is fed the same
//! events alongside. While the factory's [`CouplingTable`] is switched on and the path is
//! attached to a session group, [`Controller::window`] returns LIA's window; otherwise the
//! stock controller's, so with coupling off the behaviour is exactly the stock algorithm's.
//! Running both all the time keeps switching cheap and stateless: when LIA takes over it
//! starts from the stock window (and its own NewReno slow-start threshold, learned from the
//! same losses), and when it hands back the stock controller simply continues.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use quinn_proto::RttEstimator;

use crate::lia::{CouplingTable, Lia, LiaAlpha};
use crate::sched::MAX_PATHS;
use quinn_proto::congestion::{
    BbrConfig, Controller, ControllerFactory, ControllerMetrics, CubicConfig, NewRenoConfig,
};

/// Which stock quinn-proto algorithm makes the congestion decisions for a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// RFC 9438 CUBIC (quinn's default).
    #[default]
    Cubic,
    /// RFC 9002 NewReno.
    NewReno,
    /// quinn-proto's experimental BBR.
    Bbr,
}

/// Live measurements of one path, written by its controller and read by the session.
///
/// All values are plain numbers in bytes, bytes per second or microseconds. Writes happen on
/// the thread that drives the connection; readers on other threads may see a mix of old and
/// new fields, which is fine for scheduling and telemetry.
#[derive(Debug, Default)]
pub struct PathGauges {
    cwnd: AtomicU64,
    in_flight: AtomicU64,
    srtt_us: AtomicU64,
    min_rtt_us: AtomicU64,
    rttvar_us: AtomicU64,
    latest_rtt_us: AtomicU64,
    max_rtt_us: AtomicU64,
    delivery_rate: AtomicU64,
    btl_bw: AtomicU64,
    sent_bytes: AtomicU64,
    acked_bytes: AtomicU64,
    lost_bytes: AtomicU64,
    loss_ppm: AtomicU64,
    congestion_events: AtomicU64,
    last_ack_us: AtomicU64,
    last_sample_us: AtomicU64,
    unsent: AtomicU64,
    mtu: AtomicU64,
    /// Coupling attachment: 0 = none, else `1 + group * MAX_PATHS + slot`.
    coupling: AtomicU32,
}

/// A consistent-enough copy of [`PathGauges`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GaugeSnapshot {
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Bytes sent and neither acknowledged nor declared lost.
    pub in_flight: u64,
    /// Smoothed RTT (quinn's RFC 6298 estimate), µs.
    pub srtt_us: u64,
    /// Minimum RTT observed, µs.
    pub min_rtt_us: u64,
    /// RTT variance computed from raw samples, µs.
    pub rttvar_us: u64,
    /// Most recent raw RTT sample (ack arrival − send time of the newest acked packet), µs.
    pub latest_rtt_us: u64,
    /// Largest raw RTT sample in the last one to two seconds, µs.
    pub max_rtt_us: u64,
    /// Delivery-rate estimate in bytes per second (windowed max of acked bytes per interval).
    pub delivery_rate: u64,
    /// Bottleneck bandwidth: windowed max over intervals that were not application-limited,
    /// bytes per second (0 = none in the window).
    pub btl_bw: u64,
    /// Total bytes handed to the network (including QUIC overhead and retransmissions).
    pub sent_bytes: u64,
    /// Total bytes acknowledged.
    pub acked_bytes: u64,
    /// Total bytes declared lost.
    pub lost_bytes: u64,
    /// Recent loss rate in parts per million of sent bytes.
    pub loss_ppm: u64,
    /// Congestion events seen.
    pub congestion_events: u64,
    /// Session-clock time of the last acknowledgement, µs (0 = none yet).
    pub last_ack_us: u64,
    /// Session-clock time of the newest raw RTT sample, µs.
    pub last_sample_us: u64,
    /// Stream bytes written into the connection but not yet packetised (estimate).
    pub unsent: u64,
    /// Current maximum datagram size.
    pub mtu: u64,
}

impl PathGauges {
    /// Copies every gauge.
    pub fn snapshot(&self) -> GaugeSnapshot {
        GaugeSnapshot {
            cwnd: self.cwnd.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            srtt_us: self.srtt_us.load(Relaxed),
            min_rtt_us: self.min_rtt_us.load(Relaxed),
            rttvar_us: self.rttvar_us.load(Relaxed),
            latest_rtt_us: self.latest_rtt_us.load(Relaxed),
            max_rtt_us: self.max_rtt_us.load(Relaxed),
            delivery_rate: self.delivery_rate.load(Relaxed),
            btl_bw: self.btl_bw.load(Relaxed),
            sent_bytes: self.sent_bytes.load(Relaxed),
            acked_bytes: self.acked_bytes.load(Relaxed),
            lost_bytes: self.lost_bytes.load(Relaxed),
            loss_ppm: self.loss_ppm.load(Relaxed),
            congestion_events: self.congestion_events.load(Relaxed),
            last_ack_us: self.last_ack_us.load(Relaxed),
            last_sample_us: self.last_sample_us.load(Relaxed),
            unsent: self.unsent.load(Relaxed),
            mtu: self.mtu.load(Relaxed),
        }
    }

    /// Records that the session wrote `bytes` of stream data into the connection.
    pub fn note_written(&self, bytes: u64) {
        self.unsent.fetch_add(bytes, Relaxed);
    }

    /// Forgets the unsent estimate (the connection had room to send and sent nothing more).
    pub fn clear_unsent(&self) {
        self.unsent.store(0, Relaxed);
    }

    /// The `(group, slot)` of the [`CouplingTable`] this path is attached to, if any.
    pub fn coupling_slot(&self) -> Option<(usize, usize)> {
        match self.coupling.load(Relaxed) {
            0 => None,
            v => {
                let i = (v - 1) as usize;
                Some((i / MAX_PATHS, i % MAX_PATHS))
            }
        }
    }

    /// Sets or clears the attachment (only [`CouplingTable`] does this; a group index too
    /// large to encode leaves the path detached).
    pub(crate) fn set_coupling_slot(&self, at: Option<(usize, usize)>) {
        let v = at
            .and_then(|(g, s)| g.checked_mul(MAX_PATHS)?.checked_add(s)?.checked_add(1))
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        self.coupling.store(v, Relaxed);
    }
}

/// Builds a [`MeasuringController`] for exactly one connection.
#[derive(Debug)]
pub struct MeasuringFactory {
    algorithm: CcAlgorithm,
    epoch: Instant,
    gauges: Arc<PathGauges>,
    coupling: Option<Arc<CouplingTable>>,
}

impl MeasuringFactory {
    /// A factory whose controllers write into `gauges`; `epoch` is the session clock's zero.
    pub fn new(algorithm: CcAlgorithm, epoch: Instant, gauges: Arc<PathGauges>) -> Self {
        Self {
            algorithm,
            epoch,
            gauges,
            coupling: None,
        }
    }

    /// Lets the controller be coupled through `table` once its path is attached there.
    pub fn with_coupling(mut self, table: Arc<CouplingTable>) -> Self {
        self.coupling = Some(table);
        self
    }
}

impl ControllerFactory for MeasuringFactory {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        let inner: Box<dyn Controller> = match self.algorithm {
            CcAlgorithm::Cubic => Arc::new(CubicConfig::default()).build(now, current_mtu),
            CcAlgorithm::NewReno => Arc::new(NewRenoConfig::default()).build(now, current_mtu),
            CcAlgorithm::Bbr => Arc::new(BbrConfig::default()).build(now, current_mtu),
        };
        self.gauges.cwnd.store(inner.window(), Relaxed);
        self.gauges.mtu.store(u64::from(current_mtu), Relaxed);
        let lia = Lia::new(now, inner.window(), current_mtu);
        let mut c = MeasuringController {
            inner,
            epoch: self.epoch,
            gauges: self.gauges.clone(),
            state: MeasureState::default(),
            coupling: self.coupling.clone(),
            lia,
            coupled: None,
            srtt_us: 0,
        };
        c.refresh_coupling();
        Box::new(c)
    }
}

/// Length of one delivery-rate sampling interval when no RTT is known yet.
const DEFAULT_RATE_INTERVAL_US: u64 = 25_000;
/// Number of delivery-rate intervals the max filter remembers.
const RATE_FILTER_LEN: usize = 8;
/// How long a bottleneck-bandwidth sample stays valid while the path is application-limited
/// (long enough to remember a thin path's capacity between bursts of large frames).
const BTL_BW_VALID_US: u64 = 10_000_000;
/// Length of one bucket of the windowed max-RTT.
const MAX_RTT_BUCKET_US: u64 = 1_000_000;

#[derive(Clone, Debug, Default)]
struct MeasureState {
    newest_acked_sent: Option<Instant>,
    rttvar_us: Option<u64>,
    rate_window_start_us: u64,
    rate_window_acked: u64,
    rate_window_app_limited: bool,
    /// Smallest raw RTT sample taken in the current rate interval, µs (0 = none).
    rate_window_min_rtt: u64,
    rate_filter: [u64; RATE_FILTER_LEN],
    rate_filter_pos: usize,
    /// `(time, rate)` of recent intervals that were not application-limited.
    btl_filter: [(u64, u64); RATE_FILTER_LEN],
    btl_filter_pos: usize,
    max_rtt_bucket: [u64; 2],
    max_rtt_bucket_start_us: u64,
    loss_window_sent: u64,
    loss_window_lost: u64,
    in_flight: u64,
}

/// A quinn-proto controller that delegates to a stock algorithm and measures the path.
pub struct MeasuringController {
    inner: Box<dyn Controller>,
    epoch: Instant,
    gauges: Arc<PathGauges>,
    state: MeasureState,
    coupling: Option<Arc<CouplingTable>>,
    /// Always fed; governs the window while `coupled` is set.
    lia: Lia,
    /// The `(group, slot)` whose LIA window is in force, `None` while the stock
    /// controller's is.
    coupled: Option<(usize, usize)>,
    /// quinn's smoothed RTT at the last ACK, µs (0 = none yet).
    srtt_us: u64,
}

impl std::fmt::Debug for MeasuringController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeasuringController")
            .field("state", &self.state)
            .field("lia", &self.lia)
            .field("coupled", &self.coupled)
            .finish_non_exhaustive()
    }
}

impl MeasuringController {
    fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    fn publish_window(&self) {
        let window = self.window();
        self.gauges.cwnd.store(window, Relaxed);
        if let (Some(table), Some((group, slot))) = (&self.coupling, self.gauges.coupling_slot()) {
            table.publish(group, slot, window, self.srtt_us);
        }
    }

    /// Picks up a change of the global switch or of the path's attachment. LIA takes over
    /// from the stock window at the moment it starts to govern.
    fn refresh_coupling(&mut self) {
        let now = match &self.coupling {
            Some(table) if table.enabled() => self.gauges.coupling_slot(),
            _ => None,
        };
        if now.is_some() && self.coupled.is_none() {
            self.lia.restart_from(self.inner.window());
        }
        self.coupled = now;
    }

    /// Feeds one acknowledgement to the LIA state (RFC 6356 §3 in congestion avoidance,
    /// with the group's alpha while coupled; as a lone path, i.e. NewReno, otherwise).
    fn lia_on_ack(&mut self, sent: Instant, bytes: u64, app_limited: bool) {
        self.refresh_coupling();
        let srtt_us = self.srtt_us;
        let table = self.coupling.as_deref();
        let coupled = self.coupled;
        self.lia
            .on_ack(sent, bytes, app_limited, |own| match (table, coupled) {
                (Some(t), Some((group, slot))) => t.alpha(group, slot, own, srtt_us),
                _ => LiaAlpha::single(own),
            });
    }

    /// The `(group, slot)` LIA is coupled through, when it governs the window.
    pub fn coupled_slot(&self) -> Option<(usize, usize)> {
        self.coupled
    }
}

impl Controller for MeasuringController {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
        self.refresh_coupling();
        let g = &self.gauges;
        g.sent_bytes.fetch_add(bytes, Relaxed);
        // The unsent estimate only ever under-counts (overhead and retransmissions also
        // drain it), so the session may hand quinn slightly more than a window: harmless.
        let unsent = g.unsent.load(Relaxed);
        g.unsent.store(unsent.saturating_sub(bytes), Relaxed);
        self.state.in_flight = self.state.in_flight.saturating_add(bytes);
        self.state.loss_window_sent += bytes;
        g.in_flight.store(self.state.in_flight, Relaxed);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
        self.srtt_us = u64::try_from(rtt.get().as_micros()).unwrap_or(u64::MAX);
        self.lia_on_ack(sent, bytes, app_limited);
        if self.state.newest_acked_sent.is_none_or(|s| sent > s) {
            self.state.newest_acked_sent = Some(sent);
        }
        self.state.rate_window_acked += bytes;
        self.state.rate_window_app_limited |= app_limited;
        let g = &self.gauges;
        g.acked_bytes.fetch_add(bytes, Relaxed);
        g.srtt_us.store(rtt.get().as_micros() as u64, Relaxed);
        g.min_rtt_us.store(rtt.min().as_micros() as u64, Relaxed);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
        self.refresh_coupling();
        let now_us = self.micros(now);
        let st = &mut self.state;
        st.in_flight = in_flight;
        let g = &self.gauges;
        g.in_flight.store(in_flight, Relaxed);
        g.last_ack_us.store(now_us, Relaxed);

        if let Some(sent) = st.newest_acked_sent.take() {
            let sample =
                u64::try_from(now.saturating_duration_since(sent).as_micros()).unwrap_or(u64::MAX);
            let srtt = g.srtt_us.load(Relaxed).max(1);
            // RFC 6298 variance, from raw samples (quinn keeps its own private).
            let var = match st.rttvar_us {
                None => sample / 2,
                Some(v) => (3 * v + srtt.abs_diff(sample)) / 4,
            };
            st.rttvar_us = Some(var);
            g.rttvar_us.store(var, Relaxed);
            g.latest_rtt_us.store(sample, Relaxed);
            if st.rate_window_min_rtt == 0 || sample < st.rate_window_min_rtt {
                st.rate_window_min_rtt = sample;
            }
            g.last_sample_us.store(now_us, Relaxed);
            if now_us.saturating_sub(st.max_rtt_bucket_start_us) >= MAX_RTT_BUCKET_US {
                st.max_rtt_bucket = [st.max_rtt_bucket[1], 0];
                st.max_rtt_bucket_start_us = now_us;
            }
            st.max_rtt_bucket[1] = st.max_rtt_bucket[1].max(sample);
            g.max_rtt_us
                .store(st.max_rtt_bucket[0].max(st.max_rtt_bucket[1]), Relaxed);
        }

        // Delivery rate: acked bytes per interval of about one smoothed RTT, max-filtered so
        // that application-limited intervals do not drag the estimate of capacity down.
        let interval = match g.srtt_us.load(Relaxed) {
            0 => DEFAULT_RATE_INTERVAL_US,
            s => s.clamp(1_000, 1_000_000),
        };
        if st.rate_window_start_us == 0 {
            st.rate_window_start_us = now_us;
        } else if now_us.saturating_sub(st.rate_window_start_us) >= interval {
            let elapsed = now_us - st.rate_window_start_us;
            let rate = st.rate_window_acked.saturating_mul(1_000_000) / elapsed.max(1);
            let filtered_max = st.rate_filter.iter().copied().max().unwrap_or(0);
            // An app-limited interval can only raise the estimate, never lower it.
            if !st.rate_window_app_limited || rate > filtered_max {
                st.rate_filter[st.rate_filter_pos] = rate;
                st.rate_filter_pos = (st.rate_filter_pos + 1) % RATE_FILTER_LEN;
            }
            let valid_btl = |f: &[(u64, u64); RATE_FILTER_LEN]| {
                f.iter()
                    .filter(|(t, _)| *t > 0 && t + BTL_BW_VALID_US >= now_us)
                    .map(|&(_, r)| r)
                    .max()
                    .unwrap_or(0)
            };
            // A rate measures the bottleneck only when the bottleneck was the limit. Then the
            // sender kept a window's worth moving and a queue stood in front of the
            // bottleneck for the whole interval: even the interval's smallest RTT sample lies
            // above the path's minimum by more than its RTT variation (jitter alone leaves
            // some samples near the minimum). Without that evidence the sender's window or the
            // application was the limit (slow start, a window cut by random loss, a path kept
            // idle), so the rate is only a lower bound on capacity: it may raise the estimate,
            // never lower it. Taking such intervals as capacity pins a lossy or rarely used
            // path at a fraction of its rate, and a scheduler that believes it keeps the path
            // idle, so the estimate never recovers.
            let min_rtt = g.min_rtt_us.load(Relaxed);
            let standing_queue = min_rtt > 0
                && st.rate_window_min_rtt > min_rtt.saturating_add(st.rttvar_us.unwrap_or(0));
            let window_full = st.rate_window_acked.saturating_mul(2) >= self.inner.window();
            let measures_capacity = !st.rate_window_app_limited && standing_queue && window_full;
            // A lower bound above the capacity estimate proves the estimate too low; with no
            // estimate it proves nothing about the limit, so the estimate stays unknown.
            let current = valid_btl(&st.btl_filter);
            if measures_capacity || (current > 0 && rate > current) {
                st.btl_filter[st.btl_filter_pos] = (now_us, rate);
                st.btl_filter_pos = (st.btl_filter_pos + 1) % RATE_FILTER_LEN;
            }
            g.delivery_rate
                .store(st.rate_filter.iter().copied().max().unwrap_or(0), Relaxed);
            g.btl_bw.store(valid_btl(&st.btl_filter), Relaxed);
            st.rate_window_start_us = now_us;
            st.rate_window_acked = 0;
            st.rate_window_app_limited = false;
            st.rate_window_min_rtt = 0;

            // Loss rate over the same interval, smoothed 1/4.
            if let Some(ppm) = st
                .loss_window_lost
                .saturating_mul(1_000_000)
                .checked_div(st.loss_window_sent)
            {
                let old = g.loss_ppm.load(Relaxed);
                g.loss_ppm
                    .store((3 * old + ppm.min(1_000_000)) / 4, Relaxed);
            }
            st.loss_window_sent = 0;
            st.loss_window_lost = 0;
        }
        self.publish_window();
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.inner
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
        self.refresh_coupling();
        self.lia
            .on_congestion_event(now, sent, is_persistent_congestion);
        let g = &self.gauges;
        g.lost_bytes.fetch_add(lost_bytes, Relaxed);
        g.congestion_events.fetch_add(1, Relaxed);
        self.state.loss_window_lost += lost_bytes;
        self.state.in_flight = self.state.in_flight.saturating_sub(lost_bytes);
        g.in_flight.store(self.state.in_flight, Relaxed);
        self.publish_window();
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
        self.lia.on_mtu_update(new_mtu);
        self.gauges.mtu.store(u64::from(new_mtu), Relaxed);
        self.publish_window();
    }

    fn window(&self) -> u64 {
        match self.coupled {
            Some(_) => self.lia.window(),
            None => self.inner.window(),
        }
    }

    fn metrics(&self) -> ControllerMetrics {
        match self.coupled {
            Some(_) => {
                let mut m = ControllerMetrics::default();
                m.congestion_window = self.lia.window();
                m.ssthresh = Some(self.lia.ssthresh());
                m
            }
            None => self.inner.metrics(),
        }
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(MeasuringController {
            inner: self.inner.clone_box(),
            epoch: self.epoch,
            gauges: self.gauges.clone(),
            state: self.state.clone(),
            coupling: self.coupling.clone(),
            lia: self.lia.clone(),
            coupled: self.coupled,
            srtt_us: self.srtt_us,
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn controller() -> (Box<dyn Controller>, Arc<PathGauges>, Instant) {
        let epoch = Instant::now();
        let gauges = Arc::new(PathGauges::default());
        let f = Arc::new(MeasuringFactory::new(
            CcAlgorithm::Cubic,
            epoch,
            gauges.clone(),
        ));
        (f.build(epoch, 1200), gauges, epoch)
    }

    #[test]
    fn tracks_in_flight_sent_acked_and_lost() {
        let (mut c, g, t0) = controller();
        c.on_sent(t0, 1200, 0);
        c.on_sent(t0, 1200, 1);
        assert_eq!(g.snapshot().in_flight, 2400);
        c.on_congestion_event(t0 + Duration::from_millis(5), t0, false, 1200);
        let s = g.snapshot();
        assert_eq!(
            (s.in_flight, s.lost_bytes, s.sent_bytes),
            (1200, 1200, 2400)
        );
        assert_eq!(s.congestion_events, 1);
        assert_eq!(s.cwnd, c.window());
    }

    #[test]
    fn raw_rtt_sample_is_taken_from_newest_acked_packet() {
        let (mut c, g, t0) = controller();
        // A real RttEstimator can only be obtained from quinn; the wrapper's own sample does
        // not depend on it, so drive on_end_acks after recording a send instant directly.
        c.on_sent(t0, 1200, 0);
        let any = c.into_any();
        let mut m = any.downcast::<MeasuringController>().expect("our own type");
        m.state.newest_acked_sent = Some(t0 + Duration::from_millis(2));
        m.on_end_acks(t0 + Duration::from_millis(32), 0, false, Some(0));
        let s = g.snapshot();
        assert_eq!(s.latest_rtt_us, 30_000);
        assert_eq!(s.max_rtt_us, 30_000);
        assert_eq!(s.last_ack_us, 32_000);
        assert_eq!(s.in_flight, 0);
    }

    /// Ends one rate interval at `at_ms` in which `acked` bytes were acknowledged, with one
    /// raw RTT sample of `rtt_ms`; returns the published bottleneck estimate.
    fn rate_interval(
        m: &mut MeasuringController,
        g: &PathGauges,
        t0: Instant,
        at_ms: u64,
        acked: u64,
        rtt_ms: u64,
    ) -> u64 {
        let now = t0 + Duration::from_millis(at_ms);
        m.state.rate_window_acked += acked;
        m.state.newest_acked_sent = Some(now - Duration::from_millis(rtt_ms));
        m.on_end_acks(now, 0, false, Some(at_ms));
        g.btl_bw.load(Relaxed)
    }

    #[test]
    fn bottleneck_estimate_comes_only_from_intervals_that_show_a_standing_queue() {
        let (c, g, t0) = controller();
        let mut m = c
            .into_any()
            .downcast::<MeasuringController>()
            .expect("ours");
        // A 40 ms path; the interval is one smoothed RTT.
        g.min_rtt_us.store(40_000, Relaxed);
        g.srtt_us.store(40_000, Relaxed);
        m.on_end_acks(t0, 0, false, None);
        // Window-limited intervals with no queue (slow start, a window cut by loss) are lower
        // bounds: with no estimate yet they leave it unknown instead of capping the path.
        assert_eq!(rate_interval(&mut m, &g, t0, 50, 2_000, 41), 0);
        assert_eq!(rate_interval(&mut m, &g, t0, 100, 20_000, 40), 0);
        // A full window with a standing queue (every RTT sample well above the minimum)
        // measures the bottleneck: 12 kB in 50 ms.
        let window = m.inner.window();
        assert_eq!(rate_interval(&mut m, &g, t0, 150, window, 90), window * 20);
        // A lower bound below it does not lower it...
        assert_eq!(rate_interval(&mut m, &g, t0, 200, 1_000, 40), window * 20);
        // ...one above it proves it too low and raises it.
        let more = window * 2;
        assert_eq!(rate_interval(&mut m, &g, t0, 250, more, 40), more * 20);
        // A standing queue with a half-empty window is no measurement either.
        assert_eq!(
            rate_interval(&mut m, &g, t0, 300, window / 4, 90),
            more * 20
        );
    }

    /// Controller under test, reference stock controller, its gauges, the table, epoch.
    type Pair = (
        Box<dyn Controller>,
        Box<dyn Controller>,
        Arc<PathGauges>,
        Arc<CouplingTable>,
        Instant,
    );

    /// A coupled-capable Cubic controller, a plain Cubic fed the same events, the table.
    fn coupled_pair() -> Pair {
        let epoch = Instant::now();
        let gauges = Arc::new(PathGauges::default());
        let table = Arc::new(CouplingTable::new(4, false));
        let f = Arc::new(
            MeasuringFactory::new(CcAlgorithm::Cubic, epoch, gauges.clone())
                .with_coupling(table.clone()),
        );
        let reference = Arc::new(CubicConfig::default()).build(epoch, 1200);
        (f.build(epoch, 1200), reference, gauges, table, epoch)
    }

    /// Feeds a send, a loss and an end-of-ACKs to both controllers; returns their windows.
    fn step(c: &mut dyn Controller, r: &mut dyn Controller, t0: Instant, round: u64) -> (u64, u64) {
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let base = 100 * round;
        let feed = |x: &mut dyn Controller| {
            x.on_sent(at(base + 1), 1200, round);
            x.on_congestion_event(at(base + 50), at(base + 1), false, 1200);
            x.on_end_acks(at(base + 51), 0, false, Some(round));
        };
        feed(c);
        feed(r);
        (c.window(), r.window())
    }

    #[test]
    fn coupling_off_or_unattached_is_exactly_the_stock_controller() {
        let (mut c, mut r, g, table, t0) = coupled_pair();
        // On but not attached: stock.
        table.set_enabled(true);
        for round in 0..3 {
            let (w, want) = step(&mut *c, &mut *r, t0, round);
            assert_eq!(w, want, "round {round}");
            assert_eq!(g.snapshot().cwnd, want);
        }
        // Attached but off: stock.
        table.set_enabled(false);
        assert!(table.attach(&g, 2, 1));
        for round in 3..6 {
            let (w, want) = step(&mut *c, &mut *r, t0, round);
            assert_eq!(w, want, "round {round}");
        }
        // The attached slot tracks the effective (stock) window.
        assert_eq!(table.path(2, 1).map(|p| p.0), Some(r.window()));
    }

    #[test]
    fn coupling_on_hands_the_window_to_lia_and_back() {
        let (mut c, mut r, g, table, t0) = coupled_pair();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(table.attach(&g, 0, 3));
        table.set_enabled(true);
        // Takes over from the stock window at the next event.
        c.on_sent(at(1), 1200, 0);
        r.on_sent(at(1), 1200, 0);
        assert_eq!(c.window(), r.window());
        // A loss halves (NewReno) where Cubic backs off to 0.7.
        let before = c.window();
        c.on_congestion_event(at(50), at(1), false, 1200);
        r.on_congestion_event(at(50), at(1), false, 1200);
        assert_eq!(c.window(), before / 2);
        assert_ne!(c.window(), r.window());
        assert_eq!(
            g.snapshot().cwnd,
            before / 2,
            "gauges show the window in force"
        );
        assert_eq!(table.path(0, 3).map(|p| p.0), Some(before / 2));
        let any = c.clone_box().into_any();
        let m = any.downcast::<MeasuringController>().expect("our own type");
        assert_eq!(m.coupled_slot(), Some((0, 3)));
        // Off again: the stock controller, which saw every event, is back in charge.
        table.set_enabled(false);
        c.on_sent(at(60), 1200, 1);
        r.on_sent(at(60), 1200, 1);
        assert_eq!(c.window(), r.window());
        // On, then detached: stock again, and the slot is free.
        table.set_enabled(true);
        c.on_sent(at(70), 1200, 2);
        r.on_sent(at(70), 1200, 2);
        assert_eq!(c.window(), r.window(), "restarted from the stock window");
        c.on_congestion_event(at(120), at(70), false, 1200);
        r.on_congestion_event(at(120), at(70), false, 1200);
        assert_ne!(c.window(), r.window());
        table.detach(&g);
        assert_eq!(table.path(0, 3), None);
        c.on_sent(at(130), 1200, 3);
        r.on_sent(at(130), 1200, 3);
        assert_eq!(c.window(), r.window());
    }

    #[test]
    fn attachment_encoding_round_trips() {
        let g = PathGauges::default();
        assert_eq!(g.coupling_slot(), None);
        for at in [(0, 0), (0, MAX_PATHS - 1), (255, 5), (100_000, 7)] {
            g.set_coupling_slot(Some(at));
            assert_eq!(g.coupling_slot(), Some(at));
        }
        g.set_coupling_slot(Some((usize::MAX, 0)));
        assert_eq!(g.coupling_slot(), None, "unencodable group stays detached");
    }

    #[test]
    fn unsent_estimate_drains_on_send_and_never_underflows() {
        let (mut c, g, t0) = controller();
        g.note_written(1500);
        c.on_sent(t0, 1200, 0);
        assert_eq!(g.snapshot().unsent, 300);
        c.on_sent(t0, 1200, 1);
        assert_eq!(g.snapshot().unsent, 0);
    }
}
