//! An in-process network for camp-proto's own tests (in the manner of quinn-proto's
//! `Pair`): one [`Server`], any number of single-path [`Client`]s, a virtual clock and a
//! fixed one-way delay. Datagrams are shuttled in order; nothing is lost or reordered.
//! camp-sim has the full emulated network; this is the small harness that lets the
//! protocol crate test its own server and client without it.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};

/// One-way delay of every datagram.
pub const DELAY: Duration = Duration::from_millis(5);

/// Where a datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Server,
    Client(usize),
}

struct InFlight {
    at: Instant,
    to: To,
    src: SocketAddr,
    dst: SocketAddr,
    data: Vec<u8>,
}

/// The network.
pub struct Net {
    /// The server under test.
    pub server: Server,
    /// Clients by index (`None` once dropped).
    pub clients: Vec<Option<Client>>,
    /// The virtual clock.
    pub now: Instant,
    epoch: Instant,
    server_addr: SocketAddr,
    client_crypto: std::sync::Arc<quinn_proto::crypto::rustls::QuicClientConfig>,
    by_addr: HashMap<SocketAddr, usize>,
    wire: VecDeque<InFlight>,
    buf: Vec<u8>,
    /// Server events seen, oldest first (the harness drains the server's queue).
    pub server_events: VecDeque<ServerEvent>,
    /// Client events seen, with the client's index.
    pub client_events: VecDeque<(usize, ClientEvent)>,
    /// Clients driven by [`step`](Self::step) (the others are left idle).
    active: Vec<usize>,
    /// Clients ever started (seeds their randomness; indices are reused).
    started: u64,
    /// Steps taken without the clock moving (a livelock guard).
    still: u32,
}

