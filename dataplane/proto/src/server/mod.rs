//! The CAMP server (campd's protocol core): accepts path connections, creates sessions on
//! HELLO, admits further paths on an authenticated JOIN, and sends each session's units over
//! its paths as the scheduler decides.
//!
//! Sans-IO like quinn-proto: feed datagrams with [`Server::handle_datagram`], drive timers
//! with [`Server::handle_timeout`], and pull datagrams to send with
//! [`Server::poll_transmit`]. No system calls, no clock reads.

mod admission;
mod adverts;
mod events;
mod links;
mod session;
mod timers;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use camp_wire::{Abandon, Frame, Modality, PathId, PathStatus, PathStatusFrame};
use quinn_proto::{ConnectionHandle, EcnCodepoint, EndpointConfig};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::cid::LbConfig;
use crate::config::{CampConfig, SchedulerFactory};
use crate::conn::codes;
use crate::edge::{Edge, EdgeCounters, EdgeLimits};
use crate::endpoint::{Dispatch, PathEndpoint};
use crate::join::JoinRefusal;
use crate::lia::{CouplingTable, DEFAULT_COUPLING_GROUPS};
use crate::sched::{ClientFeedback, ConsistencyAware, ParamError, PathView, SchedParam, Scheduler};
use crate::store::{SubmitError, UnitSubmit};
use crate::{SessionClock, Transmit};

use session::{Role, ServerSession, SessionTable};
pub use timers::LoopWork;
use timers::TimerQueue;

/// Handle of a session on a server: the index of its slot and the generation of that slot.
///
/// A slot is reused once its session has closed, with the next generation, so an id kept
/// from a closed session never reaches the session that took its slot: every accessor
/// answers `None` / `false` / [`SendError::NoSession`] for it. The first session of each
/// slot has generation 0, so while no slot has been reused the ids read 0, 1, 2, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    index: u32,
    generation: u32,
}

impl SessionId {
    /// The id of slot `index` in its `generation`.
    pub const fn new(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }

    /// Index of the session's slot (dense: at most the number of sessions ever open at once).
    pub const fn index(self) -> u32 {
        self.index
    }

    /// How many sessions used the slot before this one.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// One number for telemetry, logs and the control plane: generation in the high 32
    /// bits, index in the low 32 (so generation-0 ids are just their index).
    pub const fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// The inverse of [`to_bits`](Self::to_bits).
    pub const fn from_bits(bits: u64) -> Self {
        Self {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_bits())
    }
}

/// Server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// Shared CAMP settings.
    pub camp: CampConfig,
    /// Local addresses the server is reachable at (one per NIC / path). Each session is
    /// told them (ADD_ADDRESS, address id = index) when it opens; change them with
    /// [`Server::set_local_addrs`]. Unspecified addresses (`0.0.0.0`, port 0) and entries
    /// past 256 are not advertised.
    pub local_addrs: Vec<SocketAddr>,
    /// TLS.
    pub crypto: Arc<quinn_proto::crypto::rustls::QuicServerConfig>,
    /// Builds the scheduler of each new session.
    pub scheduler: SchedulerFactory,
    /// Seed for session tokens and quinn's randomness (tests and the simulator fix it).
    pub rng_seed: [u8; 32],
    /// Routable connection ids for a server behind a QUIC-LB style balancer: every CID
    /// the server issues (handshake and NEW_CONNECTION_ID) carries this server id. `None`
    /// keeps quinn's default, unstructured CIDs.
    pub lb: Option<LbConfig>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("camp", &self.camp)
            .field("local_addrs", &self.local_addrs)
            .field("lb", &self.lb)
            .finish_non_exhaustive()
    }
}

/// Something the application may want to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A client started a session (HELLO on its first path).
    SessionOpened(SessionId),
    /// A path joined a session (the first path counts).
    PathJoined(SessionId, PathId),
    /// A path left a session (closed, abandoned, timed out).
    PathClosed(SessionId, PathId),
    /// The last path of a session closed.
    SessionClosed(SessionId),
    /// A JOIN was refused and its connection closed.
    JoinRefused(JoinRefusal),
}

