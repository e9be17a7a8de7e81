//! The CAMP server (campd's protocol core): accepts path connections, creates sessions on
//! HELLO, admits further paths on an authenticated JOIN, and sends each session's units over
//! its paths as the scheduler decides.
//!
//! Sans-IO like quinn-proto: feed datagrams with [`Server::handle_datagram`], drive timers
//! with [`Server::handle_timeout`], and pull datagrams to send with
//! [`Server::poll_transmit`]. No system calls, no clock reads.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use camp_wire::{
    Abandon, Frame, JoinOk, Micros, Modality, PathId, PathStatus, PathStatusFrame, Reliability,
    RttReport, SessionInfo,
};
use quinn_proto::{
    ConnectionHandle, DatagramEvent, Dir, EcnCodepoint, EndpointConfig, Event, StreamEvent, VarInt,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::cc::PathGauges;
use crate::config::{CampConfig, SchedulerFactory};
use crate::conn::{PathConn, RxBuffer, UnitCarrier, UnitWriteError, codes};
use crate::control::ControlFrame;
use crate::join::{JOIN_BINDING_LABEL, JOIN_KEY_LABEL, JoinKey, JoinRefusal, NonceCache};
use crate::lia::{CouplingTable, DEFAULT_COUPLING_GROUPS};
use crate::sched::{
    ClientFeedback, ConsistencyAware, Decision, MAX_PATHS, ParamError, PathSet, PathView,
    SchedParam, Scheduler, UnitInfo,
};
use crate::store::{AckedUnit, SubmitError, UnitStore, UnitSubmit};
use crate::{SessionClock, Transmit};

/// Handle of a session on a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// Server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// Shared CAMP settings.
    pub camp: CampConfig,
    /// Local addresses the server is reachable at (one per NIC / path).
    pub local_addrs: Vec<SocketAddr>,
    /// TLS.
    pub crypto: Arc<quinn_proto::crypto::rustls::QuicServerConfig>,
    /// Builds the scheduler of each new session.
    pub scheduler: SchedulerFactory,
    /// Seed for session tokens and quinn's randomness (tests and the simulator fix it).
    pub rng_seed: [u8; 32],
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("camp", &self.camp)
            .field("local_addrs", &self.local_addrs)
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
    pub join_refused: [u64; 6],
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
}

/// Per-path state inside a session.
#[derive(Debug, Clone, Copy)]
struct PathSlot {
    id: PathId,
    conn: ConnectionHandle,
    status: PathStatus,
    precedence: u8,
    status_seq: u32,
    last_rtt_report_us: Micros,
    units_sent: u64,
    bytes_sent: u64,
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

struct ServerSession {
    token: [u8; 16],
    join_key: JoinKey,
    nonces: NonceCache,
    paths: [Option<PathSlot>; MAX_PATHS],
    next_path_id: u32,
    store: UnitStore,
    scheduler: Box<dyn Scheduler>,
    feedback: ClientFeedback,
    hold_until: Option<Micros>,
    closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Waiting for HELLO or JOIN.
    Pending,
    /// Carries path `slot` of `session`.
    Member { session: u32, slot: usize },
    /// Refused or abandoned; closing.
    Closing,
}

struct ServerConn {
    path: PathConn,
    role: Role,
}

/// The CAMP server.
pub struct Server {
    config: ServerConfig,
    clock: SessionClock,
    endpoint: quinn_proto::Endpoint,
    conns: Vec<Option<ServerConn>>,
    sessions: Vec<Option<ServerSession>>,
    tokens: HashMap<[u8; 16], u32>,
    rng: StdRng,
    responses: VecDeque<(Transmit, Vec<u8>)>,
    events: VecDeque<ServerEvent>,
    counters: ServerCounters,
    rr: usize,
    rx: RxBuffer,
    latency: VecDeque<LatencySample>,
    /// Scheduler parameters set at run time, applied to sessions opened later too.
    sched_params: [Option<f64>; SchedParam::ALL.len()],
    /// Per-modality deadline overriding the submitted one (`Some(0)`: no deadline).
    deadlines: [Option<u32>; Modality::COUNT],
    /// Coupled congestion control of every session's paths (group = session index).
    coupling: Arc<CouplingTable>,
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
        let endpoint = quinn_proto::Endpoint::new(
            Arc::new(EndpointConfig::default()),
            Some(Arc::new(base)),
            true,
            Some(quinn_seed),
        );
        let coupling = Arc::new(CouplingTable::new(
            DEFAULT_COUPLING_GROUPS,
            config.camp.coupled_cc,
        ));
        Self {
            config,
            clock: SessionClock::new(epoch),
            endpoint,
            conns: Vec::new(),
            sessions: Vec::new(),
            tokens: HashMap::new(),
            rng,
            responses: VecDeque::new(),
            events: VecDeque::new(),
            counters: ServerCounters::default(),
            rr: 0,
            rx: RxBuffer::default(),
            latency: VecDeque::with_capacity(LATENCY_SAMPLES),
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
        for s in self.sessions.iter_mut().flatten().filter(|s| !s.closed) {
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

    /// Counters.
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
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| !s.closed))
            .map(|(i, _)| SessionId(i as u32))
    }

