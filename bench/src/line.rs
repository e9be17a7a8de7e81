//! `camp-bench io --interface IF`: packet rate on a real interface (or a veth end passed by
//! name), and the RFC 2544-style sweep (`--sweep`) built on it.
//!
//! The traffic generator and counter work on raw AF_XDP sockets, one per selected queue and
//! one thread each, so the rate is not bounded by the CAMP I/O layer's single thread. RX
//! uses the CAMP classifier to redirect UDP to `--port` into the sockets. Each frame carries
//! a small header in its UDP payload ([`Stamp`]): a magic number, a trial number, a sequence
//! number and the sender's `CLOCK_MONOTONIC` time, so a receiver on the same host measures
//! one-way latency and ignores stragglers of an earlier trial.
//!
//! Frame sizes follow RFC 2544: a "64-byte frame" is 60 bytes written plus the 4-byte FCS the
//! NIC appends; line rate counts 20 more bytes per frame on the wire (preamble, start
//! delimiter, inter-frame gap).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

use camp_xdp::classifier::{Attachment, Classifier};
use camp_xdp::frame::{self, FrameHeader, Mac};
use camp_xdp::nic::NicInfo;
use camp_xdp::xsk::{BindMode, BindPreference, XskConfig, XskError, XskSocket};
use camp_xdp::{AttachMode, Ecn};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::lab::{Cpu, cpu_since, parse_mac, sh, thread_cpu};

/// Ethernet + IPv4 + UDP headers in front of the payload.
const HEADERS: usize = 14 + 20 + 8;
/// Frame check sequence appended by the NIC.
const FCS: usize = 4;
/// Preamble + start delimiter + inter-frame gap, per frame on the wire.
const WIRE_OVERHEAD: usize = 20;
/// Frames pushed per TX submit and taken per RX batch.
const BATCH: usize = 64;
/// First bytes of every generated payload.
const MAGIC: u16 = 0xca3b;
/// RX (and TX) UMEM frames and ring entries per socket.
const RX_FRAMES: u32 = 8192;
/// Largest frame (FCS included) that fits one 2048-byte UMEM frame with room to spare.
const MAX_FRAME: usize = 2000;
/// RFC 2544 §9.1 frame sizes for Ethernet.
pub const RFC2544_SIZES: [usize; 7] = [64, 128, 256, 512, 1024, 1280, 1518];

/// Which half of the measurement runs in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Role {
    /// Send only (the peer counts).
    Tx,
    /// Receive and count only.
    Rx,
    /// Send on `--interface` and receive on `--rx-interface` (two ports of one host, or a
    /// peer that reflects the traffic back).
    #[default]
    Both,
}

