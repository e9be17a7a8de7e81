//! `camp-bench goodput`: end-to-end goodput per sender core of campd's data
//! plane (the CAMP [`Server`] driven by [`camp_engine::Engine`] over AF_XDP)
//! against quinn's own async stack (tokio, kernel UDP through quinn-udp),
//! sending the same bytes over the same veth pair, alternately, in one run.
//!
//! Both stacks send `--bytes` of payload as reliable units of `--unit` bytes,
//! one QUIC unidirectional stream per unit (what CAMP does), with the same
//! TLS 1.3 configuration (camp's self-signed Ed25519 helpers), Cubic, and the
//! same transport windows. The sender lives in namespace A, the receiver in
//! namespace B; each side runs on one thread:
//!
//! * camp: sender = `Engine<Server, AnyIo::Xdp>`; receiver =
//!   `Engine<Client, UdpIo>` (kernel UDP with quinn-udp), playout on arrival.
//! * quinn: sender = a quinn server endpoint on a tokio `current_thread`
//!   runtime opening one stream per unit; receiver = a quinn client endpoint
//!   on another `current_thread` runtime reading every stream to its end.
//!
//! The clock starts when the sender sees the session (camp: `SessionOpened`;
//! quinn: the accepted connection) and stops when the receiver holds every
//! byte. Sender CPU is the sender thread's CPU time over that interval
//! (`CLOCK_THREAD_CPUTIME_ID`); for quinn that thread runs the whole runtime,
//! the endpoint driver included. Goodput per core = payload bytes / sender
//! CPU seconds.
//!
//! Every run is bounded by `--timeout` and `--bytes` (at most
//! [`MAX_BYTES`]). Addresses: 198.18.20.0/24.

use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, RunEnd, Tick};
use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{SendError, Server, ServerConfig, ServerEvent};
use camp_proto::store::{MAX_UNIT_PAYLOAD, SubmitError, UnitSubmit};
use camp_recv::{CaptureId, Modality, PlayoutPolicy, ReceiverConfig, Reliability, UnitFlags};
use camp_xdp::xsk::BindMode;
use camp_xdp::{AnyIo, AttachMode, PacketIo, UdpIo, XdpConfig, XdpError, XdpIo};
use clap::Args;
use serde::Serialize;

use crate::lab::{Cpu, Netns, cpu_since, sh, thread_cpu, user_share};

const SENDER_IF: &str = "cga0";
const RECEIVER_IF: &str = "cgb0";
const SENDER_IP: &str = "198.18.20.1";
const RECEIVER_IP: &str = "198.18.20.2";
/// CAMP sender port (served by the XDP classifier while a camp run lasts).
const CAMP_PORT: u16 = 4433;
/// quinn sender port (kept apart from the CAMP port so a late XDP detach can
/// never steal quinn's datagrams).
const QUINN_PORT: u16 = 4434;
const CAMP_RECEIVER_PORT: u16 = 5000;
const QUINN_RECEIVER_PORT: u16 = 5001;
const SERVER_NAME: &str = "camp.bench";
/// Upper bound on `--bytes`.
pub const MAX_BYTES: u64 = 10_000_000_000;
/// Socket buffers of every kernel UDP socket in the bench (what camp's
/// `UdpIo` asks for; bounded by net.core.rmem_max / wmem_max).
const UDP_BUFFER: usize = 4 << 20;

/// Arguments of `camp-bench goodput`.
#[derive(Debug, Clone, Args)]
pub struct GoodputArgs {
    /// Payload bytes each stack sends per run.
    #[arg(long, default_value_t = 200_000_000)]
    pub bytes: u64,
    /// Payload bytes per unit (one QUIC unidirectional stream each).
    #[arg(long, default_value_t = 65_536)]
    pub unit: usize,
    /// Runs per stack (alternating camp, quinn); medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Seconds after which a run is abandoned as a failure.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Pin both stacks' sender threads to this CPU.
    #[arg(long)]
    pub sender_core: Option<usize>,
    /// Pin both stacks' receiver threads to this CPU.
    #[arg(long)]
    pub receiver_core: Option<usize>,
    /// Busy-poll the camp engines (by default they block in poll(2) like
    /// quinn's runtime blocks in epoll).
    #[arg(long)]
    pub busy_poll: bool,
    /// Turn quinn's UDP segmentation offload (GSO) off, for a
    /// datagram-for-datagram comparison (stock quinn uses GSO when the kernel
    /// offers it; the default keeps it on).
    #[arg(long)]
    pub quinn_no_gso: bool,
    /// Receive on the receiver's veth end in a threaded NAPI poller (GRO on,
    /// `threaded` = 1), so the receiver's kernel stack runs in its own
    /// kernel thread instead of in the sender's softirq context (veth
    /// delivers in the transmitting thread's context by default, which bills
    /// the receiver's IP/UDP work to the sender). Applies to both stacks.
    #[arg(long)]
    pub rx_napi_thread: bool,
    /// Print each run's engine, I/O and quinn connection counters to stderr.
    #[arg(long)]
    pub counters: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also run campd's engine with a kernel-UDP sender (`UdpIo`, GSO
    /// batches through quinn-udp) as a third stack, `camp-udp`.
    #[arg(long)]
    pub camp_udp: bool,
}

