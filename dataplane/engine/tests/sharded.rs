//! Root-only: two server engines sharing the server's addresses over kernel UDP, as an
//! SO_REUSEPORT group per address with CID steering (`camp_xdp::steer`), and clients with
//! routed joins (issue 10). Every path of every session must reach the engine that holds
//! the session: no JOIN is refused, each session has both paths on one engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, Tick};
use camp_proto::cid::{LbConfig, ServerId};
use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent};
use camp_recv::ReceiverConfig;
use camp_testkit::netns::{Lab, root_or_skip};
use camp_xdp::UdpIo;
use camp_xdp::steer::{ReuseportSteering, SteerLayout, reuseport_group};

const SERVER_IPS: [&str; 2] = ["198.18.30.1", "198.18.31.1"];
const CLIENT_IPS: [&str; 2] = ["198.18.30.2", "198.18.31.2"];
const ENGINES: usize = 2;
const CLIENTS: usize = 8;
const HOST: [u8; 1] = [0x31];
const CONFIG: u8 = 2;
const NONCE: usize = 6;

/// What one server engine saw: sessions opened, paths joined per session, refusals.
#[derive(Debug, Default)]
struct EngineSeen {
    paths: HashMap<u64, usize>,
    refused: usize,
}

#[test]
fn every_path_of_a_session_reaches_the_engine_that_holds_it() {
    if !root_or_skip("every_path_of_a_session_reaches_the_engine_that_holds_it") {
        return;
    }
    let lab = Lab::new(
        "sh",
        &[0, 1].map(|i| {
            (
                ["sha0", "sha1"][i],
                SERVER_IPS[i],
                ["shb0", "shb1"][i],
                CLIENT_IPS[i],
            )
        }),
    );
    let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
    let roots = identity.chain.clone();
    let server_crypto = camp_proto::tls::server_crypto(identity).expect("server tls");
    let addrs: Vec<SocketAddr> = SERVER_IPS
        .iter()
        .map(|ip| SocketAddr::new(ip.parse().unwrap(), 4433))
        .collect();

    // In the server namespace: one group per address, steered, split into engines.
    let (per_engine, steering) = lab.a.enter(|| {
        let layout = SteerLayout {
            cid_len: (1 + HOST.len() + 1 + NONCE) as u8,
            config_id: CONFIG,
            engine_offset: (HOST.len() + 1) as u8,
        };
        let mut per_engine: Vec<Vec<std::net::UdpSocket>> =
            (0..ENGINES).map(|_| Vec::new()).collect();
        let mut steering = Vec::new();
        for a in &addrs {
            let group = reuseport_group(*a, ENGINES).expect("reuseport group");
            steering.push(ReuseportSteering::attach(&group, layout).expect("steering"));
            for (k, s) in group.into_iter().enumerate() {
                per_engine[k].push(s);
            }
        }
        (per_engine, steering)
    });

    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = per_engine
        .into_iter()
        .enumerate()
        .map(|(k, socks)| {
            let stop = stop.clone();
            let crypto = server_crypto.clone();
            let addrs = addrs.clone();
            std::thread::spawn(move || {
                let epoch = Instant::now();
                let lb =
                    LbConfig::new(CONFIG, ServerId::for_engine(&HOST, k as u8).unwrap(), NONCE)
                        .unwrap();
                let server = Server::new(
                    ServerConfig {
                        camp: CampConfig::default(),
                        local_addrs: addrs,
                        crypto,
                        scheduler: SchedulerKind::Camp.factory(),
                        rng_seed: [k as u8 + 1; 32],
                        lb: Some(lb),
                    },
                    epoch,
                );
                let io = UdpIo::from_sockets(socks).expect("engine io");
                let mut engine = Engine::new(server, io, EngineConfig::default());
                let mut seen = EngineSeen::default();
                let end = engine.run_until(epoch + Duration::from_secs(20), |node, now| {
                    while let Some(ev) = node.poll_event() {
                        match ev {
                            ServerEvent::PathJoined(s, _) => {
                                *seen.paths.entry(s.to_bits()).or_default() += 1;
                            }
                            ServerEvent::JoinRefused(_) => seen.refused += 1,
                            _ => {}
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        Tick::Stop
                    } else {
                        Tick::WakeAt(now + Duration::from_millis(10))
                    }
                });
                end.expect("server engine runs");
                seen
            })
        })
        .collect();

    // In the client namespace: CLIENTS clients at once, each with both paths.
    let client_crypto = camp_proto::tls::client_crypto(&roots, false).expect("client tls");
    let joined: Vec<usize> = lab.b.enter(|| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let crypto = client_crypto.clone();
                let ios: Vec<SocketAddr> = CLIENT_IPS
                    .iter()
                    .map(|ip| SocketAddr::new(ip.parse().unwrap(), 6000 + c as u16))
                    .collect();
                let io = UdpIo::open(&ios).expect("client io");
                let server_addrs: Vec<SocketAddr> = SERVER_IPS
                    .iter()
                    .map(|ip| SocketAddr::new(ip.parse().unwrap(), 4433))
                    .collect();
                std::thread::spawn(move || {
                    let epoch = Instant::now();
                    let client = Client::new(
                        ClientConfig {
                            camp: CampConfig {
                                routed_joins: true,
                                ..CampConfig::default()
                            },
                            paths: (0..2)
                                .map(|i| PathSpec {
                                    local: ios[i],
                                    remote: server_addrs[i],
                                })
                                .collect(),
                            crypto,
                            server_name: "camp.test".into(),
                            receiver: ReceiverConfig::default(),
                            rng_seed: [c as u8 + 100; 32],
                            shared_clock: false,
                        },
                        epoch,
                        epoch,
                    )
                    .expect("client");
                    let mut engine = Engine::new(client, io, EngineConfig::default());
                    let mut joined = 0;
                    let _ = engine.run_until(epoch + Duration::from_secs(8), |node, now| {
                        while let Some(ev) = node.poll_event() {
                            if let ClientEvent::PathJoined { .. } = ev {
                                joined += 1;
                            }
                        }
                        if joined >= 2 {
                            Tick::Stop
                        } else {
                            Tick::WakeAt(now + Duration::from_millis(10))
                        }
                    });
                    joined
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    // Let the last JOIN_OKs' events reach the servers' ticks.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<EngineSeen> = servers
        .into_iter()
        .map(|h| h.join().expect("server thread"))
        .collect();
    let counts: Vec<_> = steering
        .iter()
        .map(|s| s.counts().expect("counts"))
        .collect();
    eprintln!(
        "sessions per engine: {:?}; steering per address: {counts:?}",
        seen.iter().map(|s| s.paths.len()).collect::<Vec<_>>()
    );
    assert_eq!(joined, vec![2; CLIENTS], "every client has both paths");
    assert_eq!(
        seen.iter().map(|s| s.refused).sum::<usize>(),
        0,
        "no JOIN refused"
    );
    let sessions: usize = seen.iter().map(|s| s.paths.len()).sum();
    assert_eq!(sessions, CLIENTS);
    for (k, s) in seen.iter().enumerate() {
        for (id, n) in &s.paths {
            assert_eq!(*n, 2, "engine {k} session {id}: both paths on the engine");
        }
    }
    assert!(counts.iter().map(|c| c.by_cid).sum::<u64>() > 0);
}
