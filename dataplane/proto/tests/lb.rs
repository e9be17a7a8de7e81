//! Two CAMP servers behind a QUIC-LB style balancer (issue 10): each server issues CIDs
//! that carry its own server id, a stateless "balancer" function routes every
//! client-to-server datagram by the CID it is addressed to, and a two-path session (the
//! second path joining with JOIN) must land entirely on one server while units flow.
//!
//! The network is a small variant of the [`pair`](../pair) harness: one client with two
//! paths (two local addresses), two servers sharing one virtual address, a fixed one-way
//! delay, a virtual clock, nothing lost or reordered.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camp_proto::cid::{CidLayout, LbConfig, ServerId, dcid_of_packet};
use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::join::JoinRefusal;
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use camp_proto::store::UnitSubmit;
use camp_wire::{CaptureId, Modality, UnitFlags};

const DELAY: Duration = Duration::from_millis(5);
/// The site's CID layout: config rotation 2, two-octet server ids (host, engine), an
/// eight-octet nonce, length encoded in the first octet.
const CONFIG_ID: u8 = 2;
const NONCE_LEN: usize = 8;
/// CIDs are retired after this, so the servers issue fresh ones (NEW_CONNECTION_ID) that
/// the client must switch to during the test.
const CID_LIFETIME: Duration = Duration::from_millis(300);

/// Where the balancer sends a datagram whose CID it cannot route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    /// Always this server.
    Server(usize),
    /// A hash of the client's address (the usual layer-4 choice).
    SourceHash,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    Server(usize),
    Client,
}

struct InFlight {
    at: Instant,
    to: To,
    src: SocketAddr,
    dst: SocketAddr,
    data: Vec<u8>,
}

/// How the balancer placed client-to-server datagrams.
#[derive(Default, Debug)]
struct Routing {
    /// Routed by the server id in their destination CID, per server.
    by_cid: [u64; 2],
    /// Not decodable (a client's first Initials): sent to the fallback server.
    fallback: u64,
    /// Fallback datagrams that were not long-header Initials (should stay 0).
    fallback_not_initial: u64,
    /// Datagrams each server received.
    received: [u64; 2],
    /// Distinct short-header destination CIDs the client used, per server.
    short_cids: [HashSet<Vec<u8>>; 2],
}

struct Site {
    servers: [Server; 2],
    ids: [ServerId; 2],
    layout: CidLayout,
    /// Where undecodable datagrams go.
    fallback: Fallback,
    client: Client,
    now: Instant,
    wire: VecDeque<InFlight>,
    buf: Vec<u8>,
    routing: Routing,
    /// Source CIDs the servers put in long headers, per server.
    server_scids: [Vec<Vec<u8>>; 2],
    server_events: [Vec<ServerEvent>; 2],
    client_events: Vec<ClientEvent>,
    /// Steps without the clock moving, and steps in all (livelock guards).
    still: u32,
    steps: u64,
}

fn server_id(engine: u8) -> ServerId {
    ServerId::for_engine(&[0x0a], engine).expect("two octets")
}