/// The stack under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// campd's engine, AF_XDP sender.
    Camp,
    /// campd's engine, kernel UDP sender (`UdpIo`).
    #[serde(rename = "camp-udp")]
    CampUdp,
    /// quinn on tokio, kernel UDP sender.
    Quinn,
}

impl Stack {
    fn name(self) -> &'static str {
        match self {
            Self::Camp => "camp",
            Self::CampUdp => "camp-udp",
            Self::Quinn => "quinn",
        }
    }
}

/// One transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Which stack.
    pub stack: Stack,
    /// How the sender's I/O ended up set up.
    pub setup: String,
    /// Payload bytes the receiver got.
    pub bytes: u64,
    /// From session start to the last byte at the receiver.
    pub wall: Duration,
    /// Sender thread CPU over the transfer.
    pub sender_cpu: Cpu,
    /// Receiver thread CPU over the transfer.
    pub receiver_cpu: Cpu,
    /// Datagrams the sender emitted.
    pub tx_datagrams: u64,
    /// Send operations those datagrams took (GSO batches count once).
    pub tx_sends: u64,
    /// Datagrams the receiver read.
    pub rx_datagrams: u64,
    /// Receive operations those datagrams took (GRO batches count once).
    pub rx_reads: u64,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(f64::MIN_POSITIVE)
}

impl Run {
    /// Payload bits per second of wall time.
    pub fn goodput_bps(&self) -> f64 {
        self.bytes as f64 * 8.0 / secs(self.wall)
    }

    /// Payload bits per second of sender CPU time.
    pub fn per_core_bps(&self) -> f64 {
        self.bytes as f64 * 8.0 / secs(self.sender_cpu.0)
    }

    /// Sender CPU nanoseconds per payload byte.
    pub fn sender_ns_per_byte(&self) -> f64 {
        self.sender_cpu.0.as_nanos() as f64 / self.bytes.max(1) as f64
    }

    /// Receiver CPU nanoseconds per payload byte.
    pub fn receiver_ns_per_byte(&self) -> f64 {
        self.receiver_cpu.0.as_nanos() as f64 / self.bytes.max(1) as f64
    }
}

/// Medians of one stack's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Which stack.
    pub stack: Stack,
    /// Sender I/O setup (of the median run).
    pub setup: String,
    /// Runs measured.
    pub runs: usize,
    /// Payload bytes per run.
    pub bytes: u64,
    /// Wall seconds.
    pub wall_s: f64,
    /// Goodput, Gbit/s of wall time.
    pub goodput_gbps: f64,
    /// Sender CPU seconds.
    pub sender_cpu_s: f64,
    /// Share of sender CPU in user space.
    pub sender_user_share: f64,
    /// Goodput per sender core, Gbit/s of sender CPU time.
    pub per_core_gbps: f64,
    /// Sender CPU ns per payload byte.
    pub sender_ns_per_byte: f64,
    /// Receiver CPU ns per payload byte.
    pub receiver_ns_per_byte: f64,
    /// Datagrams per send operation at the sender (>1 means GSO).
    pub tx_datagrams_per_send: f64,
    /// Datagrams per read at the receiver (>1 means GRO).
    pub rx_datagrams_per_read: f64,
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians over `runs` (all of one stack, at least one).
pub fn summarize(runs: &[Run]) -> Summary {
    let f = |g: &dyn Fn(&Run) -> f64| median_of(runs.iter().map(g).collect());
    let per_core = f(&|r| r.per_core_bps());
    // The run whose per-core figure is the median names the setup.
    let mid = runs
        .iter()
        .min_by(|a, b| {
            (a.per_core_bps() - per_core)
                .abs()
                .total_cmp(&(b.per_core_bps() - per_core).abs())
        })
        .unwrap_or(&runs[0]);
    Summary {
        stack: runs[0].stack,
        setup: mid.setup.clone(),
        runs: runs.len(),
        bytes: mid.bytes,
        wall_s: f(&|r| r.wall.as_secs_f64()),
        goodput_gbps: f(&|r| r.goodput_bps()) / 1e9,
        sender_cpu_s: f(&|r| r.sender_cpu.0.as_secs_f64()),
        sender_user_share: f(&|r| user_share(r.sender_cpu)),
        per_core_gbps: per_core / 1e9,
        sender_ns_per_byte: f(&|r| r.sender_ns_per_byte()),
        receiver_ns_per_byte: f(&|r| r.receiver_ns_per_byte()),
        tx_datagrams_per_send: f(&|r| r.tx_datagrams as f64 / r.tx_sends.max(1) as f64),
        rx_datagrams_per_read: f(&|r| r.rx_datagrams as f64 / r.rx_reads.max(1) as f64),
    }
}

/// The comparison: both summaries and the per-core ratio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Payload bytes per unit.
    pub unit: usize,
    /// Whether quinn could use GSO (`--quinn-no-gso` not given).
    pub quinn_gso: bool,
    /// Whether the receiver's veth end polled in a NAPI thread.
    pub rx_napi_thread: bool,
    /// camp medians.
    pub camp: Summary,
    /// quinn medians.
    pub quinn: Summary,
    /// camp goodput per core / quinn goodput per core.
    pub per_core_ratio: f64,
    /// camp goodput / quinn goodput (wall time).
    pub goodput_ratio: f64,
    /// camp over kernel UDP medians (`--camp-udp`).
    pub camp_udp: Option<Summary>,
    /// camp-udp goodput per core / quinn goodput per core.
    pub camp_udp_per_core_ratio: Option<f64>,
}

