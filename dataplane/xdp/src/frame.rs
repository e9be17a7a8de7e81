//! Ethernet (+ one VLAN tag) / IPv4 / IPv6 / UDP framing: checked parsing,
//! in-place building, IPv4 header and UDP checksums, ECN.
//!
//! [`classify`] is the Rust mirror of the XDP classifier rule in
//! `bpf/camp_classifier.bpf.c`; [`parse_udp`] is the full receive-side
//! parser (which also verifies lengths and checksums, since AF_XDP hands us
//! frames the kernel has not checked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Ethernet header length without VLAN tag.
pub const ETH_HLEN: usize = 14;
/// Length of one 802.1Q / 802.1ad tag.
pub const VLAN_HLEN: usize = 4;
/// IPv4 header without options.
pub const IPV4_HLEN: usize = 20;
/// IPv6 fixed header.
pub const IPV6_HLEN: usize = 40;
/// UDP header.
pub const UDP_HLEN: usize = 8;
/// Extension headers the classifier walks before giving up.
pub const MAX_IPV6_EXT_HEADERS: usize = 4;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const PROTO_UDP: u8 = 17;
const PROTO_HOPOPTS: u8 = 0;
const PROTO_ROUTING: u8 = 43;
const PROTO_FRAGMENT: u8 = 44;
const PROTO_DSTOPTS: u8 = 60;

/// A MAC address.
pub type Mac = [u8; 6];

/// Explicit Congestion Notification codepoint (RFC 3168), the two low bits
/// of the IPv4 TOS / IPv6 traffic class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Ecn {
    /// Not ECN-capable transport.
    #[default]
    NotEct,
    /// ECT(1).
    Ect1,
    /// ECT(0).
    Ect0,
    /// Congestion experienced.
    Ce,
}

impl Ecn {
    /// From the two low bits of TOS / traffic class.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => Self::NotEct,
            0b01 => Self::Ect1,
            0b10 => Self::Ect0,
            _ => Self::Ce,
        }
    }

    /// The two-bit codepoint.
    pub fn bits(self) -> u8 {
        match self {
            Self::NotEct => 0b00,
            Self::Ect1 => 0b01,
            Self::Ect0 => 0b10,
            Self::Ce => 0b11,
        }
    }

    /// To quinn-proto's representation (`None` for Not-ECT).
    pub fn to_quinn(self) -> Option<quinn_proto::EcnCodepoint> {
        quinn_proto::EcnCodepoint::from_bits(self.bits())
    }

    /// From quinn-proto's representation.
    pub fn from_quinn(ecn: Option<quinn_proto::EcnCodepoint>) -> Self {
        ecn.map_or(Self::NotEct, |e| Self::from_bits(e as u8))
    }

    /// To quinn-udp's representation.
    pub fn to_quinn_udp(self) -> Option<quinn_udp::EcnCodepoint> {
        quinn_udp::EcnCodepoint::from_bits(self.bits())
    }

    /// From quinn-udp's representation.
    pub fn from_quinn_udp(ecn: Option<quinn_udp::EcnCodepoint>) -> Self {
        ecn.map_or(Self::NotEct, |e| Self::from_bits(e as u8))
    }
}

/// Why a frame could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ends inside a header.
    #[error("truncated {0} header")]
    Truncated(&'static str),
    /// The EtherType is not IPv4 or IPv6.
    #[error("not IP (ethertype {0:#06x})")]
    NotIp(u16),
    /// The IP version field does not match the EtherType.
    #[error("bad IP version {0}")]
    BadIpVersion(u8),
    /// IPv4 IHL below 5.
    #[error("bad IPv4 header length {0}")]
    BadIhl(u8),
    /// IPv4 total length / IPv6 payload length disagree with the frame.
    #[error("IP length {ip} does not fit the frame ({frame} bytes)")]
    BadIpLength {
        /// Length claimed by the IP header.
        ip: usize,
        /// Bytes available.
        frame: usize,
    },
    /// Fragments are left to the kernel.
    #[error("IP fragment")]
    Fragment,
    /// Transport is not UDP.
    #[error("not UDP (protocol {0})")]
    NotUdp(u8),
    /// Too many IPv6 extension headers before UDP.
    #[error("more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers")]
    TooManyExtHeaders,
    /// UDP length field is below 8 or beyond the IP payload.
    #[error("bad UDP length {udp} (IP payload {ip})")]
    BadUdpLength {
        /// UDP length field.
        udp: usize,
        /// IP payload bytes.
        ip: usize,
    },
    /// IPv4 header checksum mismatch.
    #[error("bad IPv4 header checksum")]
    BadIpChecksum,
    /// UDP checksum mismatch (or zero over IPv6).
    #[error("bad UDP checksum")]
    BadUdpChecksum,
    /// Source and destination address families differ.
    #[error("source and destination address families differ")]
    MixedFamilies,
    /// The output buffer is too small for the frame.
    #[error("frame of {need} bytes does not fit a {have}-byte buffer")]
    BufferTooSmall {
        /// Bytes needed.
        need: usize,
        /// Buffer size.
        have: usize,
    },
    /// The payload does not fit a UDP datagram.
    #[error("payload of {0} bytes is too large for UDP")]
    PayloadTooLarge(usize),
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Ethernet layer: link addresses, VLAN tag, EtherType and the offset of
/// the network header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthView {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// VLAN TCI when the frame carries one tag.
    pub vlan: Option<u16>,
    /// EtherType after the tag.
    pub ethertype: u16,
    /// Offset of the network header.
    pub l3: usize,
}