impl Site {
    fn new(fallback: Fallback, routed_joins: bool) -> Self {
        let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
        let roots = identity.chain.clone();
        let client_crypto = camp_proto::tls::client_crypto(&roots, false).expect("client tls");
        let server_crypto = camp_proto::tls::server_crypto(identity).expect("server tls");
        let now = Instant::now();
        let vip: SocketAddr = "10.0.0.100:4433".parse().expect("address");
        let ids = [server_id(0), server_id(1)];
        let server = |k: usize| {
            let lb = LbConfig::new(CONFIG_ID, ids[k], NONCE_LEN)
                .expect("layout")
                .with_length_encoding(true)
                .with_cid_lifetime(Some(CID_LIFETIME));
            Server::new(
                ServerConfig {
                    camp: CampConfig::default(),
                    local_addrs: vec![vip],
                    crypto: server_crypto.clone(),
                    scheduler: SchedulerKind::Camp.factory(),
                    rng_seed: [10 + k as u8; 32],
                    lb: Some(lb),
                },
                now,
            )
        };
        let servers = [server(0), server(1)];
        let layout = CidLayout::new(CONFIG_ID, 2, NONCE_LEN, true).expect("layout");
        let client = Client::new(
            ClientConfig {
                camp: CampConfig {
                    routed_joins,
                    ..CampConfig::default()
                },
                paths: vec![
                    PathSpec {
                        local: "10.1.0.1:5000".parse().expect("address"),
                        remote: vip,
                    },
                    PathSpec {
                        local: "10.2.0.7:6000".parse().expect("address"),
                        remote: vip,
                    },
                ],
                crypto: client_crypto,
                server_name: "camp.test".into(),
                receiver: camp_recv::ReceiverConfig::default(),
                rng_seed: [20; 32],
                shared_clock: true,
            },
            now,
            now,
        )
        .expect("client start");
        Self {
            servers,
            ids,
            layout,
            fallback,
            client,
            now,
            wire: VecDeque::new(),
            buf: Vec::with_capacity(64 * 1024),
            routing: Routing::default(),
            server_scids: [Vec::new(), Vec::new()],
            server_events: [Vec::new(), Vec::new()],
            client_events: Vec::new(),
            still: 0,
            steps: 0,
        }
    }

    /// The balancer: the server whose id the destination CID carries, else the fallback.
    /// It keeps no state and never looks at addresses for a routable CID, so a path whose
    /// client address changes still reaches its server.
    fn balance(&mut self, src: SocketAddr, data: &[u8]) -> usize {
        let routed = dcid_of_packet(data, self.layout.cid_len())
            .and_then(|cid| self.layout.route(cid))
            .and_then(|id| self.ids.iter().position(|&s| s == id));
        match routed {
            Some(k) => {
                self.routing.by_cid[k] += 1;
                if data[0] & 0x80 == 0 {
                    let cid = dcid_of_packet(data, self.layout.cid_len()).expect("routed");
                    self.routing.short_cids[k].insert(cid.to_vec());
                }
                k
            }
            None => {
                self.routing.fallback += 1;
                // QUIC v1 long header of type Initial: 0b1100_xxxx.
                if data[0] & 0xf0 != 0xc0 {
                    self.routing.fallback_not_initial += 1;
                }
                match self.fallback {
                    Fallback::Server(k) => k,
                    Fallback::SourceHash => {
                        let SocketAddr::V4(v4) = src else {
                            return 0;
                        };
                        let sum: u32 = v4.ip().octets().iter().map(|&o| u32::from(o)).sum();
                        ((sum + u32::from(v4.port())) % 2) as usize
                    }
                }
            }
        }
    }

    fn collect(&mut self) {
        for k in 0..2 {
            while let Some(t) = self.servers[k].poll_transmit(self.now, 1, &mut self.buf) {
                let data = self.buf[..t.size].to_vec();
                if data[0] & 0x80 != 0 {
                    // Long header: DCID length at 5, SCID length right after the DCID.
                    let dl = usize::from(data[5]);
                    let sl = usize::from(data[6 + dl]);
                    self.server_scids[k].push(data[7 + dl..7 + dl + sl].to_vec());
                }
                self.wire.push_back(InFlight {
                    at: self.now + DELAY,
                    to: To::Client,
                    src: t.source,
                    dst: t.destination,
                    data,
                });
            }
            while let Some(ev) = self.servers[k].poll_event() {
                self.server_events[k].push(ev);
            }
        }
        while let Some(t) = self.client.poll_transmit(self.now, 1, &mut self.buf) {
            let data = self.buf[..t.size].to_vec();
            let k = self.balance(t.source, &data);
            self.wire.push_back(InFlight {
                at: self.now + DELAY,
                to: To::Server(k),
                src: t.source,
                dst: t.destination,
                data,
            });
        }
        while let Some(ev) = self.client.poll_event() {
            self.client_events.push(ev);
        }
    }