impl Report {
    fn new(args: &GoodputArgs, camp: Summary, quinn: Summary, camp_udp: Option<Summary>) -> Self {
        Self {
            camp_udp_per_core_ratio: camp_udp
                .as_ref()
                .map(|c| c.per_core_gbps / quinn.per_core_gbps.max(f64::MIN_POSITIVE)),
            camp_udp,
            unit: args.unit,
            quinn_gso: !args.quinn_no_gso,
            rx_napi_thread: args.rx_napi_thread,
            per_core_ratio: camp.per_core_gbps / quinn.per_core_gbps.max(f64::MIN_POSITIVE),
            goodput_ratio: camp.goodput_gbps / quinn.goodput_gbps.max(f64::MIN_POSITIVE),
            camp,
            quinn,
        }
    }
}

// ---------------------------------------------------------------------------
// Testbed.

/// Sender namespace `a` and receiver namespace `b` joined by one veth pair;
/// dropping it deletes both namespaces and the pair.
struct Bed {
    a: Netns,
    b: Netns,
    /// Receiver's MAC (the AF_XDP sender's next hop).
    b_mac: [u8; 6],
}

fn setup(rx_napi_thread: bool) -> Result<Bed, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("camp-bench goodput needs root (network namespaces, XDP, AF_XDP)".into());
    }
    let a = Netns::new("ga")?;
    let b = Netns::new("gb")?;
    sh(&[
        "ip",
        "link",
        "add",
        SENDER_IF,
        "netns",
        &a.name,
        "type",
        "veth",
        "peer",
        "name",
        RECEIVER_IF,
        "netns",
        &b.name,
    ])?;
    for (ns, ifname, ip) in [(&a, SENDER_IF, SENDER_IP), (&b, RECEIVER_IF, RECEIVER_IP)] {
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", ifname])?;
        // Kernel senders must emit complete UDP checksums: the AF_XDP side
        // verifies them and veth would otherwise leave them partial.
        ns.exec(&["ethtool", "-K", ifname, "tx", "off"])?;
        ns.exec(&["ip", "link", "set", ifname, "up"])?;
    }
    if rx_napi_thread {
        b.exec(&["ethtool", "-K", RECEIVER_IF, "gro", "on"])?;
        b.exec(&[
            "sh",
            "-c",
            &format!("echo 1 > /sys/class/net/{RECEIVER_IF}/threaded"),
        ])?;
    }
    let (a_mac, b_mac) = (a.mac(SENDER_IF)?, b.mac(RECEIVER_IF)?);
    // Static neighbours: no ARP inside a measurement.
    let hex = |m: [u8; 6]| {
        m.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    for (ns, ip, mac, dev) in [
        (&a, RECEIVER_IP, hex(b_mac), SENDER_IF),
        (&b, SENDER_IP, hex(a_mac), RECEIVER_IF),
    ] {
        ns.exec(&[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            &mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])?;
    }
    Ok(Bed { a, b, b_mac })
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("constant address"), port)
}

/// State the two sides of one run share.
#[derive(Debug, Default)]
struct Progress {
    /// When the sender saw the session.
    start: Mutex<Option<Instant>>,
    /// When the receiver held every byte.
    done: Mutex<Option<Instant>>,
    /// Set by the receiver when done, or by either side on failure.
    stop: AtomicBool,
}

impl Progress {
    fn mark(slot: &Mutex<Option<Instant>>, t: Instant) {
        if let Ok(mut g) = slot.lock() {
            g.get_or_insert(t);
        }
    }

    fn read(slot: &Mutex<Option<Instant>>) -> Option<Instant> {
        slot.lock().ok().and_then(|g| *g)
    }

    fn wall(&self) -> Result<Duration, String> {
        let start = Self::read(&self.start).ok_or("the sender never saw a session")?;
        let done = Self::read(&self.done).ok_or("the receiver did not get every byte")?;
        Ok(done.saturating_duration_since(start))
    }
}

/// Sets `stop` if the guarded side returns early (error or panic), so the
/// other side does not wait for its timeout.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

fn join<T>(
    h: std::thread::ScopedJoinHandle<'_, Result<T, String>>,
    what: &str,
) -> Result<T, String> {
    h.join().map_err(|_| format!("{what} panicked"))?
}

// ---------------------------------------------------------------------------
// camp: Engine<Server, AF_XDP> -> Engine<Client, kernel UDP>.

/// What one camp side measured.
struct CampSide {
    setup: String,
    cpu: Cpu,
    datagrams: u64,
    ops: u64,
}