/// Parses the Ethernet header and at most one VLAN tag.
pub fn parse_eth(frame: &[u8]) -> Result<EthView, FrameError> {
    if frame.len() < ETH_HLEN {
        return Err(FrameError::Truncated("ethernet"));
    }
    let mut dst = [0; 6];
    let mut src = [0; 6];
    dst.copy_from_slice(&frame[0..6]);
    src.copy_from_slice(&frame[6..12]);
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_HLEN;
    let mut vlan = None;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if frame.len() < ETH_HLEN + VLAN_HLEN {
            return Err(FrameError::Truncated("vlan"));
        }
        vlan = Some(be16(frame, 14));
        ethertype = be16(frame, 16);
        l3 += VLAN_HLEN;
    }
    Ok(EthView {
        dst,
        src,
        vlan,
        ethertype,
        l3,
    })
}

/// Network layer of a UDP-carrying packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpView<'a> {
    src: IpAddr,
    dst: IpAddr,
    ecn: Ecn,
    /// The IP payload from the UDP header to the end of the IP packet as its
    /// length field gives it (Ethernet padding excluded). Holding the slice
    /// rather than two offsets means no caller subtracts wire-derived
    /// offsets: a header that claims to run past its packet is an error here.
    transport: &'a [u8],
}

/// Walks the IP header(s) up to UDP, bounding every step by the IP length
/// field (IPv4 total length, IPv6 payload length), exactly as the XDP
/// classifier does. `verify_checksum` adds the IPv4 header checksum, which
/// only the receive path checks.
fn parse_ip<'a>(
    frame: &'a [u8],
    eth: &EthView,
    verify_checksum: bool,
) -> Result<IpView<'a>, FrameError> {
    let net = frame.get(eth.l3..).unwrap_or_default();
    match eth.ethertype {
        ETH_P_IP => {
            let h = net.get(..IPV4_HLEN).ok_or(FrameError::Truncated("ipv4"))?;
            let version = h[0] >> 4;
            if version != 4 {
                return Err(FrameError::BadIpVersion(version));
            }
            let ihl = h[0] & 0x0f;
            if ihl < 5 {
                return Err(FrameError::BadIhl(ihl));
            }
            let hlen = usize::from(ihl) * 4;
            let header = net.get(..hlen).ok_or(FrameError::Truncated("ipv4"))?;
            if be16(h, 6) & 0x3fff != 0 {
                return Err(FrameError::Fragment);
            }
            if h[9] != PROTO_UDP {
                return Err(FrameError::NotUdp(h[9]));
            }
            let total = usize::from(be16(h, 2));
            let bad_length = FrameError::BadIpLength {
                ip: total,
                frame: net.len(),
            };
            let transport = net
                .get(..total)
                .and_then(|packet| packet.get(hlen..))
                .ok_or(bad_length)?;
            if verify_checksum && checksum_fold(checksum_add(0, header)) != 0xffff {
                return Err(FrameError::BadIpChecksum);
            }
            Ok(IpView {
                src: IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15])),
                dst: IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19])),
                ecn: Ecn::from_bits(h[1]),
                transport,
            })
        }
        ETH_P_IPV6 => {
            let h = net.get(..IPV6_HLEN).ok_or(FrameError::Truncated("ipv6"))?;
            let version = h[0] >> 4;
            if version != 6 {
                return Err(FrameError::BadIpVersion(version));
            }
            let tc = (h[0] << 4) | (h[1] >> 4);
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            dst.copy_from_slice(&h[24..40]);
            let total = IPV6_HLEN + usize::from(be16(h, 4));
            let mut rest = net.get(IPV6_HLEN..total).ok_or(FrameError::BadIpLength {
                ip: total,
                frame: net.len(),
            })?;
            let mut next = h[6];
            let mut walked = 0;
            loop {
                match next {
                    PROTO_UDP => break,
                    PROTO_FRAGMENT => return Err(FrameError::Fragment),
                    PROTO_HOPOPTS | PROTO_ROUTING | PROTO_DSTOPTS => {}
                    other => return Err(FrameError::NotUdp(other)),
                }
                if walked == MAX_IPV6_EXT_HEADERS {
                    return Err(FrameError::TooManyExtHeaders);
                }
                let oh = rest
                    .get(..2)
                    .ok_or(FrameError::Truncated("ipv6 extension"))?;
                next = oh[0];
                let len = (usize::from(oh[1]) + 1) * 8;
                rest = rest
                    .get(len..)
                    .ok_or(FrameError::Truncated("ipv6 extension"))?;
                walked += 1;
            }
            Ok(IpView {
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                ecn: Ecn::from_bits(tc),
                transport: rest,
            })
        }
        other => Err(FrameError::NotIp(other)),
    }
}

