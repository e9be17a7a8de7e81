//! Per-unit multipath scheduling (draft-song-tsvwg-camp-00 §3.1.3, §4.3).
//!
//! The session calls a [`Scheduler`] once for every unit it wants to transmit (and again for a
//! held unit when a path gains room), passing the unit's description and a read-only
//! [`PathView`] of every path. The scheduler answers with a [`Decision`]. Schedulers own only
//! small fixed-size state: no allocation and no locks per decision.

use camp_wire::{Micros, Modality, PathId, PathStatus, Reliability, SyncIndex};

mod blest;
mod camp;
mod ecf;
mod linger;
mod minrtt;
mod otias;
mod pinning;
#[cfg(test)]
mod proptests;
mod redundant;
mod single;
mod xlink;

pub use blest::{
    BLEST_LAMBDA_BAD, BLEST_LAMBDA_GOOD, BLEST_LAMBDA_INIT, BLEST_LAMBDA_MAX, BLEST_LAMBDA_MIN,
    Blest,
};
pub use camp::{ConsistencyAware, ConsistencyAwareConfig};
pub use ecf::{ECF_R_BETA, Ecf};
pub use linger::LowestLinger;
pub use minrtt::MinRtt;
pub use otias::Otias;
pub use pinning::Pinning;
pub use redundant::Redundant;
pub use single::SinglePath;
pub use xlink::{XLINK_MAX_REINJECT_US, XLINK_MIN_REINJECT_US, XLINK_SRTT_FACTOR_TENTHS, Xlink};

/// Most paths one session can use at once (path slots; path *ids* are never reused).
pub const MAX_PATHS: usize = 8;

/// A set of path slots (bit `i` = slot `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathSet(u8);

impl PathSet {
    /// No path.
    pub const EMPTY: PathSet = PathSet(0);
    /// The set holding one slot.
    pub const fn single(slot: usize) -> Self {
        PathSet(1 << (slot as u32 % MAX_PATHS as u32))
    }
    /// Whether `slot` is in the set.
    pub const fn contains(self, slot: usize) -> bool {
        slot < MAX_PATHS && self.0 & (1 << slot) != 0
    }
    /// Adds `slot`.
    #[must_use]
    pub const fn with(self, slot: usize) -> Self {
        PathSet(self.0 | Self::single(slot).0)
    }
    /// Removes `slot`.
    #[must_use]
    pub const fn without(self, slot: usize) -> Self {
        PathSet(self.0 & !Self::single(slot).0)
    }
    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Number of slots in the set.
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }
    /// Slots in ascending order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_PATHS).filter(move |&s| self.contains(s))
    }
}

/// What the scheduler knows about the unit to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitInfo {
    /// Modality of the unit.
    pub modality: Modality,
    /// Reliability class `r_m`.
    pub reliability: Reliability,
    /// Bytes the unit occupies on the wire (frame header + unit header + payload).
    pub size: u32,
    /// Sync index `k`.
    pub sync_index: SyncIndex,
    /// Generation time `g_m,k` on the session clock.
    pub gen_time_us: Micros,
    /// Absolute deadline `g + delta_m` on the session clock, if the unit has one.
    pub deadline_us: Option<Micros>,
    /// Session-clock time of the decision.
    pub now_us: Micros,
    /// True when the unit was already sent on a path that failed or stalled.
    pub reinjection: bool,
    /// Paths that must not be chosen (where a reinjected unit already went).
    pub avoid: PathSet,
}

/// Read-only state of one path as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathView {
    /// Slot index (position in the session's path table).
    pub slot: u8,
    /// Explicit path id.
    pub id: PathId,
    /// Administrative status.
    pub status: PathStatus,
    /// Precedence (higher preferred; draft-gage-quicmp-pathmodel).
    pub precedence: u8,
    /// Established, joined, not abandoned or closed.
    pub usable: bool,
    /// No acknowledgement progress for several PTOs: probably failing.
    pub suspect: bool,
    /// The path can take data now (in flight + unsent below cwnd, stream credit left).
    pub has_room: bool,
    /// Smoothed RTT, µs.
    pub srtt_us: u64,
    /// Minimum RTT, µs.
    pub min_rtt_us: u64,
    /// RTT variance, µs.
    pub rttvar_us: u64,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Bytes in flight.
    pub in_flight: u64,
    /// Bytes written to the path but not yet packetised.
    pub unsent: u64,
    /// Measured delivery rate, bytes per second (0 = unknown).
    pub delivery_rate: u64,
    /// Bottleneck-bandwidth estimate from intervals in which the path was not
    /// application-limited, bytes per second (0 = no such interval recently).
    pub btl_bw: u64,
    /// Recent loss rate, parts per million.
    pub loss_ppm: u64,
    /// Maximum datagram size.
    pub mtu: u64,
    /// How long the session would take to declare this path failed if it went dark now
    /// (stall detection: two PTOs, at least `min_suspect_after`), after which its
    /// unacknowledged reliable units are reinjected elsewhere, µs.
    pub failover_us: u64,
}

