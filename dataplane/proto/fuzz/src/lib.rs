//! What the camp-proto fuzz targets share: the input framing (a sequence of records), the
//! TLS configuration (made once per process), the addresses of the fuzzed endpoints and an
//! in-memory network that runs a real server and a real two-path client to a joined session.
//!
//! The seed recorder (`examples/record_seeds.rs`) uses the same network and framing, so the
//! committed seeds are datagrams of a real handshake in exactly the layout the targets read.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};

/// The server's local addresses (one per path).
pub const SERVER_ADDRS: [SocketAddr; 2] =
    [addr([198, 18, 0, 1], 4433), addr([198, 18, 1, 1], 4433)];
/// The client's local addresses (one per path).
pub const CLIENT_ADDRS: [SocketAddr; 2] =
    [addr([198, 19, 0, 1], 5000), addr([198, 19, 1, 1], 5000)];
/// An address neither end is configured with.
pub const STRANGER: SocketAddr = addr([198, 19, 2, 1], 6000);

const fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
        port,
    )
}

/// One record of an input: a selector byte and a payload.
///
/// Layout: `selector: u8`, `len: u16` big-endian, `len` bytes. A record whose length runs
/// past the input takes what is left. The targets give the selector's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What the target does with the payload (source address, clock step, direction...).
    pub selector: u8,
    /// The payload: a datagram, control-stream bytes...
    pub payload: &'a [u8],
}

/// Splits `data` into [`Record`]s.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let [selector, hi, lo, rest @ ..] = data else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        data = tail;
        Some(Record {
            selector: *selector,
            payload,
        })
    })
}

/// Appends a record to `out` (the inverse of [`records`]).
pub fn push_record(out: &mut Vec<u8>, selector: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len()).expect("a datagram is shorter than 64 KiB");
    out.push(selector);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// The clock step of a datagram record: the selector's top six bits `k` give `k²` ms
/// (0 to 3.97 s), enough to reach quinn's loss and idle timers.
pub fn clock_step(selector: u8) -> Duration {
    let k = u64::from(selector >> 2);
    Duration::from_millis(k * k)
}

/// The selector of a datagram record with source index `source` (0..4) sent `gap` after
/// the previous one (rounded up to the next step [`clock_step`] can express).
pub fn datagram_selector(source: u8, gap: Duration) -> u8 {
    let ms = gap.as_millis() as u64;
    let mut k = 0u64;
    while k * k < ms && k < 63 {
        k += 1;
    }
    ((k as u8) << 2) | (source & 3)
}

/// TLS configuration for both ends, made once: certificate generation is the slowest step
/// of setting up an endpoint and its result does not affect what the targets explore.
pub fn crypto() -> &'static (Arc<QuicServerConfig>, Arc<QuicClientConfig>) {
    static CRYPTO: OnceLock<(Arc<QuicServerConfig>, Arc<QuicClientConfig>)> = OnceLock::new();
    CRYPTO.get_or_init(|| {
        let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
        let roots = identity.chain.clone();
        let server = camp_proto::tls::server_crypto(identity).expect("server tls");
        let client = camp_proto::tls::client_crypto(&roots, false).expect("client tls");
        (server, client)
    })
}

/// The CAMP settings of both fuzzed ends: the defaults with 64 concurrent unit streams
/// instead of 4096, because quinn sets up the state of every stream the peer may open when
/// a connection starts, which was a quarter of the time of a `control_after_join` input.
pub fn camp_config() -> CampConfig {
    CampConfig {
        max_unit_streams: 64,
        ..CampConfig::default()
    }
}

/// A server on [`SERVER_ADDRS`] with the CAMP scheduler and a fixed seed.
pub fn server(epoch: Instant) -> Server {
    Server::new(
        ServerConfig {
            camp: camp_config(),
            local_addrs: SERVER_ADDRS.to_vec(),
            crypto: crypto().0.clone(),
            scheduler: SchedulerKind::Camp.factory(),
            rng_seed: [1; 32],
            lb: None,
        },
        epoch,
    )
}

/// A client with `paths` paths (1 or 2), path `i` from `CLIENT_ADDRS[i]` to
/// `SERVER_ADDRS[i]`, with a fixed seed. Its first flight is queued.
///
/// The seed fixes quinn's connection ids, so the Initial packets of a recorded server
/// (whose keys derive from the client's destination connection id) decrypt here; the later
/// packets do not, since TLS key shares come from the system RNG.
pub fn client(now: Instant, epoch: Instant, paths: usize) -> Client {
    Client::new(
        ClientConfig {
            camp: camp_config(),
            paths: (0..paths)
                .map(|i| PathSpec {
                    local: CLIENT_ADDRS[i],
                    remote: SERVER_ADDRS[i],
                })
                .collect(),
            crypto: crypto().1.clone(),
            server_name: "camp.test".into(),
            receiver: receiver_config(),
            rng_seed: [2; 32],
            shared_clock: true,
        },
        now,
        epoch,
    )
    .expect("client start")
}

/// The receiver settings of the fuzzed clients: the defaults with a smaller window and
/// buffer (64 units ahead, 256 buffered, 1 MiB), because the receiver reserves its whole
/// buffer up front, which under AddressSanitizer dominated the time of an input; a small
/// window is also reached sooner by the fuzzer.
pub fn receiver_config() -> camp_recv::ReceiverConfig {
    camp_recv::ReceiverConfig {
        max_units_ahead: 64,
        max_buffered_units: 256,
        max_buffered_bytes: 1 << 20,
        ..camp_recv::ReceiverConfig::default()
    }
}

/// A datagram on the in-memory wire.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// When it was sent.
    pub sent: Instant,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Bytes.
    pub data: Vec<u8>,
    /// Whether it goes to the server (else to the client).
    pub to_server: bool,
}