/// Arguments of the real-interface mode and the sweep (part of `camp-bench io`).
#[derive(Debug, Args, Default, Clone)]
pub struct LineArgs {
    /// Measure on this interface instead of building a veth pair (run inside its namespace).
    #[arg(long)]
    pub interface: Option<String>,
    /// Receiving interface for `--role both` (default: `--interface`).
    #[arg(long)]
    pub rx_interface: Option<String>,
    /// `tx`, `rx` or `both`.
    #[arg(long, value_enum, default_value_t = Role::Both)]
    pub role: Role,
    /// Destination MAC of generated frames (next hop). Default: the receiving interface's.
    #[arg(long)]
    pub peer_mac: Option<String>,
    /// Destination IPv4 address of generated frames. Default: the receiving interface's.
    #[arg(long)]
    pub peer: Option<Ipv4Addr>,
    /// Source IPv4 address. Default: the first IPv4 address of `--interface`.
    #[arg(long)]
    pub local: Option<Ipv4Addr>,
    /// UDP destination port (the receiver's classifier redirects it).
    #[arg(long, default_value_t = 4433)]
    pub port: u16,
    /// Queues to use, e.g. `0-3` or `0,2` (default: all of the interface's queues).
    #[arg(long)]
    pub queues: Option<String>,
    /// Require zero-copy AF_XDP (fails where the driver lacks it).
    #[arg(long, conflicts_with = "copy")]
    pub zero_copy: bool,
    /// Force copy-mode AF_XDP (default: zero-copy when the driver offers it).
    #[arg(long)]
    pub copy: bool,
    /// Attach the receiver's classifier in generic (skb) XDP instead of native.
    #[arg(long)]
    pub generic: bool,
    /// Frame size in bytes including the FCS (RFC 2544 sizes: 64 … 1518).
    #[arg(long, default_value_t = 64)]
    pub frame_size: usize,
    /// Offered rate in frames/s over all queues (0: as fast as the sender goes).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// RFC 2544-style sweep: zero-loss rate per frame size and latency at 10/50/90 % of it.
    #[arg(long)]
    pub sweep: bool,
    /// Sweep: frame sizes (default: the RFC 2544 list).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Sweep: binary-search trials per frame size (after the unthrottled one).
    #[arg(long, default_value_t = 8)]
    pub steps: u32,
    /// Sweep: seconds per trial.
    #[arg(long, default_value_t = 1.0)]
    pub trial_seconds: f64,
    /// Sweep: accepted loss ratio of a "zero-loss" trial (RFC 2544: 0).
    #[arg(long, default_value_t = 0.0)]
    pub loss_tolerance: f64,
    /// Sweep: directory for sweep.json, sweep.csv and sweep.svg.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Parses `0-3`, `0,2,5` or `1`.
pub fn parse_queues(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |_| format!("--queues {s}: bad queue list");
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (u32, u32) = (a.parse().map_err(bad)?, b.parse().map_err(bad)?);
            if a > b || b - a > 1023 {
                return Err(format!("--queues {s}: bad range {part}"));
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(bad)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(format!("--queues {s}: no queue"));
    }
    Ok(out)
}

/// UDP payload bytes of an RFC 2544 frame of `frame_size` bytes (FCS included).
pub fn payload_len(frame_size: usize) -> Result<usize, String> {
    let p = frame_size.saturating_sub(HEADERS + FCS);
    if p < Stamp::LEN || frame_size > MAX_FRAME {
        return Err(format!(
            "frame size {frame_size}: need {} ..= {MAX_FRAME} bytes (FCS included)",
            HEADERS + FCS + Stamp::LEN
        ));
    }
    Ok(p)
}

/// Frames/s at line rate for `frame_size`-byte frames on a `speed_mbps` link.
pub fn line_rate_pps(speed_mbps: u64, frame_size: usize) -> f64 {
    speed_mbps as f64 * 1e6 / ((frame_size + WIRE_OVERHEAD) * 8) as f64
}

/// The header of every generated payload (16 bytes, big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Trial number (frames of other trials are not counted).
    pub trial: u16,
    /// Per-queue sequence number.
    pub seq: u32,
    /// Sender's `CLOCK_MONOTONIC` time in nanoseconds.
    pub sent_ns: u64,
}

impl Stamp {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// Writes the stamp at the front of `buf` (at least [`Self::LEN`] bytes).
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        buf[2..4].copy_from_slice(&self.trial.to_be_bytes());
        buf[4..8].copy_from_slice(&self.seq.to_be_bytes());
        buf[8..16].copy_from_slice(&self.sent_ns.to_be_bytes());
    }

    /// Reads a stamp; `None` unless the payload starts with the magic number.
    pub fn read(buf: &[u8]) -> Option<Self> {
        let b = buf.get(..Self::LEN)?;
        if b[0..2] != MAGIC.to_be_bytes() {
            return None;
        }
        Some(Self {
            trial: u16::from_be_bytes([b[2], b[3]]),
            seq: u32::from_be_bytes(b[4..8].try_into().ok()?),
            sent_ns: u64::from_be_bytes(b[8..16].try_into().ok()?),
        })
    }
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// Link speed in Mbit/s: `/sys/class/net/IF/speed`, else `ethtool IF` (which also works
/// from a thread that entered another namespace, where sysfs shows the wrong one).
pub fn link_speed_mbps(ifname: &str) -> Option<u64> {
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|v| *v > 0);
    if let Ok(s) = std::fs::read_to_string(format!("/sys/class/net/{ifname}/speed"))
        && let Some(v) = parse(&s)
    {
        return Some(v as u64);
    }
    let out = sh(&["ethtool", ifname]).ok()?;
    let line = out.lines().find_map(|l| l.trim().strip_prefix("Speed:"))?;
    parse(line.trim().trim_end_matches("Mb/s")).map(|v| v as u64)
}

