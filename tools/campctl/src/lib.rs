//! campctl: the operator's view of campd through its Unix control socket.
//!
//! Every command is one JSON-lines request (see `camp_control_types::socket`) and a table, or with
//! `--json` the reply itself. The library holds the client and the table formatting so tests
//! can drive them against an in-process control thread.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use camp_control_types::snapshot::MODALITY_NAMES;
use camp_control_types::socket::{PathsReply, Reply, Request, SessionsReply, StatsReply};
use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "campctl", version, about = "Inspect and tune a running campd")]
pub struct Cli {
    /// campd's control socket.
    #[arg(long, global = true, default_value = camp_control_types::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print replies as JSON (one object per line) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One row per path: addresses, NIC, status, RTT, cwnd, loss, bytes, share, XDP counters.
    Paths,
    /// Sessions, their unit counters and client feedback; settings in force.
    Sessions,
    /// Latency L per modality and inter-modal skew of the last interval.
    Stats {
        /// Keep printing one row per interval.
        #[arg(long)]
        watch: bool,
        /// With --watch: stop after this many rows.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Change a knob (see docs/tuning.md): scheduler, coupled_cc, log_level,
    /// target_skew_us, deadline_{text,audio,video}_us, margin_factor, early_guard_us,
    /// max_droppable_queue_us, duplicate_reliable_below, max_lead_us.
    Set {
        /// Knob name.
        name: String,
        /// New value (negative numbers reach campd, which reports the valid range).
        #[arg(allow_negative_numbers = true)]
        value: String,
    },
    /// Change a path's status.
    Path {
        /// Path as SESSION.PATH, or PATH when the id is unique across sessions.
        id: String,
        /// New status.
        #[arg(value_parser = ["available", "standby", "drain"])]
        status: String,
        /// New precedence (higher preferred); unchanged when left out.
        #[arg(long)]
        precedence: Option<u8>,
    },
    /// Add or remove a NIC while campd runs (kernel UDP I/O).
    Nic {
        /// `add`: serve the interface (its addresses, or `--address`), advertised to the
        /// sessions; `remove`: move its paths to the others and stop serving it.
        #[arg(value_parser = ["add", "remove"])]
        op: String,
        /// Interface name.
        ifname: String,
        /// `add`: one address of the interface instead of all of them.
        #[arg(long)]
        address: Option<std::net::IpAddr>,
    },
}

/// What can go wrong talking to campd.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No socket file, or nobody listening on it.
    #[error("campd is not running (no socket at {})", .0.display())]
    NotRunning(PathBuf),
    /// The socket exists but may not be opened by this user.
    #[error("permission denied on {} (run as root or join the camp group)", .0.display())]
    PermissionDenied(PathBuf),
    /// Reading or writing the socket failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// campd answered something this campctl does not understand.
    #[error("unexpected reply from campd: {0}")]
    Protocol(String),
    /// campd refused the request.
    #[error("{0}")]
    Refused(String),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
}