/// Latency of one acknowledged unit, estimated on the server's clock alone.
///
/// The unit's arrival is estimated as the time its CAMP ACK arrived minus half the minimum
/// RTT of the path that carried the ACK; the client's ACK delay (at most a few ms) and
/// queueing on the return path make the estimate a little pessimistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample {
    /// Session.
    pub session: SessionId,
    /// Modality.
    pub modality: Modality,
    /// Estimated lateness `L = max(a - g, 0)` (draft §3.1.4), µs.
    pub lateness_us: u64,
    /// Estimated one-way delay from the unit's first transmission to its arrival, µs.
    pub delivery_us: u64,
}

/// Latency samples the server keeps for the application before dropping the oldest.
pub const LATENCY_SAMPLES: usize = 8192;

/// Server-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerCounters {
    /// Refused joins by reason ([`JoinRefusal::index`]).
    pub join_refused: [u64; JoinRefusal::ALL.len()],
    /// Control frames that failed to decode (connection closed).
    pub malformed_control: u64,
    /// Unit streams reset because their deadline passed.
    pub deadline_resets: u64,
    /// Paths suspected failed (stall detection).
    pub suspected: u64,
    /// Sessions created.
    pub sessions_opened: u64,
    /// Latency samples dropped because the application did not poll them in time.
    pub latency_samples_dropped: u64,
    /// Local links reported down ([`Server::local_link_down`]).
    pub link_downs: u64,
    /// Local links reported up again ([`Server::local_link_up`]).
    pub link_ups: u64,
    /// Paths abandoned because the link of their server address went down.
    pub paths_lost_to_links: u64,
}

/// Telemetry of one path of a session.
#[derive(Clone, Copy, Debug)]
pub struct PathInfo {
    /// Slot index.
    pub slot: usize,
    /// The scheduler's view (srtt, cwnd, in flight, rate, status...).
    pub view: PathView,
    /// Local address.
    pub local: SocketAddr,
    /// Peer address.
    pub remote: SocketAddr,
    /// Units written to the path.
    pub units_sent: u64,
    /// Unit bytes written to the path.
    pub bytes_sent: u64,
    /// Full gauge snapshot.
    pub gauges: crate::cc::GaugeSnapshot,
}

/// The CAMP server.
pub struct Server {
    config: ServerConfig,
    clock: SessionClock,
    /// quinn's endpoint and every path connection (with its admission role).
    paths: PathEndpoint<Role>,
    sessions: SessionTable,
    tokens: HashMap<[u8; 16], SessionId>,
    rng: StdRng,
    events: VecDeque<ServerEvent>,
    counters: ServerCounters,
    /// Deadlines of every connection and session (see `timers`).
    timers: TimerQueue,
    work: LoopWork,
    /// Connections accepted, for [`crate::config::QlogTarget::seq`].
    #[cfg(feature = "qlog")]
    qlog_seq: u64,
    latency: VecDeque<LatencySample>,
    /// CAMP-level event log (off unless `CampConfig::unit_log`).
    unit_log: crate::unit_log::UnitLog,
    /// Scheduler parameters set at run time, applied to sessions opened later too.
    sched_params: [Option<f64>; SchedParam::ALL.len()],
    /// Per-modality deadline overriding the submitted one (`Some(0)`: no deadline).
    deadlines: [Option<u32>; Modality::COUNT],
    /// Coupled congestion control of every session's paths (group = session slot index).
    coupling: Arc<CouplingTable>,
    /// Admission limits and their state.
    edge: Edge,
    /// The addresses advertised to clients (ADD_ADDRESS), by address id.
    adverts: adverts::Adverts,
    /// Local IPs whose link is down ([`Server::local_link_down`]): not advertised.
    links_down: Vec<std::net::IpAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server whose session clock starts at `epoch`.
    pub fn new(config: ServerConfig, epoch: Instant) -> Self {
        let mut rng = StdRng::from_seed(config.rng_seed);
        let mut quinn_seed = [0u8; 32];
        rng.fill(&mut quinn_seed);
        // The endpoint needs a server config to consider new connections at all; each
        // accepted connection then gets its own, carrying its path's measuring controller.
        let mut base = quinn_proto::ServerConfig::with_crypto(config.crypto.clone());
        base.migration(false);
        let mut endpoint_config = EndpointConfig::default();
        if let Some(lb) = config.lb {
            // Drawn only with a balancer configured, so that without one the session
            // tokens of a seeded server stay what they were.
            let mut cid_seed = [0u8; 32];
            rng.fill(&mut cid_seed);
            // quinn calls the factory once per endpoint: one generator, one nonce stream.
            endpoint_config.cid_generator(move || Box::new(lb.generator(cid_seed)));
        }
        let endpoint = quinn_proto::Endpoint::new(
            Arc::new(endpoint_config),
            Some(Arc::new(base)),
            true,
            Some(quinn_seed),
        );
        let coupling = Arc::new(CouplingTable::new(
            DEFAULT_COUPLING_GROUPS,
            config.camp.coupled_cc,
        ));
        let unit_log = crate::unit_log::UnitLog::new(config.camp.unit_log);
        Self {
            // Default limits; the application changes them with `set_edge_limits`.
            edge: Edge::new(EdgeLimits::default()),
            adverts: adverts::Adverts::new(&config.local_addrs),
            links_down: Vec::new(),
            config,
            clock: SessionClock::new(epoch),
            paths: PathEndpoint::new(endpoint),
            sessions: SessionTable::default(),
            tokens: HashMap::new(),
            rng,
            events: VecDeque::new(),
            counters: ServerCounters::default(),
            timers: TimerQueue::default(),
            work: LoopWork::default(),
            #[cfg(feature = "qlog")]
            qlog_seq: 0,
            latency: VecDeque::with_capacity(LATENCY_SAMPLES),
            unit_log,
            sched_params: [None; SchedParam::ALL.len()],
            deadlines: [None; Modality::COUNT],
            coupling,
        }
    }

