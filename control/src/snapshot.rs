//! Plain, serialisable copies of what the engine knows about its sessions and paths.
//!
//! The engine builds an [`EngineSnapshot`] from `camp_proto::server::Server` telemetry once per
//! loop interval and hands it to [`crate::publish`]; everything downstream (Prometheus, the
//! control socket, `campctl`) reads only these types, never protocol state.

use std::net::SocketAddr;

use camp_proto::server::{PathInfo, ServerCounters, SessionId};
use camp_proto::store::StoreCounters;
use camp_proto::{Modality, PathStatus};
use serde::{Deserialize, Serialize};

/// Modality names in wire-code order (index = `Modality as usize`).
pub const MODALITY_NAMES: [&str; Modality::COUNT] = ["text", "audio", "video"];

/// Administrative path status as telemetry carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathState {
    /// Used only when no available path can carry a unit.
    Standby,
    /// Eligible for scheduling.
    Available,
    /// Takes no new units.
    Drain,
}

impl PathState {
    /// Lower-case name (`standby`, `available`, `drain`).
    pub const fn name(self) -> &'static str {
        match self {
            PathState::Standby => "standby",
            PathState::Available => "available",
            PathState::Drain => "drain",
        }
    }

    /// Parses a lower-case name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "standby" => Some(PathState::Standby),
            "available" => Some(PathState::Available),
            "drain" => Some(PathState::Drain),
            _ => None,
        }
    }
}

impl From<PathStatus> for PathState {
    fn from(s: PathStatus) -> Self {
        match s {
            PathStatus::Standby => PathState::Standby,
            PathStatus::Available => PathState::Available,
            PathStatus::Drain => PathState::Drain,
        }
    }
}

impl From<PathState> for PathStatus {
    fn from(s: PathState) -> Self {
        match s {
            PathState::Standby => PathStatus::Standby,
            PathState::Available => PathStatus::Available,
            PathState::Drain => PathStatus::Drain,
        }
    }
}

/// XDP classifier counters of one path: the CAMP-port frames the NIC's XDP program saw
/// from the path's remote endpoint (filled by the engine from `camp-xdp`'s per-CPU maps;
/// defined here so the control plane does not depend on the I/O layer). Packet counts by
/// verdict; `bytes` covers every frame counted in `packets`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpCounters {
    /// Frames seen from the remote endpoint on the CAMP ports.
    pub packets: u64,
    /// Bytes of those frames.
    pub bytes: u64,
    /// Redirected into an AF_XDP socket.
    pub redirected: u64,
    /// Passed to the kernel (no socket on the receiving queue).
    pub passed: u64,
    /// Redirect refused by the kernel (ring full or socket gone).
    pub redirect_failed: u64,
    /// Malformed (bad UDP length).
    pub parse_failed: u64,
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketsBytes {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Whole-NIC XDP classifier counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicSnapshot {
    /// Interface name.
    pub name: String,
    /// How the program is attached (`native`, `generic`, ...).
    pub attach: String,
    /// CAMP traffic redirected to AF_XDP.
    pub redirected: PacketsBytes,
    /// Other traffic passed to the kernel.
    pub pass_other: PacketsBytes,
    /// CAMP traffic passed because no socket serves the receiving queue.
    pub pass_no_socket: PacketsBytes,
    /// Redirects the kernel refused.
    pub redirect_failed: PacketsBytes,
    /// Malformed frames.
    pub parse_failed: PacketsBytes,
}

/// One path of one session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PathSnapshot {
    /// Session the path belongs to ([`SessionId::to_bits`]).
    pub session: u64,
    /// Path id inside the session.
    pub path: u32,
    /// Local address.
    pub local: SocketAddr,
    /// Peer address.
    pub remote: SocketAddr,
    /// Interface the path leaves by.
    pub nic: String,
    /// Administrative status.
    pub status: PathState,
    /// Precedence (higher preferred).
    pub precedence: u8,
    /// Established and joined.
    pub usable: bool,
    /// Stalled (no acknowledgement progress for several PTOs).
    pub suspect: bool,
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
    /// Bytes written but not yet packetised.
    pub unsent: u64,
    /// Delivery rate, bytes/s.
    pub delivery_rate: u64,
    /// Bottleneck bandwidth estimate, bytes/s.
    pub btl_bw: u64,
    /// Recent loss rate, parts per million.
    pub loss_ppm: u64,
    /// Maximum datagram size.
    pub mtu: u64,
    /// Units written to the path.
    pub units_sent: u64,
    /// Unit bytes written to the path.
    pub bytes_sent: u64,
    /// Bytes handed to the network including QUIC overhead and retransmissions.
    pub wire_bytes_sent: u64,
    /// Bytes declared lost.
    pub lost_bytes: u64,
    /// Counters of the XDP program on `nic`, if the path runs over AF_XDP.
    pub xdp: Option<XdpCounters>,
}

