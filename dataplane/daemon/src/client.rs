//! camp-client: one receiver session over several local addresses (kernel UDP), presenting
//! units as the alignment buffer plays them out, then summarising the receiver's metrics.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use camp_engine::{Engine, EngineConfig, Tick};
use camp_proto::client::{Client, ClientConfig, ClientEvent, PathSpec};
use camp_proto::config::{AdvertPolicy, CampConfig, PathUsage};
use camp_recv::ReceiverConfig;
use camp_wire::{Modality, Reliability, UnitFlags};
use camp_xdp::UdpIo;
use clap::Parser;
use serde::Serialize;

/// After every reliable modality seen has ended its turn, wait this long for the others.
const LOSSY_TAIL: Duration = Duration::from_secs(1);
/// Time given to the close handshake at the end.
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// camp-client flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "camp-client",
    about = "CAMP test receiver: joins one session over several paths and reports its metrics",
    version
)]
pub struct ClientArgs {
    /// Local address of a path, `IP` or `IP:PORT` (repeat; pairs with --server in order).
    #[arg(long = "local", required = true)]
    pub locals: Vec<String>,
    /// Server address of a path (repeat, same count as --local).
    #[arg(long = "server", required = true)]
    pub servers: Vec<SocketAddr>,
    /// Certificate to trust (PEM or DER; campd --cert-out writes one).
    #[arg(long)]
    pub ca: PathBuf,
    /// Name the server certificate is checked against.
    #[arg(long, default_value = "camp.test")]
    pub server_name: String,
    /// Local port for addresses given without one.
    #[arg(long, default_value_t = 5000)]
    pub local_port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Write a per-unit arrival CSV here.
    #[arg(long)]
    pub arrivals: Option<PathBuf>,
    /// Print the summary as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    pub keylog: bool,
    /// Hand every presented unit to a renderer at its presentation time: `stdout` (or `-`)
    /// and `unix:PATH` write the CPRS record stream (docs/wire-format.md §9), `dir:PATH`
    /// one payload file and one CSV index per modality. With `stdout` the summary goes to
    /// stderr.
    #[arg(long, value_name = "SINK")]
    pub present: Option<camp_present::SinkTarget>,
    /// Write CAMP-level qlog events (session, paths, playout delay, every presented unit)
    /// to this file as qlog JSON-SEQ.
    #[arg(long, value_name = "FILE")]
    pub qlog: Option<PathBuf>,
    /// Write quinn's QUIC qlog of every path connection (JSON-SEQ, for qvis) into this
    /// directory, one file per connection: `client-<n>-<server>.sqlog`.
    #[arg(long, value_name = "DIR")]
    pub qlog_dir: Option<PathBuf>,
    /// Behind a QUIC-LB balancer: connect the first path alone and the others once the
    /// session is up, with an Initial CID made from the server's so the balancer sends them
    /// to the same server (docs/scale-out.md).
    #[arg(long)]
    pub routed_joins: bool,
    /// Leave a path lost to the network lost. By default it is connected and JOINed again
    /// (back-off from twice its RTT, doubling, 50 ms to 5 s) while another path holds the
    /// session.
    #[arg(long)]
    pub no_reconnect: bool,
    /// What to do with the addresses the server advertises: `none` (record them), `all`
    /// (a path from every local address to every advertised one) or
    /// `one-per-local-interface` (a local address left without a path opens one). Paths to
    /// a withdrawn address are abandoned under `all` and `one-per-local-interface`.
    #[arg(long, value_name = "POLICY", default_value = "none", value_parser = parse_advert_policy)]
    pub advertised_paths: AdvertPolicy,
    /// How to use the paths (MP-DCCP §4.9): `concurrent` (every path carries units, the
    /// scheduler picks per unit) or `mobility` (the first configured path that is up
    /// carries the session, the others wait on standby and take over when it fails).
    #[arg(long, value_name = "MODE", default_value = "concurrent", value_parser = parse_path_usage)]
    pub path_usage: PathUsage,
    /// Do not follow the local interfaces over rtnetlink. By default a path whose local
    /// address loses its link (carrier, interface down, address removed) is abandoned at
    /// once and JOINed again when the link returns.
    #[arg(long)]
    pub no_follow_links: bool,
    /// Do not open paths from local addresses that appear while running. By default (when
    /// following links) an address configured on an interface after the start (a new
    /// interface, a second SIM) gets a path to the server address of its family, bound to
    /// `--local-port`; loopback, link-local and unspecified addresses are left alone.
    #[arg(long)]
    pub no_new_interfaces: bool,
    /// Log level of stderr: error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub log_level: camp_control::knobs::LogLevel,
}

