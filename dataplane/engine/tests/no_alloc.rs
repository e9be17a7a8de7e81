//! The engine's own loop allocates nothing once warm: receive, timers,
//! transmit polling, flush and the blocking wait, on a real `Server` over
//! kernel UDP on loopback (no root needed). Counted with a global allocator
//! on the engine's thread only.
//!
//! Per-datagram work inside quinn-proto does allocate (not ours; see
//! docs/engine.md), so the loop with traffic is measured through an
//! allocation-free fake endpoint: GSO batches out through quinn-udp, GRO /
//! `recvmmsg` in, the parking buffer and the timer path, 0 allocations per
//! packet.

use camp_testkit::alloc::{CountingAlloc, counted};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, RunEnd, Tick};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig};
use camp_proto::{Driven, EcnCodepoint, Transmit};
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

/// Bytes per fake datagram: a sequence number, then filler.
const DGRAM: usize = 1200;
/// Datagrams the fake sender releases per engine step (its timer fires
/// every step and refills the budget), so a loopback socket buffer is
/// never overrun.
const PER_STEP: u32 = 256;

/// An endpoint that allocates nothing: sends numbered datagrams in batches
/// of `max_datagrams`, counts what it receives.
struct Blaster {
    local: SocketAddr,
    peer: SocketAddr,
    next: u32,
    budget: u32,
    /// Datagrams released per step (0: a pure receiver).
    per_step: u32,
    received: u64,
    /// Datagrams whose sequence number was not the next expected one.
    out_of_order: u64,
    expect: u32,
    /// Largest batch asked for.
    asked: usize,
    /// When the budget ran out (its timer, which refills it).
    due: Option<Instant>,
}

impl Blaster {
    fn new(local: SocketAddr, peer: SocketAddr, per_step: u32) -> Self {
        Self {
            local,
            peer,
            next: 0,
            budget: per_step,
            per_step,
            received: 0,
            out_of_order: 0,
            expect: 0,
            asked: 0,
            due: None,
        }
    }
}

impl Driven for Blaster {
    fn handle_datagram(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        _ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        let seq = data
            .get(..4)
            .map_or(u32::MAX, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if seq != self.expect {
            self.out_of_order += 1;
        }
        self.expect = seq.wrapping_add(1);
        self.received += 1;
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.asked = self.asked.max(max_datagrams);
        let n = (max_datagrams as u32).min(self.budget);
        if n == 0 {
            if self.per_step > 0 {
                self.due = self.due.or(Some(now));
            }
            return None;
        }
        buf.clear();
        for _ in 0..n {
            buf.extend_from_slice(&self.next.to_be_bytes());
            buf.resize(buf.len() + DGRAM - 4, 0x5a);
            self.next += 1;
        }
        self.budget -= n;
        Some(Transmit {
            source: self.local,
            destination: self.peer,
            ecn: Some(EcnCodepoint::Ect0),
            size: buf.len(),
            segment_size: (n > 1).then_some(DGRAM),
        })
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        // Due as soon as the budget ran out: the next step refills it.
        self.due
    }

    fn handle_timeout(&mut self, _now: Instant) {
        self.due = None;
        self.budget = self.per_step;
    }
}

fn blaster_pair() -> (Engine<Blaster, UdpIo>, Engine<Blaster, UdpIo>) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let io_a = UdpIo::open(&[any]).expect("loopback socket");
    let io_b = UdpIo::open(&[any]).expect("loopback socket");
    let (a, b) = (io_a.local_addrs()[0], io_b.local_addrs()[0]);
    let sender = Engine::new(Blaster::new(a, b, PER_STEP), io_a, EngineConfig::default());
    // The receiver never sends.
    let receiver = Engine::new(Blaster::new(b, a, 0), io_b, EngineConfig::default());
    (sender, receiver)
}

#[test]
fn the_loop_with_traffic_allocates_nothing_per_packet() {
    let (mut tx, mut rx) = blaster_pair();
    let pump = |tx: &mut Engine<Blaster, UdpIo>, rx: &mut Engine<Blaster, UdpIo>, steps| {
        for _ in 0..steps {
            let now = Instant::now();
            tx.step(now).unwrap();
            rx.step(now).unwrap();
        }
    };
    // Warm up: sockets, GRO buffers, the engine's and quinn-udp's state.
    pump(&mut tx, &mut rx, 20);
    let (sent0, got0) = (tx.node().next, rx.node().received);
    let steps = 200;
    let ((), allocs) = counted(|| pump(&mut tx, &mut rx, steps));
    // Whatever is still in flight arrives (uncounted).
    for _ in 0..50 {
        rx.step(Instant::now()).unwrap();
    }
    let sent = u64::from(tx.node().next - sent0);
    let got = rx.node().received - got0;
    assert!(tx.batch() > 1, "kernel UDP offers GSO batches here");
    assert_eq!(
        tx.node().asked,
        tx.batch(),
        "the engine asked for full batches"
    );
    assert!(
        tx.counters().tx_datagrams > tx.counters().tx_transmits,
        "batches went out as GSO sends: {:?}",
        tx.counters()
    );
    assert!(
        sent >= u64::from(PER_STEP) * steps as u64 / 2,
        "{sent} sent"
    );
    assert!(got >= sent * 9 / 10, "{got} of {sent} arrived");
    assert_eq!(rx.node().out_of_order, 0, "no datagram sent twice or lost");
    assert_eq!(
        allocs, 0,
        "allocations for {sent} datagrams sent, {got} received"
    );
}
