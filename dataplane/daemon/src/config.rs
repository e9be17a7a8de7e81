//! campd configuration: a TOML file, overridden field by field by command-line flags,
//! resolved into checked [`Settings`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use camp_control::knobs::LogLevel;
use camp_proto::cid::{LbConfig, ServerId};
use camp_proto::config::SchedulerKind;
use camp_xdp::IoMode;
use clap::Parser;
use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("parsing the configuration: {0}")]
    Toml(#[from] toml::de::Error),
    /// No local address to serve on.
    #[error("no local address: give `addresses` in the file or --address")]
    NoAddresses,
    /// `interfaces` and `addresses` differ in length.
    #[error("{interfaces} interfaces but {addresses} addresses: give one address per interface")]
    InterfaceCount {
        /// Interfaces given.
        interfaces: usize,
        /// Addresses given.
        addresses: usize,
    },
    /// An address outside what campd may serve on.
    #[error("invalid value for {field}: {value}")]
    Invalid {
        /// Setting.
        field: &'static str,
        /// Offending value.
        value: String,
    },
    /// Several engines asked for over AF_XDP.
    #[error(
        "engines = {engines} needs io = udp: an AF_XDP socket only sees the frames of its own \
         NIC queue, so engines sharing a NIC would need RSS/ntuple rules steering each \
         engine's connections to its queue, which campd does not set up (kernel UDP steers \
         by connection id instead)"
    )]
    EnginesNeedUdp {
        /// Engines asked for.
        engines: usize,
    },
    /// Neither certificate files nor a self-signed certificate.
    #[error("no certificate: give `cert` and `key`, or `self_signed = true`")]
    NoCertificate,
    /// Certificate files and self-signed together.
    #[error("`cert`/`key` and `self_signed` are exclusive")]
    CertificateConflict,
}

/// The configuration file (every field optional; flags override).
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Local addresses, one per path / NIC.
    pub addresses: Vec<IpAddr>,
    /// Interfaces, in the order of `addresses` (needed for AF_XDP).
    pub interfaces: Vec<String>,
    /// UDP port.
    pub port: Option<u16>,
    /// `xdp`, `udp` or `auto`.
    pub io: Option<String>,
    /// CPU to pin the engine thread to (engine i: core + i).
    pub core: Option<usize>,
    /// Engine threads (1..=64; more than one needs io = "udp").
    pub engines: Option<usize>,
    /// Certificate chain file (PEM or DER).
    pub cert: Option<PathBuf>,
    /// Private key file (PEM or DER PKCS#8).
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate.
    pub self_signed: Option<bool>,
    /// Where to write the self-signed certificate (DER).
    pub cert_out: Option<PathBuf>,
    /// Name in the self-signed certificate.
    pub server_name: Option<String>,
    /// Log TLS secrets to `$SSLKEYLOGFILE`.
    pub keylog: Option<bool>,
    /// Directory for one QUIC qlog file per path connection.
    pub qlog_dir: Option<PathBuf>,
    /// Scheduler of new sessions.
    pub scheduler: Option<String>,
    /// Control socket path (`"none"` or `""` for none).
    pub control_socket: Option<PathBuf>,
    /// Prometheus address (`"off"` for none).
    pub prometheus: Option<String>,
    /// Busy-poll instead of blocking waits.
    pub busy_poll: Option<bool>,
    /// Follow the links of the served addresses over rtnetlink (default true).
    pub follow_links: Option<bool>,
    /// Synthetic turns per session (0 = loop until shutdown).
    pub turns: Option<u32>,
    /// Length of a synthetic turn, ms.
    pub turn_ms: Option<u64>,
    /// Release every synthetic unit at its media time (no LLM/TTS production ahead).
    pub realtime: Option<bool>,
    /// Seed of the synthetic workload.
    pub seed: Option<u64>,
    /// Ingest socket path: units come from it instead of the synthetic workload.
    pub ingest: Option<PathBuf>,
    /// Longest drain at shutdown, seconds.
    pub drain_seconds: Option<u64>,
    /// Log level: error, warn, info, debug or trace.
    pub log_level: Option<String>,
    /// Coupled congestion control (LIA, RFC 6356) across a session's paths.
    pub coupled_cc: Option<bool>,
    /// Group (name or number) of the control and ingest sockets.
    pub socket_group: Option<String>,
    /// Requests per second per control connection (0: no limit).
    pub control_requests_per_second: Option<u32>,
    /// HELLO/JOIN timeout after the handshake, ms.
    pub hello_timeout_ms: Option<u64>,
    /// New handshakes per source address per second (0: no limit).
    pub handshakes_per_source: Option<u32>,
    /// Handshake burst per source.
    pub handshake_burst: Option<u32>,
    /// Open sessions per source address (0: no limit).
    pub sessions_per_source: Option<u32>,
    /// JOIN attempts a session token may receive at once, refilled by as many every 10
    /// minutes (0: no limit).
    pub join_attempts_per_token: Option<u32>,
    /// QUIC Retry: off, always, above:N.
    pub retry: Option<String>,
    /// Ingested units per second per session (0: no limit).
    pub ingest_units_per_second: Option<u32>,
    /// Ingested payload bytes per second per session (0: no limit).
    pub ingest_bytes_per_second: Option<u64>,
    /// Server id (hexadecimal, 1..=15 octets) written into every connection id, for a
    /// QUIC-LB style balancer in front of several campd (docs/scale-out.md).
    pub lb_server_id: Option<String>,
    /// Config rotation codepoint of the connection ids (0..=6, default 0).
    pub lb_config_id: Option<u8>,
    /// Random octets after the server id (4..=18, default 8).
    pub lb_nonce_len: Option<usize>,
}