/// Why camp-client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientRunError {
    /// Flags inconsistent.
    #[error("{0}")]
    Args(String),
    /// TLS setup.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    /// Sockets.
    #[error("opening UDP sockets: {0}")]
    Udp(#[from] camp_xdp::UdpError),
    /// The client refused its configuration.
    #[error("client: {0}")]
    Client(#[from] camp_proto::client::ClientError),
    /// The engine loop failed.
    #[error("engine: {0}")]
    Engine(#[from] camp_engine::EngineError),
    /// No path brought the session up (timeout, or every path closed first).
    #[error("session did not start: {0}")]
    SessionFailed(camp_proto::client::StartError),
    /// The presentation sink failed.
    #[error("--present: {0}")]
    Present(#[from] camp_present::SinkError),
    /// Writing the qlog file failed.
    #[error("--qlog {path}: {source}")]
    Qlog {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the arrival CSV failed.
    #[error("writing {path}: {source}")]
    Arrivals {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// One modality's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModalityReport {
    /// Name.
    pub modality: String,
    /// Units presented.
    pub presented: u64,
    /// Units skipped (late droppable units).
    pub skipped: u64,
    /// Units the sender sent in the turn as far as the receiver can tell (last seq + 1).
    pub expected: u64,
    /// Reliable modality: expected units never presented.
    pub lost: u64,
    /// The END_OF_TURN unit was played out.
    pub end_of_turn: bool,
    /// Latency `L` (arrival − generation), µs.
    pub latency_mean_us: f64,
    /// Median latency, µs.
    pub latency_p50_us: u64,
    /// p95 latency, µs.
    pub latency_p95_us: u64,
    /// p99 latency, µs.
    pub latency_p99_us: u64,
    /// Units past their deadline.
    pub deadline_misses: u64,
}

/// The receiver's summary at the end of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientSummary {
    /// Paths that joined the session.
    pub paths_joined: usize,
    /// Why the run ended: `end_of_turn` or `seconds`.
    pub ended_by: String,
    /// Wall time, ms.
    pub duration_ms: u64,
    /// Per modality.
    pub modalities: Vec<ModalityReport>,
    /// Text and audio units never presented.
    pub reliable_lost: u64,
    /// `C` (mean inter-modal skew), µs.
    pub skew_c_us: f64,
    /// p95 skew, µs.
    pub skew_p95_us: u64,
    /// p99 skew, µs.
    pub skew_p99_us: u64,
    /// Share of A/V indices outside ATSC IS-191.
    pub outside_is191: f64,
    /// Share of A/V indices outside ITU-R BT.1359.
    pub outside_bt1359: f64,
    /// Units played out per path id.
    pub units_per_path: BTreeMap<u32, u64>,
    /// Datagrams received.
    pub rx_datagrams: u64,
    /// Paths connected again after their connection was lost or their link returned.
    pub reconnects: u64,
    /// `--path-usage mobility`: times a standby path was made the active one.
    pub handovers: u64,
    /// Local links reported down by rtnetlink while a path used them.
    pub link_downs: u64,
    /// Local links reported up again.
    pub link_ups: u64,
    /// Paths opened from local addresses that appeared while running.
    pub local_paths_added: u64,
    /// Per link-down event: ms from reading the notification to the first text or audio
    /// unit that arrived on another path (`null` if none did).
    pub failover_ms: Vec<Option<f64>>,
    /// Per link-up event: ms from reading the notification to the path's JOIN_OK (`null`
    /// if it did not join before the link went down again or the run ended).
    pub rejoin_ms: Vec<Option<f64>>,
}

impl ClientSummary {
    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "paths joined {}, ended by {}, {} ms, reliable lost {}\n",
            self.paths_joined, self.ended_by, self.duration_ms, self.reliable_lost
        );
        s.push_str(
            "modality  presented skipped expected lost  L mean   p50     p95     p99    (µs)  misses\n",
        );
        for m in &self.modalities {
            s.push_str(&format!(
                "{:<9} {:>9} {:>7} {:>8} {:>4} {:>8.0} {:>7} {:>7} {:>7}        {:>6}\n",
                m.modality,
                m.presented,
                m.skipped,
                m.expected,
                m.lost,
                m.latency_mean_us,
                m.latency_p50_us,
                m.latency_p95_us,
                m.latency_p99_us,
                m.deadline_misses
            ));
        }
        s.push_str(&format!(
            "skew C {:.0} µs, p95 {} µs, p99 {} µs; outside IS-191 {:.1} %, outside BT.1359 {:.1} %\n",
            self.skew_c_us,
            self.skew_p95_us,
            self.skew_p99_us,
            self.outside_is191 * 100.0,
            self.outside_bt1359 * 100.0
        ));
        let per_path: Vec<String> = self
            .units_per_path
            .iter()
            .map(|(p, n)| format!("path {p}: {n}"))
            .collect();
        s.push_str(&format!("units per path: {}\n", per_path.join(", ")));
        s
    }
}

fn parse_local(s: &str, default_port: u16) -> Result<SocketAddr, ClientRunError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| ClientRunError::Args(format!("--local {s:?}: not an IP or IP:PORT")))
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    any: bool,
    presented: u64,
    skipped: u64,
    max_seq: Option<u64>,
    eot_seq: Option<u64>,
}

