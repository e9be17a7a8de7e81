//! Coupled congestion control (RFC 6356 LIA) end to end: a bulk reliable transfer over two
//! emulated paths with random loss, coupling off and on in the same test, against one path.
//!
//! The simulator's paths are independent links, so a shared bottleneck cannot be built.
//! What LIA promises that this setup can show is its aggressiveness: with random loss
//! rate p a Reno window settles near sqrt(2/p) segments on each path it runs on, so two
//! uncoupled paths hold about twice a single path's window, while two LIA paths together
//! hold about one path's worth (RFC 6356 goals 1 and 2: no more than a single flow on the
//! best path).

use std::time::{Duration, Instant};

use camp_proto::cc::CcAlgorithm;
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, SessionId};
use camp_proto::store::UnitSubmit;
use camp_sim::run::establish;
use camp_sim::{ClientNode, LinkConfig, Loss, PathConfig, Setup, Sim, build};
use camp_wire::{CaptureId, Modality, UnitFlags};

/// Fast links (never the limit) with 0.5 % random loss towards the client, 40 ms RTT.
fn lossy_path() -> PathConfig {
    lossy_path_with_delay(20)
}

/// Like [`lossy_path`] with `one_way_ms` of delay each way.
fn lossy_path_with_delay(one_way_ms: u64) -> PathConfig {
    let mut down = LinkConfig::new(200.0, one_way_ms);
    down.loss = Loss::Bernoulli(0.005);
    PathConfig {
        up: LinkConfig::new(200.0, one_way_ms),
        down,
    }
}

#[derive(Debug)]
struct Outcome {
    /// Time-averaged sum of the paths' congestion windows after warm-up, bytes.
    mean_total_cwnd: f64,
    /// Time-averaged window per path slot, bytes.
    mean_cwnd: Vec<f64>,
    /// Unit bytes delivered to the client during the measured interval, per second.
    goodput: f64,
    /// Text units submitted, and presented to the application in order.
    submitted: u64,
    presented_in_order: bool,
    unacked_reliable: usize,
    /// Sum of windows the server's coupling table held at the end of the measurement.
    table_total: u64,
}

fn connect(sim: &mut Sim<Server, ClientNode>, n_paths: usize) -> SessionId {
    let (session, joined) = establish(sim, n_paths, Duration::from_secs(3)).expect("session");
    assert_eq!(joined, n_paths, "every path joined");
    session
}

/// Keeps the server's queue full of reliable text units for `warmup + measure` seconds of
/// virtual time, samples the windows every 10 ms after the warm-up, then drains.
fn bulk(paths: Vec<PathConfig>, coupled: bool, seed: u64) -> Outcome {
    const WARMUP_S: u64 = 5;
    const MEASURE_S: u64 = 20;
    const UNIT: usize = 1_000;
    let n_paths = paths.len();
    let setup = Setup {
        paths,
        scheduler: SchedulerKind::MinRtt.factory(),
        receiver: Default::default(),
        camp: CampConfig {
            cc: CcAlgorithm::NewReno,
            coupled_cc: coupled,
            ..CampConfig::default()
        },
        seed,
    };
    let mut sim = build(&setup, Instant::now());
    assert_eq!(sim.server.coupled_cc(), coupled);
    let session = connect(&mut sim, n_paths);
    let payload = [0x42u8; UNIT];
    let start = sim.now();
    let measure_from = start + Duration::from_secs(WARMUP_S);
    let end = measure_from + Duration::from_secs(MEASURE_S);
    let mut submitted = 0u64;
    let mut sums = vec![0f64; n_paths];
    let mut samples = 0u64;
    let mut delivered_at_start = 0u64;
    while sim.now() < end {
        while sim.server.pending_units(session) < 512 {
            let now = sim.now();
            let t = sim.now_us();
            sim.server
                .send_unit(
                    now,
                    session,
                    &UnitSubmit {
                        modality: Modality::Text,
                        reliability: Modality::Text.default_reliability(),
                        flags: UnitFlags::empty(),
                        sync_index: (t / 40_000) as u32,
                        gen_time_us: t,
                        deadline_us: 150_000,
                        capture_id: CaptureId(0),
                        payload: &payload,
                    },
                )
                .expect("queue has room");
            submitted += 1;
        }
        sim.advance(sim.now() + Duration::from_millis(10));
        if sim.now() >= measure_from {
            if samples == 0 {
                delivered_at_start = delivered_bytes(&sim, n_paths);
            }
            for p in sim.server.paths(session) {
                sums[p.slot] += p.gauges.cwnd as f64;
            }
            samples += 1;
        }
    }
    let goodput = (delivered_bytes(&sim, n_paths) - delivered_at_start) as f64 / MEASURE_S as f64;
    let table_total = sim.server.coupling().group_cwnd(
        sim.server
            .coupling_group(session)
            .expect("open session is coupled"),
    );

    // Drain: every reliable unit must arrive, exactly once and in order.
    let drain_end = sim.now() + Duration::from_secs(10);
    while sim.now() < drain_end
        && !(sim.server.pending_units(session) == 0
            && sim.server.unacked_reliable(session) == 0
            && sim.client.client.receiver().is_idle())
    {
        sim.advance(sim.now() + Duration::from_millis(10));
    }
    let now_us = sim.now_us();
    sim.client.client.receiver_mut().finish(now_us);
    let now = sim.now();
    sim.client.drain_playout(now);
    let presented = &sim.client.presented[Modality::Text.index()];
    let presented_in_order = presented.len() as u64 == submitted
        && presented.iter().enumerate().all(|(i, &s)| s == i as u64);

    let mean_cwnd: Vec<f64> = sums.iter().map(|s| s / samples.max(1) as f64).collect();
    Outcome {
        mean_total_cwnd: mean_cwnd.iter().sum(),
        mean_cwnd,
        goodput,
        submitted,
        presented_in_order,
        unacked_reliable: sim.server.unacked_reliable(session),
        table_total,
    }
}