    /// Next latency sample of an acknowledged unit (see [`LatencySample`]). Poll regularly:
    /// beyond [`LATENCY_SAMPLES`] the oldest are dropped and counted.
    pub fn poll_latency(&mut self) -> Option<LatencySample> {
        self.latency.pop_front()
    }

    /// Next event of the CAMP-level event log ([`crate::unit_log`]; only with
    /// `CampConfig::unit_log` set). Poll regularly: a full log drops its oldest events and
    /// counts them ([`unit_log_overflowed`](Self::unit_log_overflowed)).
    pub fn poll_unit_event(&mut self) -> Option<crate::unit_log::UnitEvent> {
        self.unit_log.pop()
    }

    /// Events the CAMP-level event log dropped because nobody drained it in time.
    pub fn unit_log_overflowed(&self) -> u64 {
        self.unit_log.overflowed
    }

    /// Sets a scheduler parameter on every open session whose scheduler has it, and on
    /// every session opened from now on. Returns how many open sessions took it. A value
    /// the CAMP scheduler refuses is refused here, whatever the sessions use.
    pub fn set_scheduler_param(
        &mut self,
        param: SchedParam,
        value: f64,
    ) -> Result<usize, ParamError> {
        ConsistencyAware::default().set_param(param, value)?;
        self.sched_params[param.index()] = Some(value);
        let mut took = 0;
        for (_, s) in self.sessions.iter_mut() {
            if s.scheduler.set_param(param, value).is_ok() {
                took += 1;
            }
        }
        Ok(took)
    }

    /// Overrides the deadline (relative to generation, µs) of every unit of `m` submitted
    /// from now on: `Some(0)` removes deadlines, `None` restores the submitter's own.
    pub fn set_modality_deadline(&mut self, m: Modality, deadline_us: Option<u32>) {
        self.deadlines[m.index()] = deadline_us;
    }

    /// The deadline override of `m` (see [`set_modality_deadline`](Self::set_modality_deadline)).
    pub fn modality_deadline(&self, m: Modality) -> Option<u32> {
        self.deadlines[m.index()]
    }

    /// Switches coupled congestion control (RFC 6356 LIA across each session's paths) on
    /// or off for every session; each path follows at its next congestion-control event.
    pub fn set_coupled_cc(&mut self, on: bool) {
        self.coupling.set_enabled(on);
    }

    /// Whether coupled congestion control is on.
    pub fn coupled_cc(&self) -> bool {
        self.coupling.enabled()
    }

    /// The coupling table (per-session, per-path windows and RTTs; telemetry and tests).
    pub fn coupling(&self) -> &CouplingTable {
        &self.coupling
    }

    /// The session clock.
    pub fn clock(&self) -> SessionClock {
        self.clock
    }

    /// Counters of the edge policy (refusals by reason, retries, failed handshakes).
    pub fn edge_counters(&self) -> &EdgeCounters {
        self.edge.counters()
    }

