//! The engine's own loop allocates nothing once warm: receive, timers,
//! transmit polling, flush and the blocking wait, on a real `Server` over
//! kernel UDP on loopback (no root needed). Counted with a global allocator
//! on the engine's thread only.
//!
//! Per-datagram work inside quinn-proto does allocate (not ours; see
//! docs/engine.md), so this measures the loop without traffic.

use camp_testkit::alloc::{CountingAlloc, counted};
use std::time::Duration;

use camp_engine::{Engine, EngineConfig, RunEnd, Tick};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig};
use camp_xdp::{PacketIo, UdpIo};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn idle_server(config: EngineConfig) -> Engine<Server, UdpIo> {
    let io = UdpIo::open(&["127.0.0.1:0".parse().expect("address")]).expect("loopback socket");
    let local = io.local_addrs()[0];
    let identity = camp_proto::tls::self_signed(&["camp.test"]).expect("certificate");
    let server = Server::new(
        ServerConfig {
            camp: CampConfig::default(),
            local_addrs: vec![local],
            crypto: camp_proto::tls::server_crypto(identity).expect("server tls"),
            scheduler: SchedulerKind::Camp.factory(),
            rng_seed: [3; 32],
            lb: None,
        },
        std::time::Instant::now(),
    );
    Engine::new(server, io, config)
}

#[test]
fn the_blocking_loop_allocates_nothing_once_warm() {
    let mut engine = idle_server(EngineConfig::default());
    engine
        .run_for(Duration::from_millis(20), |_, _| Tick::Continue)
        .unwrap();
    let before = engine.counters();
    let (end, allocs) = counted(|| {
        engine
            .run_for(Duration::from_millis(200), |_, now| {
                Tick::WakeAt(now + Duration::from_millis(3))
            })
            .unwrap()
    });
    let passes = engine.counters().steps - before.steps;
    assert_eq!(end, RunEnd::Deadline);
    assert!(passes >= 20, "the loop ran: {passes} passes");
    assert!(engine.counters().waits > before.waits, "it blocked in wait");
    assert_eq!(allocs, 0, "allocations in {passes} passes");
}

#[test]
fn the_busy_polling_loop_allocates_nothing_once_warm() {
    let mut engine = idle_server(EngineConfig {
        busy_poll: true,
        ..EngineConfig::default()
    });
    engine
        .run_for(Duration::from_millis(20), |_, _| Tick::Continue)
        .unwrap();
    let before = engine.counters();
    let (end, allocs) = counted(|| {
        engine
            .run_for(Duration::from_millis(100), |_, _| Tick::Continue)
            .unwrap()
    });
    let passes = engine.counters().steps - before.steps;
    assert_eq!(end, RunEnd::Deadline);
    assert!(passes >= 1_000, "the loop spun: {passes} passes");
    assert_eq!(engine.counters().waits, before.waits, "it never blocked");
    assert_eq!(allocs, 0, "allocations in {passes} passes");
}

#[test]
fn the_counter_sees_allocations_on_this_thread() {
    let ((), n) = counted(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert_eq!(n, 1);
}