/// Command-line flags of campd; each overrides the file.
#[derive(Debug, Default, Clone, Parser)]
#[command(name = "campd", about = "CAMP data-plane daemon", version)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Local address (repeat, one per path / NIC).
    #[arg(long = "address", value_name = "IP")]
    pub addresses: Vec<IpAddr>,
    /// Interface (repeat, in the order of --address; needed for AF_XDP).
    #[arg(long = "interface", value_name = "IFNAME")]
    pub interfaces: Vec<String>,
    /// UDP port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Packet I/O: xdp, udp or auto.
    #[arg(long)]
    pub io: Option<String>,
    /// CPU to pin the engine thread to.
    #[arg(long)]
    pub core: Option<usize>,
    /// Certificate chain file (PEM or DER).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// Private key file (PEM or DER PKCS#8).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate.
    #[arg(long)]
    pub self_signed: bool,
    /// Write the self-signed certificate (DER) here, for the client's --ca.
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Name in the self-signed certificate.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Log TLS secrets to the file named by SSLKEYLOGFILE.
    #[arg(long)]
    pub keylog: bool,
    /// Write one QUIC qlog file (JSON-SEQ, for qvis) per path connection into this
    /// directory: `server-<n>-<peer>.sqlog`.
    #[arg(long, value_name = "DIR")]
    pub qlog_dir: Option<PathBuf>,
    /// Scheduler of new sessions (camp, minrtt, ...).
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Control socket path ("none" for none).
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// Prometheus address ("off" for none).
    #[arg(long)]
    pub prometheus: Option<String>,
    /// Busy-poll (on) or block between events (off).
    #[arg(long, value_parser = parse_on_off)]
    pub busy_poll: Option<bool>,
    /// Follow the links of the served addresses over rtnetlink (on, the default): when the
    /// interface of an address loses its link, the paths on it are abandoned at once and
    /// the address is withdrawn from the clients until the link is back.
    #[arg(long, value_parser = parse_on_off)]
    pub follow_links: Option<bool>,
    /// Synthetic turns per session (0 = loop until shutdown).
    #[arg(long)]
    pub turns: Option<u32>,
    /// Length of a synthetic turn, ms.
    #[arg(long)]
    pub turn_ms: Option<u64>,
    /// Release every synthetic unit at its media time, as a live source would (by default
    /// text and TTS audio are released ahead of real time, as an LLM and TTS produce them;
    /// `camp-bench compare --realtime` is the same choice).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub realtime: Option<bool>,
    /// Seed of the synthetic workload.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Ingest socket path (units from JSON lines instead of the synthetic workload).
    #[arg(long)]
    pub ingest: Option<PathBuf>,
    /// Longest drain at shutdown, seconds.
    #[arg(long)]
    pub drain_seconds: Option<u64>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long)]
    pub log_level: Option<String>,
    /// Coupled congestion control (LIA, RFC 6356) across a session's paths: on or off.
    #[arg(long, value_parser = parse_on_off)]
    pub coupled_cc: Option<bool>,
    /// Group (name or gid) of the control and ingest sockets (mode 0660).
    #[arg(long)]
    pub socket_group: Option<String>,
    /// Requests per second per control connection (0: no limit).
    #[arg(long)]
    pub control_requests_per_second: Option<u32>,
    /// A connection must send HELLO or JOIN within this many ms of its handshake.
    #[arg(long)]
    pub hello_timeout_ms: Option<u64>,
    /// New handshakes per source address per second (0: no limit).
    #[arg(long)]
    pub handshakes_per_source: Option<u32>,
    /// Handshakes a source may start at once.
    #[arg(long)]
    pub handshake_burst: Option<u32>,
    /// Open sessions per source address (0: no limit).
    #[arg(long)]
    pub sessions_per_source: Option<u32>,
    /// JOIN attempts a session token may receive at once, refilled by as many every 10
    /// minutes (0: no limit).
    #[arg(long)]
    pub join_attempts_per_token: Option<u32>,
    /// QUIC Retry (address validation): off, always or above:N attempts per second.
    #[arg(long)]
    pub retry: Option<String>,
    /// Ingested units per second per session (0: no limit).
    #[arg(long)]
    pub ingest_units_per_second: Option<u32>,
    /// Ingested payload bytes per second per session (0: no limit).
    #[arg(long)]
    pub ingest_bytes_per_second: Option<u64>,
    /// Engine threads, each with its own share of the sessions (1..=64; >1 needs --io udp
    /// and routable connection ids, turned on with server id 00 unless --lb-server-id).
    #[arg(long)]
    pub engines: Option<usize>,
    /// Behind a QUIC-LB balancer: this server's id (hex, 1..=15 octets; the engine index
    /// as its last octet by convention), carried in every connection id it issues.
    #[arg(long, value_name = "HEX")]
    pub lb_server_id: Option<String>,
    /// Config rotation codepoint of the connection ids (0..=6; needs --lb-server-id).
    #[arg(long)]
    pub lb_config_id: Option<u8>,
    /// Nonce octets of the connection ids (4..=18; needs --lb-server-id).
    #[arg(long)]
    pub lb_nonce_len: Option<usize>,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected on or off, got {s:?}")),
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Chain and key files.
    Files {
        /// Chain.
        cert: PathBuf,
        /// Key.
        key: PathBuf,
    },
    /// Generated at start; written to `out` if given.
    SelfSigned {
        /// Where to write the certificate.
        out: Option<PathBuf>,
    },
}