/// Opens AF_XDP on the sender's veth (native XDP, generic if the driver
/// refuses), retrying while the previous run's queue is still being
/// released (EBUSY right after a close).
fn open_xdp(b_mac: [u8; 6]) -> Result<XdpIo, String> {
    let cfg = XdpConfig {
        interfaces: vec![SENDER_IF.into()],
        ports: vec![CAMP_PORT],
        attach: AttachMode::Auto,
        ..XdpConfig::default()
    };
    let mut tries = 0;
    let mut io = loop {
        match XdpIo::open(&cfg) {
            Ok(io) => break io,
            Err(XdpError::Socket { source, .. })
                if tries < 20
                    && source.os_error().and_then(std::io::Error::raw_os_error)
                        == Some(nix::errno::Errno::EBUSY as i32) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("AF_XDP on {SENDER_IF}: {e}")),
        }
    };
    let local = addr(SENDER_IP, CAMP_PORT);
    io.set_neighbour(local.ip(), addr(RECEIVER_IP, 0).ip(), b_mac)
        .map_err(|e| e.to_string())?;
    Ok(io)
}

fn describe_xdp(io: &XdpIo) -> String {
    let report = io.report();
    let attach = report
        .first()
        .map_or_else(|| "?".to_owned(), |n| n.attach.to_string());
    let zc = report
        .iter()
        .flat_map(|n| &n.queues)
        .all(|q| *q == BindMode::ZeroCopy);
    format!("af_xdp {attach} {}", if zc { "zero-copy" } else { "copy" })
}

fn run_camp(bed: &Bed, args: &GoodputArgs, stack: Stack) -> Result<Run, String> {
    let identity = camp_proto::tls::self_signed(&[SERVER_NAME]).map_err(|e| e.to_string())?;
    let client_crypto =
        camp_proto::tls::client_crypto(&identity.chain, false).map_err(|e| e.to_string())?;
    let server_crypto = camp_proto::tls::server_crypto(identity).map_err(|e| e.to_string())?;
    let epoch = Instant::now();
    let timeout = Duration::from_secs_f64(args.timeout);
    let progress = &Progress::default();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let engine_config = |core| EngineConfig {
        busy_poll: args.busy_poll,
        core,
        ..EngineConfig::default()
    };

    std::thread::scope(|s| {
        let sender = s.spawn(|| -> Result<CampSide, String> {
            let _stop = StopOnDrop(&progress.stop);
            bed.a.enter()?;
            let (io, setup) = if stack == Stack::CampUdp {
                let io = UdpIo::open(&[addr(SENDER_IP, CAMP_PORT)]).map_err(|e| e.to_string())?;
                let gso = io.max_segments();
                (AnyIo::Udp(io), format!("kernel udp, gso {gso}"))
            } else {
                let io = open_xdp(bed.b_mac)?;
                let setup = describe_xdp(&io);
                (AnyIo::Xdp(io), setup)
            };
            let node = Server::new(
                ServerConfig {
                    camp: CampConfig::default(),
                    local_addrs: vec![addr(SENDER_IP, CAMP_PORT)],
                    crypto: server_crypto,
                    scheduler: SchedulerKind::Camp.factory(),
                    rng_seed: [1; 32],
                    lb: None,
                },
                epoch,
            );
            let mut engine = Engine::new(node, io, engine_config(args.sender_core));
            let _ = ready_tx.send(());
            let clock = engine.node().clock();
            let payload = vec![0x5a_u8; args.unit];
            let mut session = None;
            let mut cpu0 = None;
            let mut submitted = 0u64;
            let mut units = 0u32;
            let mut refused = None;
            let end = engine
                .run_until(epoch + timeout, |node, now| {
                    while let Some(ev) = node.poll_event() {
                        if let ServerEvent::SessionOpened(id) = ev
                            && session.is_none()
                        {
                            session = Some(id);
                            cpu0 = Some(thread_cpu());
                            Progress::mark(&progress.start, now);
                        }
                    }
                    if progress.stop.load(Ordering::Acquire) {
                        return Tick::Stop;
                    }
                    let Some(id) = session else {
                        return Tick::Continue;
                    };
                    // Keep the session's store topped up; a full store is
                    // backpressure until CAMP ACKs free room.
                    while submitted < args.bytes {
                        let len = (args.bytes - submitted).min(args.unit as u64) as usize;
                        let unit = UnitSubmit {
                            modality: Modality::Text,
                            reliability: Reliability::Reliable,
                            flags: UnitFlags::default(),
                            sync_index: units,
                            gen_time_us: clock.micros(now),
                            deadline_us: 0,
                            capture_id: CaptureId(0),
                            payload: &payload[..len],
                        };
                        match node.send_unit(now, id, &unit) {
                            Ok(_) => {
                                submitted += len as u64;
                                units = units.wrapping_add(1);
                            }
                            Err(SendError::Submit(SubmitError::QueueFull { .. })) => break,
                            Err(e) => {
                                refused = Some(e);
                                return Tick::Stop;
                            }
                        }
                    }
                    Tick::Continue
                })
                .map_err(|e| e.to_string())?;
            let cpu = cpu0.map(cpu_since).unwrap_or_default();
            if let Some(e) = refused {
                return Err(format!("send_unit: {e}"));
            }
            if end == RunEnd::Deadline {
                return Err(format!(
                    "camp sender: no completion within {timeout:?} ({submitted} bytes submitted)"
                ));
            }
            let io = engine.io().counters();
            if args.counters {
                eprintln!(
                    "camp sender: {:?} {io:?} {:?} {:?}",
                    engine.counters(),
                    engine.node().counters(),
                    session.and_then(|id| engine.node().store_counters(id))
                );
            }
            Ok(CampSide {
                setup,
                cpu,
                datagrams: io.tx_packets,
                ops: engine.counters().tx_transmits,
            })
        });

        let receiver = s.spawn(move || -> Result<CampSide, String> {
            let _stop = StopOnDrop(&progress.stop);
            bed.b.enter()?;
            ready_rx
                .recv_timeout(timeout)
                .map_err(|_| "the camp sender never became ready")?;
            let local = addr(RECEIVER_IP, CAMP_RECEIVER_PORT);
            let io = UdpIo::open(&[local]).map_err(|e| e.to_string())?;
            let mut expected = [false; Modality::COUNT];
            expected[Modality::Text.index()] = true;
            let node = Client::new(
                ClientConfig {
                    camp: CampConfig::default(),
                    paths: vec![PathSpec {
                        local,
                        remote: addr(SENDER_IP, CAMP_PORT),
                    }],
                    crypto: client_crypto,
                    server_name: SERVER_NAME.into(),
                    receiver: ReceiverConfig {
                        playout: PlayoutPolicy::OnArrival,
                        expected_modalities: expected,
                        ..ReceiverConfig::default()
                    },
                    rng_seed: [2; 32],
                    shared_clock: true,
                },
                epoch,
                epoch,
            )
            .map_err(|e| e.to_string())?;
            let mut engine = Engine::new(node, io, engine_config(args.receiver_core));
            let mut got = 0u64;
            let mut cpu0 = None;
            let end = engine
                .run_until(epoch + timeout, |node, now| {
                    while let Some(ev) = node.poll_event() {
                        if ev == ClientEvent::SessionEstablished {
                            cpu0.get_or_insert_with(thread_cpu);
                        }
                    }
                    let now_us = node.clock().micros(now);
                    while let Some(p) = node.receiver_mut().poll_playout(now_us) {
                        got += p.payload.len() as u64;
                    }
                    if got >= args.bytes {
                        Progress::mark(&progress.done, Instant::now());
                        return Tick::Stop;
                    }
                    if progress.stop.load(Ordering::Acquire) {
                        return Tick::Stop;
                    }
                    Tick::Continue
                })
                .map_err(|e| e.to_string())?;
            let cpu = cpu0.map(cpu_since).unwrap_or_default();
            if end != RunEnd::Stopped || got < args.bytes {
                return Err(format!("camp receiver got {got} of {} bytes", args.bytes));
            }
            let io = engine.io().counters();
            if args.counters {
                eprintln!(
                    "camp receiver: {:?} {io:?} {:?}",
                    engine.counters(),
                    engine.node().counters()
                );
            }
            Ok(CampSide {
                setup: "kernel udp".into(),
                cpu,
                datagrams: io.rx_packets,
                // UdpIo reads one datagram per message (GRO segments counted
                // as datagrams); the engine sees every datagram separately.
                ops: io.rx_packets,
            })
        });

        let rx = join(receiver, "camp receiver");
        let tx = join(sender, "camp sender");
        let (tx, rx) = (tx?, rx?);
        Ok(Run {
            stack,
            setup: tx.setup,
            bytes: args.bytes,
            wall: progress.wall()?,
            sender_cpu: tx.cpu,
            receiver_cpu: rx.cpu,
            tx_datagrams: tx.datagrams,
            tx_sends: tx.ops,
            rx_datagrams: rx.datagrams,
            rx_reads: rx.ops,
        })
    })
}

