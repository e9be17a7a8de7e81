//! The CAMP client: opens one QUIC connection per configured path, all at once; the first
//! path whose handshake completes starts the session (HELLO), the others join it with an
//! authenticated JOIN once the SESSION token is known. It receives units from all of them
//! into one [`camp_recv::Receiver`] that reorders across paths, aligns the modalities and
//! produces the CAMP ACKs and alignment FEEDBACK sent back to the server.
//!
//! Session start on any path: a lossy or dead first path costs nothing while another path
//! is healthy. If the path that carried HELLO is lost before SESSION arrives, the next path
//! with a completed handshake sends HELLO again; if no path brings the session up within
//! [`CampConfig::session_start_timeout`], the client reports [`ClientEvent::SessionFailed`].
//!
//! Sans-IO: [`Client::handle_datagram`], [`Client::handle_timeout`],
//! [`Client::poll_transmit`], [`Client::poll_timeout`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camp_recv::{Receiver, ReceiverConfig};
use camp_wire::{
    Abandon, Feedback, Frame, Hello, Join, Micros, PathId, PathStatus, PathStatusFrame,
};
use quinn_proto::{
    ClientConfig as QuinnClientConfig, ConnectionHandle, ConnectionId, Dir, EcnCodepoint,
    EndpointConfig, Event, StreamEvent, StreamId, VarInt,
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::addr_book::{AddrUpdate, AddressBook};
use crate::cc::PathGauges;
use crate::config::CampConfig;
use crate::conn::{MAX_UNIT_FRAME, PathConn, codes};
use crate::control::ControlFrame;
use crate::endpoint::{ControlItem, Dispatch, PathEndpoint};
use crate::join::{JOIN_BINDING_LABEL, JOIN_KEY_LABEL, JoinKey};
use crate::lia::CouplingTable;
use crate::sched::{MAX_PATHS, PathView};
use crate::unit_rx::{ChunkError, UnitStreams, decode_unit};
use crate::{SessionClock, Transmit};

/// One network path of the client: where to send from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathSpec {
    /// Local address (selects the interface).
    pub local: SocketAddr,
    /// Server address for this path.
    pub remote: SocketAddr,
}

/// Client configuration.
#[derive(Clone)]
pub struct ClientConfig {
    /// Shared CAMP settings.
    pub camp: CampConfig,
    /// Paths, connected all at once; whichever completes its handshake first starts the
    /// session (with [`CampConfig::routed_joins`], the first one alone starts it and the
    /// others connect after). At most [`MAX_PATHS`].
    pub paths: Vec<PathSpec>,
    /// TLS.
    pub crypto: Arc<quinn_proto::crypto::rustls::QuicClientConfig>,
    /// Server name checked against the certificate.
    pub server_name: String,
    /// Receiver (reorder, alignment, metrics) settings.
    pub receiver: ReceiverConfig,
    /// Seed for join nonces and quinn's randomness.
    pub rng_seed: [u8; 32],
    /// Sender and receiver share a clock (simulator, same host): no offset estimation.
    pub shared_clock: bool,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("camp", &self.camp)
            .field("paths", &self.paths)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Errors starting a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No path configured, or more than [`MAX_PATHS`].
    #[error("a client needs 1 to {MAX_PATHS} paths, got {0}")]
    PathCount(usize),
    /// quinn refused to start a connection.
    #[error("connect: {0}")]
    Connect(#[from] quinn_proto::ConnectError),
}

/// Why the session could not be started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// No path brought the session up within [`CampConfig::session_start_timeout`].
    #[error("no path started the session within {0:?}")]
    Timeout(std::time::Duration),
    /// Every path closed before the server answered HELLO.
    #[error("every path closed before the session started")]
    AllPathsClosed,
}

/// Something the application may want to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// The server accepted the session (on the path reported by the `PathJoined` that
    /// follows).
    SessionEstablished,
    /// The session could not be started; every path is closed (a `SessionClosed` follows).
    SessionFailed(StartError),
    /// A path is part of the session (`slot` indexes [`ClientConfig::paths`]).
    PathJoined {
        /// Configured path index.
        slot: usize,
        /// Server-assigned path id.
        id: PathId,
    },
    /// A path closed (lost, abandoned or refused).
    PathClosed {
        /// Configured path index.
        slot: usize,
    },
    /// Every path is closed.
    SessionClosed,
    /// The server advertised an address (ADD_ADDRESS: new id, or a changed address). The
    /// client does not open a path to it by itself.
    AddressAdded {
        /// The server's address id.
        id: u8,
        /// Where the server is reachable.
        addr: SocketAddr,
    },
    /// The server withdrew the address it advertised under `id` (REMOVE_ADDRESS).
    AddressRemoved {
        /// The server's address id.
        id: u8,
    },
}

/// Client counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Unit frames that failed to decode or were not DATA.
    pub malformed_units: u64,
    /// Unit streams larger than a unit may be (stopped).
    pub oversized_units: u64,
    /// Unit streams reset by the server (deadline expired).
    pub reset_units: u64,
    /// Units the receiver refused (too far ahead, etc.).
    pub refused_units: u64,
    /// Control frames that failed to decode (connection closed).
    pub malformed_control: u64,
    /// ACK frames sent.
    pub acks_sent: u64,
    /// FEEDBACK frames sent.
    pub feedback_sent: u64,
    /// Lost paths connected again ([`CampConfig::reconnect`]).
    pub reconnects: u64,
    /// ACK and FEEDBACK frames that fell due while no path could carry them, dropped as if
    /// lost (ACKs are cumulative: the next one covers what a dropped one said).
    pub signals_dropped: u64,
    /// ADD_ADDRESS / REMOVE_ADDRESS frames ignored because their seq was not above the
    /// newest applied for their address id (replayed or overtaken updates).
    pub stale_address_updates: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathState {
    /// Connection started: waiting for the handshake, or (handshake done) for the SESSION
    /// token before it can JOIN.
    Connecting,
    /// HELLO sent on this path, waiting for SESSION.
    Hello,
    /// JOIN sent, waiting for JOIN_OK.
    Joining,
    /// Member of the session.
    Member(PathId),
    /// Closed.
    Closed,
}

