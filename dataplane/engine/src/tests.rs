//! Unit tests: engines over an in-memory [`PacketIo`] (a shared "wire" of
//! per-address queues, links that can be taken down, injectable refusals),
//! stepped on a virtual clock.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use camp_proto::store::UnitSubmit;
use camp_proto::{EcnCodepoint, Transmit};
use camp_recv::ReceiverConfig;
use camp_sim::workload::{TurnConfig, plan_turn};
use camp_wire::{CaptureId, Modality};
use camp_xdp::{IoCounters, IoKind, RxDatagram};

use super::*;

struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    ecn: Ecn,
    data: Vec<u8>,
}

/// Datagram queues per destination address; a packet from or to an address
/// in `down` is lost.
#[derive(Default)]
struct Wire {
    queues: HashMap<SocketAddr, VecDeque<Packet>>,
    down: HashSet<IpAddr>,
    /// Packets lost to a link that is down.
    lost: u64,
}

/// In-memory [`PacketIo`] over a shared [`Wire`].
struct MemIo {
    wire: Rc<RefCell<Wire>>,
    locals: Vec<SocketAddr>,
    unflushed: Vec<Packet>,
    /// Datagrams `send` queues before `flush` must make room.
    capacity: usize,
    /// The next this many sends are refused with `WouldBlock`.
    refuse_next: usize,
    /// The next send takes only this many segments and reports `Partial`.
    partial_next: Option<usize>,
    /// What `max_segments` reports.
    max_segments: usize,
    counters: IoCounters,
    /// Something to return from `readiness_fd` (never polled here).
    fd: std::fs::File,
}

impl MemIo {
    fn new(wire: &Rc<RefCell<Wire>>, locals: &[SocketAddr]) -> Self {
        Self {
            wire: Rc::clone(wire),
            locals: locals.to_vec(),
            unflushed: Vec::new(),
            capacity: usize::MAX,
            refuse_next: 0,
            partial_next: None,
            max_segments: 1,
            counters: IoCounters::default(),
            fd: std::fs::File::open("/dev/null").expect("/dev/null opens"),
        }
    }
}

impl std::fmt::Debug for MemIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemIo")
            .field("locals", &self.locals)
            .finish()
    }
}