/// Runs one session to the end of its turn (or `--seconds`) and summarises it; with
/// `--present` every presented unit also goes to that sink.
pub fn run_client(args: &ClientArgs) -> Result<ClientSummary, ClientRunError> {
    let Some(target) = &args.present else {
        return run_client_with(args, |_| Ok(()));
    };
    let mut sink = camp_present::PresentSink::open(target)?;
    let summary = run_client_with(args, |r| sink.present(r))?;
    sink.close()?;
    Ok(summary)
}

/// Like [`run_client`] (ignoring `--present`), but calls `on_present` with every unit the
/// alignment buffer plays out, at its presentation time, skipped video included (flagged:
/// a decoder may need it as a reference). An error from `on_present` ends the run.
pub fn run_client_with(
    args: &ClientArgs,
    mut on_present: impl FnMut(&camp_present::PresentRecord<'_>) -> Result<(), camp_present::SinkError>,
) -> Result<ClientSummary, ClientRunError> {
    if args.locals.len() != args.servers.len() {
        return Err(ClientRunError::Args(format!(
            "{} --local but {} --server: give them in pairs",
            args.locals.len(),
            args.servers.len()
        )));
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 86_400.0) {
        return Err(ClientRunError::Args(format!(
            "--seconds {}: expected 0 < s <= 86400",
            args.seconds
        )));
    }
    let locals = args
        .locals
        .iter()
        .map(|l| parse_local(l, args.local_port))
        .collect::<Result<Vec<_>, _>>()?;
    let crypto = crate::tls::client_crypto(&args.ca, args.keylog)?;
    let io = UdpIo::open(&locals)?;
    let start = Instant::now();
    let node = Client::new(
        ClientConfig {
            camp: CampConfig {
                routed_joins: args.routed_joins,
                advertised_paths: args.advertised_paths,
                path_usage: args.path_usage,
                reconnect: if args.no_reconnect {
                    None
                } else {
                    CampConfig::default().reconnect
                },
                qlog: match &args.qlog_dir {
                    Some(dir) => Some(crate::qlog::path_sinks(dir).map_err(|source| {
                        ClientRunError::Qlog {
                            path: dir.clone(),
                            source,
                        }
                    })?),
                    None => None,
                },
                ..CampConfig::default()
            },
            paths: locals
                .iter()
                .zip(&args.servers)
                .map(|(l, r)| PathSpec {
                    local: *l,
                    remote: *r,
                })
                .collect(),
            crypto,
            server_name: args.server_name.clone(),
            receiver: ReceiverConfig {
                arrival_log: args.arrivals.is_some(),
                ..ReceiverConfig::default()
            },
            rng_seed: seed_bytes(),
            shared_clock: false,
        },
        start,
        start,
    )?;
    let mut links = if args.no_follow_links {
        None
    } else {
        let ips: Vec<std::net::IpAddr> = locals.iter().map(SocketAddr::ip).collect();
        match camp_xdp::links::LinkWatch::open(&ips) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("camp-client: not following links (rtnetlink: {e})");
                None
            }
        }
    };
    let mut link_changes = Vec::new();
    // Which path slot each followed address belongs to (the configured paths first, then
    // paths opened from addresses that appeared), and addresses waiting for the session.
    let mut watched_slot: Vec<usize> = (0..locals.len()).collect();
    let mut appeared: Vec<(std::net::IpAddr, u32)> = Vec::new();
    let follow_new = !args.no_new_interfaces;
    let servers = args.servers.clone();
    let local_port = args.local_port;
    let mut failover = Failover::default();
    let mut engine = Engine::new(node, io, EngineConfig::default());
    let mut joined = 0usize;
    let mut seen = [Seen::default(); Modality::COUNT];
    let mut per_path: BTreeMap<u32, u64> = BTreeMap::new();
    let mut reliable_done_at: Option<Instant> = None;
    let mut ended_by = "seconds";
    let mut present_error = None;
    let qlog_err = |source| ClientRunError::Qlog {
        path: args.qlog.clone().unwrap_or_default(),
        source,
    };
    let mut qlog = match &args.qlog {
        Some(path) => Some(crate::qlog::QlogWriter::create(path, "camp-client").map_err(qlog_err)?),
        None => None,
    };
    let mut qlog_error = None;
    let mut start_error = None;
    let mut playout_delay_us = None;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    engine.run_until_io(deadline, |node, io, now| {
        let now_us = node.clock().micros(now);
        while let Some(ev) = node.poll_event() {
            if let ClientEvent::PathJoined { slot, id } = ev {
                tracing::info!("camp-client: path {slot} joined as path id {}", id.0);
                joined += 1;
                failover.joined(slot, id, now_us);
            }
            if let ClientEvent::SessionFailed(why) = &ev {
                start_error = Some(*why);
            }
            if let Some(q) = &mut qlog {
                let (name, data) = match ev {
                    ClientEvent::SessionEstablished => {
                        ("camp:session_established", serde_json::json!({}))
                    }
                    ClientEvent::PathJoined { slot, id } => (
                        "camp:path_joined",
                        serde_json::json!({"slot": slot, "path_id": id.0}),
                    ),
                    ClientEvent::PathClosed { slot } => {
                        ("camp:path_closed", serde_json::json!({"slot": slot}))
                    }
                    ClientEvent::SessionClosed => ("camp:session_closed", serde_json::json!({})),
                    ClientEvent::SessionFailed(why) => (
                        "camp:session_failed",
                        serde_json::json!({"reason": why.to_string()}),
                    ),
                    ClientEvent::AddressAdded { id, addr } => (
                        "camp:address_added",
                        serde_json::json!({"address_id": id, "addr": addr.to_string()}),
                    ),
                    ClientEvent::AddressRemoved { id } => (
                        "camp:address_removed",
                        serde_json::json!({"address_id": id}),
                    ),
                };
                if let Err(e) = q.event(now_us, name, data) {
                    qlog_error = Some(e);
                    return Tick::Stop;
                }
            }
        }
        if start_error.is_some() {
            return Tick::Stop;
        }
        if let Some(w) = &mut links {
            if let Err(e) = w.poll_due(now, &mut link_changes) {
                tracing::warn!("camp-client: rtnetlink failed, no longer following links: {e}");
                links = None;
            }
            for c in link_changes.drain(..) {
                let Some(&slot) = watched_slot.get(c.local) else {
                    continue;
                };
                if c.usable {
                    if node.local_link_up(now, slot) {
                        tracing::info!("camp-client: link of path {slot} is up again");
                        failover.link_up(slot, now_us);
                    }
                } else if node.local_link_down(now, slot) {
                    tracing::info!("camp-client: link of path {slot} went down");
                    failover.link_down(slot, now_us);
                }
            }
            if follow_new && let Some(w) = &mut links {
                w.take_new_addresses(&mut appeared);
                appeared.retain(|&(ip, ifindex)| {
                    match open_new_path(node, io, now, ip, local_port, &servers) {
                        NewPath::Opened(slot) => {
                            let i = w.watch(ip, ifindex);
                            if watched_slot.len() == i {
                                watched_slot.push(slot);
                            }
                            tracing::info!("camp-client: new local address {ip}: path {slot}");
                            false
                        }
                        NewPath::Later => true,
                        NewPath::Skipped => false,
                    }
                });
            }
        }
        failover.scan(node.receiver_mut());
        if let Some(q) = &mut qlog {
            let d = node.receiver_mut().playout_delay_us();
            if playout_delay_us != Some(d) {
                playout_delay_us = Some(d);
                let data = serde_json::json!({"playout_delay_us": d});
                if let Err(e) = q.event(now_us, "camp:playout_delay_updated", data) {
                    qlog_error = Some(e);
                    return Tick::Stop;
                }
            }
        }
        while let Some(p) = node.poll_playout(now) {
            let record = camp_present::PresentRecord::from_played(&p);
            if let Some(q) = &mut qlog {
                let data = crate::qlog::unit_presented(&record);
                if let Err(e) = q.event(now_us, "camp:unit_presented", data) {
                    qlog_error = Some(e);
                    return Tick::Stop;
                }
            }
            if let Err(e) = on_present(&record) {
                present_error = Some(e);
                return Tick::Stop;
            }
            let s = &mut seen[p.meta.modality.index()];
            s.any = true;
            if p.skipped {
                s.skipped += 1;
            } else {
                s.presented += 1;
                *per_path.entry(p.path.0).or_default() += 1;
            }
            s.max_seq = Some(s.max_seq.map_or(p.meta.seq, |m| m.max(p.meta.seq)));
            if p.meta.flags.contains(UnitFlags::END_OF_TURN) {
                s.eot_seq = Some(p.meta.seq);
            }
        }
        let all_ended =
            seen.iter().any(|s| s.any) && seen.iter().all(|s| !s.any || s.eot_seq.is_some());
        if all_ended {
            ended_by = "end_of_turn";
            return Tick::Stop;
        }
        let reliable_ended = Modality::ALL
            .iter()
            .filter(|m| m.default_reliability() == Reliability::Reliable)
            .map(|m| seen[m.index()])
            .filter(|s| s.any)
            .all(|s| s.eot_seq.is_some())
            && seen.iter().any(|s| s.any && s.eot_seq.is_some());
        if reliable_ended {
            let t = *reliable_done_at.get_or_insert(now);
            if now.duration_since(t) >= LOSSY_TAIL {
                ended_by = "end_of_turn";
                return Tick::Stop;
            }
        }
        Tick::Continue
    })?;
    let duration = start.elapsed();
    if let Some(e) = start_error {
        return Err(ClientRunError::SessionFailed(e));
    }
    if let Some(e) = present_error {
        return Err(e.into());
    }
    if let Some(e) = qlog_error {
        return Err(qlog_err(e));
    }
    if let Some(q) = qlog {
        q.finish().map_err(qlog_err)?;
    }
    // Say goodbye so the server's paths close promptly.
    engine.node_mut().close(Instant::now());
    let _ = engine.run_for(CLOSE_GRACE, |_, _| Tick::Continue);
    let rx_datagrams = engine.counters().rx_datagrams;
    let node = engine.node_mut();
    let counters = *node.counters();
    let now_us = node.clock().micros(Instant::now());
    let receiver = node.receiver_mut();
    receiver.finish(now_us);
    let summary = receiver.summary();
    if let Some(path) = &args.arrivals {
        write_arrivals(path, &receiver.take_arrival_log())?;
    }
    let mut modalities = Vec::new();
    let mut reliable_lost = 0;
    for m in Modality::ALL {
        let s = seen[m.index()];
        let ms = &summary.per_modality[m.index()];
        let expected = s.eot_seq.or(s.max_seq).map_or(0, |q| q + 1);
        let lost = if m.default_reliability() == Reliability::Reliable {
            expected.saturating_sub(s.presented)
        } else {
            0
        };
        reliable_lost += lost;
        modalities.push(ModalityReport {
            modality: m.to_string(),
            presented: s.presented,
            skipped: s.skipped,
            expected,
            lost,
            end_of_turn: s.eot_seq.is_some(),
            latency_mean_us: ms.latency.mean_us,
            latency_p50_us: ms.latency.p50_us,
            latency_p95_us: ms.latency.p95_us,
            latency_p99_us: ms.latency.p99_us,
            deadline_misses: ms.deadline_misses,
        });
    }
    Ok(ClientSummary {
        paths_joined: joined,
        ended_by: ended_by.to_owned(),
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        modalities,
        reliable_lost,
        skew_c_us: summary.skew_c_us,
        skew_p95_us: summary.skew_p95_us,
        skew_p99_us: summary.skew_p99_us,
        outside_is191: summary.outside_is191,
        outside_bt1359: summary.outside_bt1359,
        units_per_path: per_path,
        rx_datagrams,
        reconnects: counters.reconnects,
        handovers: counters.handovers,
        link_downs: counters.link_downs,
        link_ups: counters.link_ups,
        local_paths_added: counters.local_paths_added,
        failover_ms: failover.done,
        rejoin_ms: failover.rejoined,
    })
}