/// Smallest RTT assumed for a path with no sample, µs.
const UNKNOWN_RTT_US: u64 = 100_000;

impl PathView {
    /// An unusable path (fills fixed-size view arrays).
    pub const fn placeholder() -> Self {
        PathView {
            slot: 0,
            id: PathId(0),
            status: PathStatus::Standby,
            precedence: 0,
            usable: false,
            suspect: false,
            has_room: false,
            srtt_us: 0,
            min_rtt_us: 0,
            rttvar_us: 0,
            cwnd: 0,
            in_flight: 0,
            unsent: 0,
            delivery_rate: 0,
            btl_bw: 0,
            loss_ppm: 0,
            mtu: 0,
            failover_us: 0,
        }
    }

    /// Smoothed RTT with a fallback for paths that have no sample yet.
    pub fn srtt(&self) -> u64 {
        if self.srtt_us == 0 {
            UNKNOWN_RTT_US
        } else {
            self.srtt_us
        }
    }

    /// Rate at which the path can drain queued bytes now, bytes/s: one congestion window per
    /// smoothed RTT (what quinn will release), capped by the bottleneck bandwidth when the
    /// path was recently loaded enough to measure it. An application-limited path has no
    /// bottleneck estimate, and its window (which does not grow while app-limited) is the
    /// binding limit for a burst anyway.
    pub fn send_rate(&self) -> u64 {
        let window_rate = self.cwnd.saturating_mul(1_000_000) / self.srtt().max(1);
        let rate = if self.btl_bw > 0 {
            window_rate.min(self.btl_bw)
        } else {
            window_rate
        };
        rate.max(1)
    }

    /// One-way delay estimate, µs (half the smoothed RTT: paths are assumed symmetric).
    pub fn one_way_delay_us(&self) -> u64 {
        self.srtt() / 2
    }

    /// Time until `bytes` more could be fully handed to the network, µs: the backlog already
    /// in quinn plus the unit, drained at [`send_rate`](Self::send_rate), plus the wait for
    /// window room when the window is full.
    pub fn drain_us(&self, bytes: u64) -> u64 {
        let backlog = self.unsent.saturating_add(bytes);
        let drain = backlog.saturating_mul(1_000_000) / self.send_rate();
        let window_wait = if self.has_room { 0 } else { self.srtt() / 2 };
        drain.saturating_add(window_wait)
    }

    /// Predicted arrival of a unit of `bytes` sent now, µs on the session clock (the expected
    /// value; add [`margin_us`](Self::margin_us) for a pessimistic bound).
    pub fn predicted_arrival_us(&self, now_us: Micros, bytes: u64) -> Micros {
        now_us
            .saturating_add(self.drain_us(bytes))
            .saturating_add(self.one_way_delay_us())
    }

    /// Variance margin for arrival predictions, µs.
    pub fn margin_us(&self) -> u64 {
        self.rttvar_us / 2
    }

    /// Linger time (Linux MPTCP upstream): bytes queued on the path / rate, µs.
    pub fn linger_us(&self) -> u64 {
        self.unsent
            .saturating_add(self.in_flight)
            .saturating_mul(1_000_000)
            / self.send_rate()
    }
}

/// The scheduler's answer for one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Transmit on every path in the set (one path normally; several for redundancy).
    Send(PathSet),
    /// Keep the unit queued; ask again when a path gains room or at `retry_at_us`.
    Hold {
        /// When to ask again at the latest (None: on the next path event).
        retry_at_us: Option<Micros>,
    },
    /// Drop the unit (only ever for droppable units whose deadline cannot be met).
    Drop,
}

/// Alignment feedback from the client (draft §4.4), handed to schedulers that use it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientFeedback {
    /// Current target playout delay of the client's alignment buffer, µs.
    pub playout_delay_us: u32,
    /// Media held in the alignment buffer, µs.
    pub buffer_occupancy_us: u32,
    /// Mean inter-modal skew Delta_k over the last interval, µs.
    pub skew_mean_us: u32,
    /// 95th percentile of Delta_k over the last interval, µs.
    pub skew_p95_us: u32,
    /// Units that arrived after their presentation time in the last interval.
    pub late_units: u32,
}

/// A tunable scheduler parameter, changed at run time with [`Scheduler::set_param`]
/// (campd's `campctl set NAME VALUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedParam {
    /// Inter-modal skew treated as good enough, µs.
    TargetSkewUs,
    /// Multiple of a path's RTT variance added to arrival predictions.
    MarginFactor,
    /// Safety margin before the aim point of an early unit, µs.
    EarlyGuardUs,
    /// Largest queueing delay a droppable unit may add to a path, µs.
    MaxDroppableQueueUs,
    /// Reliable units up to this many bytes are sent on two paths.
    DuplicateReliableBelow,
    /// Longest a unit may be sent ahead of its media time, µs.
    MaxLeadUs,
}

