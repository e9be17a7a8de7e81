//! `camp-bench scale`: N concurrent sessions on one server in one simulation, each with
//! its own client, two emulated paths and the standard digital-human turn, started one
//! after another over the first seconds. Per N: the server's CPU per session-second (thread
//! CPU time inside the server's calls only), its peak memory per session (live bytes the
//! counting allocator saw change inside those calls), and the viewer figures averaged over
//! every session.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use camp_proto::client::{Client, ClientConfig, PathSpec};
use camp_proto::config::{CampConfig, SchedulerKind};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use camp_proto::store::UnitSubmit;
use camp_proto::{Driven, EcnCodepoint, Transmit};
use camp_sim::experiment::miss_share;
use camp_sim::workload::{PlannedUnit, TurnConfig, plan_turn};
use camp_sim::{ClientNode, LinkConfig, PathConfig, Sim, client_addr, server_addr};
use camp_testkit::alloc::live_bytes;
use camp_wire::{CaptureId, Modality};
use clap::{Args, ValueEnum};
use nix::time::{ClockId, clock_gettime};
use serde::Serialize;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// One JSON array of rows.
    Json,
}

/// Arguments of `camp-bench scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Concurrent session counts to run, one simulation each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,4000")]
    pub sessions: Vec<usize>,
    /// Sessions start one after another, evenly over this span, ms.
    #[arg(long, default_value_t = 2_000)]
    pub spread_ms: u64,
    /// Length of each session's turn, ms (the standard turn is 10 s).
    #[arg(long, default_value_t = 10_000)]
    pub turn_ms: u64,
    /// Path A: rate (Mbit/s) and one-way delay (ms) of every session's first path.
    #[arg(long, value_delimiter = ',', default_value = "20,15")]
    pub path_a: Vec<u64>,
    /// Path B: rate (Mbit/s) and one-way delay (ms) of every session's second path.
    #[arg(long, value_delimiter = ',', default_value = "10,30")]
    pub path_b: Vec<u64>,
    /// Seed of the network, the endpoints and the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Writes a plot of server CPU per session-second against N here.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Diagnosis: before every metered span, writes this many KiB of a 64 MiB buffer
    /// (moving on each time, not metered), so that a few sessions meet the server with
    /// caches as cold as many sessions leave them. 0 (the default) is off.
    #[arg(long, default_value_t = 0)]
    pub evict_kib: usize,
}

/// Figures of one N.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScaleRow {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Sessions the server opened (should equal `sessions`).
    pub opened: usize,
    /// Server CPU time per session-second, µs (session-seconds: each client's start to
    /// the end of the run).
    pub server_cpu_us_per_session_s: f64,
    /// Server CPU time per simulated second, s (1.0 is one core).
    pub server_cpu_s_per_s: f64,
    /// Metered spans (entries into the server from the network or the application) per
    /// session-second: the same work in more spans would mean more calls per unit of work.
    pub spans_per_session_s: f64,
    /// What a pair of thread-CPU clock reads cost in this run, ns (sampled inside the run,
    /// taken off every span).
    pub clock_pair_ns: f64,
    /// Timer heap entries the server popped (due, stale or moved) per session-second
    /// ([`camp_proto::server::LoopWork::timer_pops`]).
    pub timer_pops_per_session_s: f64,
    /// Peak server live bytes over the run divided by `sessions` (a high-water mark: it
    /// grows with the run's length as rarer bursts are met).
    pub bytes_per_session: f64,
    /// Server live bytes at the end, every turn over and drained, sessions still open,
    /// divided by `sessions`.
    pub idle_bytes_per_session: f64,
    /// Audio units past their deadline, share of audio arrivals (mean over sessions).
    pub audio_deadline_miss: f64,
    /// Share of groups outside ITU-R IS-191 alignment (mean over sessions).
    pub outside_is191: f64,
    /// Video frames shown of those planned (mean over sessions).
    pub video_shown: f64,
    /// Simulated time, s.
    pub simulated_s: f64,
    /// Wall-clock time of the simulation, s.
    pub wall_s: f64,
}

