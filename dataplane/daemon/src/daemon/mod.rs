//! campd proper: the engine loop over a [`Server`], fed by the synthetic workload or the
//! ingest socket, publishing snapshots and applying knobs, with a graceful drain.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camp_control::convert::ToProto;
use camp_control::fanin::{global_session, local_session, session_engine};
use camp_control::knobs::{IfName, Knob, SchedulerParam};
use camp_control::snapshot::{
    EngineSettings, EngineSnapshot, NicSnapshot, PacketsBytes, XdpCounters, edge_totals,
    path_snapshot, server_totals, session_snapshot,
};
use camp_control::{ControlConfig, ControlThread};
use camp_engine::{Engine, EngineConfig, EngineCounters, RunEnd, Tick};
use camp_proto::config::{CampConfig, SchedulerFactory, SchedulerKind};
use camp_proto::sched::{ConsistencyAwareConfig, SchedParam};
use camp_proto::server::{Server, ServerConfig, ServerEvent, SessionId};
use camp_proto::store::UnitSubmit;
use camp_proto::tls::Identity;
use camp_proto::{PathId, PathStatus};
use camp_wire::{CaptureId, Modality};
use camp_workload::{PlannedUnit, TurnConfig, plan_turn};
use camp_xdp::steer::{ReuseportSteering, SteerLayout, reuseport_group};
use camp_xdp::{
    AnyIo, ClassifierStats, EndpointStats, IoMode, PacketIo, UdpIo, XdpConfig, open_io,
};

use quinn_proto::crypto::rustls::QuicServerConfig;

use crate::config::{CertSource, Settings};
use crate::due::{DueQueue, Token};
use crate::ingest::{IngestServer, IngestUnit};
use crate::tls;

mod engines;
mod feed;
mod knobs;
mod telemetry;

use engines::*;
use feed::*;
use knobs::*;
use telemetry::*;

/// Snapshot period.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);
/// XDP classifier counters are read this often (a system call per map entry).
const XDP_STATS_EVERY: Duration = Duration::from_secs(1);
/// How often the stop check runs (it may be a system call).
const STOP_CHECK_EVERY: Duration = Duration::from_millis(10);
/// A session's synthetic turn starts once this many paths joined, or after
/// [`JOIN_GRACE`].
const JOIN_GRACE: Duration = Duration::from_millis(300);
/// Gap between looping synthetic turns.
const TURN_GAP_US: u64 = 500_000;
/// Largest synthetic unit payload.
const MAX_SYNTHETIC_UNIT: usize = 256 * 1024;
/// Events the server's unit log holds between two loop iterations (`--qlog-dir`): a few
/// seconds of a busy engine, so that a slow disk costs events (counted), not memory.
const UNIT_LOG_EVENTS: usize = 65_536;

/// Why campd stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    /// The `--qlog-dir` directory could not be created.
    #[error("--qlog-dir: {0}")]
    Qlog(std::io::Error),
    /// Packet I/O could not be opened.
    #[error("opening packet I/O ({mode}): {detail}")]
    Io {
        /// Mode asked for.
        mode: IoMode,
        /// Cause.
        detail: String,
    },
    /// The control thread could not start.
    #[error("control: {0}")]
    Control(#[from] camp_control::ControlError),
    /// The ingest socket could not start.
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestSetupError),
    /// The engine loop failed.
    #[error("engine: {0}")]
    Engine(#[from] camp_engine::EngineError),
    /// An engine thread could not be started.
    #[error("spawning an engine thread: {0}")]
    Spawn(std::io::Error),
    /// An engine thread panicked.
    #[error("an engine thread panicked")]
    EnginePanicked,
}