/// `ethtool -S IF` as name → value (empty when the driver has no statistics).
pub fn nic_stats(ifname: &str) -> BTreeMap<String, u64> {
    let Ok(out) = sh(&["ethtool", "-S", ifname]) else {
        return BTreeMap::new();
    };
    out.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            Some((k.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Counters of `ethtool -S` that count frames the NIC or driver lost, with their increase
/// between two readings (only the ones that moved).
pub fn nic_drop_deltas(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            ["drop", "miss", "discard", "no_buf", "nobuf", "full"]
                .iter()
                .any(|w| k.contains(w))
        })
        .filter_map(|(k, v)| {
            let d = v.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// One interface opened for the benchmark: one AF_XDP socket per selected queue and, for
/// receiving, the classifier attached and the sockets registered in it.
pub struct Port {
    /// The interface.
    pub info: NicInfo,
    /// Sockets, in the order of `queues`.
    pub sockets: Vec<XskSocket>,
    /// Their queues.
    pub queues: Vec<u32>,
    /// Link speed (Mbit/s), when the driver reports one.
    pub speed_mbps: Option<u64>,
    // Field order: detach before the classifier is unloaded.
    _attachment: Option<Attachment>,
    _classifier: Option<Classifier>,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("name", &self.info.name)
            .field("queues", &self.queues)
            .finish()
    }
}

/// How to open a [`Port`].
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Interface name (in the calling thread's namespace).
    pub ifname: String,
    /// Queues (`None`: all).
    pub queues: Option<Vec<u32>>,
    /// Zero-copy required / copy forced / either.
    pub bind: BindPreference,
    /// Attach the classifier (receiving side) for this UDP port.
    pub rx_port: Option<u16>,
    /// Generic instead of native XDP for the classifier.
    pub generic: bool,
}

impl Port {
    /// Opens the sockets (and the classifier for a receiving port).
    pub fn open(cfg: &PortConfig) -> Result<Self, String> {
        let info = NicInfo::lookup(&cfg.ifname).map_err(|e| e.to_string())?;
        let queues = match &cfg.queues {
            Some(q) => q.clone(),
            None => (0..info.queues).collect(),
        };
        if let Some(q) = queues.iter().find(|q| **q >= info.queues) {
            return Err(format!(
                "{}: queue {q} does not exist ({} queues)",
                cfg.ifname, info.queues
            ));
        }
        // Deeper than the I/O layer's default (2048 RX frames): a sender that flushes a
        // whole packet ring at once (trafgen does) delivers thousands of frames within one
        // system call on veth, and a NIC's burst after an interrupt is as long as its ring.
        let xsk = XskConfig {
            frame_count: RX_FRAMES * 2,
            frame_size: 2048,
            ring_size: RX_FRAMES,
            bind: cfg.bind,
            ..XskConfig::default()
        };
        let mut sockets = Vec::with_capacity(queues.len());
        for &q in &queues {
            let s = XskSocket::open(info.ifindex, q, &xsk).map_err(|e| match e {
                XskError::NoZeroCopy { source, .. } => format!(
                    "--zero-copy: the driver of {} refuses zero-copy AF_XDP on queue {q} ({source}); \
                     veth never offers it; use --copy or a NIC whose driver supports XDP_ZEROCOPY",
                    cfg.ifname
                ),
                other => format!("AF_XDP socket on {} queue {q}: {other}", cfg.ifname),
            })?;
            sockets.push(s);
        }
        let (classifier, attachment) = match cfg.rx_port {
            None => (None, None),
            Some(port) => {
                let c = Classifier::load().map_err(|e| e.to_string())?;
                c.add_port(port).map_err(|e| e.to_string())?;
                for s in &sockets {
                    c.register_socket(s.queue(), s.as_fd())
                        .map_err(|e| e.to_string())?;
                }
                let mode = if cfg.generic {
                    AttachMode::Generic
                } else {
                    AttachMode::Native
                };
                let a = c.attach(info.ifindex, mode).map_err(|e| e.to_string())?;
                (Some(c), Some(a))
            }
        };
        Ok(Self {
            speed_mbps: link_speed_mbps(&cfg.ifname),
            info,
            sockets,
            queues,
            _attachment: attachment,
            _classifier: classifier,
        })
    }

    /// "zero-copy" when every socket got it, else "copy".
    pub fn bind_mode(&self) -> &'static str {
        if self.sockets.iter().all(|s| s.mode() == BindMode::ZeroCopy) {
            "zero-copy"
        } else {
            "copy"
        }
    }
}

/// What one trial sends.
#[derive(Debug, Clone, Copy)]
pub struct TxPlan {
    /// Addressing of every frame.
    pub header: FrameHeader,
    /// Frame size, FCS included.
    pub frame_size: usize,
    /// Frames/s over all queues (0: unthrottled).
    pub rate: f64,
    /// Stop after this long.
    pub duration: Duration,
    /// Stop after this many frames (over all queues).
    pub max_frames: u64,
    /// Trial number written into every frame.
    pub trial: u16,
}

/// What one TX queue did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TxQueueResult {
    /// Queue.
    pub queue: u32,
    /// Frames handed to the kernel.
    pub sent: u64,
    /// Thread CPU time (ns).
    pub cpu_ns: u64,
    /// Invalid TX descriptors (XDP_STATISTICS).
    pub tx_invalid_descs: u64,
}

/// Sends `plan` on every socket, one thread per socket. Returns per-queue results and the
/// elapsed time.
pub fn transmit(
    sockets: &mut [XskSocket],
    plan: &TxPlan,
) -> Result<(Vec<TxQueueResult>, Duration), String> {
    let payload_len = payload_len(plan.frame_size)?;
    let n = sockets.len().max(1) as u64;
    let per_rate = plan.rate / n as f64;
    let per_max = plan.max_frames.div_ceil(n);
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .iter_mut()
            .map(|sock| s.spawn(move || tx_queue(sock, plan, payload_len, per_rate, per_max)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "TX thread panicked".to_owned())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    Ok((results, start.elapsed()))
}

fn tx_queue(
    sock: &mut XskSocket,
    plan: &TxPlan,
    payload_len: usize,
    rate: f64,
    max: u64,
) -> Result<TxQueueResult, String> {
    let before = sock.stats().map_err(|e| e.to_string())?;
    let mut payload = vec![0u8; payload_len];
    let cpu0 = thread_cpu();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < max {
        let t = start.elapsed();
        if t >= plan.duration {
            break;
        }
        let allowed = if rate > 0.0 {
            ((rate * t.as_secs_f64()) as u64 + 1).min(max)
        } else {
            max
        };
        let want = allowed.saturating_sub(sent).min(BATCH as u64);
        if want == 0 {
            std::hint::spin_loop();
            continue;
        }
        let mut pushed = 0;
        for _ in 0..want {
            Stamp {
                trial: plan.trial,
                seq: (sent + pushed) as u32,
                sent_ns: monotonic_ns(),
            }
            .write(&mut payload);
            let ok = sock
                .tx_push(|buf| frame::write_udp(buf, &plan.header, &payload))
                .map_err(|e| format!("frame: {e}"))?;
            if !ok {
                break;
            }
            pushed += 1;
        }
        sent += pushed;
        sock.tx_submit()
            .map_err(|e| format!("TX queue {}: {e}", sock.queue()))?;
    }
    // Let the kernel finish what is queued so `sent` frames really left.
    for _ in 0..1000 {
        sock.tx_submit().map_err(|e| e.to_string())?;
        if sock.tx_free() >= RX_FRAMES as usize {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let cpu = cpu_since(cpu0);
    let after = sock.stats().map_err(|e| e.to_string())?;
    Ok(TxQueueResult {
        queue: sock.queue(),
        sent,
        cpu_ns: cpu.0.as_nanos() as u64,
        tx_invalid_descs: after.tx_invalid_descs - before.tx_invalid_descs,
    })
}

/// What one RX queue counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RxQueueResult {
    /// Queue.
    pub queue: u32,
    /// Frames of the current trial received.
    pub received: u64,
    /// Frames of other trials or without a stamp (stragglers, other traffic).
    pub foreign: u64,
    /// Frames that failed the IP/UDP checks.
    pub malformed: u64,
    /// Thread CPU time (ns).
    pub cpu_ns: u64,
    /// XDP_STATISTICS increase: dropped (not ring-full), RX ring full, fill ring empty.
    pub xsk_rx_dropped: u64,
    /// RX ring full drops.
    pub xsk_rx_ring_full: u64,
    /// Fill ring empty events.
    pub xsk_fill_empty: u64,
    /// `CLOCK_MONOTONIC` ns of the first and the last frame of the trial (0: none).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
}

/// Stops a receiver: when `stop` is set it keeps draining until `idle` passes without a
/// frame; it never runs longer than `deadline`.
#[derive(Debug)]
pub struct RxStop<'a> {
    /// Set by the sender when it is done.
    pub stop: &'a AtomicBool,
    /// Quiet time that ends the drain.
    pub idle: Duration,
    /// Hard limit from the start.
    pub deadline: Duration,
    /// With `stop` never set: end after `idle` without a frame once traffic was seen.
    pub stop_when_idle: bool,
}

/// Counts frames of `trial` on every socket, one thread per socket; latency (ns, from the
/// stamps) goes into the returned histogram.
pub fn receive(
    sockets: &mut [XskSocket],
    trial: &AtomicU16,
    until: &RxStop<'_>,
    ready: impl FnOnce(),
) -> Result<(Vec<RxQueueResult>, Histogram<u64>), String> {
    let started = std::sync::Barrier::new(sockets.len() + 1);
    let out = std::thread::scope(|s| {
        let handles: Vec<_> = sockets
            .iter_mut()
            .map(|sock| {
                let started = &started;
                s.spawn(move || rx_queue(sock, trial, until, started))
            })
            .collect();
        started.wait();
        ready();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "RX thread panicked".to_owned())?)
            .collect::<Result<Vec<_>, String>>()
    })?;
    let mut hist = new_hist();
    let mut queues = Vec::with_capacity(out.len());
    for (q, h) in out {
        hist.add(&h).map_err(|e| e.to_string())?;
        queues.push(q);
    }
    Ok((queues, hist))
}

