//! The Unix control socket: JSON lines, one request and one reply per line (the request and
//! reply types are `camp-control-types`' and re-exported here).
//!
//! Requests (`{"cmd":"paths"}`, `{"cmd":"sessions"}`, `{"cmd":"stats"}`,
//! `{"cmd":"set","name":…,"value":…}`, `{"cmd":"path","id":…,"status":…}`) are answered from
//! the latest published snapshot and interval summary; `set` and `path` become
//! [`Knob`]s queued for the engine. Lines longer than [`MAX_LINE`] and anything that is not a
//! valid request get an error reply; nothing a client sends can panic the server. A line
//! that is too long also ends the connection, since the rest of it cannot be told apart from
//! the next request.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ControlState;
use crate::knobs::{IfName, Knob, KnobError};
use crate::snapshot::PathState;
/// Connections served at once; more are refused with an error line.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes discarded after an oversized line before the connection is closed.
const DRAIN_LIMIT: u64 = 1 << 20;
/// How often a blocked connection thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

pub use camp_control_types::socket::*;

/// Answers one request line (without its newline).
pub fn handle_line(state: &ControlState, line: &[u8]) -> Reply {
    if line.len() > MAX_LINE {
        return Reply::error(
            ErrorCode::TooLong,
            format!("request longer than {MAX_LINE} bytes"),
        );
    }
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return Reply::error(ErrorCode::Malformed, format!("bad request: {e}")),
    };
    handle_request(state, req)
}

fn no_snapshot() -> Reply {
    Reply::error(
        ErrorCode::NoSnapshot,
        "campd has not published a snapshot yet",
    )
}

/// Answers one parsed request.
pub fn handle_request(state: &ControlState, req: Request) -> Reply {
    match req {
        Request::Paths => {
            let Some(s) = state.snapshots.latest() else {
                return no_snapshot();
            };
            let paths = s
                .paths
                .iter()
                .map(|p| PathRow {
                    path: p.clone(),
                    share: s.traffic_share(p),
                })
                .collect();
            Reply::Paths(PathsReply {
                seq: s.seq,
                unix_time_us: s.unix_time_us,
                paths,
                nics: s.nics.clone(),
            })
        }
        Request::Sessions => {
            let Some(s) = state.snapshots.latest() else {
                return no_snapshot();
            };
            Reply::Sessions(SessionsReply {
                seq: s.seq,
                unix_time_us: s.unix_time_us,
                settings: s.settings.clone(),
                server: s.server,
                sessions: s.sessions.clone(),
            })
        }
        Request::Stats => match state.stats() {
            Some(st) => Reply::Stats(st),
            None => Reply::error(ErrorCode::NoStats, "no interval has finished yet"),
        },
        Request::Set { name, value } => match knob_from_set(&name, &value) {
            Ok(k) => queue(state, k),
            Err(e) => e.into(),
        },
        Request::Path {
            session,
            id,
            status,
            precedence,
        } => path_request(state, session, id, &status, precedence),
        Request::Nic {
            op,
            ifname,
            address,
        } => match (op.as_str(), IfName::new(&ifname)) {
            (_, Err(e)) => e.into(),
            ("add", Ok(ifname)) => queue(state, Knob::NicAdd { ifname, address }),
            ("remove", Ok(ifname)) if address.is_none() => queue(state, Knob::NicRemove { ifname }),
            (op, Ok(_)) => Reply::error(
                ErrorCode::Malformed,
                format!("nic {op:?}: expected add [address] or remove"),
            ),
        },
    }
}

fn queue(state: &ControlState, knob: Knob) -> Reply {
    match state.knobs.send(knob) {
        Ok(()) => Reply::Queued { knob },
        Err(e) => e.into(),
    }
}

