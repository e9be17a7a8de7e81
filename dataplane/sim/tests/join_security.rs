//! Forged, replayed, late and malformed joins are refused, counted, and their connections
//! closed, while the legitimate session keeps working.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camp_proto::client::ClientEvent;
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::join::JoinRefusal;
use camp_proto::{EcnCodepoint, Transmit};
use camp_sim::{Driven, LinkConfig, PathConfig, Setup, build_with_roots, server_addr};
use camp_wire::{Frame, Join};
use quinn_proto::{ConnectionError, ConnectionHandle, DatagramEvent, Dir, Event};

/// A bare QUIC client (valid TLS, no CAMP logic) that writes chosen bytes on its control
/// stream once connected, optionally after a delay.
struct RawClient {
    endpoint: quinn_proto::Endpoint,
    conn: quinn_proto::Connection,
    handle: ConnectionHandle,
    local: SocketAddr,
    payload: Vec<u8>,
    send_after: Duration,
    connected_at: Option<Instant>,
    sent: bool,
    closed: Rc<RefCell<Option<ConnectionError>>>,
}

impl RawClient {
    fn new(
        roots: &[rustls::pki_types::CertificateDer<'static>],
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        payload: Vec<u8>,
        send_after: Duration,
        closed: Rc<RefCell<Option<ConnectionError>>>,
    ) -> Self {
        let crypto = camp_proto::tls::client_crypto(roots, false).unwrap();
        let mut endpoint = quinn_proto::Endpoint::new(
            Arc::new(quinn_proto::EndpointConfig::default()),
            None,
            false,
            Some([9; 32]),
        );
        let (handle, conn) = endpoint
            .connect(
                now,
                quinn_proto::ClientConfig::new(crypto),
                remote,
                "camp.test",
            )
            .unwrap();
        Self {
            endpoint,
            conn,
            handle,
            local,
            payload,
            send_after,
            connected_at: None,
            sent: false,
            closed,
        }
    }

    fn drive(&mut self, now: Instant) {
        while let Some(ev) = self.conn.poll_endpoint_events() {
            if let Some(cev) = self.endpoint.handle_event(self.handle, ev) {
                self.conn.handle_event(cev);
            }
        }
        while let Some(ev) = self.conn.poll() {
            match ev {
                Event::Connected => self.connected_at = Some(now),
                Event::ConnectionLost { reason } => *self.closed.borrow_mut() = Some(reason),
                _ => {}
            }
        }
        if let (Some(t), false) = (self.connected_at, self.sent) {
            if now >= t + self.send_after {
                if let Some(id) = self.conn.streams().open(Dir::Bi) {
                    let n = self.conn.send_stream(id).write(&self.payload).unwrap();
                    assert_eq!(n, self.payload.len());
                    self.sent = true;
                }
            }
        }
    }
}

impl Driven for RawClient {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        let mut buf = Vec::new();
        let packet = bytes::BytesMut::from(data);
        if let Some(DatagramEvent::ConnectionEvent(_, ev)) =
            self.endpoint
                .handle(now, remote, Some(local.ip()), ecn, packet, &mut buf)
        {
            self.conn.handle_event(ev);
        }
        self.drive(now);
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.drive(now);
        buf.clear();
        let t = self.conn.poll_transmit(now, max_datagrams.max(1), buf)?;
        Some(Transmit {
            source: self.local,
            destination: t.destination,
            ecn: t.ecn,
            size: t.size,
            segment_size: t.segment_size,
        })
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        self.conn.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
        self.drive(now);
    }
}

fn setup() -> Setup {
    Setup {
        paths: vec![
            PathConfig::symmetric(LinkConfig::new(20.0, 10)),
            PathConfig::symmetric(LinkConfig::new(10.0, 20)),
        ],
        scheduler: SchedulerKind::Camp.factory(),
        receiver: Default::default(),
        camp: CampConfig {
            join_timeout: Duration::from_secs(1),
            ..CampConfig::default()
        },
        seed: 5,
    }
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0; frame.buffer_len()];
    frame.emit(&mut buf).unwrap();
    buf
}