fn new_hist() -> Histogram<u64> {
    // 1 ns .. 100 s, 3 significant digits; fixed bounds, so `record` only saturates.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant histogram bounds")
}

fn rx_queue(
    sock: &mut XskSocket,
    trial: &AtomicU16,
    until: &RxStop<'_>,
    started: &std::sync::Barrier,
) -> Result<(RxQueueResult, Histogram<u64>), String> {
    let before = sock.stats().map_err(|e| e.to_string())?;
    let mut r = RxQueueResult {
        queue: sock.queue(),
        ..RxQueueResult::default()
    };
    let mut hist = new_hist();
    let cpu0: Cpu = thread_cpu();
    started.wait();
    let start = Instant::now();
    let mut last_frame: Option<Instant> = None;
    let mut stop_seen: Option<Instant> = None;
    let want = trial.load(Ordering::Relaxed);
    loop {
        let (mut got, mut foreign, mut malformed) = (0u64, 0u64, 0u64);
        sock.recv_batch(BATCH as u32, |bytes| match frame::parse_udp(bytes) {
            Ok(v) => match Stamp::read(v.payload) {
                Some(st) if st.trial == want => {
                    got += 1;
                    let _ = hist.record(monotonic_ns().saturating_sub(st.sent_ns).max(1));
                }
                _ => foreign += 1,
            },
            Err(_) => malformed += 1,
        });
        if got > 0 {
            let now = monotonic_ns();
            if r.first_ns == 0 {
                r.first_ns = now;
            }
            r.last_ns = now;
        }
        r.received += got;
        r.foreign += foreign;
        r.malformed += malformed;
        if sock.rx_needs_wakeup() {
            sock.rx_wakeup().map_err(|e| e.to_string())?;
        }
        let now = Instant::now();
        if got + foreign + malformed > 0 {
            last_frame = Some(now);
            continue;
        }
        if now.duration_since(start) >= until.deadline {
            break;
        }
        let quiet = last_frame.is_none_or(|t| now.duration_since(t) >= until.idle);
        if until.stop.load(Ordering::Relaxed) {
            let t = *stop_seen.get_or_insert(now);
            if quiet && now.duration_since(t) >= until.idle {
                break;
            }
        } else if until.stop_when_idle && last_frame.is_some() && quiet {
            break;
        }
        // Nothing in the ring: wait for the socket rather than spin on a shared machine.
        let fd = sock.as_fd();
        let mut pfd = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(1u8));
    }
    let cpu = cpu_since(cpu0);
    let after = sock.stats().map_err(|e| e.to_string())?;
    let d = |a: u64, b: u64| a.saturating_sub(b);
    r.cpu_ns = cpu.0.as_nanos() as u64;
    r.xsk_rx_dropped = d(after.rx_dropped, before.rx_dropped);
    r.xsk_rx_ring_full = d(after.rx_ring_full, before.rx_ring_full);
    r.xsk_fill_empty = d(after.rx_fill_ring_empty, before.rx_fill_ring_empty);
    Ok((r, hist))
}

