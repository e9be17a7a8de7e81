//! The per-unit hot path allocates nothing in steady state: scheduling decisions and the
//! unit store's submit / send / acknowledge cycle. Counted with a global allocator; only
//! the thread inside [`counted`] is counted, so tests running in parallel do not disturb
//! each other.

use camp_proto::config::SchedulerKind;
use camp_proto::sched::{PathSet, PathView, Scheduler, UnitInfo};
use camp_proto::store::{UnitStore, UnitSubmit};
use camp_testkit::alloc::{CountingAlloc, counted};
use camp_wire::{CaptureId, Modality, PathId, PathStatus, UnitFlags};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

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

#[test]
fn scheduling_decisions_do_not_allocate() {
    for n in [2, 4, 8] {
        let mut paths = views(n);
        // Every scheduler, CAMP and all baselines (built outside the counted region).
        let mut scheds: Vec<Box<dyn Scheduler>> =
            SchedulerKind::ALL.iter().map(|k| k.factory()()).collect();
        let ((), allocs) = counted(|| {
            for i in 0..10_000u64 {
                let m = Modality::ALL[(i % 3) as usize];
                // Vary window room and backlog so the waiting branches (ECF, BLEST, OTIAS,
                // single path) and the hysteresis / lambda state are exercised too.
                paths[0].has_room = i % 4 != 0;
                paths[0].unsent = (i % 7) * 20_000;
                paths[1].in_flight = (i % 5) * 10_000;
                let reinjection = i % 11 == 0;
                let unit = UnitInfo {
                    modality: m,
                    reliability: m.default_reliability(),
                    size: if m == Modality::Video { 8_000 } else { 80 },
                    sync_index: (i / 3) as u32,
                    gen_time_us: i * 13_000,
                    deadline_us: Some(i * 13_000 + 150_000),
                    now_us: i * 13_000,
                    reinjection,
                    avoid: if reinjection {
                        PathSet::single(0)
                    } else {
                        PathSet::EMPTY
                    },
                };
                for s in scheds.iter_mut() {
                    std::hint::black_box(s.pick(&unit, &paths));
                    std::hint::black_box(s.reinject_after_us(&unit, &paths[0], &paths));
                }
            }
        });
        assert_eq!(
            allocs,
            0,
            "{n} paths: allocations in {} decisions",
            10_000 * scheds.len()
        );
    }
}

#[test]
fn unit_store_cycle_does_not_allocate_after_warm_up() {
    let mut store = UnitStore::new(64 << 20);
    let payload = vec![7u8; 9_000];
    let cycle = |store: &mut UnitStore, round: u64| {
        for m in Modality::ALL {
            let size = if m == Modality::Video { 9_000 } else { 70 };
            let seq = store
                .submit(&UnitSubmit {
                    modality: m,
                    reliability: m.default_reliability(),
                    flags: UnitFlags::empty(),
                    sync_index: round as u32,
                    gen_time_us: round * 40_000,
                    deadline_us: 150_000,
                    capture_id: CaptureId(0),
                    payload: &payload[..size],
                })
                .unwrap();
            store.mark_sent(m, seq, (round % 2) as usize, round * 40_000);
            if round >= 8 {
                // Acknowledge with a lag of eight units so the store holds some.
                // Latency observation (reliable and droppable) must not allocate either.
                store.on_ack_observed(m, seq - 7, std::iter::empty(), |u| {
                    std::hint::black_box(u);
                });
            }
        }
    };
    for round in 0..1_000 {
        cycle(&mut store, round);
    }
    let ((), allocs) = counted(|| {
        for round in 1_000..11_000 {
            cycle(&mut store, round);
        }
    });
    assert_eq!(allocs, 0, "allocations in 30 000 steady-state units");
}

