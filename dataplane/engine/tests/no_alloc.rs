//! The engine's own loop allocates nothing once warm: receive, timers,
//! transmit polling, flush and the blocking wait, on a real `Server` over
//! kernel UDP on loopback (no root needed). Counted with a global allocator
//! on the engine's thread only.
//!
//! Per-datagram work inside quinn-proto does allocate (not ours; see
//! docs/engine.md), so this measures the loop without traffic.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use camp_engine::{Engine, EngineConfig, RunEnd, Tick};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig};
use camp_xdp::{PacketIo, UdpIo};

struct Counting;

thread_local! {
    // Const-initialised, no destructor: touching them never allocates.
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if TRACK.with(Cell::get) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: forwards every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` / `realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and counts the allocations this thread makes meanwhile.
fn counted<T>(f: impl FnOnce() -> T) -> (T, u64) {
    ALLOCS.with(|a| a.set(0));
    TRACK.with(|t| t.set(true));
    let out = f();
    TRACK.with(|t| t.set(false));
    (out, ALLOCS.with(Cell::get))
}

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