impl PacketIo for MemIo {
    fn recv_batch(&mut self, f: &mut dyn FnMut(RxDatagram<'_>)) -> Result<usize, IoError> {
        let mut n = 0;
        for local in &self.locals {
            loop {
                let p = self
                    .wire
                    .borrow_mut()
                    .queues
                    .get_mut(local)
                    .and_then(VecDeque::pop_front);
                let Some(p) = p else { break };
                n += 1;
                self.counters.rx_packets += 1;
                f(RxDatagram {
                    local: p.to,
                    remote: p.from,
                    ecn: p.ecn,
                    payload: &p.data,
                });
            }
        }
        Ok(n)
    }

    fn send(&mut self, tx: &TxDatagram<'_>) -> Result<(), IoError> {
        if !self.locals.contains(&tx.local) {
            return Err(IoError::NoSourceInterface(tx.local.ip()));
        }
        let segments = tx.segments().count();
        if self.refuse_next > 0 || self.unflushed.len() + segments > self.capacity {
            self.refuse_next = self.refuse_next.saturating_sub(1);
            self.counters.tx_full += 1;
            return Err(IoError::WouldBlock);
        }
        let take = self.partial_next.take().unwrap_or(usize::MAX);
        let mut sent = 0;
        for s in tx.segments().take(take) {
            self.counters.tx_packets += 1;
            sent += s.len();
            self.unflushed.push(Packet {
                from: tx.local,
                to: tx.remote,
                ecn: tx.ecn,
                data: s.to_vec(),
            });
        }
        if take < segments {
            self.counters.tx_full += 1;
            return Err(IoError::Partial { sent });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        let mut wire = self.wire.borrow_mut();
        for p in self.unflushed.drain(..) {
            if wire.down.contains(&p.from.ip()) || wire.down.contains(&p.to.ip()) {
                wire.lost += 1;
                continue;
            }
            wire.queues.entry(p.to).or_default().push_back(p);
        }
        Ok(())
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn max_segments(&self) -> usize {
        self.max_segments
    }

    fn counters(&self) -> IoCounters {
        self.counters
    }

    fn kind(&self) -> IoKind {
        IoKind::Udp
    }

    fn local_addrs(&self) -> Vec<SocketAddr> {
        self.locals.clone()
    }

    fn wait(&mut self, _timeout: Duration) -> Result<bool, IoError> {
        let wire = self.wire.borrow();
        Ok(self
            .locals
            .iter()
            .any(|l| wire.queues.get(l).is_some_and(|q| !q.is_empty())))
    }
}

/// A fake endpoint: sends `total` numbered 4-byte datagrams to `peer`, and
/// records the numbers it receives.
#[derive(Debug)]
pub(crate) struct Counter {
    local: SocketAddr,
    peer: SocketAddr,
    next: u32,
    total: u32,
    received: Vec<u32>,
    /// `max_datagrams` of every `poll_transmit` call.
    asked: Vec<usize>,
}

impl Counter {
    fn new(local: SocketAddr, peer: SocketAddr, total: u32) -> Self {
        Self {
            local,
            peer,
            next: 0,
            total,
            received: Vec::new(),
            asked: Vec::new(),
        }
    }
}

impl Driven for Counter {
    fn handle_datagram(
        &mut self,
        _now: Instant,
        _local: SocketAddr,
        _remote: SocketAddr,
        _ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        let n: [u8; 4] = data.try_into().expect("the fake sends 4-byte datagrams");
        self.received.push(u32::from_be_bytes(n));
    }

    /// Up to `max_datagrams` numbered datagrams as one GSO-style batch.
    fn poll_transmit(
        &mut self,
        _now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.asked.push(max_datagrams);
        if self.next == self.total {
            return None;
        }
        buf.clear();
        let n = max_datagrams.min((self.total - self.next) as usize);
        for _ in 0..n {
            buf.extend_from_slice(&self.next.to_be_bytes());
            self.next += 1;
        }
        Some(Transmit {
            source: self.local,
            destination: self.peer,
            ecn: EcnCodepoint::from_bits(0b10),
            size: buf.len(),
            segment_size: (n > 1).then_some(4),
        })
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _now: Instant) {}
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn counter_pair(total: u32) -> (Engine<Counter, MemIo>, Engine<Counter, MemIo>) {
    counter_pair_batched(total, 1)
}

/// A sender whose I/O takes `segments` per send, and a receiver.
fn counter_pair_batched(
    total: u32,
    segments: usize,
) -> (Engine<Counter, MemIo>, Engine<Counter, MemIo>) {
    let (a, b) = (addr("198.18.0.1:4433"), addr("198.18.0.2:5000"));
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut io = MemIo::new(&wire, &[a]);
    io.max_segments = segments;
    let ea = Engine::new(Counter::new(a, b, total), io, EngineConfig::default());
    let eb = Engine::new(
        Counter::new(b, a, 0),
        MemIo::new(&wire, &[b]),
        EngineConfig::default(),
    );
    (ea, eb)
}

#[test]
fn a_full_queue_is_flushed_and_retried_without_losing_a_datagram() {
    let (mut a, mut b) = counter_pair(10);
    a.io_mut().capacity = 4;
    let now = Instant::now();
    a.step(now).unwrap();
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..10).collect::<Vec<_>>());
    // 10 datagrams through a 4-slot queue: two refusals, each fixed by a flush.
    assert_eq!(a.counters().tx_would_block, 2);
    assert_eq!(a.counters().tx_transmits, 10);
    assert_eq!(a.counters().tx_parked, 0);
}

#[test]
fn a_transmit_refused_twice_is_parked_and_sent_first_next_time() {
    let (mut a, mut b) = counter_pair(10);
    a.io_mut().refuse_next = 2;
    let now = Instant::now();
    a.step(now).unwrap();
    assert!(a.has_parked());
    assert_eq!(a.counters().tx_parked, 1);
    // The endpoint gave up datagram 0 and nothing more while it was parked.
    assert_eq!(a.node().next, 1);
    b.step(now).unwrap();
    assert!(b.node().received.is_empty());

    a.io_mut().refuse_next = 2;
    a.step(now).unwrap();
    assert!(a.has_parked(), "still refused: kept, not dropped");
    assert_eq!(a.node().next, 1);

    a.step(now).unwrap();
    assert!(!a.has_parked());
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..10).collect::<Vec<_>>());
    assert_eq!(a.counters().tx_would_block, 4);
}