/// Outcome of the classifier rule for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// CAMP traffic: goes to the AF_XDP socket of the receiving queue (or
    /// to the kernel when that queue has no socket).
    Camp {
        /// Destination (our) address and port.
        local: SocketAddr,
        /// Source (peer) address and port.
        remote: SocketAddr,
    },
    /// Not CAMP traffic (ARP, NDP, other protocols, ports, fragments):
    /// passed to the kernel.
    Other,
    /// Malformed frame: passed to the kernel and counted.
    Malformed(FrameError),
}

/// The XDP classifier rule, in Rust. Must agree with
/// `bpf/camp_classifier.bpf.c` (tested with `BPF_PROG_TEST_RUN`).
pub fn classify(frame: &[u8], is_camp_port: impl Fn(u16) -> bool) -> Classification {
    let eth = match parse_eth(frame) {
        Ok(e) => e,
        Err(e) => return Classification::Malformed(e),
    };
    let ip = match parse_ip(frame, &eth, false) {
        Ok(ip) => ip,
        Err(
            FrameError::NotIp(_)
            | FrameError::Fragment
            | FrameError::NotUdp(_)
            | FrameError::TooManyExtHeaders,
        ) => {
            return Classification::Other;
        }
        Err(e) => return Classification::Malformed(e),
    };
    let Some(udp) = ip.transport.get(..UDP_HLEN) else {
        return Classification::Malformed(FrameError::Truncated("udp"));
    };
    let dport = be16(udp, 2);
    if !is_camp_port(dport) {
        return Classification::Other;
    }
    let ulen = usize::from(be16(udp, 4));
    if ulen < UDP_HLEN || ulen > ip.transport.len() {
        return Classification::Malformed(FrameError::BadUdpLength {
            udp: ulen,
            ip: ip.transport.len(),
        });
    }
    Classification::Camp {
        local: SocketAddr::new(ip.dst, dport),
        remote: SocketAddr::new(ip.src, be16(udp, 0)),
    }
}

/// A received UDP datagram, borrowed from its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpView<'a> {
    /// Link layer.
    pub eth: EthView,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// ECN codepoint from the IP header.
    pub ecn: Ecn,
    /// UDP payload (Ethernet padding excluded).
    pub payload: &'a [u8],
}

/// Parses and verifies a UDP frame: Ethernet (+VLAN), IPv4 (header
/// checksum, total length) or IPv6 (payload length, extension headers),
/// UDP length and checksum (mandatory for IPv6, optional for IPv4).
pub fn parse_udp(frame: &[u8]) -> Result<UdpView<'_>, FrameError> {
    let eth = parse_eth(frame)?;
    let ip = parse_ip(frame, &eth, true)?;
    let udp = ip
        .transport
        .get(..UDP_HLEN)
        .ok_or(FrameError::Truncated("udp"))?;
    let ulen = usize::from(be16(udp, 4));
    let bad_length = FrameError::BadUdpLength {
        udp: ulen,
        ip: ip.transport.len(),
    };
    let segment = ip.transport.get(..ulen).ok_or(bad_length)?;
    let payload = segment.get(UDP_HLEN..).ok_or(bad_length)?;
    let csum = be16(udp, 6);
    match (ip.src, csum) {
        (IpAddr::V4(_), 0) => {}
        (_, 0) => return Err(FrameError::BadUdpChecksum),
        _ => {
            let sum = checksum_add(pseudo_header_sum(ip.src, ip.dst, ulen), segment);
            if checksum_fold(sum) != 0xffff {
                return Err(FrameError::BadUdpChecksum);
            }
        }
    }
    Ok(UdpView {
        eth,
        src: SocketAddr::new(ip.src, be16(udp, 0)),
        dst: SocketAddr::new(ip.dst, be16(udp, 2)),
        ecn: ip.ecn,
        payload,
    })
}

