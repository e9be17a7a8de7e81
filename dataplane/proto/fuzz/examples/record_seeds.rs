//! Writes the seed corpora of the datagram targets from a real handshake.
//!
//! Runs the in-memory network of `camp_proto_fuzz` (a server and a two-path client: HELLO
//! on one path, JOIN on the other) and records every datagram in the input layout the
//! targets read: the client's datagrams become `server_datagram` seeds, the server's become
//! `client_datagram` seeds, each as a whole handshake and as its first flights alone. The
//! `control_after_join` and `unit_reassembly` seeds are encoded frames.
//!
//! ```sh
//! cargo run --manifest-path dataplane/proto/fuzz/Cargo.toml --example record_seeds
//! ```
//!
//! Certificates and TLS key shares are random, so each run writes different bytes; the
//! Initial packets decrypt in any run (their keys come from the client's connection id,
//! which the fixed seed fixes).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use camp_proto::{Modality, PathId, PathStatus, Reliability};
use camp_proto_fuzz::{CLIENT_ADDRS, Datagram, Net, SERVER_ADDRS, datagram_selector, push_record};
use camp_wire::{
    AddAddress, CaptureId, Feedback, Frame, Hello, PathStatusFrame, RemoveAddress, RttReport,
    UnitFlags, UnitHeader,
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut net = Net::new(2, true);
    let session = net.join(2).expect("the session joins both paths");
    // A unit from the server, so the client seeds carry a unit stream too.
    let unit = camp_proto::store::UnitSubmit {
        modality: Modality::Text,
        reliability: Reliability::Reliable,
        flags: UnitFlags::empty(),
        sync_index: 0,
        gen_time_us: 0,
        deadline_us: 0,
        capture_id: CaptureId::COMPOSED,
        payload: b"hello",
    };
    let now = net.now;
    net.server
        .send_unit(now, session, &unit)
        .expect("the session takes a unit");
    net.run(Duration::from_millis(100), |_| false);
    let log = net.log.take().expect("logging");

    for to_server in [true, false] {
        let (dir, routes): (&str, [(SocketAddr, SocketAddr); 2]) = if to_server {
            (
                "server_datagram",
                [
                    (CLIENT_ADDRS[0], SERVER_ADDRS[0]),
                    (CLIENT_ADDRS[1], SERVER_ADDRS[1]),
                ],
            )
        } else {
            (
                "client_datagram",
                [
                    (SERVER_ADDRS[0], CLIENT_ADDRS[0]),
                    (SERVER_ADDRS[1], CLIENT_ADDRS[1]),
                ],
            )
        };
        let mine: Vec<&Datagram> = log.iter().filter(|d| d.to_server == to_server).collect();
        let encode = |ds: &[&Datagram]| {
            let mut out = Vec::new();
            let mut last: Option<Instant> = None;
            for d in ds {
                let source = routes
                    .iter()
                    .position(|&(src, dst)| src == d.src && dst == d.dst)
                    .expect("a datagram of a configured path") as u8;
                let gap = last.map_or(Duration::ZERO, |l| d.sent.saturating_duration_since(l));
                last = Some(d.sent);
                push_record(&mut out, datagram_selector(source, gap), &d.data);
            }
            out
        };
        let first_of_each: Vec<&Datagram> = routes
            .iter()
            .filter_map(|&(src, _)| mine.iter().copied().find(|d| d.src == src))
            .collect();
        let handshake: Vec<&Datagram> = mine.iter().copied().take(12).collect();
        write(&root, dir, "first_datagram", &encode(&mine[..1]));
        write(&root, dir, "first_flights", &encode(&first_of_each));
        write(&root, dir, "handshake", &encode(&handshake));
        write(&root, dir, "whole_session", &encode(&mine));
        println!("{dir}: {} datagrams recorded", mine.len());
    }

    // Control-stream seeds: frames a member may send (and a few it may not).
    let frame_bytes = |f: Frame<'_>| {
        let mut buf = [0u8; 2048];
        let n = f.emit(&mut buf).expect("frame encodes");
        buf[..n].to_vec()
    };
    let rtt = frame_bytes(Frame::Rtt(RttReport {
        path_id: PathId(0),
        raw_us: 10_000,
        min_us: 10_000,
        max_us: 10_000,
        smoothed_us: 10_000,
        age_us: 0,
    }));
    let status = frame_bytes(Frame::PathStatus(PathStatusFrame {
        path_id: PathId(1),
        status_seq: 1,
        status: PathStatus::Standby,
        precedence: 2,
    }));
    let feedback = frame_bytes(Frame::Feedback(Feedback {
        interval_us: 100_000,
        playout_delay_us: 150_000,
        buffer_occupancy_us: 40_000,
        skew_mean_us: 1_000,
        skew_p95_us: 5_000,
        late_units: 0,
        lost_units: 0,
    }));
    let hello = frame_bytes(Frame::Hello(Hello {
        flags: 0,
        units_ahead: 64,
    }));
    let add = frame_bytes(Frame::AddAddress(AddAddress {
        address_id: 1,
        seq: 2,
        addr: SERVER_ADDRS[1],
    }));
    let remove = frame_bytes(Frame::RemoveAddress(RemoveAddress {
        address_id: 1,
        seq: 3,
    }));
    let mut ack = [0u8; 512];
    let n = camp_wire::emit_ack(Modality::Text, 1, &[3..5, 7..8], &mut ack).expect("ack encodes");
    let ack = ack[..n].to_vec();
    let control = [
        ("ack_to_server", vec![(0u8, ack.clone())]),
        (
            "feedback_and_rtt",
            vec![(2, feedback.clone()), (0, rtt.clone())],
        ),
        (
            "status_both_ways",
            vec![(0, status.clone()), (1, status.clone())],
        ),
        ("rtt_to_client", vec![(1, rtt.clone()), (3, rtt.clone())]),
        ("hello_after_join", vec![(0, hello.clone())]),
        ("ack_to_client", vec![(1, ack.clone())]),
        (
            "addresses_to_client",
            vec![(1, add.clone()), (3, remove.clone()), (1, add.clone())],
        ),
        ("address_to_server", vec![(0, add.clone())]),
        (
            "split_frame",
            vec![(0, ack[..3].to_vec()), (0, ack[3..].to_vec())],
        ),
    ];
    for (name, recs) in control {
        let mut out = Vec::new();
        for (sel, bytes) in recs {
            push_record(&mut out, sel, &bytes);
        }
        write(&root, "control_after_join", name, &out);
    }

    // Unit-reassembly seeds: a unit in three chunks, finished; a datagram; a gap; a reset.
    let header = UnitHeader {
        modality: Modality::Audio,
        reliability: Reliability::Reliable,
        flags: UnitFlags::empty(),
        sync_index: 0,
        seq: 0,
        gen_time_us: 1_000_000,
        deadline_us: 0,
        capture_id: CaptureId::COMPOSED,
        payload_len: 20,
    };
    let unit_frame = |seq: u64, modality: Modality| {
        let mut buf = vec![0u8; camp_wire::DATA_PREFIX_LEN + 20];
        let h = UnitHeader {
            seq,
            modality,
            ..header
        };
        let n = h.emit_prefix(&mut buf).expect("prefix");
        for (i, b) in buf[n..].iter_mut().enumerate() {
            *b = i as u8;
        }
        buf
    };
    let chunk = |out: &mut Vec<u8>, stream: u8, skew: u8, bytes: &[u8]| {
        out.push(1 | (stream << 3));
        out.push(skew);
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let f0 = unit_frame(0, Modality::Audio);
    let f1 = unit_frame(1, Modality::Audio);
    let v0 = unit_frame(0, Modality::Video);
    let mut in_order = vec![40u8];
    for (s, f) in [(0u8, &f0), (1, &f1)] {
        in_order.push(s << 3); // open
        chunk(&mut in_order, s, 0, &f[..10]);
        chunk(&mut in_order, s, 0, &f[10..30]);
        chunk(&mut in_order, s, 0, &f[30..]);
    }
    in_order.extend_from_slice(&[2 | (1 << 3), 2, 4, 200]); // finish 1, finish 0, step
    write(&root, "unit_reassembly", "two_units_reordered", &in_order);
    let mut datagram = vec![40u8, 5];
    datagram.extend_from_slice(&(v0.len() as u16).to_be_bytes());
    datagram.extend_from_slice(&v0);
    datagram.extend_from_slice(&[5]);
    datagram.extend_from_slice(&(v0.len() as u16).to_be_bytes());
    datagram.extend_from_slice(&v0);
    datagram.extend_from_slice(&[4, 255]);
    write(&root, "unit_reassembly", "datagram_twice", &datagram);
    let mut gap = vec![255u8, 2 << 3];
    chunk(&mut gap, 2, 0, &f0[..8]);
    chunk(&mut gap, 2, 3, &f0[11..]);
    gap.extend_from_slice(&[2 | (2 << 3), 3 << 3]);
    chunk(&mut gap, 3, 0, &f0);
    gap.extend_from_slice(&[3 | (3 << 3), 3 << 3]);
    chunk(&mut gap, 3, 0, &f0);
    gap.extend_from_slice(&[2 | (3 << 3), 7]);
    write(&root, "unit_reassembly", "gap_reset_reopen", &gap);
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed written");
}
