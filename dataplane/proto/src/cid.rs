//! Routable connection ids for servers behind a layer-4 load balancer (QUIC-LB style).
//!
//! Every QUIC connection of a CAMP session (one per path, each from its own client
//! address) must reach the same campd server and the same engine on it, also after the
//! client's address changes. A 4-tuple hash cannot promise that; the connection id can:
//! the server writes its id into every CID it issues and the balancer reads it back out.
//! This module owns that layout, the quinn-proto [`ConnectionIdGenerator`] a server
//! installs, and the decoder a balancer (or, later, the XDP classifier) routes with.
//!
//! Layout (the unencrypted "plaintext" algorithm of draft-ietf-quic-load-balancers, §3
//! and §5.2), `1 + server_id_len + nonce_len` octets:
//!
//! ```text
//! octet 0           1 ..= server_id_len    .. + nonce_len
//! +-------+-------+----------------------+----------------+
//! | CR(3) | L(5)  | server id            | nonce (random) |
//! +-------+-------+----------------------+----------------+
//! ```
//!
//! `CR` is the config rotation codepoint, 0..=6 (7, `0b111`, marks a CID no balancer can
//! route and is never issued nor accepted here). `L` is either the CID length minus the
//! first octet (length self-encoding, for hardware that needs it) or random bits.
//!
//! The engine (core) index is **part of the server id**, as its last octet, by the
//! convention of [`ServerId::for_engine`]: a site gives every (host, engine) pair its own
//! server id, so the balancer needs no second field and steering to an engine is a
//! prefix-plus-one-octet match. Nothing here depends on that convention; a site with one
//! engine per host may use any bytes.
//!
//! The ids carry the server id in clear: an observer can tell which server a connection
//! is on (not which connection it is; the nonce is random). The encrypted algorithms of
//! the draft are not built (see docs/scale-out.md).

use std::fmt;
use std::time::Duration;

use quinn_proto::{ConnectionId, ConnectionIdGenerator, InvalidCid};
use rand::{RngCore, SeedableRng, rngs::StdRng};

/// Longest server id (octets) the layout allows.
pub const MAX_SERVER_ID_LEN: usize = 15;
/// Shortest nonce (octets): fewer random bits would let CIDs repeat too soon.
pub const MIN_NONCE_LEN: usize = 4;
/// Longest nonce (octets).
pub const MAX_NONCE_LEN: usize = 18;
/// Longest QUIC v1 connection id (RFC 9000 §17.2).
pub const MAX_CID_LEN: usize = 20;
/// Config rotation codepoint of a CID that carries no routing information.
pub const UNROUTABLE_CONFIG: u8 = 0b111;

/// A load-balancer configuration that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LbConfigError {
    /// The config rotation codepoint is not 0..=6 (7 is reserved for unroutable CIDs).
    #[error("config rotation id must be 0..=6, got {0}")]
    ConfigId(u8),
    /// The server id is empty or longer than [`MAX_SERVER_ID_LEN`].
    #[error("server id must be 1..={MAX_SERVER_ID_LEN} octets, got {0}")]
    ServerIdLen(usize),
    /// The nonce is shorter than [`MIN_NONCE_LEN`] or longer than [`MAX_NONCE_LEN`].
    #[error("nonce must be {MIN_NONCE_LEN}..={MAX_NONCE_LEN} octets, got {0}")]
    NonceLen(usize),
    /// First octet, server id and nonce together exceed [`MAX_CID_LEN`].
    #[error("connection id would be {0} octets, longer than {MAX_CID_LEN}")]
    CidLen(usize),
    /// A hexadecimal server id has an odd number of digits or a character that is not one.
    #[error("server id is not an even number of hexadecimal digits: {0:?}")]
    Hex(String),
}

/// The routing identity of one server (or one engine of a server), 1..=15 octets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId {
    len: u8,
    bytes: [u8; MAX_SERVER_ID_LEN],
}