    /// Changes the edge limits at run time.
    pub fn set_edge_limits(&mut self, now: Instant, limits: EdgeLimits) {
        self.edge.set_limits(now, limits);
    }

    /// Edge limits in force.
    pub fn edge_limits(&self) -> EdgeLimits {
        self.edge.limits()
    }

    /// Server counters.
    pub fn counters(&self) -> &ServerCounters {
        &self.counters
    }

    /// Next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Sessions currently open.
    pub fn sessions(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions.ids()
    }

    /// How many sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Session slots allocated: the most sessions ever open at once (closed sessions'
    /// slots are reused).
    pub fn session_slots(&self) -> usize {
        self.sessions.capacity()
    }

    /// The coupling-table group of an open session's paths (see [`coupling`](Self::coupling)),
    /// `None` for an id that is not open now or a session beyond the table's groups.
    pub fn coupling_group(&self, s: SessionId) -> Option<usize> {
        self.session(s)?;
        let group = s.index() as usize;
        (group < self.coupling.groups()).then_some(group)
    }

    /// The token of an open session (what its client got in SESSION).
    pub fn session_token(&self, session: SessionId) -> Option<[u8; 16]> {
        self.session(session).map(|s| s.token)
    }

    /// Counters of a session's unit store.
    pub fn store_counters(&self, s: SessionId) -> Option<crate::store::StoreCounters> {
        self.session(s).map(|s| *s.store.counters())
    }

    /// Reliable units of a session not yet acknowledged.
    pub fn unacked_reliable(&self, s: SessionId) -> usize {
        self.session(s).map_or(0, |s| s.store.unacked_reliable())
    }

    /// The reliable units of a session not yet acknowledged, oldest first per modality, with
    /// where and when they were sent (diagnostics: a unit the turn ended without).
    pub fn unacked_units(&self, s: SessionId) -> Vec<crate::store::UnitTrace> {
        self.session(s)
            .map_or_else(Vec::new, |s| s.store.unacked_traces())
    }

    /// Units still held by a session (queued, in flight or unacknowledged).
    pub fn pending_units(&self, s: SessionId) -> usize {
        self.session(s)
            .map_or(0, |s| Modality::ALL.iter().map(|&m| s.store.len(m)).sum())
    }

    /// Latest alignment feedback from the session's client.
    pub fn feedback(&self, s: SessionId) -> Option<ClientFeedback> {
        self.session(s).map(|s| s.feedback)
    }