/// What campd did, printed as JSON at exit.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DaemonReport {
    /// Packet I/O kind actually used (`udp` / `xdp`).
    pub io: String,
    /// Engines that ran (each a thread with its own `Server`); the counts below are summed
    /// over them.
    pub engines: u64,
    /// Sessions opened.
    pub sessions: u64,
    /// Paths joined.
    pub paths_joined: u64,
    /// Units submitted, per modality.
    pub units_submitted: [u64; Modality::COUNT],
    /// Units refused by `send_unit`.
    pub units_refused: u64,
    /// Ingested units dropped: unknown session, or too many waiting for a first session.
    pub ingest_unrouted: u64,
    /// Ingested units dropped by the per-session unit or byte rate.
    pub ingest_rate_limited: u64,
    /// Knobs applied.
    pub knobs_applied: u64,
    /// Knobs logged as not applicable.
    pub knobs_ignored: u64,
    /// Latency samples recorded into the control thread's histograms.
    pub latency_samples: u64,
    /// Snapshots published.
    pub snapshots: u64,
    /// Whether a shutdown signal started a drain.
    pub drained: bool,
    /// Whether every reliable unit was acknowledged before exit.
    pub drain_complete: bool,
    /// Links of served addresses that went down (rtnetlink).
    pub link_downs: u64,
    /// Links of served addresses that came back.
    pub link_ups: u64,
    /// Paths abandoned because their server address lost its link or its NIC was removed.
    pub paths_lost_to_links: u64,
    /// Addresses served from `campctl nic add`.
    pub nic_addresses_added: u64,
    /// Addresses withdrawn by `campctl nic remove`.
    pub nic_addresses_removed: u64,
    /// Engine counters.
    pub rx_datagrams: u64,
    /// Engine counters.
    pub tx_transmits: u64,
    /// `--qlog-dir`: events written to the unit logs (`camp-units.sqlog`).
    pub unit_log_events: u64,
    /// `--qlog-dir`: unit-log events lost because the log filled between two loop
    /// iterations, or after a write failed.
    pub unit_log_lost: u64,
}

impl DaemonReport {
    /// Adds another engine's report into this one: counts summed, drained if either did,
    /// drain complete only if both were.
    pub fn absorb(&mut self, o: &DaemonReport) {
        // Destructured, so a new field must be merged here.
        let DaemonReport {
            io: _,
            engines,
            sessions,
            paths_joined,
            units_submitted,
            units_refused,
            ingest_unrouted,
            ingest_rate_limited,
            knobs_applied,
            knobs_ignored,
            latency_samples,
            snapshots,
            drained,
            drain_complete,
            link_downs,
            link_ups,
            paths_lost_to_links,
            nic_addresses_added,
            nic_addresses_removed,
            rx_datagrams,
            tx_transmits,
            unit_log_events,
            unit_log_lost,
        } = o;
        self.engines += engines;
        self.sessions += sessions;
        self.paths_joined += paths_joined;
        for (a, b) in self.units_submitted.iter_mut().zip(units_submitted) {
            *a += b;
        }
        self.units_refused += units_refused;
        self.ingest_unrouted += ingest_unrouted;
        self.ingest_rate_limited += ingest_rate_limited;
        self.knobs_applied += knobs_applied;
        self.knobs_ignored += knobs_ignored;
        self.latency_samples += latency_samples;
        self.snapshots += snapshots;
        self.drained |= drained;
        self.drain_complete &= drain_complete;
        self.link_downs += link_downs;
        self.link_ups += link_ups;
        self.paths_lost_to_links += paths_lost_to_links;
        self.nic_addresses_added += nic_addresses_added;
        self.nic_addresses_removed += nic_addresses_removed;
        self.rx_datagrams += rx_datagrams;
        self.tx_transmits += tx_transmits;
        self.unit_log_events += unit_log_events;
        self.unit_log_lost += unit_log_lost;
    }
}

/// The scheduler of sessions opened from now on; swapped by the `set_scheduler` knob.
#[derive(Debug, Clone)]
pub struct SchedulerChoice(Arc<AtomicUsize>);

impl SchedulerChoice {
    /// Starts with `kind`.
    pub fn new(kind: SchedulerKind) -> Self {
        SchedulerChoice(Arc::new(AtomicUsize::new(Self::index(kind))))
    }

    fn index(kind: SchedulerKind) -> usize {
        SchedulerKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0)
    }

    /// Current choice.
    pub fn get(&self) -> SchedulerKind {
        SchedulerKind::ALL
            .get(self.0.load(Ordering::Relaxed))
            .copied()
            .unwrap_or(SchedulerKind::Camp)
    }

    /// Changes the choice for new sessions.
    pub fn set(&self, kind: SchedulerKind) {
        self.0.store(Self::index(kind), Ordering::Relaxed);
    }

    /// A factory that builds whatever is chosen when a session opens.
    pub fn factory(&self) -> SchedulerFactory {
        let me = self.clone();
        Arc::new(move || (me.get().factory())())
    }
}

