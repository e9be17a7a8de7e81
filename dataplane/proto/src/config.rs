//! Configuration of CAMP endpoints and the quinn-proto settings derived from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn_proto::{IdleTimeout, TransportConfig, VarInt};

use crate::cc::{CcAlgorithm, MeasuringFactory, PathGauges};
use crate::lia::CouplingTable;
use crate::sched::{
    Blest, ConsistencyAware, Ecf, LowestLinger, MAX_PATHS, MinRtt, Otias, Pinning, Redundant,
    Scheduler, SinglePath, Xlink,
};

/// ALPN protocol id of CAMP over QUIC.
pub const ALPN: &[u8] = b"camp/1";

/// Builds a fresh scheduler for each new session.
pub type SchedulerFactory = Arc<dyn Fn() -> Box<dyn Scheduler> + Send + Sync>;

/// Scheduler choice by name (for configuration files and campctl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// [`ConsistencyAware`].
    Camp,
    /// [`MinRtt`].
    MinRtt,
    /// [`SinglePath`].
    Single,
    /// [`LowestLinger`].
    Linger,
    /// [`Ecf`].
    Ecf,
    /// [`Blest`].
    Blest,
    /// [`Otias`].
    Otias,
    /// [`Redundant`].
    Redundant,
    /// [`Xlink`].
    Xlink,
    /// [`Pinning`].
    Pinning,
}

impl SchedulerKind {
    /// Every scheduler, CAMP first, then the baselines.
    pub const ALL: [SchedulerKind; 10] = [
        SchedulerKind::Camp,
        SchedulerKind::MinRtt,
        SchedulerKind::Single,
        SchedulerKind::Linger,
        SchedulerKind::Ecf,
        SchedulerKind::Blest,
        SchedulerKind::Otias,
        SchedulerKind::Redundant,
        SchedulerKind::Xlink,
        SchedulerKind::Pinning,
    ];

    /// The scheduler's name (what [`FromStr`](std::str::FromStr) accepts and
    /// [`Scheduler::name`] reports).
    pub const fn name(self) -> &'static str {
        match self {
            SchedulerKind::Camp => "camp",
            SchedulerKind::MinRtt => "minrtt",
            SchedulerKind::Single => "single",
            SchedulerKind::Linger => "linger",
            SchedulerKind::Ecf => "ecf",
            SchedulerKind::Blest => "blest",
            SchedulerKind::Otias => "otias",
            SchedulerKind::Redundant => "redundant",
            SchedulerKind::Xlink => "xlink",
            SchedulerKind::Pinning => "pinning",
        }
    }

    /// A factory for this scheduler with default tuning.
    pub fn factory(self) -> SchedulerFactory {
        match self {
            SchedulerKind::Camp => Arc::new(|| Box::new(ConsistencyAware::default())),
            SchedulerKind::MinRtt => Arc::new(|| Box::new(MinRtt)),
            SchedulerKind::Single => Arc::new(|| Box::new(SinglePath::default())),
            SchedulerKind::Linger => Arc::new(|| Box::new(LowestLinger)),
            SchedulerKind::Ecf => Arc::new(|| Box::new(Ecf::default())),
            SchedulerKind::Blest => Arc::new(|| Box::new(Blest::default())),
            SchedulerKind::Otias => Arc::new(|| Box::new(Otias)),
            SchedulerKind::Redundant => Arc::new(|| Box::new(Redundant)),
            SchedulerKind::Xlink => Arc::new(|| Box::new(Xlink::default())),
            SchedulerKind::Pinning => Arc::new(|| Box::new(Pinning)),
        }
    }
}

impl std::str::FromStr for SchedulerKind {
    type Err = String;