/// What became of a local address that appeared.
enum NewPath {
    /// A path was opened from it, on this slot.
    Opened(usize),
    /// The session is not up yet: try again later.
    Later,
    /// Not one to carry a path (loopback, link-local, another family), or it failed.
    Skipped,
}

/// Binds `ip` and opens a path from it to the server address of its family.
fn open_new_path(
    node: &mut Client,
    io: &mut UdpIo,
    now: Instant,
    ip: std::net::IpAddr,
    port: u16,
    servers: &[SocketAddr],
) -> NewPath {
    let link_local = match ip {
        std::net::IpAddr::V4(a) => a.is_link_local(),
        std::net::IpAddr::V6(a) => a.is_unicast_link_local(),
    };
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local {
        return NewPath::Skipped;
    }
    if !servers.iter().any(|s| s.is_ipv4() == ip.is_ipv4()) {
        return NewPath::Skipped;
    }
    if node.session_token().is_none() {
        return NewPath::Later;
    }
    let local = match io.add_address(SocketAddr::new(ip, port)) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("camp-client: new local address {ip}: {e}");
            return NewPath::Skipped;
        }
    };
    match node.add_local_path(now, local) {
        Ok(slot) => NewPath::Opened(slot),
        Err(camp_proto::client::AddPathError::NoSession) => {
            io.remove_address(local);
            NewPath::Later
        }
        Err(e) => {
            io.remove_address(local);
            tracing::info!("camp-client: new local address {ip}: no path ({e})");
            NewPath::Skipped
        }
    }
}

