//! In-crate tests of the client against a server on a lossless in-memory wire.

use super::*;
use crate::config::SchedulerKind;
use crate::server::{Server, ServerConfig};
use std::time::Duration;

/// A server and a one-path client on a lossless in-memory wire, run until the session
/// is up.
fn session() -> (Server, Client, Instant) {
    session_with(1)
}

/// [`session`] with `paths` client paths (local 198.19.0.1.., one server address).
fn session_with(paths: usize) -> (Server, Client, Instant) {
    let identity = crate::tls::self_signed(&["camp.test"]).expect("certificate");
    let roots = identity.chain.clone();
    let epoch = Instant::now();
    let server_addr: SocketAddr = "198.18.0.1:4433".parse().expect("address");
    let client_addr: SocketAddr = "198.19.0.1:5000".parse().expect("address");
    let mut server = Server::new(
        ServerConfig {
            camp: CampConfig::default(),
            local_addrs: vec![server_addr],
            crypto: crate::tls::server_crypto(identity).expect("server tls"),
            scheduler: SchedulerKind::Camp.factory(),
            rng_seed: [1; 32],
            lb: None,
        },
        epoch,
    );
    let client = Client::new(
        ClientConfig {
            camp: CampConfig::default(),
            paths: (0..paths)
                .map(|i| PathSpec {
                    local: SocketAddr::new(
                        std::net::Ipv4Addr::new(198, 19, 0, 1 + i as u8).into(),
                        client_addr.port(),
                    ),
                    remote: server_addr,
                })
                .collect(),
            crypto: crate::tls::client_crypto(&roots, false).expect("client tls"),
            server_name: "camp.test".into(),
            receiver: ReceiverConfig::default(),
            rng_seed: [2; 32],
            shared_clock: true,
        },
        epoch,
        epoch,
    )
    .expect("client");
    let mut client = client;
    let mut now = epoch;
    for _ in 0..200 {
        if client.session_token().is_some() {
            return (server, client, now);
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    panic!("no session");
}

/// Moves every pending datagram across (1 ms later) and runs due timers.
fn shuttle(server: &mut Server, client: &mut Client, now: &mut Instant) {
    shuttle_by(server, client, now, Duration::from_millis(1));
}

/// [`shuttle`] with the datagrams arriving `dt` later.
fn shuttle_by(server: &mut Server, client: &mut Client, now: &mut Instant, dt: Duration) {
    let mut buf = Vec::new();
    let mut to_server = Vec::new();
    while let Some(t) = client.poll_transmit(*now, 1, &mut buf) {
        to_server.push((t, buf[..t.size].to_vec()));
    }
    let mut to_client = Vec::new();
    while let Some(t) = server.poll_transmit(*now, 1, &mut buf) {
        to_client.push((t, buf[..t.size].to_vec()));
    }
    *now += dt;
    for (t, d) in to_server {
        server.handle_datagram(*now, t.destination, t.source, None, &d);
    }
    for (t, d) in to_client {
        client.handle_datagram(*now, t.destination, t.source, None, &d);
    }
    if server.poll_timeout().is_some_and(|t| t <= *now) {
        server.handle_timeout(*now);
    }
    if client.poll_timeout().is_some_and(|t| t <= *now) {
        client.handle_timeout(*now);
    }
}

/// Regression (fuzz target `control_after_join`): a control frame whose header the
/// frame reader refuses closed the path without counting it as malformed.
#[test]
fn a_control_frame_header_the_reader_refuses_is_counted_and_closes_the_path() {
    for header in [
        // PATH_STATUS announcing a 130-byte body (its body is 10 bytes).
        [0x01, 0x21, 0x00, 0x00, 0x00, 0x82],
        // DATA announcing more than a control frame may hold.
        [0x01, 0x01, 0x00, 0x1e, 0x01, 0x23],
    ] {
        let (mut server, mut client, mut now) = session();
        let sid = server.sessions().next().expect("a session");
        assert!(server.fuzz_send_control(sid, PathId(0), &header));
        for _ in 0..20 {
            shuttle(&mut server, &mut client, &mut now);
        }
        assert_eq!(client.counters().malformed_control, 1, "{header:?}");
        let mut closed = false;
        while let Some(ev) = client.poll_event() {
            closed |= ev == ClientEvent::PathClosed { slot: 0 };
        }
        assert!(closed, "{header:?}: path not closed");
    }
}
/// A replayed (or overtaken) ADD_ADDRESS / REMOVE_ADDRESS is counted and ignored, and
/// neither frame is ever a protocol violation for the client.
#[test]
fn stale_address_updates_are_ignored_and_never_close_the_path() {
    let (mut server, mut client, mut now) = session();
    for _ in 0..20 {
        shuttle(&mut server, &mut client, &mut now);
    }
    let server_addr: SocketAddr = "198.18.0.1:4433".parse().expect("address");
    assert_eq!(client.advertised_addresses(), vec![(0, server_addr)]);
    let sid = server.sessions().next().expect("a session");
    let frame_bytes = |f: Frame<'_>| {
        let mut b = vec![0; f.buffer_len()];
        f.emit(&mut b).expect("encodes");
        b
    };
    let other: SocketAddr = "198.18.0.9:4433".parse().expect("address");
    // A replay of the server's own seq-1 ADD for id 0 with another address, a lower-seq
    // REMOVE of id 0, then a genuinely newer ADD of id 1.
    let stale_add = frame_bytes(Frame::AddAddress(camp_wire::AddAddress {
        address_id: 0,
        seq: 1,
        addr: other,
    }));
    let stale_remove = frame_bytes(Frame::RemoveAddress(camp_wire::RemoveAddress {
        address_id: 0,
        seq: 0,
    }));
    let fresh = frame_bytes(Frame::AddAddress(camp_wire::AddAddress {
        address_id: 1,
        seq: 7,
        addr: other,
    }));
    let bytes = [stale_add, stale_remove, fresh].concat();
    assert!(server.fuzz_send_control(sid, PathId(0), &bytes));
    for _ in 0..20 {
        shuttle(&mut server, &mut client, &mut now);
    }
    assert_eq!(client.counters().stale_address_updates, 2);
    assert_eq!(client.counters().malformed_control, 0);
    assert_eq!(
        client.advertised_addresses(),
        vec![(0, server_addr), (1, other)]
    );
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    assert!(events.contains(&ClientEvent::AddressAdded { id: 1, addr: other }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ClientEvent::PathClosed { .. }))
    );
    assert!(!events.contains(&ClientEvent::AddressRemoved { id: 0 }));
}