impl PathSnapshot {
    /// Copies one path's telemetry.
    pub fn from_path_info(
        session: SessionId,
        info: &PathInfo,
        nic: &str,
        xdp: Option<XdpCounters>,
    ) -> Self {
        let v = &info.view;
        PathSnapshot {
            session: session.to_bits(),
            path: v.id.0,
            local: info.local,
            remote: info.remote,
            nic: nic.to_owned(),
            status: v.status.into(),
            precedence: v.precedence,
            usable: v.usable,
            suspect: v.suspect,
            srtt_us: v.srtt_us,
            min_rtt_us: v.min_rtt_us,
            rttvar_us: v.rttvar_us,
            cwnd: v.cwnd,
            in_flight: v.in_flight,
            unsent: v.unsent,
            delivery_rate: v.delivery_rate,
            btl_bw: v.btl_bw,
            loss_ppm: v.loss_ppm,
            mtu: v.mtu,
            units_sent: info.units_sent,
            bytes_sent: info.bytes_sent,
            wire_bytes_sent: info.gauges.sent_bytes,
            lost_bytes: info.gauges.lost_bytes,
            xdp,
        }
    }
}

/// Per-modality unit counters of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalityCounters {
    /// Units accepted.
    pub submitted: u64,
    /// Units transmitted for the first time.
    pub sent: u64,
    /// Retransmissions on another path.
    pub reinjected: u64,
    /// Droppable units dropped at their deadline.
    pub dropped: u64,
    /// Units acknowledged.
    pub acked: u64,
}

/// One session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    /// Session id ([`SessionId::to_bits`]).
    pub session: u64,
    /// Scheduler name.
    pub scheduler: String,
    /// Paths currently in the session.
    pub paths: u32,
    /// Unit counters, indexed by modality wire code (text, audio, video).
    pub modalities: [ModalityCounters; Modality::COUNT],
    /// Reinjections by the end-to-end safety timeout.
    pub safety_reinjections: u64,
    /// Client's target playout delay, µs (latest feedback).
    pub playout_delay_us: u32,
    /// Client's mean inter-modal skew over its last interval, µs.
    pub skew_mean_us: u32,
    /// Client's 95th percentile inter-modal skew over its last interval, µs.
    pub skew_p95_us: u32,
    /// Units the client saw arrive after their presentation time in its last interval.
    pub late_units: u32,
}

impl SessionSnapshot {
    /// Copies one session's counters from the server's accessors.
    pub fn new(
        session: SessionId,
        scheduler: &str,
        paths: usize,
        store: &StoreCounters,
        feedback: Option<&camp_proto::sched::ClientFeedback>,
    ) -> Self {
        let mut modalities = [ModalityCounters::default(); Modality::COUNT];
        for (m, c) in modalities.iter_mut().enumerate() {
            *c = ModalityCounters {
                submitted: store.submitted[m],
                sent: store.sent[m],
                reinjected: store.reinjected[m],
                dropped: store.dropped[m],
                acked: store.acked[m],
            };
        }
        let fb = feedback.copied().unwrap_or_default();
        SessionSnapshot {
            session: session.to_bits(),
            scheduler: scheduler.to_owned(),
            paths: u32::try_from(paths).unwrap_or(u32::MAX),
            modalities,
            safety_reinjections: store.safety_reinjections,
            playout_delay_us: fb.playout_delay_us,
            skew_mean_us: fb.skew_mean_us,
            skew_p95_us: fb.skew_p95_us,
            late_units: fb.late_units,
        }
    }
}

/// Server-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTotals {
    /// Sessions created.
    pub sessions_opened: u64,
    /// Joins refused (all reasons).
    pub join_refused: u64,
    /// Control frames that failed to decode.
    pub malformed_control: u64,
    /// Unit streams reset at their deadline.
    pub deadline_resets: u64,
    /// Paths suspected failed.
    pub suspected: u64,
    /// What the edge refused or noticed (strangers, floods, limits).
    #[serde(default)]
    pub edge: EdgeTotals,
}

