//! The reliability invariant as a property (issue 14): over random networks (one to three
//! paths of random rate, delay, jitter and loss), random path events (outages, delay and
//! rate steps, cuts and closes of all but one path), any scheduler and random workloads,
//! every reliable unit is presented exactly once, in order per modality.
//!
//! One path is kept alive to the end, so the promise applies to every case. A case whose
//! session never opened (the start path can be lossy) is counted, not checked.
//! `PROPTEST_CASES` sets the number of cases (default 24; CI uses the default). The test
//! fails when fewer than three cases in four are checked: a generator that mostly kills
//! the session would test nothing.

use std::time::Duration;

use camp_proto::config::SchedulerKind;
use camp_sim::link::LinkStep;
use camp_sim::matrix::setup;
use camp_sim::run::{NetEvent, run_turn};
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, Loss, PathConfig};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};

fn loss() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::None),
        (0.0..0.08f64).prop_map(Loss::Bernoulli),
        (0.001..0.03f64, 0.05..0.5f64).prop_map(|(g, b)| Loss::GilbertElliott {
            p_good_to_bad: g,
            p_bad_to_good: b,
            loss_good: 0.0,
            loss_bad: 1.0,
        }),
    ]
}

/// A path that may die on its own: any loss, any burst length.
fn path() -> impl Strategy<Value = PathConfig> {
    link(loss())
}

/// The path kept alive: lossy, but with bursts short enough (mean under ~4 packets) that
/// quinn's idle timeout does not end it.
fn survivor() -> impl Strategy<Value = PathConfig> {
    link(prop_oneof![
        Just(Loss::None),
        (0.0..0.05f64).prop_map(Loss::Bernoulli),
        (0.001..0.02f64, 0.25..0.6f64).prop_map(|(g, b)| Loss::GilbertElliott {
            p_good_to_bad: g,
            p_bad_to_good: b,
            loss_good: 0.0,
            loss_bad: 1.0,
        }),
    ])
}

fn link(loss: impl Strategy<Value = Loss>) -> impl Strategy<Value = PathConfig> {
    (1.0..60.0f64, 2u64..150, 0u64..10, loss).prop_map(|(mbit, delay_ms, jitter_ms, loss)| {
        PathConfig::symmetric(LinkConfig {
            loss,
            jitter: Duration::from_millis(jitter_ms),
            ..LinkConfig::new(mbit, delay_ms)
        })
    })
}

/// An event on a path other than `keep` when it may end that path; outages and steps may
/// hit any path (an outage always ends before the turn does).
fn event(n_paths: usize, keep: usize, turn_ms: u64) -> impl Strategy<Value = NetEvent> {
    (
        0..n_paths,
        0..4u8,
        50..turn_ms,
        50u64..1500,
        1.0..50.0f64,
        2u64..300,
    )
        .prop_map(move |(path, kind, at_ms, len_ms, mbit, delay_ms)| {
            let mortal = path != keep;
            match kind {
                0 if mortal => NetEvent::Cut { path, at_ms },
                1 if mortal => NetEvent::Close { path, at_ms },
                2 => NetEvent::Step {
                    path,
                    step: LinkStep {
                        at: Duration::from_millis(at_ms),
                        delay: Some(Duration::from_millis(delay_ms)),
                        rate_bps: Some((mbit * 1e6) as u64),
                    },
                },
                _ => NetEvent::Outage {
                    path,
                    from_ms: at_ms,
                    until_ms: (at_ms + len_ms).min(turn_ms),
                },
            }
        })
}

#[derive(Debug, Clone)]
struct Case {
    paths: Vec<PathConfig>,
    events: Vec<NetEvent>,
    kind: SchedulerKind,
    turn: TurnConfig,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (1usize..=3, 1_000u64..3_000, any::<bool>())
        .prop_flat_map(|(n, turn_ms, realtime)| {
            (
                (proptest::collection::vec(path(), n), survivor(), 0..n).prop_flat_map(
                    move |(mut paths, keep_path, keep)| {
                        paths[keep] = keep_path;
                        (
                            Just(paths),
                            proptest::collection::vec(event(n, keep, turn_ms), 0..5),
                        )
                    },
                ),
                proptest::sample::select(SchedulerKind::ALL.to_vec()),
                (4.0..40.0f64, 20usize..400, 60usize..400, 0u64..400),
                any::<u64>(),
                Just((turn_ms, realtime)),
            )
        })
        .prop_map(
            |(
                (paths, events),
                kind,
                (tps, text_max, audio_max, lead),
                seed,
                (turn_ms, realtime),
            )| {
                let turn = TurnConfig {
                    duration_ms: turn_ms,
                    realtime,
                    tokens_per_sec: (tps, tps * 1.5),
                    text_bytes: (10, text_max.max(10)),
                    audio_bytes: (40, audio_max.max(40)),
                    tts_lead_ms: (lead / 2, lead),
                    // Long enough that a path in deep PTO backoff either delivers or dies
                    // (quinn's idle timeout is at least 3 PTOs): a case ends decided.
                    drain_ms: 30_000,
                    ..TurnConfig::default()
                };
                Case {
                    paths,
                    events,
                    kind,
                    turn,
                    seed,
                }
            },
        )
}

/// Cases whose session opened and kept a path to the end, out of all cases run.
#[derive(Default)]
struct Tally {
    cases: u32,
    checked: u32,
    not_opened: u32,
    all_paths_died: u32,
    refused: u32,
}

#[test]
fn every_accepted_reliable_unit_is_presented_once_in_order() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    let result = runner.run(&case(), |c| {
        let mut t = tally.borrow_mut();
        t.cases += 1;
        let mut setup = setup(c.paths.clone(), c.kind, c.seed);
        // The matrix's 1 s idle timeout kills a lossy path that comes out of an outage in
        // deep PTO backoff; the survivor must survive, and the mortal paths die by their
        // cuts and closes.
        setup.camp.idle_timeout = std::time::Duration::from_secs(5);
        let Ok(r) = run_turn(&setup, &c.turn, &c.events) else {
            t.not_opened += 1;
            return Ok(());
        };
        // With every path dead the promise does not apply; every accepted reliable unit
        // must be presented otherwise (units refused at submission were never accepted).
        if r.refused_at_submit > 0 {
            t.refused += 1;
        }
        if r.paths_alive == 0 {
            t.all_paths_died += 1;
            return Ok(());
        }
        t.checked += 1;
        let faults = r.reliable_faults();
        prop_assert!(
            faults.is_empty(),
            "{} faults:\n{}",
            faults.len(),
            faults.join("\n")
        );
        Ok(())
    });
    let t = tally.into_inner();
    eprintln!(
        "{} cases: {} checked, {} not opened, {} lost every path, {} refused units at submission (checked all the same)",
        t.cases, t.checked, t.not_opened, t.all_paths_died, t.refused
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // A generator whose cases mostly end unchecked would test nothing.
    assert!(
        t.checked * 4 >= t.cases * 3,
        "only {} of {} cases were checked",
        t.checked,
        t.cases
    );
}