/// Whether slot `slot` is a session member.
fn member(client: &Client, slot: usize) -> bool {
    client.slots[slot]
        .and_then(|h| client.paths.get(h))
        .is_some_and(|c| matches!(c.role.state, PathState::Member(_)))
}

/// A local link going down abandons its path at once and is not reconnected while down;
/// when it comes back the path is connected again with the last connection's RTT as its
/// initial RTT (not the configured 333 ms guess, so a lost Initial is resent after a PTO of
/// this path) and JOINs.
#[test]
fn a_link_down_abandons_at_once_and_a_link_up_rejoins_with_the_paths_last_rtt() {
    let (mut server, mut client, mut now) = session_with(2);
    for _ in 0..200 {
        if member(&client, 0) && member(&client, 1) {
            break;
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    assert!(
        member(&client, 0) && member(&client, 1),
        "both paths joined"
    );
    for _ in 0..50 {
        shuttle(&mut server, &mut client, &mut now);
    }
    let rtt = |c: &Client| {
        c.slots[0]
            .and_then(|h| c.paths.get(h))
            .map(|c| c.path.conn.rtt())
    };
    let before = rtt(&client).expect("path 0");
    assert!(before < Duration::from_millis(20), "{before:?}");

    assert!(client.local_link_down(now, 0));
    assert!(!client.local_link_down(now, 0), "already down");
    assert!(client.is_local_link_down(0));
    assert!(!member(&client, 0));
    for _ in 0..300 {
        shuttle(&mut server, &mut client, &mut now);
    }
    assert_eq!(
        client.counters().reconnects,
        0,
        "no reconnect while the link is down"
    );
    assert!(member(&client, 1), "the other path holds the session");

    assert!(client.local_link_up(now, 0));
    assert!(!client.is_local_link_down(0));
    assert_eq!(client.counters().reconnects, 1);
    let initial = rtt(&client).expect("a new connection on slot 0");
    assert_eq!(initial, before.max(Duration::from_millis(1)));
    for _ in 0..100 {
        if member(&client, 0) {
            break;
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    assert!(member(&client, 0), "joined again");
    assert_eq!(
        (client.counters().link_downs, client.counters().link_ups),
        (1, 1)
    );
}

/// A local address gained at run time gets a path to the server's address of its family,
/// which JOINs; the same IP twice, another family, or a session that is not up get a reason.
#[test]
fn a_local_address_added_at_run_time_gets_a_path_that_joins() {
    let (mut server, mut client, mut now) = session();
    let new: SocketAddr = "198.19.0.9:5000".parse().expect("address");
    let v6: SocketAddr = "[2001:db8::9]:5000".parse().expect("address");
    for _ in 0..50 {
        if member(&client, 0) {
            break;
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    assert_eq!(
        client.add_local_path(now, v6),
        Err(AddPathError::NoServerAddress(v6.ip()))
    );
    assert_eq!(client.add_local_path(now, new), Ok(1));
    assert_eq!(
        client.add_local_path(now, new),
        Err(AddPathError::AlreadyUsed(new.ip()))
    );
    let used = "198.19.0.1:6000".parse().expect("address");
    assert_eq!(
        client.add_local_path(now, used),
        Err(AddPathError::AlreadyUsed("198.19.0.1".parse().expect("ip")))
    );
    for _ in 0..100 {
        if member(&client, 1) {
            break;
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    assert!(member(&client, 1), "the added path joined");
    assert!(member(&client, 0));
    assert_eq!(client.counters().local_paths_added, 1);
    // Followed like a configured path.
    assert!(client.local_link_down(now, 1));
    assert!(!member(&client, 1));
    assert!(client.local_link_up(now, 1));
    for _ in 0..100 {
        if member(&client, 1) {
            break;
        }
        shuttle(&mut server, &mut client, &mut now);
    }
    assert!(member(&client, 1), "rejoined after its link returned");
}

#[test]
fn a_local_address_before_the_session_is_up_gets_no_path() {
    let identity = crate::tls::self_signed(&["camp.test"]).expect("certificate");
    let client = Client::new(
        ClientConfig {
            camp: CampConfig::default(),
            paths: vec![PathSpec {
                local: "198.19.0.1:5000".parse().expect("address"),
                remote: "198.18.0.1:4433".parse().expect("address"),
            }],
            crypto: crate::tls::client_crypto(&identity.chain, false).expect("client tls"),
            server_name: "camp.test".into(),
            receiver: ReceiverConfig::default(),
            rng_seed: [2; 32],
            shared_clock: true,
        },
        Instant::now(),
        Instant::now(),
    );
    let mut client = client.expect("client");
    let new = "198.19.0.9:5000".parse().expect("address");
    assert_eq!(
        client.add_local_path(Instant::now(), new),
        Err(AddPathError::NoSession)
    );
}

/// A path whose link comes and goes 70 times rejoins every time: the token's JOIN budget
/// refills and the replay cache forgets its oldest nonces (both used to be lifetime caps,
/// 32 attempts and 64 joins, that left a flapping session without the path for good).
#[test]
fn a_link_that_flaps_70_times_rejoins_every_time() {
    let (mut server, mut client, mut now) = session_with(2);
    for _ in 0..200 {
        shuttle(&mut server, &mut client, &mut now);
    }
    assert!(member(&client, 0) && member(&client, 1));
    for flap in 0..70 {
        assert!(client.local_link_down(now, 0));
        for _ in 0..20 {
            shuttle(&mut server, &mut client, &mut now);
        }
        assert!(client.local_link_up(now, 0));
        for _ in 0..100 {
            if member(&client, 0) {
                break;
            }
            shuttle(&mut server, &mut client, &mut now);
        }
        assert!(member(&client, 0), "flap {flap}: not joined again");
        // 20 s up between flaps: the JOIN budget refills at 32 per 10 minutes.
        for _ in 0..100 {
            shuttle_by(
                &mut server,
                &mut client,
                &mut now,
                Duration::from_millis(200),
            );
        }
        assert!(member(&client, 0) && member(&client, 1), "flap {flap}");
    }
    assert_eq!(client.counters().link_ups, 70);
}