/// Thread CPU time, ns.
fn thread_cpu_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Every how many metered spans one extra, empty pair of clock reads is taken to learn
/// what a pair costs in the run's own cache state.
const PROBE_EVERY: u64 = 8;

/// Thread CPU time and live bytes inside the metered spans. A pair of
/// `CLOCK_THREAD_CPUTIME_ID` reads is a system call here (~1 µs, as much as the work of a
/// small call), and what it costs depends on how cold the caches are: the cost of a pair
/// is therefore sampled inside the run, just before a span starts, and the mean of those
/// samples is taken off every span at the end.
#[derive(Debug, Default)]
struct Meter {
    /// Cache lines written before each span (`--evict-kib`), and where the next write goes.
    evict: Vec<u8>,
    evict_lines: usize,
    evict_at: usize,
    /// Sum of the spans, clock reads included, ns.
    raw_ns: u64,
    spans: u64,
    probe_ns: u64,
    probes: u64,
    live: i64,
    peak_live: i64,
}

/// An open span: thread CPU time and live bytes when it began.
struct Span(u64, i64);

impl Meter {
    fn start(&mut self) -> Span {
        if self.evict_lines > 0 {
            let lines = self.evict.len() / 64;
            for _ in 0..self.evict_lines {
                self.evict[self.evict_at * 64] = self.evict[self.evict_at * 64].wrapping_add(1);
                self.evict_at = (self.evict_at + 1) % lines;
            }
            std::hint::black_box(&self.evict);
        }
        if self.spans % PROBE_EVERY == 0 {
            let a = thread_cpu_ns();
            self.probe_ns += thread_cpu_ns().saturating_sub(a);
            self.probes += 1;
        }
        let live0 = live_bytes();
        Span(thread_cpu_ns(), live0)
    }

    fn stop(&mut self, span: Span) {
        let t1 = thread_cpu_ns();
        self.live += live_bytes() - span.1;
        self.peak_live = self.peak_live.max(self.live);
        self.raw_ns += t1.saturating_sub(span.0);
        self.spans += 1;
    }

    /// What one pair of clock reads cost in this run, ns (mean of the probes).
    fn pair_ns(&self) -> f64 {
        self.probe_ns as f64 / self.probes.max(1) as f64
    }

    /// Time inside the spans less the clock reads, ns.
    fn cpu_ns(&self) -> f64 {
        (self.raw_ns as f64 - self.spans as f64 * self.pair_ns()).max(0.0)
    }
}

/// One session's turn: the shared plan shifted to the session's start.
#[derive(Debug)]
struct Turn {
    session: SessionId,
    start_us: u64,
    next: usize,
}

/// The server with its meters and the application that feeds it: every opened session
/// plays the turn from 20 ms after it opened. Only the calls into [`Server`] are metered.
struct Metered {
    server: Server,
    meter: Meter,
    plan: Arc<Vec<PlannedUnit>>,
    turns: Vec<Turn>,
    releases: BinaryHeap<Reverse<(u64, usize)>>,
    payload: Vec<u8>,
    opened: usize,
    refused: u64,
}

impl Metered {
    /// Runs `f` on the server inside one metered span.
    fn call<R>(&mut self, f: impl FnOnce(&mut Server) -> R) -> R {
        let span = self.meter.start();
        let r = f(&mut self.server);
        self.meter.stop(span);
        r
    }

    /// Takes the server's events and latency samples; called inside a span (the work
    /// besides the server's is a push per opened session).
    fn poll_events(&mut self, now: Instant) {
        while let Some(ev) = self.server.poll_event() {
            if let ServerEvent::SessionOpened(s) = ev {
                let start_us = self.server.clock().micros(now) + 20_000;
                self.opened += 1;
                self.releases.push(Reverse((
                    start_us + self.plan.first().map_or(0, |u| u.release_us),
                    self.turns.len(),
                )));
                self.turns.push(Turn {
                    session: s,
                    start_us,
                    next: 0,
                });
            }
        }
        // Latency samples are the application's to take; nobody reads them here.
        while self.server.poll_latency().is_some() {}
    }

    fn next_release(&self) -> Option<u64> {
        self.releases.peek().map(|r| r.0.0)
    }

