//! Property tests for the camp-wire codec: every valid frame round-trips, arbitrary bytes
//! never panic the parser, and [`FrameReader`] reassembles frames across arbitrary chunk
//! boundaries.

use core::ops::Range;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use camp_wire::{
    Abandon, Ack, AckRanges, AddAddress, CaptureId, Feedback, Frame, FrameReader, FrameType, Hello,
    Join, JoinOk, MAX_ACK_RANGES, Modality, PathId, PathStatus, PathStatusFrame, Reliability,
    RemoveAddress, RttReport, SessionInfo, UnitFlags, UnitHeader, ack_len, emit_ack,
};
use proptest::prelude::*;

/// An owned description of a valid frame; [`FrameSpec::frame`] borrows it as a [`Frame`].
#[derive(Clone, Debug)]
enum FrameSpec {
    Data(UnitHeader, Vec<u8>),
    Ack {
        modality: Modality,
        cumulative: u64,
        ranges: Vec<Range<u64>>,
        raw: Vec<u8>,
    },
    Fixed(Frame<'static>),
}

impl FrameSpec {
    fn frame(&self) -> Frame<'_> {
        match self {
            FrameSpec::Data(header, payload) => Frame::Data {
                header: *header,
                payload,
            },
            FrameSpec::Ack {
                modality,
                cumulative,
                raw,
                ..
            } => Frame::Ack(Ack {
                modality: *modality,
                cumulative: *cumulative,
                ranges: AckRanges::new(raw, *cumulative).expect("strategy builds valid ranges"),
            }),
            FrameSpec::Fixed(frame) => *frame,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let frame = self.frame();
        let mut buf = vec![0; frame.buffer_len()];
        assert_eq!(frame.emit(&mut buf), Ok(buf.len()));
        buf
    }
}

fn modality() -> impl Strategy<Value = Modality> {
    prop::sample::select(Modality::ALL.to_vec())
}

fn unit_header(payload_len: u32) -> impl Strategy<Value = UnitHeader> {
    (
        modality(),
        prop::bool::ANY,
        0..=UnitFlags::DEFINED,
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u16>(),
    )
        .prop_map(
            move |(modality, reliable, flags, k, seq, generated, deadline, capture)| UnitHeader {
                modality,
                reliability: if reliable {
                    Reliability::Reliable
                } else {
                    Reliability::Droppable
                },
                flags: UnitFlags::from_bits(flags).expect("only defined bits"),
                sync_index: k,
                seq,
                gen_time_us: generated,
                deadline_us: deadline,
                capture_id: CaptureId(capture),
                payload_len,
            },
        )
}

fn data() -> impl Strategy<Value = FrameSpec> {
    prop::collection::vec(any::<u8>(), 0..96).prop_flat_map(|payload| {
        unit_header(payload.len() as u32)
            .prop_map(move |header| FrameSpec::Data(header, payload.clone()))
    })
}

/// Valid ranges: built from (gap ≥ 1, length ≥ 1) steps above the cumulative point, so the
/// first start is > cumulative and every start is > the previous end.
fn ack() -> impl Strategy<Value = FrameSpec> {
    let cumulative = prop_oneof![0..1_000u64, any::<u64>().prop_map(|c| c >> 2)];
    let steps = prop::collection::vec((1..1_000u64, 1..1_000u64), 0..=MAX_ACK_RANGES);
    (modality(), cumulative, steps).prop_map(|(modality, cumulative, steps)| {
        let mut ranges = Vec::new();
        let mut floor = cumulative;
        for (gap, len) in steps {
            let start = floor + gap;
            ranges.push(start..start + len);
            floor = start + len;
        }
        let raw = ranges
            .iter()
            .flat_map(|r| [r.start.to_be_bytes(), r.end.to_be_bytes()]);
        let raw = raw.flatten().collect();
        FrameSpec::Ack {
            modality,
            cumulative,
            ranges,
            raw,
        }
    })
}

fn path_status() -> impl Strategy<Value = PathStatus> {
    prop::sample::select(vec![
        PathStatus::Standby,
        PathStatus::Available,
        PathStatus::Drain,
    ])
}

/// IPv4 and IPv6 socket addresses (no flow label or scope id: those are not encoded).
fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
    .prop_flat_map(|ip| any::<u16>().prop_map(move |port| SocketAddr::new(ip, port)))
}

/// ADD_ADDRESS and REMOVE_ADDRESS.
fn address() -> impl Strategy<Value = FrameSpec> {
    prop_oneof![
        (any::<u8>(), any::<u32>(), socket_addr()).prop_map(|(address_id, seq, addr)| {
            Frame::AddAddress(AddAddress {
                address_id,
                seq,
                addr,
            })
        }),
        (any::<u8>(), any::<u32>())
            .prop_map(|(address_id, seq)| Frame::RemoveAddress(RemoveAddress { address_id, seq })),
    ]
    .prop_map(FrameSpec::Fixed)
}