// ---------------------------------------------------------------------------
// quinn: its own endpoint on tokio over kernel UDP, both sides.

/// quinn transport settings equal to what `CampConfig::default().transport()`
/// gives camp's connections (windows, stream limits, timers), with quinn's
/// stock Cubic where camp wraps the same Cubic in a measuring controller.
fn quinn_transport(gso: bool) -> Arc<quinn::TransportConfig> {
    let camp = CampConfig::default();
    let mut t = quinn::TransportConfig::default();
    t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()));
    t.max_idle_timeout(quinn::IdleTimeout::try_from(camp.idle_timeout).ok());
    t.keep_alive_interval(Some(camp.keep_alive));
    t.initial_rtt(camp.initial_rtt);
    t.send_window(camp.send_window);
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(camp.max_unit_streams));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1));
    t.stream_receive_window(quinn::VarInt::from_u32(4 << 20));
    t.receive_window(quinn::VarInt::from_u32(64 << 20));
    t.enable_segmentation_offload(gso);
    Arc::new(t)
}

/// A kernel UDP socket with camp's `UdpIo` buffer sizes.
fn udp_socket(local: SocketAddr) -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    let state = quinn_udp::UdpSocketState::new((&sock).into()).map_err(|e| e.to_string())?;
    let _ = state.set_recv_buffer_size((&sock).into(), UDP_BUFFER);
    let _ = state.set_send_buffer_size((&sock).into(), UDP_BUFFER);
    Ok(sock)
}

fn runtime(core: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    if let Some(core) = core {
        camp_engine::pin_current_thread(core).map_err(|e| e.to_string())?;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))
}