/// Builds the knob of a `set NAME VALUE` request.
pub fn knob_from_set(name: &str, value: &serde_json::Value) -> Result<Knob, KnobError> {
    use serde_json::Value;
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    };
    match name {
        "scheduler" => Knob::scheduler(&text),
        "log_level" => text.parse().map(|level| Knob::SetLogLevel { level }),
        "coupled_cc" => match text.as_str() {
            "true" | "on" | "1" => Ok(Knob::SetCoupledCc { on: true }),
            "false" | "off" | "0" => Ok(Knob::SetCoupledCc { on: false }),
            _ => Err(KnobError::OutOfRange {
                param: "coupled_cc",
                value: f64::NAN,
                min: 0.0,
                max: 1.0,
                integral: true,
            }),
        },
        param => {
            // Unknown names are reported as such before the value is looked at.
            let p: crate::knobs::SchedulerParam = param.parse()?;
            let (min, max) = p.range();
            let v = text.parse::<f64>().map_err(|_| KnobError::OutOfRange {
                param: p.name(),
                value: f64::NAN,
                min,
                max,
                integral: p.integral(),
            })?;
            Knob::scheduler_param(param, v)
        }
    }
}

fn path_request(
    state: &ControlState,
    session: Option<u64>,
    id: u32,
    status: &str,
    precedence: Option<u8>,
) -> Reply {
    let Some(status) = PathState::from_name(status) else {
        return KnobError::UnknownPathStatus(status.to_owned()).into();
    };
    let Some(snap) = state.snapshots.latest() else {
        return no_snapshot();
    };
    let mut matches = snap
        .paths
        .iter()
        .filter(|p| p.path == id && session.is_none_or(|s| s == p.session));
    let Some(found) = matches.next() else {
        return KnobError::UnknownPath {
            session: session.unwrap_or(0),
            path: id,
        }
        .into();
    };
    if matches.next().is_some() {
        return KnobError::AmbiguousPath(id).into();
    }
    queue(
        state,
        Knob::SetPathStatus {
            session: found.session,
            path: id,
            status,
            precedence: precedence.unwrap_or(found.precedence),
        },
    )
}

/// Socket server errors.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Another process is listening on the socket path.
    #[error("{0} is in use by a running process")]
    InUse(PathBuf),
    /// Creating, binding or configuring the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Who may connect and how fast one connection may ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketAccess {
    /// Group of the socket file (None: the process's own).
    pub group: Option<u32>,
    /// Requests per second per connection (burst twice that); 0: no limit.
    pub requests_per_second: u32,
}

/// The listening socket and its threads.
#[derive(Debug)]
pub(crate) struct SocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SocketServer {
    /// Binds `path` (mode 0660, replacing a stale socket file) and starts accepting.
    pub(crate) fn spawn(
        path: &Path,
        state: Arc<ControlState>,
        access: SocketAccess,
    ) -> Result<Self, SocketError> {
        let io_err = |source| SocketError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            match UnixStream::connect(path) {
                Ok(_) => return Err(SocketError::InUse(path.to_owned())),
                // Nobody listens: a leftover from a process that died.
                Err(_) => std::fs::remove_file(path).map_err(io_err)?,
            }
        }
        let listener = UnixListener::bind(path).map_err(io_err)?;
        crate::access::restrict_socket(path, access.group).map_err(io_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let accept = std::thread::Builder::new()
            .name("camp-ctl-sock".into())
            .spawn(move || accept_loop(listener, state, stop2, access))
            .map_err(io_err)?;
        Ok(SocketServer {
            path: path.to_owned(),
            stop,
            accept: Some(accept),
        })
    }

