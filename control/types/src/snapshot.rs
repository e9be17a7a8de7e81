//! Plain, serialisable copies of what the engine knows about its sessions and paths.
//!
//! campd builds an [`EngineSnapshot`] from the server's telemetry once per loop interval
//! (the constructors that read protocol state live in `camp_control::snapshot`); everything
//! downstream (Prometheus, the control socket, `campctl`) reads only these types.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub use crate::modality::{MODALITY_COUNT, MODALITY_NAMES};

/// Reasons a datagram reaches no connection and gets no answer
/// (`camp_proto::edge::DatagramDrop::ALL.len()`; `camp-control` checks they agree).
pub const DATAGRAM_DROP_COUNT: usize = 7;

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
    /// Session the path belongs to (`camp_proto::server::SessionId::to_bits`).
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
    /// Session id: `camp_proto::server::SessionId::to_bits` of the engine's session, with
    /// the engine in bits 24..32 (`camp_control::fanin::global_session`).
    pub session: u64,
    /// Engine (thread of campd) that holds the session.
    #[serde(default)]
    pub engine: u8,
    /// Scheduler name.
    pub scheduler: String,
    /// Paths currently in the session.
    pub paths: u32,
    /// Unit counters, indexed by modality wire code (text, audio, video).
    pub modalities: [ModalityCounters; MODALITY_COUNT],
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
    pub datagrams_dropped: [u64; DATAGRAM_DROP_COUNT],
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
}

/// Engine settings currently in force (what the engine applied, not what was requested).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineSettings {
    /// Scheduler for new sessions.
    pub scheduler: String,
    /// Target inter-modal skew of the CAMP scheduler, µs.
    pub target_skew_us: u64,
    /// Per-modality deadlines, µs (0 = none), indexed by modality.
    pub deadline_us: [u64; MODALITY_COUNT],
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

    fn path(session: u64, id: u32, bytes: u64) -> PathSnapshot {
        PathSnapshot {
            session,
            path: id,
            local: "10.0.0.1:4433".parse().unwrap(),
            remote: "10.0.0.2:50000".parse().unwrap(),
            nic: "eth0".into(),
            status: PathState::Available,
            precedence: 1,
            usable: true,
            suspect: false,
            srtt_us: 10_000,
            min_rtt_us: 9_000,
            rttvar_us: 500,
            cwnd: 64_000,
            in_flight: 0,
            unsent: 0,
            delivery_rate: 0,
            btl_bw: 0,
            loss_ppm: 0,
            mtu: 1200,
            units_sent: 1,
            bytes_sent: bytes,
            wire_bytes_sent: bytes,
            lost_bytes: 0,
            xdp: None,
        }
    }

    #[test]
    fn traffic_share_is_per_session() {
        let snap = EngineSnapshot {
            paths: vec![path(0, 0, 300), path(0, 1, 100), path(1, 0, 0)],
            ..Default::default()
        };
        assert_eq!(snap.traffic_share(&snap.paths[0]), 0.75);
        assert_eq!(snap.traffic_share(&snap.paths[1]), 0.25);
        assert_eq!(snap.traffic_share(&snap.paths[2]), 0.0);
    }

    #[test]
    fn path_state_names_round_trip() {
        for s in [PathState::Standby, PathState::Available, PathState::Drain] {
            assert_eq!(PathState::from_name(s.name()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
        }
        assert_eq!(PathState::from_name("up"), None);
    }

    #[test]
    fn snapshot_survives_json_and_tolerates_older_producers() {
        let mut snap = EngineSnapshot {
            seq: 3,
            paths: vec![path(2, 1, 10)],
            sessions: vec![SessionSnapshot {
                session: 2,
                scheduler: "camp".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        snap.server.edge.datagrams_dropped[DATAGRAM_DROP_COUNT - 1] = 4;
        let j = serde_json::to_string(&snap).unwrap();
        assert_eq!(serde_json::from_str::<EngineSnapshot>(&j).unwrap(), snap);
        // Fields added later (`edge`, `nics`, `scheduler_params`) default when absent.
        let mut v: serde_json::Value = serde_json::from_str(&j).unwrap();
        v.as_object_mut().unwrap().remove("nics");
        v["server"].as_object_mut().unwrap().remove("edge");
        let old: EngineSnapshot = serde_json::from_value(v).unwrap();
        assert!(old.nics.is_empty());
        assert_eq!(old.server.edge, EdgeTotals::default());
    }
}