impl ServerId {
    /// A server id of exactly these octets.
    pub fn new(id: &[u8]) -> Result<Self, LbConfigError> {
        if id.is_empty() || id.len() > MAX_SERVER_ID_LEN {
            return Err(LbConfigError::ServerIdLen(id.len()));
        }
        let mut bytes = [0; MAX_SERVER_ID_LEN];
        bytes[..id.len()].copy_from_slice(id);
        Ok(Self {
            len: id.len() as u8,
            bytes,
        })
    }

    /// The id of engine `engine` on the host whose id is `host`: `host || engine`, so the
    /// engine index is the last octet (the module's convention; see its documentation).
    pub fn for_engine(host: &[u8], engine: u8) -> Result<Self, LbConfigError> {
        if host.len() >= MAX_SERVER_ID_LEN {
            return Err(LbConfigError::ServerIdLen(host.len() + 1));
        }
        let mut id = [0; MAX_SERVER_ID_LEN];
        id[..host.len()].copy_from_slice(host);
        id[host.len()] = engine;
        Self::new(&id[..=host.len()])
    }

    /// Parses hexadecimal digits (`"0a1b"`), two per octet, either case.
    pub fn from_hex(hex: &str) -> Result<Self, LbConfigError> {
        let bad = || LbConfigError::Hex(hex.to_owned());
        let digits = hex.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(bad());
        }
        let mut out = [0u8; MAX_SERVER_ID_LEN];
        let n = digits.len() / 2;
        if n == 0 || n > MAX_SERVER_ID_LEN {
            return Err(LbConfigError::ServerIdLen(n));
        }
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            *o = (hi * 16 + lo) as u8;
        }
        Self::new(&out[..n])
    }

    /// The octets.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of octets (1..=15).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a server id has at least one octet (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The engine index under the [`for_engine`](Self::for_engine) convention: the last
    /// octet.
    pub fn engine(&self) -> u8 {
        self.bytes[usize::from(self.len) - 1]
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerId({self})")
    }
}

/// What every server of a site and its balancer agree on: config rotation codepoint,
/// server id and nonce lengths, and whether the first octet encodes the length. It is all
/// a balancer needs to route; it knows no server's key or state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CidLayout {
    config_id: u8,
    server_id_len: u8,
    nonce_len: u8,
    self_encode_length: bool,
}

impl CidLayout {
    /// A layout, checked against the draft's limits.
    pub fn new(
        config_id: u8,
        server_id_len: usize,
        nonce_len: usize,
        self_encode_length: bool,
    ) -> Result<Self, LbConfigError> {
        if config_id >= UNROUTABLE_CONFIG {
            return Err(LbConfigError::ConfigId(config_id));
        }
        if server_id_len == 0 || server_id_len > MAX_SERVER_ID_LEN {
            return Err(LbConfigError::ServerIdLen(server_id_len));
        }
        if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce_len) {
            return Err(LbConfigError::NonceLen(nonce_len));
        }
        let cid_len = 1 + server_id_len + nonce_len;
        if cid_len > MAX_CID_LEN {
            return Err(LbConfigError::CidLen(cid_len));
        }
        Ok(Self {
            config_id,
            server_id_len: server_id_len as u8,
            nonce_len: nonce_len as u8,
            self_encode_length,
        })
    }

    /// Config rotation codepoint (0..=6).
    pub fn config_id(&self) -> u8 {
        self.config_id
    }

    /// Server id length, octets.
    pub fn server_id_len(&self) -> usize {
        usize::from(self.server_id_len)
    }

    /// Nonce length, octets.
    pub fn nonce_len(&self) -> usize {
        usize::from(self.nonce_len)
    }

    /// Whether the low five bits of the first octet carry the CID length.
    pub fn self_encode_length(&self) -> bool {
        self.self_encode_length
    }

    /// Length of every CID of this layout.
    pub fn cid_len(&self) -> usize {
        1 + self.server_id_len() + self.nonce_len()
    }

    /// The server id octets inside `cid`, or `None` when `cid` is not a CID of this
    /// layout: wrong length, another (or the unroutable) config rotation codepoint, or a
    /// length field that disagrees. Never panics, whatever the bytes.
    pub fn server_id_of<'a>(&self, cid: &'a [u8]) -> Option<&'a [u8]> {
        if cid.len() != self.cid_len() {
            return None;
        }
        let first = cid[0];
        let rotation = first >> 5;
        if rotation == UNROUTABLE_CONFIG || rotation != self.config_id {
            return None;
        }
        if self.self_encode_length && usize::from(first & 0x1f) != self.cid_len() - 1 {
            return None;
        }
        cid.get(1..1 + self.server_id_len())
    }

    /// The server `cid` routes to, as [`server_id_of`](Self::server_id_of) decodes it.
    pub fn route(&self, cid: &[u8]) -> Option<ServerId> {
        ServerId::new(self.server_id_of(cid)?).ok()
    }
}