    /// Name of the session's scheduler.
    pub fn scheduler_name(&self, s: SessionId) -> Option<&'static str> {
        self.session(s).map(|s| s.scheduler.name())
    }

    /// Path telemetry of a session.
    pub fn paths(&self, s: SessionId) -> Vec<PathInfo> {
        let Some(sess) = self.session(s) else {
            return Vec::new();
        };
        sess.paths
            .iter()
            .enumerate()
            .filter_map(|(slot, p)| {
                let p = p.as_ref()?;
                let c = self.paths.get(p.conn)?;
                Some(PathInfo {
                    slot,
                    view: c.path.view(slot as u8, p.id, p.status, p.precedence),
                    local: c.path.local,
                    remote: c.path.remote,
                    units_sent: p.units_sent,
                    bytes_sent: p.bytes_sent,
                    gauges: c.path.gauges.snapshot(),
                })
            })
            .collect()
    }

    fn session(&self, s: SessionId) -> Option<&ServerSession> {
        self.sessions.get(s)
    }

    /// Queues a unit for a session. The unit is owned by the session from here on: a
    /// reliable unit is delivered exactly once unless every path of the session fails.
    pub fn send_unit(
        &mut self,
        now: Instant,
        s: SessionId,
        unit: &UnitSubmit<'_>,
    ) -> Result<u64, SendError> {
        let sess = self.sessions.get_mut(s).ok_or(SendError::NoSession)?;
        let seq = match self.deadlines[unit.modality.index()] {
            Some(d) => sess.store.submit(&UnitSubmit {
                deadline_us: d,
                ..*unit
            })?,
            None => sess.store.submit(unit)?,
        };
        self.schedule(now, s);
        Ok(seq)
    }

    /// Changes a path's status and precedence locally and tells the client (PATH_STATUS).
    pub fn set_path_status(
        &mut self,
        now: Instant,
        s: SessionId,
        path: PathId,
        status: PathStatus,
        precedence: u8,
    ) -> bool {
        let Some(sess) = self.sessions.get_mut(s) else {
            return false;
        };
        let Some(slot) = sess.paths.iter_mut().flatten().find(|p| p.id == path) else {
            return false;
        };
        slot.status = status;
        slot.precedence = precedence;
        slot.status_seq += 1;
        let frame = Frame::PathStatus(PathStatusFrame {
            path_id: path,
            status_seq: slot.status_seq,
            status,
            precedence,
        });
        let conn = slot.conn;
        if let Some(c) = self.paths.get_mut(conn) {
            c.path.send_control(&frame);
            self.coupling
                .set_active(&c.path.gauges, status == PathStatus::Available);
        }
        self.touch_conn(conn);
        self.schedule(now, s);
        true
    }

    /// Abandons a path: ABANDON to the client on another path, then the path's connection
    /// is closed and its unacknowledged reliable units move to the remaining paths.
    pub fn abandon_path(&mut self, now: Instant, s: SessionId, path: PathId) -> bool {
        let Some(sess) = self.sessions.get_mut(s) else {
            return false;
        };
        let Some(slot) = sess
            .paths
            .iter()
            .position(|p| p.is_some_and(|p| p.id == path))
        else {
            return false;
        };
        let frame = Frame::Abandon(Abandon {
            path_id: path,
            error_code: codes::ABANDONED,
        });
        let others: Vec<ConnectionHandle> = sess
            .paths
            .iter()
            .flatten()
            .filter(|p| p.id != path)
            .map(|p| p.conn)
            .collect();
        for h in others.iter().chain(sess.paths[slot].map(|p| p.conn).iter()) {
            if let Some(c) = self.paths.get_mut(*h) {
                c.path.send_control(&frame);
            }
        }
        for &h in &others {
            self.touch_conn(h);
        }
        self.close_path(now, s, slot, codes::ABANDONED);
        true
    }

    /// Queues raw bytes on the control stream of a session's path, as if they were frames
    /// this server encoded (fuzzing hook: lets a fuzz target put arbitrary plaintext on a
    /// real, encrypted control stream; the crate's own tests use it too). False if there is
    /// no such path.
    #[cfg(any(test, feature = "fuzzing"))]
    #[doc(hidden)]
    pub fn fuzz_send_control(&mut self, s: SessionId, path: PathId, bytes: &[u8]) -> bool {
        let Some(conn) = self
            .sessions
            .get(s)
            .and_then(|sess| sess.paths.iter().flatten().find(|p| p.id == path))
            .map(|p| p.conn)
        else {
            return false;
        };
        let Some(c) = self.paths.get_mut(conn) else {
            return false;
        };
        c.path.send_control_bytes(bytes);
        self.touch_conn(conn);
        true
    }

    /// Feeds one received UDP datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        match self.paths.handle(now, local, remote, ecn, data) {
            Dispatch::Conn(h) => self.process_conn(now, h),
            Dispatch::New(incoming) => self.accept(now, incoming, local),
            Dispatch::Response(t, buf) => {
                self.edge.on_answered_datagram();
                self.queue_response(t, buf);
            }
            Dispatch::Unhandled => self.edge.on_unhandled_datagram(data),
        }
    }

    /// Queues a datagram quinn wrote outside any connection (a refusal, a retry).
    fn queue_response(&mut self, t: quinn_proto::Transmit, buf: Vec<u8>) {
        let addrs = &self.config.local_addrs;
        self.paths
            .queue_response(t, buf, |ip| source_for(addrs, ip));
    }

    /// Next datagrams to send, written into `buf`: up to `max_datagrams` segments of one
    /// path (a GSO batch, see [`Transmit::segment_size`]); 0 is taken as 1.
    #[must_use]
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.paths
            .poll_transmit(now, max_datagrams, buf)
            .map(|(_, t)| t)
    }
}

/// The local address a datagram to a peer that wrote to `ip` leaves from: that address if
/// it is ours, else the first configured one.
fn source_for(addrs: &[SocketAddr], ip: Option<IpAddr>) -> SocketAddr {
    ip.and_then(|ip| addrs.iter().find(|a| a.ip() == ip).copied())
        .or_else(|| addrs.first().copied())
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Errors of [`Server::send_unit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No such session, or it is closed.
    #[error("no such open session")]
    NoSession,
    /// The unit store refused the unit.
    #[error(transparent)]
    Submit(#[from] SubmitError),
}
