//! Keeps the committed cargo-fuzz seed corpus (`fuzz/corpus/<target>/`) in sync with the
//! codec: one valid frame of every type for `parse_frame`, and a few chunked streams for
//! `frame_reader`.
//!
//! Run with `CAMP_WIRE_WRITE_CORPUS=1` to (re)write the seeds after a format change;
//! otherwise the test fails if a seed is missing or stale.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use camp_wire::{
    Abandon, AddAddress, CaptureId, FRAME_HEADER_LEN, Feedback, Frame, FrameType, Hello, Join,
    JoinOk, MAX_BODY_LEN, MAX_CONTROL_FRAME, Modality, PathId, PathStatus, PathStatusFrame,
    Reliability, RemoveAddress, RttReport, SessionInfo, UNIT_HEADER_LEN, UnitFlags, UnitHeader,
    ack_len, emit_ack,
};

/// One valid frame of every type, encoded, named after its type.
fn seed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let payload = b"hello, world";
    let data = Frame::Data {
        header: UnitHeader {
            modality: Modality::Text,
            reliability: Reliability::Reliable,
            flags: UnitFlags::END_OF_UTTERANCE,
            sync_index: 42,
            seq: 7,
            gen_time_us: 1_250_000,
            deadline_us: 200_000,
            capture_id: CaptureId(1),
            payload_len: payload.len() as u32,
        },
        payload,
    };
    let fixed = [
        ("data", data),
        (
            "hello",
            Frame::Hello(Hello {
                flags: 0,
                units_ahead: 1024,
            }),
        ),
        (
            "session",
            Frame::Session(SessionInfo {
                token: [0x5A; 16],
                path_id: PathId(1),
                server_time_us: 1_000,
            }),
        ),
        (
            "join",
            Frame::Join(Join {
                token: [0x5A; 16],
                nonce: [0x11; 16],
                mac: [0xC3; 32],
            }),
        ),
        (
            "join_ok",
            Frame::JoinOk(JoinOk {
                path_id: PathId(2),
                server_time_us: 2_000,
            }),
        ),
        (
            "path_status",
            Frame::PathStatus(PathStatusFrame {
                path_id: PathId(2),
                status_seq: 1,
                status: PathStatus::Available,
                precedence: 10,
            }),
        ),
        (
            "abandon",
            Frame::Abandon(Abandon {
                path_id: PathId(1),
                error_code: 3,
            }),
        ),
        (
            "rtt",
            Frame::Rtt(RttReport {
                path_id: PathId(1),
                raw_us: 30_000,
                min_us: 25_000,
                max_us: 60_000,
                smoothed_us: 31_000,
                age_us: 100,
            }),
        ),
        (
            "feedback",
            Frame::Feedback(Feedback {
                interval_us: 100_000,
                playout_delay_us: 80_000,
                buffer_occupancy_us: 40_000,
                skew_mean_us: 5_000,
                skew_p95_us: 12_000,
                late_units: 1,
                lost_units: 0,
            }),
        ),
        (
            "add_address",
            Frame::AddAddress(AddAddress {
                address_id: 1,
                seq: 1,
                addr: SocketAddr::from(([198, 18, 0, 2], 4433)),
            }),
        ),
        (
            "add_address_v6",
            Frame::AddAddress(AddAddress {
                address_id: 2,
                seq: 5,
                addr: SocketAddr::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).into(), 4433),
            }),
        ),
        (
            "remove_address",
            Frame::RemoveAddress(RemoveAddress {
                address_id: 1,
                seq: 2,
            }),
        ),
    ];
    let mut seeds: Vec<(&'static str, Vec<u8>)> = fixed
        .iter()
        .map(|(name, frame)| {
            let mut buf = vec![0; frame.buffer_len()];
            frame.emit(&mut buf).expect("valid seed frame");
            (*name, buf)
        })
        .collect();
    let ranges = [12..15, 20..21, 30..40];
    let mut ack = vec![0; ack_len(ranges.len())];
    emit_ack(Modality::Video, 10, &ranges, &mut ack).expect("valid seed ACK");
    seeds.insert(5, ("ack", ack));
    seeds
}