    /// Stops accepting, waits for connection threads, removes the socket file.
    pub(crate) fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept(); failure means it is already gone.
        let _ = UnixStream::connect(&self.path);
        let _ = accept.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: UnixListener,
    state: Arc<ControlState>,
    stop: Arc<AtomicBool>,
    access: SocketAccess,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let conns: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let mut list = conns.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|h| !h.is_finished());
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let _ = write_reply(
                &mut stream,
                &Reply::error(ErrorCode::Busy, "too many control connections"),
            );
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (state, stop, active2) = (Arc::clone(&state), Arc::clone(&stop), Arc::clone(&active));
        let spawned = std::thread::Builder::new()
            .name("camp-ctl-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &state, &stop, access.requests_per_second);
                active2.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => list.push(h),
            Err(_) => {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    for h in conns.into_inner().unwrap_or_else(PoisonError::into_inner) {
        let _ = h.join();
    }
}

fn write_reply(stream: &mut UnixStream, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

fn serve_connection(
    stream: UnixStream,
    state: &ControlState,
    stop: &AtomicBool,
    requests_per_second: u32,
) -> io::Result<()> {
    let rate = f64::from(requests_per_second);
    let mut allowance = camp_proto::limits::TokenBucket::new(rate, 2.0 * rate, Instant::now());
    stream.set_read_timeout(Some(STOP_POLL))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    let mut last_activity = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) || last_activity.elapsed() > IDLE_TIMEOUT {
            return Ok(());
        }
        // Read at most one byte past the limit, so an endless line costs bounded memory.
        let budget = (MAX_LINE + 1).saturating_sub(line.len()) as u64;
        match (&mut reader).take(budget).read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        last_activity = Instant::now();
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        } else if line.len() <= MAX_LINE {
            // End of stream inside a line: answer what there is, then close.
            let reply = handle_line(state, &line);
            return write_reply(&mut writer, &reply);
        }
        if line.len() > MAX_LINE {
            let reply = Reply::error(
                ErrorCode::TooLong,
                format!("request longer than {MAX_LINE} bytes"),
            );
            write_reply(&mut writer, &reply)?;
            // Closing with unread input would reset the connection and could destroy the
            // reply before the client reads it: signal end of replies, then discard a bounded
            // amount of what the client is still sending.
            writer.shutdown(std::net::Shutdown::Write)?;
            let _ = io::copy(&mut reader.take(DRAIN_LIMIT), &mut io::sink());
            return Ok(());
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            let reply = if allowance.try_take(Instant::now(), 1.0) {
                handle_line(state, &line)
            } else {
                Reply::error(
                    ErrorCode::RateLimited,
                    format!("more than {requests_per_second} requests per second"),
                )
            };
            write_reply(&mut writer, &reply)?;
        }
        line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knobs::{Modality, SchedulerParam};
    use crate::snapshot::{EngineSnapshot, PathSnapshot};
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::testing::path;

    fn state_with(paths: Vec<PathSnapshot>) -> (Arc<ControlState>, crate::Engine) {
        let (state, mut engine) = crate::test_state(Duration::from_millis(100));
        engine.snapshots.publish(|s| {
            *s = EngineSnapshot {
                paths,
                ..Default::default()
            };
        });
        (state, engine)
    }

    #[test]
    fn paths_reply_carries_share() {
        let (st, _e) = state_with(vec![path(0, 0, 30), path(0, 1, 10)]);
        let Reply::Paths(r) = handle_line(&st, br#"{"cmd":"paths"}"#) else {
            panic!()
        };
        assert_eq!(r.seq, 1);
        assert_eq!(r.paths.len(), 2);
        assert_eq!(r.paths[0].share, 0.75);
    }

    #[test]
    fn no_snapshot_and_no_stats_are_errors() {
        let (st, _e) = crate::test_state(Duration::from_millis(100));
        for (req, kind) in [
            (&br#"{"cmd":"paths"}"#[..], ErrorCode::NoSnapshot),
            (br#"{"cmd":"sessions"}"#, ErrorCode::NoSnapshot),
            (br#"{"cmd":"stats"}"#, ErrorCode::NoStats),
        ] {
            assert!(matches!(handle_line(&st, req), Reply::Error { kind: k, .. } if k == kind));
        }
    }

    #[test]
    fn set_requests_queue_validated_knobs() {
        let (st, mut e) = state_with(vec![]);
        let r = handle_line(
            &st,
            br#"{"cmd":"set","name":"deadline_audio_us","value":"80000"}"#,
        );
        assert_eq!(
            r,
            Reply::Queued {
                knob: Knob::SetSchedulerParam {
                    param: SchedulerParam::DeadlineUs(Modality::Audio),
                    value: 80_000.0
                }
            }
        );
        handle_line(&st, br#"{"cmd":"set","name":"coupled_cc","value":true}"#);
        let bad = handle_line(&st, br#"{"cmd":"set","name":"scheduler","value":"nope"}"#);
        assert!(matches!(
            bad,
            Reply::Error {
                kind: ErrorCode::InvalidKnob,
                ..
            }
        ));
        let bad = handle_line(&st, br#"{"cmd":"set","name":"target_skew_us","value":-5}"#);
        assert!(matches!(
            bad,
            Reply::Error {
                kind: ErrorCode::InvalidKnob,
                ..
            }
        ));
        let mut got = Vec::new();
        e.knobs.drain(|k| got.push(k));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Knob::SetCoupledCc { on: true });
    }

    #[test]
    fn path_requests_resolve_against_the_snapshot() {
        let (st, mut e) = state_with(vec![path(0, 1, 0), path(2, 1, 0), path(2, 3, 0)]);
        let r = handle_line(&st, br#"{"cmd":"path","id":3,"status":"drain"}"#);
        let want = Knob::SetPathStatus {
            session: 2,
            path: 3,
            status: PathState::Drain,
            precedence: 7,
        };
        assert_eq!(r, Reply::Queued { knob: want });
        let r = handle_line(&st, br#"{"cmd":"path","id":1,"status":"standby"}"#);
        assert!(
            matches!(r, Reply::Error { ref message, .. } if message.contains("several")),
            "{r:?}"
        );
        let r = handle_line(
            &st,
            br#"{"cmd":"path","session":0,"id":1,"status":"standby","precedence":2}"#,
        );
        assert!(matches!(
            r,
            Reply::Queued {
                knob: Knob::SetPathStatus {
                    session: 0,
                    precedence: 2,
                    ..
                }
            }
        ));
        let r = handle_line(&st, br#"{"cmd":"path","id":9,"status":"standby"}"#);
        assert!(
            matches!(r, Reply::Error { ref message, .. } if message.contains("no path 9")),
            "{r:?}"
        );
        let r = handle_line(&st, br#"{"cmd":"path","id":3,"status":"up"}"#);
        assert!(matches!(
            r,
            Reply::Error {
                kind: ErrorCode::InvalidKnob,
                ..
            }
        ));
        assert_eq!(e.knobs.drain(|_| {}), 2);
    }

    #[test]
    fn malformed_and_oversized_lines_are_errors() {
        let (st, _e) = state_with(vec![]);
        for line in [
            &b"{"[..],
            b"\xff\xfe",
            br#"{"cmd":"reboot"}"#,
            b"[]",
            b"null",
        ] {
            assert!(matches!(
                handle_line(&st, line),
                Reply::Error {
                    kind: ErrorCode::Malformed,
                    ..
                }
            ));
        }
        let long = vec![b' '; MAX_LINE + 1];
        assert!(matches!(
            handle_line(&st, &long),
            Reply::Error {
                kind: ErrorCode::TooLong,
                ..
            }
        ));
    }

    #[test]
    fn real_socket_round_trip_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("campd.sock");
        let (st, _e) = state_with(vec![path(0, 0, 1)]);
        let mut server = SocketServer::spawn(&sock, st, SocketAccess::default()).unwrap();
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        assert!(matches!(
            SocketServer::spawn(
                &sock,
                crate::test_state(Duration::from_secs(1)).0,
                SocketAccess::default()
            ),
            Err(SocketError::InUse(_))
        ));

        let stream = UnixStream::connect(&sock).unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut reply = String::new();
        w.write_all(b"{\"cmd\":\"paths\"}\n\n{bad\n").unwrap();
        r.read_line(&mut reply).unwrap();
        assert!(
            matches!(serde_json::from_str(&reply).unwrap(), Reply::Paths(p) if p.paths.len() == 1)
        );
        reply.clear();
        r.read_line(&mut reply).unwrap();
        assert!(matches!(
            serde_json::from_str(&reply).unwrap(),
            Reply::Error {
                kind: ErrorCode::Malformed,
                ..
            }
        ));
        // An endless line: one error, then the server hangs up.
        w.write_all(&vec![b'x'; MAX_LINE * 3]).unwrap();
        reply.clear();
        r.read_line(&mut reply).unwrap();
        assert!(matches!(
            serde_json::from_str(&reply).unwrap(),
            Reply::Error {
                kind: ErrorCode::TooLong,
                ..
            }
        ));
        reply.clear();
        assert_eq!(r.read_line(&mut reply).unwrap(), 0, "connection closed");

        server.stop();
        assert!(!sock.exists(), "socket file removed on stop");
    }

    #[test]
    fn requests_beyond_the_rate_are_refused_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ctl.sock");
        let (st, _engine) = crate::test_state(Duration::from_secs(1));
        let access = SocketAccess {
            group: None,
            requests_per_second: 5,
        };
        let mut server = SocketServer::spawn(&sock, st, access).unwrap();
        let ask = |n: usize| {
            let stream = UnixStream::connect(&sock).unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = BufReader::new(stream);
            // One write of n requests: they arrive faster than 5/s whatever the scheduler.
            let batch = "{\"cmd\":\"paths\"}\n".repeat(n);
            w.write_all(batch.as_bytes()).unwrap();
            (0..n)
                .map(|_| {
                    let mut line = String::new();
                    r.read_line(&mut line).unwrap();
                    line.contains("rate_limited")
                })
                .collect::<Vec<_>>()
        };
        let limited = ask(15);
        // Burst 10: the first ten are served (here: no snapshot yet), the rest refused.
        assert!(limited[..10].iter().all(|l| !l), "{limited:?}");
        assert!(limited[10..].iter().all(|l| *l), "{limited:?}");
        // The limit is per connection: a new one starts with a full budget.
        assert!(!ask(1)[0]);
        server.stop();
    }

    #[test]
    fn connections_beyond_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("campd.sock");
        let (st, _e) = state_with(vec![]);
        let mut server = SocketServer::spawn(&sock, st, SocketAccess::default()).unwrap();
        // Each held connection has been answered, so its thread is running.
        let held: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| {
                let s = UnixStream::connect(&sock).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                w.write_all(b"{\"cmd\":\"stats\"}\n").unwrap();
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                assert!(line.contains("no_stats"), "{line}");
                (w, r)
            })
            .collect();
        let extra = UnixStream::connect(&sock).unwrap();
        let mut line = String::new();
        BufReader::new(extra).read_line(&mut line).unwrap();
        assert!(
            matches!(
                serde_json::from_str(&line).unwrap(),
                Reply::Error {
                    kind: ErrorCode::Busy,
                    ..
                }
            ),
            "{line}"
        );
        drop(held);
        server.stop();
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (st, _e) = state_with(vec![path(0, 1, 5)]);
            let reply = handle_line(&st, &bytes);
            prop_assert!(serde_json::to_string(&reply).is_ok());
        }

        #[test]
        fn arbitrary_json_requests_never_panic(
            cmd in prop_oneof![Just("paths".to_owned()), Just("set".to_owned()), Just("path".to_owned()), Just("stats".to_owned()), ".{0,8}"],
            name in ".{0,24}",
            value in prop_oneof![any::<f64>().prop_map(|v| serde_json::json!(v)), ".{0,12}".prop_map(|s| serde_json::json!(s)), any::<bool>().prop_map(|b| serde_json::json!(b))],
            id in any::<u32>(),
            status in prop_oneof![Just("drain".to_owned()), ".{0,8}"],
        ) {
            let (st, _e) = state_with(vec![path(0, 1, 5)]);
            let line = serde_json::json!({"cmd": cmd, "name": name, "value": value, "id": id, "status": status});
            let reply = handle_line(&st, line.to_string().as_bytes());
            prop_assert!(serde_json::to_string(&reply).is_ok());
        }
    }
}
