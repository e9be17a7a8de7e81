//! The reliability promise end to end (issue 14): every reliable unit is presented exactly
//! once, in order, for every scheduler, over lossy, bursty, flapping, dying, closing and
//! asymmetric paths (`camp_sim::matrix`), with the turn released ahead of real time and in
//! real time.
//!
//! CI runs a small slice of the matrix (`CAMP_MATRIX_SEEDS` seeds per cell, default 1, and a
//! 3 s turn); the full size is `camp-bench matrix --seeds 20` (or
//! `CAMP_MATRIX_SEEDS=20 cargo test --release -p camp-sim --test reliable`).

use camp_proto::config::SchedulerKind;
use camp_sim::matrix::{networks, run_cell};

fn seeds() -> u64 {
    std::env::var("CAMP_MATRIX_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn run_matrix(realtime: bool) {
    let mut failures = Vec::new();
    let mut runs = 0;
    let mut not_opened = 0;
    for net in networks() {
        for kind in SchedulerKind::ALL {
            let cell = run_cell(&net, kind, realtime, seeds(), 3_000);
            runs += cell.runs;
            not_opened += cell.not_opened;
            // A session that never opened says nothing about units: counted apart.
            for f in &cell.faults {
                failures.push(format!("{} {kind:?} {f}", net.name));
            }
        }
    }
    eprintln!("{runs} runs, {not_opened} seeds whose session never opened");
    assert!(
        runs > not_opened,
        "most sessions must open: {not_opened} did not"
    );
    assert!(
        failures.is_empty(),
        "{} reliable units lost or repeated in {runs} runs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_reliable_unit_is_lost_by_any_scheduler_released_ahead() {
    run_matrix(false);
}

#[test]
fn no_reliable_unit_is_lost_by_any_scheduler_released_in_real_time() {
    run_matrix(true);
}