    /// Parses a scheduler name (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown scheduler {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// Settings shared by CAMP clients and servers.
#[derive(Clone, Debug)]
pub struct CampConfig {
    /// Congestion controller used on every path.
    pub cc: CcAlgorithm,
    /// Initial state of coupled congestion control (RFC 6356 LIA across the paths of a
    /// session, see `docs/coupled-cc.md`); switchable at run time with
    /// `Server::set_coupled_cc` / `Client::set_coupled_cc`.
    pub coupled_cc: bool,
    /// A path with no packet from its peer for this long is closed (quinn idle timeout).
    pub idle_timeout: Duration,
    /// Keep-alive interval (keeps standby paths and NAT bindings alive).
    pub keep_alive: Duration,
    /// RTT assumed before a path has a sample.
    pub initial_rtt: Duration,
    /// A connection must send HELLO or JOIN within this time of its handshake.
    pub join_timeout: Duration,
    /// A client gives up (`ClientEvent::SessionFailed`) when no path has brought the session
    /// up (SESSION received) this long after it started connecting.
    pub session_start_timeout: Duration,
    /// Paths one session may have at once (at most [`MAX_PATHS`]).
    pub max_paths: usize,
    /// Bytes of units one session may hold (queued or unacknowledged).
    pub max_queued_bytes: usize,
    /// Interval between RTT reports on each path (MP_RTT analogue).
    pub rtt_report_interval: Duration,
    /// Lower bound of the stall time after which a path with unacknowledged data is
    /// suspected failed and its reliable units are reinjected elsewhere.
    pub min_suspect_after: Duration,
    /// End-to-end safety net: a reliable unit unacknowledged this long after its latest
    /// transmission is reinjected, even if no path looks failed.
    pub reliable_safety_timeout: Duration,
    /// quinn send window per connection (a safety net; the session bounds what it writes by
    /// the congestion window). quinn counts every byte still buffered in a stream, and a
    /// stream keeps selectively acknowledged data buffered until everything before it is
    /// acknowledged, so under loss its count runs well ahead of our in-flight plus unsent
    /// accounting. With 8 MiB, bulk 64 KiB units over lossy veth were refused whole and each
    /// unit's stream reset and rewritten (`camp-bench goodput --counters`: `reset_units` about
    /// one per unit); hence 64 MiB.
    pub send_window: u64,
    /// Unidirectional streams the peer may have open at once (one per unit in flight).
    pub max_unit_streams: u32,
    /// Overrides the reorder window the client announces in HELLO (its
    /// `camp_recv::ReceiverConfig::max_units_ahead`), within which the server keeps reliable
    /// units. `None` (the default) uses the announced value; set it only for experiments.
    pub peer_units_ahead: Option<u32>,
    /// Client behind a QUIC-LB style balancer (docs/scale-out.md): connect the first path
    /// alone, and the others once the session is up, each with an Initial destination CID
    /// made from the server's CID on the first path (all but its last
    /// [`MIN_NONCE_LEN`](crate::cid::MIN_NONCE_LEN) octets kept, those drawn at random), so
    /// that a balancer routing by CID sends the joining paths to the server that holds the
    /// session. It costs the joining paths one handshake of delay, the session depends on
    /// the first path coming up, and an on-path observer can link the paths by the shared
    /// prefix. Off by default (every path connects at once with a random CID).
    pub routed_joins: bool,
    /// What a client does with the server addresses it is told of (ADD_ADDRESS /
    /// REMOVE_ADDRESS): open paths to them, and abandon the paths to a withdrawn one.
    /// Default [`AdvertPolicy::None`] (the configured paths are all there is).
    pub advertised_paths: AdvertPolicy,
    /// How a client uses its paths (MP-DCCP §4.9): all at once (the default) or one at a
    /// time with the others on standby.
    pub path_usage: PathUsage,
    /// A client path whose connection was lost (idle timeout or stateless reset, not closed
    /// by either end on purpose) while another path keeps the session alive is connected
    /// and JOINed again, after a back-off of twice the lost path's smoothed RTT doubling
    /// per failed attempt, within `[reconnect_min, reconnect_max]`. The attempt count of a
    /// slot resets when it joins. `None`: a lost path stays lost (the pre-reconnect
    /// behaviour).
    pub reconnect: Option<ReconnectBackoff>,
    /// Per-path qlog (feature `qlog`): each path connection, client or server, asks this
    /// for a writer and quinn streams its qlog (JSON-SEQ, for qvis) there. `None`: no qlog.
    #[cfg(feature = "qlog")]
    pub qlog: Option<QlogSinks>,
    /// Server: keep a CAMP-level event log of this many events (units sent, acknowledged
    /// and dropped, paths joined and closed; [`crate::unit_log`]), drained with
    /// `Server::poll_unit_event`. 0 (the default): no log.
    pub unit_log: usize,
}

/// The connection a qlog writer is asked for.
#[cfg(feature = "qlog")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QlogTarget {
    /// `"client"` or `"server"`.
    pub role: &'static str,
    /// Local address of the path.
    pub local: std::net::SocketAddr,
    /// Peer address of the path.
    pub remote: std::net::SocketAddr,
    /// Connections this endpoint started or accepted before this one (unique per endpoint).
    pub seq: u64,
}

