//! The Rust mirror of the classifier rule (`camp_xdp::frame::classify`)
//! against the real BPF program, run with `BPF_PROG_TEST_RUN` on crafted
//! frames. Root only.

mod common;

use camp_xdp::Classifier;
use camp_xdp::classifier::GlobalCounters;
use camp_xdp::frame::{Classification, Ecn, FrameHeader, classify, write_udp};
use common::root_or_skip;
use proptest::prelude::*;

const CAMP: u16 = 4433;
const XDP_PASS: u32 = 2;

fn udp(src: &str, dst: &str, vlan: Option<u16>, payload: &[u8]) -> Vec<u8> {
    let h = FrameHeader {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        ecn: Ecn::Ect0,
        ttl: 64,
    };
    let mut buf = vec![0u8; h.header_len() + payload.len()];
    let n = write_udp(&mut buf, &h, payload).unwrap();
    buf.truncate(n);
    buf
}

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[
        0, 1, 0x08, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 18, 0, 2, 0, 0, 0, 0, 0, 0, 198, 18, 0, 1,
    ]);
    f.resize(60, 0);
    f
}

/// An ICMPv6 neighbour solicitation for 2001:db8::1 (NDP).
fn ndp() -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let mut ip = vec![0x60, 0, 0, 0, 0, 24, 58, 255];
    ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ip.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f
}

/// IPv6 UDP frame with `ext` extension headers (each 8 bytes, of type
/// `kind`) between the fixed header and UDP.
fn ipv6_with_ext(kind: u8, ext: usize, dport: u16) -> Vec<u8> {
    let plain = udp(
        "[2001:db8::2]:5000",
        &format!("[2001:db8::1]:{dport}"),
        None,
        b"payload",
    );
    let (eth_ip, udp_part) = plain.split_at(14 + 40);
    let mut f = eth_ip.to_vec();
    f[14 + 6] = if ext == 0 { 17 } else { kind };
    for i in 0..ext {
        let next = if i + 1 == ext { 17 } else { kind };
        f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]); // PadN option
    }
    f.extend_from_slice(udp_part);
    let plen = (f.len() - 54) as u16;
    f[18..20].copy_from_slice(&plen.to_be_bytes());
    f
}

/// The two reproducers of issue 16 (IPv6 extension header and UDP datagram
/// after the end of a zero-length IPv6 payload), from the committed corpus.
const EXT_PAST_PAYLOAD_81: &[u8] =
    include_bytes!("../fuzz/corpus/parse_udp/ipv6_ext_past_payload_81");
const EXT_PAST_PAYLOAD_73: &[u8] =
    include_bytes!("../fuzz/corpus/parse_udp/ipv6_ext_past_payload_73");

/// `frame` with its IPv4 total length or IPv6 payload length set to `len`.
fn with_ip_length(frame: &[u8], len: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    let at = if f[12..14] == [0x86, 0xdd] {
        14 + 4
    } else {
        14 + 2
    };
    f[at..at + 2].copy_from_slice(&len.to_be_bytes());
    f
}

fn delta(before: &GlobalCounters, after: &GlobalCounters) -> &'static str {
    let d = |a: u64, b: u64| b - a;
    match (
        d(before.pass_no_socket.packets, after.pass_no_socket.packets),
        d(before.pass_other.packets, after.pass_other.packets),
        d(before.parse_failed.packets, after.parse_failed.packets),
        d(before.redirected.packets, after.redirected.packets),
    ) {
        (1, 0, 0, 0) => "camp",
        (0, 1, 0, 0) => "other",
        (0, 0, 1, 0) => "malformed",
        other => panic!("unexpected counter change {other:?}"),
    }
}

fn expected(frame: &[u8]) -> &'static str {
    match classify(frame, |p| p == CAMP) {
        Classification::Camp { .. } => "camp",
        Classification::Other => "other",
        Classification::Malformed(_) => "malformed",
    }
}

