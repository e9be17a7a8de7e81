//! Runs one LLM turn through the simulator and reports what the draft measures.

use std::time::{Duration, Instant};

use camp_proto::client::{ClientEvent, StartError};
use camp_proto::server::{Server, ServerEvent, SessionId};
use camp_proto::store::{StoreCounters, UnitSubmit};
use camp_recv::RecvSummary;
use camp_wire::{CaptureId, Modality, Seq};

use crate::link::{LinkConfig, LinkStep};
use crate::net::PathStats;
use crate::workload::{TurnConfig, plan_turn};
use crate::{Setup, build};

/// A change to the network during a run.
#[derive(Clone, Debug, PartialEq)]
pub enum NetEvent {
    /// Path `path` goes dark in both directions at `at_ms` after the turn starts, for good.
    Cut {
        /// Path index.
        path: usize,
        /// Time after the turn start, ms.
        at_ms: u64,
    },
    /// Path `path` is dark in both directions from `from_ms` until `until_ms` after the
    /// turn starts, then recovers. `from_ms == 0` means dark from the simulation start: the
    /// path is also down while the session starts.
    Outage {
        /// Path index.
        path: usize,
        /// Start, ms after the turn start.
        from_ms: u64,
        /// End, ms after the turn start.
        until_ms: u64,
    },
    /// Path `path` changes delay and/or rate in both directions; `step.at` is measured from
    /// the turn start.
    Step {
        /// Path index.
        path: usize,
        /// The change.
        step: LinkStep,
    },
    /// The client abandons path `path` (ABANDON, then the connection closes) at `at_ms`
    /// after the turn starts; the link itself stays up.
    Close {
        /// Path index (the client's slot).
        path: usize,
        /// Time after the turn start, ms.
        at_ms: u64,
    },
    /// The client's interface of path `path` goes down at `from_ms` and up at `until_ms`
    /// (the link is dark in both directions meanwhile), and the client is told at both
    /// moments, as camp-client is by rtnetlink: `Client::local_link_down` / `_up`.
    LinkDown {
        /// Path index (the client's slot).
        path: usize,
        /// Start, ms after the turn start.
        from_ms: u64,
        /// End, ms after the turn start.
        until_ms: u64,
    },
    /// The server's interface of path `path` (its address `server_addr(path)`) goes down at
    /// `from_ms` and up at `until_ms` (the link is dark both ways meanwhile), and the server
    /// is told at both moments, as campd is by rtnetlink: `Server::local_link_down` / `_up`.
    ServerLinkDown {
        /// Path index.
        path: usize,
        /// Start, ms after the turn start.
        from_ms: u64,
        /// End, ms after the turn start.
        until_ms: u64,
    },
}

/// What happens to a path at a point of the turn (applied between unit releases).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PathAction {
    Cut,
    Close,
    LinkDown,
    LinkUp,
    ServerLinkDown,
    ServerLinkUp,
}

/// Why a simulated turn could not be run. A scenario outcome, not a bug: reported and
/// counted by the benchmark, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The client gave up starting the session.
    #[error("session not established: {0}")]
    StartFailed(StartError),
    /// No session within the simulator's establishment limit.
    #[error("session not established within {0:?}")]
    NoSession(Duration),
}

/// Virtual time the simulator waits for the session and its paths before the turn starts.
pub const ESTABLISH_LIMIT: Duration = Duration::from_secs(3);

/// Outcome of one simulated turn.
#[derive(Debug, Clone)]
pub struct TurnReport {
    /// Receiver metrics (latency, Delta_k, C, alignment).
    pub summary: RecvSummary,
    /// Sequence numbers presented per modality, in presentation order.
    pub presented: [Vec<Seq>; Modality::COUNT],
    /// Units planned per modality.
    pub planned: [u64; Modality::COUNT],
    /// Units the server accepted per modality (planned minus refused at submission); they
    /// hold sequence numbers `0..accepted`.
    pub accepted: [u64; Modality::COUNT],
    /// Units the server refused at submission (queue full).
    pub refused_at_submit: u64,
    /// Sender store counters.
    pub store: StoreCounters,
    /// Unit streams the server reset because their deadline passed (sent, not delivered).
    pub deadline_resets: u64,
    /// Reliable units still unacknowledged at the end.
    pub unacked_reliable: usize,
    /// Where each of those stands at the sender (state, paths, transmissions).
    pub unacked_units: Vec<camp_proto::store::UnitTrace>,
    /// Paths that joined.
    pub paths_joined: usize,
    /// Paths of the session that both ends still held at the end, matched by path id (0:
    /// every path died, the one case where the reliability promise does not apply).
    pub paths_alive: usize,
    /// Per-path link statistics.
    pub links: Vec<PathStats>,
    /// Unit bytes the server wrote per path slot.
    pub bytes_per_path: Vec<u64>,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Wall-clock time the simulation took.
    pub wall: Duration,
    /// Payload plus header bytes of every unit submitted (each counted once).
    pub unique_bytes: u64,
    /// The server's own latency estimates from CAMP ACKs, per modality:
    /// `(lateness_us, delivery_us)` of every sample (see `camp_proto::server::LatencySample`).
    pub server_latency: [Vec<(u64, u64)>; Modality::COUNT],
    /// Per-unit arrival records (when the receiver's arrival log is on).
    pub arrivals: Vec<camp_recv::ArrivalRecord>,
    /// Session-clock time the turn started, µs.
    pub turn_start_us: u64,
}