/// Opens the packet I/O the settings ask for.
pub fn open_packet_io(s: &Settings) -> Result<AnyIo, DaemonError> {
    let err = |detail: String| DaemonError::Io { mode: s.io, detail };
    match s.io {
        IoMode::Udp => UdpIo::open(&s.local_addrs())
            .map(AnyIo::Udp)
            .map_err(|e| err(e.to_string())),
        mode => open_io(
            mode,
            &XdpConfig {
                interfaces: s.interfaces.clone(),
                ports: vec![s.port],
                ..XdpConfig::default()
            },
        )
        .map_err(|e| err(e.to_string())),
    }
}

/// The packet I/O of every engine: with one, [`open_packet_io`]; with several, one
/// SO_REUSEPORT group of kernel-UDP sockets per served address, steered by connection id
/// (`camp_xdp::steer`), engine i taking socket i of every group. The steering programs
/// stay attached while their groups' sockets live; keep them until the engines end.
pub fn open_engine_io(s: &Settings) -> Result<(Vec<AnyIo>, Vec<ReuseportSteering>), DaemonError> {
    if s.engines <= 1 {
        return Ok((vec![open_packet_io(s)?], Vec::new()));
    }
    let err = |detail: String| DaemonError::Io { mode: s.io, detail };
    let lb =
        s.lb.ok_or_else(|| err("several engines need routable connection ids".into()))?;
    let layout = SteerLayout {
        cid_len: lb.cid_len() as u8,
        config_id: lb.config_id(),
        // Octet 0 is the config/length octet; the engine octet ends the server id.
        engine_offset: lb.server_id().len() as u8,
    };
    let mut shares: Vec<Vec<std::net::UdpSocket>> = (0..s.engines).map(|_| Vec::new()).collect();
    let mut steering = Vec::new();
    for a in s.local_addrs() {
        let group = reuseport_group(a, s.engines).map_err(|e| err(format!("{a}: {e}")))?;
        steering
            .push(ReuseportSteering::attach(&group, layout).map_err(|e| err(format!("{a}: {e}")))?);
        for (share, sock) in shares.iter_mut().zip(group) {
            share.push(sock);
        }
    }
    let ios = shares
        .into_iter()
        .map(|socks| {
            UdpIo::from_sockets(socks)
                .map(AnyIo::Udp)
                .map_err(|e| err(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    Ok((ios, steering))
}

/// The certificate the settings ask for (writing a self-signed one out if asked).
pub fn identity(s: &Settings) -> Result<Identity, DaemonError> {
    match &s.cert {
        CertSource::Files { cert, key } => Ok(Identity {
            chain: tls::read_certs(cert)?,
            key: tls::read_key(key)?,
        }),
        CertSource::SelfSigned { out } => {
            let id = camp_proto::tls::self_signed(&[s.server_name.as_str()])
                .map_err(tls::TlsSetupError::from)?;
            if let Some(out) = out {
                tls::write_cert(&id, out)?;
            }
            Ok(id)
        }
    }
}

fn unix_time_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Runs campd until `should_stop` returns true (then drains; a second true stops at once)
/// and returns what happened. `should_stop` is called about every 10 ms: from the engine
/// loop with one engine, from the calling thread (which then also routes ingested units to
/// the engines) with several.
pub fn run(
    settings: &Settings,
    mut should_stop: impl FnMut() -> bool,
) -> Result<DaemonReport, DaemonError> {
    crate::log::init(settings.log_level);
    let identity = identity(settings)?;
    let crypto = tls::server_crypto(identity, settings.keylog)?;
    let (ios, steering) = open_engine_io(settings)?;
    let choice = SchedulerChoice::new(settings.scheduler);
    let (ctls, ends) = camp_control::channels_for(settings.engines);
    let control = ControlThread::spawn(
        ControlConfig {
            socket_path: settings.control_socket.clone(),
            http_addr: settings.prometheus,
            interval: Duration::from_secs(1),
            socket_group: settings.access.socket_group,
            requests_per_second: settings.access.control_requests_per_second,
        },
        ends,
    )?;
    let ingest = match &settings.ingest {
        Some(p) => {
            let server = IngestServer::spawn(p)?;
            camp_control::access::restrict_socket(p, settings.access.socket_group).map_err(
                |source| crate::ingest::IngestSetupError::Bind {
                    path: p.clone(),
                    source,
                },
            )?;
            Some(server)
        }
        None => None,
    };
    tracing::info!(
        "campd: serving {:?} over {} with {} engine{} (scheduler {}, control socket {:?}, \
         ingest {:?})",
        settings.local_addrs(),
        format!("{:?}", ios[0].kind()).to_lowercase(),
        settings.engines,
        if settings.engines == 1 { "" } else { "s" },
        settings.scheduler.name(),
        settings.control_socket,
        settings.ingest,
    );
    if let Some(lb) = settings.lb {
        tracing::info!(
            "campd: connection ids carry server id {}{} (config {}, {}-octet CIDs){}",
            lb.server_id(),
            if settings.engines > 1 {
                ", its last octet the engine's"
            } else {
                ""
            },
            lb.config_id(),
            lb.cid_len(),
            if settings.lb_auto {
                "; turned on for several engines (no lb_server_id given)"
            } else {
                ""
            }
        );
    }
    let shared = Shared {
        settings,
        crypto,
        choice,
    };
    let result = if settings.engines <= 1 {
        match (ios.into_iter().next(), ctls.into_iter().next()) {
            (Some(io), Some(ctl)) => {
                let units = ingest.as_ref().map_or(Units::Synthetic, Units::Ingest);
                run_engine(&shared, 0, io, ctl, units, &mut should_stop, None)
            }
            // open_engine_io and channels_for make one of each.
            _ => Err(DaemonError::Io {
                mode: settings.io,
                detail: "no packet I/O".into(),
            }),
        }
    } else {
        run_engines(&shared, ios, ctls, ingest.as_ref(), &mut should_stop)
    };
    // The engines and their sockets are gone; the programs go with their last socket.
    drop(steering);
    if let Some(i) = ingest {
        i.stop();
    }
    control.stop();
    result
}

/// One engine's loop: events, links, knobs, latency, stop and drain, units, telemetry.
/// `index` is the engine's number among `shared.settings.engines`; `lowest`, with several
/// engines, is where it keeps its lowest open session id for the [`Router`].
fn run_engine(
    shared: &Shared<'_>,
    index: usize,
    io: AnyIo,
    mut ctl: camp_control::Engine,
    units: Units<'_>,
    should_stop: &mut dyn FnMut() -> bool,
    lowest: Option<&AtomicU64>,
) -> Result<DaemonReport, DaemonError> {
    let settings = shared.settings;
    let engines = settings.engines;
    let ids = EngineIds {
        engine: u8::try_from(index).unwrap_or(u8::MAX),
        several: engines > 1,
    };
    let mut report = DaemonReport {
        io: format!("{:?}", io.kind()).to_lowercase(),
        engines: 1,
        ..DaemonReport::default()
    };
    let qlog_dir = settings.qlog_dir.as_deref().map(|d| {
        if engines > 1 {
            d.join(format!("engine-{index}"))
        } else {
            d.to_path_buf()
        }
    });
    let epoch = Instant::now();
    let mut seed = seed_bytes();
    seed[31] ^= index as u8;
    let node = Server::new(
        ServerConfig {
            camp: CampConfig {
                join_timeout: settings.access.hello_timeout,
                qlog: qlog_dir
                    .as_deref()
                    .map(crate::qlog::path_sinks)
                    .transpose()
                    .map_err(DaemonError::Qlog)?,
                unit_log: if qlog_dir.is_some() {
                    UNIT_LOG_EVENTS
                } else {
                    0
                },
                ..CampConfig::default()
            },
            local_addrs: settings.local_addrs(),
            crypto: Arc::clone(&shared.crypto),
            scheduler: shared.choice.factory(),
            rng_seed: seed,
            lb: settings.lb_for_engine(index),
        },
        epoch,
    );
    let choice = &shared.choice;
    let mut node = node;
    // The CAMP-level unit log next to quinn's per-path qlog (`camp-units.sqlog`).
    let mut unit_qlog = match &qlog_dir {
        Some(d) => Some(
            crate::qlog::QlogWriter::create_for(
                &d.join("camp-units.sqlog"),
                &format!("campd engine {index}: units and paths"),
                "server",
                "campd",
            )
            .map_err(DaemonError::Qlog)?,
        ),
        None => None,
    };
    node.set_edge_limits(epoch, settings.access.edge);
    let mut ingest_limiter = crate::access::IngestLimiter::new(&settings.access);
    let xdp_stats = match &io {
        AnyIo::Xdp(x) => x.stats_handles().unwrap_or_else(|e| {
            tracing::warn!("campd: XDP counters unavailable: {e}");
            Vec::new()
        }),
        AnyIo::Udp(_) => Vec::new(),
    };
    let mut xdp = XdpTelemetry::new(xdp_stats);
    let mut engine = Engine::new(
        node,
        io,
        EngineConfig {
            busy_poll: settings.busy_poll,
            core: settings.core_of(index),
            ..EngineConfig::default()
        },
    );
    let clock = engine.node().clock();
    let mut in_force = initial_settings(settings);
    engine.node_mut().set_coupled_cc(settings.coupled_cc);
    let payload = vec![0x5A_u8; MAX_SYNTHETIC_UNIT];
    let want_paths = settings.addresses.len().clamp(1, 2);
    let mut feeds: BTreeMap<SessionId, Feed> = BTreeMap::new();
    let mut due: DueQueue<SessionId> = DueQueue::default();
    let mut due_now: Vec<(SessionId, Token)> = Vec::new();
    let mut last_snapshot: Option<Instant> = None;
    let mut last_stop_check = epoch;
    let mut drain_until: Option<Instant> = None;
    let mut last_skew: BTreeMap<SessionId, u32> = BTreeMap::new();
    let mut waiting: std::collections::VecDeque<IngestUnit> = std::collections::VecDeque::new();
    let nic_of = |a: SocketAddr| settings.nic_of(a);
    // The followed addresses, by LinkWatch index: the configured ones, then those a
    // `nic add` served.
    let mut link_ips: Vec<IpAddr> = settings.addresses.clone();
    let mut links = if settings.follow_links {
        match camp_xdp::links::LinkWatch::open(&link_ips) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("campd: not following links (rtnetlink: {e})");
                None
            }
        }
    } else {
        None
    };
    let mut link_changes = Vec::new();

    let end = engine.run_until_io(
        epoch + Duration::from_secs(10 * 365 * 86_400),
        |node, io, now| {
            // Events.
            let now_us = clock.micros(now);
            let mut opened_or_closed = false;
            while let Some(ev) = node.poll_event() {
                match ev {
                    ServerEvent::SessionOpened(s) => {
                        report.sessions += 1;
                        opened_or_closed = true;
                        feeds.insert(
                            s,
                            Feed {
                                opened: now,
                                opened_us: now_us,
                                joined: 0,
                                plan: Vec::new(),
                                next: 0,
                                turns_done: 0,
                                due: 0,
                                ingest_base_us: None,
                                ingest_open: [false; Modality::COUNT],
                            },
                        );
                    }
                    ServerEvent::PathJoined(s, p) => {
                        report.paths_joined += 1;
                        tracing::info!("campd: session {} path {} joined", ids.global(s), p.0);
                        if let Some(f) = feeds.get_mut(&s) {
                            f.joined += 1;
                            // The feed may be ready now: look at it on this iteration.
                            f.due = due.schedule(now_us, s);
                        }
                    }
                    ServerEvent::SessionClosed(s) => {
                        opened_or_closed = true;
                        feeds.remove(&s);
                        ingest_limiter.forget(s.to_bits());
                        last_skew.remove(&s);
                    }
                    ServerEvent::JoinRefused(why) => {
                        tracing::info!("campd: JOIN refused: {why:?}");
                    }
                    ServerEvent::PathClosed(..) => {}
                }
            }
            while let Some(e) = node.poll_unit_event() {
                match &mut unit_qlog {
                    Some(q) => {
                        let (name, data) = crate::qlog::unit_event(&e, ids.global(e.session));
                        if let Err(err) = q.event(e.time_us, &name, data) {
                            tracing::warn!("campd: unit log: {err}; no longer written");
                            unit_qlog = None;
                        }
                    }
                    None => report.unit_log_lost += 1,
                }
            }
            if opened_or_closed && let Some(l) = lowest {
                let first = feeds.keys().next().map_or(NO_SESSION, |s| ids.global(*s));
                l.store(first, Ordering::Relaxed);
            }

            // Links of the served addresses.
            if let Some(w) = &mut links {
                if let Err(e) = w.poll_due(now, &mut link_changes) {
                    tracing::warn!("campd: rtnetlink failed, no longer following links: {e}");
                    links = None;
                }
                for c in link_changes.drain(..) {
                    let Some(&ip) = link_ips.get(c.local) else {
                        continue;
                    };
                    if c.usable {
                        if node.local_link_up(now, ip) {
                            report.link_ups += 1;
                            tracing::info!("campd: link of {ip} is up again, advertised");
                        }
                    } else if !node.is_local_link_down(ip) {
                        let n = node.local_link_down(now, ip);
                        report.link_downs += 1;
                        report.paths_lost_to_links += n as u64;
                        tracing::info!("campd: link of {ip} went down: {n} paths abandoned");
                    }
                }
            }

            // Knobs.
            ctl.knobs.drain(|k| {
                let applied = match k {
                    Knob::NicAdd { .. } | Knob::NicRemove { .. } if engines > 1 => {
                        if index == 0 {
                            tracing::warn!(
                                "campd: nic add/remove: not with several engines (each \
                                 address needs a steered socket group of its own)"
                            );
                        }
                        false
                    }
                    Knob::NicAdd { ifname, address } => {
                        let added = nic_add(node, io, settings.port, ifname, address, &mut report);
                        if added && let Some(w) = &mut links {
                            follow_new_addrs(node, w, &mut link_ips, ifname);
                        }
                        added
                    }
                    Knob::NicRemove { ifname } => nic_remove(node, io, now, ifname, &mut report),
                    k => apply_knob(node, now, k, ids, choice, &mut in_force),
                };
                if applied {
                    report.knobs_applied += 1;
                } else {
                    report.knobs_ignored += 1;
                }
            });
            // Latency of acknowledged units, into this interval's histograms.
            while let Some(l) = node.poll_latency() {
                ctl.histos.record_latency(l.modality, l.lateness_us);
                report.latency_samples += 1;
            }
            ctl.histos.poll_swap();

            // Stop signal.
            if now.duration_since(last_stop_check) >= STOP_CHECK_EVERY {
                last_stop_check = now;
                if should_stop() {
                    if drain_until.is_some() {
                        tracing::warn!("campd: second signal, stopping without draining");
                        return Tick::Stop;
                    }
                    if index == 0 {
                        tracing::info!(
                            "campd: shutting down, draining for up to {:?}",
                            settings.drain
                        );
                    }
                    report.drained = true;
                    drain_until = Some(now + settings.drain);
                    if let Units::Ingest(i) = &units {
                        i.close();
                    }
                }
            }

            // Units.
            let mut wake = None;
            if drain_until.is_none() {
                let incoming = match &units {
                    Units::Ingest(i) => Some(i.units()),
                    Units::Routed(rx) => Some(rx),
                    Units::Synthetic => None,
                };
                if let Some(incoming) = incoming {
                    // Units for "any session" sent before the first session wait for it.
                    while !feeds.is_empty()
                        && let Some(u) = waiting.pop_front()
                    {
                        feed_ingest(
                            node,
                            now,
                            now_us,
                            &mut feeds,
                            &u,
                            ids,
                            &mut report,
                            &mut ingest_limiter,
                        );
                    }
                    while let Ok(u) = incoming.try_recv() {
                        if u.session.is_none() && feeds.is_empty() {
                            if waiting.len() < crate::ingest::QUEUE {
                                waiting.push_back(u);
                            } else {
                                report.ingest_unrouted += 1;
                            }
                            continue;
                        }
                        feed_ingest(
                            node,
                            now,
                            now_us,
                            &mut feeds,
                            &u,
                            ids,
                            &mut report,
                            &mut ingest_limiter,
                        );
                    }
                } else {
                    // Only the sessions that are due: idle ones cost nothing here.
                    due.take_due(now_us, &mut due_now);
                    for (sid, token) in due_now.drain(..) {
                        let Some(f) = feeds.get_mut(&sid).filter(|f| f.due == token) else {
                            continue;
                        };
                        f.due = 0;
                        let next = feed_synthetic(
                            node,
                            now,
                            now_us,
                            sid,
                            f,
                            settings,
                            ids,
                            want_paths,
                            &payload,
                            &mut report,
                        );
                        if let Some(at) = next {
                            f.due = due.schedule(at, sid);
                        }
                    }
                    wake = due.next_at();
                }
            }

            // Telemetry, every SNAPSHOT_EVERY (a walk over the sessions, so never per loop
            // iteration). A session's skew p95 changes with its FEEDBACK reports, which
            // come no more often than that.
            if last_snapshot.is_none_or(|t| now.duration_since(t) >= SNAPSHOT_EVERY) {
                last_snapshot = Some(now);
                for s in node.sessions() {
                    if let Some(fb) = node.feedback(s)
                        && last_skew.get(&s) != Some(&fb.skew_p95_us)
                    {
                        last_skew.insert(s, fb.skew_p95_us);
                        ctl.histos.record_skew(u64::from(fb.skew_p95_us));
                    }
                }
                report.snapshots += 1;
                xdp.refresh(now);
                publish(
                    &mut ctl.snapshots,
                    node,
                    ids,
                    &in_force,
                    &nic_of,
                    &xdp,
                    ingest_limiter.refused,
                );
            }

            // Drain.
            if let Some(until) = drain_until {
                let idle = node
                    .sessions()
                    .all(|s| node.unacked_reliable(s) == 0 && node.pending_units(s) == 0);
                if idle {
                    report.drain_complete = true;
                    return Tick::Stop;
                }
                if now >= until {
                    tracing::warn!("campd: drain limit reached with reliable units unacknowledged");
                    return Tick::Stop;
                }
            }
            let next_snapshot = last_snapshot.map(|t| t + SNAPSHOT_EVERY);
            // While sessions are open a link change is read within `links::POLL_EVERY`;
            // with none, at the next wake (nothing to fail over then).
            let next_links = links
                .as_ref()
                .filter(|_| node.sessions().next().is_some())
                .and_then(camp_xdp::links::LinkWatch::next_poll);
            match [wake.map(|us| clock.instant(us)), next_snapshot, next_links]
                .into_iter()
                .flatten()
                .min()
            {
                Some(t) => Tick::WakeAt(t),
                None => Tick::Continue,
            }
        },
    );
    let counters: EngineCounters = engine.counters();
    report.rx_datagrams = counters.rx_datagrams;
    report.tx_transmits = counters.tx_transmits;
    report.unit_log_lost += engine.node().unit_log_overflowed();
    if let Some(q) = unit_qlog.take() {
        match q.finish() {
            Ok(n) => report.unit_log_events = n,
            Err(e) => tracing::warn!("campd: unit log: {e}"),
        }
    }
    // Dropping the engine drops the I/O, which detaches XDP programs.
    drop(engine);
    match end? {
        RunEnd::Stopped | RunEnd::Deadline => Ok(report),
    }
}

fn seed_bytes() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let t = unix_time_us() ^ (u64::from(std::process::id()) << 32);
    for (i, b) in seed.iter_mut().enumerate() {
        *b = (t.rotate_left(i as u32 * 7) as u8) ^ (i as u8);
    }
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(session: Option<u64>, sync_index: u32) -> IngestUnit {
        IngestUnit {
            session,
            modality: Modality::Audio,
            sync_index,
            media_us: 0,
            payload: vec![1],
            flags: camp_wire::UnitFlags::empty(),
            capture_id: 0,
            deadline_us: 0,
        }
    }

    #[test]
    fn ingest_units_reach_the_engine_of_their_session() {
        let (tx, units) = sync_channel(16);
        let (to0, in0) = sync_channel(2);
        let (to1, in1) = sync_channel(2);
        let lowest = [AtomicU64::new(NO_SESSION), AtomicU64::new(NO_SESSION)];
        let mut r = Router {
            units: &units,
            to: vec![to0, to1],
            lowest: &lowest,
            held: None,
            unrouted: 0,
        };
        // Addressed units go by the engine in their id, whatever is open.
        tx.send(unit(Some(global_session(1, 3)), 1)).unwrap();
        tx.send(unit(Some(global_session(0, 3)), 2)).unwrap();
        tx.send(unit(Some(global_session(5, 0)), 3)).unwrap();
        r.route(Duration::from_millis(5));
        assert_eq!(in1.try_recv().unwrap().sync_index, 1);
        assert_eq!(in0.try_recv().unwrap().sync_index, 2);
        assert_eq!(r.unrouted, 1, "engine 5 does not exist");
        // "Any session" waits while no engine has one, then goes to the lowest id.
        tx.send(unit(None, 4)).unwrap();
        tx.send(unit(None, 5)).unwrap();
        r.route(Duration::from_millis(5));
        assert!(in0.try_recv().is_err() && in1.try_recv().is_err());
        assert!(r.held.is_some(), "held, in order");
        lowest[1].store(global_session(1, 0), Ordering::Relaxed);
        r.route(Duration::from_millis(5));
        let got: Vec<u32> = in1.try_iter().map(|u| u.sync_index).collect();
        assert_eq!(got, vec![4, 5]);
        lowest[0].store(global_session(0, 2), Ordering::Relaxed);
        tx.send(unit(None, 6)).unwrap();
        r.route(Duration::from_millis(5));
        assert_eq!(
            in0.try_recv().unwrap().sync_index,
            6,
            "engine 0's id is lower"
        );
        // A full engine queue holds the unit back (and what follows it) until there is room.
        for i in 7..10 {
            tx.send(unit(Some(global_session(1, 0)), i)).unwrap();
        }
        r.route(Duration::from_millis(5));
        assert_eq!(r.held.as_ref().map(|u| u.sync_index), Some(9));
        assert_eq!(in1.try_recv().unwrap().sync_index, 7);
        r.route(Duration::from_millis(5));
        let got: Vec<u32> = in1.try_iter().map(|u| u.sync_index).collect();
        assert_eq!(got, vec![8, 9]);
        assert_eq!(r.unrouted, 1);
    }

    #[test]
    fn engine_ids_are_the_servers_own_with_one_engine() {
        let s = SessionId::new(3, 2);
        let one = EngineIds {
            engine: 0,
            several: false,
        };
        assert_eq!(one.global(s), s.to_bits());
        assert_eq!(one.local(s.to_bits()), s);
        // Even a slot index past the engine bits maps to itself with one engine.
        let big = SessionId::new(1 << 25, 0);
        assert_eq!(one.local(one.global(big)), big);
        let e1 = EngineIds {
            engine: 1,
            several: true,
        };
        assert_eq!(camp_control::fanin::session_engine(e1.global(s)), 1);
        assert_eq!(e1.local(e1.global(s)), s);
    }

    #[test]
    fn reports_of_engines_sum() {
        let mut a = DaemonReport {
            engines: 1,
            sessions: 2,
            units_submitted: [1, 2, 3],
            drained: true,
            drain_complete: true,
            ..DaemonReport::default()
        };
        let b = DaemonReport {
            engines: 1,
            sessions: 5,
            units_submitted: [10, 20, 30],
            drained: true,
            drain_complete: false,
            rx_datagrams: 7,
            ..DaemonReport::default()
        };
        a.absorb(&b);
        assert_eq!((a.engines, a.sessions, a.rx_datagrams), (2, 7, 7));
        assert_eq!(a.units_submitted, [11, 22, 33]);
        assert!(a.drained && !a.drain_complete);
    }

    #[test]
    fn scheduler_choice_swaps_the_factory_output() {
        let c = SchedulerChoice::new(SchedulerKind::Camp);
        let f = c.factory();
        assert_eq!(f().name(), SchedulerKind::Camp.name());
        c.set(SchedulerKind::MinRtt);
        assert_eq!(c.get(), SchedulerKind::MinRtt);
        assert_eq!(f().name(), SchedulerKind::MinRtt.name());
    }
}
