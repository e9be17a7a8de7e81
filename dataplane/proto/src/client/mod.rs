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

mod adverts;
mod events;
mod links;
pub use links::AddPathError;
mod receive;
mod start;
#[cfg(test)]
mod tests;
mod usage;

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
    /// Paths opened to advertised addresses ([`CampConfig::advertised_paths`]).
    pub advert_paths_opened: u64,
    /// Paths opened from local addresses the application added ([`Client::add_local_path`]).
    pub local_paths_added: u64,
    /// Paths to a withdrawn address abandoned.
    pub advert_paths_abandoned: u64,
    /// Advertised paths not opened because every path slot was taken.
    pub advert_paths_over_budget: u64,
    /// Units that arrived in one stream chunk and went from quinn's buffer to the
    /// receiver with no copy of our own in between (the others are gathered once first).
    pub units_in_one_chunk: u64,
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
    /// Local links reported down ([`Client::local_link_down`]).
    pub link_downs: u64,
    /// Local links reported up again ([`Client::local_link_up`]).
    pub link_ups: u64,
    /// Mobility mode: times a standby path was made the active one (handover).
    pub handovers: u64,
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
    /// Per slot: the local link is down ([`Client::local_link_down`]); no reconnect.
    link_down: [bool; MAX_PATHS],
    /// Per slot: the smoothed RTT of its last connection, the initial RTT of the next one
    /// (so a reconnect's lost Initial is sent again after a PTO of this path, not of the
    /// configured guess).
    last_rtt: [Option<std::time::Duration>; MAX_PATHS],
    /// Per slot: the server ABANDONed its path (its address went away, e.g. a server NIC
    /// failed); it is connected again when the server advertises the address again.
    server_abandoned: [bool; MAX_PATHS],
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
            link_down: [false; MAX_PATHS],
            last_rtt: [None; MAX_PATHS],
            server_abandoned: [false; MAX_PATHS],
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

    /// Mutable access to the receiver (finishing a turn, experiments). A player needs only
    /// [`poll_playout`](Self::poll_playout) and [`next_playout`](Self::next_playout).
    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The next unit due for presentation at `now`, in presentation order (text, audio and
    /// video of one sync index together), with its metadata, payload and whether it was late
    /// or skipped. Call until `None` whenever [`next_playout`](Self::next_playout) comes due
    /// or after input; the session clock conversion is done here.
    pub fn poll_playout(&mut self, now: Instant) -> Option<camp_recv::PlayedUnit<'_>> {
        let now_us = self.clock.micros(now);
        self.receiver.poll_playout(now_us)
    }

    /// When the next queued unit is due for presentation (`None`: nothing queued). It is
    /// also part of [`poll_timeout`](Self::poll_timeout), so an engine that follows that
    /// wakes in time.
    pub fn next_playout(&self) -> Option<Instant> {
        self.receiver
            .next_playout_us()
            .map(|us| self.clock.instant(us))
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