/// One server's load-balancer configuration: the site's [`CidLayout`] and this server's
/// id (for a server with several engines, the id of one engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbConfig {
    layout: CidLayout,
    server_id: ServerId,
    lifetime: Option<Duration>,
}

impl LbConfig {
    /// Issues CIDs with rotation codepoint `config_id` (0..=6), `server_id`, and a random
    /// nonce of `nonce_len` octets (4..=18; the whole CID at most 20). The first octet's
    /// low bits are random; see [`with_length_encoding`](Self::with_length_encoding).
    pub fn new(
        config_id: u8,
        server_id: ServerId,
        nonce_len: usize,
    ) -> Result<Self, LbConfigError> {
        Ok(Self {
            layout: CidLayout::new(config_id, server_id.len(), nonce_len, false)?,
            server_id,
            lifetime: None,
        })
    }

    /// Whether the first octet's low five bits carry the CID length (minus one).
    pub fn with_length_encoding(mut self, on: bool) -> Self {
        self.layout.self_encode_length = on;
        self
    }

    /// Asks quinn to retire each CID after `lifetime` (and issue a fresh one); `None`, the
    /// default, keeps them for the connection's life.
    pub fn with_cid_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The layout a balancer needs to route this server's CIDs.
    pub fn layout(&self) -> CidLayout {
        self.layout
    }

    /// This server's id.
    pub fn server_id(&self) -> ServerId {
        self.server_id
    }

    /// Config rotation codepoint.
    pub fn config_id(&self) -> u8 {
        self.layout.config_id
    }

    /// Nonce length, octets.
    pub fn nonce_len(&self) -> usize {
        self.layout.nonce_len()
    }

    /// Length of every CID this server issues.
    pub fn cid_len(&self) -> usize {
        self.layout.cid_len()
    }

    /// See [`CidLayout::server_id_of`].
    pub fn server_id_of<'a>(&self, cid: &'a [u8]) -> Option<&'a [u8]> {
        self.layout.server_id_of(cid)
    }

    /// See [`CidLayout::route`].
    pub fn route(&self, cid: &[u8]) -> Option<ServerId> {
        self.layout.route(cid)
    }

    /// Builds the CID with this nonce; `low_bits` fill the first octet when the length is
    /// not encoded. `nonce` must be [`nonce_len`](Self::nonce_len) long (callers here
    /// guarantee it).
    fn encode(&self, low_bits: u8, nonce: &[u8]) -> ConnectionId {
        let mut cid = [0u8; MAX_CID_LEN];
        let len = self.cid_len();
        let low = if self.layout.self_encode_length {
            (len - 1) as u8
        } else {
            low_bits & 0x1f
        };
        cid[0] = (self.layout.config_id << 5) | low;
        let sid = self.server_id.as_bytes();
        cid[1..1 + sid.len()].copy_from_slice(sid);
        cid[1 + sid.len()..len].copy_from_slice(nonce);
        ConnectionId::new(&cid[..len])
    }

    /// A generator for quinn, its nonces drawn from a generator seeded with `seed` (so a
    /// seeded server issues the same CIDs on every run).
    pub fn generator(&self, seed: [u8; 32]) -> LbCidGenerator {
        LbCidGenerator {
            config: *self,
            rng: StdRng::from_seed(seed),
        }
    }
}