/// Runs the BPF program on `frame` and returns what it counted it as.
fn bpf(c: &Classifier, frame: &[u8]) -> &'static str {
    let before = c.global_counters().unwrap();
    let action = c.test_run(frame).unwrap();
    // No socket is registered, so everything is passed.
    assert_eq!(action, XDP_PASS, "frame {frame:02x?}");
    delta(&before, &c.global_counters().unwrap())
}

fn loaded() -> Classifier {
    let c = Classifier::load().expect("load classifier");
    c.add_port(CAMP).unwrap();
    c
}

#[test]
fn crafted_frames_agree_with_rust_mirror() {
    if !root_or_skip("crafted_frames_agree_with_rust_mirror") {
        return;
    }
    let c = loaded();
    let ours = udp("198.18.0.2:5000", "198.18.0.1:4433", None, b"hello");
    let mut bad_udp_len = ours.clone();
    bad_udp_len[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&500u16.to_be_bytes());
    let mut frag = ours.clone();
    frag[14 + 6] = 0x20; // more fragments
    let mut icmp = ours.clone();
    icmp[14 + 9] = 1;
    let mut bad_version = ours.clone();
    bad_version[14] = 0x55;
    // UDP length 6 bytes past the IPv4 total length, into Ethernet padding.
    let mut udp_into_padding = udp("198.18.0.3:5000", "198.18.0.1:4433", None, b"x");
    let ulen = u16::from_be_bytes([udp_into_padding[38], udp_into_padding[39]]);
    udp_into_padding[38..40].copy_from_slice(&(ulen + 6).to_be_bytes());
    udp_into_padding.resize(60, 0);
    let v6 = udp("[2001:db8::2]:5000", "[2001:db8::1]:4433", None, b"hello");
    let v6_ext = ipv6_with_ext(0, 1, CAMP);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("ipv4 ours", ours.clone(), "camp"),
        (
            "ipv6 ours",
            udp("[2001:db8::2]:5000", "[2001:db8::1]:4433", None, b"hello"),
            "camp",
        ),
        (
            "vlan ours",
            udp("198.18.0.2:5000", "198.18.0.1:4433", Some(7), b"hello"),
            "camp",
        ),
        (
            "other port",
            udp("198.18.0.2:5000", "198.18.0.1:4434", None, b"hello"),
            "other",
        ),
        (
            "source port only",
            udp("198.18.0.2:4433", "198.18.0.1:53", None, b"x"),
            "other",
        ),
        ("arp", arp(), "other"),
        ("ndp neighbour solicitation", ndp(), "other"),
        ("icmp", icmp, "other"),
        ("ipv4 fragment", frag, "other"),
        ("truncated udp", ours[..14 + 20 + 4].to_vec(), "malformed"),
        ("truncated ipv4", ours[..14 + 10].to_vec(), "malformed"),
        ("bad ip version", bad_version, "malformed"),
        ("bad udp length", bad_udp_len, "malformed"),
        ("ipv6 hop-by-hop + udp", ipv6_with_ext(0, 1, CAMP), "camp"),
        ("ipv6 4 dest-opts + udp", ipv6_with_ext(60, 4, CAMP), "camp"),
        ("ipv6 5 ext headers", ipv6_with_ext(60, 5, CAMP), "other"),
        ("ipv6 ext, other port", ipv6_with_ext(0, 2, 80), "other"),
        (
            "ipv6 truncated ext",
            ipv6_with_ext(0, 1, CAMP)[..14 + 40 + 4].to_vec(),
            "malformed",
        ),
        ("ipv6 fragment hdr", ipv6_with_ext(44, 1, CAMP), "other"),
        (
            "issue 16 reproducer, 81 bytes",
            EXT_PAST_PAYLOAD_81.to_vec(),
            "malformed",
        ),
        (
            "issue 16 reproducer, 73 bytes",
            EXT_PAST_PAYLOAD_73.to_vec(),
            "malformed",
        ),
        (
            "ipv6 ext past payload length",
            with_ip_length(&v6_ext, 4),
            "malformed",
        ),
        (
            "ipv6 udp header past payload length",
            with_ip_length(&v6_ext, 8 + 4),
            "malformed",
        ),
        (
            "ipv6 udp length past payload length",
            with_ip_length(&v6_ext, 8 + 12),
            "malformed",
        ),
        (
            "ipv6 payload length past frame",
            with_ip_length(&v6, 14),
            "malformed",
        ),
        (
            "ipv6 payload length within padding",
            {
                let mut f = v6.clone();
                f.extend_from_slice(&[0; 8]);
                f
            },
            "camp",
        ),
        (
            "ipv4 udp length into padding",
            udp_into_padding,
            "malformed",
        ),
        (
            "ipv4 total length past frame",
            with_ip_length(&ours, 20 + 8 + 6),
            "malformed",
        ),
        (
            "ipv4 total length below header",
            with_ip_length(&ours, 19),
            "malformed",
        ),
        (
            "ipv4 udp past total length",
            with_ip_length(&ours, 20 + 4),
            "malformed",
        ),
    ];
    for (name, frame, want) in &cases {
        assert_eq!(expected(frame), *want, "rust mirror, case {name}");
        assert_eq!(bpf(&c, frame), *want, "bpf program, case {name}");
    }
    // Per-endpoint telemetry saw the three IPv4/IPv6/VLAN CAMP frames and
    // the bad-length one from 198.18.0.2:5000.
    let remote = c
        .remote_endpoint("198.18.0.2:5000".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(remote.passed, 2, "{remote:?}"); // ipv4 + vlan (no socket registered)
    assert_eq!(remote.parse_failed, 1, "{remote:?}");
    // 198.18.0.1:4433 also saw the UDP length into padding from 198.18.0.3
    // (counted: it got as far as the port); the frames whose IP length was
    // wrong were refused before the port was known.
    let local = c.local_stats().unwrap();
    assert!(
        local
            .iter()
            .any(|(ep, s)| ep.to_string() == "198.18.0.1:4433"
                && (s.packets, s.passed, s.parse_failed) == (4, 2, 2)),
        "{local:?}"
    );
}

