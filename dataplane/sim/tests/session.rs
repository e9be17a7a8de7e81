//! End-to-end CAMP over the simulated multipath network: real quinn-proto, real TLS 1.3.

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::ReceiverConfig;
use camp_sim::run::{NetEvent, run_turn};
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, PathConfig, Setup};
use camp_wire::Modality;

fn two_paths(kind: SchedulerKind, seed: u64) -> Setup {
    Setup {
        paths: vec![
            PathConfig::symmetric(LinkConfig::new(20.0, 10)),
            PathConfig::symmetric(LinkConfig::new(10.0, 30)),
        ],
        scheduler: kind.factory(),
        receiver: ReceiverConfig::default(),
        camp: CampConfig::default(),
        seed,
    }
}

fn assert_exactly_once_in_order(report: &camp_sim::run::TurnReport) {
    for m in [Modality::Text, Modality::Audio] {
        let got = &report.presented[m.index()];
        let want: Vec<u64> = (0..report.planned[m.index()]).collect();
        assert_eq!(got, &want, "{m}: every unit exactly once, in order");
    }
    assert_eq!(
        report.unacked_reliable, 0,
        "every reliable unit acknowledged"
    );
}

#[test]
fn llm_turn_over_two_paths_delivers_text_and_audio_exactly_once_in_order() {
    for kind in [SchedulerKind::Camp, SchedulerKind::MinRtt] {
        let report =
            run_turn(&two_paths(kind, 1), &TurnConfig::default(), &[]).expect("session starts");
        assert_eq!(report.paths_joined, 2);
        assert_exactly_once_in_order(&report);
        let s = &report.summary;
        assert!(
            s.skew_groups > 50,
            "{kind:?}: groups measured: {}",
            s.skew_groups
        );
        let video = &s.per_modality[Modality::Video.index()];
        assert!(
            video.delivered > 100,
            "{kind:?}: video delivered {}",
            video.delivered
        );
    }
}

#[test]
fn killing_a_path_mid_turn_loses_no_text_or_audio() {
    for (kind, path) in [
        (SchedulerKind::Camp, 0),
        (SchedulerKind::Camp, 1),
        (SchedulerKind::MinRtt, 0),
    ] {
        let report = run_turn(
            &two_paths(kind, 2),
            &TurnConfig::default(),
            &[NetEvent::Cut { path, at_ms: 2_000 }],
        )
        .expect("session starts");
        assert_exactly_once_in_order(&report);
        let after_cut = report.links[1 - path].down.delivered;
        assert!(
            after_cut > 100,
            "{kind:?}: traffic continued on the other path"
        );
    }
}

#[test]
fn same_seed_gives_identical_metrics() {
    let a = run_turn(
        &two_paths(SchedulerKind::Camp, 9),
        &TurnConfig::default(),
        &[],
    )
    .expect("session starts");
    let b = run_turn(
        &two_paths(SchedulerKind::Camp, 9),
        &TurnConfig::default(),
        &[],
    )
    .expect("session starts");
    assert_eq!(a.presented, b.presented);
    assert_eq!(a.summary.skew_c_us, b.summary.skew_c_us);
    assert_eq!(a.summary.latency.mean_us, b.summary.latency.mean_us);
    assert_eq!(a.bytes_per_path, b.bytes_per_path);
}

#[test]
fn a_peer_with_a_single_path_still_works() {
    let mut setup = two_paths(SchedulerKind::Camp, 3);
    setup.paths.truncate(1);
    let report = run_turn(&setup, &TurnConfig::default(), &[]).expect("session starts");
    assert_eq!(report.paths_joined, 1);
    assert_exactly_once_in_order(&report);
}

#[test]
fn three_paths_with_different_delays_and_rates_all_join_and_deliver() {
    let mut setup = two_paths(SchedulerKind::Camp, 4);
    setup
        .paths
        .push(PathConfig::symmetric(LinkConfig::new(5.0, 50)));
    let report = run_turn(&setup, &TurnConfig::default(), &[]).expect("session starts");
    assert_eq!(report.paths_joined, 3);
    assert_exactly_once_in_order(&report);
}