/// What one quinn side measured.
struct QuinnSide {
    cpu: Cpu,
    stats: quinn::ConnectionStats,
    gso_segments: usize,
}

fn run_quinn(bed: &Bed, args: &GoodputArgs) -> Result<Run, String> {
    let identity = camp_proto::tls::self_signed(&[SERVER_NAME]).map_err(|e| e.to_string())?;
    let client_crypto =
        camp_proto::tls::client_crypto(&identity.chain, false).map_err(|e| e.to_string())?;
    let server_crypto = camp_proto::tls::server_crypto(identity).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs_f64(args.timeout);
    let progress = &Progress::default();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();

    std::thread::scope(|s| {
        let sender = s.spawn(|| -> Result<QuinnSide, String> {
            let _stop = StopOnDrop(&progress.stop);
            bed.a.enter()?;
            let rt = runtime(args.sender_core)?;
            let sock = udp_socket(addr(SENDER_IP, QUINN_PORT))?;
            let gso_segments = quinn_udp::UdpSocketState::new((&sock).into())
                .map_err(|e| e.to_string())?
                .max_gso_segments();
            let mut server = quinn::ServerConfig::with_crypto(server_crypto);
            server.transport_config(quinn_transport(!args.quinn_no_gso));
            let work = async {
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    Some(server),
                    sock,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(|e| format!("quinn endpoint: {e}"))?;
                let _ = ready_tx.send(());
                let incoming = endpoint.accept().await.ok_or("quinn endpoint closed")?;
                let conn = incoming.await.map_err(|e| format!("quinn accept: {e}"))?;
                let cpu0 = thread_cpu();
                Progress::mark(&progress.start, Instant::now());
                let payload = vec![0x5a_u8; args.unit];
                let mut sent = 0u64;
                while sent < args.bytes {
                    let len = (args.bytes - sent).min(args.unit as u64) as usize;
                    let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
                    stream
                        .write_all(&payload[..len])
                        .await
                        .map_err(|e| e.to_string())?;
                    stream.finish().map_err(|e| e.to_string())?;
                    sent += len as u64;
                }
                // The receiver closes the connection once it has every byte.
                let _ = conn.closed().await;
                let cpu = cpu_since(cpu0);
                Ok::<_, String>(QuinnSide {
                    cpu,
                    stats: conn.stats(),
                    gso_segments,
                })
            };
            rt.block_on(async {
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| format!("quinn sender: no completion within {timeout:?}"))?
            })
        });

        let receiver = s.spawn(move || -> Result<QuinnSide, String> {
            let _stop = StopOnDrop(&progress.stop);
            bed.b.enter()?;
            let rt = runtime(args.receiver_core)?;
            let sock = udp_socket(addr(RECEIVER_IP, QUINN_RECEIVER_PORT))?;
            ready_rx
                .recv_timeout(timeout)
                .map_err(|_| "the quinn sender never became ready")?;
            let mut client = quinn::ClientConfig::new(client_crypto);
            client.transport_config(quinn_transport(!args.quinn_no_gso));
            let work = async {
                let endpoint = quinn::Endpoint::new(
                    quinn::EndpointConfig::default(),
                    None,
                    sock,
                    Arc::new(quinn::TokioRuntime),
                )
                .map_err(|e| format!("quinn endpoint: {e}"))?;
                let conn = endpoint
                    .connect_with(client, addr(SENDER_IP, QUINN_PORT), SERVER_NAME)
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| format!("quinn connect: {e}"))?;
                let cpu0 = thread_cpu();
                let mut got = 0u64;
                while got < args.bytes {
                    let mut stream = conn.accept_uni().await.map_err(|e| e.to_string())?;
                    while let Some(chunk) = stream
                        .read_chunk(usize::MAX, true)
                        .await
                        .map_err(|e| e.to_string())?
                    {
                        got += chunk.bytes.len() as u64;
                    }
                }
                Progress::mark(&progress.done, Instant::now());
                let cpu = cpu_since(cpu0);
                let stats = conn.stats();
                conn.close(0u32.into(), b"done");
                // Let the CONNECTION_CLOSE leave (bounded).
                let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
                Ok::<_, String>(QuinnSide {
                    cpu,
                    stats,
                    gso_segments: 1,
                })
            };
            rt.block_on(async {
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| format!("quinn receiver: no completion within {timeout:?}"))?
            })
        });

        let rx = join(receiver, "quinn receiver");
        let tx = join(sender, "quinn sender");
        let (tx, rx) = (tx?, rx?);
        if args.counters {
            eprintln!(
                "quinn sender: {:?}\nquinn receiver: {:?}",
                tx.stats, rx.stats
            );
        }
        let udp = tx.stats.udp_tx;
        Ok(Run {
            stack: Stack::Quinn,
            setup: if args.quinn_no_gso {
                "kernel udp, gso off".to_owned()
            } else {
                format!("kernel udp, gso max {}", tx.gso_segments)
            },
            bytes: args.bytes,
            wall: progress.wall()?,
            sender_cpu: tx.cpu,
            receiver_cpu: rx.cpu,
            tx_datagrams: udp.datagrams,
            tx_sends: udp.ios,
            rx_datagrams: rx.stats.udp_rx.datagrams,
            rx_reads: rx.stats.udp_rx.ios,
        })
    })
}