    /// Submits every unit due at `now_us`.
    fn release(&mut self, now: Instant, now_us: u64) {
        while let Some(&Reverse((at, k))) = self.releases.peek() {
            if at > now_us {
                break;
            }
            self.releases.pop();
            let (session, start_us, i) = {
                let t = &mut self.turns[k];
                t.next += 1;
                (t.session, t.start_us, t.next - 1)
            };
            let plan = Arc::clone(&self.plan);
            let u = &plan[i];
            let payload = std::mem::take(&mut self.payload);
            let r = self.call(|s| {
                s.send_unit(
                    now,
                    session,
                    &UnitSubmit {
                        modality: u.modality,
                        reliability: u.modality.default_reliability(),
                        flags: u.flags,
                        sync_index: u.sync_index,
                        gen_time_us: start_us + u.gen_us,
                        deadline_us: u.deadline_us,
                        capture_id: CaptureId(0),
                        payload: &payload[..u.size.min(payload.len())],
                    },
                )
            });
            self.payload = payload;
            if r.is_err() {
                self.refused += 1;
            }
            if let Some(n) = plan.get(i + 1) {
                self.releases.push(Reverse((start_us + n.release_us, k)));
            }
        }
    }
}

impl Driven for Metered {
    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ecn: Option<EcnCodepoint>,
        data: &[u8],
    ) {
        // One span per call from the network: the datagram and the events it raised.
        let span = self.meter.start();
        self.server.handle_datagram(now, local, remote, ecn, data);
        self.poll_events(now);
        self.meter.stop(span);
    }
    fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Transmit> {
        self.call(|s| s.poll_transmit(now, max_datagrams, buf))
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        let t = self.call(Server::poll_timeout);
        let clock = self.server.clock();
        let r = self.next_release().map(|us| clock.instant(us));
        match (t, r) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        let now_us = self.server.clock().micros(now);
        self.release(now, now_us);
        let span = self.meter.start();
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        }
        self.poll_events(now);
        self.meter.stop(span);
    }
}

/// A node that never does anything (the simulator's server slot when the server is an
/// extra node).
struct Idle;

impl Driven for Idle {
    fn handle_datagram(
        &mut self,
        _: Instant,
        _: SocketAddr,
        _: SocketAddr,
        _: Option<EcnCodepoint>,
        _: &[u8],
    ) {
    }
    fn poll_transmit(&mut self, _: Instant, _: usize, _: &mut Vec<u8>) -> Option<Transmit> {
        None
    }
    fn poll_timeout(&mut self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _: Instant) {}
}

/// Client `k`'s address on path `i` (`k` ≥ 1; client 0 is the simulator's own, at
/// [`client_addr`]): 198.19.0.0/16, two addresses per client.
fn extra_client_addr(k: usize, i: usize) -> SocketAddr {
    let n = 2 * k + i;
    SocketAddr::from(([198, 19, (n >> 8) as u8, n as u8], 50_000 + i as u16))
}

fn seed32(seed: u64, salt: u8, k: u64) -> [u8; 32] {
    let mut s = [salt; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&k.to_le_bytes());
    s
}

fn link(v: &[u64]) -> Result<LinkConfig, String> {
    match v {
        [rate, delay] => Ok(LinkConfig::new(*rate as f64, *delay)),
        _ => Err(format!("a path is RATE_MBIT,DELAY_MS, got {v:?}")),
    }
}

