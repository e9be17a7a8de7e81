//! Server addresses that come and go mid-session (issue 13): a client following the
//! server's ADD_ADDRESS / REMOVE_ADDRESS opens paths to a new address and abandons the
//! paths to a withdrawn one, with every reliable unit delivered.

use std::net::SocketAddr;
use std::time::Duration;

use camp_proto::client::ClientEvent;
use camp_proto::config::{AdvertPolicy, SchedulerKind};
use camp_proto::server::SessionId;
use camp_proto::store::UnitSubmit;
use camp_sim::matrix::setup;
use camp_sim::run::establish;
use camp_sim::{ClientNode, LinkConfig, PathConfig, Sim, build, client_addr, server_addr};
use camp_wire::{CaptureId, Modality, Reliability, UnitFlags};

type S = Sim<camp_proto::server::Server, ClientNode>;

fn sim(paths: usize, policy: AdvertPolicy) -> S {
    let links = (0..paths)
        .map(|i| PathConfig::symmetric(LinkConfig::new(20.0, 10 + 10 * i as u64)))
        .collect();
    let mut s = setup(links, SchedulerKind::Camp, 11);
    s.camp.advertised_paths = policy;
    s.camp.idle_timeout = Duration::from_secs(5);
    build(&s, std::time::Instant::now())
}

/// Sends one reliable audio unit every 20 ms for `ms`, with `at(ms)` called every 20 ms.
/// Returns how many were accepted.
fn stream(sim: &mut S, s: SessionId, ms: u64, mut at: impl FnMut(&mut S, u64)) -> u64 {
    let payload = [7u8; 160];
    let mut sent = 0;
    for k in 0..ms / 20 {
        at(sim, k * 20);
        let now = sim.now();
        let unit = UnitSubmit {
            modality: Modality::Audio,
            reliability: Reliability::Reliable,
            flags: UnitFlags::empty(),
            sync_index: k as u32,
            gen_time_us: sim.server.clock().micros(now),
            deadline_us: 0,
            capture_id: CaptureId(0),
            payload: &payload,
        };
        if sim.server.send_unit(now, s, &unit).is_ok() {
            sent += 1;
        }
        sim.advance(now + Duration::from_millis(20));
    }
    let end = sim.now() + Duration::from_secs(2);
    sim.advance(end);
    sent
}

fn remotes(sim: &S, s: SessionId) -> Vec<SocketAddr> {
    let mut r: Vec<SocketAddr> = sim.server.paths(s).iter().map(|p| p.local).collect();
    r.sort();
    r
}

/// One path to address A0; the server adds A1 mid-session (a NIC comes up), reachable from
/// the client's interface over a 30 ms route. Returns (client, session, ms from the
/// advertisement to the new path's JOIN, units sent).
fn new_address(policy: AdvertPolicy) -> (S, SessionId, Option<u64>, u64) {
    let mut sim = sim(1, policy);
    let (s, _) = establish(&mut sim, 1, Duration::from_secs(3)).expect("session");
    sim.add_route(
        client_addr(0).ip(),
        server_addr(1).ip(),
        PathConfig::symmetric(LinkConfig::new(20.0, 15)),
    );
    let mut advertised_at = None;
    let mut joined_after = None;
    let sent = stream(&mut sim, s, 2_000, |sim, t| {
        if t == 400 {
            assert_eq!(
                sim.server
                    .set_local_addrs(vec![server_addr(0), server_addr(1)]),
                1
            );
            advertised_at = Some(sim.now());
        }
        while let Some(ev) = sim.client.client.poll_event() {
            if let (ClientEvent::PathJoined { slot: 1, .. }, Some(a)) = (ev, advertised_at) {
                joined_after.get_or_insert((sim.now() - a).as_millis() as u64);
            }
        }
    });
    (sim, s, joined_after, sent)
}

#[test]
fn a_new_server_address_is_joined_within_a_handshake_and_carries_units() {
    let (sim, s, joined_after, sent) = new_address(AdvertPolicy::All);
    let c = sim.client.client.counters();
    assert_eq!(c.advert_paths_opened, 1, "{c:?}");
    // SESSION path one-way 10 ms for the ADD_ADDRESS, a 30 ms-RTT handshake, JOIN and
    // JOIN_OK: about 80 ms, seen at the next 20 ms step.
    let joined_after = joined_after.expect("the new path joined");
    eprintln!("new address joined {joined_after} ms after the advertisement");
    assert!(
        joined_after <= 150,
        "joined {joined_after} ms after the advert"
    );
    assert_eq!(remotes(&sim, s), vec![server_addr(0), server_addr(1)]);
    let new_path = sim.route_stats(client_addr(0).ip(), server_addr(1).ip());
    assert!(
        new_path.down.delivered_bytes > 10_000,
        "new path carried {} bytes",
        new_path.down.delivered_bytes
    );
    assert_eq!(sim.server.unacked_reliable(s), 0);
    let rx = sim.client.client.receiver();
    assert_eq!(rx.in_order_point(Modality::Audio), sent);
}

#[test]
fn without_a_policy_the_advertisement_is_recorded_and_nothing_opens() {
    let (sim, s, joined_after, _) = new_address(AdvertPolicy::None);
    assert_eq!(joined_after, None);
    assert_eq!(sim.client.client.counters().advert_paths_opened, 0);
    assert_eq!(sim.client.client.advertised_addresses().len(), 2);
    assert_eq!(remotes(&sim, s), vec![server_addr(0)]);
}

#[test]
fn a_withdrawn_address_loses_its_path_and_the_interface_moves_to_another_address() {
    let mut sim = sim(2, AdvertPolicy::OnePerLocalInterface);
    let (s, _) = establish(&mut sim, 2, Duration::from_secs(3)).expect("session");
    // Interface 1 can also reach A0.
    sim.add_route(
        client_addr(1).ip(),
        server_addr(0).ip(),
        PathConfig::symmetric(LinkConfig::new(20.0, 20)),
    );
    let sent = stream(&mut sim, s, 2_000, |sim, t| {
        if t == 600 {
            // A1 goes away (REMOVE_ADDRESS for id 1).
            assert_eq!(sim.server.set_local_addrs(vec![server_addr(0)]), 1);
        }
        while sim.client.client.poll_event().is_some() {}
    });
    let c = *sim.client.client.counters();
    assert_eq!(c.advert_paths_abandoned, 1, "{c:?}");
    assert_eq!(c.advert_paths_opened, 1, "{c:?}");
    // Both interfaces now reach A0; A1 carries nothing any more.
    assert_eq!(remotes(&sim, s), vec![server_addr(0), server_addr(0)]);
    let moved = sim.route_stats(client_addr(1).ip(), server_addr(0).ip());
    assert!(moved.down.delivered_bytes > 0);
    assert_eq!(sim.server.unacked_reliable(s), 0);
    assert_eq!(
        sim.client.client.receiver().in_order_point(Modality::Audio),
        sent,
        "every reliable unit delivered"
    );
}