/// quinn-proto's source of this server's CIDs: the handshake CID and every
/// NEW_CONNECTION_ID carry the server id (quinn draws all of them from the endpoint's one
/// generator).
#[derive(Debug)]
pub struct LbCidGenerator {
    config: LbConfig,
    rng: StdRng,
}

impl ConnectionIdGenerator for LbCidGenerator {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut random = [0u8; 1 + MAX_NONCE_LEN];
        let n = self.config.nonce_len();
        self.rng.fill_bytes(&mut random[..=n]);
        self.config.encode(random[0], &random[1..=n])
    }

    /// Lets quinn drop (instead of answering with a stateless reset) short-header packets
    /// for unknown connections whose CID this server could not have issued.
    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        match self.config.server_id_of(cid) {
            Some(id) if id == self.config.server_id.as_bytes() => Ok(()),
            _ => Err(InvalidCid),
        }
    }

    fn cid_len(&self) -> usize {
        self.config.cid_len()
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        self.config.lifetime
    }
}

/// The destination CID of the first QUIC packet in `datagram`, as a balancer sees it
/// (RFC 8999 §5: the version-independent header). A long header says its CID's length; a
/// short header does not, so the site's `short_cid_len` is used. `None` for a datagram too
/// short to hold what its header announces, or a long-header CID over 20 octets.
pub fn dcid_of_packet(datagram: &[u8], short_cid_len: usize) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & 0x80 != 0 {
        // Long header: first octet, 4-octet version, DCID length, DCID.
        let len = usize::from(*datagram.get(5)?);
        if len > MAX_CID_LEN {
            return None;
        }
        datagram.get(6..6 + len)
    } else {
        datagram.get(1..1 + short_cid_len)
    }
}