fn fixed() -> impl Strategy<Value = FrameSpec> {
    let path = any::<u32>().prop_map(PathId);
    prop_oneof![
        (camp_wire::MIN_UNITS_AHEAD..=camp_wire::MAX_UNITS_AHEAD).prop_map(|units_ahead| {
            Frame::Hello(Hello {
                flags: 0,
                units_ahead,
            })
        }),
        (any::<[u8; 16]>(), path.clone(), any::<u64>()).prop_map(|(token, path_id, t)| {
            Frame::Session(SessionInfo {
                token,
                path_id,
                server_time_us: t,
            })
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<[u8; 32]>())
            .prop_map(|(token, nonce, mac)| Frame::Join(Join { token, nonce, mac })),
        (path.clone(), any::<u64>()).prop_map(|(path_id, t)| Frame::JoinOk(JoinOk {
            path_id,
            server_time_us: t
        })),
        (path.clone(), any::<u32>(), path_status(), any::<u8>()).prop_map(
            |(path_id, status_seq, status, precedence)| {
                Frame::PathStatus(PathStatusFrame {
                    path_id,
                    status_seq,
                    status,
                    precedence,
                })
            }
        ),
        (path.clone(), any::<u32>()).prop_map(|(path_id, error_code)| Frame::Abandon(Abandon {
            path_id,
            error_code
        })),
        (path, any::<[u32; 5]>()).prop_map(|(path_id, [raw, min, max, smoothed, age])| {
            Frame::Rtt(RttReport {
                path_id,
                raw_us: raw,
                min_us: min,
                max_us: max,
                smoothed_us: smoothed,
                age_us: age,
            })
        }),
        any::<[u32; 7]>().prop_map(|[interval, delay, occupancy, mean, p95, late, lost]| {
            Frame::Feedback(Feedback {
                interval_us: interval,
                playout_delay_us: delay,
                buffer_occupancy_us: occupancy,
                skew_mean_us: mean,
                skew_p95_us: p95,
                late_units: late,
                lost_units: lost,
            })
        }),
    ]
    .prop_map(FrameSpec::Fixed)
}

fn any_frame() -> impl Strategy<Value = FrameSpec> {
    prop_oneof![data(), ack(), fixed(), address()]
}

/// Bytes that start like a frame header of a real type (with a plausible length) more often
/// than uniform noise would, so the fuzzing reaches the body decoders.
fn frame_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let codes: Vec<u8> = FrameType::ALL.iter().map(|t| t.code()).collect();
    (
        prop::sample::select(codes),
        0..80u32,
        prop::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(code, body_len, rest)| {
            let mut bytes = vec![1, code];
            bytes.extend_from_slice(&body_len.to_be_bytes());
            bytes.extend(rest);
            bytes
        })
}

proptest! {
    #[test]
    fn every_valid_frame_round_trips(spec in any_frame()) {
        let frame = spec.frame();
        let bytes = spec.encode();
        prop_assert_eq!(bytes.len(), frame.buffer_len());
        prop_assert_eq!(Frame::parse(&bytes), Ok((frame, bytes.len())));
    }

    #[test]
    fn emit_ack_agrees_with_frame_emit_and_decodes_to_its_ranges(spec in ack()) {
        let FrameSpec::Ack { modality, cumulative, ref ranges, .. } = spec else { unreachable!() };
        let mut buf = vec![0; ack_len(ranges.len())];
        prop_assert_eq!(emit_ack(modality, cumulative, ranges, &mut buf), Ok(buf.len()));
        prop_assert_eq!(&buf, &spec.encode());
        let (Frame::Ack(ack), _) = Frame::parse(&buf).unwrap() else { unreachable!() };
        prop_assert_eq!(ack.ranges.iter().collect::<Vec<_>>(), ranges.clone());
    }

    #[test]
    fn data_prefix_plus_payload_equals_frame_emit(spec in data()) {
        let FrameSpec::Data(header, ref payload) = spec else { unreachable!() };
        let mut buf = vec![0; camp_wire::DATA_PREFIX_LEN + payload.len()];
        let n = header.emit_prefix(&mut buf).unwrap();
        buf[n..].copy_from_slice(payload);
        prop_assert_eq!(buf, spec.encode());
    }

    #[test]
    fn parse_never_panics_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_parse(&bytes)?;
    }

    #[test]
    fn parse_never_panics_on_frame_like_bytes(bytes in frame_like_bytes()) {
        check_parse(&bytes)?;
    }

    #[test]
    fn parse_rejects_or_round_trips_mutated_frames(
        spec in any_frame(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = spec.encode();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        check_parse(&bytes)?;
    }

    #[test]
    fn frame_reader_reassembles_frames_across_any_chunking(
        specs in prop::collection::vec(any_frame(), 1..12),
        cuts in prop::collection::vec(1..64usize, 1..32),
    ) {
        let encoded: Vec<Vec<u8>> = specs.iter().map(FrameSpec::encode).collect();
        let stream = encoded.concat();
        let max_frame = encoded.iter().map(Vec::len).max().unwrap();
        let mut reader = FrameReader::new(max_frame);
        let mut out = Vec::new();
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at((*cut.next().unwrap()).min(rest.len()));
            rest = tail;
            reader.push(chunk).unwrap();
            prop_assert!(reader.buffered() <= max_frame + chunk.len());
            while let Some(frame) = reader.next_frame() {
                let frame = frame.unwrap();
                let mut buf = vec![0; frame.buffer_len()];
                frame.emit(&mut buf).unwrap();
                out.push(buf);
            }
        }
        prop_assert_eq!(out, encoded);
        prop_assert_eq!(reader.buffered(), 0);
    }
}

/// Parses `bytes`; if that succeeds, re-emitting must reproduce the consumed bytes exactly
/// (the encoding is canonical) and parse to the same frame.
fn check_parse(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((frame, consumed)) = Frame::parse(bytes) {
        prop_assert!(consumed <= bytes.len());
        prop_assert_eq!(consumed, frame.buffer_len());
        let mut buf = vec![0; frame.buffer_len()];
        prop_assert_eq!(frame.emit(&mut buf), Ok(consumed));
        prop_assert_eq!(&buf[..], &bytes[..consumed]);
        prop_assert_eq!(Frame::parse(&buf), Ok((frame, consumed)));
    }
    Ok(())
}