/// Resolved, checked settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Local addresses, one per path.
    pub addresses: Vec<IpAddr>,
    /// Interfaces (empty or one per address).
    pub interfaces: Vec<String>,
    /// UDP port.
    pub port: u16,
    /// Packet I/O mode.
    pub io: IoMode,
    /// CPU of engine 0 (engine i runs on `core + i`).
    pub core: Option<usize>,
    /// Engine threads (each a `Server` over its share of the sockets).
    pub engines: usize,
    /// Whether `lb` was turned on by campd for several engines (no `lb_server_id` given).
    pub lb_auto: bool,
    /// Certificate.
    pub cert: CertSource,
    /// Certificate name.
    pub server_name: String,
    /// TLS key log.
    pub keylog: bool,
    /// Per-path QUIC qlog directory.
    pub qlog_dir: Option<PathBuf>,
    /// Scheduler of new sessions.
    pub scheduler: SchedulerKind,
    /// Control socket.
    pub control_socket: Option<PathBuf>,
    /// Prometheus address.
    pub prometheus: Option<SocketAddr>,
    /// Busy-poll.
    pub busy_poll: bool,
    /// Follow the links of the served addresses.
    pub follow_links: bool,
    /// Synthetic turns per session (0 = until shutdown).
    pub turns: u32,
    /// Synthetic turn length.
    pub turn_ms: u64,
    /// Synthetic units released at their media time.
    pub realtime: bool,
    /// Synthetic seed.
    pub seed: u64,
    /// Ingest socket.
    pub ingest: Option<PathBuf>,
    /// Drain limit at shutdown.
    pub drain: Duration,
    /// Log level.
    pub log_level: LogLevel,
    /// Coupled congestion control at start.
    pub coupled_cc: bool,
    /// Socket access and rate limits.
    pub access: crate::access::AccessSettings,
    /// Routable connection ids for a balancer (`None`: quinn's random ones).
    pub lb: Option<LbConfig>,
}

impl Settings {
    /// Socket addresses served (address × port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addresses
            .iter()
            .map(|ip| SocketAddr::new(*ip, self.port))
            .collect()
    }

    /// Connection ids of engine `engine`: with several engines, `lb` with the engine number
    /// as the server id's last octet (`ServerId::for_engine`); with one, `lb` as given.
    pub fn lb_for_engine(&self, engine: usize) -> Option<LbConfig> {
        let lb = self.lb?;
        if self.engines <= 1 {
            return Some(lb);
        }
        let id = lb.server_id();
        let host = &id.as_bytes()[..id.len() - 1];
        // The same lengths as `lb`, which resolve() checked.
        let sid = ServerId::for_engine(host, u8::try_from(engine).ok()?).ok()?;
        LbConfig::new(lb.config_id(), sid, lb.nonce_len()).ok()
    }

    /// CPU of engine `engine`, if pinned.
    pub fn core_of(&self, engine: usize) -> Option<usize> {
        self.core.map(|c| c + engine)
    }

    /// Interface of the path leaving from `local`, or the address itself.
    pub fn nic_of(&self, local: SocketAddr) -> String {
        self.addresses
            .iter()
            .position(|a| *a == local.ip())
            .and_then(|i| self.interfaces.get(i).cloned())
            .unwrap_or_else(|| local.ip().to_string())
    }
}