/// Addressing for one outgoing frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Source MAC (our NIC).
    pub src_mac: Mac,
    /// Destination MAC (next hop).
    pub dst_mac: Mac,
    /// Optional VLAN TCI to tag the frame with.
    pub vlan: Option<u16>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// ECN codepoint.
    pub ecn: Ecn,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
}

impl FrameHeader {
    /// Bytes of headers in front of the payload.
    pub fn header_len(&self) -> usize {
        let l2 = ETH_HLEN + if self.vlan.is_some() { VLAN_HLEN } else { 0 };
        let l3 = if self.src.is_ipv4() {
            IPV4_HLEN
        } else {
            IPV6_HLEN
        };
        l2 + l3 + UDP_HLEN
    }
}

/// Writes headers and `payload` into `buf`, computing the IPv4 header and
/// UDP checksums. Returns the frame length.
pub fn write_udp(buf: &mut [u8], h: &FrameHeader, payload: &[u8]) -> Result<usize, FrameError> {
    let (need, l4, ulen) = write_udp_unsummed(buf, h, payload)?;
    let udp = &mut buf[l4..l4 + ulen];
    let sum = checksum_add(pseudo_header_sum(h.src.ip(), h.dst.ip(), ulen), udp);
    let mut c = !checksum_fold(sum);
    if c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    Ok(need)
}

/// [`write_udp`] for checksum offload: the UDP checksum field holds the
/// folded pseudo-header sum (not inverted), as a device completing a
/// `CHECKSUM_PARTIAL` frame expects; the payload is not summed. Returns the
/// frame length and the offset of the UDP header (where summing starts; the
/// field is 6 bytes into it).
pub fn write_udp_offload(
    buf: &mut [u8],
    h: &FrameHeader,
    payload: &[u8],
) -> Result<(usize, usize), FrameError> {
    let (need, l4, ulen) = write_udp_unsummed(buf, h, payload)?;
    let partial = checksum_fold(pseudo_header_sum(h.src.ip(), h.dst.ip(), ulen));
    buf[l4 + 6..l4 + 8].copy_from_slice(&partial.to_be_bytes());
    Ok((need, l4))
}

/// Offset of the checksum field inside the UDP header.
pub const UDP_CSUM_OFFSET: usize = 6;