// ---------------------------------------------------------------------------
// Driver and output.

fn check(args: &GoodputArgs) -> Result<(), String> {
    if args.runs == 0 || args.bytes == 0 || args.bytes > MAX_BYTES {
        return Err(format!("need runs >= 1 and 1 <= bytes <= {MAX_BYTES}"));
    }
    if args.unit == 0 || args.unit > MAX_UNIT_PAYLOAD {
        return Err(format!("need 1 <= unit <= {MAX_UNIT_PAYLOAD}"));
    }
    if !(args.timeout > 0.0 && args.timeout <= 600.0) {
        return Err("need 0 < timeout <= 600 s".into());
    }
    Ok(())
}

/// Runs camp and quinn alternately `args.runs` times each on one testbed;
/// every run, as measured.
pub fn measure(args: &GoodputArgs) -> Result<Vec<Run>, String> {
    check(args)?;
    let bed = setup(args.rx_napi_thread)?;
    let mut out = Vec::with_capacity(3 * args.runs);
    for i in 0..args.runs {
        // Alternate which stack goes first so drift (other load on the
        // shared cores, thermal) does not favour one.
        let mut order = vec![Stack::Camp, Stack::Quinn];
        if args.camp_udp {
            order.insert(1, Stack::CampUdp);
        }
        if i % 2 == 1 {
            order.reverse();
        }
        for stack in order {
            let run = match stack {
                Stack::Camp | Stack::CampUdp => run_camp(&bed, args, stack),
                Stack::Quinn => run_quinn(&bed, args),
            }
            .map_err(|e| format!("{} run {}: {e}", stack.name(), i + 1))?;
            out.push(run);
        }
    }
    drop(bed);
    Ok(out)
}

/// Summarizes runs of both stacks.
pub fn report(args: &GoodputArgs, runs: &[Run]) -> Result<Report, String> {
    let of = |s: Stack| -> Result<Summary, String> {
        let r: Vec<Run> = runs.iter().filter(|r| r.stack == s).cloned().collect();
        if r.is_empty() {
            return Err(format!("no {} runs", s.name()));
        }
        Ok(summarize(&r))
    };
    let camp_udp = if args.camp_udp {
        Some(of(Stack::CampUdp)?)
    } else {
        None
    };
    Ok(Report::new(
        args,
        of(Stack::Camp)?,
        of(Stack::Quinn)?,
        camp_udp,
    ))
}

/// Renders the report as a table.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "camp-bench goodput: {} B in {} B units, {} runs per stack (medians); one veth pair{}",
        r.camp.bytes,
        r.unit,
        r.camp.runs,
        if r.rx_napi_thread {
            ", receiver veth in a NAPI thread"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "{:<6} {:<24} {:>8} {:>9} {:>8} {:>6} {:>10} {:>9} {:>9} {:>8} {:>8}",
        "stack",
        "sender i/o",
        "wall s",
        "Gbit/s",
        "tx cpu s",
        "user%",
        "Gb/s/core",
        "tx ns/B",
        "rx ns/B",
        "dgr/send",
        "dgr/read"
    );
    for m in [Some(&r.camp), r.camp_udp.as_ref(), Some(&r.quinn)]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            s,
            "{:<6} {:<24} {:>8.3} {:>9.3} {:>8.3} {:>5.0}% {:>10.3} {:>9.3} {:>9.3} {:>8.1} {:>8.1}",
            m.stack.name(),
            m.setup,
            m.wall_s,
            m.goodput_gbps,
            m.sender_cpu_s,
            m.sender_user_share * 100.0,
            m.per_core_gbps,
            m.sender_ns_per_byte,
            m.receiver_ns_per_byte,
            m.tx_datagrams_per_send,
            m.rx_datagrams_per_read
        );
    }
    let _ = writeln!(
        s,
        "goodput per sender core, camp / quinn = {:.2}x (target >= 1.5x: {}); goodput camp / quinn = {:.2}x",
        r.per_core_ratio,
        if r.per_core_ratio >= 1.5 {
            "met"
        } else {
            "not met"
        },
        r.goodput_ratio
    );
    if let Some(x) = r.camp_udp_per_core_ratio {
        let _ = writeln!(
            s,
            "goodput per sender core, camp-udp / quinn = {x:.2}x (target >= 1.0x: {})",
            if x >= 1.0 { "met" } else { "not met" }
        );
    }
    s
}