impl TurnReport {
    /// Breaks of the reliability promise: every accepted reliable unit presented exactly
    /// once, in order per modality. One message per missing or repeated unit, naming where
    /// it stands at the sender and every arrival the receiver logged for it (the arrival log
    /// is empty unless [`camp_recv::ReceiverConfig::arrival_log`] is on); empty when the
    /// promise held.
    pub fn reliable_faults(&self) -> Vec<String> {
        let mut bad = Vec::new();
        for m in [Modality::Text, Modality::Audio] {
            let got = &self.presented[m.index()];
            let want = self.accepted[m.index()];
            if got.len() as u64 == want && got.iter().zip(0..).all(|(&s, i)| s == i) {
                continue;
            }
            let before = bad.len();
            let mut count = vec![0u32; want as usize];
            let mut stray = 0usize;
            for &s in got {
                match count.get_mut(s as usize) {
                    Some(c) => *c += 1,
                    None => stray += 1,
                }
            }
            for (seq, &c) in count.iter().enumerate() {
                if c == 1 {
                    continue;
                }
                let sender = self
                    .unacked_units
                    .iter()
                    .find(|u| u.modality == m && u.seq == seq as u64)
                    .map_or("acknowledged".to_string(), |u| format!("{u:?}"));
                let arrivals: Vec<_> = self
                    .arrivals
                    .iter()
                    .filter(|a| a.modality == m && a.seq == seq as u64)
                    .collect();
                bad.push(format!(
                    "{m} seq {seq}: presented {c} times; sender: {sender}; arrivals: {arrivals:?}"
                ));
            }
            if stray > 0 {
                bad.push(format!("{m}: {stray} presented units were never accepted"));
            }
            if bad.len() == before {
                bad.push(format!("{m}: presented out of order: {got:?}"));
            }
        }
        bad
    }

    /// Reliable units accepted but never presented (units refused at submission are
    /// counted in `refused_at_submit`, not here).
    pub fn reliable_lost(&self) -> u64 {
        [Modality::Text, Modality::Audio]
            .iter()
            .map(|m| {
                self.accepted[m.index()].saturating_sub(self.presented[m.index()].len() as u64)
            })
            .sum()
    }
}

/// Runs a turn: connects every path, plays the workload into the server at generation
/// times, lets the network drain, and collects the client's metrics. Fails when the session
/// does not start within [`ESTABLISH_LIMIT`].
pub fn run_turn(
    setup: &Setup,
    turn: &TurnConfig,
    events: &[NetEvent],
) -> Result<TurnReport, RunError> {
    let wall = Instant::now();
    let sim = build(setup, Instant::now());
    run_turn_on(sim, setup, turn, events, wall).map(|(r, _)| r)
}

/// What a captured turn leaves: one pcap per route and the client's TLS key log.
#[derive(Debug)]
pub struct TurnCapture {
    /// `(file name, pcap bytes)`: `path<i>.pcap` for configured path `i`, else
    /// `<client ip>-<server ip>.pcap`.
    pub pcaps: Vec<(String, Vec<u8>)>,
    /// NSS key log (`keys.log` for Wireshark's `tls.keylog_file`).
    pub key_log: String,
}

/// [`run_turn`] with every datagram captured (see [`crate::pcap`]).
pub fn run_turn_captured(
    setup: &Setup,
    turn: &TurnConfig,
    events: &[NetEvent],
) -> Result<(TurnReport, TurnCapture), RunError> {
    let wall = Instant::now();
    let (sim, keys) = crate::build_captured(setup, Instant::now());
    let (report, sim) = run_turn_on(sim, setup, turn, events, wall)?;
    let mut pcaps = Vec::new();
    if let Some(c) = sim.capture() {
        for ((a, b), buf) in c.routes() {
            let path = (0..setup.paths.len()).find(|&i| {
                let (c, s) = (crate::client_addr(i).ip(), crate::server_addr(i).ip());
                (a, b) == (c.min(s), c.max(s))
            });
            let name = match path {
                Some(i) => format!("path{i}.pcap"),
                None => format!("{a}-{b}.pcap"),
            };
            pcaps.push((name, buf.bytes().to_vec()));
        }
    }
    Ok((
        report,
        TurnCapture {
            pcaps,
            key_log: keys.text(),
        },
    ))
}