/// Times failovers: from a link-down notification to the first reliable unit that arrives
/// on another path (the receiver's per-path last arrival, read every loop pass while an
/// event is pending; arrivals of one pass share its time, so the first pass that shows one
/// after the event gives its time); and rejoins: from a link-up notification to the slot's
/// JOIN_OK.
#[derive(Default)]
struct Failover {
    /// Path id of each slot once it joined.
    path_of: [Option<camp_wire::PathId>; camp_proto::sched::MAX_PATHS],
    /// Link-down events not matched yet: (index in `done`, session-clock µs, path id).
    pending: Vec<(usize, u64, Option<camp_wire::PathId>)>,
    done: Vec<Option<f64>>,
    /// Per slot: the link-up event waiting for its JOIN_OK (index in `rejoined`, µs).
    rejoining: [Option<(usize, u64)>; camp_proto::sched::MAX_PATHS],
    rejoined: Vec<Option<f64>>,
}

impl Failover {
    fn link_down(&mut self, slot: usize, now_us: u64) {
        let path = self.path_of.get(slot).copied().flatten();
        self.pending.push((self.done.len(), now_us, path));
        self.done.push(None);
        if let Some(r) = self.rejoining.get_mut(slot) {
            *r = None;
        }
    }

    fn link_up(&mut self, slot: usize, now_us: u64) {
        if let Some(r) = self.rejoining.get_mut(slot) {
            *r = Some((self.rejoined.len(), now_us));
            self.rejoined.push(None);
        }
    }

