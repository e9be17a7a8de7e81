//! `store/cycle`: one unit through the sender's `UnitStore` in steady state: `submit`
//! (sequence number, frame encoded into a pooled buffer) → `mark_sent` → `on_ack`, with
//! acknowledgements lagging eight units behind so the store always holds a few. Video is
//! droppable, so `mark_sent` already releases it and its `on_ack` finds nothing new.

use std::hint::black_box;
use std::time::Duration;

use camp_proto::store::{UnitStore, UnitSubmit};
use camp_wire::{CaptureId, Modality, UnitFlags};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Units acknowledged this far behind the newest one.
const ACK_LAG: u64 = 8;
/// Clock advance per unit, µs.
const UNIT_STEP_US: u64 = 40_000;

/// Submits, sends and acknowledges the `round`-th unit of `m`.
fn cycle(store: &mut UnitStore, m: Modality, payload: &[u8], round: u64) {
    let gen_time_us = round * UNIT_STEP_US;
    let seq = store
        .submit(&UnitSubmit {
            modality: m,
            reliability: m.default_reliability(),
            flags: UnitFlags::empty(),
            sync_index: round as u32,
            gen_time_us,
            deadline_us: 150_000,
            capture_id: CaptureId(0),
            payload,
        })
        .expect("submit");
    store.mark_sent(m, seq, (round % 2) as usize, gen_time_us);
    if seq >= ACK_LAG {
        black_box(store.on_ack(m, seq + 1 - ACK_LAG, std::iter::empty()));
    }
}

fn bench_cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/cycle");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(30);
    for (m, len) in [
        (Modality::Text, 40usize),
        (Modality::Audio, 80),
        (Modality::Video, 8_000),
    ] {
        let payload = vec![0x3C; len];
        let mut store = UnitStore::new(64 << 20);
        let mut round = 0u64;
        // Fill the frame pool and the ACK lag before measuring.
        while round < 1_000 {
            cycle(&mut store, m, &payload, round);
            round += 1;
        }
        let name = match m {
            Modality::Text => "text",
            Modality::Audio => "audio",
            Modality::Video => "video",
        };
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new(name, len), |b| {
            b.iter(|| {
                cycle(&mut store, m, black_box(&payload), round);
                round += 1;
            })
        });
        assert!(store.len(m) as u64 <= ACK_LAG, "the store does not grow");
    }
    group.finish();
}

criterion_group!(benches, bench_cycle);
criterion_main!(benches);