/// Edge counters: refusals by reason and the handshake outcomes of strangers
/// (`camp_proto::edge`, plus the ingest limits campd applies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EdgeTotals {
    /// Connection attempts accepted into a handshake.
    pub handshakes_started: u64,
    /// Handshakes that failed before completing (wrong ALPN, bad TLS).
    pub handshakes_failed: u64,
    /// Connections closed for sending no HELLO or JOIN within the join timeout.
    pub hello_timeouts: u64,
    /// Connection attempts refused: source over its handshake rate.
    pub refused_handshake_rate: u64,
    /// Connection attempts refused: source table full.
    pub refused_source_table_full: u64,
    /// HELLOs refused: source has its maximum of sessions.
    pub refused_sessions_per_source: u64,
    /// JOINs refused: token had its maximum of attempts.
    pub refused_join_attempts: u64,
    /// QUIC Retry packets sent (address validation).
    pub retries_sent: u64,
    /// Ingested units refused by the per-session unit or byte rate.
    pub ingest_rate_limited: u64,
    /// Datagrams that reached no connection and got no answer, by
    /// `camp_proto::edge::DatagramDrop` (same order).
    pub datagrams_dropped: [u64; camp_proto::edge::DatagramDrop::ALL.len()],
    /// Datagrams answered without a connection (Version Negotiation, stateless reset,
    /// refusal, Retry).
    pub datagrams_answered: u64,
}

impl EdgeTotals {
    /// `(event, count)` pairs in a fixed order, for metrics and campctl.
    pub fn events(&self) -> [(&'static str, u64); 9] {
        [
            ("handshake_started", self.handshakes_started),
            ("handshake_failed", self.handshakes_failed),
            ("hello_timeout", self.hello_timeouts),
            ("refused_handshake_rate", self.refused_handshake_rate),
            ("refused_source_table_full", self.refused_source_table_full),
            (
                "refused_sessions_per_source",
                self.refused_sessions_per_source,
            ),
            ("refused_join_attempts", self.refused_join_attempts),
            ("retry_sent", self.retries_sent),
            ("ingest_rate_limited", self.ingest_rate_limited),
        ]
    }

    /// The server's edge counters (the ingest count is campd's and set separately).
    pub fn from_edge(c: &camp_proto::edge::EdgeCounters) -> Self {
        use camp_proto::edge::EdgeDrop;
        EdgeTotals {
            handshakes_started: c.handshakes_started,
            handshakes_failed: c.handshakes_failed,
            hello_timeouts: c.hello_timeouts,
            refused_handshake_rate: c.refused[EdgeDrop::HandshakeRate as usize],
            refused_source_table_full: c.refused[EdgeDrop::SourceTableFull as usize],
            refused_sessions_per_source: c.refused[EdgeDrop::SessionsPerSource as usize],
            refused_join_attempts: c.refused[EdgeDrop::JoinAttempts as usize],
            retries_sent: c.retries_sent,
            ingest_rate_limited: 0,
            datagrams_dropped: c.datagrams_dropped,
            datagrams_answered: c.datagrams_answered,
        }
    }
}

impl From<&ServerCounters> for ServerTotals {
    fn from(c: &ServerCounters) -> Self {
        ServerTotals {
            sessions_opened: c.sessions_opened,
            join_refused: c.join_refused.iter().sum(),
            malformed_control: c.malformed_control,
            deadline_resets: c.deadline_resets,
            suspected: c.suspected,
            edge: EdgeTotals::default(),
        }
    }
}

/// Engine settings currently in force (what the engine applied, not what was requested).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Scheduler for new sessions.
    pub scheduler: String,
    /// Target inter-modal skew of the CAMP scheduler, µs.
    pub target_skew_us: u64,
    /// Per-modality deadlines, µs (0 = none), indexed by modality.
    pub deadline_us: [u64; Modality::COUNT],
    /// Coupled congestion control across a session's paths.
    pub coupled_cc: bool,
    /// Log level.
    pub log_level: String,
    /// Other scheduler parameters in force, by `campctl set` name.
    #[serde(default)]
    pub scheduler_params: std::collections::BTreeMap<String, f64>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            scheduler: "camp".to_owned(),
            target_skew_us: 2_000,
            deadline_us: [0, 0, 150_000],
            coupled_cc: false,
            log_level: "info".to_owned(),
            scheduler_params: Default::default(),
        }
    }
}