impl SchedParam {
    /// Every parameter.
    pub const ALL: [SchedParam; 6] = [
        SchedParam::TargetSkewUs,
        SchedParam::MarginFactor,
        SchedParam::EarlyGuardUs,
        SchedParam::MaxDroppableQueueUs,
        SchedParam::DuplicateReliableBelow,
        SchedParam::MaxLeadUs,
    ];

    /// Position in [`ALL`](Self::ALL).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Why [`Scheduler::set_param`] refused a value.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The scheduler has no such parameter.
    #[error("scheduler {scheduler} has no parameter {param:?}")]
    Unsupported {
        /// Scheduler name.
        scheduler: &'static str,
        /// The parameter.
        param: SchedParam,
    },
    /// Negative, not finite, or too large for the parameter.
    #[error("{param:?} = {value} is not a valid value")]
    Invalid {
        /// The parameter.
        param: SchedParam,
        /// Refused value.
        value: f64,
    },
}

/// A per-unit path scheduler.
pub trait Scheduler: Send + std::fmt::Debug {
    /// Short name for tables and telemetry.
    fn name(&self) -> &'static str;
    /// Decides where `unit` goes given the current `paths` (slots in ascending order).
    fn pick(&mut self, unit: &UnitInfo, paths: &[PathView]) -> Decision;
    /// Latest alignment feedback from the client.
    fn on_feedback(&mut self, _feedback: &ClientFeedback) {}

    /// Changes a tuning parameter; takes effect on the next decision. The default
    /// scheduler has none.
    fn set_param(&mut self, param: SchedParam, _value: f64) -> Result<(), ParamError> {
        Err(ParamError::Unsupported {
            scheduler: self.name(),
            param,
        })
    }

    /// Proactive reinjection (XLINK-style): how long a reliable unit just sent on `path` may
    /// stay unacknowledged before the session sends a copy on another path, µs. `None`
    /// (the default) reinjects only when a path fails or stalls.
    fn reinject_after_us(
        &self,
        _unit: &UnitInfo,
        _path: &PathView,
        _paths: &[PathView],
    ) -> Option<u64> {
        None
    }
}

/// Paths a unit may use, by the rules every scheduler shares: usable, not draining, not in
/// `unit.avoid`; `Available` paths of the highest precedence present, falling back to the
/// next precedence and finally to `Standby` paths only when no better one is usable
/// (MP_PRIO / quicmp-pathmodel precedence semantics). Suspect paths are used only when
/// nothing else is left.
pub fn eligible(unit: &UnitInfo, paths: &[PathView]) -> PathSet {
    let base = |p: &PathView| {
        p.usable && p.status != PathStatus::Drain && !unit.avoid.contains(p.slot as usize)
    };
    let mut best: Option<(bool, u8, bool)> = None; // (available, precedence, healthy)
    for p in paths.iter().filter(|p| base(p)) {
        let key = (p.status == PathStatus::Available, p.precedence, !p.suspect);
        let rank = (key.2, key.0, key.1);
        if best.is_none_or(|b| rank > (b.2, b.0, b.1)) {
            best = Some(key);
        }
    }
    let Some((avail, prec, healthy)) = best else {
        return PathSet::EMPTY;
    };
    paths
        .iter()
        .filter(|p| {
            base(p)
                && (p.status == PathStatus::Available) == avail
                && p.precedence == prec
                && p.suspect != healthy
        })
        .fold(PathSet::EMPTY, |s, p| s.with(p.slot as usize))
}