fn delivered_bytes(sim: &Sim<Server, ClientNode>, n_paths: usize) -> u64 {
    (0..n_paths)
        .map(|i| sim.path_stats(i).down.delivered_bytes)
        .sum()
}

#[test]
fn coupled_paths_together_are_no_more_aggressive_than_one_path() {
    let single = bulk(vec![lossy_path()], false, 21);
    let uncoupled = bulk(vec![lossy_path(); 2], false, 21);
    let coupled = bulk(vec![lossy_path(); 2], true, 21);
    for (name, o) in [
        ("1 path", &single),
        ("2 paths uncoupled", &uncoupled),
        ("2 paths LIA", &coupled),
    ] {
        println!(
            "{name:>18}: mean total cwnd {:>8.0} B (per path {:?}), goodput {:>8.0} B/s, \
             {} text units",
            o.mean_total_cwnd,
            o.mean_cwnd
                .iter()
                .map(|w| w.round() as u64)
                .collect::<Vec<_>>(),
            o.goodput,
            o.submitted,
        );
        assert!(
            o.presented_in_order,
            "{name}: every text unit once, in order"
        );
        assert_eq!(o.unacked_reliable, 0, "{name}: every reliable unit acked");
        assert!(o.submitted > 1_000, "{name}: a real transfer happened");
    }
    // Uncoupled Reno on two paths holds about twice one path's window: the unfairness
    // that coupling exists to remove (and a check that the windows are loss-limited).
    let ratio_uncoupled = uncoupled.mean_total_cwnd / single.mean_total_cwnd;
    assert!(
        ratio_uncoupled > 1.5,
        "uncoupled/single = {ratio_uncoupled:.2}"
    );
    // Coupled, the two paths together hold about what one path does.
    let ratio_coupled = coupled.mean_total_cwnd / single.mean_total_cwnd;
    println!(
        "total cwnd ratio vs one path: uncoupled {ratio_uncoupled:.2}, LIA {ratio_coupled:.2}"
    );
    assert!(
        (0.7..1.35).contains(&ratio_coupled),
        "LIA/single = {ratio_coupled:.2}"
    );
    assert!(coupled.mean_total_cwnd < 0.75 * uncoupled.mean_total_cwnd);
    // Both coupled paths carry traffic (LIA shares, it does not switch a path off).
    assert!(
        coupled
            .mean_cwnd
            .iter()
            .all(|&w| w > 0.25 * coupled.mean_total_cwnd)
    );
    // The table saw the coupled paths; nothing is attached-but-silent when uncoupled
    // either (the table tracks attached paths regardless of the switch).
    assert!(coupled.table_total > 0);
    assert!(uncoupled.table_total > 0);
}