/// The source CID of a long-header packet (RFC 8999 §5.1), `None` for a short header or
/// a datagram too short for what its header announces. A client uses it to learn the
/// server's CID (see `CampConfig::routed_joins`).
pub fn scid_of_long_header(datagram: &[u8]) -> Option<&[u8]> {
    if datagram.first()? & 0x80 == 0 {
        return None;
    }
    let dcid_len = usize::from(*datagram.get(5)?);
    let at = 6 + dcid_len;
    let scid_len = usize::from(*datagram.get(at)?);
    if scid_len > MAX_CID_LEN {
        return None;
    }
    datagram.get(at + 1..at + 1 + scid_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn two_octet_id() -> ServerId {
        ServerId::new(&[0x31, 0x44]).expect("two octets")
    }

    #[test]
    fn decodes_a_literal_cid_with_encoded_length() {
        let layout = CidLayout::new(1, 2, 4, true).expect("valid layout");
        // CR = 1, length 6 (server id 2 + nonce 4): 0b001_00110.
        let cid = [0x26, 0x31, 0x44, 0xde, 0xad, 0xbe, 0xef];
        assert_eq!(layout.server_id_of(&cid), Some(&[0x31, 0x44][..]));
        assert_eq!(layout.route(&cid), Some(two_octet_id()));
    }

    #[test]
    fn rejects_malformed_cids() {
        let layout = CidLayout::new(1, 2, 4, true).expect("valid layout");
        // Unroutable codepoint 0b111, otherwise well formed.
        assert_eq!(layout.route(&[0xe6, 0x31, 0x44, 1, 2, 3, 4]), None);
        // Another config rotation (2).
        assert_eq!(layout.route(&[0x46, 0x31, 0x44, 1, 2, 3, 4]), None);
        // Length field says 5.
        assert_eq!(layout.route(&[0x25, 0x31, 0x44, 1, 2, 3, 4]), None);
        // One octet short, one too long, empty.
        assert_eq!(layout.route(&[0x26, 0x31, 0x44, 1, 2, 3]), None);
        assert_eq!(layout.route(&[0x26, 0x31, 0x44, 1, 2, 3, 4, 5]), None);
        assert_eq!(layout.route(&[]), None);
        // Without length encoding the low bits are free.
        let free = CidLayout::new(1, 2, 4, false).expect("valid layout");
        assert_eq!(
            free.route(&[0x3f, 0x31, 0x44, 1, 2, 3, 4]),
            Some(two_octet_id())
        );
        assert_eq!(free.route(&[0xff, 0x31, 0x44, 1, 2, 3, 4]), None);
    }

    #[test]
    fn refuses_layouts_outside_the_limits() {
        assert_eq!(
            CidLayout::new(7, 2, 4, false),
            Err(LbConfigError::ConfigId(7))
        );
        assert_eq!(
            CidLayout::new(0, 0, 4, false),
            Err(LbConfigError::ServerIdLen(0))
        );
        assert_eq!(
            CidLayout::new(0, 16, 4, false),
            Err(LbConfigError::ServerIdLen(16))
        );
        assert_eq!(
            CidLayout::new(0, 2, 3, false),
            Err(LbConfigError::NonceLen(3))
        );
        assert_eq!(
            CidLayout::new(0, 15, 5, false),
            Err(LbConfigError::CidLen(21))
        );
        assert!(CidLayout::new(6, 15, 4, false).is_ok());
        assert!(CidLayout::new(0, 1, 18, false).is_ok());
    }

    #[test]
    fn generated_cids_carry_the_server_id_and_differ() {
        let config = LbConfig::new(3, two_octet_id(), 8)
            .expect("valid")
            .with_length_encoding(true);
        let mut g = config.generator([7; 32]);
        assert_eq!(g.cid_len(), 11);
        let a = g.generate_cid();
        let b = g.generate_cid();
        assert_ne!(a, b, "nonces are random");
        for cid in [a, b] {
            assert_eq!(cid[0], (3 << 5) | 10);
            assert_eq!(&cid[1..3], &[0x31, 0x44]);
            assert!(g.validate(&cid).is_ok());
        }
        // Same seed, same CIDs: the sans-IO server stays deterministic.
        let mut again = config.generator([7; 32]);
        assert_eq!(again.generate_cid(), a);
    }

    #[test]
    fn validate_refuses_another_servers_cids() {
        let ours = LbConfig::new(0, two_octet_id(), 6).expect("valid");
        let theirs = LbConfig::new(0, ServerId::new(&[0x31, 0x45]).expect("id"), 6).expect("valid");
        let g = ours.generator([1; 32]);
        let cid = theirs.generator([1; 32]).generate_cid();
        assert_eq!(ours.route(&cid), theirs.route(&cid), "same layout");
        assert!(g.validate(&cid).is_err());
        assert!(g.validate(&ConnectionId::new(&[0xff; 9])).is_err());
    }

    #[test]
    fn engine_is_the_last_octet_of_the_server_id() {
        let id = ServerId::for_engine(&[0x0a, 0x0b], 3).expect("id");
        assert_eq!(id.as_bytes(), &[0x0a, 0x0b, 0x03]);
        assert_eq!(id.engine(), 3);
        assert_eq!(
            ServerId::for_engine(&[0; 15], 0),
            Err(LbConfigError::ServerIdLen(16))
        );
    }

    #[test]
    fn hex_server_ids() {
        assert_eq!(ServerId::from_hex("3144"), Ok(two_octet_id()));
        assert_eq!(
            ServerId::from_hex("3144").map(|s| s.to_string()),
            Ok("3144".into())
        );
        assert_eq!(
            ServerId::from_hex("AbCd").map(|s| s.to_string()),
            Ok("abcd".into())
        );
        assert!(matches!(
            ServerId::from_hex("314"),
            Err(LbConfigError::Hex(_))
        ));
        assert!(matches!(
            ServerId::from_hex("31g4"),
            Err(LbConfigError::Hex(_))
        ));
        assert!(matches!(
            ServerId::from_hex("é1"),
            Err(LbConfigError::Hex(_))
        ));
        assert_eq!(ServerId::from_hex(""), Err(LbConfigError::ServerIdLen(0)));
        assert_eq!(
            ServerId::from_hex(&"00".repeat(16)),
            Err(LbConfigError::ServerIdLen(16))
        );
    }

    #[test]
    fn finds_the_destination_cid_of_long_and_short_headers() {
        // Long header (Initial), version 1, DCID of 8, then SCID length 0.
        let initial = [0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        assert_eq!(dcid_of_packet(&initial, 11), Some(&initial[6..14]));
        // Announces 9 octets but holds 8.
        let mut cut = initial;
        cut[5] = 9;
        assert_eq!(dcid_of_packet(&cut[..14], 11), None);
        // Over 20.
        cut[5] = 21;
        assert_eq!(dcid_of_packet(&cut, 11), None);
        // Short header: CID right after the first octet.
        let short = [0x41, 9, 9, 9, 9, 0xaa];
        assert_eq!(dcid_of_packet(&short, 4), Some(&short[1..5]));
        assert_eq!(dcid_of_packet(&short, 6), None);
        assert_eq!(dcid_of_packet(&[], 4), None);
    }

    #[test]
    fn finds_the_source_cid_of_long_headers() {
        // Initial: DCID of 2, SCID of 3.
        let initial = [0xc0, 0, 0, 0, 1, 2, 9, 9, 3, 0xa, 0xb, 0xc, 0x00];
        assert_eq!(scid_of_long_header(&initial), Some(&[0xa, 0xb, 0xc][..]));
        assert_eq!(scid_of_long_header(&initial[..11]), None, "cut short");
        assert_eq!(scid_of_long_header(&[0x40, 1, 2, 3, 4, 5, 6, 7, 8]), None);
        assert_eq!(scid_of_long_header(&[]), None);
    }

    proptest! {
        #[test]
        fn every_generated_cid_routes_to_its_server(
            config_id in 0u8..=6,
            id in proptest::collection::vec(any::<u8>(), 1..=MAX_SERVER_ID_LEN),
            nonce_len in MIN_NONCE_LEN..=MAX_NONCE_LEN,
            encode_len in any::<bool>(),
            seed in any::<[u8; 32]>(),
        ) {
            let server_id = ServerId::new(&id).expect("1..=15 octets");
            match LbConfig::new(config_id, server_id, nonce_len) {
                Err(e) => prop_assert_eq!(e, LbConfigError::CidLen(1 + id.len() + nonce_len)),
                Ok(config) => {
                    let config = config.with_length_encoding(encode_len);
                    let mut g = config.generator(seed);
                    for _ in 0..4 {
                        let cid = g.generate_cid();
                        prop_assert_eq!(cid.len(), config.cid_len());
                        prop_assert_eq!(config.server_id_of(&cid), Some(&id[..]));
                        prop_assert_eq!(config.route(&cid), Some(server_id));
                        prop_assert!(g.validate(&cid).is_ok());
                        // The short-header path of a balancer finds the same CID.
                        let mut packet = vec![0x40];
                        packet.extend_from_slice(&cid);
                        packet.extend_from_slice(&[0u8; 24]);
                        let dcid = dcid_of_packet(&packet, config.cid_len());
                        prop_assert_eq!(dcid, Some(&cid[..]));
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            sid_len in 1usize..=MAX_SERVER_ID_LEN,
            nonce_len in MIN_NONCE_LEN..=MAX_NONCE_LEN,
            short_len in 0usize..=MAX_CID_LEN,
            encode_len in any::<bool>(),
        ) {
            if let Ok(layout) = CidLayout::new(2, sid_len, nonce_len, encode_len) {
                if let Some(id) = layout.server_id_of(&bytes) {
                    prop_assert_eq!(id.len(), sid_len);
                    prop_assert_eq!(bytes[0] >> 5, 2);
                }
                let _ = layout.route(&bytes);
            }
            if let Some(dcid) = dcid_of_packet(&bytes, short_len) {
                prop_assert!(dcid.len() <= MAX_CID_LEN);
            }
            if let Some(scid) = scid_of_long_header(&bytes) {
                prop_assert!(scid.len() <= MAX_CID_LEN);
            }
            let _ = ServerId::from_hex(&String::from_utf8_lossy(&bytes));
        }
    }
}