/// Maps a connect error to what the operator should be told.
pub fn connect_error(path: &Path, e: io::Error) -> CtlError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            CtlError::NotRunning(path.to_owned())
        }
        io::ErrorKind::PermissionDenied => CtlError::PermissionDenied(path.to_owned()),
        _ => CtlError::Io {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// A connection to campd.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to the control socket.
    pub fn connect(path: &Path) -> Result<Client, CtlError> {
        let stream = UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
        let io_err = |source| CtlError::Io {
            path: path.to_owned(),
            source,
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        Ok(Client {
            path: path.to_owned(),
            writer,
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its reply.
    pub fn request(&mut self, req: &Request) -> Result<Reply, CtlError> {
        let io_err = |source| CtlError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(req).map_err(|e| CtlError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(io_err)?;
        let mut reply = String::new();
        let n = self.reader.read_line(&mut reply).map_err(io_err)?;
        if n == 0 {
            return Err(CtlError::Protocol("campd closed the connection".into()));
        }
        serde_json::from_str(&reply).map_err(|e| CtlError::Protocol(format!("{e}: {reply}")))
    }
}

/// Parses `SESSION.PATH` or `PATH`.
pub fn parse_path_id(s: &str) -> Result<(Option<u64>, u32), CtlError> {
    let bad = || CtlError::Usage(format!("bad path id {s:?}: expected SESSION.PATH or PATH"));
    match s.split_once('.') {
        Some((sess, path)) => Ok((
            Some(sess.parse().map_err(|_| bad())?),
            path.parse().map_err(|_| bad())?,
        )),
        None => Ok((None, s.parse().map_err(|_| bad())?)),
    }
}

/// The request a command sends.
pub fn request_for(cmd: &Command) -> Result<Request, CtlError> {
    Ok(match cmd {
        Command::Paths => Request::Paths,
        Command::Sessions => Request::Sessions,
        Command::Stats { .. } => Request::Stats,
        Command::Set { name, value } => Request::Set {
            name: name.clone(),
            value: serde_json::Value::String(value.clone()),
        },
        Command::Path {
            id,
            status,
            precedence,
        } => {
            let (session, id) = parse_path_id(id)?;
            Request::Path {
                session,
                id,
                status: status.clone(),
                precedence: *precedence,
            }
        }
        Command::Nic {
            op,
            ifname,
            address,
        } => Request::Nic {
            op: op.clone(),
            ifname: ifname.clone(),
            address: *address,
        },
    })
}

/// Runs a command, writing its output to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CtlError> {
    let req = request_for(&cli.command)?;
    let mut client = Client::connect(&cli.socket)?;
    let write_err = |source| CtlError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    };
    if let Command::Stats { watch: true, count } = cli.command {
        return watch(&mut client, cli.json, count, out);
    }
    let reply = client.request(&req)?;
    if cli.json {
        let reply = match reply {
            Reply::Error { message, .. } => return Err(CtlError::Refused(message)),
            r => r,
        };
        let s = serde_json::to_string(&reply).map_err(|e| CtlError::Protocol(e.to_string()))?;
        return writeln!(out, "{s}").map_err(write_err);
    }
    let text = match reply {
        Reply::Paths(p) => paths_table(&p),
        Reply::Sessions(s) => sessions_table(&s),
        Reply::Stats(s) => format!("{}{}", stats_header(), stats_row(&s)),
        Reply::Queued { knob } => format!(
            "queued {}; campd applies it on its next loop iteration\n",
            serde_json::to_string(&knob).unwrap_or_default()
        ),
        Reply::Error { message, .. } => return Err(CtlError::Refused(message)),
    };
    out.write_all(text.as_bytes()).map_err(write_err)
}

fn watch(
    client: &mut Client,
    json: bool,
    count: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let write_err = |source| CtlError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    };
    let mut last = 0;
    let mut rows = 0;
    if !json {
        out.write_all(stats_header().as_bytes())
            .map_err(write_err)?;
    }
    loop {
        let (wait, fresh) = match client.request(&Request::Stats)? {
            Reply::Stats(s) => {
                let fresh = (s.interval != last).then_some(s);
                (
                    Duration::from_millis(s.interval_ms.clamp(10, 60_000) / 4),
                    fresh,
                )
            }
            // Nothing finished yet: ask again shortly.
            Reply::Error {
                kind: camp_control_types::socket::ErrorCode::NoStats,
                ..
            } => (Duration::from_millis(100), None),
            Reply::Error { message, .. } => return Err(CtlError::Refused(message)),
            other => return Err(CtlError::Protocol(format!("{other:?}"))),
        };
        if let Some(s) = fresh {
            last = s.interval;
            let line = if json {
                serde_json::to_string(&Reply::Stats(s)).unwrap_or_default() + "\n"
            } else {
                stats_row(&s)
            };
            out.write_all(line.as_bytes()).map_err(write_err)?;
            out.flush().map_err(write_err)?;
            rows += 1;
            if count.is_some_and(|c| rows >= c) {
                return Ok(());
            }
        }
        // Polling the control thread at a quarter of its interval; campctl is not on the
        // data path, so a sleep is the simple way to pace it.
        std::thread::sleep(wait);
    }
}

/// Microseconds as milliseconds with one decimal.
fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// Byte counts with binary suffixes.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Left-aligned columns separated by two spaces, like `ss`.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut s = String::new();
    let line = |s: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&mut s, &mut header.iter().copied());
    for r in rows {
        line(&mut s, &mut r.iter().map(String::as_str));
    }
    s
}

