//! Multipath never hurts (issue 9): a second path that carries no video, here a slow one
//! (20 Mbit/s, 400 ms one way) next to a good one (6 Mbit/s, 20 ms), must not change how the
//! receiver treats the video arriving on the good path.
//!
//! The root cause this pins: the receiver's gap wait for a droppable stream was
//! `path_delta / 2` over every known path, so the idle slow path (RTT difference about
//! 760 ms) made every video gap wait until the missing frame's deadline. On the good path
//! alone large keyframes are regularly overtaken by the next P-frame; with the slow path
//! present the frames behind them were delivered that late, and the CAMP playout delay `D`
//! rose to cover it for the rest of the turn (about +30 ms with the `single` scheduler,
//! +58 ms with CAMP, `camp-bench compare --profile mnh0,mnh3`). The wait now counts only
//! the paths that carried the stream recently.

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::ReceiverConfig;
use camp_sim::experiment::total_delay;
use camp_sim::run::{TurnReport, run_turn};
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, PathConfig, Setup};

/// A path with a drop-tail queue of one bandwidth-delay product, as the benchmark profiles
/// have: on the good path a large keyframe then loses packets to the queue and is repaired
/// after the next frame arrived, which opens the video gaps this is about.
fn path(mbit: f64, delay_ms: u64) -> PathConfig {
    PathConfig::symmetric(LinkConfig {
        queue_bytes: (mbit * 1e6 / 8.0 * (2 * delay_ms) as f64 / 1000.0) as usize,
        ..LinkConfig::new(mbit, delay_ms)
    })
}

fn turn(scheduler: SchedulerKind, slow_path: bool, seed: u64) -> TurnReport {
    let mut paths = vec![path(6.0, 20)];
    if slow_path {
        paths.push(path(20.0, 400));
    }
    let setup = Setup {
        paths,
        scheduler: scheduler.factory(),
        receiver: ReceiverConfig {
            arrival_log: true,
            ..Default::default()
        },
        camp: CampConfig::default(),
        seed,
    };
    run_turn(&setup, &TurnConfig::default(), &[]).expect("turn runs")
}

#[test]
fn an_idle_slow_path_does_not_hold_video_gaps_on_the_good_path() {
    let min_wait = u64::from(ReceiverConfig::default().min_gap_wait_us);
    for seed in [1, 2] {
        let r = turn(SchedulerKind::Single, true, seed);
        assert!(
            r.bytes_per_path.get(1).is_some_and(|&b| b == 0),
            "single sends nothing on the slow path: {:?}",
            r.bytes_per_path
        );
        let c = r.summary.counters;
        assert!(
            c.gaps_skipped > 0,
            "seed {seed}: a keyframe overtaken by the next frame is given up after the gap \
             wait, as on the good path alone (a wait over every known path held the frames \
             behind it until the keyframe came, hundreds of ms later)"
        );
        // Only the good path carries video, so a gap waits min_gap_wait (or less, when the
        // missing frame's deadline comes first), never half the RTT difference to the idle
        // path (about 380 ms, which the deadline cut to 100 ms or more).
        let mean_wait = c.gap_wait_us / c.gaps_skipped;
        assert!(
            mean_wait <= min_wait,
            "seed {seed}: mean video gap wait {mean_wait} µs over {} gaps",
            c.gaps_skipped
        );
    }
}

#[test]
fn camp_with_an_idle_slow_path_is_as_quick_as_on_the_good_path_alone() {
    let (alone, _) = total_delay(&turn(SchedulerKind::Camp, false, 1).arrivals);
    let (both, _) = total_delay(&turn(SchedulerKind::Camp, true, 1).arrivals);
    // Before the gap wait followed the stream's paths: 130 ms alone, 188 ms with the slow path.
    assert!(
        both <= alone + 10.0,
        "total delay {both:.1} ms with the slow path, {alone:.1} ms without"
    );
}
