//! Path management: standby status (PATH_STATUS, like MP_PRIO) and abandonment.

use std::time::{Duration, Instant};

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::ServerEvent;
use camp_proto::store::UnitSubmit;
use camp_sim::{LinkConfig, PathConfig, Setup, build};
use camp_wire::{CaptureId, Modality, PathStatus, UnitFlags};

fn setup() -> Setup {
    Setup {
        paths: vec![
            PathConfig::symmetric(LinkConfig::new(20.0, 10)),
            PathConfig::symmetric(LinkConfig::new(20.0, 30)),
        ],
        scheduler: SchedulerKind::MinRtt.factory(),
        receiver: Default::default(),
        camp: CampConfig::default(),
        seed: 11,
    }
}

/// Sends 20 ms audio frames for `ms` milliseconds; returns the unit bytes per path slot.
fn audio_for(
    sim: &mut camp_sim::Sim<camp_proto::server::Server, camp_sim::ClientNode>,
    session: camp_proto::server::SessionId,
    ms: u64,
) -> Vec<u64> {
    let before: Vec<u64> = sim
        .server
        .paths(session)
        .iter()
        .map(|p| p.bytes_sent)
        .collect();
    let start = sim.now_us();
    let mut t = start;
    while t < start + ms * 1000 {
        sim.advance(sim.now() + Duration::from_millis(20));
        t = sim.now_us();
        let now = sim.now();
        sim.server
            .send_unit(
                now,
                session,
                &UnitSubmit {
                    modality: Modality::Audio,
                    reliability: Modality::Audio.default_reliability(),
                    flags: UnitFlags::empty(),
                    sync_index: (t / 40_000) as u32,
                    gen_time_us: t,
                    deadline_us: 150_000,
                    capture_id: CaptureId(0),
                    payload: &[1; 70],
                },
            )
            .unwrap();
    }
    sim.advance(sim.now() + Duration::from_millis(200));
    let after: Vec<u64> = sim
        .server
        .paths(session)
        .iter()
        .map(|p| p.bytes_sent)
        .collect();
    after
        .iter()
        .zip(before.iter().chain(std::iter::repeat(&0)))
        .map(|(a, b)| a - b)
        .collect()
}

fn connect() -> (
    camp_sim::Sim<camp_proto::server::Server, camp_sim::ClientNode>,
    camp_proto::server::SessionId,
) {
    let mut sim = build(&setup(), Instant::now());
    let (session, joined) =
        camp_sim::run::establish(&mut sim, 2, Duration::from_secs(1)).expect("session");
    assert_eq!(joined, 2);
    (sim, session)
}

#[test]
fn standby_path_is_used_only_when_no_available_path_is_left() {
    let (mut sim, session) = connect();
    let first = audio_for(&mut sim, session, 500);
    assert!(
        first[0] > 0 && first[1] == 0,
        "minRTT uses the 10 ms path: {first:?}"
    );

    // The client marks the fast path standby: traffic moves to the slow one.
    assert!(sim.client.client.set_path_status(0, PathStatus::Standby, 0));
    sim.advance(sim.now() + Duration::from_millis(100));
    let second = audio_for(&mut sim, session, 500);
    assert!(
        second[0] == 0 && second[1] > 0,
        "standby path avoided: {second:?}"
    );
    let views = sim.server.paths(session);
    assert_eq!(views[0].view.status, PathStatus::Standby);

    // Back to available.
    assert!(
        sim.client
            .client
            .set_path_status(0, PathStatus::Available, 1)
    );
    sim.advance(sim.now() + Duration::from_millis(100));
    let third = audio_for(&mut sim, session, 500);
    assert!(third[0] > 0 && third[1] == 0, "available again: {third:?}");
}

#[test]
fn abandoned_path_is_closed_on_both_ends_and_the_session_continues() {
    let (mut sim, session) = connect();
    let id = sim.client.client.path_id(0).unwrap();
    assert!(sim.client.client.abandon_path(sim.now(), 0));
    sim.advance(sim.now() + Duration::from_millis(300));
    let mut closed = false;
    while let Some(ev) = sim.server.poll_event() {
        if ev == ServerEvent::PathClosed(session, id) {
            closed = true;
        }
    }
    assert!(closed, "server saw the path leave");
    let paths = sim.server.paths(session);
    assert_eq!(paths.len(), 1);
    let bytes = audio_for(&mut sim, session, 300);
    assert!(bytes.iter().sum::<u64>() > 0);
    let presented = &sim.client.presented[Modality::Audio.index()];
    assert!(!presented.is_empty());
    assert!(presented.windows(2).all(|w| w[1] == w[0] + 1));
}