/// Result of one measurement (one trial) in the real-interface mode.
#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    /// "tx", "rx" or "both".
    pub role: &'static str,
    /// Transmitting interface (tx, both).
    pub tx_interface: Option<String>,
    /// Receiving interface (rx, both).
    pub rx_interface: Option<String>,
    /// AF_XDP bind mode: "zero-copy" or "copy" (of the receiving port when there is one).
    pub bind: &'static str,
    /// Frame size (FCS included).
    pub frame_size: usize,
    /// Link speed (Mbit/s), when known.
    pub speed_mbps: Option<u64>,
    /// Offered rate (frames/s; 0 = unthrottled).
    pub offered_pps: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Frames sent (tx, both).
    pub sent: u64,
    /// Frames received (rx, both).
    pub received: u64,
    /// Frames per second: received for rx/both, sent for tx.
    pub pps: f64,
    /// Gbit/s of frames (frame size × 8 × pps, FCS included, no preamble/gap).
    pub gbps: f64,
    /// pps as a share of line rate, when the speed is known.
    pub line_rate_pct: Option<f64>,
    /// CPU ns per frame of the TX threads.
    pub tx_cpu_ns_per_pkt: Option<f64>,
    /// CPU ns per frame of the RX threads.
    pub rx_cpu_ns_per_pkt: Option<f64>,
    /// sent − received (both).
    pub lost: Option<u64>,
    /// Latency percentiles (ns) p50, p90, p99, max (both: sender and receiver on one clock).
    pub latency_ns: Option<[u64; 4]>,
    /// Per TX queue.
    pub tx_queues: Vec<TxQueueResult>,
    /// Per RX queue, with the XSK drop counters.
    pub rx_queues: Vec<RxQueueResult>,
    /// NIC drop counters from `ethtool -S` that moved (receiving interface).
    pub nic_drops: BTreeMap<String, u64>,
}