/// A DATA frame of exactly `frame_len` bytes, header included.
fn data_frame(frame_len: usize) -> Vec<u8> {
    let payload = vec![0x42; frame_len - FRAME_HEADER_LEN - UNIT_HEADER_LEN];
    let frame = Frame::Data {
        header: UnitHeader {
            modality: Modality::Video,
            reliability: Reliability::Droppable,
            flags: UnitFlags::KEYFRAME,
            sync_index: 1,
            seq: 1,
            gen_time_us: 1_000,
            deadline_us: 150_000,
            capture_id: CaptureId::COMPOSED,
            payload_len: payload.len() as u32,
        },
        payload: &payload,
    };
    let mut buf = vec![0; frame.buffer_len()];
    frame.emit(&mut buf).expect("valid seed frame");
    assert_eq!(buf.len(), frame_len);
    buf
}

/// `frame_reader` inputs: chunk-size byte, max-frame selector byte, then the stream. Selectors
/// 250..=255 are the production limits and one byte either side (`max_frame` in
/// `fuzz/fuzz_targets/frame_reader.rs`): 250 = MAX_CONTROL_FRAME - 1, 251 = MAX_CONTROL_FRAME,
/// 253 = 1 MiB + 6 - 1, 254 = 1 MiB + 6, 255 = one more than the header's own cap allows.
fn reader_seeds(frames: &[(&'static str, Vec<u8>)]) -> Vec<(&'static str, Vec<u8>)> {
    let all: Vec<u8> = frames.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
    let with = |chunk: u8, scale: u8, stream: &[u8]| [&[chunk, scale][..], stream].concat();
    let mut bad_tail = all.clone();
    bad_tail.extend_from_slice(&[0x02, 0x10, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 0]);
    // A control-sized DATA frame of exactly MAX_CONTROL_FRAME bytes, then a HELLO.
    let control_limit = [data_frame(MAX_CONTROL_FRAME), frames[1].1.clone()].concat();
    // The first bytes of a DATA frame of the largest size a unit stream accepts.
    let unit_limit = data_frame(FRAME_HEADER_LEN + MAX_BODY_LEN)[..242].to_vec();
    vec![
        ("all_types_chunk1", with(0, 255, &all)),
        ("all_types_chunk7", with(6, 255, &all)),
        ("all_types_chunk256", with(255, 255, &all)),
        ("truncated_tail", with(9, 255, &all[..all.len() - 5])),
        ("bad_version_tail", with(4, 255, &bad_tail)),
        ("max_frame_too_small", with(16, 2, &all)),
        ("control_limit_exact", with(63, 251, &control_limit)),
        ("control_limit_one_short", with(63, 250, &control_limit)),
        ("unit_limit_exact_partial", with(255, 254, &unit_limit)),
        ("unit_limit_one_short", with(255, 253, &unit_limit)),
    ]
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn sync(target: &str, seeds: &[(&'static str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    let write = std::env::var_os("CAMP_WIRE_WRITE_CORPUS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, bytes).unwrap();
        } else {
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e}; run with CAMP_WIRE_WRITE_CORPUS=1", path.display())
            });
            assert_eq!(&committed, bytes, "{} is stale", path.display());
        }
    }
}

#[test]
fn seed_frames_cover_every_type_and_parse() {
    let seeds = seed_frames();
    let mut types: Vec<FrameType> = seeds
        .iter()
        .map(|(_, bytes)| {
            let (frame, n) = Frame::parse(bytes).unwrap();
            assert_eq!(n, bytes.len());
            frame.frame_type()
        })
        .collect();
    // ADD_ADDRESS has a seed per address family.
    types.dedup();
    assert_eq!(types, FrameType::ALL);
}

#[test]
fn committed_fuzz_corpus_matches_the_codec() {
    let frames = seed_frames();
    sync("parse_frame", &frames);
    sync("frame_reader", &reader_seeds(&frames));
}