#[test]
fn the_engine_asks_for_the_batch_the_io_takes_and_sends_it_as_one() {
    let (mut a, mut b) = counter_pair_batched(100, 16);
    assert_eq!(a.batch(), 16);
    let now = Instant::now();
    a.step(now).unwrap();
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..100).collect::<Vec<_>>());
    assert!(
        a.node().asked.iter().all(|m| *m == 16),
        "{:?}",
        a.node().asked
    );
    // 100 datagrams in batches of 16: 7 transmits.
    assert_eq!(a.counters().tx_transmits, 7);
    assert_eq!(a.counters().tx_datagrams, 100);
    // An I/O layer claiming more than the engine's cap is asked for the cap.
    let (big, _) = counter_pair_batched(1, 10_000);
    assert_eq!(big.batch(), MAX_BATCH);
    assert!(big.buf.capacity() >= MAX_BATCH * TX_BYTES_PER_DATAGRAM);
}

#[test]
fn a_batch_taken_in_part_sends_the_rest_once_and_nothing_twice() {
    let (mut a, mut b) = counter_pair_batched(40, 16);
    let now = Instant::now();
    // First batch (0..16): 5 segments go, then the retry after the flush is
    // refused outright, so the other 11 are parked.
    a.io_mut().partial_next = Some(5);
    a.io_mut().refuse_next = 1;
    a.step(now).unwrap();
    assert!(a.has_parked());
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..5).collect::<Vec<_>>());
    // The parked rest is taken in part again: 3 more, then 8 left.
    a.io_mut().partial_next = Some(3);
    a.io_mut().refuse_next = 1;
    a.step(now).unwrap();
    assert!(a.has_parked());
    assert_eq!(a.node().next, 16, "nothing new taken while parked");
    a.step(now).unwrap();
    assert!(!a.has_parked());
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..40).collect::<Vec<_>>());
    assert_eq!(a.counters().tx_datagrams, 40);
    assert_eq!(a.counters().tx_parked, 1);
}

#[test]
fn a_partial_send_retried_after_a_flush_completes_in_the_same_step() {
    let (mut a, mut b) = counter_pair_batched(16, 16);
    a.io_mut().partial_next = Some(9);
    let now = Instant::now();
    a.step(now).unwrap();
    assert!(!a.has_parked());
    b.step(now).unwrap();
    assert_eq!(b.node().received, (0..16).collect::<Vec<_>>());
    assert_eq!(a.counters().tx_would_block, 1);
    assert_eq!(a.counters().tx_datagrams, 16);
}

#[test]
fn a_rejected_transmit_is_counted_and_the_rest_still_goes() {
    let (a_addr, b_addr) = (addr("198.18.0.1:4433"), addr("198.18.0.2:5000"));
    let wire = Rc::new(RefCell::new(Wire::default()));
    // The I/O does not own the endpoint's source address: every send fails
    // for good, the loop counts and moves on instead of spinning or erroring.
    let mut a = Engine::new(
        Counter::new(a_addr, b_addr, 3),
        MemIo::new(&wire, &[addr("198.18.0.9:4433")]),
        EngineConfig::default(),
    );
    a.step(Instant::now()).unwrap();
    assert_eq!(a.counters().tx_dropped, 3);
    assert_eq!(a.node().next, 3);
    assert!(!a.has_parked());
}

#[test]
fn run_until_stops_when_asked_and_at_the_deadline() {
    let (mut a, mut b) = counter_pair(5);
    let mut ticks = 0;
    let end = a
        .run_for(Duration::from_secs(5), |node, _| {
            ticks += 1;
            if node.next == node.total {
                Tick::Stop
            } else {
                Tick::Continue
            }
        })
        .unwrap();
    assert_eq!(end, RunEnd::Stopped);
    assert_eq!(ticks, 2, "one step sends all five, the next tick stops");
    let t0 = Instant::now();
    let end = b
        .run_for(Duration::from_millis(30), |_, _| Tick::Continue)
        .unwrap();
    assert_eq!(end, RunEnd::Deadline);
    assert!(t0.elapsed() >= Duration::from_millis(30));
    assert_eq!(b.node().received, (0..5).collect::<Vec<_>>());
}