/// One server and one client joined by a lossless wire with a fixed one-way delay. Every
/// datagram that crosses it is kept in [`log`](Self::log) when logging is on.
pub struct Net {
    /// The server.
    pub server: Server,
    /// The client.
    pub client: Client,
    /// The virtual clock.
    pub now: Instant,
    /// Server events, oldest first.
    pub server_events: Vec<ServerEvent>,
    /// Client events, oldest first.
    pub client_events: Vec<ClientEvent>,
    /// Datagrams delivered, if logging.
    pub log: Option<Vec<Datagram>>,
    /// Steps taken by [`run`](Self::run) (each handles what is due at one instant).
    pub steps: u64,
    wire: Vec<(Instant, Datagram)>,
    buf: Vec<u8>,
}

/// One-way delay of the in-memory wire.
pub const DELAY: Duration = Duration::from_millis(5);

impl Net {
    /// A server and a client with `paths` paths, the client's first flight not yet sent.
    pub fn new(paths: usize, log: bool) -> Self {
        let epoch = Instant::now();
        Self {
            server: server(epoch),
            client: client(epoch, epoch, paths),
            now: epoch,
            server_events: Vec::new(),
            client_events: Vec::new(),
            log: log.then(Vec::new),
            steps: 0,
            wire: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    fn collect(&mut self) {
        while let Some(t) = self.server.poll_transmit(self.now, 1, &mut self.buf) {
            self.wire.push((
                self.now + DELAY,
                Datagram {
                    sent: self.now,
                    src: t.source,
                    dst: t.destination,
                    data: self.buf[..t.size].to_vec(),
                    to_server: false,
                },
            ));
        }
        while let Some(t) = self.client.poll_transmit(self.now, 1, &mut self.buf) {
            self.wire.push((
                self.now + DELAY,
                Datagram {
                    sent: self.now,
                    src: t.source,
                    dst: t.destination,
                    data: self.buf[..t.size].to_vec(),
                    to_server: true,
                },
            ));
        }
        while let Some(ev) = self.server.poll_event() {
            self.server_events.push(ev);
        }
        while let Some(ev) = self.client.poll_event() {
            self.client_events.push(ev);
        }
    }

    /// Runs the network until `until` returns true or virtual time `limit` has passed.
    /// Returns whether `until` held.
    pub fn run(&mut self, limit: Duration, mut until: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.collect();
            if until(self) {
                return true;
            }
            let mut next = self.wire.iter().map(|(at, _)| *at).min();
            for t in [self.server.poll_timeout(), self.client.poll_timeout()]
                .into_iter()
                .flatten()
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
            let Some(next) = next.filter(|&t| t <= end) else {
                self.now = self.now.max(end);
                return false;
            };
            // A timer already due is handled at least a microsecond later, so that a timer
            // that stays armed at a past instant cannot hold the clock still.
            self.now = next.max(self.now + Duration::from_micros(1));
            self.steps += 1;
            let now = self.now;
            let mut due = Vec::new();
            self.wire.retain(|(at, d)| {
                if *at <= now {
                    due.push(d.clone());
                    false
                } else {
                    true
                }
            });
            for d in due {
                if d.to_server {
                    self.server
                        .handle_datagram(now, d.dst, d.src, None, &d.data);
                } else {
                    self.client
                        .handle_datagram(now, d.dst, d.src, None, &d.data);
                }
                if let Some(log) = self.log.as_mut() {
                    log.push(d);
                }
            }
            if self.server.poll_timeout().is_some_and(|t| t <= now) {
                self.server.handle_timeout(now);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
        }
    }

    /// Runs until every one of the client's `paths` paths has joined the session (HELLO on
    /// one, JOIN on the others). Returns the session, `None` if that did not happen within
    /// 2 s of virtual time.
    pub fn join(&mut self, paths: usize) -> Option<SessionId> {
        let joined = self.run(Duration::from_secs(2), |n| {
            n.client_events
                .iter()
                .filter(|e| matches!(e, ClientEvent::PathJoined { .. }))
                .count()
                >= paths
        });
        if !joined {
            return None;
        }
        self.server_events.iter().find_map(|e| match e {
            ServerEvent::SessionOpened(s) => Some(*s),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_short_tail_is_taken_whole() {
        let mut out = Vec::new();
        push_record(&mut out, 7, b"abc");
        push_record(&mut out, 9, b"");
        out.extend_from_slice(&[3, 0, 10, 1, 2]);
        let got: Vec<_> = records(&out).collect();
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].selector, got[0].payload), (7, &b"abc"[..]));
        assert_eq!((got[1].selector, got[1].payload), (9, &b""[..]));
        assert_eq!((got[2].selector, got[2].payload), (3, &[1, 2][..]));
        assert_eq!(records(&[1, 0]).count(), 0);
    }

    #[test]
    fn selectors_encode_source_and_a_step_at_least_the_gap() {
        let s = datagram_selector(2, Duration::from_millis(10));
        assert_eq!(s & 3, 2);
        assert!(clock_step(s) >= Duration::from_millis(10));
        assert!(clock_step(s) < Duration::from_millis(17));
        assert_eq!(
            clock_step(datagram_selector(1, Duration::ZERO)),
            Duration::ZERO
        );
    }

    #[test]
    fn the_network_joins_two_paths() {
        let mut net = Net::new(2, true);
        assert!(net.join(2).is_some());
        // A quiet session takes few steps: no timer stays due and holds the clock.
        let before = net.steps;
        net.run(Duration::from_millis(200), |_| false);
        assert!(net.steps - before < 100, "{} steps", net.steps - before);
        assert!(!net.log.as_ref().expect("logging").is_empty());
    }
}