/// What the real-interface mode needs besides the sockets.
#[derive(Debug, Clone)]
pub struct Measure {
    /// Role.
    pub role: Role,
    /// Frame size.
    pub frame_size: usize,
    /// Offered rate (0: unthrottled).
    pub rate: f64,
    /// Duration of the send; the receiver alone waits this long plus its idle time.
    pub duration: Duration,
    /// Frame bound.
    pub max_frames: u64,
    /// Trial number.
    pub trial: u16,
}

fn header_for(
    tx: &Port,
    local: Option<Ipv4Addr>,
    peer: Option<Ipv4Addr>,
    peer_mac: Option<Mac>,
    rx: Option<&Port>,
    port: u16,
) -> Result<FrameHeader, String> {
    let first_v4 = |p: &Port| {
        p.info.addrs.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })
    };
    let src = local
        .or_else(|| first_v4(tx))
        .ok_or_else(|| format!("{}: no IPv4 address; pass --local", tx.info.name))?;
    let dst = peer
        .or_else(|| rx.and_then(first_v4))
        .ok_or("pass --peer (destination IPv4 address)")?;
    let dst_mac = peer_mac
        .or(rx.map(|p| p.info.mac))
        .ok_or("pass --peer-mac (destination MAC: the peer port or the next hop)")?;
    Ok(FrameHeader {
        src_mac: tx.info.mac,
        dst_mac,
        vlan: None,
        src: SocketAddr::new(IpAddr::V4(src), 5000),
        dst: SocketAddr::new(IpAddr::V4(dst), port),
        ecn: Ecn::NotEct,
        ttl: 64,
    })
}