/// Reads `cli.config` (if any) and applies the flags.
pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
    let file = match &cli.config {
        Some(p) => parse_file(p)?,
        None => FileConfig::default(),
    };
    resolve(file, cli)
}

/// Parses a configuration file.
pub fn parse_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_str(&text)
}

/// Parses configuration text.
pub fn parse_str(text: &str) -> Result<FileConfig, ConfigError> {
    Ok(toml::from_str(text)?)
}

fn resolve_access(
    file: &FileConfig,
    cli: &Cli,
) -> Result<crate::access::AccessSettings, ConfigError> {
    let d = crate::access::AccessSettings::default();
    let socket_group = match cli.socket_group.clone().or(file.socket_group.clone()) {
        None => None,
        Some(g) => Some(camp_control::access::resolve_system_group(&g).map_err(|e| {
            ConfigError::Invalid {
                field: "socket_group",
                value: format!("{g}: {e}"),
            }
        })?),
    };
    let hello_ms = cli
        .hello_timeout_ms
        .or(file.hello_timeout_ms)
        .unwrap_or(d.hello_timeout.as_millis() as u64);
    if !(100..=600_000).contains(&hello_ms) {
        return Err(ConfigError::Invalid {
            field: "hello_timeout_ms",
            value: hello_ms.to_string(),
        });
    }
    let retry = match cli.retry.clone().or(file.retry.clone()) {
        None => d.edge.retry,
        Some(r) => crate::access::parse_retry(&r).map_err(|value| ConfigError::Invalid {
            field: "retry",
            value,
        })?,
    };
    let pick = |c: Option<u32>, f: Option<u32>, dflt: u32| c.or(f).unwrap_or(dflt);
    Ok(crate::access::AccessSettings {
        socket_group,
        control_requests_per_second: pick(
            cli.control_requests_per_second,
            file.control_requests_per_second,
            d.control_requests_per_second,
        ),
        hello_timeout: Duration::from_millis(hello_ms),
        edge: camp_proto::edge::EdgeLimits {
            handshakes_per_source_per_s: pick(
                cli.handshakes_per_source,
                file.handshakes_per_source,
                d.edge.handshakes_per_source_per_s,
            ),
            handshake_burst: pick(
                cli.handshake_burst,
                file.handshake_burst,
                d.edge.handshake_burst,
            ),
            sessions_per_source: pick(
                cli.sessions_per_source,
                file.sessions_per_source,
                d.edge.sessions_per_source,
            ),
            join_attempts_per_token: pick(
                cli.join_attempts_per_token,
                file.join_attempts_per_token,
                d.edge.join_attempts_per_token,
            ),
            retry,
            ..d.edge
        },
        ingest_units_per_second: pick(
            cli.ingest_units_per_second,
            file.ingest_units_per_second,
            d.ingest_units_per_second,
        ),
        ingest_bytes_per_second: cli
            .ingest_bytes_per_second
            .or(file.ingest_bytes_per_second)
            .unwrap_or(d.ingest_bytes_per_second),
    })
}

/// Default nonce length of routable connection ids: 8 random octets (64 bits), a
/// CID of 10 octets with a one-octet server id.
pub const DEFAULT_LB_NONCE_LEN: usize = 8;

fn resolve_lb(file: &FileConfig, cli: &Cli) -> Result<Option<LbConfig>, ConfigError> {
    let config_id = cli.lb_config_id.or(file.lb_config_id);
    let nonce_len = cli.lb_nonce_len.or(file.lb_nonce_len);
    let Some(hex) = cli.lb_server_id.clone().or(file.lb_server_id.clone()) else {
        if config_id.is_some() || nonce_len.is_some() {
            return Err(ConfigError::Invalid {
                field: "lb_server_id",
                value: "none, but lb_config_id or lb_nonce_len is set".into(),
            });
        }
        return Ok(None);
    };
    let invalid = |field: &'static str, e: camp_proto::cid::LbConfigError| ConfigError::Invalid {
        field,
        value: e.to_string(),
    };
    let server_id = ServerId::from_hex(&hex).map_err(|e| invalid("lb_server_id", e))?;
    let config = LbConfig::new(
        config_id.unwrap_or(0),
        server_id,
        nonce_len.unwrap_or(DEFAULT_LB_NONCE_LEN),
    )
    .map_err(|e| match e {
        camp_proto::cid::LbConfigError::ConfigId(_) => invalid("lb_config_id", e),
        _ => invalid("lb_nonce_len", e),
    })?;
    Ok(Some(config))
}