#[test]
fn cutting_every_path_but_the_slowest_of_three_loses_nothing_reliable() {
    let mut setup = two_paths(SchedulerKind::Camp, 6);
    setup
        .paths
        .push(PathConfig::symmetric(LinkConfig::new(5.0, 50)));
    let report = run_turn(
        &setup,
        &TurnConfig::default(),
        &[
            NetEvent::Cut {
                path: 0,
                at_ms: 1_000,
            },
            NetEvent::Cut {
                path: 1,
                at_ms: 2_500,
            },
        ],
    )
    .expect("session starts");
    assert_exactly_once_in_order(&report);
    assert!(report.store.reinjected.iter().sum::<u64>() > 0 || report.links[2].down.delivered > 0);
}

/// Regression: on a lossy path the first unit stream can overtake the JOIN_OK on the
/// control stream; the client used to refuse such a unit, QUIC had already acknowledged it,
/// and the reliable stream stalled behind the hole for good. (P6 sweep draw high5-ab.)
#[test]
fn units_arriving_before_join_ok_are_not_lost() {
    use camp_sim::{Capacity, Loss};
    use std::time::Duration;
    let link = |bps: u64, delay_us: u64, queue: usize, loss: f64| LinkConfig {
        delay: Duration::from_micros(delay_us),
        jitter: Duration::ZERO,
        capacity: Capacity::Constant(bps),
        queue_bytes: queue,
        loss: Loss::Bernoulli(loss),
        outages: Vec::new(),
        steps: Vec::new(),
    };
    let setup = Setup {
        paths: vec![
            PathConfig::symmetric(link(1_797_373, 500, 3_000, 0.009_089_051_631_936_18)),
            PathConfig::symmetric(link(44_783_228, 195_500, 26_203, 0.014_503_242_398_886_174)),
        ],
        scheduler: SchedulerKind::MinRtt.factory(),
        receiver: ReceiverConfig::default(),
        camp: CampConfig::default(),
        seed: 5,
    };
    let turn = TurnConfig {
        duration_ms: 10_000,
        ..TurnConfig::default()
    }
    .realtime();
    let report = run_turn(&setup, &turn, &[]).expect("session starts");
    assert_exactly_once_in_order(&report);
}

#[test]
fn the_servers_ack_based_latency_estimate_tracks_what_the_client_measured() {
    let report = run_turn(
        &two_paths(SchedulerKind::Camp, 3),
        &TurnConfig::default(),
        &[],
    )
    .expect("session starts");
    assert_exactly_once_in_order(&report);
    assert_eq!(report.unacked_reliable, 0);
    for m in Modality::ALL {
        let samples = &report.server_latency[m.index()];
        let client = &report.summary.per_modality[m.index()];
        if m.default_reliability() == camp_wire::Reliability::Reliable {
            // Every reliable unit is acknowledged once, so it yields exactly one sample.
            assert_eq!(samples.len() as u64, report.store.acked[m.index()], "{m}");
        } else {
            // Droppable units: most of those delivered (ACKs may be lost with the unit's
            // path, or refer to units that left the ring).
            assert!(
                samples.len() as u64 * 10 >= client.delivered * 9,
                "{m}: {} samples for {} delivered",
                samples.len(),
                client.delivered
            );
        }
        let n = samples.len() as f64;
        let lateness = samples.iter().map(|s| s.0 as f64).sum::<f64>() / n;
        let delivery = samples.iter().map(|s| s.1 as f64).sum::<f64>() / n;
        // The paths' one-way delays are 10 and 30 ms: delivery must look like a one-way
        // trip plus queueing, not like an RTT or zero.
        assert!(
            (5_000.0..100_000.0).contains(&delivery),
            "{m}: mean delivery {delivery} µs"
        );
        // The estimate adds at most the client's ACK delay (5 ms) and return-path jitter to
        // the true lateness.
        let truth = client.latency.mean_us;
        eprintln!(
            "{m}: {n} samples, lateness {lateness:.0} µs (client {truth:.0}), delivery {delivery:.0} µs"
        );
        assert!(
            (lateness - truth).abs() < 8_000.0,
            "{m}: server estimate {lateness} µs vs client {truth} µs"
        );
    }
}