/// The `paths` table.
pub fn paths_table(p: &PathsReply) -> String {
    let header = [
        "ID",
        "LOCAL",
        "REMOTE",
        "NIC",
        "STATUS",
        "PREC",
        "SRTT",
        "MIN",
        "RTTVAR",
        "CWND",
        "INFLIGHT",
        "LOSS",
        "BYTES",
        "SHARE",
        "XDP_REDIR/PASS/FAIL",
    ];
    let rows: Vec<Vec<String>> = p
        .paths
        .iter()
        .map(|r| {
            let q = &r.path;
            let mut status = q.status.name().to_owned();
            if q.suspect {
                status.push_str(",suspect");
            }
            if !q.usable {
                status.push_str(",down");
            }
            vec![
                format!("{}.{}", q.session, q.path),
                q.local.to_string(),
                q.remote.to_string(),
                q.nic.clone(),
                status,
                q.precedence.to_string(),
                ms(q.srtt_us),
                ms(q.min_rtt_us),
                ms(q.rttvar_us),
                bytes(q.cwnd),
                bytes(q.in_flight),
                format!("{:.2}%", q.loss_ppm as f64 / 10_000.0),
                bytes(q.bytes_sent),
                format!("{:.0}%", r.share * 100.0),
                q.xdp.map_or("-".to_owned(), |x| {
                    format!(
                        "{}/{}/{}",
                        x.redirected,
                        x.passed,
                        x.redirect_failed + x.parse_failed
                    )
                }),
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        format!("{}(no paths)\n", table(&header, &[]))
    } else {
        table(&header, &rows)
    };
    if !p.nics.is_empty() {
        let header = [
            "NIC",
            "XDP",
            "REDIRECTED",
            "PASS_OTHER",
            "PASS_NO_SOCKET",
            "REDIRECT_FAILED",
            "PARSE_FAILED",
        ];
        let pb = |c: camp_control_types::snapshot::PacketsBytes| {
            format!("{}/{}", c.packets, bytes(c.bytes))
        };
        let rows: Vec<Vec<String>> = p
            .nics
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.attach.clone(),
                    pb(n.redirected),
                    pb(n.pass_other),
                    pb(n.pass_no_socket),
                    pb(n.redirect_failed),
                    pb(n.parse_failed),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&header, &rows));
    }
    out
}