    fn step(&mut self, limit: Instant) -> bool {
        self.collect();
        let mut next = self.wire.front().map(|d| d.at);
        let timers = [
            self.servers[0].poll_timeout(),
            self.servers[1].poll_timeout(),
            self.client.poll_timeout(),
        ];
        for t in timers.into_iter().flatten() {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        let Some(t) = next.filter(|&t| t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        // A timer that stays due after handling (see the pair harness) must not hold the
        // clock still: after a few such steps move on by a millisecond.
        let t = if t <= self.now {
            self.still += 1;
            if self.still > 3 {
                self.still = 0;
                self.now + Duration::from_millis(1)
            } else {
                t
            }
        } else {
            self.still = 0;
            t
        };
        if t > limit {
            self.now = limit;
            return false;
        }
        self.steps += 1;
        assert!(self.steps < 2_000_000, "the site does not settle");
        self.now = self.now.max(t);
        let now = self.now;
        while self.wire.front().is_some_and(|d| d.at <= now) {
            let d = self.wire.pop_front().expect("front checked");
            match d.to {
                To::Server(k) => {
                    self.routing.received[k] += 1;
                    self.servers[k].handle_datagram(now, d.dst, d.src, None, &d.data);
                }
                To::Client => self
                    .client
                    .handle_datagram(now, d.dst, d.src, None, &d.data),
            }
        }
        for s in &mut self.servers {
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
        self.collect();
        true
    }

    fn run_until(&mut self, within: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
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
}

fn unit(m: Modality, sync_index: u32, gen_time_us: u64, payload: &[u8]) -> UnitSubmit<'_> {
    UnitSubmit {
        modality: m,
        reliability: m.default_reliability(),
        flags: UnitFlags::empty(),
        sync_index,
        gen_time_us,
        deadline_us: 400_000,
        capture_id: CaptureId(0),
        payload,
    }
}

/// Opens the two-path session with undecodable datagrams sent to `fallback`, streams
/// units for two seconds, and checks everything stayed on that one server.
fn two_path_session_stays_on_one_server(fallback: usize) {
    let mut site = Site::new(Fallback::Server(fallback), false);
    let other = 1 - fallback;
    let joined = site.run_until(Duration::from_secs(3), |s| {
        s.client_events
            .iter()
            .filter(|e| matches!(e, ClientEvent::PathJoined { .. }))
            .count()
            == 2
    });
    assert!(joined, "both paths joined: {:?}", site.client_events);
    let session: SessionId = site.servers[fallback]
        .sessions()
        .next()
        .expect("the session is on the server the first Initials went to");
    assert_eq!(site.servers[fallback].paths(session).len(), 2);
    assert!(
        site.server_events[fallback].contains(&ServerEvent::SessionOpened(session)),
        "{:?}",
        site.server_events[fallback]
    );

    // Units over both paths for two seconds (several CID lifetimes).
    let payload = vec![0x5a_u8; 3_000];
    let start = site.now;
    let mut sent = 0u64;
    for k in 0..50u32 {
        let now = site.now;
        let us = site.servers[fallback].clock().micros(now);
        for (m, size) in [
            (Modality::Text, 40),
            (Modality::Audio, 160),
            (Modality::Video, 3_000),
        ] {
            site.servers[fallback]
                .send_unit(now, session, &unit(m, k, us, &payload[..size]))
                .expect("unit accepted");
            sent += 1;
        }
        let until = start + Duration::from_millis(40 * u64::from(k + 1));
        while site.step(until) {}
    }
    let acked = site.run_until(Duration::from_secs(2), |s| {
        s.servers[fallback].pending_units(session) == 0
            && s.servers[fallback].unacked_reliable(session) == 0
    });
    assert!(acked, "every unit acknowledged");
    let received = site.client.receiver().counters().units_received;
    assert!(
        received >= sent * 9 / 10,
        "units flowed: {received} of {sent} received"
    );
    let paths = site.servers[fallback].paths(session);
    assert_eq!(paths.len(), 2, "both paths still up");

    // The session and everything addressed to it stayed on one server.
    let r = &site.routing;
    println!(
        "server {fallback}: {} datagrams routed by CID, {} by fallback, {} distinct short \
         CIDs, {received}/{sent} units received",
        r.by_cid[fallback],
        r.fallback,
        r.short_cids[fallback].len()
    );
    assert_eq!(site.servers[other].session_count(), 0);
    assert_eq!(site.servers[other].counters().sessions_opened, 0);
    assert_eq!(r.received[other], 0, "nothing reached the other server");
    assert_eq!(r.by_cid[other], 0);
    assert!(r.by_cid[fallback] > 100, "routed by CID: {:?}", r.by_cid);
    // Only each path's first Initial flight carries the client's random CID.
    assert_eq!(r.fallback_not_initial, 0);
    assert!(r.fallback >= 2 && r.fallback <= 6, "{r:?}");
    // The client moved on to CIDs issued later (NEW_CONNECTION_ID): more than one per
    // path, every one of them routable to its server.
    assert!(
        r.short_cids[fallback].len() > 2,
        "fresh CIDs in use: {}",
        r.short_cids[fallback].len()
    );
    // Every CID the server put in a long header is its own.
    assert!(!site.server_scids[fallback].is_empty());
    for cid in &site.server_scids[fallback] {
        assert_eq!(
            site.layout.route(cid),
            Some(site.ids[fallback]),
            "{cid:02x?}"
        );
    }
}

#[test]
fn two_path_session_lands_on_server_zero() {
    two_path_session_stays_on_one_server(0);
}

#[test]
fn two_path_session_lands_on_server_one() {
    two_path_session_stays_on_one_server(1);
}

/// The gap docs/scale-out.md describes: a joining path starts its own connection with a
/// random CID, so a 4-tuple hash may send it to a server that does not hold the session,
/// which refuses the JOIN. The client addresses here hash to different servers.
#[test]
fn a_joining_path_hashed_to_another_server_is_refused() {
    let mut site = Site::new(Fallback::SourceHash, false);
    let refused = site.run_until(Duration::from_secs(3), |s| {
        s.server_events
            .iter()
            .flatten()
            .any(|e| matches!(e, ServerEvent::JoinRefused(_)))
    });
    assert!(refused, "{:?}", site.server_events);
    let holder = (0..2)
        .find(|&k| site.servers[k].session_count() == 1)
        .expect("one server holds the session");
    let other = 1 - holder;
    assert_eq!(site.servers[other].session_count(), 0);
    assert!(
        site.server_events[other].contains(&ServerEvent::JoinRefused(JoinRefusal::UnknownSession)),
        "{:?}",
        site.server_events[other]
    );
    let session = site.servers[holder].sessions().next().expect("session");
    assert_eq!(
        site.servers[holder].paths(session).len(),
        1,
        "one path only"
    );
}

/// The same client addresses with `CampConfig::routed_joins`: the joining path's Initial
/// carries a CID made from the server's, so the balancer sends it to the session's server
/// although its address hashes to the other one.
#[test]
fn routed_joins_reach_the_session_server_despite_the_hash() {
    let mut site = Site::new(Fallback::SourceHash, true);
    let joined = site.run_until(Duration::from_secs(3), |s| {
        s.client_events
            .iter()
            .filter(|e| matches!(e, ClientEvent::PathJoined { .. }))
            .count()
            == 2
    });
    assert!(joined, "{:?} {:?}", site.client_events, site.server_events);
    let holder = (0..2)
        .find(|&k| site.servers[k].session_count() == 1)
        .expect("one server holds the session");
    let other = 1 - holder;
    let session = site.servers[holder].sessions().next().expect("session");
    assert_eq!(site.servers[holder].paths(session).len(), 2);
    assert_eq!(
        site.routing.received[other], 0,
        "nothing reached the other server"
    );
    // Only the first path's first Initial went by the hash; the joining path's was routed.
    assert_eq!(site.routing.fallback_not_initial, 0);
    assert!(site.routing.fallback <= 3, "{:?}", site.routing);
    // Units flow over the joined session.
    let payload = [7u8; 160];
    let now = site.now;
    for k in 0..20u32 {
        site.servers[holder]
            .send_unit(now, session, &unit(Modality::Audio, k, 0, &payload))
            .expect("unit accepted");
    }
    let acked = site.run_until(Duration::from_secs(2), |s| {
        s.servers[holder].pending_units(session) == 0
    });
    assert!(acked);
    assert_eq!(site.client.receiver().counters().units_received, 20);
}