/// Headers (IPv4 checksum included) and payload, the UDP checksum zero.
/// Returns (frame length, UDP header offset, UDP length).
fn write_udp_unsummed(
    buf: &mut [u8],
    h: &FrameHeader,
    payload: &[u8],
) -> Result<(usize, usize, usize), FrameError> {
    let hl = h.header_len();
    let need = hl + payload.len();
    if need > buf.len() {
        return Err(FrameError::BufferTooSmall {
            need,
            have: buf.len(),
        });
    }
    let ulen = UDP_HLEN + payload.len();
    if ulen > usize::from(u16::MAX) - IPV4_HLEN {
        return Err(FrameError::PayloadTooLarge(payload.len()));
    }
    buf[0..6].copy_from_slice(&h.dst_mac);
    buf[6..12].copy_from_slice(&h.src_mac);
    let mut l3 = 12;
    if let Some(tci) = h.vlan {
        buf[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        buf[14..16].copy_from_slice(&tci.to_be_bytes());
        l3 += VLAN_HLEN;
    }
    let l4 = match (h.src.ip(), h.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf[l3..l3 + 2].copy_from_slice(&ETH_P_IP.to_be_bytes());
            let ip = &mut buf[l3 + 2..l3 + 2 + IPV4_HLEN];
            ip[0] = 0x45;
            ip[1] = h.ecn.bits();
            ip[2..4].copy_from_slice(&((IPV4_HLEN + ulen) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&[0, 0]); // id: DF set, never fragmented
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
            ip[8] = h.ttl;
            ip[9] = PROTO_UDP;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = !checksum_fold(checksum_add(0, ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            l3 + 2 + IPV4_HLEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf[l3..l3 + 2].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
            let ip = &mut buf[l3 + 2..l3 + 2 + IPV6_HLEN];
            let tc = h.ecn.bits();
            ip[0] = 0x60 | (tc >> 4);
            ip[1] = tc << 4;
            ip[2] = 0;
            ip[3] = 0;
            ip[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
            ip[6] = PROTO_UDP;
            ip[7] = h.ttl;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            l3 + 2 + IPV6_HLEN
        }
        _ => return Err(FrameError::MixedFamilies),
    };
    let udp = &mut buf[l4..l4 + ulen];
    udp[0..2].copy_from_slice(&h.src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&h.dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[UDP_HLEN..].copy_from_slice(payload);
    Ok((need, l4, ulen))
}

/// Adds `data` to a running 32-bit ones'-complement sum (RFC 1071).
pub fn checksum_add(sum: u64, data: &[u8]) -> u64 {
    // The ones'-complement sum is byte-order independent (RFC 1071 §2):
    // add native-endian 32-bit words, fold, and swap once at the end.
    let mut acc = 0u64;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_ne_bytes([c[4], c[5], c[6], c[7]]));
        acc += u64::from(u32::from_ne_bytes([c[8], c[9], c[10], c[11]]));
        acc += u64::from(u32::from_ne_bytes([c[12], c[13], c[14], c[15]]));
    }
    let mut words = chunks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_ne_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        // In network order a trailing byte is the high byte of a zero-padded word.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    sum + u64::from(u16::from_be(checksum_fold(acc)))
}

/// Folds a running sum to 16 bits (not inverted).
pub fn checksum_fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, ulen: usize) -> u64 {
    let mut sum = u64::from(PROTO_UDP) + ulen as u64;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = checksum_add(sum, &s.octets());
            sum = checksum_add(sum, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            sum = checksum_add(sum, &s.octets());
            sum = checksum_add(sum, &d.octets());
        }
        // Mixed families never reach here: the parser reads both from one
        // header and the builder rejects them first.
        _ => {}
    }
    sum
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) const MAC_A: Mac = [0x02, 0, 0, 0, 0, 0x0a];
    pub(crate) const MAC_B: Mac = [0x02, 0, 0, 0, 0, 0x0b];

    pub(crate) fn hdr(src: &str, dst: &str) -> FrameHeader {
        FrameHeader {
            src_mac: MAC_A,
            dst_mac: MAC_B,
            vlan: None,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ecn: Ecn::Ect0,
            ttl: 64,
        }
    }

    pub(crate) fn build(h: &FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; h.header_len() + payload.len()];
        let n = write_udp(&mut buf, h, payload).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn ipv4_checksum_matches_rfc1071_example() {
        // Header from RFC 1071 / common worked example: checksum 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!checksum_fold(checksum_add(0, &h)), 0xb861);
    }

    #[test]
    fn odd_length_checksum_pads_with_zero() {
        assert_eq!(
            checksum_fold(checksum_add(0, &[0x12, 0x34, 0x56])),
            0x1234 + 0x5600
        );
    }

    #[test]
    fn build_then_parse_round_trips_v4_v6_vlan() {
        for (src, dst) in [
            ("198.18.0.1:4433", "198.18.0.2:5000"),
            ("[2001:db8::1]:4433", "[2001:db8::2]:5000"),
        ] {
            for vlan in [None, Some(42)] {
                for ecn in [Ecn::NotEct, Ecn::Ect0, Ecn::Ect1, Ecn::Ce] {
                    let mut h = hdr(src, dst);
                    h.vlan = vlan;
                    h.ecn = ecn;
                    let f = build(&h, b"hello camp");
                    let v = parse_udp(&f).unwrap();
                    assert_eq!(v.src, h.src);
                    assert_eq!(v.dst, h.dst);
                    assert_eq!(v.ecn, ecn);
                    assert_eq!(v.payload, b"hello camp");
                    assert_eq!(v.eth.vlan, vlan);
                    assert_eq!(v.eth.src, MAC_A);
                    assert_eq!(v.eth.dst, MAC_B);
                }
            }
        }
    }

    /// What a device (or the kernel's `skb_checksum_help`) does with a
    /// `CHECKSUM_PARTIAL` frame: sum from `start` to the end over the
    /// pseudo-header sum already in the field, store the complement.
    fn complete_like_a_device(frame: &mut [u8], start: usize) {
        let c = !checksum_fold(checksum_add(0, &frame[start..]));
        let c = if c == 0 { 0xffff } else { c };
        frame[start + UDP_CSUM_OFFSET..start + UDP_CSUM_OFFSET + 2]
            .copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn offloaded_frames_complete_to_the_software_checksum() {
        for (src, dst) in [
            ("198.18.0.1:4433", "198.18.0.2:5000"),
            ("[2001:db8::1]:4433", "[2001:db8::2]:5000"),
        ] {
            for vlan in [None, Some(7)] {
                for payload in [&b""[..], b"x", b"hello camp", &[0xffu8; 1200][..]] {
                    let mut h = hdr(src, dst);
                    h.vlan = vlan;
                    let soft = build(&h, payload);
                    let mut buf = vec![0u8; soft.len() + 8];
                    let (n, l4) = write_udp_offload(&mut buf, &h, payload).unwrap();
                    assert_eq!(n, soft.len());
                    assert_eq!(l4, h.header_len() - UDP_HLEN);
                    let mut off = buf[..n].to_vec();
                    // Not a valid frame until completed (unless by chance).
                    assert_eq!(off[..l4 + 6], soft[..l4 + 6]);
                    complete_like_a_device(&mut off, l4);
                    assert_eq!(off, soft, "{src} vlan {vlan:?} {} B", payload.len());
                    assert!(parse_udp(&off).is_ok());
                }
            }
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let h = hdr("198.18.0.1:1", "198.18.0.2:2");
        let mut f = build(&h, b"x");
        f.resize(60, 0); // minimum Ethernet frame
        assert_eq!(parse_udp(&f).unwrap().payload, b"x");
    }

    #[test]
    fn corrupted_payload_fails_udp_checksum() {
        let h = hdr("198.18.0.1:1", "198.18.0.2:2");
        let mut f = build(&h, b"payload");
        *f.last_mut().unwrap() ^= 1;
        assert_eq!(parse_udp(&f), Err(FrameError::BadUdpChecksum));
    }

    #[test]
    fn corrupted_ipv4_header_fails_header_checksum() {
        let h = hdr("198.18.0.1:1", "198.18.0.2:2");
        let mut f = build(&h, b"payload");
        f[ETH_HLEN + 8] ^= 1; // TTL
        assert_eq!(parse_udp(&f), Err(FrameError::BadIpChecksum));
    }

    #[test]
    fn zero_udp_checksum_ok_on_v4_rejected_on_v6() {
        let h = hdr("198.18.0.1:1", "198.18.0.2:2");
        let mut f = build(&h, b"p");
        f[ETH_HLEN + IPV4_HLEN + 6..ETH_HLEN + IPV4_HLEN + 8].copy_from_slice(&[0, 0]);
        assert!(parse_udp(&f).is_ok());
        let h = hdr("[2001:db8::1]:1", "[2001:db8::2]:2");
        let mut f = build(&h, b"p");
        f[ETH_HLEN + IPV6_HLEN + 6..ETH_HLEN + IPV6_HLEN + 8].copy_from_slice(&[0, 0]);
        assert_eq!(parse_udp(&f), Err(FrameError::BadUdpChecksum));
    }

    #[test]
    fn builder_rejects_small_buffer_and_mixed_families() {
        let h = hdr("198.18.0.1:1", "198.18.0.2:2");
        let mut small = [0u8; 20];
        assert!(matches!(
            write_udp(&mut small, &h, b"x"),
            Err(FrameError::BufferTooSmall { .. })
        ));
        let mut h2 = h;
        h2.dst = "[2001:db8::2]:2".parse().unwrap();
        let mut buf = [0u8; 128];
        assert_eq!(
            write_udp(&mut buf, &h2, b"x"),
            Err(FrameError::MixedFamilies)
        );
    }

    #[test]
    fn ecn_conversions_round_trip() {
        for bits in 0..4u8 {
            let e = Ecn::from_bits(bits);
            assert_eq!(e.bits(), bits);
            assert_eq!(Ecn::from_quinn(e.to_quinn()), e);
            assert_eq!(Ecn::from_quinn_udp(e.to_quinn_udp()), e);
        }
        assert_eq!(Ecn::NotEct.to_quinn(), None);
    }

    /// The committed fuzz seeds parse as their names say, and every parsed
    /// seed satisfies the fuzz target's rebuild property. (Only the named
    /// seeds: a fuzzing run adds its own files to the directory.)
    #[test]
    fn fuzz_seed_corpus_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/parse_udp");
        let seeds = [
            "arp",
            "ipv4_other_port",
            "ipv4_camp",
            "ipv4_vlan",
            "ipv6_camp",
            "ipv6_ext2",
        ];
        for name in seeds {
            let data = std::fs::read(format!("{dir}/{name}"))
                .unwrap_or_else(|e| panic!("seed {name}: {e}"));
            let parsed = parse_udp(&data);
            match name {
                "arp" => assert_eq!(parsed, Err(FrameError::NotIp(0x0806))),
                "ipv4_other_port" => {
                    assert_eq!(classify(&data, |p| p == 4433), Classification::Other);
                }
                n => {
                    let v = parsed.unwrap_or_else(|e| panic!("seed {n}: {e}"));
                    assert_eq!(v.dst.port(), 4433, "seed {n}");
                    assert!(matches!(
                        classify(&data, |p| p == 4433),
                        Classification::Camp { .. }
                    ));
                    let h = FrameHeader {
                        src_mac: v.eth.src,
                        dst_mac: v.eth.dst,
                        vlan: v.eth.vlan,
                        src: v.src,
                        dst: v.dst,
                        ecn: v.ecn,
                        ttl: 64,
                    };
                    let again = build(&h, v.payload);
                    assert_eq!(parse_udp(&again).unwrap().payload, v.payload);
                }
            }
        }
    }

    /// Issue 16, found by the `parse_udp` fuzz target: IPv6 with payload
    /// length 0 whose hop-by-hop header (and the UDP datagram to port 4433
    /// after it) lie in the bytes that follow the IP packet. The parser
    /// subtracted the UDP offset from the end of the IP packet: a panic in
    /// debug builds, and in release a wrapped length that let the trailing
    /// bytes through as a datagram.
    pub(crate) const EXT_PAST_PAYLOAD_81: [u8; 81] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x20, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
        0x60, 0x20, 0x00, 0x00, 0x00, 0x1b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb9, 0x0d, 0x00,
        0x01, 0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x01, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x13, 0x88, 0x11, 0x51, 0x00, 0x0b, 0xa6, 0x11, 0x65, 0x78, 0x74, 0xa6, 0x11,
        0x0b, 0xa6, 0x11, 0x65, 0x78, 0x74,
    ];

    /// The second reproducer of issue 16: the same shape, 73 bytes.
    pub(crate) const EXT_PAST_PAYLOAD_73: [u8; 73] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, 0x60,
        0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1b, 0x3c, 0x40, 0x20, 0x01, 0x0d, 0xb8,
        0x00, 0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x11, 0x00, 0x01, 0x04, 0x00, 0x00,
        0x00, 0x00, 0x13, 0x88, 0x11, 0x51, 0x00, 0x0b, 0xa6, 0x11, 0x65, 0x78, 0x74,
    ];

    #[test]
    fn extension_headers_past_ipv6_payload_are_errors() {
        for frame in [&EXT_PAST_PAYLOAD_81[..], &EXT_PAST_PAYLOAD_73[..]] {
            assert_eq!(
                parse_udp(frame),
                Err(FrameError::Truncated("ipv6 extension"))
            );
            assert_eq!(
                classify(frame, |p| p == 4433),
                Classification::Malformed(FrameError::Truncated("ipv6 extension"))
            );
            // With the payload length covering the extension header and the
            // 11-byte datagram, both get past every length check: the
            // classifier takes the frame and the receive parser stops only at
            // the (fuzzer-made) UDP checksum. So the length alone decided.
            let mut fixed = frame.to_vec();
            fixed[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(8u16 + 11).to_be_bytes());
            assert!(matches!(
                classify(&fixed, |p| p == 4433),
                Classification::Camp { .. }
            ));
            assert_eq!(parse_udp(&fixed), Err(FrameError::BadUdpChecksum));
        }
    }

    /// The committed corpus holds both reproducers byte for byte.
    #[test]
    fn issue_16_reproducers_are_in_the_corpus() {
        let corpus = [
            &include_bytes!("../fuzz/corpus/parse_udp/ipv6_ext_past_payload_81")[..],
            &include_bytes!("../fuzz/corpus/parse_udp/ipv6_ext_past_payload_73")[..],
        ];
        assert_eq!(corpus, [&EXT_PAST_PAYLOAD_81[..], &EXT_PAST_PAYLOAD_73[..]]);
    }

    /// IPv6 with one extension header inside the payload length, then the
    /// UDP header: the payload length is cut at every byte from the end
    /// of the extension header to the end of the datagram.
    #[test]
    fn udp_beyond_ipv6_payload_is_an_error() {
        let h = hdr("[2001:db8::1]:4433", "[2001:db8::2]:4433");
        let plain = build(&h, b"payload");
        let (head, udp) = plain.split_at(ETH_HLEN + IPV6_HLEN);
        let mut f = head.to_vec();
        f[ETH_HLEN + 6] = PROTO_DSTOPTS;
        f.extend_from_slice(&[PROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        f.extend_from_slice(udp);
        let full = 8 + udp.len();
        for plen in 8..=full {
            let mut g = f.clone();
            g[ETH_HLEN + 4..ETH_HLEN + 6].copy_from_slice(&(plen as u16).to_be_bytes());
            let want_udp = if plen < 8 + UDP_HLEN {
                Err(FrameError::Truncated("udp"))
            } else if plen < full {
                Err(FrameError::BadUdpLength {
                    udp: udp.len(),
                    ip: plen - 8,
                })
            } else {
                Ok(&b"payload"[..])
            };
            assert_eq!(parse_udp(&g).map(|v| v.payload), want_udp, "plen {plen}");
            let class = classify(&g, |p| p == 4433);
            match want_udp {
                Ok(_) => assert!(matches!(class, Classification::Camp { .. })),
                Err(e) => assert_eq!(class, Classification::Malformed(e), "plen {plen}"),
            }
        }
    }

    /// A UDP length that reaches into Ethernet padding (past the IPv4 total
    /// length but inside the frame) is malformed for both parsers.
    #[test]
    fn udp_length_into_ethernet_padding_is_an_error() {
        let h = hdr("198.18.0.1:4433", "198.18.0.2:4433");
        let mut f = build(&h, b"x");
        f.resize(60, 0);
        let ulen = (UDP_HLEN + 2) as u16;
        f[ETH_HLEN + IPV4_HLEN + 4..ETH_HLEN + IPV4_HLEN + 6].copy_from_slice(&ulen.to_be_bytes());
        let want = FrameError::BadUdpLength { udp: 10, ip: 9 };
        assert_eq!(parse_udp(&f), Err(want));
        assert_eq!(classify(&f, |p| p == 4433), Classification::Malformed(want));
    }

    /// An IPv4 total length shorter than the header, or longer than the
    /// frame, is malformed for the classifier too.
    #[test]
    fn bad_ipv4_total_length_is_malformed() {
        let h = hdr("198.18.0.1:4433", "198.18.0.2:4433");
        let f = build(&h, b"x");
        for total in [0u16, 19, f.len() as u16 - 13] {
            let mut g = f.clone();
            g[ETH_HLEN + 2..ETH_HLEN + 4].copy_from_slice(&total.to_be_bytes());
            let want = FrameError::BadIpLength {
                ip: usize::from(total),
                frame: f.len() - ETH_HLEN,
            };
            assert_eq!(classify(&g, |p| p == 4433), Classification::Malformed(want));
        }
    }

    /// Straightforward RFC 1071 sum over big-endian 16-bit words.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut sum = 0u64;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u64::from);
            sum += hi | lo;
        }
        checksum_fold(sum)
    }

    proptest! {
        #[test]
        fn checksum_matches_reference(data in prop::collection::vec(any::<u8>(), 0..300), start in 0u64..0x1_0000) {
            prop_assert_eq!(
                checksum_fold(checksum_add(start, &data)),
                checksum_fold(start + u64::from(reference_sum(&data)))
            );
        }

        #[test]
        fn parse_never_panics(frame in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_udp(&frame);
            let _ = classify(&frame, |p| p % 2 == 0);
        }

        #[test]
        fn truncations_are_errors_not_panics(payload in prop::collection::vec(any::<u8>(), 0..64), cut in 0usize..200) {
            let f = build(&hdr("198.18.0.1:4433", "198.18.0.2:4433"), &payload);
            let cut = cut.min(f.len());
            if cut < f.len() {
                prop_assert!(parse_udp(&f[..cut]).is_err());
            } else {
                prop_assert_eq!(parse_udp(&f[..cut]).unwrap().payload, &payload[..]);
            }
        }
    }
}