/// The `sessions` table, preceded by the settings in force.
pub fn sessions_table(s: &SessionsReply) -> String {
    let st = &s.settings;
    let deadline = |us: u64| {
        if us == 0 {
            "none".to_owned()
        } else {
            format!("{}ms", ms(us))
        }
    };
    let mut out = format!(
        "scheduler {}  target_skew {}ms  deadlines text {} audio {} video {}  coupled_cc {}  log {}\n",
        st.scheduler,
        ms(st.target_skew_us),
        deadline(st.deadline_us[0]),
        deadline(st.deadline_us[1]),
        deadline(st.deadline_us[2]),
        if st.coupled_cc { "on" } else { "off" },
        st.log_level,
    );
    if !st.scheduler_params.is_empty() {
        let params: Vec<String> = st
            .scheduler_params
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("params {}\n", params.join("  ")));
    }
    out.push_str(&format!(
        "sessions opened {}  joins refused {}  deadline resets {}  paths suspected {}\n\n",
        s.server.sessions_opened,
        s.server.join_refused,
        s.server.deadline_resets,
        s.server.suspected
    ));
    let edge: Vec<String> = s
        .server
        .edge
        .events()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    if !edge.is_empty() {
        // Before the blank line that ends the header block.
        out.truncate(out.len() - 1);
        out.push_str(&format!("edge {}\n\n", edge.join("  ")));
    }
    let header = [
        "SESSION",
        "ENGINE",
        "SCHED",
        "PATHS",
        "SENT t/a/v",
        "ACKED t/a/v",
        "DROPPED t/a/v",
        "REINJ t/a/v",
        "SKEW_P95",
        "PLAYOUT",
        "LATE",
    ];
    let tav = |f: fn(&camp_control_types::snapshot::ModalityCounters) -> u64,
               x: &camp_control_types::snapshot::SessionSnapshot| {
        x.modalities
            .iter()
            .map(|m| f(m).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    let rows: Vec<Vec<String>> = s
        .sessions
        .iter()
        .map(|x| {
            vec![
                x.session.to_string(),
                x.engine.to_string(),
                x.scheduler.clone(),
                x.paths.to_string(),
                tav(|m| m.sent, x),
                tav(|m| m.acked, x),
                tav(|m| m.dropped, x),
                tav(|m| m.reinjected, x),
                format!("{}ms", ms(u64::from(x.skew_p95_us))),
                format!("{}ms", ms(u64::from(x.playout_delay_us))),
                x.late_units.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&header, &rows));
    if rows.is_empty() {
        out.push_str("(no sessions)\n");
    }
    out
}

/// Column header of `stats` rows.
pub fn stats_header() -> String {
    let mut h = String::from("INTERVAL");
    for m in MODALITY_NAMES {
        h.push_str(&format!("  {:>17}", format!("{m} L p50/p99 ms")));
    }
    h.push_str("  SKEW p50/p99 ms      SYNCS\n");
    h
}

/// One `stats` row.
pub fn stats_row(s: &StatsReply) -> String {
    let mut r = format!("{:>8}", s.interval);
    for q in &s.summary.latency {
        let cell = if q.count == 0 {
            "-".to_owned()
        } else {
            format!("{}/{}", ms(q.p50_us), ms(q.p99_us))
        };
        r.push_str(&format!("  {cell:>17}"));
    }
    let sk = &s.summary.skew;
    let cell = if sk.count == 0 {
        "-".to_owned()
    } else {
        format!("{}/{}", ms(sk.p50_us), ms(sk.p99_us))
    };
    r.push_str(&format!("  {cell:>15}  {:>9}\n", sk.count));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_parse() {
        assert_eq!(parse_path_id("3.1").unwrap(), (Some(3), 1));
        assert_eq!(parse_path_id("7").unwrap(), (None, 7));
        for bad in ["", "a", "1.", ".1", "1.2.3", "-1"] {
            assert!(
                matches!(parse_path_id(bad), Err(CtlError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn connect_errors_become_operator_messages() {
        let p = Path::new("/run/camp/campd.sock");
        let e = connect_error(p, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            "campd is not running (no socket at /run/camp/campd.sock)"
        );
        let e = connect_error(p, io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(e, CtlError::NotRunning(_)));
        let e = connect_error(p, io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(
            e.to_string(),
            "permission denied on /run/camp/campd.sock (run as root or join the camp group)"
        );
    }

    #[test]
    fn units_format_like_ss() {
        assert_eq!(bytes(1023), "1023");
        assert_eq!(bytes(64 * 1024), "64.0K");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5M");
        assert_eq!(ms(12_345), "12.3");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "LONGER"], &[vec!["wide-cell".into(), "x".into()]]);
        assert_eq!(t, "A          LONGER\nwide-cell  x\n");
    }
}