/// Opens a qlog writer per path connection; `None` skips that connection. The writer does
/// the I/O (a file, a pipe, a buffer in a test): camp-proto itself only hands it to quinn.
#[cfg(feature = "qlog")]
#[derive(Clone)]
pub struct QlogSinks(pub Arc<QlogOpen>);

/// A qlog writer for one connection.
#[cfg(feature = "qlog")]
pub type QlogWriter = Box<dyn std::io::Write + Send + Sync>;

/// What [`QlogSinks`] calls per connection.
#[cfg(feature = "qlog")]
pub type QlogOpen = dyn Fn(&QlogTarget) -> Option<QlogWriter> + Send + Sync;

#[cfg(feature = "qlog")]
impl std::fmt::Debug for QlogSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QlogSinks(..)")
    }
}

/// How a client uses its paths ([`CampConfig::path_usage`]), after MP-DCCP §4.9.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathUsage {
    /// Concurrent use (§4.9.2): every member path is `Available`; the scheduler picks per
    /// unit.
    #[default]
    Concurrent,
    /// Path mobility (§4.9.1): one member path is `Available`, the others `Standby`
    /// (PATH_STATUS, like MP_PRIO 1), so the server sends on one path and moves to a
    /// standby path only when the active one cannot carry a unit (gone, or suspected
    /// failed). The active path is the member of the lowest slot, i.e. the configured order
    /// is the preference order (Wi-Fi first, cellular second): when it fails the next one
    /// takes over at once, and when it returns it is the active path again.
    Mobility,
}

impl PathUsage {
    /// Parses `concurrent` or `mobility`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "concurrent" => Some(Self::Concurrent),
            "mobility" => Some(Self::Mobility),
            _ => None,
        }
    }
}

/// What a client does with the addresses the server advertises ([`CampConfig::advertised_paths`]).
///
/// A client's *local interfaces* are the distinct local addresses of its configured paths.
/// Paths opened for advertisements join the session like configured ones, within the path
/// budget ([`MAX_PATHS`](crate::sched::MAX_PATHS) in all). Under every policy but `None`, a
/// withdrawn address (REMOVE_ADDRESS, or its id re-advertised with another address) has
/// its paths abandoned (ABANDON) as long as another path is a member of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AdvertPolicy {
    /// Record the advertisements ([`Client::advertised_addresses`](crate::client::Client::advertised_addresses)); open and abandon nothing.
    #[default]
    None,
    /// A path from every local interface to every advertised address (full mesh).
    All,
    /// One path per local interface: an interface left without a live path (its server
    /// address withdrawn, say) opens one to an advertised address, preferring one that no
    /// other path uses.
    OnePerLocalInterface,
}

impl AdvertPolicy {
    /// Parses `none`, `all` or `one-per-local-interface`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "all" => Some(Self::All),
            "one-per-local-interface" => Some(Self::OnePerLocalInterface),
            _ => None,
        }
    }

    /// The name [`from_name`](Self::from_name) parses.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::All => "all",
            Self::OnePerLocalInterface => "one-per-local-interface",
        }
    }
}