/// Everything the engine publishes at once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineSnapshot {
    /// Publication sequence number (1 for the first; set by the publisher).
    pub seq: u64,
    /// Wall-clock time of the snapshot, µs since the Unix epoch.
    pub unix_time_us: u64,
    /// Server-wide counters.
    pub server: ServerTotals,
    /// Settings in force.
    pub settings: EngineSettings,
    /// Open sessions, ascending by id.
    pub sessions: Vec<SessionSnapshot>,
    /// Paths of every open session, ascending by (session, path).
    pub paths: Vec<PathSnapshot>,
    /// XDP classifier counters per NIC (empty on kernel UDP).
    #[serde(default)]
    pub nics: Vec<NicSnapshot>,
}

impl EngineSnapshot {
    /// Share of the session's unit bytes that went over `p`, in `[0, 1]` (0 when the
    /// session has sent nothing).
    pub fn traffic_share(&self, p: &PathSnapshot) -> f64 {
        let total: u64 = self
            .paths
            .iter()
            .filter(|q| q.session == p.session)
            .map(|q| q.bytes_sent)
            .sum();
        if total == 0 {
            0.0
        } else {
            p.bytes_sent as f64 / total as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_proto::PathId;
    use camp_proto::cc::GaugeSnapshot;
    use camp_proto::sched::PathView;

    fn info(id: u32, bytes: u64) -> PathInfo {
        let mut view = PathView::placeholder();
        view.id = PathId(id);
        view.status = PathStatus::Drain;
        view.precedence = 3;
        view.srtt_us = 12_000;
        view.cwnd = 64_000;
        view.loss_ppm = 2_500;
        PathInfo {
            slot: id as usize,
            view,
            local: "10.0.0.1:4433".parse().unwrap(),
            remote: "10.0.0.2:50000".parse().unwrap(),
            units_sent: 7,
            bytes_sent: bytes,
            gauges: GaugeSnapshot {
                sent_bytes: 9_999,
                lost_bytes: 11,
                ..Default::default()
            },
        }
    }

    #[test]
    fn path_snapshot_copies_view_and_gauges() {
        let xdp = XdpCounters {
            redirected: 5,
            ..Default::default()
        };
        let p =
            PathSnapshot::from_path_info(SessionId::new(4, 0), &info(2, 100), "eth1", Some(xdp));
        assert_eq!((p.session, p.path, p.nic.as_str()), (4, 2, "eth1"));
        assert_eq!(p.status, PathState::Drain);
        assert_eq!(
            (p.precedence, p.srtt_us, p.cwnd, p.loss_ppm),
            (3, 12_000, 64_000, 2_500)
        );
        assert_eq!(
            (p.units_sent, p.bytes_sent, p.wire_bytes_sent, p.lost_bytes),
            (7, 100, 9_999, 11)
        );
        assert_eq!(p.xdp, Some(xdp));
    }

    #[test]
    fn traffic_share_is_per_session() {
        let snap = EngineSnapshot {
            paths: vec![
                PathSnapshot::from_path_info(SessionId::new(0, 0), &info(0, 300), "a", None),
                PathSnapshot::from_path_info(SessionId::new(0, 0), &info(1, 100), "b", None),
                PathSnapshot::from_path_info(SessionId::new(1, 0), &info(0, 0), "a", None),
            ],
            ..Default::default()
        };
        assert_eq!(snap.traffic_share(&snap.paths[0]), 0.75);
        assert_eq!(snap.traffic_share(&snap.paths[1]), 0.25);
        assert_eq!(snap.traffic_share(&snap.paths[2]), 0.0);
    }

    #[test]
    fn session_snapshot_copies_store_and_feedback() {
        let mut store = StoreCounters::default();
        store.submitted[Modality::Video as usize] = 9;
        store.dropped[Modality::Video as usize] = 2;
        let fb = camp_proto::sched::ClientFeedback {
            skew_p95_us: 1_234,
            ..Default::default()
        };
        let s = SessionSnapshot::new(SessionId::new(3, 0), "camp", 2, &store, Some(&fb));
        assert_eq!(s.modalities[2].submitted, 9);
        assert_eq!(s.modalities[2].dropped, 2);
        assert_eq!(s.skew_p95_us, 1_234);
        assert_eq!(s.paths, 2);
    }

    #[test]
    fn path_state_round_trips_names_and_wire_status() {
        for s in [PathState::Standby, PathState::Available, PathState::Drain] {
            assert_eq!(PathState::from_name(s.name()), Some(s));
            assert_eq!(PathState::from(PathStatus::from(s)), s);
        }
        assert_eq!(PathState::from_name("up"), None);
    }
}
