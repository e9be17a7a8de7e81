//! `sched/pick`: cost of one scheduling decision (`Scheduler::pick`) for every scheduler in
//! `SchedulerKind::ALL` with 2, 4 and 8 paths.
//!
//! Units rotate over the three modalities, advance the sync index every three units and the
//! clock by 13.3 ms per unit (a 25 fps group of T/A/V), so the CAMP scheduler keeps opening
//! and extending groups in its ring. One unit in four carries a media time in the future
//! (LLM text / TTS handed over early), which the CAMP scheduler paces (holds); the rest are
//! due now. Every eleventh unit is a reinjection that must avoid slot 0, and every
//! seventeenth audio or video unit has a deadline no path can meet. The fastest path's window
//! room and backlog (and the second path's bytes in flight) cycle through seven states, so
//! the schedulers that wait for a fast path (BLEST, OTIAS, pinning) hold some units too.

use std::hint::black_box;
use std::time::Duration;

use camp_proto::config::SchedulerKind;
use camp_proto::sched::{PathSet, PathView, UnitInfo};
use camp_wire::{Modality, PathId, PathStatus};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Units in the rotation (a power of two; more sync indices than the CAMP group ring holds).
const ROTATION: usize = 4096;
/// Clock advance per unit, µs.
const UNIT_STEP_US: u64 = 13_333;
/// Path-state variants the rotation cycles through (prime to the other unit periods).
const PATH_STATES: usize = 7;

/// `n` established paths with staggered RTTs and backlog; every third one has a full window.
fn views(n: usize) -> Vec<PathView> {
    (0..n)
        .map(|i| PathView {
            slot: i as u8,
            id: PathId(i as u32),
            status: PathStatus::Available,
            precedence: 1,
            usable: true,
            suspect: false,
            has_room: i % 3 != 2,
            srtt_us: 10_000 + 7_000 * i as u64,
            min_rtt_us: 9_000 + 7_000 * i as u64,
            rttvar_us: 1_000,
            cwnd: 40_000,
            in_flight: 1_000 * i as u64,
            unsent: 500,
            delivery_rate: 2_000_000,
            btl_bw: 2_000_000,
            loss_ppm: 0,
            mtu: 1200,
            failover_us: 150_000,
        })
        .collect()
}

/// [`PATH_STATES`] variants of `views(n)`: the fastest path is sometimes out of window room
/// and carries 0..90 kB of unsent backlog; the second one has 0..30 kB more in flight.
fn path_states(n: usize) -> Vec<Vec<PathView>> {
    (0..PATH_STATES)
        .map(|v| {
            let mut paths = views(n);
            paths[0].has_room = v % 3 != 0;
            paths[0].unsent = v as u64 * 15_000;
            paths[1].in_flight += (v % 4) as u64 * 10_000;
            paths
        })
        .collect()
}

/// The `i`-th unit of the rotation.
fn unit(i: usize) -> UnitInfo {
    let iu = i as u64;
    let m = Modality::ALL[i % 3];
    let now_us = 1_000_000 + iu * UNIT_STEP_US;
    let gen_time_us = if i % 4 == 0 {
        // Released ahead of its media time: 200..550 ms in the future.
        now_us + 200_000 + (iu % 8) * 50_000
    } else {
        // Due now: generated a little while ago.
        now_us - (iu % 5) * 2_000
    };
    let deadline_us = match m {
        Modality::Text => None,
        _ if i % 17 == 0 => Some(now_us + 1_000), // cannot be met
        _ => Some(gen_time_us + 150_000),
    };
    let reinjection = i % 11 == 0;
    UnitInfo {
        modality: m,
        reliability: m.default_reliability(),
        size: match m {
            Modality::Text => 40,
            Modality::Audio => 80,
            Modality::Video => 8_000,
        },
        sync_index: (i / 3) as u32,
        gen_time_us,
        deadline_us,
        now_us,
        reinjection,
        avoid: if reinjection {
            PathSet::single(0)
        } else {
            PathSet::EMPTY
        },
    }
}

/// Moves every unit of the rotation one full rotation forward in sync index and time, so
/// that the clock never goes backwards for schedulers with timed state.
fn advance(units: &mut [UnitInfo]) {
    let span_us = ROTATION as u64 * UNIT_STEP_US;
    let span_k = ROTATION.div_ceil(3) as u32;
    for u in units {
        u.sync_index = u.sync_index.wrapping_add(span_k);
        u.gen_time_us += span_us;
        u.now_us += span_us;
        u.deadline_us = u.deadline_us.map(|d| d + span_us);
    }
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched/pick");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.sample_size(30);
    for kind in SchedulerKind::ALL {
        for n in [2usize, 4, 8] {
            let states = path_states(n);
            let mut units: Vec<UnitInfo> = (0..ROTATION).map(unit).collect();
            // Which path state each unit of the rotation sees.
            let state_of: Vec<&[PathView]> = (0..ROTATION)
                .map(|i| &states[i % PATH_STATES][..])
                .collect();
            let mut sched = kind.factory()();
            let mut i = 0usize;
            group.bench_function(BenchmarkId::new(kind.name(), n), |b| {
                b.iter(|| {
                    let d = sched.pick(black_box(&units[i]), black_box(state_of[i]));
                    i = (i + 1) % ROTATION;
                    if i == 0 {
                        advance(&mut units);
                    }
                    black_box(d)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
