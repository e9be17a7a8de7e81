//! Root-only: a CAMP server engine in one network namespace and a client
//! engine in another, joined by two veth pairs (two paths, 198.18.0.0/15),
//! exchanging a real 2 s turn over kernel UDP or AF_XDP.
//!
//! Without root these tests print `SKIPPED` and pass, unless `CI` is set, in
//! which case they fail. Each run creates and deletes its own namespaces
//! (`ce-<tag>-<pid>-<n>`); every wait is bounded, so trouble is a failure
//! within seconds, never a hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, EngineCounters, RunEnd, Tick};
use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use camp_proto::store::UnitSubmit;
use camp_recv::ReceiverConfig;
use camp_sim::workload::{PlannedUnit, TurnConfig, plan_turn};
use camp_testkit::netns::{Lab, root_or_skip};
use camp_wire::{CaptureId, Modality};
use camp_xdp::{AnyIo, IoKind, IoMode, UdpIo, XdpConfig, open_io};

/// Server side of path i: `SERVER_IFS[i]` with `SERVER_IPS[i]`, peer of
/// `CLIENT_IFS[i]` with `CLIENT_IPS[i]`.
const SERVER_IFS: [&str; 2] = ["cea0", "cea1"];
const CLIENT_IFS: [&str; 2] = ["ceb0", "ceb1"];
const SERVER_IPS: [&str; 2] = ["198.18.10.1", "198.18.11.1"];
const CLIENT_IPS: [&str; 2] = ["198.18.10.2", "198.18.11.2"];
const SERVER_PORT: u16 = 4433;
const CLIENT_PORT: u16 = 5000;
const SEED: u64 = 11;
/// Longest either engine runs; the whole test stays well under a minute.
const ENGINE_LIMIT: Duration = Duration::from_secs(20);
/// Datagrams either engine may receive in one test: a 2 s turn needs a few
/// thousand; far more would mean a storm.
const RX_LIMIT: u64 = 200_000;

// ---------------------------------------------------------------------------
// Namespace harness.

/// Server namespace `a` and client namespace `b`, joined by two veth pairs.
fn lab(tag: &str) -> Lab {
    Lab::new(
        tag,
        &[0, 1].map(|i| (SERVER_IFS[i], SERVER_IPS[i], CLIENT_IFS[i], CLIENT_IPS[i])),
    )
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("test address"), port)
}

// ---------------------------------------------------------------------------
// The turn.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerIo {
    Udp,
    Xdp,
}

/// What the server side saw.
#[derive(Debug)]
struct ServerReport {
    kind: IoKind,
    planned: [u64; Modality::COUNT],
    paths_joined: usize,
    bytes_per_path: Vec<u64>,
    bytes_at_cut: Vec<u64>,
    /// The path taken down (the busier one at the cut).
    cut_path: Option<usize>,
    /// Text and audio units reinjected onto another path.
    reliable_reinjected: u64,
    counters: EngineCounters,
    end: RunEnd,
}

/// What the client side saw.
#[derive(Debug)]
struct ClientReport {
    presented: [Vec<u64>; Modality::COUNT],
    paths_joined: usize,
    counters: EngineCounters,
    end: RunEnd,
}

fn turn() -> TurnConfig {
    TurnConfig {
        duration_ms: 2_000,
        ..TurnConfig::default()
    }
}

fn count(plan: &[PlannedUnit]) -> [u64; Modality::COUNT] {
    let mut n = [0u64; Modality::COUNT];
    for u in plan {
        n[u.modality.index()] += 1;
    }
    n
}

fn bytes_per_path(server: &Server, session: SessionId) -> Vec<u64> {
    let mut out = vec![0; 2];
    for p in server.paths(session) {
        if let Some(b) = out.get_mut(p.slot) {
            *b = p.bytes_sent;
        }
    }
    out
}

