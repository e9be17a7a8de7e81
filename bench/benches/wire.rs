//! `wire/parse` and `wire/emit`: `Frame::parse` / `Frame::emit` on DATA frames with an
//! 80-byte (audio) and an 8 kB (video) payload, and on an ACK with 8 selective ranges
//! (emitted with `emit_ack`). Throughput is the whole frame, header included.

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use camp_wire::{CaptureId, Frame, Modality, UnitFlags, UnitHeader, ack_len, emit_ack};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};

/// Cumulative point of the benchmark ACK.
const ACK_CUMULATIVE: u64 = 1_000;

/// A DATA frame header for `payload_len` bytes of `m`.
fn unit_header(m: Modality, payload_len: usize) -> UnitHeader {
    UnitHeader {
        modality: m,
        reliability: m.default_reliability(),
        flags: if m == Modality::Video {
            UnitFlags::KEYFRAME
        } else {
            UnitFlags::empty()
        },
        sync_index: 4_242,
        seq: 123_456,
        gen_time_us: 169_680_000,
        deadline_us: 150_000,
        capture_id: CaptureId(1),
        payload_len: payload_len as u32,
    }
}

/// Eight ranges above [`ACK_CUMULATIVE`] with gaps between them (a lossy path's ACK).
fn ack_ranges() -> Vec<Range<u64>> {
    (0..8u64)
        .map(|i| {
            let start = ACK_CUMULATIVE + 2 + i * 5;
            start..start + 3
        })
        .collect()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(30);
}

/// The DATA cases: benchmark id and payload (audio 80 B, video 8 kB).
fn data_cases() -> [(&'static str, Modality, Vec<u8>); 2] {
    [
        ("data/80", Modality::Audio, vec![0xA5; 80]),
        ("data/8000", Modality::Video, vec![0x5A; 8_000]),
    ]
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire/parse");
    configure(&mut group);
    for (id, m, payload) in data_cases() {
        let frame = Frame::Data {
            header: unit_header(m, payload.len()),
            payload: &payload,
        };
        let mut buf = vec![0u8; frame.buffer_len()];
        let len = frame.emit(&mut buf).expect("emit DATA");
        assert_eq!(Frame::parse(&buf).expect("parse DATA"), (frame, len));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(id, |b| {
            b.iter(|| Frame::parse(black_box(&buf[..])).expect("parse DATA"))
        });
    }
    let ranges = ack_ranges();
    let mut buf = vec![0u8; ack_len(ranges.len())];
    let len = emit_ack(Modality::Video, ACK_CUMULATIVE, &ranges, &mut buf).expect("emit ACK");
    match Frame::parse(&buf).expect("parse ACK") {
        (Frame::Ack(ack), n) if n == len => {
            assert!(ack.ranges.iter().eq(ranges.iter().cloned()));
        }
        other => panic!("not the ACK emitted: {other:?}"),
    }
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("ack/8", |b| {
        b.iter(|| Frame::parse(black_box(&buf[..])).expect("parse ACK"))
    });
    group.finish();
}

fn emit(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire/emit");
    configure(&mut group);
    for (id, m, payload) in data_cases() {
        let frame = Frame::Data {
            header: unit_header(m, payload.len()),
            payload: &payload,
        };
        let mut buf = vec![0u8; frame.buffer_len()];
        group.throughput(Throughput::Bytes(frame.buffer_len() as u64));
        group.bench_function(id, |b| {
            b.iter(|| {
                black_box(&frame)
                    .emit(black_box(&mut buf[..]))
                    .expect("emit DATA")
            })
        });
    }
    let ranges = ack_ranges();
    let mut buf = vec![0u8; ack_len(ranges.len())];
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("ack/8", |b| {
        b.iter(|| {
            emit_ack(
                black_box(Modality::Video),
                black_box(ACK_CUMULATIVE),
                black_box(&ranges[..]),
                black_box(&mut buf[..]),
            )
            .expect("emit ACK")
        })
    });
    group.finish();
}

criterion_group!(benches, parse, emit);
criterion_main!(benches);