/// Runs one measurement on opened ports (`tx` for roles tx/both, `rx` for rx/both; for
/// `both` the receiver runs on other threads at the same time).
pub fn measure_once(
    tx: Option<&mut Port>,
    rx: Option<&mut Port>,
    header: Option<FrameHeader>,
    m: &Measure,
) -> Result<LineReport, String> {
    let speed = tx
        .as_ref()
        .and_then(|p| p.speed_mbps)
        .or(rx.as_ref().and_then(|p| p.speed_mbps));
    let tx_name = tx.as_ref().map(|p| p.info.name.clone());
    let rx_name = rx.as_ref().map(|p| p.info.name.clone());
    let bind = rx
        .as_ref()
        .map(|p| p.bind_mode())
        .or(tx.as_ref().map(|p| p.bind_mode()))
        .unwrap_or("copy");
    let nic_before = rx_name.as_deref().map(nic_stats).unwrap_or_default();
    let stop = AtomicBool::new(false);
    let trial = AtomicU16::new(m.trial);
    let plan = header.map(|h| TxPlan {
        header: h,
        frame_size: m.frame_size,
        rate: m.rate,
        duration: m.duration,
        max_frames: m.max_frames,
        trial: m.trial,
    });
    let mut tx_out = None;
    let mut rx_out = None;
    let t0 = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let rx_handle = rx.map(|port| {
            let until = RxStop {
                stop: &stop,
                idle: Duration::from_millis(if tx.is_some() { 100 } else { 1000 }),
                deadline: m.duration + Duration::from_secs(if tx.is_some() { 2 } else { 10 }),
                stop_when_idle: tx.is_none(),
            };
            let trial = &trial;
            s.spawn(move || {
                receive(&mut port.sockets, trial, &until, || {
                    let _ = ready_tx.send(());
                })
            })
        });
        if rx_handle.is_some() {
            // The sender starts once every receiving thread is in its loop.
            let _ = ready_rx.recv();
            if tx.is_none() {
                // A separate sender (another process or host) can start now.
                eprintln!(
                    "camp-bench io: receiving on {}",
                    rx_name.as_deref().unwrap_or("?")
                );
            }
        }
        if let (Some(port), Some(plan)) = (tx, plan.as_ref()) {
            let r = transmit(&mut port.sockets, plan);
            stop.store(true, Ordering::Relaxed);
            tx_out = Some(r?);
        }
        if let Some(h) = rx_handle {
            rx_out = Some(h.join().map_err(|_| "receiver panicked".to_owned())??);
        }
        Ok(())
    })?;
    let wall = t0.elapsed();
    let nic_drops = rx_name
        .as_deref()
        .map(|n| nic_drop_deltas(&nic_before, &nic_stats(n)))
        .unwrap_or_default();
    let (tx_queues, tx_elapsed) = tx_out.unwrap_or_default();
    let (rx_queues, hist) = match rx_out {
        Some((q, h)) => (q, Some(h)),
        None => (Vec::new(), None),
    };
    let sent: u64 = tx_queues.iter().map(|q| q.sent).sum();
    let received: u64 = rx_queues.iter().map(|q| q.received).sum();
    let tx_cpu: u64 = tx_queues.iter().map(|q| q.cpu_ns).sum();
    let rx_cpu: u64 = rx_queues.iter().map(|q| q.cpu_ns).sum();
    let (role, frames, secs) = match m.role {
        Role::Tx => ("tx", sent, tx_elapsed.as_secs_f64()),
        // A receiver alone measures from its first frame to its last (not its wait for the
        // sender to start, nor its idle tail).
        Role::Rx => {
            let first = rx_queues
                .iter()
                .map(|q| q.first_ns)
                .filter(|v| *v > 0)
                .min();
            let last = rx_queues.iter().map(|q| q.last_ns).max();
            let secs = match (first, last) {
                (Some(f), Some(l)) if l > f => (l - f) as f64 / 1e9,
                _ => wall.as_secs_f64(),
            };
            ("rx", received, secs)
        }
        Role::Both => ("both", received, tx_elapsed.as_secs_f64()),
    };
    let pps = frames as f64 / secs.max(1e-9);
    let per = |cpu: u64, n: u64| (n > 0).then(|| cpu as f64 / n as f64);
    Ok(LineReport {
        role,
        tx_interface: tx_name,
        rx_interface: rx_name,
        bind,
        frame_size: m.frame_size,
        speed_mbps: speed,
        offered_pps: m.rate,
        seconds: secs,
        sent,
        received,
        pps,
        gbps: pps * (m.frame_size * 8) as f64 / 1e9,
        line_rate_pct: speed.map(|s| 100.0 * pps / line_rate_pps(s, m.frame_size)),
        tx_cpu_ns_per_pkt: per(tx_cpu, sent).filter(|_| m.role != Role::Rx),
        rx_cpu_ns_per_pkt: per(rx_cpu, received).filter(|_| m.role != Role::Tx),
        lost: (m.role == Role::Both).then(|| sent.saturating_sub(received)),
        latency_ns: hist
            .filter(|h| !h.is_empty() && m.role == Role::Both)
            .map(|h| {
                [
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.9),
                    h.value_at_quantile(0.99),
                    h.max(),
                ]
            }),
        tx_queues,
        rx_queues,
        nic_drops,
    })
}

fn bind_pref(a: &LineArgs) -> BindPreference {
    if a.zero_copy {
        BindPreference::ZeroCopy
    } else if a.copy {
        BindPreference::Copy
    } else {
        BindPreference::Auto
    }
}

/// The ports and frame header of a real-interface run, opened in the calling thread's
/// network namespace.
pub struct Setup {
    /// Sending port (roles tx, both).
    pub tx: Option<Port>,
    /// Receiving port (roles rx, both).
    pub rx: Option<Port>,
    /// Frame addressing (when sending).
    pub header: Option<FrameHeader>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish()
    }
}

/// Opens what `args` asks for.
pub fn open_setup(a: &LineArgs) -> Result<Setup, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("camp-bench io --interface needs root (XDP, AF_XDP)".into());
    }
    let ifname = a.interface.clone().ok_or("--interface is required")?;
    let queues = a.queues.as_deref().map(parse_queues).transpose()?;
    let port_cfg = |name: &str, rx: bool| PortConfig {
        ifname: name.to_owned(),
        queues: queues.clone(),
        bind: bind_pref(a),
        rx_port: rx.then_some(a.port),
        generic: a.generic,
    };
    let rx = match a.role {
        Role::Tx => None,
        Role::Rx => Some(Port::open(&port_cfg(&ifname, true))?),
        Role::Both => {
            let name = a.rx_interface.as_deref().unwrap_or(&ifname);
            Some(Port::open(&port_cfg(name, true))?)
        }
    };
    let tx = match a.role {
        Role::Rx => None,
        Role::Tx | Role::Both => Some(Port::open(&port_cfg(&ifname, false))?),
    };
    let peer_mac = a.peer_mac.as_deref().map(parse_mac).transpose()?;
    let header = match &tx {
        Some(t) => Some(header_for(
            t,
            a.local,
            a.peer,
            peer_mac,
            rx.as_ref(),
            a.port,
        )?),
        None => None,
    };
    Ok(Setup { tx, rx, header })
}