#[test]
fn paths_attach_on_join_leave_on_standby_and_detach_on_close() {
    let setup = Setup {
        paths: vec![lossy_path(), lossy_path()],
        scheduler: SchedulerKind::MinRtt.factory(),
        receiver: Default::default(),
        camp: CampConfig::default(),
        seed: 5,
    };
    let mut sim = build(&setup, Instant::now());
    assert!(!sim.server.coupled_cc(), "off by default");
    assert!(!sim.client.client.coupled_cc());
    let session = connect(&mut sim, 2);
    let group = sim
        .server
        .coupling_group(session)
        .expect("open session is coupled");
    sim.server.set_coupled_cc(true);
    sim.client.client.set_coupled_cc(true);
    assert!(sim.server.coupled_cc() && sim.client.client.coupled_cc());
    sim.advance(sim.now() + Duration::from_millis(200));
    let paths = sim.server.paths(session);
    assert_eq!(paths.len(), 2);
    for p in &paths {
        let (cwnd, srtt) = sim
            .server
            .coupling()
            .path(group, p.slot)
            .expect("joined path is attached");
        assert_eq!(
            cwnd, p.gauges.cwnd,
            "slot {}: table tracks the window",
            p.slot
        );
        assert!(srtt > 0, "slot {}: RTT published", p.slot);
    }
    // Standby: out of the others' alpha.
    let standby = paths[1];
    assert!(sim.server.set_path_status(
        sim.now(),
        session,
        standby.view.id,
        camp_wire::PathStatus::Standby,
        1
    ));
    assert_eq!(sim.server.coupling().path(group, standby.slot), None);
    assert!(sim.server.set_path_status(
        sim.now(),
        session,
        standby.view.id,
        camp_wire::PathStatus::Available,
        1
    ));
    assert!(sim.server.coupling().path(group, standby.slot).is_some());
    // Closing a path frees its slot; the other stays.
    assert!(sim.server.abandon_path(sim.now(), session, standby.view.id));
    sim.advance(sim.now() + Duration::from_millis(300));
    assert_eq!(sim.server.coupling().path(group, standby.slot), None);
    assert!(sim.server.coupling().path(group, paths[0].slot).is_some());
    sim.server.set_coupled_cc(false);
    assert!(!sim.server.coupled_cc());
}

#[test]
fn with_unequal_rtts_lia_takes_about_the_best_paths_share() {
    // 20 ms and 80 ms RTT, the same loss rate. RFC 6356's equilibrium gives both paths the
    // same window (alpha compensates for the RTTs) so that together they move about what
    // Reno alone moves on the faster path.
    let fast = || lossy_path_with_delay(10);
    let slow = || lossy_path_with_delay(40);
    let best = bulk(vec![fast()], false, 23);
    let uncoupled = bulk(vec![fast(), slow()], false, 23);
    let coupled = bulk(vec![fast(), slow()], true, 23);
    for (name, o) in [
        ("fast path alone", &best),
        ("uncoupled", &uncoupled),
        ("LIA", &coupled),
    ] {
        println!(
            "{name:>16}: mean total cwnd {:>8.0} B (per path {:?}), goodput {:>8.0} B/s",
            o.mean_total_cwnd,
            o.mean_cwnd
                .iter()
                .map(|w| w.round() as u64)
                .collect::<Vec<_>>(),
            o.goodput,
        );
        assert!(
            o.presented_in_order,
            "{name}: every text unit once, in order"
        );
        assert_eq!(o.unacked_reliable, 0, "{name}: every reliable unit acked");
    }
    let share = coupled.goodput / best.goodput;
    println!("LIA goodput / fast path alone = {share:.2}");
    // Goal 2 (do no harm): not more than a single flow on the best path; goal 1 (improve
    // throughput) holds only loosely here, see docs/coupled-cc.md.
    assert!((0.7..1.15).contains(&share), "LIA/best = {share:.2}");
    assert!(coupled.mean_total_cwnd < 0.9 * uncoupled.mean_total_cwnd);
}