/// What the client keeps about one of its path connections.
struct ClientPath {
    slot: usize,
    state: PathState,
    status: PathStatus,
    precedence: u8,
    status_seq: u32,
    join: Option<Join>,
    units: UnitStreams<StreamId>,
}

impl ClientPath {
    /// The path id to attribute a received unit to. The server only sends units on paths it
    /// admitted, but its JOIN_OK travels on the control stream and may arrive after the first
    /// unit stream (streams are independent): such a unit is attributed to a provisional id
    /// outside the server's range rather than refused (refusing it would lose it for good,
    /// since QUIC already acknowledged it).
    fn unit_path_id(&self) -> PathId {
        match self.state {
            PathState::Member(id) => id,
            _ => PathId(u32::MAX - self.slot as u32),
        }
    }
}

/// The CAMP client.
pub struct Client {
    config: ClientConfig,
    clock: SessionClock,
    /// quinn's endpoint and every path connection.
    paths: PathEndpoint<ClientPath>,
    slots: [Option<ConnectionHandle>; MAX_PATHS],
    token: Option<[u8; 16]>,
    join_key: Option<JoinKey>,
    /// When the session must have started ([`CampConfig::session_start_timeout`]); `None`
    /// once it started or failed.
    start_deadline: Option<Instant>,
    receiver: Receiver,
    rng: StdRng,
    events: VecDeque<ClientEvent>,
    counters: ClientCounters,
    ack_buf: Vec<u8>,
    /// Coupled congestion control of this client's paths (one group, slot = path slot).
    coupling: Arc<CouplingTable>,
    /// With [`CampConfig::routed_joins`]: the server's CID on the first path (the source
    /// CID of its first long-header packet), from which joining paths' Initial CIDs are made.
    routing_cid: Option<ConnectionId>,
    /// Per slot: when a lost path is connected again, and the failed attempts since it was
    /// last a member ([`CampConfig::reconnect`]).
    reconnect_at: [Option<Instant>; MAX_PATHS],
    reconnect_attempts: [u32; MAX_PATHS],
    /// Addresses the server advertised (ADD_ADDRESS / REMOVE_ADDRESS).
    addr_book: AddressBook,
    /// Connections started, for [`crate::config::QlogTarget::seq`].
    #[cfg(feature = "qlog")]
    qlog_seq: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts connecting every configured path. `epoch` is the client's session-clock zero.
    ///
    /// A path quinn refuses to start is reported [`ClientEvent::PathClosed`]; only when it
    /// refuses every path is the error returned.
    pub fn new(config: ClientConfig, now: Instant, epoch: Instant) -> Result<Self, ClientError> {
        if config.paths.is_empty() || config.paths.len() > MAX_PATHS {
            return Err(ClientError::PathCount(config.paths.len()));
        }
        let mut rng = StdRng::from_seed(config.rng_seed);
        let mut quinn_seed = [0u8; 32];
        rng.fill(&mut quinn_seed);
        let endpoint = quinn_proto::Endpoint::new(
            Arc::new(EndpointConfig::default()),
            None,
            true,
            Some(quinn_seed),
        );
        let receiver = Receiver::new(config.receiver);
        let config_coupled = config.camp.coupled_cc;
        let mut client = Self {
            config,
            clock: SessionClock::new(epoch),
            paths: PathEndpoint::new(endpoint),
            slots: [None; MAX_PATHS],
            token: None,
            join_key: None,
            start_deadline: None,
            receiver,
            rng,
            events: VecDeque::new(),
            counters: ClientCounters::default(),
            addr_book: AddressBook::default(),
            ack_buf: vec![0; camp_wire::ack_len(camp_wire::MAX_ACK_RANGES)],
            coupling: Arc::new(CouplingTable::new(1, config_coupled)),
            routing_cid: None,
            reconnect_at: [None; MAX_PATHS],
            reconnect_attempts: [0; MAX_PATHS],
            #[cfg(feature = "qlog")]
            qlog_seq: 0,
        };
        let mut first_error = None;
        let mut started = 0;
        // Routed joins: the other paths connect once the session is up (`connect_joiners`).
        let now_paths = if client.config.camp.routed_joins {
            1
        } else {
            client.config.paths.len()
        };
        for slot in 0..now_paths {
            match client.connect(now, slot) {
                Ok(_) => started += 1,
                Err(e) => {
                    client.events.push_back(ClientEvent::PathClosed { slot });
                    first_error.get_or_insert(e);
                }
            }
        }
        if let (0, Some(e)) = (started, first_error) {
            return Err(e);
        }
        client.start_deadline = Some(now + client.config.camp.session_start_timeout);
        Ok(client)
    }

    /// Sends HELLO on `h`, a connection whose handshake is complete: it starts the session.
    fn send_hello(&mut self, h: ConnectionHandle) {
        // The receiver clamps its window into the range HELLO allows.
        let units_ahead = self.receiver.config().max_units_ahead;
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        c.role.state = PathState::Hello;
        c.path.open_control();
        c.path.send_control(&Frame::Hello(Hello {
            flags: 0,
            units_ahead,
        }));
        c.path.flush_control();
    }