    fn joined(&mut self, slot: usize, id: camp_wire::PathId, now_us: u64) {
        if let Some(p) = self.path_of.get_mut(slot) {
            *p = Some(id);
        }
        if let Some((i, t)) = self.rejoining.get_mut(slot).and_then(Option::take) {
            self.rejoined[i] = Some(now_us.saturating_sub(t) as f64 / 1000.0);
        }
    }

    /// Matches pending events against the latest reliable arrival on the other paths.
    fn scan(&mut self, receiver: &camp_recv::Receiver) {
        let done = &mut self.done;
        self.pending.retain(|&(i, t, path)| {
            match receiver
                .last_reliable_arrival_except(path)
                .filter(|&a| a >= t)
            {
                Some(a) => {
                    done[i] = Some(a.saturating_sub(t) as f64 / 1000.0);
                    false
                }
                None => true,
            }
        });
    }
}

fn write_arrivals(
    path: &std::path::Path,
    log: &[camp_recv::ArrivalRecord],
) -> Result<(), ClientRunError> {
    let err = |source| ClientRunError::Arrivals {
        path: path.to_owned(),
        source,
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(err)?);
    writeln!(
        f,
        "modality,seq,sync_index,path,gen_us,arrival_us,present_us"
    )
    .map_err(err)?;
    for r in log {
        writeln!(
            f,
            "{},{},{},{},{},{},{}",
            r.modality,
            r.seq,
            r.sync_index,
            r.path.0,
            r.gen_us,
            r.arrival_us,
            r.present_us.map(|p| p.to_string()).unwrap_or_default()
        )
        .map_err(err)?;
    }
    f.flush().map_err(err)
}

