//! Lost paths come back (issue 9, issue 13): a path whose connection the network killed is
//! connected and JOINed again while another path holds the session, so a path that was
//! dead when the session started, or that went dark for longer than the idle timeout,
//! serves the session again once it recovers.

use std::time::Duration;

use camp_proto::config::{ReconnectBackoff, SchedulerKind};
use camp_sim::matrix::setup;
use camp_sim::run::{NetEvent, TurnReport, run_turn};
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, PathConfig};

fn paths() -> Vec<PathConfig> {
    vec![
        PathConfig::symmetric(LinkConfig::new(20.0, 10)),
        PathConfig::symmetric(LinkConfig::new(10.0, 40)),
    ]
}

fn run(events: &[NetEvent], reconnect: Option<ReconnectBackoff>) -> TurnReport {
    let mut s = setup(paths(), SchedulerKind::Camp, 7);
    // `setup` has a 1 s idle timeout: the dark path's connection is lost within the turn.
    s.camp.reconnect = reconnect;
    let turn = TurnConfig {
        duration_ms: 6_000,
        ..TurnConfig::default()
    };
    run_turn(&s, &turn, events).expect("the session opens on the live path")
}

#[test]
fn a_path_dark_for_longer_than_the_idle_timeout_rejoins_once_it_recovers() {
    let outage = [NetEvent::Outage {
        path: 0,
        from_ms: 500,
        until_ms: 2_500,
    }];
    let with = run(&outage, Some(ReconnectBackoff::default()));
    let without = run(&outage, None);
    assert!(
        with.reliable_faults().is_empty(),
        "{:?}",
        with.reliable_faults()
    );
    assert!(without.reliable_faults().is_empty());
    assert_eq!(
        without.paths_alive, 1,
        "without reconnect the lost path stays lost"
    );
    assert_eq!(with.paths_alive, 2, "the recovered path is a member again");
    // Path 0 carries traffic after the outage: its downlink delivered well beyond what
    // went over it before the outage.
    let after = |r: &TurnReport| r.links[0].down.delivered_bytes;
    assert!(
        after(&with) > 2 * after(&without),
        "path 0 downlink bytes with reconnect {} vs without {}",
        after(&with),
        after(&without)
    );
}

#[test]
fn a_path_dead_at_session_start_joins_when_it_comes_up() {
    let dark_start = [NetEvent::Outage {
        path: 0,
        from_ms: 0,
        until_ms: 1_500,
    }];
    let with = run(&dark_start, Some(ReconnectBackoff::default()));
    let without = run(&dark_start, None);
    assert!(
        with.reliable_faults().is_empty(),
        "{:?}",
        with.reliable_faults()
    );
    assert_eq!(without.paths_alive, 1);
    assert_eq!(with.paths_alive, 2, "path 0 joined after its outage");
}

#[test]
fn backoff_follows_the_path_rtt_within_its_bounds() {
    let b = ReconnectBackoff {
        min: Duration::from_millis(50),
        max: Duration::from_secs(5),
    };
    assert_eq!(
        b.delay(Duration::from_millis(40), 0),
        Duration::from_millis(80)
    );
    assert_eq!(
        b.delay(Duration::from_millis(40), 2),
        Duration::from_millis(320)
    );
    assert_eq!(
        b.delay(Duration::from_millis(5), 0),
        Duration::from_millis(50)
    );
    assert_eq!(
        b.delay(Duration::from_millis(300), 10),
        Duration::from_secs(5)
    );
    assert_eq!(
        b.delay(Duration::from_secs(1), u32::MAX),
        Duration::from_secs(5)
    );
}