/// Runs N sessions in one simulation.
pub fn run_one(args: &ScaleArgs, n: usize) -> Result<ScaleRow, String> {
    if n == 0 || n > 30_000 {
        return Err(format!("--sessions: {n} is not in 1..=30000"));
    }
    let wall = Instant::now();
    let paths = [
        PathConfig::symmetric(link(&args.path_a)?),
        PathConfig::symmetric(link(&args.path_b)?),
    ];
    let identity = camp_proto::tls::self_signed(&["camp.test"]).map_err(|e| e.to_string())?;
    let roots = identity.chain.clone();
    let server_crypto = camp_proto::tls::server_crypto(identity).map_err(|e| e.to_string())?;
    let client_crypto = camp_proto::tls::client_crypto(&roots, false).map_err(|e| e.to_string())?;
    let camp = CampConfig::default();
    let epoch = Instant::now();
    let server = Server::new(
        ServerConfig {
            camp: camp.clone(),
            local_addrs: (0..paths.len()).map(server_addr).collect(),
            crypto: server_crypto,
            scheduler: SchedulerKind::Camp.factory(),
            rng_seed: seed32(args.seed, 1, 0),
            lb: None,
        },
        epoch,
    );
    let turn = TurnConfig {
        duration_ms: args.turn_ms,
        ..TurnConfig::default()
    };
    let plan = plan_turn(&turn, 0, args.seed);
    let mut planned_video = 0u64;
    for u in &plan {
        if u.modality == Modality::Video {
            planned_video += 1;
        }
    }
    let last_release = plan.last().map_or(0, |u| u.release_us);
    let metered = Metered {
        server,
        meter: Meter {
            evict: if args.evict_kib > 0 {
                vec![0; 64 << 20]
            } else {
                Vec::new()
            },
            evict_lines: (args.evict_kib * 1024 / 64).min(1 << 20),
            ..Meter::default()
        },
        plan: Arc::new(plan),
        turns: Vec::with_capacity(n),
        releases: BinaryHeap::with_capacity(n),
        payload: vec![0x5a; 128 * 1024],
        opened: 0,
        refused: 0,
    };
    let make_client = |k: usize, locals: [SocketAddr; 2], now: Instant| {
        Client::new(
            ClientConfig {
                camp: camp.clone(),
                paths: (0..2)
                    .map(|i| PathSpec {
                        local: locals[i],
                        remote: server_addr(i),
                    })
                    .collect(),
                crypto: client_crypto.clone(),
                server_name: "camp.test".into(),
                receiver: camp_recv::ReceiverConfig::default(),
                rng_seed: seed32(args.seed, 2, k as u64),
                shared_clock: true,
            },
            now,
            epoch,
        )
        .map_err(|e| e.to_string())
    };
    let first = make_client(0, [client_addr(0), client_addr(1)], epoch)?;
    // The server is an extra node: the simulator calls it only when a datagram or its
    // deadline reached it (its own server slot, polled on every event of any node, holds a
    // node that does nothing), so the server's calls are the server's work, not N × the
    // network's events.
    let metered = Rc::new(RefCell::new(metered));
    let mut sim = Sim::new(Idle, ClientNode::new(first), &paths, epoch, args.seed);
    let server_ips: Vec<IpAddr> = (0..paths.len()).map(|i| server_addr(i).ip()).collect();
    sim.add_node_at(Box::new(Rc::clone(&metered)), &server_ips);
    let mut clients: Vec<Rc<RefCell<ClientNode>>> = Vec::with_capacity(n);
    let mut starts = vec![0u64; n];
    let step_us = if n > 1 {
        args.spread_ms * 1000 / (n as u64 - 1)
    } else {
        0
    };
    for (k, start) in starts.iter_mut().enumerate().skip(1) {
        let at = epoch + Duration::from_micros(k as u64 * step_us);
        sim.advance(at);
        *start = sim.now_us();
        let locals = [extra_client_addr(k, 0), extra_client_addr(k, 1)];
        let c = Rc::new(RefCell::new(ClientNode::new(make_client(
            k,
            locals,
            sim.now(),
        )?)));
        clients.push(Rc::clone(&c));
        let links: Vec<(IpAddr, IpAddr, PathConfig)> = (0..2)
            .map(|i| (locals[i].ip(), server_addr(i).ip(), paths[i].clone()))
            .collect();
        sim.add_node_paths(Box::new(c), &links);
    }
    // The last session's turn, then a second to drain.
    let end_us = starts[n - 1] + 1_000_000 + last_release + 1_000_000;
    sim.advance(epoch + Duration::from_micros(end_us));
    let now_us = sim.now_us();

    let mut viewer = ViewerMean::default();
    let mut record = |node: &mut ClientNode| {
        node.client.receiver_mut().finish(now_us);
        let s = node.client.receiver().summary();
        let audio = &s.per_modality[Modality::Audio.index()];
        viewer.add(
            miss_share(audio.deadline_misses, audio.latency.count),
            s.outside_is191,
            node.presented[Modality::Video.index()].len() as f64 / planned_video.max(1) as f64,
        );
    };
    record(&mut sim.client);
    for c in &clients {
        record(&mut c.borrow_mut());
    }
    let session_s: f64 = starts.iter().map(|&s| (now_us - s) as f64 / 1e6).sum();
    let m = metered.borrow();
    let simulated_s = now_us as f64 / 1e6;
    Ok(ScaleRow {
        sessions: n,
        opened: m.opened,
        server_cpu_us_per_session_s: m.meter.cpu_ns() / 1e3 / session_s,
        server_cpu_s_per_s: m.meter.cpu_ns() / 1e9 / simulated_s,
        spans_per_session_s: m.meter.spans as f64 / session_s,
        clock_pair_ns: m.meter.pair_ns(),
        timer_pops_per_session_s: m.server.loop_work().timer_pops as f64 / session_s,
        bytes_per_session: m.meter.peak_live as f64 / n as f64,
        idle_bytes_per_session: m.meter.live as f64 / n as f64,
        audio_deadline_miss: viewer.mean(0),
        outside_is191: viewer.mean(1),
        video_shown: viewer.mean(2),
        simulated_s,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}

#[derive(Default)]
struct ViewerMean {
    sum: [f64; 3],
    n: u32,
}

impl ViewerMean {
    fn add(&mut self, audio: f64, is191: f64, video: f64) {
        for (s, v) in self.sum.iter_mut().zip([audio, is191, video]) {
            *s += v;
        }
        self.n += 1;
    }
    fn mean(&self, i: usize) -> f64 {
        self.sum[i] / f64::from(self.n.max(1))
    }
}

/// `camp-bench scale`.
pub fn run(args: &ScaleArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    for &n in &args.sessions {
        let row = run_one(args, n)?;
        if args.format == Format::Table {
            if rows.is_empty() {
                println!(
                    "{:>6} {:>6} {:>14} {:>10} {:>12} {:>9} {:>9} {:>8} {:>8}",
                    "N",
                    "opened",
                    "cpu_us/sess_s",
                    "cpu_s/s",
                    "bytes/sess",
                    "audio_ms%",
                    "is191%",
                    "video%",
                    "wall_s"
                );
            }
            println!(
                "{:>6} {:>6} {:>14.1} {:>10.3} {:>12.0} {:>9.2} {:>9.2} {:>8.2} {:>8.1}",
                row.sessions,
                row.opened,
                row.server_cpu_us_per_session_s,
                row.server_cpu_s_per_s,
                row.bytes_per_session,
                row.audio_deadline_miss * 100.0,
                row.outside_is191 * 100.0,
                row.video_shown * 100.0,
                row.wall_s
            );
        }
        rows.push(row);
    }
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(&rows)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Server CPU per session-second against N (log x), one point per row.
pub fn svg(rows: &[ScaleRow]) -> String {
    let (w, h, ml, mr, mt, mb) = (640.0, 400.0, 70.0, 20.0, 40.0, 50.0);
    let (pw, ph) = (w - ml - mr, h - mt - mb);
    let max_n = rows.iter().map(|r| r.sessions).max().unwrap_or(1).max(10) as f64;
    let max_y = rows
        .iter()
        .map(|r| r.server_cpu_us_per_session_s)
        .fold(1.0, f64::max)
        * 1.1;
    let x = |n: usize| ml + pw * (n.max(1) as f64).log10() / max_n.log10();
    let y = |v: f64| mt + ph * (1.0 - v / max_y);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Server CPU per session-second against concurrent sessions (simulator)</text>",
        w / 2.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{ml}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{}\" stroke=\"black\"/>",
        mt + ph,
        ml + pw,
        mt + ph,
        mt + ph
    );
    let mut decade = 1usize;
    while decade as f64 <= max_n {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{decade}</text>",
            x(decade),
            mt + ph + 16.0
        );
        decade *= 10;
    }
    for k in 0..=4 {
        let v = max_y * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0}</text>",
            ml - 6.0,
            y(v) + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrent sessions N (log)</text>\n<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">server CPU, µs per session-second</text>",
        ml + pw / 2.0,
        h - 12.0,
        mt + ph / 2.0,
        mt + ph / 2.0
    );
    let points: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{:.1},{:.1}",
                x(r.sessions),
                y(r.server_cpu_us_per_session_s)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    );
    for r in rows {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f77b4\"><title>N={} {:.1} µs</title></circle>",
            x(r.sessions),
            y(r.server_cpu_us_per_session_s),
            r.sessions,
            r.server_cpu_us_per_session_s
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Sessions open per client address, for tests: every client's paths reach the server.
#[cfg(test)]
fn distinct_addrs(n: usize) -> usize {
    let mut seen = std::collections::HashMap::new();
    for k in 1..n {
        for i in 0..2 {
            *seen.entry(extra_client_addr(k, i).ip()).or_insert(0u32) += 1;
        }
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sessions: Vec<usize>) -> ScaleArgs {
        ScaleArgs {
            sessions,
            spread_ms: 200,
            turn_ms: 1_000,
            path_a: vec![20, 15],
            path_b: vec![10, 30],
            seed: 3,
            format: Format::Json,
            svg: None,
            evict_kib: 0,
        }
    }

    #[test]
    fn client_addresses_are_distinct_and_in_the_benchmarking_range() {
        assert_eq!(distinct_addrs(5_000), 2 * 4_999);
        let a = extra_client_addr(4_999, 1);
        assert!(matches!(a.ip(), IpAddr::V4(v) if v.octets()[..2] == [198, 19]));
    }

    #[test]
    fn a_few_sessions_are_metered_and_served() {
        let a = args(vec![1, 4]);
        let one = run_one(&a, 1).expect("one session");
        let four = run_one(&a, 4).expect("four sessions");
        for r in [&one, &four] {
            assert_eq!(r.opened, r.sessions, "{r:?}");
            assert!(r.server_cpu_us_per_session_s > 0.0, "{r:?}");
            assert!(r.timer_pops_per_session_s > 0.0, "{r:?}");
            assert!(r.bytes_per_session > 1_000.0, "{r:?}");
            assert!(r.idle_bytes_per_session > 1_000.0, "{r:?}");
            assert!(r.idle_bytes_per_session <= r.bytes_per_session, "{r:?}");
            assert!(r.video_shown > 0.8, "{r:?}");
            assert!(r.audio_deadline_miss < 0.05, "{r:?}");
        }
        // Four sessions make the server work more in total than one.
        assert!(
            four.server_cpu_s_per_s > one.server_cpu_s_per_s,
            "{one:?} {four:?}"
        );
        let svg = svg(&[one, four]);
        assert!(svg.starts_with("<svg") && svg.contains("N=4"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn the_meter_takes_the_sampled_clock_cost_off_every_span() {
        let m = Meter {
            raw_ns: 10_000,
            spans: 4,
            probe_ns: 3_000,
            probes: 2,
            ..Meter::default()
        };
        assert_eq!(m.pair_ns(), 1_500.0);
        assert_eq!(m.cpu_ns(), 4_000.0);
        // Clock reads dearer than the spans: zero, never negative.
        let m = Meter {
            probe_ns: 30_000,
            ..m
        };
        assert_eq!(m.cpu_ns(), 0.0);
    }

    #[test]
    fn eviction_changes_the_caches_not_the_work() {
        let a = args(vec![2]);
        let plain = run_one(&a, 2).expect("plain");
        let cold = run_one(
            &ScaleArgs {
                evict_kib: 64,
                ..args(vec![2])
            },
            2,
        )
        .expect("evicting");
        // Same simulation, same calls into the server, same viewer figures.
        assert_eq!(plain.spans_per_session_s, cold.spans_per_session_s);
        assert_eq!(plain.video_shown, cold.video_shown);
        assert_eq!(plain.audio_deadline_miss, cold.audio_deadline_miss);
        assert!(plain.spans_per_session_s > 0.0 && plain.clock_pair_ns > 0.0);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut a = args(vec![0]);
        assert!(run_one(&a, 0).is_err());
        a.path_a = vec![20];
        assert!(run_one(&a, 1).is_err());
    }
}
