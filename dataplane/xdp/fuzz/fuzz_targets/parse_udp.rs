//! Fuzzes the receive-side frame parser and the classifier mirror: no
//! panics, the classifier redirects nothing the parser refuses for a reason
//! other than a checksum, and every frame that parses rebuilds into a frame
//! that parses to the same datagram.
//!
//! The module is compiled here from camp-xdp's own source file rather than through the
//! `camp-xdp` library, which links libbpf and netlink and builds the BPF classifier: with
//! sanitizers that took most of CI's fuzzing budget. `frame.rs` depends only on std,
//! thiserror and quinn's ECN types; if it ever reaches into the rest of camp-xdp, this target
//! stops compiling and CI says so.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/frame.rs"]
mod frame;

use frame::{Classification, FrameError, FrameHeader, classify, parse_udp, write_udp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let class = classify(data, |p| p == 4433);
    let v = match parse_udp(data) {
        Ok(v) => v,
        // The classifier checks everything the receive parser does except the two
        // checksums: a frame it redirects fails only on those.
        Err(FrameError::BadIpChecksum | FrameError::BadUdpChecksum) => return,
        Err(e) => {
            assert!(!matches!(class, Classification::Camp { .. }), "{e:?}");
            return;
        }
    };
    // A frame that fully parses to the CAMP port is CAMP for the classifier.
    if v.dst.port() == 4433 {
        assert!(matches!(class, Classification::Camp { .. }), "{class:?}");
    }
    let h = FrameHeader {
        src_mac: v.eth.src,
        dst_mac: v.eth.dst,
        vlan: v.eth.vlan,
        src: v.src,
        dst: v.dst,
        ecn: v.ecn,
        ttl: 64,
    };
    let mut buf = vec![0u8; h.header_len() + v.payload.len()];
    let n = write_udp(&mut buf, &h, v.payload).expect("a parsed datagram must rebuild");
    let again = parse_udp(&buf[..n]).expect("a rebuilt frame must parse");
    assert_eq!(
        (again.src, again.dst, again.ecn, again.payload),
        (v.src, v.dst, v.ecn, v.payload)
    );
});