/// Renders the report as JSON.
pub fn render_json(r: &Report) -> String {
    serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// `camp-bench goodput`.
pub fn run(args: &GoodputArgs) -> Result<(), String> {
    let runs = measure(args)?;
    let r = report(args, &runs)?;
    if args.json {
        println!("{}", render_json(&r));
    } else {
        print!("{}", render_text(&r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_of(stack: Stack, bytes: u64, wall_ms: u64, cpu_ms: u64) -> Run {
        Run {
            stack,
            setup: "s".into(),
            bytes,
            wall: Duration::from_millis(wall_ms),
            sender_cpu: (
                Duration::from_millis(cpu_ms),
                Duration::from_millis(cpu_ms / 4),
            ),
            receiver_cpu: (Duration::from_millis(cpu_ms * 2), Duration::ZERO),
            tx_datagrams: 100,
            tx_sends: 10,
            rx_datagrams: 100,
            rx_reads: 100,
        }
    }

    #[test]
    fn figures_follow_from_bytes_and_times() {
        let r = run_of(Stack::Camp, 1_000_000, 100, 50);
        assert_eq!(r.goodput_bps(), 80e6);
        assert_eq!(r.per_core_bps(), 160e6);
        assert_eq!(r.sender_ns_per_byte(), 50.0);
        assert_eq!(r.receiver_ns_per_byte(), 100.0);
    }

    #[test]
    fn summary_takes_medians_and_ratio_divides_per_core() {
        let camp = summarize(&[
            run_of(Stack::Camp, 1_000_000, 100, 40),
            run_of(Stack::Camp, 1_000_000, 300, 10),
            run_of(Stack::Camp, 1_000_000, 200, 20),
        ]);
        assert_eq!(camp.wall_s, 0.2);
        assert_eq!(camp.sender_cpu_s, 0.02);
        assert_eq!(camp.per_core_gbps, 0.4);
        assert_eq!(camp.tx_datagrams_per_send, 10.0);
        let quinn = summarize(&[run_of(Stack::Quinn, 1_000_000, 100, 40)]);
        let camp_udp = summarize(&[run_of(Stack::CampUdp, 1_000_000, 100, 80)]);
        let r = Report::new(&small_args(), camp, quinn, Some(camp_udp));
        assert_eq!(r.per_core_ratio, 2.0);
        assert_eq!(r.camp_udp_per_core_ratio, Some(0.5));
        let t = render_text(&r);
        assert!(
            t.contains("camp / quinn = 2.00x (target >= 1.5x: met)"),
            "{t}"
        );
        assert!(
            t.contains("camp-udp / quinn = 0.50x (target >= 1.0x: not met)"),
            "{t}"
        );
        let j = render_json(&r);
        assert!(j.contains("\"per_core_ratio\":2.0"), "{j}");
        assert!(j.contains("\"stack\":\"quinn\""), "{j}");
        assert!(j.contains("\"stack\":\"camp-udp\""), "{j}");
    }

    fn small_args() -> GoodputArgs {
        GoodputArgs {
            bytes: 4_000_000,
            unit: 65_536,
            runs: 1,
            timeout: 20.0,
            sender_core: None,
            receiver_core: None,
            busy_poll: false,
            quinn_no_gso: false,
            rx_napi_thread: false,
            counters: false,
            json: true,
            camp_udp: true,
        }
    }

    #[test]
    fn arguments_are_bounded() {
        let ok = small_args();
        assert!(check(&ok).is_ok());
        assert!(
            check(&GoodputArgs {
                bytes: MAX_BYTES + 1,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            check(&GoodputArgs {
                unit: 0,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            check(&GoodputArgs {
                runs: 0,
                ..ok.clone()
            })
            .is_err()
        );
        assert!(check(&GoodputArgs { timeout: 0.0, ..ok }).is_err());
    }

    /// Root: a small transfer through all three stacks on a real veth pair; every
    /// byte arrives and every figure is finite and positive. Without root it
    /// is skipped unless `CI` is set.
    #[test]
    fn small_transfer_through_every_stack() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "needs root, and CI is set"
            );
            eprintln!("SKIPPED small_transfer_through_every_stack: needs root");
            return;
        }
        let args = small_args();
        let t0 = Instant::now();
        let runs = measure(&args).expect("camp-bench goodput");
        assert_eq!(runs.len(), 3);
        for r in &runs {
            assert_eq!(r.bytes, args.bytes, "{r:?}");
            for x in [
                r.goodput_bps(),
                r.per_core_bps(),
                r.sender_ns_per_byte(),
                r.receiver_ns_per_byte(),
            ] {
                assert!(x.is_finite() && x > 0.0, "{r:?}");
            }
            // At least the payload went out, in datagrams of at most ~1.5 kB.
            assert!(r.tx_datagrams >= args.bytes / 1500, "{r:?}");
            assert!(r.tx_sends >= 1 && r.tx_sends <= r.tx_datagrams, "{r:?}");
        }
        let camp = runs.iter().find(|r| r.stack == Stack::Camp).expect("camp");
        assert!(camp.setup.starts_with("af_xdp "), "{camp:?}");
        // veth has no zero-copy AF_XDP.
        assert!(camp.setup.ends_with(" copy"), "{camp:?}");
        let camp_udp = runs
            .iter()
            .find(|r| r.stack == Stack::CampUdp)
            .expect("camp-udp");
        assert!(camp_udp.setup.starts_with("kernel udp"), "{camp_udp:?}");
        // The engine sends batches on both: several datagrams per transmit.
        for c in [camp, camp_udp] {
            assert!(c.tx_datagrams > 2 * c.tx_sends, "{c:?}");
        }
        let r = report(&args, &runs).expect("report");
        assert!(r.per_core_ratio.is_finite() && r.per_core_ratio > 0.0);
        assert!(render_json(&r).contains("\"stack\":\"camp\""));
        assert!(t0.elapsed() < Duration::from_secs(45), "{:?}", t0.elapsed());
    }
}