fn run_turn_on(
    mut sim: crate::Sim<Server, crate::ClientNode>,
    setup: &Setup,
    turn: &TurnConfig,
    events: &[NetEvent],
    wall: Instant,
) -> Result<(TurnReport, crate::Sim<Server, crate::ClientNode>), RunError> {
    // A freshly built simulator's clock is at its epoch.
    let epoch = sim.now();
    let n_paths = setup.paths.len();

    // Paths dark from the start are dark while the session starts; the end of the outage
    // is known once the turn start is.
    for e in events {
        if let NetEvent::Outage {
            path, from_ms: 0, ..
        } = *e
        {
            sim.add_outage(path, 0, u64::MAX);
        }
    }

    // Establish the session and let every path join (bounded).
    let (session, joined) = establish(&mut sim, n_paths, ESTABLISH_LIMIT)?;

    let start_us = sim.now_us() + 20_000;
    let plan = plan_turn(turn, start_us, setup.seed);
    let mut planned = [0u64; Modality::COUNT];
    for u in &plan {
        planned[u.modality.index()] += 1;
    }
    let mut cuts: Vec<(u64, usize, PathAction)> = Vec::new();
    for e in events {
        match *e {
            NetEvent::Cut { path, at_ms } => {
                cuts.push((start_us + at_ms * 1000, path, PathAction::Cut))
            }
            NetEvent::Close { path, at_ms } => {
                cuts.push((start_us + at_ms * 1000, path, PathAction::Close))
            }
            NetEvent::LinkDown {
                path,
                from_ms,
                until_ms,
            }
            | NetEvent::ServerLinkDown {
                path,
                from_ms,
                until_ms,
            } => {
                let (down, up) = if matches!(e, NetEvent::LinkDown { .. }) {
                    (PathAction::LinkDown, PathAction::LinkUp)
                } else {
                    (PathAction::ServerLinkDown, PathAction::ServerLinkUp)
                };
                sim.add_outage(path, start_us + from_ms * 1000, start_us + until_ms * 1000);
                cuts.push((start_us + from_ms * 1000, path, down));
                cuts.push((start_us + until_ms * 1000, path, up));
            }
            NetEvent::Outage {
                path,
                from_ms: 0,
                until_ms,
            } => {
                sim.retain_outages(path, |a, b| !(a.is_zero() && b == Duration::MAX));
                sim.add_outage(path, 0, start_us + until_ms * 1000);
            }
            NetEvent::Outage {
                path,
                from_ms,
                until_ms,
            } => sim.add_outage(path, start_us + from_ms * 1000, start_us + until_ms * 1000),
            NetEvent::Step { path, step } => sim.add_step(
                path,
                LinkStep {
                    at: step.at + Duration::from_micros(start_us),
                    ..step
                },
            ),
        }
    }
    cuts.sort_unstable();

    let payload = vec![0x5Au8; 128 * 1024];
    let mut server_latency: [Vec<(u64, u64)>; Modality::COUNT] = Default::default();
    let mut drain_latency = |server: &mut camp_proto::server::Server| {
        while let Some(l) = server.poll_latency() {
            server_latency[l.modality.index()].push((l.lateness_us, l.delivery_us));
        }
    };
    let mut refused = 0;
    let mut accepted = [0u64; Modality::COUNT];
    let mut unique_bytes = 0u64;
    for u in &plan {
        while let Some(&(at, path, action)) = cuts.first().filter(|c| c.0 <= u.release_us) {
            sim.advance(epoch + Duration::from_micros(at));
            match action {
                PathAction::Cut => {
                    let t = sim.now_us();
                    cut_path(&mut sim, path, t);
                }
                PathAction::Close => {
                    let now = sim.now();
                    sim.client.client.abandon_path(now, path);
                }
                PathAction::LinkDown => {
                    let now = sim.now();
                    sim.client.client.local_link_down(now, path);
                }
                PathAction::LinkUp => {
                    let now = sim.now();
                    sim.client.client.local_link_up(now, path);
                }
                PathAction::ServerLinkDown => {
                    let now = sim.now();
                    sim.server
                        .local_link_down(now, crate::server_addr(path).ip());
                }
                PathAction::ServerLinkUp => {
                    let now = sim.now();
                    sim.server.local_link_up(now, crate::server_addr(path).ip());
                }
            }
            cuts.remove(0);
        }
        sim.advance(epoch + Duration::from_micros(u.release_us));
        drain_latency(&mut sim.server);
        let now = sim.now();
        let r = sim.server.send_unit(
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
        );
        match r {
            Ok(_) => {
                accepted[u.modality.index()] += 1;
                unique_bytes += (u.size + camp_wire::DATA_PREFIX_LEN) as u64
            }
            Err(_) => refused += 1,
        }
    }
    // Let everything in flight arrive (bounded: `drain_ms` after the last unit).
    let end = sim.now() + Duration::from_millis(turn.drain_ms);
    while sim.now() < end {
        let next = sim.now() + Duration::from_millis(10);
        sim.advance(next);
        drain_latency(&mut sim.server);
        if sim.server.pending_units(session) == 0 && sim.client.client.receiver().is_idle() {
            break;
        }
    }
    let now_us = sim.now_us();
    sim.client.client.receiver_mut().finish(now_us);
    let now = sim.now();
    sim.client.drain_playout(now);

    let paths = sim.server.paths(session);
    let client_paths: Vec<_> = sim.client.client.path_views();
    let paths_alive = paths
        .iter()
        .filter(|p| client_paths.iter().any(|c| c.id == p.view.id))
        .count();
    let mut bytes_per_path = vec![0; n_paths];
    for p in &paths {
        if let Some(b) = bytes_per_path.get_mut(p.slot) {
            *b = p.bytes_sent;
        }
    }
    let arrivals = sim.client.client.receiver_mut().take_arrival_log();
    drain_latency(&mut sim.server);
    let report = TurnReport {
        server_latency,
        unique_bytes,
        arrivals,
        turn_start_us: start_us,
        summary: sim.client.client.receiver().summary(),
        presented: std::mem::take(&mut sim.client.presented),
        planned,
        accepted,
        refused_at_submit: refused,
        store: sim.server.store_counters(session).unwrap_or_default(),
        deadline_resets: sim.server.counters().deadline_resets,
        unacked_reliable: sim.server.unacked_reliable(session),
        unacked_units: sim.server.unacked_units(session),
        paths_joined: joined,
        paths_alive,
        links: (0..n_paths).map(|i| sim.path_stats(i)).collect(),
        bytes_per_path,
        simulated: sim.now().duration_since(epoch),
        wall: wall.elapsed(),
    };
    Ok((report, sim))
}