/// Establishes the legitimate two-path session, then lets an attacker at 198.19.0.2 send
/// `payload` on a fresh connection to the server's first address. Returns the attacker's
/// close code, the server's refusal counters and whether the real session still has two
/// paths.
fn attack(
    make_payload: impl FnOnce(&camp_proto::client::Client) -> Vec<u8>,
    delay: Duration,
) -> (Option<u64>, [u64; JoinRefusal::ALL.len()], u64) {
    let epoch = Instant::now();
    let (mut sim, roots) = build_with_roots(&setup(), epoch);
    let mut joined = 0;
    for _ in 0..200 {
        let t = sim.now() + Duration::from_millis(5);
        sim.advance(t);
        while let Some(ev) = sim.client.client.poll_event() {
            if matches!(ev, ClientEvent::PathJoined { .. }) {
                joined += 1;
            }
        }
        if joined == 2 {
            break;
        }
    }
    assert_eq!(joined, 2, "legitimate session has both paths");
    let payload = make_payload(&sim.client.client);
    let attacker_ip: IpAddr = [198, 19, 0, 2].into();
    let closed = Rc::new(RefCell::new(None));
    let raw = RawClient::new(
        &roots,
        SocketAddr::new(attacker_ip, 40_000),
        server_addr(0),
        sim.now(),
        payload,
        delay,
        closed.clone(),
    );
    sim.add_node(
        Box::new(raw),
        attacker_ip,
        server_addr(0).ip(),
        PathConfig::symmetric(LinkConfig::new(10.0, 5)),
    );
    let t = sim.now() + delay + Duration::from_secs(2);
    sim.advance(t);
    let session = sim.server.sessions().next().expect("session still open");
    let paths = sim.server.paths(session).len() as u64;
    let code = match &*closed.borrow() {
        Some(ConnectionError::ApplicationClosed(c)) => Some(c.error_code.into_inner()),
        _ => None,
    };
    (code, sim.server.counters().join_refused, paths)
}

fn join_payload(join: Join) -> Vec<u8> {
    encode(&Frame::Join(join))
}

#[test]
fn forged_join_is_refused_and_counted() {
    let (code, refused, paths) = attack(
        |c| {
            let token = c.session_token().unwrap();
            join_payload(Join {
                token,
                nonce: [1; 16],
                mac: [0xAA; 32],
            })
        },
        Duration::ZERO,
    );
    assert_eq!(code, Some(u64::from(JoinRefusal::Forged.close_code())));
    assert_eq!(refused[JoinRefusal::Forged.index()], 1);
    assert_eq!(paths, 2, "the real session is untouched");
}

#[test]
fn replayed_join_is_refused() {
    let (code, refused, paths) = attack(
        |c| join_payload(c.sent_join(1).expect("client joined path 1")),
        Duration::ZERO,
    );
    assert_eq!(code, Some(u64::from(JoinRefusal::Replayed.close_code())));
    assert_eq!(refused[JoinRefusal::Replayed.index()], 1);
    assert_eq!(paths, 2);
}

#[test]
fn join_with_fresh_nonce_but_copied_mac_is_forged() {
    // Same token and MAC as a real join but a new nonce: the MAC no longer verifies.
    let (code, refused, _) = attack(
        |c| {
            let mut j = c.sent_join(1).unwrap();
            j.nonce[0] ^= 0xFF;
            join_payload(j)
        },
        Duration::ZERO,
    );
    assert_eq!(code, Some(u64::from(JoinRefusal::Forged.close_code())));
    assert_eq!(refused[JoinRefusal::Forged.index()], 1);
}

#[test]
fn join_to_unknown_session_is_refused() {
    let (code, refused, _) = attack(
        |_| {
            join_payload(Join {
                token: [7; 16],
                nonce: [1; 16],
                mac: [0; 32],
            })
        },
        Duration::ZERO,
    );
    assert_eq!(
        code,
        Some(u64::from(JoinRefusal::UnknownSession.close_code()))
    );
    assert_eq!(refused[JoinRefusal::UnknownSession.index()], 1);
}

#[test]
fn late_join_is_refused() {
    // The join window is 1 s; the attacker waits 1.5 s after its handshake.
    let (code, refused, _) = attack(
        |c| {
            let token = c.session_token().unwrap();
            join_payload(Join {
                token,
                nonce: [3; 16],
                mac: [0; 32],
            })
        },
        Duration::from_millis(1500),
    );
    assert_eq!(code, Some(u64::from(JoinRefusal::Late.close_code())));
    assert_eq!(refused[JoinRefusal::Late.index()], 1);
}

#[test]
fn malformed_control_bytes_close_the_connection_with_a_protocol_error() {
    let (code, refused, paths) = attack(|_| vec![9, 0x12, 0, 0, 0, 64], Duration::ZERO);
    assert_eq!(code, Some(u64::from(camp_proto::codes::PROTOCOL_VIOLATION)));
    assert_eq!(refused.iter().sum::<u64>(), 0);
    assert_eq!(paths, 2);
}

#[test]
fn data_before_join_is_a_protocol_refusal() {
    let ack = {
        let mut b = vec![0; 64];
        let n = camp_wire::emit_ack(camp_wire::Modality::Text, 3, &[], &mut b).unwrap();
        b.truncate(n);
        b
    };
    let (code, refused, _) = attack(|_| ack, Duration::ZERO);
    assert_eq!(code, Some(u64::from(JoinRefusal::Protocol.close_code())));
    assert_eq!(refused[JoinRefusal::Protocol.index()], 1);
}