/// Runs one turn: server engine in `lab.a` over `io`, client engine (kernel
/// UDP) in `lab.b` opening both paths. With `cut = Some(t)`, the client's
/// end of the path that has carried more unit bytes so far is taken down `t`
/// after the turn starts (the scheduler may prefer either path, and cutting
/// an idle one would test nothing).
fn run_turn(lab: &Lab, io: ServerIo, cut: Option<Duration>) -> (ServerReport, ClientReport) {
    let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
    let client_crypto = camp_proto::tls::client_crypto(&identity.chain, false).expect("client tls");
    let server_crypto = camp_proto::tls::server_crypto(identity).expect("server tls");
    let epoch = Instant::now();
    let expected = count(&plan_turn(&turn(), 0, SEED));
    let client_done = Arc::new(AtomicBool::new(false));
    let (cut_tx, cut_rx) = mpsc::channel::<usize>();

    let done = Arc::clone(&client_done);
    let server = lab.a.spawn(move || -> Result<ServerReport, String> {
        let addrs: Vec<SocketAddr> = SERVER_IPS.iter().map(|ip| sock(ip, SERVER_PORT)).collect();
        let packet_io = match io {
            ServerIo::Udp => AnyIo::Udp(UdpIo::open(&addrs).map_err(|e| e.to_string())?),
            ServerIo::Xdp => open_io(
                IoMode::Xdp,
                &XdpConfig {
                    interfaces: SERVER_IFS.iter().map(|s| s.to_string()).collect(),
                    ports: vec![SERVER_PORT],
                    ..XdpConfig::default()
                },
            )
            .map_err(|e| e.to_string())?,
        };
        let kind = camp_xdp::PacketIo::kind(&packet_io);
        let node = Server::new(
            ServerConfig {
                camp: CampConfig::default(),
                local_addrs: addrs,
                crypto: server_crypto,
                scheduler: SchedulerKind::Camp.factory(),
                rng_seed: [1; 32],
                lb: None,
            },
            epoch,
        );
        let mut engine = Engine::new(node, packet_io, EngineConfig::default());
        let clock = engine.node().clock();
        let payload = vec![0x5A_u8; 128 * 1024];
        let mut session = None;
        let mut joined = 0;
        let mut plan: Vec<PlannedUnit> = Vec::new();
        let mut next = 0;
        let mut cut_at = None;
        let mut bytes_at_cut = Vec::new();
        let mut cut_path = None;
        let mut submit_error = None;
        let end = engine
            .run_for(ENGINE_LIMIT, |node, now| {
                while let Some(ev) = node.poll_event() {
                    match ev {
                        ServerEvent::SessionOpened(s) => session = Some(s),
                        ServerEvent::PathJoined(..) => joined += 1,
                        _ => {}
                    }
                }
                let Some(s) = session else {
                    return Tick::Continue;
                };
                if plan.is_empty() && joined >= 2 {
                    let start_us = clock.micros(now) + 20_000;
                    plan = plan_turn(&turn(), start_us, SEED);
                    cut_at = cut.map(|after| clock.instant(start_us) + after);
                }
                if cut_at.is_some_and(|t| now >= t) && bytes_at_cut.is_empty() {
                    bytes_at_cut = bytes_per_path(node, s);
                    let busier = usize::from(bytes_at_cut[1] > bytes_at_cut[0]);
                    cut_path = Some(busier);
                    // The test thread runs `ip link set .. down`.
                    let _ = cut_tx.send(busier);
                }
                let now_us = clock.micros(now);
                while let Some(u) = plan.get(next).filter(|u| u.release_us <= now_us) {
                    let r = node.send_unit(
                        now,
                        s,
                        &UnitSubmit {
                            modality: u.modality,
                            reliability: u.modality.default_reliability(),
                            flags: u.flags,
                            sync_index: u.sync_index,
                            gen_time_us: u.gen_us,
                            deadline_us: u.deadline_us,
                            capture_id: CaptureId(0),
                            payload: &payload[..u.size],
                        },
                    );
                    if let Err(e) = r {
                        submit_error = Some(e);
                        return Tick::Stop;
                    }
                    next += 1;
                }
                if done.load(Ordering::Acquire) {
                    return Tick::Stop;
                }
                match plan.get(next) {
                    Some(u) => Tick::WakeAt(clock.instant(u.release_us)),
                    None => Tick::Continue,
                }
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = submit_error {
            return Err(format!("send_unit refused a unit: {e}"));
        }
        let session = session.ok_or("no session opened")?;
        let store = engine.node().store_counters(session).unwrap_or_default();
        Ok(ServerReport {
            cut_path,
            reliable_reinjected: [Modality::Text, Modality::Audio]
                .iter()
                .map(|m| store.reinjected[m.index()])
                .sum(),
            kind,
            planned: count(&plan),
            paths_joined: joined,
            bytes_per_path: bytes_per_path(engine.node(), session),
            bytes_at_cut,
            counters: engine.counters(),
            end,
        })
    });

    let done = Arc::clone(&client_done);
    let client = lab.b.spawn(move || -> Result<ClientReport, String> {
        let locals: Vec<SocketAddr> = CLIENT_IPS.iter().map(|ip| sock(ip, CLIENT_PORT)).collect();
        let packet_io = UdpIo::open(&locals).map_err(|e| e.to_string())?;
        let node = Client::new(
            ClientConfig {
                camp: CampConfig::default(),
                paths: (0..2)
                    .map(|i| PathSpec {
                        local: locals[i],
                        remote: sock(SERVER_IPS[i], SERVER_PORT),
                    })
                    .collect(),
                crypto: client_crypto,
                server_name: "camp.test".into(),
                receiver: ReceiverConfig::default(),
                rng_seed: [2; 32],
                // Both engines live in one process and read one clock.
                shared_clock: true,
            },
            epoch,
            epoch,
        )
        .map_err(|e| e.to_string())?;
        let mut engine = Engine::new(node, packet_io, EngineConfig::default());
        let mut presented: [Vec<u64>; Modality::COUNT] = Default::default();
        let mut joined = 0;
        let reliable = [Modality::Text, Modality::Audio];
        let end = engine
            .run_for(ENGINE_LIMIT, |node, now| {
                while let Some(ev) = node.poll_event() {
                    if let ClientEvent::PathJoined { .. } = ev {
                        joined += 1;
                    }
                }
                let now_us = node.clock().micros(now);
                while let Some(p) = node.receiver_mut().poll_playout(now_us) {
                    if !p.skipped {
                        presented[p.meta.modality.index()].push(p.meta.seq);
                    }
                }
                if reliable
                    .iter()
                    .all(|m| presented[m.index()].len() as u64 >= expected[m.index()])
                {
                    return Tick::Stop;
                }
                Tick::Continue
            })
            .map_err(|e| e.to_string());
        done.store(true, Ordering::Release);
        Ok(ClientReport {
            presented,
            paths_joined: joined,
            counters: engine.counters(),
            end: end?,
        })
    });

    if cut.is_some()
        && let Ok(path) = cut_rx.recv_timeout(ENGINE_LIMIT)
    {
        lab.b.run(&["ip", "link", "set", CLIENT_IFS[path], "down"]);
    }
    let client = client
        .join()
        .expect("client thread")
        .expect("client engine");
    let server = server
        .join()
        .expect("server thread")
        .expect("server engine");
    (server, client)
}

fn assert_turn_delivered(server: &ServerReport, client: &ClientReport) {
    assert_eq!(
        client.end,
        RunEnd::Stopped,
        "client finished before its limit"
    );
    assert_eq!(
        server.end,
        RunEnd::Stopped,
        "server stopped once the client finished"
    );
    assert_eq!(server.planned, count(&plan_turn(&turn(), 0, SEED)));
    for m in [Modality::Text, Modality::Audio] {
        let want: Vec<u64> = (0..server.planned[m.index()]).collect();
        assert!(!want.is_empty(), "{m}: the turn has units");
        assert_eq!(
            client.presented[m.index()],
            want,
            "{m}: exactly once, in order"
        );
    }
    assert_eq!(server.paths_joined, 2, "server: both paths joined");
    assert_eq!(client.paths_joined, 2, "client: both paths joined");
    for c in [&server.counters, &client.counters] {
        assert!(c.rx_datagrams > 0 && c.rx_datagrams < RX_LIMIT, "{c:?}");
    }
}

/// A whole turn over both paths with the server on `io`: everything delivered, both paths
/// used.
fn plain_turn(tag: &str, io: ServerIo, kind: IoKind) {
    let lab = lab(tag);
    let t0 = Instant::now();
    let (server, client) = run_turn(&lab, io, None);
    eprintln!(
        "{kind:?} turn: {:?} wall, server {server:?}, client {:?}",
        t0.elapsed(),
        client.counters
    );
    assert_eq!(server.kind, kind);
    assert_turn_delivered(&server, &client);
    assert!(
        server.bytes_per_path.iter().all(|b| *b > 0),
        "both paths carried units: {:?}",
        server.bytes_per_path
    );
}

#[test]
fn turn_over_two_veth_paths_with_kernel_udp() {
    if root_or_skip("turn_over_two_veth_paths_with_kernel_udp") {
        plain_turn("u", ServerIo::Udp, IoKind::Udp);
    }
}

#[test]
fn turn_over_two_veth_paths_with_af_xdp_server() {
    if root_or_skip("turn_over_two_veth_paths_with_af_xdp_server") {
        plain_turn("x", ServerIo::Xdp, IoKind::Xdp);
    }
}

#[test]
fn a_link_going_down_mid_turn_loses_no_text_or_audio() {
    if !root_or_skip("a_link_going_down_mid_turn_loses_no_text_or_audio") {
        return;
    }
    let lab = lab("c");
    let t0 = Instant::now();
    let (server, client) = run_turn(&lab, ServerIo::Udp, Some(Duration::from_millis(800)));
    eprintln!(
        "cut turn: {:?} wall, {} text/audio units reinjected, server {server:?}, client {:?}",
        t0.elapsed(),
        server.reliable_reinjected,
        client.counters
    );
    assert_turn_delivered(&server, &client);
    let cut = server.cut_path.expect("the cut happened during the turn");
    let other = 1 - cut;
    assert!(server.bytes_at_cut[cut] > 0, "the cut path was in use");
    assert!(
        server.bytes_per_path[other] > server.bytes_at_cut[other],
        "units kept flowing on path {other} after path {cut} went down: \
         {:?} at the cut, {:?} at the end",
        server.bytes_at_cut,
        server.bytes_per_path
    );
}