/// The paths a reinjection of a unit already sent on `sent_on` should avoid. A copy goes to
/// a path it has not used yet when one is healthy; when every such path is suspected failed
/// (or gone) and a path it was sent on is healthy, it may go back there instead: the copy
/// there was lost above QUIC (the safety timeout fired although the path delivers), and a
/// path that stopped answering would hold it for as long as it stays dark (issue 14).
pub fn reinjection_avoid(sent_on: PathSet, unit: &UnitInfo, paths: &[PathView]) -> PathSet {
    let healthy = |set: PathSet| {
        paths
            .iter()
            .any(|p| set.contains(p.slot as usize) && !p.suspect)
    };
    let avoiding = eligible(
        &UnitInfo {
            avoid: sent_on,
            ..*unit
        },
        paths,
    );
    if healthy(avoiding) {
        return sent_on;
    }
    let anywhere = eligible(
        &UnitInfo {
            avoid: PathSet::EMPTY,
            ..*unit
        },
        paths,
    );
    if healthy(anywhere) || (avoiding.is_empty() && !anywhere.is_empty()) {
        PathSet::EMPTY
    } else {
        sent_on
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn path(slot: u8, srtt_ms: u64, rate_mbit: u64) -> PathView {
        PathView {
            slot,
            id: PathId(slot as u32),
            status: PathStatus::Available,
            precedence: 1,
            usable: true,
            suspect: false,
            has_room: true,
            srtt_us: srtt_ms * 1000,
            min_rtt_us: srtt_ms * 1000,
            rttvar_us: srtt_ms * 100,
            cwnd: 64 * 1200,
            in_flight: 0,
            unsent: 0,
            delivery_rate: rate_mbit * 125_000,
            btl_bw: rate_mbit * 125_000,
            loss_ppm: 0,
            mtu: 1200,
            failover_us: (2 * (srtt_ms * 1000 + 4 * srtt_ms * 100 + 25_000)).max(150_000),
        }
    }

    pub(crate) fn unit(m: Modality, k: u32, size: u32, now_ms: u64) -> UnitInfo {
        UnitInfo {
            modality: m,
            reliability: m.default_reliability(),
            size,
            sync_index: k,
            gen_time_us: now_ms * 1000,
            deadline_us: Some(now_ms * 1000 + 150_000),
            now_us: now_ms * 1000,
            reinjection: false,
            avoid: PathSet::EMPTY,
        }
    }

    #[test]
    fn eligible_prefers_available_highest_precedence_then_standby() {
        let u = unit(Modality::Audio, 0, 100, 0);
        let mut p = [path(0, 10, 10), path(1, 20, 10), path(2, 30, 10)];
        assert_eq!(eligible(&u, &p), PathSet::single(0).with(1).with(2));
        p[2].precedence = 5;
        assert_eq!(eligible(&u, &p), PathSet::single(2));
        p[2].status = PathStatus::Standby;
        assert_eq!(eligible(&u, &p), PathSet::single(0).with(1));
        p[0].usable = false;
        p[1].status = PathStatus::Drain;
        assert_eq!(
            eligible(&u, &p),
            PathSet::single(2),
            "standby only when nothing else"
        );
        p[2].suspect = true;
        p[1].status = PathStatus::Standby;
        assert_eq!(
            eligible(&u, &p),
            PathSet::single(1),
            "healthy standby beats suspect"
        );
    }

    #[test]
    fn a_reinjection_returns_to_its_healthy_path_rather_than_wait_for_a_suspect_one() {
        let mut p = [path(0, 10, 40), path(1, 50, 10)];
        let u = unit(Modality::Audio, 1, 120, 0);
        let sent = PathSet::single(1);
        // Another healthy path: the copy goes there.
        assert_eq!(reinjection_avoid(sent, &u, &p), sent);
        // The other path is suspected failed: back to the path that delivers.
        p[0].suspect = true;
        assert_eq!(reinjection_avoid(sent, &u, &p), PathSet::EMPTY);
        // Both suspected: prefer the one not tried yet.
        p[1].suspect = true;
        assert_eq!(reinjection_avoid(sent, &u, &p), sent);
        // The other path is gone: the only path left, suspect or not.
        p[0].usable = false;
        assert_eq!(reinjection_avoid(sent, &u, &p), PathSet::EMPTY);
        // Nothing usable at all: nothing to gain from dropping the avoid set.
        p[1].usable = false;
        assert_eq!(reinjection_avoid(sent, &u, &p), sent);
    }

    #[test]
    fn eligible_honours_avoid_set() {
        let mut u = unit(Modality::Text, 0, 50, 0);
        let p = [path(0, 10, 10), path(1, 20, 10)];
        u.avoid = PathSet::single(0);
        assert_eq!(eligible(&u, &p), PathSet::single(1));
        u.avoid = u.avoid.with(1);
        assert!(eligible(&u, &p).is_empty());
    }

    #[test]
    fn prediction_accounts_for_backlog_rate_and_window() {
        let mut p = path(0, 20, 8); // 1 MB/s bottleneck, cwnd 76.8 kB / 20 ms = 3.84 MB/s
        assert_eq!(p.send_rate(), 1_000_000);
        assert_eq!(p.one_way_delay_us(), 10_000);
        p.btl_bw = 0; // application-limited: the window is the limit
        assert_eq!(p.send_rate(), 3_840_000);
        p.cwnd = 20_000; // 1 MB/s by window
        assert_eq!(p.send_rate(), 1_000_000);
        p.unsent = 9_000;
        assert_eq!(p.drain_us(1_000), 10_000);
        assert_eq!(
            p.predicted_arrival_us(5_000, 1_000),
            5_000 + 10_000 + 10_000
        );
        p.has_room = false;
        assert_eq!(p.drain_us(1_000), 20_000);
    }
}
