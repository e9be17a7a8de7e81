//! Packet captures of the emulated network: every datagram a node hands to a link, as the
//! sender's host would capture it (a datagram the link then drops is in the capture), one
//! pcap per route, with the client's TLS key log so that Wireshark or tshark decrypt the
//! QUIC packets (`tshark -r path0.pcap -o tls.keylog_file:keys.log`).
//!
//! Link type `LINKTYPE_RAW` (IPv4/IPv6 with no link layer); timestamps are the simulation
//! clock (the epoch at 0 s). The IP and UDP headers are synthesised: IPv4 with its header
//! checksum, UDP with its checksum (over the pseudo header), so no tool flags them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// `LINKTYPE_RAW` (raw IP, RFC-less but as libpcap defines it).
const LINKTYPE_RAW: u32 = 101;
/// Captured bytes per packet (enough for any datagram quinn writes).
const SNAPLEN: u32 = 65_535;

/// One pcap file being written in memory.
#[derive(Debug, Clone)]
pub struct PcapBuf {
    bytes: Vec<u8>,
    packets: u64,
}

impl Default for PcapBuf {
    fn default() -> Self {
        let mut bytes = Vec::with_capacity(1 << 16);
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // microsecond timestamps
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&SNAPLEN.to_le_bytes());
        bytes.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        Self { bytes, packets: 0 }
    }
}

impl PcapBuf {
    /// Appends one UDP datagram `from` → `to` sent at `at_us`.
    pub fn push(&mut self, at_us: u64, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        let mut packet = Vec::with_capacity(48 + payload.len());
        let udp_len = 8 + payload.len();
        match (from.ip(), to.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let total = (20 + udp_len) as u16;
                let mut ip = [0u8; 20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[6] = 0x40; // don't fragment
                ip[8] = 64;
                ip[9] = 17;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let sum = fold(sum16(&ip, 0));
                ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
                packet.extend_from_slice(&ip);
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
                push_udp(&mut packet, &pseudo, from.port(), to.port(), payload);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ip = [0u8; 40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
                ip[6] = 17;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                packet.extend_from_slice(&ip);
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend_from_slice(&s.octets());
                pseudo.extend_from_slice(&d.octets());
                pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
                push_udp(&mut packet, &pseudo, from.port(), to.port(), payload);
            }
            // Mixed families never share a link.
            _ => return,
        }
        let len = packet.len() as u32;
        let caught = len.min(SNAPLEN);
        self.bytes
            .extend_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&caught.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&packet[..caught as usize]);
        self.packets += 1;
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Packets written.
    pub fn packets(&self) -> u64 {
        self.packets
    }
}

fn push_udp(packet: &mut Vec<u8>, pseudo: &[u8], sport: u16, dport: u16, payload: &[u8]) {
    let len = (8 + payload.len()) as u16;
    let mut udp = [0u8; 8];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&len.to_be_bytes());
    let mut sum = sum16(pseudo, 0);
    sum = sum16(&udp, sum);
    sum = sum16(payload, sum);
    let c = !fold(sum);
    // RFC 768: a computed 0 is sent as all ones.
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    packet.extend_from_slice(&udp);
    packet.extend_from_slice(payload);
}

/// One's-complement sum of big-endian 16-bit words (an odd byte padded with zero).
fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The captures of one simulation, one per route (unordered address pair).
#[derive(Debug, Default, Clone)]
pub struct Capture {
    routes: BTreeMap<(IpAddr, IpAddr), PcapBuf>,
}

impl Capture {
    /// Records a datagram.
    pub fn record(&mut self, at_us: u64, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        let (a, b) = (from.ip(), to.ip());
        let key = if a <= b { (a, b) } else { (b, a) };
        self.routes
            .entry(key)
            .or_default()
            .push(at_us, from, to, payload);
    }

    /// The pcaps by route, lower address first.
    pub fn routes(&self) -> impl Iterator<Item = ((IpAddr, IpAddr), &PcapBuf)> {
        self.routes.iter().map(|(k, v)| (*k, v))
    }
}

/// TLS secrets in the NSS key log format (SSLKEYLOGFILE) that Wireshark reads, gathered in
/// memory from the simulated client's rustls.
#[derive(Debug, Default)]
pub struct KeyLogBuf(Mutex<String>);

impl KeyLogBuf {
    /// A shareable, empty key log.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The key log's text so far.
    pub fn text(&self) -> String {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl rustls::KeyLog for KeyLogBuf {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        if let Ok(mut s) = self.0.lock() {
            s.push_str(&format!("{label} {} {}\n", hex(client_random), hex(secret)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_valid_checksums_and_records_their_lengths() {
        let mut p = PcapBuf::default();
        let from: SocketAddr = "198.18.0.2:50000".parse().unwrap();
        let to: SocketAddr = "198.18.0.1:4433".parse().unwrap();
        p.push(1_500_000, from, to, b"hello quic");
        let b = p.bytes();
        assert_eq!(&b[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes(b[20..24].try_into().unwrap()),
            LINKTYPE_RAW
        );
        let rec = &b[24..];
        assert_eq!(u32::from_le_bytes(rec[0..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(rec[4..8].try_into().unwrap()), 500_000);
        let len = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, 20 + 8 + 10);
        let pkt = &rec[16..16 + len];
        // A correct IPv4 header sums to all ones.
        assert_eq!(fold(sum16(&pkt[..20], 0)), 0xffff);
        // So does UDP with its pseudo header.
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&pkt[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 18]);
        assert_eq!(fold(sum16(&pkt[20..], sum16(&pseudo, 0))), 0xffff);
        assert_eq!(&pkt[28..], b"hello quic");
        assert_eq!(p.packets(), 1);
    }
}