/// Several engines need routable connection ids (the kernel steers each datagram to the
/// engine its CID names): given ones must leave the last octet to the engine (`00`); none
/// given, campd uses server id `00` (only the engine octet), config 0, default nonce.
/// Returns the ids and whether campd chose them.
fn resolve_engine_lb(
    lb: Option<LbConfig>,
    engines: usize,
) -> Result<(Option<LbConfig>, bool), ConfigError> {
    if engines <= 1 {
        return Ok((lb, false));
    }
    match lb {
        Some(lb) if lb.server_id().engine() != 0 => Err(ConfigError::Invalid {
            field: "lb_server_id",
            value: format!(
                "{} with engines = {engines}: the last octet is the engine number, give it \
                 as 00",
                lb.server_id()
            ),
        }),
        Some(lb) => Ok((Some(lb), false)),
        None => {
            let invalid = |e: camp_proto::cid::LbConfigError| ConfigError::Invalid {
                field: "engines",
                value: e.to_string(),
            };
            let id = ServerId::for_engine(&[], 0).map_err(invalid)?;
            let lb = LbConfig::new(0, id, DEFAULT_LB_NONCE_LEN).map_err(invalid)?;
            Ok((Some(lb), true))
        }
    }
}

/// Applies `cli` over `file` and checks the result.
pub fn resolve(file: FileConfig, cli: &Cli) -> Result<Settings, ConfigError> {
    let access = resolve_access(&file, cli)?;
    let engines = cli.engines.or(file.engines).unwrap_or(1);
    if !(1..=camp_xdp::steer::MAX_ENGINES).contains(&engines) {
        return Err(ConfigError::Invalid {
            field: "engines",
            value: format!("{engines} (1..={})", camp_xdp::steer::MAX_ENGINES),
        });
    }
    let (lb, lb_auto) = resolve_engine_lb(resolve_lb(&file, cli)?, engines)?;
    let addresses = if cli.addresses.is_empty() {
        file.addresses
    } else {
        cli.addresses.clone()
    };
    if addresses.is_empty() {
        return Err(ConfigError::NoAddresses);
    }
    let interfaces = if cli.interfaces.is_empty() {
        file.interfaces
    } else {
        cli.interfaces.clone()
    };
    if !interfaces.is_empty() && interfaces.len() != addresses.len() {
        return Err(ConfigError::InterfaceCount {
            interfaces: interfaces.len(),
            addresses: addresses.len(),
        });
    }
    let port = cli.port.or(file.port).unwrap_or(4433);
    if port == 0 {
        return Err(ConfigError::Invalid {
            field: "port",
            value: "0".into(),
        });
    }
    let io_name = cli.io.clone().or(file.io).unwrap_or_else(|| "auto".into());
    let io: IoMode = io_name.parse().map_err(|_| ConfigError::Invalid {
        field: "io",
        value: io_name.clone(),
    })?;
    if engines > 1 && io != IoMode::Udp {
        return Err(ConfigError::EnginesNeedUdp { engines });
    }
    if io != IoMode::Udp && interfaces.is_empty() {
        return Err(ConfigError::Invalid {
            field: "interfaces",
            value: format!("none, but io = {io_name} needs them"),
        });
    }
    let self_signed = cli.self_signed || file.self_signed.unwrap_or(false);
    let cert_file = cli.cert.clone().or(file.cert);
    let key_file = cli.key.clone().or(file.key);
    let cert = match (cert_file, key_file, self_signed) {
        (Some(_), _, true) | (_, Some(_), true) => return Err(ConfigError::CertificateConflict),
        (Some(cert), Some(key), false) => CertSource::Files { cert, key },
        (None, None, true) => CertSource::SelfSigned {
            out: cli.cert_out.clone().or(file.cert_out),
        },
        _ => return Err(ConfigError::NoCertificate),
    };
    let sched_name = cli
        .scheduler
        .clone()
        .or(file.scheduler)
        .unwrap_or_else(|| "camp".into());
    let scheduler: SchedulerKind = sched_name.parse().map_err(|_| ConfigError::Invalid {
        field: "scheduler",
        value: sched_name.clone(),
    })?;
    let control_socket = cli
        .control_socket
        .clone()
        .or(file.control_socket)
        .unwrap_or_else(|| PathBuf::from(camp_control::DEFAULT_SOCKET));
    let control_socket = (!control_socket.as_os_str().is_empty()
        && control_socket.as_os_str() != "none")
        .then_some(control_socket);
    let prom = cli
        .prometheus
        .clone()
        .or(file.prometheus)
        .unwrap_or_else(|| camp_control::DEFAULT_HTTP.into());
    let prometheus: Option<SocketAddr> = if prom == "off" || prom.is_empty() {
        None
    } else {
        Some(prom.parse().map_err(|_| ConfigError::Invalid {
            field: "prometheus",
            value: prom.clone(),
        })?)
    };
    let level_name = cli
        .log_level
        .clone()
        .or(file.log_level)
        .unwrap_or_else(|| "info".into());
    let log_level: LogLevel = level_name.parse().map_err(|_| ConfigError::Invalid {
        field: "log_level",
        value: level_name.clone(),
    })?;
    let turn_ms = cli.turn_ms.or(file.turn_ms).unwrap_or(2_000);
    if turn_ms == 0 || turn_ms > 600_000 {
        return Err(ConfigError::Invalid {
            field: "turn_ms",
            value: turn_ms.to_string(),
        });
    }
    if let Some(a) = prometheus
        && !a.ip().is_loopback()
    {
        // Allowed (an operator asked for it), but never by default.
        tracing::warn!("campd: Prometheus metrics served on non-loopback {a}");
    }
    Ok(Settings {
        access,
        lb,
        addresses,
        interfaces,
        port,
        io,
        core: cli.core.or(file.core),
        engines,
        lb_auto,
        cert,
        server_name: cli
            .server_name
            .clone()
            .or(file.server_name)
            .unwrap_or_else(|| "camp.test".into()),
        keylog: cli.keylog || file.keylog.unwrap_or(false),
        qlog_dir: cli.qlog_dir.clone().or(file.qlog_dir.clone()),
        scheduler,
        control_socket,
        prometheus,
        busy_poll: cli.busy_poll.or(file.busy_poll).unwrap_or(false),
        follow_links: cli.follow_links.or(file.follow_links).unwrap_or(true),
        turns: cli.turns.or(file.turns).unwrap_or(1),
        turn_ms,
        realtime: cli.realtime.or(file.realtime).unwrap_or(false),
        seed: cli.seed.or(file.seed).unwrap_or(11),
        ingest: cli.ingest.clone().or(file.ingest),
        drain: Duration::from_secs(cli.drain_seconds.or(file.drain_seconds).unwrap_or(5)),
        log_level,
        coupled_cc: cli.coupled_cc.or(file.coupled_cc).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
addresses = ["198.18.10.1", "198.18.11.1"]
interfaces = ["cea0", "cea1"]
port = 4500
io = "xdp"
core = 3
self_signed = true
cert_out = "/tmp/campd-cert.der"
scheduler = "minrtt"
control_socket = "/tmp/campd.sock"
prometheus = "127.0.0.1:9999"
busy_poll = true
turns = 3
log_level = "debug"
coupled_cc = true
"#;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["campd"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).expect("flags parse")
    }

    #[test]
    fn good_file_resolves() {
        let s = resolve(parse_str(GOOD).unwrap(), &cli(&[])).unwrap();
        assert_eq!(s.port, 4500);
        assert_eq!(s.io, IoMode::Xdp);
        assert_eq!(s.core, Some(3));
        assert_eq!(s.scheduler, SchedulerKind::MinRtt);
        assert!(s.busy_poll);
        assert_eq!(s.log_level, LogLevel::Debug);
        assert!(s.coupled_cc);
        assert_eq!(s.turns, 3);
        assert_eq!(
            s.cert,
            CertSource::SelfSigned {
                out: Some("/tmp/campd-cert.der".into())
            }
        );
        assert_eq!(s.prometheus, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(
            s.local_addrs(),
            vec![
                "198.18.10.1:4500".parse::<SocketAddr>().unwrap(),
                "198.18.11.1:4500".parse().unwrap()
            ]
        );
        assert_eq!(s.nic_of("198.18.11.1:4500".parse().unwrap()), "cea1");
    }

    #[test]
    fn flags_override_the_file() {
        let s = resolve(
            parse_str(GOOD).unwrap(),
            &cli(&[
                "--port",
                "4433",
                "--io",
                "udp",
                "--scheduler",
                "camp",
                "--busy-poll",
                "off",
                "--prometheus",
                "off",
                "--control-socket",
                "none",
                "--address",
                "198.18.10.1",
                "--interface",
                "cea0",
            ]),
        )
        .unwrap();
        assert_eq!(s.port, 4433);
        assert_eq!(s.io, IoMode::Udp);
        assert_eq!(s.scheduler, SchedulerKind::Camp);
        assert!(!s.busy_poll);
        assert_eq!(s.prometheus, None);
        assert_eq!(s.control_socket, None);
        assert_eq!(s.addresses.len(), 1);
        assert_eq!(s.turns, 3, "not overridden");
    }

    #[test]
    fn defaults_with_flags_only() {
        let s = resolve(
            FileConfig::default(),
            &cli(&["--address", "198.18.10.1", "--io", "udp", "--self-signed"]),
        )
        .unwrap();
        assert_eq!(s.port, 4433);
        assert_eq!(s.turns, 1);
        // Metrics stay on loopback unless configured otherwise.
        let prom = s.prometheus.expect("metrics on by default");
        assert!(prom.ip().is_loopback(), "{prom}");
        assert_eq!(s.access, crate::access::AccessSettings::default());
        assert_eq!(
            s.control_socket,
            Some(PathBuf::from(camp_control::DEFAULT_SOCKET))
        );
    }

    #[test]
    fn access_knobs_resolve() {
        let file = parse_str(
            "addresses = [\"198.18.10.1\"]\nio = \"udp\"\nself_signed = true\n\
             socket_group = \"4321\"\nhello_timeout_ms = 1500\nhandshakes_per_source = 7\n\
             sessions_per_source = 0\nretry = \"above:100\"\ningest_units_per_second = 9\n",
        )
        .unwrap();
        let s = resolve(file.clone(), &cli(&["--join-attempts-per-token", "3"])).unwrap();
        let a = &s.access;
        assert_eq!(a.socket_group, Some(4321));
        assert_eq!(a.hello_timeout, Duration::from_millis(1500));
        assert_eq!(a.edge.handshakes_per_source_per_s, 7);
        assert_eq!(a.edge.sessions_per_source, 0);
        assert_eq!(a.edge.join_attempts_per_token, 3);
        assert_eq!(a.edge.retry, camp_proto::edge::RetryPolicy::AboveRate(100));
        assert_eq!(a.ingest_units_per_second, 9);
        let s = resolve(file.clone(), &cli(&["--retry", "always"])).unwrap();
        assert_eq!(s.access.edge.retry, camp_proto::edge::RetryPolicy::Always);
        for (flag, value, field) in [
            ("--retry", "sometimes", "retry"),
            ("--hello-timeout-ms", "5", "hello_timeout_ms"),
        ] {
            match resolve(file.clone(), &cli(&[flag, value])) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{flag} {value}: {other:?}"),
            }
        }
    }

    #[test]
    fn load_reads_the_file_named_by_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("campd.toml");
        std::fs::write(&path, GOOD).unwrap();
        let p = path.to_str().unwrap();
        let s = load(&cli(&["--config", p, "--turns", "0"])).unwrap();
        assert_eq!(s.port, 4500);
        assert_eq!(s.turns, 0);
        let missing = dir.path().join("missing.toml");
        assert!(matches!(
            load(&cli(&["--config", missing.to_str().unwrap()])),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn bad_files_are_refused() {
        for (text, what) in [
            ("port = \"x\"", "wrong type"),
            ("unknown_key = 1", "unknown field"),
            ("addresses = [\"not an ip\"]", "bad address"),
            ("port = 70000", "port out of range"),
            ("[[[", "not TOML"),
        ] {
            assert!(
                matches!(parse_str(text), Err(ConfigError::Toml(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn lb_server_id_from_flags_or_file() {
        let base = "addresses = [\"198.18.10.1\"]\nio = \"udp\"\nself_signed = true\n";
        let none = resolve(parse_str(base).unwrap(), &cli(&[])).unwrap();
        assert_eq!(none.lb, None, "no balancer by default");
        let file = resolve(
            parse_str(&format!(
                "{base}lb_server_id = \"0a03\"\nlb_config_id = 2\n"
            ))
            .unwrap(),
            &cli(&[]),
        )
        .unwrap();
        let lb = file.lb.expect("configured");
        assert_eq!(lb.server_id().as_bytes(), &[0x0a, 0x03]);
        assert_eq!(lb.config_id(), 2);
        assert_eq!(lb.nonce_len(), DEFAULT_LB_NONCE_LEN);
        let flags = resolve(
            parse_str(&format!("{base}lb_server_id = \"0a03\"\n")).unwrap(),
            &cli(&["--lb-server-id", "ff", "--lb-nonce-len", "12"]),
        )
        .unwrap();
        let lb = flags.lb.expect("configured");
        assert_eq!(
            lb.server_id().as_bytes(),
            &[0xff],
            "the flag overrides the file"
        );
        assert_eq!(lb.cid_len(), 14);
        let r = |extra: &str| resolve(parse_str(&format!("{base}{extra}")).unwrap(), &cli(&[]));
        for (extra, field) in [
            ("lb_server_id = \"0g\"", "lb_server_id"),
            ("lb_server_id = \"\"", "lb_server_id"),
            ("lb_server_id = \"01\"\nlb_config_id = 7", "lb_config_id"),
            ("lb_server_id = \"01\"\nlb_nonce_len = 2", "lb_nonce_len"),
            ("lb_nonce_len = 8", "lb_server_id"),
        ] {
            assert!(
                matches!(r(extra), Err(ConfigError::Invalid { field: f, .. }) if f == field),
                "{extra}: {:?}",
                r(extra)
            );
        }
    }

    #[test]
    fn engines_need_udp_and_routable_ids() {
        let base = "addresses = [\"198.18.10.1\"]\nself_signed = true\n";
        let r = |extra: &str, flags: &[&str]| {
            resolve(parse_str(&format!("{base}{extra}")).unwrap(), &cli(flags))
        };
        // One engine: as before, no ids of campd's choosing.
        let one = r("io = \"udp\"", &[]).unwrap();
        assert_eq!((one.engines, one.lb, one.lb_auto), (1, None, false));
        assert_eq!(one.lb_for_engine(0), None);
        // Several: ids turned on, server id = the engine octet.
        let two = r("io = \"udp\"\ncore = 4", &["--engines", "2"]).unwrap();
        assert_eq!(two.engines, 2);
        assert!(two.lb_auto);
        for e in 0..2 {
            let lb = two.lb_for_engine(e).expect("ids of engine");
            assert_eq!(lb.server_id().as_bytes(), &[e as u8]);
            assert_eq!(lb.server_id().engine(), e as u8);
            assert_eq!(two.core_of(e), Some(4 + e));
        }
        // A given host prefix keeps its length; the last octet becomes the engine's.
        let given = r(
            "io = \"udp\"\nengines = 3\nlb_server_id = \"0a00\"\nlb_config_id = 2",
            &[],
        )
        .unwrap();
        assert!(!given.lb_auto);
        let lb2 = given.lb_for_engine(2).unwrap();
        assert_eq!(lb2.server_id().as_bytes(), &[0x0a, 2]);
        assert_eq!(lb2.config_id(), 2);
        assert_eq!(lb2.cid_len(), given.lb.unwrap().cid_len());
        // One engine keeps a given id whole.
        let kept = r("io = \"udp\"\nlb_server_id = \"0a07\"", &[]).unwrap();
        assert_eq!(
            kept.lb_for_engine(0).unwrap().server_id().as_bytes(),
            &[10, 7]
        );
        // Refusals: AF_XDP (and auto), an id whose last octet is not 00, 0 or too many.
        for (extra, flags) in [
            (
                "io = \"xdp\"\ninterfaces = [\"a\"]",
                &["--engines", "2"][..],
            ),
            ("interfaces = [\"a\"]", &["--engines", "2"][..]),
        ] {
            let e = r(extra, flags).unwrap_err();
            assert!(
                matches!(e, ConfigError::EnginesNeedUdp { engines: 2 }),
                "{e}"
            );
            assert!(e.to_string().contains("NIC queue"), "{e}");
        }
        assert!(matches!(
            r("io = \"udp\"\nlb_server_id = \"0a03\"", &["--engines", "2"]),
            Err(ConfigError::Invalid {
                field: "lb_server_id",
                ..
            })
        ));
        for n in ["0", "65"] {
            assert!(matches!(
                r("io = \"udp\"", &["--engines", n]),
                Err(ConfigError::Invalid {
                    field: "engines",
                    ..
                })
            ));
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = "addresses = [\"198.18.10.1\"]\nio = \"udp\"\nself_signed = true\n";
        let r = |extra: &str| resolve(parse_str(&format!("{base}{extra}")).unwrap(), &cli(&[]));
        assert!(matches!(
            r("scheduler = \"nope\""),
            Err(ConfigError::Invalid {
                field: "scheduler",
                ..
            })
        ));
        assert!(matches!(
            r("prometheus = \"nowhere\""),
            Err(ConfigError::Invalid {
                field: "prometheus",
                ..
            })
        ));
        assert!(matches!(
            r("cert = \"a\"\nkey = \"b\""),
            Err(ConfigError::CertificateConflict)
        ));
        assert!(matches!(
            r("interfaces = [\"a\", \"b\"]"),
            Err(ConfigError::InterfaceCount { .. })
        ));
        assert!(matches!(
            resolve(
                parse_str("io = \"udp\"\nself_signed = true").unwrap(),
                &cli(&[])
            ),
            Err(ConfigError::NoAddresses)
        ));
        assert!(matches!(
            resolve(
                parse_str("addresses = [\"198.18.10.1\"]\nio = \"udp\"").unwrap(),
                &cli(&[])
            ),
            Err(ConfigError::NoCertificate)
        ));
        assert!(matches!(
            resolve(
                parse_str("addresses = [\"198.18.10.1\"]\nio = \"xdp\"\nself_signed = true")
                    .unwrap(),
                &cli(&[])
            ),
            Err(ConfigError::Invalid {
                field: "interfaces",
                ..
            })
        ));
    }
}