/// Renders one report as a table.
pub fn render_report(r: &LineReport) -> String {
    let mut s = String::new();
    let opt = |v: Option<f64>, p: usize| v.map_or("-".into(), |v| format!("{v:.p$}"));
    let _ = writeln!(
        s,
        "camp-bench io --interface: role {}, tx {} rx {}, {} AF_XDP, {} B frames, link {}",
        r.role,
        r.tx_interface.as_deref().unwrap_or("-"),
        r.rx_interface.as_deref().unwrap_or("-"),
        r.bind,
        r.frame_size,
        r.speed_mbps
            .map_or("speed unknown".into(), |v| format!("{v} Mbit/s"))
    );
    let _ = writeln!(
        s,
        "{:>12} {:>12} {:>12} {:>8} {:>9} {:>11} {:>11} {:>10}",
        "sent", "received", "pps", "Gbit/s", "line%", "tx-ns/pkt", "rx-ns/pkt", "lost"
    );
    let _ = writeln!(
        s,
        "{:>12} {:>12} {:>12.0} {:>8.3} {:>9} {:>11} {:>11} {:>10}",
        r.sent,
        r.received,
        r.pps,
        r.gbps,
        opt(r.line_rate_pct, 2),
        opt(r.tx_cpu_ns_per_pkt, 1),
        opt(r.rx_cpu_ns_per_pkt, 1),
        r.lost.map_or("-".into(), |v| v.to_string())
    );
    if let Some([p50, p90, p99, max]) = r.latency_ns {
        let _ = writeln!(
            s,
            "latency us: p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
            p50 as f64 / 1e3,
            p90 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3
        );
    }
    for q in &r.tx_queues {
        let _ = writeln!(
            s,
            "tx queue {:>3}: sent {:>10} invalid-descs {}",
            q.queue, q.sent, q.tx_invalid_descs
        );
    }
    for q in &r.rx_queues {
        let _ = writeln!(
            s,
            "rx queue {:>3}: received {:>10} foreign {:>6} malformed {:>4} xsk-dropped {} xsk-ring-full {} fill-empty {}",
            q.queue,
            q.received,
            q.foreign,
            q.malformed,
            q.xsk_rx_dropped,
            q.xsk_rx_ring_full,
            q.xsk_fill_empty
        );
    }
    if !r.nic_drops.is_empty() {
        let v: Vec<String> = r
            .nic_drops
            .iter()
            .map(|(k, v)| format!("{k} +{v}"))
            .collect();
        let _ = writeln!(s, "NIC drop counters (ethtool -S): {}", v.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_lists_parse() {
        assert_eq!(parse_queues("0-3").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_queues("2,0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_queues("1").unwrap(), vec![1]);
        assert!(parse_queues("3-1").is_err());
        assert!(parse_queues("x").is_err());
        assert!(parse_queues("").is_err());
    }

    #[test]
    fn rfc2544_payloads_and_line_rate() {
        assert_eq!(payload_len(64).unwrap(), 18);
        assert_eq!(payload_len(1518).unwrap(), 1472);
        assert!(payload_len(60).is_err());
        // 10GbE at 64 B: the classic 14.88 Mpps.
        assert!((line_rate_pps(10_000, 64) - 14_880_952.4).abs() < 1.0);
        assert!((line_rate_pps(1_000, 1518) - 81_274.4).abs() < 1.0);
    }

    #[test]
    fn stamps_round_trip_and_reject_other_payloads() {
        let st = Stamp {
            trial: 7,
            seq: 0x0102_0304,
            sent_ns: 0x1122_3344_5566_7788,
        };
        let mut b = [0u8; 18];
        st.write(&mut b);
        assert_eq!(
            b[..16],
            [
                0xca, 0x3b, 0, 7, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
            ]
        );
        assert_eq!(Stamp::read(&b), Some(st));
        b[0] = 0;
        assert_eq!(Stamp::read(&b), None);
        assert_eq!(Stamp::read(&[0xca, 0x3b]), None);
    }

    #[test]
    fn nic_drop_deltas_keep_moved_drop_counters() {
        let m = |v: &[(&str, u64)]| -> BTreeMap<String, u64> {
            v.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let before = m(&[
            ("rx_queue_0_drops", 5),
            ("rx_packets", 1),
            ("rx_missed_errors", 0),
        ]);
        let after = m(&[
            ("rx_queue_0_drops", 9),
            ("rx_packets", 100),
            ("rx_missed_errors", 0),
            ("rx_xsk_full", 2),
        ]);
        assert_eq!(
            nic_drop_deltas(&before, &after),
            m(&[("rx_queue_0_drops", 4), ("rx_xsk_full", 2)])
        );
    }
}