#[test]
fn removing_the_port_stops_classifying() {
    if !root_or_skip("removing_the_port_stops_classifying") {
        return;
    }
    let c = loaded();
    let ours = udp("198.18.0.2:5000", "198.18.0.1:4433", None, b"hello");
    assert_eq!(bpf(&c, &ours), "camp");
    c.remove_port(CAMP).unwrap();
    assert_eq!(bpf(&c, &ours), "other");
}

fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    let base = prop_oneof![
        Just(udp(
            "198.18.0.2:5000",
            "198.18.0.1:4433",
            None,
            b"hello camp"
        )),
        Just(udp(
            "198.18.0.2:5000",
            "198.18.0.1:4433",
            Some(3),
            b"hello camp"
        )),
        Just(udp(
            "[2001:db8::2]:5000",
            "[2001:db8::1]:4433",
            None,
            b"hello camp"
        )),
        Just(ipv6_with_ext(60, 2, CAMP)),
        Just(EXT_PAST_PAYLOAD_81.to_vec()),
        Just(EXT_PAST_PAYLOAD_73.to_vec()),
        Just(arp()),
        Just(ndp()),
    ];
    (
        base,
        prop::collection::vec((0usize..100, any::<u8>()), 0..4),
        14usize..120,
    )
        .prop_map(|(mut f, flips, len)| {
            for (at, v) in flips {
                if at < f.len() {
                    f[at] = v;
                }
            }
            f.truncate(len.max(14));
            f
        })
}

#[test]
fn random_mutations_agree_with_rust_mirror() {
    if !root_or_skip("random_mutations_agree_with_rust_mirror") {
        return;
    }
    let c = loaded();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    runner
        .run(&mutated_frame(), |frame| {
            prop_assert_eq!(bpf(&c, &frame), expected(&frame), "frame {:02x?}", frame);
            Ok(())
        })
        .unwrap();
}