#[test]
fn pinning_restricts_the_thread_to_one_cpu() {
    let allowed = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let core = (0..nix::sched::CpuSet::count())
        .find(|c| allowed.is_set(*c).unwrap_or(false))
        .expect("the test runs on some CPU");
    std::thread::spawn(move || {
        pin_current_thread(core).unwrap();
        let now = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
        let set: Vec<usize> = (0..nix::sched::CpuSet::count())
            .filter(|c| now.is_set(*c).unwrap_or(false))
            .collect();
        assert_eq!(set, vec![core]);
    })
    .join()
    .unwrap();
    assert!(matches!(
        pin_current_thread(nix::sched::CpuSet::count()),
        Err(EngineError::Affinity { .. })
    ));
}

const SERVER: [&str; 2] = ["198.18.0.1:4433", "198.18.1.1:4433"];
const CLIENT: [&str; 2] = ["198.18.0.2:5000", "198.18.1.2:5000"];

struct TurnOutcome {
    presented: [Vec<u64>; Modality::COUNT],
    planned: [u64; Modality::COUNT],
    joined: usize,
    bytes_per_path: Vec<u64>,
    /// Unit bytes per path when the link went down.
    bytes_at_cut: Vec<u64>,
    /// Packets lost to the cut.
    lost: u64,
}

/// A 2 s turn between a server and a client engine over two in-memory
/// paths, on a virtual clock advancing 1 ms per step. `cut` takes the
/// client's address of one path down at that many ms into the turn.
fn turn_over_memory(cut: Option<(usize, u64)>) -> TurnOutcome {
    let epoch = Instant::now();
    let identity = camp_proto::tls::self_signed(&["camp.test"]).unwrap();
    let client_crypto = camp_proto::tls::client_crypto(&identity.chain, false).unwrap();
    let server_crypto = camp_proto::tls::server_crypto(identity).unwrap();
    let server_addrs: Vec<SocketAddr> = SERVER.iter().map(|s| addr(s)).collect();
    let client_addrs: Vec<SocketAddr> = CLIENT.iter().map(|s| addr(s)).collect();
    let server = Server::new(
        ServerConfig {
            camp: CampConfig::default(),
            local_addrs: server_addrs.clone(),
            crypto: server_crypto,
            scheduler: SchedulerKind::Camp.factory(),
            rng_seed: [1; 32],
            lb: None,
        },
        epoch,
    );
    let client = Client::new(
        ClientConfig {
            camp: CampConfig::default(),
            paths: (0..2)
                .map(|i| PathSpec {
                    local: client_addrs[i],
                    remote: server_addrs[i],
                })
                .collect(),
            crypto: client_crypto,
            server_name: "camp.test".into(),
            receiver: ReceiverConfig::default(),
            rng_seed: [2; 32],
            shared_clock: true,
        },
        epoch,
        epoch,
    )
    .unwrap();
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut s = Engine::new(
        server,
        MemIo::new(&wire, &server_addrs),
        EngineConfig::default(),
    );
    let mut c = Engine::new(
        client,
        MemIo::new(&wire, &client_addrs),
        EngineConfig::default(),
    );

    let mut now = epoch;
    let tick = Duration::from_millis(1);
    let mut session: Option<SessionId> = None;
    let mut joined = 0;
    let mut presented: [Vec<u64>; Modality::COUNT] = Default::default();
    let mut step = |s: &mut Engine<Server, MemIo>,
                    c: &mut Engine<Client, MemIo>,
                    now: Instant,
                    session: &mut Option<SessionId>,
                    joined: &mut usize| {
        s.step(now).unwrap();
        c.step(now).unwrap();
        while let Some(ev) = s.node_mut().poll_event() {
            if let ServerEvent::SessionOpened(id) = ev {
                *session = Some(id);
            }
        }
        while let Some(ev) = c.node_mut().poll_event() {
            if let ClientEvent::PathJoined { .. } = ev {
                *joined += 1;
            }
        }
        let now_us = c.node().clock().micros(now);
        while let Some(p) = c.node_mut().receiver_mut().poll_playout(now_us) {
            if !p.skipped {
                presented[p.meta.modality.index()].push(p.meta.seq);
            }
        }
    };

    while (session.is_none() || joined < 2) && now < epoch + Duration::from_secs(3) {
        now += tick;
        step(&mut s, &mut c, now, &mut session, &mut joined);
    }
    let session = session.expect("session within 3 s");
    assert_eq!(joined, 2, "both paths joined within 3 s");

    let clock = s.node().clock();
    let start_us = clock.micros(now) + 20_000;
    let turn = TurnConfig {
        duration_ms: 2_000,
        ..TurnConfig::default()
    };
    let plan = plan_turn(&turn, start_us, 7);
    let mut planned = [0u64; Modality::COUNT];
    for u in &plan {
        planned[u.modality.index()] += 1;
    }
    let payload = vec![0x5A; 128 * 1024];
    let mut next = 0;
    let mut bytes_at_cut = Vec::new();
    let cut_at = cut.map(|(path, ms)| (path, clock.instant(start_us + ms * 1000)));
    let end =
        clock.instant(plan.last().expect("a turn has units").release_us) + Duration::from_secs(5);
    while now < end {
        now += tick;
        if let Some((path, at)) = cut_at
            && now >= at
            && bytes_at_cut.is_empty()
        {
            wire.borrow_mut().down.insert(client_addrs[path].ip());
            bytes_at_cut = bytes_per_path(s.node(), session);
        }
        let now_us = clock.micros(now);
        while let Some(u) = plan.get(next).filter(|u| u.release_us <= now_us) {
            s.node_mut()
                .send_unit(
                    now,
                    session,
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
                )
                .expect("the session accepts the unit");
            next += 1;
        }
        step(&mut s, &mut c, now, &mut Some(session), &mut joined);
        if next == plan.len()
            && s.node().pending_units(session) == 0
            && c.node().receiver().is_idle()
        {
            break;
        }
    }
    let now_us = c.node().clock().micros(now);
    c.node_mut().receiver_mut().finish(now_us);
    while let Some(p) = c.node_mut().receiver_mut().poll_playout(now_us) {
        if !p.skipped {
            presented[p.meta.modality.index()].push(p.meta.seq);
        }
    }
    let lost = wire.borrow().lost;
    TurnOutcome {
        presented,
        planned,
        joined,
        bytes_per_path: bytes_per_path(s.node(), session),
        bytes_at_cut,
        lost,
    }
}