/// Advances `sim` in 5 ms steps until the client's session is open and `n_paths` paths
/// joined, or `limit` of virtual time passed. Returns the session and the paths that joined
/// (possibly fewer than asked), or why no session started. Server and client events seen
/// meanwhile are consumed.
///
/// The session is the one the client established: a server session opened by a HELLO
/// whose SESSION never reached the client (its path died, HELLO went out again on another
/// path) is not it.
pub fn establish(
    sim: &mut crate::Sim<Server, crate::ClientNode>,
    n_paths: usize,
    limit: Duration,
) -> Result<(SessionId, usize), RunError> {
    let deadline = sim.now() + limit;
    let mut opened = Vec::new();
    let mut established = false;
    let mut joined = 0;
    while sim.now() < deadline && !(established && joined >= n_paths) {
        let next = sim.now() + Duration::from_millis(5);
        sim.advance(next);
        while let Some(ev) = sim.server.poll_event() {
            if let ServerEvent::SessionOpened(s) = ev {
                opened.push(s);
            }
        }
        while let Some(ev) = sim.client.client.poll_event() {
            match ev {
                ClientEvent::PathJoined { .. } => joined += 1,
                ClientEvent::SessionEstablished => established = true,
                ClientEvent::SessionFailed(why) => return Err(RunError::StartFailed(why)),
                _ => {}
            }
        }
    }
    let token = sim.client.client.session_token();
    let session = opened
        .into_iter()
        .rev()
        .find(|&s| token.is_some() && sim.server.session_token(s) == token);
    match session {
        Some(s) if established => Ok((s, joined)),
        _ => Err(RunError::NoSession(limit)),
    }
}

/// Cuts path `i` in both directions from `now_us` on.
pub fn cut_path<S: crate::Driven, C: crate::Driven>(
    sim: &mut crate::Sim<S, C>,
    i: usize,
    now_us: u64,
) {
    let dark = |mut l: LinkConfig| {
        l.outages = vec![(Duration::from_micros(now_us), Duration::MAX)];
        l
    };
    let cfg = sim.path_config(i);
    sim.set_link(i, true, dark(cfg.up));
    sim.set_link(i, false, dark(cfg.down));
}