    /// The token of an open session (what its client got in SESSION).
    pub fn session_token(&self, session: SessionId) -> Option<[u8; 16]> {
        self.sessions
            .get(session.0 as usize)?
            .as_ref()
            .filter(|s| !s.closed)
            .map(|s| s.token)
    }

    /// Counters of a session's unit store.
    pub fn store_counters(&self, s: SessionId) -> Option<crate::store::StoreCounters> {
        self.session(s).map(|s| *s.store.counters())
    }

    /// Reliable units of a session not yet acknowledged.
    pub fn unacked_reliable(&self, s: SessionId) -> usize {
        self.session(s).map_or(0, |s| s.store.unacked_reliable())
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
                let c = self.conns.get(p.conn.0)?.as_ref()?;
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
        self.sessions.get(s.0 as usize)?.as_ref()
    }

    /// Queues a unit for a session. The unit is owned by the session from here on: a
    /// reliable unit is delivered exactly once unless every path of the session fails.
    pub fn send_unit(
        &mut self,
        now: Instant,
        s: SessionId,
        unit: &UnitSubmit<'_>,
    ) -> Result<u64, SendError> {
        let sess = self
            .sessions
            .get_mut(s.0 as usize)
            .and_then(Option::as_mut)
            .filter(|s| !s.closed)
            .ok_or(SendError::NoSession)?;
        let seq = match self.deadlines[unit.modality.index()] {
            Some(d) => sess.store.submit(&UnitSubmit {
                deadline_us: d,
                ..*unit
            })?,
            None => sess.store.submit(unit)?,
        };
        self.schedule(now, s.0);
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
        let Some(sess) = self.sessions.get_mut(s.0 as usize).and_then(Option::as_mut) else {
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
        if let Some(c) = self.conns.get_mut(conn.0).and_then(Option::as_mut) {
            c.path.send_control(&frame);
            self.coupling
                .set_active(&c.path.gauges, status == PathStatus::Available);
        }
        self.schedule(now, s.0);
        true
    }

    /// Abandons a path: ABANDON to the client on another path, then the path's connection
    /// is closed and its unacknowledged reliable units move to the remaining paths.
    pub fn abandon_path(&mut self, now: Instant, s: SessionId, path: PathId) -> bool {
        let Some(sess) = self.sessions.get_mut(s.0 as usize).and_then(Option::as_mut) else {
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
            if let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) {
                c.path.send_control(&frame);
            }
        }
        self.close_path(now, s.0, slot, codes::ABANDONED);
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
        let packet = self.rx.packet(data);
        let mut buf = Vec::new();
        match self
            .endpoint
            .handle(now, remote, Some(local.ip()), ecn, packet, &mut buf)
        {
            Some(DatagramEvent::ConnectionEvent(h, ev)) => {
                if let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) {
                    c.path.conn.handle_event(ev);
                    self.process_conn(now, h);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => self.accept(now, incoming, local),
            Some(DatagramEvent::Response(t)) => self.queue_response(t, buf),
            None => {}
        }
    }

    fn queue_response(&mut self, t: quinn_proto::Transmit, buf: Vec<u8>) {
        let source = self.source_for(t.src_ip);
        self.responses.push_back((
            Transmit {
                source,
                destination: t.destination,
                ecn: t.ecn,
                size: t.size,
                segment_size: t.segment_size,
            },
            buf,
        ));
    }

    fn source_for(&self, ip: Option<IpAddr>) -> SocketAddr {
        let addrs = &self.config.local_addrs;
        ip.and_then(|ip| addrs.iter().find(|a| a.ip() == ip).copied())
            .or_else(|| addrs.first().copied())
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    fn accept(&mut self, now: Instant, incoming: quinn_proto::Incoming, local: SocketAddr) {
        let gauges = Arc::new(PathGauges::default());
        let transport = self.config.camp.transport_coupled(
            self.clock.epoch(),
            gauges.clone(),
            Some(self.coupling.clone()),
        );
        let mut sc = quinn_proto::ServerConfig::with_crypto(self.config.crypto.clone());
        sc.transport_config(Arc::new(transport));
        sc.migration(false);
        let remote = incoming.remote_address();
        let mut buf = Vec::new();
        match self
            .endpoint
            .accept(incoming, now, &mut buf, Some(Arc::new(sc)))
        {
            Ok((h, conn)) => {
                if self.conns.len() <= h.0 {
                    self.conns.resize_with(h.0 + 1, || None);
                }
                let path = PathConn::new(conn, gauges, local, remote, self.clock.micros(now));
                self.conns[h.0] = Some(ServerConn {
                    path,
                    role: Role::Pending,
                });
                self.process_conn(now, h);
            }
            Err(e) => {
                if let Some(t) = e.response {
                    self.queue_response(t, buf);
                }
            }
        }
    }

    /// Drains a connection's endpoint events and application events.
    fn process_conn(&mut self, now: Instant, h: ConnectionHandle) {
        let now_us = self.clock.micros(now);
        loop {
            let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
                return;
            };
            let Some(ev) = c.path.next_event(&mut self.endpoint, h) else {
                break;
            };
            match ev {
                Event::Connected => {
                    c.path.established_us = Some(now_us);
                }
                Event::ConnectionLost { .. } => {
                    c.path.lost = true;
                    if let Role::Member { session, slot } = c.role {
                        self.path_failed(now, session, slot);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    if let Some(id) = c.path.conn.streams().accept(Dir::Bi) {
                        if c.path.control.is_none() {
                            c.path.control = Some(id);
                            self.read_control(now, h);
                        } else {
                            // One control stream per connection.
                            let _ = c
                                .path
                                .conn
                                .recv_stream(id)
                                .stop(VarInt::from_u32(codes::PROTOCOL_VIOLATION));
                        }
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    // Clients send no units; refuse the stream.
                    while let Some(id) = c.path.conn.streams().accept(Dir::Uni) {
                        let _ = c
                            .path
                            .conn
                            .recv_stream(id)
                            .stop(VarInt::from_u32(codes::UNIT_REFUSED));
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) if Some(id) == c.path.control => {
                    self.read_control(now, h);
                }
                Event::Stream(StreamEvent::Writable { id }) if Some(id) == c.path.control => {
                    c.path.flush_control();
                }
                Event::Stream(_)
                | Event::HandshakeDataReady
                | Event::DatagramReceived
                | Event::DatagramsUnblocked => {}
            }
        }
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        if c.path.conn.is_drained() {
            c.path.drained = true;
            self.coupling.detach(&c.path.gauges);
            self.conns[h.0] = None;
            return;
        }
        if let Role::Member { session, .. } = c.role {
            self.schedule(now, session);
        }
    }

    fn read_control(&mut self, now: Instant, h: ConnectionHandle) {
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        let stream_ok = c.path.read_control();
        loop {
            let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
                return;
            };
            let role = c.role;
            let next = match c.path.reader.next_frame() {
                None => None,
                Some(Ok(f)) => Some(ControlFrame::from_frame(&f)),
                Some(Err(_)) => Some(None),
            };
            match next {
                None => break,
                Some(None) => {
                    self.counters.malformed_control += 1;
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
                Some(Some(frame)) => {
                    if !self.on_control(now, h, role, frame) {
                        return;
                    }
                }
            }
        }
        if !stream_ok {
            self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
        }
    }

    /// Handles one control frame; false if the connection was closed.
    fn on_control(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        role: Role,
        f: ControlFrame,
    ) -> bool {
        let now_us = self.clock.micros(now);
        match (role, f) {
            (Role::Pending, ControlFrame::Hello(hello)) => {
                if hello.flags != 0 {
                    self.refuse(now, h, JoinRefusal::Protocol);
                    return false;
                }
                self.open_session(now, h, hello.units_ahead);
                true
            }
            (Role::Pending, ControlFrame::Join(join)) => match self.admit(now, h, &join) {
                Ok(()) => true,
                Err(reason) => {
                    self.refuse(now, h, reason);
                    false
                }
            },
            (Role::Pending, _) => {
                self.refuse(now, h, JoinRefusal::Protocol);
                false
            }
            (Role::Member { session, .. }, ControlFrame::Ack(ack)) => {
                // Half the ACK path's minimum RTT: the ACK's own trip back.
                let back_us = self
                    .conns
                    .get(h.0)
                    .and_then(Option::as_ref)
                    .map_or(0, |c| c.path.gauges.snapshot().min_rtt_us / 2);
                let arrival_us = now_us.saturating_sub(back_us);
                let latency = &mut self.latency;
                let dropped = &mut self.counters.latency_samples_dropped;
                if let Some(s) = self
                    .sessions
                    .get_mut(session as usize)
                    .and_then(Option::as_mut)
                {
                    s.store.on_ack_observed(
                        ack.modality,
                        ack.cumulative,
                        ack.ranges(),
                        |u: AckedUnit| {
                            if latency.len() == LATENCY_SAMPLES {
                                latency.pop_front();
                                *dropped += 1;
                            }
                            latency.push_back(LatencySample {
                                session: SessionId(session),
                                modality: u.modality,
                                lateness_us: arrival_us.saturating_sub(u.gen_time_us),
                                delivery_us: arrival_us.saturating_sub(u.first_sent_us),
                            });
                        },
                    );
                }
                self.schedule(now, session);
                true
            }
            (Role::Member { session, .. }, ControlFrame::Feedback(fb)) => {
                if let Some(s) = self
                    .sessions
                    .get_mut(session as usize)
                    .and_then(Option::as_mut)
                {
                    s.feedback = ClientFeedback {
                        playout_delay_us: fb.playout_delay_us,
                        buffer_occupancy_us: fb.buffer_occupancy_us,
                        skew_mean_us: fb.skew_mean_us,
                        skew_p95_us: fb.skew_p95_us,
                        late_units: fb.late_units,
                    };
                    s.scheduler.on_feedback(&s.feedback);
                }
                true
            }
            (Role::Member { session, .. }, ControlFrame::PathStatus(ps)) => {
                if let Some(s) = self
                    .sessions
                    .get_mut(session as usize)
                    .and_then(Option::as_mut)
                {
                    if let Some(p) = s.paths.iter_mut().flatten().find(|p| p.id == ps.path_id) {
                        if ps.status_seq > p.status_seq {
                            p.status_seq = ps.status_seq;
                            p.status = ps.status;
                            p.precedence = ps.precedence;
                            if let Some(c) = self.conns.get(p.conn.0).and_then(Option::as_ref) {
                                self.coupling
                                    .set_active(&c.path.gauges, p.status == PathStatus::Available);
                            }
                        }
                    }
                }
                self.schedule(now, session);
                true
            }
            (Role::Member { session, .. }, ControlFrame::Abandon(a)) => {
                let slot = self
                    .sessions
                    .get(session as usize)
                    .and_then(Option::as_ref)
                    .and_then(|s| {
                        s.paths
                            .iter()
                            .position(|p| p.is_some_and(|p| p.id == a.path_id))
                    });
                if let Some(slot) = slot {
                    self.close_path(now, session, slot, codes::ABANDONED);
                }
                self.conns.get(h.0).is_some_and(Option::is_some)
            }
            (Role::Member { .. }, ControlFrame::Rtt(_)) => true,
            (Role::Member { .. } | Role::Closing, _) => {
                let _ = now_us;
                self.counters.malformed_control += 1;
                self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                false
            }
        }
    }

    fn open_session(&mut self, now: Instant, h: ConnectionHandle, units_ahead: u32) {
        let now_us = self.clock.micros(now);
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        let mut token = [0u8; 16];
        loop {
            self.rng.fill(&mut token);
            if !self.tokens.contains_key(&token) {
                break;
            }
        }
        let mut secret = [0u8; 32];
        if c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut secret, JOIN_KEY_LABEL, &token)
            .is_err()
        {
            self.refuse(now, h, JoinRefusal::Protocol);
            return;
        }
        let sid = self
            .sessions
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.sessions.len());
        if sid == self.sessions.len() {
            self.sessions.push(None);
        }
        let mut paths = [None; MAX_PATHS];
        paths[0] = Some(PathSlot {
            id: PathId(0),
            conn: h,
            status: PathStatus::Available,
            precedence: 1,
            status_seq: 0,
            last_rtt_report_us: now_us,
            units_sent: 0,
            bytes_sent: 0,
        });
        self.sessions[sid] = Some(ServerSession {
            token,
            join_key: JoinKey::from_exporter(&secret),
            nonces: NonceCache::default(),
            paths,
            next_path_id: 1,
            store: {
                let mut store = UnitStore::new(self.config.camp.max_queued_bytes);
                // The client's announced window, unless configured otherwise (experiments).
                store.set_unit_window(self.config.camp.peer_units_ahead.unwrap_or(units_ahead));
                store
            },
            scheduler: {
                let mut sched = (self.config.scheduler)();
                for (p, v) in SchedParam::ALL.iter().zip(self.sched_params) {
                    if let Some(v) = v {
                        // Baselines without the parameter keep their defaults.
                        let _ = sched.set_param(*p, v);
                    }
                }
                sched
            },
            feedback: ClientFeedback::default(),
            hold_until: None,
            closed: false,
        });
        self.tokens.insert(token, sid as u32);
        self.coupling.attach(&c.path.gauges, sid, 0);
        c.role = Role::Member {
            session: sid as u32,
            slot: 0,
        };
        c.path.send_control(&Frame::Session(SessionInfo {
            token,
            path_id: PathId(0),
            server_time_us: now_us,
        }));
        self.counters.sessions_opened += 1;
        self.events
            .push_back(ServerEvent::SessionOpened(SessionId(sid as u32)));
        self.events
            .push_back(ServerEvent::PathJoined(SessionId(sid as u32), PathId(0)));
    }

    fn admit(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        join: &camp_wire::Join,
    ) -> Result<(), JoinRefusal> {
        let now_us = self.clock.micros(now);
        let sid = *self
            .tokens
            .get(&join.token)
            .ok_or(JoinRefusal::UnknownSession)?;
        let c = self
            .conns
            .get_mut(h.0)
            .and_then(Option::as_mut)
            .ok_or(JoinRefusal::Protocol)?;
        let sess = self
            .sessions
            .get_mut(sid as usize)
            .and_then(Option::as_mut)
            .ok_or(JoinRefusal::UnknownSession)?;
        if sess.closed {
            return Err(JoinRefusal::Late);
        }
        let established = c.path.established_us.unwrap_or(c.path.created_us);
        if now_us.saturating_sub(established) > self.config.camp.join_timeout.as_micros() as u64 {
            return Err(JoinRefusal::Late);
        }
        if sess.nonces.contains(&join.nonce) {
            return Err(JoinRefusal::Replayed);
        }
        let mut binding = [0u8; 32];
        c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut binding, JOIN_BINDING_LABEL, &join.token)
            .map_err(|_| JoinRefusal::Protocol)?;
        if !sess
            .join_key
            .verify(&join.token, &join.nonce, &binding, &join.mac)
        {
            return Err(JoinRefusal::Forged);
        }
        let live = sess.paths.iter().flatten().count();
        let free = sess.paths.iter().position(Option::is_none);
        let (Some(slot), true) = (free, live < self.config.camp.max_paths) else {
            return Err(JoinRefusal::TooManyPaths);
        };
        if !sess.nonces.insert(join.nonce) {
            return Err(JoinRefusal::TooManyPaths);
        }
        let id = PathId(sess.next_path_id);
        sess.next_path_id += 1;
        sess.paths[slot] = Some(PathSlot {
            id,
            conn: h,
            status: PathStatus::Available,
            precedence: 1,
            status_seq: 0,
            last_rtt_report_us: now_us,
            units_sent: 0,
            bytes_sent: 0,
        });
        c.role = Role::Member { session: sid, slot };
        self.coupling.attach(&c.path.gauges, sid as usize, slot);
        c.path.send_control(&Frame::JoinOk(JoinOk {
            path_id: id,
            server_time_us: now_us,
        }));
        self.events
            .push_back(ServerEvent::PathJoined(SessionId(sid), id));
        Ok(())
    }

    fn refuse(&mut self, now: Instant, h: ConnectionHandle, reason: JoinRefusal) {
        self.counters.join_refused[reason.index()] += 1;
        self.events.push_back(ServerEvent::JoinRefused(reason));
        self.close_conn(now, h, reason.close_code());
    }

    fn close_conn(&mut self, now: Instant, h: ConnectionHandle, code: u32) {
        let Some(c) = self.conns.get_mut(h.0).and_then(Option::as_mut) else {
            return;
        };
        let role = c.role;
        c.role = Role::Closing;
        c.path
            .conn
            .close(now, VarInt::from_u32(code), bytes::Bytes::new());
        if let Role::Member { session, slot } = role {
            self.path_failed(now, session, slot);
        }
    }

    fn close_path(&mut self, now: Instant, session: u32, slot: usize, code: u32) {
        let Some(s) = self.sessions.get(session as usize).and_then(Option::as_ref) else {
            return;
        };
        let Some(p) = s.paths[slot] else { return };
        self.close_conn(now, p.conn, code);
    }

    /// A path is gone: free its slot, reinject what only it carried, close the session
    /// when it was the last.
    fn path_failed(&mut self, now: Instant, session: u32, slot: usize) {
        let Some(s) = self
            .sessions
            .get_mut(session as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let Some(p) = s.paths[slot].take() else {
            return;
        };
        s.store.reinject_from(PathSet::single(slot));
        self.events
            .push_back(ServerEvent::PathClosed(SessionId(session), p.id));
        if let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) {
            c.role = Role::Closing;
            self.coupling.detach(&c.path.gauges);
        }
        if s.paths.iter().all(Option::is_none) {
            s.closed = true;
            self.tokens.remove(&s.token);
            self.events
                .push_back(ServerEvent::SessionClosed(SessionId(session)));
        } else {
            self.schedule(now, session);
        }
    }

    /// Places queued units on paths until no path has room or no unit is left.
    fn schedule(&mut self, now: Instant, session: u32) {
        let now_us = self.clock.micros(now);
        let Some(s) = self
            .sessions
            .get_mut(session as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if s.closed {
            return;
        }
        s.store.expire(now_us);
        s.hold_until = None;
        let mut skip = [false; Modality::COUNT];
        let mut views: [PathView; MAX_PATHS] = [PathView::placeholder(); MAX_PATHS];
        loop {
            // Fresh views each round: a write changes the chosen path's backlog and room.
            let mut n = 0;
            for (slot, p) in s.paths.iter().enumerate() {
                let Some(p) = p else { continue };
                let Some(c) = self.conns.get(p.conn.0).and_then(Option::as_ref) else {
                    continue;
                };
                views[n] = c.path.view(slot as u8, p.id, p.status, p.precedence);
                n += 1;
            }
            let views = &views[..n];
            if views.iter().all(|v| !v.usable) {
                break;
            }
            let Some((m, seq, reinjection)) = s.store.next_candidate(skip) else {
                break;
            };
            let Some(u) = s.store.get(m, seq) else { break };
            let avoid = if reinjection {
                u.sent_on
            } else {
                PathSet::EMPTY
            };
            let info = UnitInfo {
                modality: m,
                reliability: u.header.reliability,
                size: u.frame.len() as u32,
                sync_index: u.header.sync_index,
                gen_time_us: u.header.gen_time_us,
                deadline_us: u.deadline_us(),
                now_us,
                reinjection,
                avoid,
            };
            // A reinjected unit whose every other path is gone may go back where it was.
            let mut decision = s.scheduler.pick(&info, views);
            if reinjection && decision == (Decision::Hold { retry_at_us: None }) {
                let again = UnitInfo {
                    avoid: PathSet::EMPTY,
                    ..info
                };
                if !crate::sched::eligible(&again, views).is_empty()
                    && crate::sched::eligible(&info, views).is_empty()
                {
                    decision = s.scheduler.pick(&again, views);
                }
            }
            match decision {
                Decision::Drop if info.reliability == Reliability::Droppable => {
                    s.store.drop_unit(m, seq);
                }
                Decision::Drop | Decision::Hold { .. } => {
                    if let Decision::Hold {
                        retry_at_us: Some(t),
                    } = decision
                    {
                        s.hold_until = Some(s.hold_until.map_or(t, |h| h.min(t)));
                    }
                    skip[m.index()] = true;
                    if skip.iter().all(|&x| x) {
                        break;
                    }
                }
                Decision::Send(set) => {
                    let mut sent = PathSet::EMPTY;
                    let priority = match m {
                        Modality::Audio | Modality::Text => 2,
                        Modality::Video => 0,
                    } + i32::from(reinjection);
                    let droppable = info.reliability == Reliability::Droppable;
                    let deadline = info.deadline_us;
                    for slot in set.iter() {
                        let Some(p) = s.paths[slot].as_mut() else {
                            continue;
                        };
                        let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) else {
                            continue;
                        };
                        let frame = &s.store.get(m, seq).map(|u| &u.frame[..]).unwrap_or(&[]);
                        if frame.is_empty() {
                            continue;
                        }
                        match c.path.write_unit(frame, droppable, priority, now_us) {
                            Ok(carrier) => {
                                if let (UnitCarrier::Stream(id), true, Some(d)) =
                                    (carrier, droppable, deadline)
                                {
                                    c.path.deadline_streams.push_back((id, d));
                                }
                                p.units_sent += 1;
                                p.bytes_sent += frame.len() as u64;
                                sent = sent.with(slot);
                            }
                            Err(UnitWriteError::NoRoom | UnitWriteError::Closed) => {}
                        }
                    }
                    if sent.is_empty() {
                        skip[m.index()] = true;
                        if skip.iter().all(|&x| x) {
                            break;
                        }
                        continue;
                    }
                    for slot in sent.iter() {
                        s.store.mark_sent(m, seq, slot, now_us);
                    }
                    if !droppable && !reinjection && sent.len() == 1 {
                        let slot = sent.iter().next().unwrap_or(0);
                        if let Some(view) = views.iter().find(|v| v.slot as usize == slot) {
                            if let Some(after) = s.scheduler.reinject_after_us(&info, view, views) {
                                s.store.arm_reinjection(m, seq, now_us + after);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Earliest time [`handle_timeout`](Self::handle_timeout) must be called.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let report = self.config.camp.rtt_report_interval.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        for c in self.conns.iter_mut().flatten() {
            consider(c.path.conn.poll_timeout());
            consider(c.path.next_stream_deadline().map(|d| self.clock.instant(d)));
            consider(
                c.path
                    .suspect_deadline(min_suspect)
                    .map(|d| self.clock.instant(d)),
            );
            if c.role == Role::Pending {
                let start = c.path.established_us.unwrap_or(c.path.created_us);
                consider(Some(self.clock.instant(start + join_timeout + 1)));
            }
        }
        for s in self.sessions.iter().flatten().filter(|s| !s.closed) {
            consider(s.hold_until.map(|t| self.clock.instant(t)));
            consider(
                s.store
                    .next_reinjection_timer()
                    .map(|t| self.clock.instant(t)),
            );
            consider(
                s.store
                    .next_safety_timeout(safety)
                    .map(|t| self.clock.instant(t)),
            );
            for p in s.paths.iter().flatten() {
                consider(Some(self.clock.instant(p.last_rtt_report_us + report)));
            }
        }
        next
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_us = self.clock.micros(now);
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let join_timeout = self.config.camp.join_timeout.as_micros() as u64;
        for i in 0..self.conns.len() {
            let h = ConnectionHandle(i);
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if c.path.conn.poll_timeout().is_some_and(|t| t <= now) {
                c.path.conn.handle_timeout(now);
            }
            self.counters.deadline_resets += c.path.expire_streams(now_us) as u64;
            let was = c.path.suspect;
            let is = c.path.update_suspect(now_us, min_suspect);
            let role = c.role;
            if is && !was {
                self.counters.suspected += 1;
                if let Role::Member { session, slot } = role {
                    if let Some(s) = self
                        .sessions
                        .get_mut(session as usize)
                        .and_then(Option::as_mut)
                    {
                        s.store.reinject_from(PathSet::single(slot));
                    }
                }
            }
            if role == Role::Pending {
                let start = c.path.established_us.unwrap_or(c.path.created_us);
                if now_us > start + join_timeout {
                    self.refuse(now, h, JoinRefusal::Late);
                }
            }
            self.process_conn(now, h);
        }
        self.send_rtt_reports(now_us);
        let safety = self.config.camp.reliable_safety_timeout.as_micros() as u64;
        for s in self.sessions.iter_mut().flatten() {
            s.store.fire_reinjection_timers(now_us);
            s.store.fire_safety_timeouts(now_us, safety);
        }
        for sid in 0..self.sessions.len() {
            self.schedule(now, sid as u32);
        }
    }

    fn send_rtt_reports(&mut self, now_us: Micros) {
        let interval = self.config.camp.rtt_report_interval.as_micros() as u64;
        for s in self.sessions.iter_mut().flatten().filter(|s| !s.closed) {
            for p in s.paths.iter_mut().flatten() {
                if now_us < p.last_rtt_report_us + interval {
                    continue;
                }
                p.last_rtt_report_us = now_us;
                let Some(c) = self.conns.get_mut(p.conn.0).and_then(Option::as_mut) else {
                    continue;
                };
                let g = c.path.gauges.snapshot();
                let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                let frame = Frame::Rtt(RttReport {
                    path_id: p.id,
                    raw_us: clamp(g.latest_rtt_us),
                    min_us: clamp(c.path.conn.min_rtt().as_micros() as u64),
                    max_us: clamp(g.max_rtt_us),
                    smoothed_us: clamp(c.path.conn.rtt().as_micros() as u64),
                    age_us: clamp(now_us.saturating_sub(g.last_sample_us)),
                });
                c.path.send_control(&frame);
            }
        }
    }

    /// Next datagram to send, written into `buf`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some((t, data)) = self.responses.pop_front() {
            buf.clear();
            buf.extend_from_slice(&data[..t.size]);
            return Some(t);
        }
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.rr + k) % n;
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            buf.clear();
            if let Some(t) = c.path.conn.poll_transmit(now, 1, buf) {
                self.rr = i;
                let source = c.path.local;
                return Some(Transmit {
                    source,
                    destination: t.destination,
                    ecn: t.ecn,
                    size: t.size,
                    segment_size: t.segment_size,
                });
            }
            // quinn had the chance to send and sent nothing while the window has room:
            // nothing of ours is waiting inside it.
            let g = c.path.gauges.snapshot();
            if g.unsent > 0 && g.in_flight + g.mtu.max(1200) <= g.cwnd {
                c.path.gauges.clear_unsent();
            }
            self.rr = (i + 1) % n.max(1);
        }
        None
    }
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