/// The server calls `expire` and `trim_if_idle` on every scheduling pass: while units keep
/// coming (here every 20 ms) the store never counts as idle, so it keeps its pool and the
/// steady state still allocates nothing; once they stop, it gives its spare memory back.
#[test]
fn talking_store_does_not_trim_and_idle_store_gives_memory_back() {
    let mut store = UnitStore::new(64 << 20);
    let payload = vec![7u8; 9_000];
    let step_us = 20_000;
    let cycle = |store: &mut UnitStore, round: u64| {
        let now_us = round * step_us;
        for m in Modality::ALL {
            let size = if m == Modality::Video { 9_000 } else { 70 };
            let seq = store
                .submit(&UnitSubmit {
                    modality: m,
                    reliability: m.default_reliability(),
                    flags: UnitFlags::empty(),
                    sync_index: round as u32,
                    gen_time_us: now_us,
                    deadline_us: 150_000,
                    capture_id: CaptureId(0),
                    payload: &payload[..size],
                })
                .unwrap();
            store.mark_sent(m, seq, (round % 2) as usize, now_us);
            if round >= 8 {
                store.on_ack_observed(m, seq - 7, std::iter::empty(), |u| {
                    std::hint::black_box(u);
                });
            }
            store.expire(now_us);
            assert!(!store.trim_if_idle(now_us), "a talking store never trims");
        }
    };
    for round in 0..1_000 {
        cycle(&mut store, round);
    }
    let ((), allocs) = counted(|| {
        for round in 1_000..6_000 {
            cycle(&mut store, round);
        }
    });
    assert_eq!(allocs, 0, "allocations in 15 000 steady-state units");
    let held = store.spare_bytes();
    // Quiet: everything acknowledged, then no unit for two trim periods.
    let end_us = 6_000 * step_us;
    for m in Modality::ALL {
        store.on_ack_observed(m, u64::MAX, std::iter::empty(), |_| {});
    }
    assert!(store.is_empty());
    let mut trimmed = false;
    let mut t = end_us;
    while t <= end_us + 2 * camp_proto::store::IDLE_TRIM_US {
        trimmed |= store.trim_if_idle(t);
        t += 200_000;
    }
    assert!(trimmed, "an idle store trims within two periods");
    assert_eq!(
        store.spare_bytes(),
        0,
        "an idle, acknowledged store keeps nothing (held {held} while talking)"
    );
}

#[test]
fn coupled_congestion_control_does_not_allocate() {
    use camp_proto::cc::{CcAlgorithm, MeasuringFactory, PathGauges};
    use camp_proto::lia::{CouplingTable, Lia, lia_increase};
    use quinn_proto::congestion::{Controller, ControllerFactory};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    // Four coupled paths of one session (built and attached outside the counted region).
    let t0 = Instant::now();
    let table = Arc::new(CouplingTable::new(8, true));
    let mut paths: Vec<(Box<dyn Controller>, Lia)> = (0..4)
        .map(|slot| {
            let gauges = Arc::new(PathGauges::default());
            let c = Arc::new(
                MeasuringFactory::new(CcAlgorithm::Cubic, t0, gauges.clone())
                    .with_coupling(table.clone()),
            )
            .build(t0, 1200);
            assert!(table.attach(&gauges, 5, slot));
            (c, Lia::new(t0, 14_720, 1200))
        })
        .collect();
    let ((), allocs) = counted(|| {
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_micros(1_000 * i);
            for (slot, (c, lia)) in paths.iter_mut().enumerate() {
                // What the wrapper does per event (an RttEstimator cannot be built outside
                // quinn, so on_ack's LIA step is driven through the same table call).
                c.on_sent(now, 1200, i);
                if i % 97 == 0 {
                    c.on_congestion_event(now, now, i % 970 == 0, 1200);
                    lia.on_congestion_event(now, now - Duration::from_micros(1), false);
                }
                lia.on_ack(now, 1200, false, |own| {
                    table.alpha(5, slot, own, 20_000 + 10_000 * slot as u64)
                });
                c.on_end_acks(now, 12_000, false, Some(i));
                let a = table.alpha(5, slot, c.window(), 30_000);
                std::hint::black_box(lia_increase(a.alpha, a.cwnd_total, c.window(), 1200, 1200));
            }
        }
    });
    assert_eq!(allocs, 0, "allocations in 40 000 coupled controller steps");
    assert!(table.group_cwnd(5) > 0);
}

#[test]
fn the_counter_sees_allocations_on_its_own_thread_only() {
    let (v, allocs) = counted(|| std::hint::black_box(vec![7u8; 64]));
    assert_eq!(v.len(), 64);
    assert_eq!(allocs, 1);
    // Another thread allocating all along is not counted here.
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::black_box(vec![7u8; 64]);
            }
        });
        let ((), allocs) = counted(|| {
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_millis(20) {
                std::hint::black_box(());
            }
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(allocs, 0);
    });
}