fn seed_bytes() -> [u8; 32] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = (t.rotate_left(i as u32 * 5) as u8) ^ (i as u8).wrapping_mul(31);
    }
    seed
}

fn parse_advert_policy(s: &str) -> Result<AdvertPolicy, String> {
    AdvertPolicy::from_name(s)
        .ok_or_else(|| format!("{s:?}: expected none, all or one-per-local-interface"))
}

fn parse_path_usage(s: &str) -> Result<PathUsage, String> {
    PathUsage::from_name(s).ok_or_else(|| format!("{s:?}: expected concurrent or mobility"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_take_the_default_port() {
        assert_eq!(
            parse_local("198.18.10.2", 5000).unwrap(),
            "198.18.10.2:5000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_local("198.18.10.2:6000", 5000).unwrap(),
            "198.18.10.2:6000".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_local("nowhere", 5000).is_err());
    }

    #[test]
    fn unpaired_flags_are_refused() {
        let args = ClientArgs::try_parse_from([
            "camp-client",
            "--local",
            "198.18.10.2",
            "--local",
            "198.18.11.2",
            "--server",
            "198.18.10.1:4433",
            "--ca",
            "/nonexistent",
        ])
        .unwrap();
        assert!(matches!(run_client(&args), Err(ClientRunError::Args(_))));
    }

    #[test]
    fn routed_joins_is_a_flag_off_by_default() {
        let base = [
            "camp-client",
            "--local",
            "198.18.10.2",
            "--server",
            "198.18.10.1:4433",
        ];
        let parse = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(&["--ca", "/nonexistent"]);
            v.extend_from_slice(extra);
            ClientArgs::try_parse_from(v).unwrap()
        };
        assert!(!parse(&[]).routed_joins);
        assert!(parse(&["--routed-joins"]).routed_joins);
        assert_eq!(parse(&[]).advertised_paths, AdvertPolicy::None);
        assert_eq!(
            parse(&["--advertised-paths", "one-per-local-interface"]).advertised_paths,
            AdvertPolicy::OnePerLocalInterface
        );
        assert!(ClientArgs::try_parse_from(["camp-client", "--advertised-paths", "some"]).is_err());
        assert_eq!(parse(&[]).path_usage, PathUsage::Concurrent);
        assert_eq!(
            parse(&["--path-usage", "mobility"]).path_usage,
            PathUsage::Mobility
        );
        assert!(ClientArgs::try_parse_from(["camp-client", "--path-usage", "both"]).is_err());
        assert!(!parse(&[]).no_reconnect);
        assert!(parse(&["--no-reconnect"]).no_reconnect);
    }
}