/// Unit bytes the server wrote per path slot.
fn bytes_per_path(server: &Server, session: SessionId) -> Vec<u64> {
    let mut out = vec![0; 2];
    for p in server.paths(session) {
        if let Some(b) = out.get_mut(p.slot) {
            *b = p.bytes_sent;
        }
    }
    out
}

fn assert_text_and_audio_exactly_once_in_order(o: &TurnOutcome) {
    for m in [Modality::Text, Modality::Audio] {
        let want: Vec<u64> = (0..o.planned[m.index()]).collect();
        assert!(!want.is_empty(), "{m}: the turn has units");
        assert_eq!(o.presented[m.index()], want, "{m}: exactly once, in order");
    }
}

#[test]
fn a_turn_between_two_engines_over_two_paths_arrives_exactly_once_in_order() {
    let o = turn_over_memory(None);
    assert_eq!(o.joined, 2);
    assert_text_and_audio_exactly_once_in_order(&o);
    assert!(
        o.bytes_per_path.iter().all(|b| *b > 0),
        "both paths carried units: {:?}",
        o.bytes_per_path
    );
}

#[test]
fn a_path_going_down_mid_turn_loses_no_text_or_audio() {
    let o = turn_over_memory(Some((0, 800)));
    assert_text_and_audio_exactly_once_in_order(&o);
    assert!(o.lost > 0, "the cut path was in use");
    assert!(
        o.bytes_per_path[1] > o.bytes_at_cut[1],
        "units kept flowing on path 1 after the cut: {:?} at the cut, {:?} at the end",
        o.bytes_at_cut,
        o.bytes_per_path
    );
}
