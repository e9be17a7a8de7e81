//! Rough per-frame cost of the receive parser and the transmit builder
//! (user space only): `cargo run --release -p camp-xdp --example parse_speed`.

use std::hint::black_box;
use std::time::Duration;

/// CPU time of this thread (wall time is unreliable on a shared machine).
fn cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(Duration::ZERO, Duration::from)
}

use camp_xdp::frame::{Ecn, FrameHeader, parse_udp, write_udp};

fn main() {
    let h = FrameHeader {
        src_mac: [2, 0, 0, 0, 0, 1],
        dst_mac: [2, 0, 0, 0, 0, 2],
        vlan: None,
        src: "198.18.0.2:5000".parse().expect("addr"),
        dst: "198.18.0.1:4433".parse().expect("addr"),
        ecn: Ecn::Ect0,
        ttl: 64,
    };
    let payload = [0x5au8; 64];
    let mut buf = [0u8; 2048];
    let n = write_udp(&mut buf, &h, &payload).expect("build");
    let iters = 5_000_000u32;
    let t = cpu();
    let mut sum = 0usize;
    for _ in 0..iters {
        sum += parse_udp(black_box(&buf[..n])).map_or(0, |v| v.payload.len());
    }
    let parse = (cpu() - t).as_nanos() as f64 / f64::from(iters);
    let t = cpu();
    for _ in 0..iters {
        sum += write_udp(black_box(&mut buf), black_box(&h), black_box(&payload)).unwrap_or(0);
    }
    let build = (cpu() - t).as_nanos() as f64 / f64::from(iters);
    println!("parse_udp {parse:.1} ns/frame, write_udp {build:.1} ns/frame (64 B payload; {sum})");
}