fn seed(tag: u8, n: u64) -> [u8; 32] {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

impl Net {
    /// A server at 10.0.0.1:4433 with the CAMP scheduler and `camp` settings.
    pub fn new(camp: CampConfig) -> Self {
        let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
        let roots = identity.chain.clone();
        // A small resumption cache: it is bounded and server-wide (not per session), and a
        // small one fills within the memory tests' warm-up.
        let crypto = camp_proto::tls::server_crypto_with_cache(identity, 8).expect("server tls");
        let client_crypto = camp_proto::tls::client_crypto(&roots, false).expect("client tls");
        let epoch = Instant::now();
        let server_addr: SocketAddr = "10.0.0.1:4433".parse().expect("address");
        let server = Server::new(
            ServerConfig {
                camp,
                local_addrs: vec![server_addr],
                crypto,
                scheduler: SchedulerKind::Camp.factory(),
                rng_seed: seed(1, 0),
                lb: None,
            },
            epoch,
        );
        Self {
            server,
            clients: Vec::new(),
            now: epoch,
            epoch,
            server_addr,
            client_crypto,
            by_addr: HashMap::new(),
            wire: VecDeque::new(),
            buf: Vec::with_capacity(64 * 1024),
            server_events: VecDeque::new(),
            client_events: VecDeque::new(),
            active: Vec::new(),
            started: 0,
            still: 0,
        }
    }

    /// Starts a single-path client (driven from now on); returns its index.
    pub fn add_client(&mut self, camp: CampConfig) -> usize {
        let i = self
            .clients
            .iter()
            .position(Option::is_none)
            .unwrap_or(self.clients.len());
        self.started += 1;
        let local: SocketAddr =
            SocketAddr::from(([10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000));
        let client = Client::new(
            ClientConfig {
                camp,
                paths: vec![PathSpec {
                    local,
                    remote: self.server_addr,
                }],
                crypto: self.client_crypto.clone(),
                server_name: "camp.test".into(),
                receiver: camp_recv::ReceiverConfig::default(),
                rng_seed: seed(2, self.started),
                shared_clock: true,
            },
            self.now,
            self.epoch,
        )
        .expect("client start");
        if i == self.clients.len() {
            self.clients.push(None);
        }
        self.clients[i] = Some(client);
        self.by_addr.insert(local, i);
        self.active.push(i);
        i
    }

    /// Stops driving client `i` (it stays alive but silent: an idle session).
    pub fn park(&mut self, i: usize) {
        self.active.retain(|&c| c != i);
    }

    /// Drops client `i` and forgets it.
    pub fn drop_client(&mut self, i: usize) {
        self.park(i);
        self.clients[i] = None;
        self.by_addr.retain(|_, &mut c| c != i);
        self.wire.retain(|d| d.to != To::Client(i));
    }

    /// Makes room for `n` clients so that later growth does not show in memory figures.
    pub fn reserve_clients(&mut self, n: usize) {
        self.clients.reserve(n);
        self.by_addr.reserve(n);
        self.active.reserve(n);
    }

    /// Drops every datagram on the wire.
    pub fn clear_wire(&mut self) {
        self.wire = VecDeque::new();
    }

    fn collect(&mut self) {
        while let Some(t) = self.server.poll_transmit(self.now, 1, &mut self.buf) {
            let to = self
                .by_addr
                .get(&t.destination)
                .map_or(To::Server, |&i| To::Client(i));
            if to == To::Server {
                continue; // to nobody we know
            }
            self.wire.push_back(InFlight {
                at: self.now + DELAY,
                to,
                src: t.source,
                dst: t.destination,
                data: self.buf[..t.size].to_vec(),
            });
        }
        for &i in &self.active {
            let Some(c) = self.clients[i].as_mut() else {
                continue;
            };
            while let Some(t) = c.poll_transmit(self.now, 1, &mut self.buf) {
                self.wire.push_back(InFlight {
                    at: self.now + DELAY,
                    to: To::Server,
                    src: t.source,
                    dst: t.destination,
                    data: self.buf[..t.size].to_vec(),
                });
            }
            while let Some(ev) = c.poll_event() {
                self.client_events.push_back((i, ev));
            }
            // Play out what is due, as an application would: units left in the playout
            // queue keep the client's timer in the past and the clock could not move.
            let now_us = c.clock().micros(self.now);
            while c.receiver_mut().poll_playout(now_us).is_some() {}
        }
        while let Some(ev) = self.server.poll_event() {
            self.server_events.push_back(ev);
        }
    }

    /// The next time something happens: a delivery or a timer of the server or an
    /// active client.
    fn next_time(&mut self) -> Option<Instant> {
        let mut next = self.wire.front().map(|d| d.at);
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        consider(self.server.poll_timeout());
        for &i in &self.active {
            if let Some(c) = self.clients[i].as_mut() {
                consider(c.poll_timeout());
            }
        }
        next
    }

    /// Advances to the next event (at most to `limit`) and handles everything due.
    /// Returns false when nothing is left to happen before `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.collect();
        let Some(t) = self.next_time().filter(|&t| t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        // A client timer that stays due after handling (seen with the client's own
        // timers, not the server's) would hold the clock still for ever: after a few
        // such steps move it on by a millisecond.
        let t = if t <= self.now {
            self.still += 1;
            if self.still > 3 {
                self.still = 0;
                if self.now >= limit {
                    return false;
                }
                (self.now + Duration::from_millis(1)).min(limit)
            } else {
                t
            }
        } else {
            self.still = 0;
            t
        };
        self.now = self.now.max(t);
        let now = self.now;
        while self.wire.front().is_some_and(|d| d.at <= now) {
            let d = self.wire.pop_front().expect("front checked");
            match d.to {
                To::Server => self
                    .server
                    .handle_datagram(now, d.dst, d.src, None, &d.data),
                To::Client(i) => {
                    if let Some(c) = self.clients[i].as_mut() {
                        c.handle_datagram(now, d.dst, d.src, None, &d.data);
                    }
                }
            }
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        for &i in &self.active {
            if let Some(c) = self.clients[i].as_mut() {
                if c.poll_timeout().is_some_and(|t| t <= now) {
                    c.handle_timeout(now);
                }
            }
        }
        self.collect();
        true
    }

    /// Steps until `done` holds (checked after every step) or `within` has passed;
    /// returns whether `done` held.
    pub fn run_until(&mut self, within: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let limit = self.now + within;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(limit) {
                return done(self);
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.step(limit) {}
    }

    /// Opens a session with a new client and returns (client index, session id).
    pub fn open_session(&mut self, camp: CampConfig) -> (usize, SessionId) {
        let i = self.add_client(camp);
        let mut opened = None;
        let established = self.run_until(Duration::from_secs(2), |net| {
            while let Some(ev) = net.server_events.pop_front() {
                if let ServerEvent::SessionOpened(s) = ev {
                    opened = Some(s);
                }
            }
            let mut up = false;
            net.client_events.retain(|&(c, ev)| {
                if c == i && ev == ClientEvent::SessionEstablished {
                    up = true;
                }
                c != i
            });
            opened.is_some() && (up || net.client_established(i))
        });
        assert!(established, "session of client {i} did not open");
        (i, opened.expect("opened"))
    }

    fn client_established(&self, i: usize) -> bool {
        self.clients[i]
            .as_ref()
            .is_some_and(|c| c.session_token().is_some())
    }
}
