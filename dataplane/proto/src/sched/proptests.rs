//! Properties every scheduler keeps over random path states: it only chooses paths that
//! [`eligible`] allows, a `Send` set is never empty, a reliable unit is never dropped, and
//! nothing panics (zero windows, zero RTTs, zero MTUs; for the baselines also windows and
//! queues near `u64::MAX`).

use camp_wire::{Modality, PathId, PathStatus, Reliability};
use proptest::prelude::*;

use super::{Decision, PathSet, PathView, UnitInfo, eligible};
use crate::config::SchedulerKind;

/// A random path. `extreme` adds windows, queues and RTTs near `u64::MAX`.
fn any_path(extreme: bool) -> impl Strategy<Value = PathView> {
    let big = |realistic: u64| {
        if extreme {
            prop_oneof![Just(0u64), 1..realistic, Just(u64::MAX / 2), Just(u64::MAX)].boxed()
        } else {
            prop_oneof![Just(0u64), 1..realistic].boxed()
        }
    };
    (
        (
            prop_oneof![
                4 => Just(PathStatus::Available),
                1 => Just(PathStatus::Standby),
                1 => Just(PathStatus::Drain),
            ],
            0u8..3,
            prop::bool::weighted(0.85),
            prop::bool::weighted(0.15),
            any::<bool>(),
        ),
        (
            big(2_000_000),
            big(200_000),
            big(4_000_000),
            big(4_000_000),
            big(4_000_000),
        ),
        (
            big(100_000_000),
            big(100_000_000),
            prop_oneof![Just(0u64), Just(1200u64), 1u64..65_536],
        ),
    )
        .prop_map(
            |(
                (status, precedence, usable, suspect, has_room),
                (srtt_us, rttvar_us, cwnd, in_flight, unsent),
                (delivery_rate, btl_bw, mtu),
            )| PathView {
                slot: 0,
                id: PathId(0),
                status,
                precedence,
                usable,
                suspect,
                has_room,
                srtt_us,
                min_rtt_us: srtt_us / 2,
                rttvar_us,
                cwnd,
                in_flight,
                unsent,
                delivery_rate,
                btl_bw,
                loss_ppm: 0,
                mtu,
                failover_us: 150_000,
            },
        )
}

/// Up to [`MAX_PATHS`](super::MAX_PATHS) paths in ascending, possibly sparse, slots.
fn any_paths(extreme: bool) -> impl Strategy<Value = Vec<PathView>> {
    (
        any::<u8>(),
        prop::collection::vec(any_path(extreme), 8),
        0u32..1000,
    )
        .prop_map(|(slots, mut paths, id_base)| {
            let mut out = Vec::new();
            for slot in 0..8u8 {
                if slots & (1 << slot) != 0 {
                    let mut p = paths[slot as usize];
                    p.slot = slot;
                    p.id = PathId(id_base + u32::from(slot));
                    out.push(p);
                }
            }
            paths.clear();
            out
        })
}

fn any_unit() -> impl Strategy<Value = UnitInfo> {
    (
        prop::sample::select(Modality::ALL.to_vec()),
        any::<bool>(),
        1u32..2_000_000,
        any::<bool>(),
        any::<u8>(),
        0u64..1_000_000,
    )
        .prop_map(
            |(modality, reliable, size, reinjection, avoid, now)| UnitInfo {
                modality,
                reliability: if reliable {
                    Reliability::Reliable
                } else {
                    Reliability::Droppable
                },
                size,
                sync_index: (now / 20_000) as u32,
                gen_time_us: now,
                deadline_us: Some(now + 150_000),
                now_us: now,
                reinjection,
                avoid: (0..8)
                    .filter(|s| avoid & (1 << s) != 0)
                    .fold(PathSet::EMPTY, PathSet::with),
            },
        )
}

type Step = (Vec<PathView>, UnitInfo, u64);

fn check(kinds: &[SchedulerKind], steps: &[Step]) -> Result<(), TestCaseError> {
    for &kind in kinds {
        let mut s = kind.factory()();
        prop_assert_eq!(s.name(), kind.name());
        let mut now = 0;
        for (paths, unit, dt) in steps {
            now += dt;
            let unit = UnitInfo {
                now_us: now,
                gen_time_us: now,
                deadline_us: Some(now + 150_000),
                ..*unit
            };
            let allowed = eligible(&unit, paths);
            match s.pick(&unit, paths) {
                Decision::Send(set) => {
                    prop_assert!(!set.is_empty(), "{}: empty Send", kind.name());
                    prop_assert!(
                        set.iter().all(|slot| allowed.contains(slot)),
                        "{}: sent on {:?}, eligible {:?}",
                        kind.name(),
                        set,
                        allowed
                    );
                }
                Decision::Drop => prop_assert_eq!(
                    unit.reliability,
                    Reliability::Droppable,
                    "{}: dropped a reliable unit",
                    kind.name()
                ),
                Decision::Hold { .. } => {}
            }
            for p in paths {
                if let Some(after) = s.reinject_after_us(&unit, p, paths) {
                    prop_assert_eq!(unit.reliability, Reliability::Reliable);
                    if kind == SchedulerKind::Xlink {
                        prop_assert!((20_000..=500_000).contains(&after));
                    }
                }
            }
        }
    }
    Ok(())
}

fn steps(extreme: bool) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec((any_paths(extreme), any_unit(), 0u64..50_000), 1..24)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_scheduler_chooses_only_eligible_paths(steps in steps(false)) {
        check(&SchedulerKind::ALL, &steps)?;
    }

    #[test]
    fn baselines_survive_extreme_path_state(steps in steps(true)) {
        let baselines: Vec<SchedulerKind> = SchedulerKind::ALL
            .into_iter()
            .filter(|&k| k != SchedulerKind::Camp)
            .collect();
        check(&baselines, &steps)?;
    }
}

#[test]
fn names_round_trip() {
    for kind in SchedulerKind::ALL {
        assert_eq!(kind.name().parse::<SchedulerKind>(), Ok(kind));
        assert_eq!(kind.factory()().name(), kind.name());
    }
    assert_eq!(" ECF ".parse::<SchedulerKind>(), Ok(SchedulerKind::Ecf));
    assert!("roundrobin".parse::<SchedulerKind>().is_err());
}

#[test]
fn baselines_other_than_redundant_send_on_one_path() {
    let paths: Vec<PathView> = (0..4u8)
        .map(|i| super::tests::path(i, 10 + 10 * u64::from(i), 10 * (1 + u64::from(i))))
        .collect();
    for kind in SchedulerKind::ALL {
        let mut s = kind.factory()();
        for m in Modality::ALL {
            let u = super::tests::unit(m, 0, 1_000, 0);
            match s.pick(&u, &paths) {
                Decision::Send(set) if kind == SchedulerKind::Redundant => {
                    assert_eq!(set.len(), 4)
                }
                Decision::Send(set) => assert_eq!(set.len(), 1, "{}", kind.name()),
                d => panic!("{}: {d:?} with four idle paths", kind.name()),
            }
        }
    }
}