    /// Whether some path carries HELLO now (sent, SESSION not yet received).
    fn hello_pending(&self) -> bool {
        self.paths
            .iter()
            .any(|(_, c)| c.role.state == PathState::Hello)
    }

    /// A path whose handshake is complete and that waits for something to do: HELLO if no
    /// session and no HELLO in flight, JOIN if the token is known, otherwise it waits.
    fn handshake_done(&mut self, h: ConnectionHandle) {
        if self.token.is_some() {
            self.send_join(h);
        } else if !self.hello_pending() && self.start_deadline.is_some() {
            self.send_hello(h);
        }
    }

    /// Connections whose handshake is complete and that are neither members nor started,
    /// in slot order.
    fn waiting_conns(&self) -> Vec<ConnectionHandle> {
        let mut v: Vec<(usize, ConnectionHandle)> = self
            .paths
            .iter()
            .filter_map(|(h, c)| {
                (c.role.state == PathState::Connecting && c.path.established_us.is_some())
                    .then_some((c.role.slot, h))
            })
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, h)| h).collect()
    }

    /// Gives up starting the session: every path is closed and the failure reported.
    fn fail_start(&mut self, now: Instant, why: StartError) {
        if self.start_deadline.take().is_none() {
            return;
        }
        self.events.push_back(ClientEvent::SessionFailed(why));
        self.close(now);
    }

    fn connect(&mut self, now: Instant, slot: usize) -> Result<ConnectionHandle, ClientError> {
        let spec = self.config.paths[slot];
        let gauges = Arc::new(PathGauges::default());
        #[allow(unused_mut)]
        let mut transport = self.config.camp.transport_coupled(
            self.clock.epoch(),
            gauges.clone(),
            Some(self.coupling.clone()),
        );
        #[cfg(feature = "qlog")]
        {
            let target = crate::config::QlogTarget {
                role: "client",
                local: spec.local,
                remote: spec.remote,
                seq: self.qlog_seq,
            };
            self.qlog_seq += 1;
            self.config.camp.attach_qlog(&mut transport, &target, now);
        }
        let mut qc = QuinnClientConfig::new(self.config.crypto.clone());
        qc.transport_config(Arc::new(transport));
        if let Some(cid) = self.joining_initial_cid() {
            qc.initial_dst_cid_provider(Arc::new(move || cid));
        }
        let (h, conn) =
            self.paths
                .quinn()
                .connect(now, qc, spec.remote, &self.config.server_name)?;
        let path = PathConn::new(
            conn,
            gauges,
            spec.local,
            spec.remote,
            self.clock.micros(now),
        );
        self.paths.insert(
            h,
            path,
            ClientPath {
                slot,
                state: PathState::Connecting,
                status: PathStatus::Available,
                precedence: 1,
                status_seq: 0,
                join: None,
                units: UnitStreams::new(MAX_UNIT_FRAME),
            },
        );
        self.slots[slot] = Some(h);
        Ok(h)
    }

    /// The Initial destination CID of a joining path under [`CampConfig::routed_joins`]:
    /// the first path's server CID with its last `MIN_NONCE_LEN` octets replaced by random
    /// ones. Whatever the site's layout, the server id ends before those octets (a nonce
    /// has at least that many), so the balancer reads the same server id. `None` (quinn
    /// draws a random CID) without the option, before the server's CID is known, or when
    /// that CID is shorter than the 8 octets a client's Initial CID must have (RFC 9000
    /// §7.2).
    fn joining_initial_cid(&mut self) -> Option<ConnectionId> {
        if !self.config.camp.routed_joins {
            return None;
        }
        let base = self.routing_cid?;
        if base.len() < 8 {
            return None;
        }
        let mut bytes = [0u8; crate::cid::MAX_CID_LEN];
        bytes[..base.len()].copy_from_slice(&base);
        self.rng
            .fill(&mut bytes[base.len() - crate::cid::MIN_NONCE_LEN..base.len()]);
        Some(ConnectionId::new(&bytes[..base.len()]))
    }

    /// Routed joins: connects every configured path not started yet (the session is up).
    fn connect_joiners(&mut self, now: Instant) {
        for slot in 0..self.config.paths.len() {
            if self.slots[slot].is_some() {
                continue;
            }
            if self.connect(now, slot).is_err() {
                self.events.push_back(ClientEvent::PathClosed { slot });
            }
        }
    }

    /// Whether some path is a member of the session (the server still holds it).
    fn has_member(&self) -> bool {
        self.paths
            .entries()
            .any(|c| matches!(c.role.state, PathState::Member(_)))
    }

    /// Arms the reconnect of `slot`, whose connection (last smoothed RTT `srtt`) was lost.
    fn schedule_reconnect(&mut self, now: Instant, slot: usize, srtt: Duration) {
        let Some(backoff) = self.config.camp.reconnect else {
            return;
        };
        if self.token.is_none() || !self.has_member() {
            return;
        }
        let attempt = self.reconnect_attempts[slot];
        self.reconnect_attempts[slot] = attempt.saturating_add(1);
        self.reconnect_at[slot] = Some(now + backoff.delay(srtt, attempt));
    }

    /// Connects `slot` again; its handshake ends in a JOIN (the token is known). Given up
    /// when no path is a member any more: the server has dropped the session.
    fn reconnect(&mut self, now: Instant, slot: usize) {
        if !self.has_member() {
            return;
        }
        let idle = self.slots[slot]
            .and_then(|h| self.paths.get(h))
            .is_none_or(|c| c.role.state == PathState::Closed);
        if !idle {
            return;
        }
        match self.connect(now, slot) {
            Ok(_) => self.counters.reconnects += 1,
            Err(_) => self.events.push_back(ClientEvent::PathClosed { slot }),
        }
    }

    /// Switches coupled congestion control (RFC 6356 LIA across this client's paths) on or
    /// off; each path follows at its next congestion-control event.
    pub fn set_coupled_cc(&mut self, on: bool) {
        self.coupling.set_enabled(on);
    }

    /// Whether coupled congestion control is on.
    pub fn coupled_cc(&self) -> bool {
        self.coupling.enabled()
    }

    /// The receiver: reordering, alignment and the draft's metrics.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// Mutable access to the receiver (playout polling, finishing a turn).
    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// Counters.
    pub fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    /// The session clock.
    pub fn clock(&self) -> SessionClock {
        self.clock
    }

    /// Next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The addresses the server currently advertises (ADD_ADDRESS minus REMOVE_ADDRESS), by
    /// increasing address id. Opening paths to them is up to the application.
    pub fn advertised_addresses(&self) -> Vec<(u8, SocketAddr)> {
        self.addr_book.addresses()
    }

    /// The session token once the server answered HELLO.
    pub fn session_token(&self) -> Option<[u8; 16]> {
        self.token
    }

    /// The JOIN this client sent on path `slot` (diagnostics and tests).
    pub fn sent_join(&self, slot: usize) -> Option<Join> {
        let h = self.slots.get(slot).copied().flatten()?;
        self.paths.get(h)?.role.join
    }

    /// Server-assigned path id of path `slot`, once it is a member.
    pub fn path_id(&self, slot: usize) -> Option<PathId> {
        let h = self.slots.get(slot).copied().flatten()?;
        match self.paths.get(h)?.role.state {
            PathState::Member(id) => Some(id),
            _ => None,
        }
    }

    /// Scheduler-style views of the client's paths (RTT as the client measures it).
    pub fn path_views(&self) -> Vec<PathView> {
        self.paths
            .entries()
            .filter_map(|c| match c.role.state {
                PathState::Member(id) => {
                    Some(
                        c.path
                            .view(c.role.slot as u8, id, c.role.status, c.role.precedence),
                    )
                }
                _ => None,
            })
            .collect()
    }

    /// Asks the server to change a path's status (PATH_STATUS, like MP_PRIO).
    pub fn set_path_status(&mut self, slot: usize, status: PathStatus, precedence: u8) -> bool {
        let Some(h) = self.slots.get(slot).copied().flatten() else {
            return false;
        };
        let Some(c) = self.paths.get_mut(h) else {
            return false;
        };
        let PathState::Member(id) = c.role.state else {
            return false;
        };
        c.role.status = status;
        c.role.precedence = precedence;
        c.role.status_seq += 1;
        self.coupling
            .set_active(&c.path.gauges, status == PathStatus::Available);
        let frame = Frame::PathStatus(PathStatusFrame {
            path_id: id,
            status_seq: c.role.status_seq,
            status,
            precedence,
        });
        c.path.send_control(&frame);
        self.paths.touch(h);
        true
    }

    /// Abandons path `slot`: ABANDON to the server (on another path when possible) and the
    /// connection is closed.
    pub fn abandon_path(&mut self, now: Instant, slot: usize) -> bool {
        let Some(h) = self.slots.get(slot).copied().flatten() else {
            return false;
        };
        let Some(PathState::Member(id)) = self.paths.get(h).map(|c| c.role.state) else {
            return false;
        };
        let frame = Frame::Abandon(Abandon {
            path_id: id,
            error_code: codes::ABANDONED,
        });
        for c in self.paths.entries_mut() {
            if matches!(c.role.state, PathState::Member(_)) {
                c.path.send_control(&frame);
            }
        }
        self.close_conn(now, h, codes::ABANDONED);
        self.paths.touch_all();
        true
    }

    /// Closes every path.
    pub fn close(&mut self, now: Instant) {
        for h in self.paths.handles() {
            self.close_conn(now, h, codes::NO_ERROR);
        }
    }

    fn close_conn(&mut self, now: Instant, h: ConnectionHandle, code: u32) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if c.role.state == PathState::Closed {
            return;
        }
        c.path
            .conn
            .close(now, VarInt::from_u32(code), bytes::Bytes::new());
        self.paths.touch(h);
        self.path_gone(h);
    }

    fn path_gone(&mut self, h: ConnectionHandle) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if c.role.state == PathState::Closed {
            return;
        }
        if let PathState::Member(id) = c.role.state {
            self.receiver.remove_path(id);
        }
        self.coupling.detach(&c.path.gauges);
        let was_hello = c.role.state == PathState::Hello;
        c.role.state = PathState::Closed;
        let slot = c.role.slot;
        // Half-received units of this path are forgotten, their buffers emptied: a stale
        // prefix in a reused buffer would turn the next unit into a malformed frame and lose
        // it (issue 14: a reliable audio unit lost this way was recovered only by the safety
        // timeout, if at all). `UnitStreams` empties every buffer it takes back.
        c.role.units.clear();
        self.events.push_back(ClientEvent::PathClosed { slot });
        let all_closed = self
            .paths
            .entries()
            .all(|c| c.role.state == PathState::Closed);
        if all_closed {
            if self.start_deadline.take().is_some() {
                self.events
                    .push_back(ClientEvent::SessionFailed(StartError::AllPathsClosed));
            }
            self.events.push_back(ClientEvent::SessionClosed);
        } else if was_hello && self.token.is_none() {
            // The HELLO path died before SESSION: the next ready path starts the session.
            if let Some(next) = self.waiting_conns().first().copied() {
                self.send_hello(next);
            }
        }
    }

    /// Queues raw bytes on the control stream of path `slot`, as if they were frames this
    /// client encoded (fuzzing hook: lets a fuzz target put arbitrary plaintext on a real,
    /// encrypted control stream). False if the path has no connection or control stream.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn fuzz_send_control(&mut self, slot: usize, bytes: &[u8]) -> bool {
        let Some(h) = self.slots.get(slot).copied().flatten() else {
            return false;
        };
        let Some(c) = self.paths.get_mut(h) else {
            return false;
        };
        if c.path.control.is_none() {
            return false;
        }
        c.path.send_control_bytes(bytes);
        self.paths.touch(h);
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
        if self.config.camp.routed_joins && self.routing_cid.is_none() {
            // Only the first path is connected until the session is up, so a long header
            // now comes from its server.
            self.routing_cid = crate::cid::scid_of_long_header(data).map(ConnectionId::new);
        }
        match self.paths.handle(now, local, remote, ecn, data) {
            Dispatch::Conn(h) => self.process_conn(now, h),
            // A client accepts no connections, and answers nothing statelessly.
            Dispatch::New(incoming) => self.paths.quinn().ignore(incoming),
            Dispatch::Response(..) | Dispatch::Unhandled => {}
        }
        self.after_input(now);
        // A client has a handful of paths: whatever this changed, each is looked at once.
        self.paths.touch_all();
    }

    fn process_conn(&mut self, now: Instant, h: ConnectionHandle) {
        let now_us = self.clock.micros(now);
        self.paths.touch(h);
        loop {
            let Some(ev) = self.paths.next_event(h) else {
                break;
            };
            let Some(c) = self.paths.get_mut(h) else {
                return;
            };
            match ev {
                Event::Connected => {
                    // Streams can only be opened once the server's transport parameters are
                    // known, so HELLO or JOIN goes out from here.
                    c.path.established_us = Some(now_us);
                    self.handshake_done(h);
                }
                Event::ConnectionLost { reason } => {
                    c.path.lost = true;
                    let slot = c.role.slot;
                    let srtt = c.path.conn.rtt();
                    self.path_gone(h);
                    // Lost to the network (not closed by either end on purpose): try again
                    // while another path keeps the session.
                    let by_network = matches!(
                        reason,
                        quinn_proto::ConnectionError::TimedOut
                            | quinn_proto::ConnectionError::Reset
                    );
                    if by_network && self.slots[slot] == Some(h) {
                        self.schedule_reconnect(now, slot, srtt);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                    while let Some(c) = self.paths.get_mut(h) {
                        let Some(id) = c.path.conn.streams().accept(Dir::Uni) else {
                            break;
                        };
                        c.role.units.open(id);
                        self.read_unit_stream(now, h, id);
                    }
                }
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    while let Some(id) = c.path.conn.streams().accept(Dir::Bi) {
                        let _ = c
                            .path
                            .conn
                            .recv_stream(id)
                            .stop(VarInt::from_u32(codes::PROTOCOL_VIOLATION));
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    if Some(id) == c.path.control {
                        self.read_control(now, h);
                    } else {
                        self.read_unit_stream(now, h, id);
                    }
                }
                Event::Stream(StreamEvent::Writable { id }) if Some(id) == c.path.control => {
                    c.path.flush_control();
                }
                Event::DatagramReceived => self.read_datagrams(now, h),
                Event::Stream(_) | Event::HandshakeDataReady | Event::DatagramsUnblocked => {}
            }
        }
        if let Some(c) = self.paths.get_mut(h) {
            if c.path.conn.is_drained() {
                c.path.drained = true;
            }
        }
    }

    fn send_join(&mut self, h: ConnectionHandle) {
        let (Some(token), Some(key)) = (self.token, self.join_key.clone()) else {
            return;
        };
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        let mut binding = [0u8; 32];
        if c.path
            .conn
            .crypto_session()
            .export_keying_material(&mut binding, JOIN_BINDING_LABEL, &token)
            .is_err()
        {
            return;
        }
        let mut nonce = [0u8; 16];
        self.rng.fill(&mut nonce);
        let join = Join {
            token,
            nonce,
            mac: key.sign(&token, &nonce, &binding),
        };
        c.role.join = Some(join);
        c.role.state = PathState::Joining;
        c.path.open_control();
        c.path.send_control(&Frame::Join(join));
    }

    fn read_control(&mut self, now: Instant, h: ConnectionHandle) {
        self.paths.read_control(h);
        while let Some(item) = self.paths.next_control(h) {
            match item {
                ControlItem::Frame(frame) => {
                    self.on_control(now, h, frame);
                    // A frame that closed the path ends the reading of its stream.
                    if self
                        .paths
                        .get(h)
                        .is_none_or(|c| c.role.state == PathState::Closed)
                    {
                        return;
                    }
                }
                ControlItem::Malformed => {
                    // A frame that does not decode or that the reader refused (a bad header,
                    // or one announcing more than a control frame may be), or the control
                    // stream ended or was reset: counted like the server counts it, so a
                    // peer's framing errors show in the counters.
                    self.counters.malformed_control += 1;
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
            }
        }
    }

    fn on_control(&mut self, now: Instant, h: ConnectionHandle, frame: ControlFrame) {
        let now_us = self.clock.micros(now);
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        // Address advertisements are accepted on any path in any state (they come from
        // the server over TLS); what they say is applied only if newer, never a violation.
        let update = match frame {
            ControlFrame::AddAddress(a) => Some(self.addr_book.add(&a)),
            ControlFrame::RemoveAddress(r) => Some(self.addr_book.remove(&r)),
            _ => None,
        };
        if let Some(update) = update {
            match update {
                AddrUpdate::Added(id, addr) => {
                    self.events
                        .push_back(ClientEvent::AddressAdded { id, addr });
                }
                AddrUpdate::Removed(id) => {
                    self.events.push_back(ClientEvent::AddressRemoved { id });
                }
                AddrUpdate::Unchanged => {}
                AddrUpdate::Stale => self.counters.stale_address_updates += 1,
            }
            return;
        }
        match (c.role.state, frame) {
            (PathState::Hello, ControlFrame::Session(s)) => {
                // The join key comes from the connection that carried HELLO, whichever slot
                // it is: the server derives it from the same connection.
                let mut secret = [0u8; 32];
                if c.path
                    .conn
                    .crypto_session()
                    .export_keying_material(&mut secret, JOIN_KEY_LABEL, &s.token)
                    .is_err()
                {
                    self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
                    return;
                }
                c.role.state = PathState::Member(s.path_id);
                let slot = c.role.slot;
                self.coupling.attach(&c.path.gauges, 0, slot);
                if !self.config.shared_clock {
                    // local = sender + offset; the SESSION frame took about half an RTT.
                    let owd = c.path.conn.rtt().as_micros() as i64 / 2;
                    let offset = now_us as i64 - (s.server_time_us as i64 + owd);
                    self.receiver.set_clock_offset(offset);
                }
                self.receiver
                    .set_path_rtt(s.path_id, c.path.conn.rtt().as_micros() as u32);
                self.token = Some(s.token);
                self.join_key = Some(JoinKey::from_exporter(&secret));
                self.start_deadline = None;
                self.events.push_back(ClientEvent::SessionEstablished);
                self.events.push_back(ClientEvent::PathJoined {
                    slot,
                    id: s.path_id,
                });
                // Paths whose handshake finished while HELLO was outstanding join now; the
                // others join when theirs completes.
                for w in self.waiting_conns() {
                    self.send_join(w);
                }
                if self.config.camp.routed_joins {
                    self.connect_joiners(now);
                }
            }
            (PathState::Joining, ControlFrame::JoinOk(ok)) => {
                c.role.state = PathState::Member(ok.path_id);
                let slot = c.role.slot;
                self.reconnect_attempts[slot] = 0;
                self.coupling.attach(&c.path.gauges, 0, slot);
                self.receiver
                    .set_path_rtt(ok.path_id, c.path.conn.rtt().as_micros() as u32);
                self.events.push_back(ClientEvent::PathJoined {
                    slot,
                    id: ok.path_id,
                });
            }
            (PathState::Member(_), ControlFrame::Rtt(r)) => {
                self.receiver.set_path_rtt(r.path_id, r.smoothed_us);
            }
            (PathState::Member(_), ControlFrame::PathStatus(ps)) => {
                for c in self.paths.entries_mut() {
                    if c.role.state == PathState::Member(ps.path_id)
                        && ps.status_seq > c.role.status_seq
                    {
                        c.role.status_seq = ps.status_seq;
                        c.role.status = ps.status;
                        c.role.precedence = ps.precedence;
                        self.coupling
                            .set_active(&c.path.gauges, ps.status == PathStatus::Available);
                    }
                }
            }
            (PathState::Member(_), ControlFrame::Abandon(a)) => {
                let target = self
                    .paths
                    .iter()
                    .find(|(_, c)| c.role.state == PathState::Member(a.path_id))
                    .map(|(h, _)| h);
                if let Some(t) = target {
                    self.close_conn(now, t, codes::ABANDONED);
                }
            }
            _ => {
                self.counters.malformed_control += 1;
                self.close_conn(now, h, codes::PROTOCOL_VIOLATION);
            }
        }
    }

    fn read_unit_stream(&mut self, now: Instant, h: ConnectionHandle, id: StreamId) {
        let Some(c) = self.paths.get_mut(h) else {
            return;
        };
        if !c.role.units.is_open(id) {
            return;
        }
        let mut finished = false;
        let mut reset = false;
        let mut refused = None;
        let mut stream = c.path.conn.recv_stream(id);
        match stream.read(true) {
            Ok(mut chunks) => {
                loop {
                    match chunks.next(MAX_UNIT_FRAME) {
                        Ok(Some(chunk)) => {
                            if let Err(e) = c.role.units.push(id, chunk.offset, &chunk.bytes) {
                                refused = Some(e);
                                break;
                            }
                        }
                        Ok(None) => {
                            finished = true;
                            break;
                        }
                        Err(quinn_proto::ReadError::Blocked) => break,
                        Err(quinn_proto::ReadError::Reset(_)) => {
                            reset = true;
                            break;
                        }
                    }
                }
                let _ = chunks.finalize();
            }
            Err(_) => reset = true,
        }
        if let Some(e) = refused {
            // `push` dropped the stream already.
            let _ = c
                .path
                .conn
                .recv_stream(id)
                .stop(VarInt::from_u32(codes::UNIT_REFUSED));
            match e {
                ChunkError::Oversized { .. } => self.counters.oversized_units += 1,
                // quinn reads in order, so neither happens; counted rather than assumed.
                ChunkError::OutOfOrder { .. } | ChunkError::NotOpen => {
                    self.counters.malformed_units += 1;
                }
            }
            return;
        }
        if reset {
            c.role.units.drop_stream(id);
            self.counters.reset_units += 1;
            return;
        }
        if !finished {
            return;
        }
        let path = c.role.unit_path_id();
        if let Some(buf) = c.role.units.finish(id) {
            self.deliver(now, path, &buf);
            if let Some(c) = self.paths.get_mut(h) {
                c.role.units.recycle(buf);
            }
        }
    }

    fn read_datagrams(&mut self, now: Instant, h: ConnectionHandle) {
        loop {
            let Some(c) = self.paths.get_mut(h) else {
                return;
            };
            let path = c.role.unit_path_id();
            let Some(d) = c.path.conn.datagrams().recv() else {
                return;
            };
            self.deliver(now, path, &d);
        }
    }

    /// Decodes one unit frame and hands it to the receiver.
    fn deliver(&mut self, now: Instant, path: PathId, bytes: &[u8]) {
        let now_us = self.clock.micros(now);
        match decode_unit(bytes) {
            Ok((meta, payload)) => {
                if self.receiver.on_unit(now_us, path, meta, payload).is_err() {
                    self.counters.refused_units += 1;
                }
            }
            Err(_) => self.counters.malformed_units += 1,
        }
    }

    /// Sends what the receiver wants sent: ACKs and FEEDBACK, on the member path with the
    /// lowest RTT that is not suspected failed.
    fn after_input(&mut self, now: Instant) {
        let now_us = self.clock.micros(now);
        let min_suspect = self.config.camp.min_suspect_after.as_micros() as u64;
        let best = self
            .paths
            .iter_mut()
            .filter_map(|(h, c)| {
                if !matches!(c.role.state, PathState::Member(_)) || c.path.lost {
                    return None;
                }
                let suspect = c.path.update_suspect(now_us, min_suspect);
                Some((suspect, c.path.conn.rtt(), h.0))
            })
            .min()
            .map(|(_, _, i)| ConnectionHandle(i));
        let Some(best) = best else {
            // No path to carry them: a due ACK or FEEDBACK left pending would keep
            // `poll_timeout` in the past, and the caller would spin on it.
            while self.receiver.poll_ack(now_us).is_some() {
                self.counters.signals_dropped += 1;
            }
            if self.receiver.poll_feedback(now_us).is_some() {
                self.counters.signals_dropped += 1;
            }
            return;
        };
        while let Some(ack) = self.receiver.poll_ack(now_us) {
            let n = match camp_wire::emit_ack(
                ack.modality,
                ack.cumulative,
                ack.ranges,
                &mut self.ack_buf,
            ) {
                Ok(n) => n,
                Err(_) => break,
            };
            if let Some(c) = self.paths.get_mut(best) {
                c.path.send_control_bytes(&self.ack_buf[..n]);
                self.counters.acks_sent += 1;
            }
        }
        if let Some(fb) = self.receiver.poll_feedback(now_us) {
            let frame = Frame::Feedback(Feedback {
                interval_us: fb.interval_us,
                playout_delay_us: fb.playout_delay_us,
                buffer_occupancy_us: fb.buffer_occupancy_us,
                skew_mean_us: fb.skew_mean_us,
                skew_p95_us: fb.skew_p95_us,
                late_units: fb.late_units,
                lost_units: fb.lost_units,
            });
            if let Some(c) = self.paths.get_mut(best) {
                c.path.send_control(&frame);
                self.counters.feedback_sent += 1;
            }
        }
    }

    /// Earliest time [`handle_timeout`](Self::handle_timeout) must be called.
    #[must_use]
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // The client looks at every path's timer below; the dirty list only needs emptying.
        while self.paths.pop_dirty().is_some() {}
        let mut next = self.receiver.poll_timeout().map(|t| self.clock.instant(t));
        if let Some(t) = self.start_deadline {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        for t in self.reconnect_at.iter().flatten() {
            next = Some(next.map_or(*t, |n| n.min(*t)));
        }
        for c in self.paths.entries_mut() {
            if let Some(t) = c.path.conn.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_us: Micros = self.clock.micros(now);
        for h in self.paths.handles() {
            let Some(c) = self.paths.get_mut(h) else {
                continue;
            };
            if c.path.conn.poll_timeout().is_some_and(|t| t <= now) {
                c.path.conn.handle_timeout(now);
            }
            self.process_conn(now, h);
        }
        if self.start_deadline.is_some_and(|t| t <= now) {
            let limit = self.config.camp.session_start_timeout;
            self.fail_start(now, StartError::Timeout(limit));
        }
        for slot in 0..MAX_PATHS {
            if self.reconnect_at[slot].is_some_and(|t| t <= now) {
                self.reconnect_at[slot] = None;
                self.reconnect(now, slot);
            }
        }
        self.receiver.handle_timeout(now_us);
        self.after_input(now);
        self.paths.touch_all();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SchedulerKind;
    use crate::server::{Server, ServerConfig};
    use std::time::Duration;

    /// A server and a one-path client on a lossless in-memory wire, run until the session
    /// is up.
    fn session() -> (Server, Client, Instant) {
        let identity = crate::tls::self_signed(&["camp.test"]).expect("certificate");
        let roots = identity.chain.clone();
        let epoch = Instant::now();
        let server_addr: SocketAddr = "198.18.0.1:4433".parse().expect("address");
        let client_addr: SocketAddr = "198.19.0.1:5000".parse().expect("address");
        let mut server = Server::new(
            ServerConfig {
                camp: CampConfig::default(),
                local_addrs: vec![server_addr],
                crypto: crate::tls::server_crypto(identity).expect("server tls"),
                scheduler: SchedulerKind::Camp.factory(),
                rng_seed: [1; 32],
                lb: None,
            },
            epoch,
        );
        let client = Client::new(
            ClientConfig {
                camp: CampConfig::default(),
                paths: vec![PathSpec {
                    local: client_addr,
                    remote: server_addr,
                }],
                crypto: crate::tls::client_crypto(&roots, false).expect("client tls"),
                server_name: "camp.test".into(),
                receiver: ReceiverConfig::default(),
                rng_seed: [2; 32],
                shared_clock: true,
            },
            epoch,
            epoch,
        )
        .expect("client");
        let mut client = client;
        let mut now = epoch;
        for _ in 0..200 {
            if client.session_token().is_some() {
                return (server, client, now);
            }
            shuttle(&mut server, &mut client, &mut now);
        }
        panic!("no session");
    }

    /// Moves every pending datagram across (1 ms later) and runs due timers.
    fn shuttle(server: &mut Server, client: &mut Client, now: &mut Instant) {
        let mut buf = Vec::new();
        let mut to_server = Vec::new();
        while let Some(t) = client.poll_transmit(*now, 1, &mut buf) {
            to_server.push((t, buf[..t.size].to_vec()));
        }
        let mut to_client = Vec::new();
        while let Some(t) = server.poll_transmit(*now, 1, &mut buf) {
            to_client.push((t, buf[..t.size].to_vec()));
        }
        *now += Duration::from_millis(1);
        for (t, d) in to_server {
            server.handle_datagram(*now, t.destination, t.source, None, &d);
        }
        for (t, d) in to_client {
            client.handle_datagram(*now, t.destination, t.source, None, &d);
        }
        if server.poll_timeout().is_some_and(|t| t <= *now) {
            server.handle_timeout(*now);
        }
        if client.poll_timeout().is_some_and(|t| t <= *now) {
            client.handle_timeout(*now);
        }
    }

    /// Regression (fuzz target `control_after_join`): a control frame whose header the
    /// frame reader refuses closed the path without counting it as malformed.
    #[test]
    fn a_control_frame_header_the_reader_refuses_is_counted_and_closes_the_path() {
        for header in [
            // PATH_STATUS announcing a 130-byte body (its body is 10 bytes).
            [0x01, 0x21, 0x00, 0x00, 0x00, 0x82],
            // DATA announcing more than a control frame may hold.
            [0x01, 0x01, 0x00, 0x1e, 0x01, 0x23],
        ] {
            let (mut server, mut client, mut now) = session();
            let sid = server.sessions().next().expect("a session");
            assert!(server.fuzz_send_control(sid, PathId(0), &header));
            for _ in 0..20 {
                shuttle(&mut server, &mut client, &mut now);
            }
            assert_eq!(client.counters().malformed_control, 1, "{header:?}");
            let mut closed = false;
            while let Some(ev) = client.poll_event() {
                closed |= ev == ClientEvent::PathClosed { slot: 0 };
            }
            assert!(closed, "{header:?}: path not closed");
        }
    }
    /// A replayed (or overtaken) ADD_ADDRESS / REMOVE_ADDRESS is counted and ignored, and
    /// neither frame is ever a protocol violation for the client.
    #[test]
    fn stale_address_updates_are_ignored_and_never_close_the_path() {
        let (mut server, mut client, mut now) = session();
        for _ in 0..20 {
            shuttle(&mut server, &mut client, &mut now);
        }
        let server_addr: SocketAddr = "198.18.0.1:4433".parse().expect("address");
        assert_eq!(client.advertised_addresses(), vec![(0, server_addr)]);
        let sid = server.sessions().next().expect("a session");
        let frame_bytes = |f: Frame<'_>| {
            let mut b = vec![0; f.buffer_len()];
            f.emit(&mut b).expect("encodes");
            b
        };
        let other: SocketAddr = "198.18.0.9:4433".parse().expect("address");
        // A replay of the server's own seq-1 ADD for id 0 with another address, a lower-seq
        // REMOVE of id 0, then a genuinely newer ADD of id 1.
        let stale_add = frame_bytes(Frame::AddAddress(camp_wire::AddAddress {
            address_id: 0,
            seq: 1,
            addr: other,
        }));
        let stale_remove = frame_bytes(Frame::RemoveAddress(camp_wire::RemoveAddress {
            address_id: 0,
            seq: 0,
        }));
        let fresh = frame_bytes(Frame::AddAddress(camp_wire::AddAddress {
            address_id: 1,
            seq: 7,
            addr: other,
        }));
        let bytes = [stale_add, stale_remove, fresh].concat();
        assert!(server.fuzz_send_control(sid, PathId(0), &bytes));
        for _ in 0..20 {
            shuttle(&mut server, &mut client, &mut now);
        }
        assert_eq!(client.counters().stale_address_updates, 2);
        assert_eq!(client.counters().malformed_control, 0);
        assert_eq!(
            client.advertised_addresses(),
            vec![(0, server_addr), (1, other)]
        );
        let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
        assert!(events.contains(&ClientEvent::AddressAdded { id: 1, addr: other }));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, ClientEvent::PathClosed { .. }))
        );
        assert!(!events.contains(&ClientEvent::AddressRemoved { id: 0 }));
    }
}