/// Bounds of the client's reconnect back-off ([`CampConfig::reconnect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReconnectBackoff {
    /// Shortest wait before an attempt.
    pub min: Duration,
    /// Longest wait before an attempt.
    pub max: Duration,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl ReconnectBackoff {
    /// Wait before attempt `attempt` (0 = the first after the loss) of a path whose last
    /// smoothed RTT was `srtt`.
    pub fn delay(&self, srtt: Duration, attempt: u32) -> Duration {
        let base = srtt.saturating_mul(2);
        base.saturating_mul(1u32 << attempt.min(16))
            .clamp(self.min, self.max.max(self.min))
    }
}

impl Default for CampConfig {
    fn default() -> Self {
        Self {
            cc: CcAlgorithm::Cubic,
            coupled_cc: false,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_millis(500),
            initial_rtt: Duration::from_millis(100),
            join_timeout: Duration::from_secs(10),
            session_start_timeout: Duration::from_secs(10),
            max_paths: MAX_PATHS,
            max_queued_bytes: 32 << 20,
            rtt_report_interval: Duration::from_millis(200),
            min_suspect_after: Duration::from_millis(150),
            reliable_safety_timeout: Duration::from_millis(1500),
            send_window: 64 << 20,
            max_unit_streams: 4096,
            peer_units_ahead: None,
            reconnect: Some(ReconnectBackoff::default()),
            #[cfg(feature = "qlog")]
            qlog: None,
            unit_log: 0,
            routed_joins: false,
            advertised_paths: AdvertPolicy::None,
            path_usage: PathUsage::Concurrent,
        }
    }
}

impl CampConfig {
    /// Streams the qlog of the connection `target` into the writer [`CampConfig::qlog`]
    /// gives for it, if any; its times count from `now`.
    #[cfg(feature = "qlog")]
    pub(crate) fn attach_qlog(&self, t: &mut TransportConfig, target: &QlogTarget, now: Instant) {
        let Some(writer) = self.qlog.as_ref().and_then(|q| (q.0)(target)) else {
            return;
        };
        let mut q = quinn_proto::QlogConfig::default();
        q.writer(writer)
            .title(Some(format!(
                "camp {} {} -> {}",
                target.role, target.local, target.remote
            )))
            .start_time(now);
        t.qlog_stream(q.into_stream());
    }

    /// quinn transport settings for one path connection, measuring into `gauges`.
    pub fn transport(&self, epoch: Instant, gauges: Arc<PathGauges>) -> TransportConfig {
        self.transport_coupled(epoch, gauges, None)
    }

    /// Like [`transport`](Self::transport), with the path's controller able to join the
    /// coupled congestion control of `coupling` once the path is attached there.
    pub fn transport_coupled(
        &self,
        epoch: Instant,
        gauges: Arc<PathGauges>,
        coupling: Option<Arc<CouplingTable>>,
    ) -> TransportConfig {
        let mut t = TransportConfig::default();
        let mut factory = MeasuringFactory::new(self.cc, epoch, gauges);
        if let Some(table) = coupling {
            factory = factory.with_coupling(table);
        }
        t.congestion_controller_factory(Arc::new(factory));
        t.max_idle_timeout(IdleTimeout::try_from(self.idle_timeout).ok());
        t.keep_alive_interval(Some(self.keep_alive));
        t.initial_rtt(self.initial_rtt);
        t.send_window(self.send_window);
        t.max_concurrent_uni_streams(VarInt::from_u32(self.max_unit_streams));
        t.max_concurrent_bidi_streams(VarInt::from_u32(1));
        t.stream_receive_window(VarInt::from_u32(4 << 20));
        t.receive_window(VarInt::from_u32(64 << 20));
        t.datagram_receive_buffer_size(Some(4 << 20));
        t.datagram_send_buffer_size(4 << 20);
        t
    }
}
