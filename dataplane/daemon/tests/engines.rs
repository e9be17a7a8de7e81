//! Root-only: the real `campd --engines 2` (kernel UDP, one steered SO_REUSEPORT group per
//! address) in namespace A, and ten `camp-client --routed-joins` processes in B, joined by
//! two veth pairs (198.18.40.0/24, 198.18.41.0/24). Every session must open with both
//! paths on the engine that holds it (no JOIN refused), both engines must hold sessions, no
//! reliable unit may be lost, and the control socket (and campctl, when built) must show the
//! engines' sum. SIGTERM drains both engines. A second test feeds the sessions from the
//! ingest socket: every unit addressed to a session must reach that session's client (its
//! engine), and a unit for "any session" the lowest session id's.
//!
//! The first path of each session reaches an engine by the kernel's 4-tuple hash, so which
//! engine gets which session is random: should all ten land on one engine, the test adds
//! clients one at a time until the other holds one.
//!
//! Without root the test prints `SKIPPED` and passes, unless `CI` is set (then it fails).
//! Namespaces are per run and deleted on drop; children are killed on drop; every wait is
//! bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use camp_testkit::netns::{Lab, Netns, root_or_skip, run, wait_ready};

const SERVER_IFS: [&str; 2] = ["cea0", "cea1"];
const CLIENT_IFS: [&str; 2] = ["ceb0", "ceb1"];
const SERVER_IPS: [&str; 2] = ["198.18.40.1", "198.18.41.1"];
const CLIENT_IPS: [&str; 2] = ["198.18.40.2", "198.18.41.2"];
const PORT: u16 = 4433;
const CLIENTS: usize = 10;
const ENGINES: usize = 2;
/// Longest any one child may run.
const LIMIT: Duration = Duration::from_secs(30);

/// A child process, killed on drop.
struct Proc {
    child: Child,
    started: Instant,
}

impl Proc {
    /// Starts `program` inside `ns` (`ip netns exec` execs it, so the pid is the program's).
    fn spawn(ns: &Netns, program: &str, args: &[String]) -> Proc {
        let child = ns
            .command(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        Proc {
            child,
            started: Instant::now(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the child exits or `LIMIT` from its start passes (then kills it and
    /// panics); returns its status, stdout and stderr.
    fn wait(mut self) -> (ExitStatus, String, String) {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut out = String::new();
                let mut err = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status, out, err);
            }
            if self.started.elapsed() > LIMIT {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("child ran longer than {LIMIT:?}; stderr: {err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request line on campd's control socket.
fn control(sock: &Path, line: &str) -> Option<serde_json::Value> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    writeln!(s, "{line}").ok()?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).ok()?;
    serde_json::from_str(&reply).ok()
}

/// campctl next to our binaries, if the workspace build produced it.
fn campctl() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_campd")).with_file_name("campctl");
    p.exists().then_some(p)
}

/// CPU time (user + system, clock ticks) of each of `pid`'s threads named `campd-engine-*`,
/// by engine.
fn engine_cpu_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !comm.starts_with("campd-engine-") {
            continue;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|x| x.parse().ok())
            .collect();
        out.push((comm.to_owned(), f.iter().sum()));
    }
    out.sort();
    out
}

/// Starts `campd --engines 2` over both veth addresses with `extra` flags; returns it, its
/// certificate and its control socket once both exist.
fn start_campd(lab: &Lab, dir: &Path, extra: &[&str]) -> (Proc, PathBuf, PathBuf) {
    let cert = dir.join("cert.der");
    let sock = dir.join("campd.sock");
    let mut args: Vec<String> = [
        "--engines",
        "2",
        "--io",
        "udp",
        "--port",
        &PORT.to_string(),
        "--self-signed",
        "--cert-out",
        cert.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
        "--prometheus",
        "off",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    for i in 0..2 {
        args.extend(["--address", SERVER_IPS[i], "--interface", SERVER_IFS[i]].map(String::from));
    }
    let campd = Proc::spawn(&lab.a, env!("CARGO_BIN_EXE_campd"), &args);
    wait_ready(Duration::from_secs(10), "campd did not start", || {
        cert.exists() && sock.exists()
    });
    (campd, cert, sock)
}

/// Starts camp-client number `c` with both paths and routed joins.
fn start_client(lab: &Lab, cert: &Path, c: usize) -> Proc {
    let mut a: Vec<String> = ["--ca", cert.to_str().unwrap(), "--seconds", "20"]
        .map(String::from)
        .to_vec();
    a.extend(["--json".into(), "--routed-joins".into()]);
    for i in 0..2 {
        a.extend([
            "--local".into(),
            format!("{}:{}", CLIENT_IPS[i], 7000 + c),
            "--server".into(),
            format!("{}:{PORT}", SERVER_IPS[i]),
        ]);
    }
    Proc::spawn(&lab.b, env!("CARGO_BIN_EXE_camp-client"), &a)
}

/// The open sessions once there are `n`, each with both paths (within 10 s).
fn sessions_with_two_paths(sock: &Path, n: usize) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        if let Some(v) = control(sock, r#"{"cmd":"sessions"}"#) {
            let open = v["sessions"]["sessions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if open.len() == n && open.iter().all(|s| s["paths"] == 2) {
                return v;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not {n} sessions with two paths"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn campd_with_two_engines_serves_every_path_on_its_sessions_engine() {
    if !root_or_skip("campd_with_two_engines_serves_every_path_on_its_sessions_engine") {
        return;
    }
    let lab = Lab::new(
        "ce",
        &[0, 1].map(|i| (SERVER_IFS[i], SERVER_IPS[i], CLIENT_IFS[i], CLIENT_IPS[i])),
    );
    let dir = tempfile::tempdir().unwrap();
    let (campd, cert, sock) = start_campd(&lab, dir.path(), &["--turn-ms", "4000"]);

    let mut clients: Vec<Proc> = (0..CLIENTS).map(|c| start_client(&lab, &cert, c)).collect();

    // Every session open with both paths, in one merged view of both engines. Should the
    // hash have put all ten on one engine (odds 2 in 1024), clients are added one at a
    // time (at most six) until the other engine holds one too.
    let mut sessions = sessions_with_two_paths(&sock, CLIENTS);
    let engines_of = |v: &serde_json::Value| -> std::collections::BTreeSet<u64> {
        v["sessions"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["engine"].as_u64().unwrap())
            .collect()
    };
    while engines_of(&sessions).len() < ENGINES && clients.len() < CLIENTS + 6 {
        clients.push(start_client(&lab, &cert, clients.len()));
        sessions = sessions_with_two_paths(&sock, clients.len());
    }
    let n = clients.len();
    let rows = sessions["sessions"]["sessions"].as_array().unwrap();
    let mut per_engine = [0usize; ENGINES];
    for s in rows {
        let e = s["engine"].as_u64().expect("engine of the session") as usize;
        let id = s["session"].as_u64().unwrap();
        assert_eq!(
            (id >> 24) & 0xff,
            e as u64,
            "the id carries the engine: {s}"
        );
        per_engine[e] += 1;
    }
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|s| s["session"].as_u64().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), n, "session ids unique across engines");
    eprintln!("sessions per engine: {per_engine:?}");
    assert!(
        per_engine.iter().all(|n| *n > 0),
        "both engines hold sessions: {per_engine:?}"
    );
    let server = &sessions["sessions"]["server"];
    assert_eq!(server["sessions_opened"], n, "summed: {server}");
    assert_eq!(server["join_refused"], 0, "{server}");
    // Paths of both engines, each on its session's engine.
    let paths = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
    let listed = paths["paths"]["paths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 2 * n, "{paths}");
    for p in &listed {
        let id = p["session"].as_u64().unwrap();
        assert!(ids.contains(&id), "a path of an open session: {p}");
    }
    if let Some(ctl) = campctl() {
        let out = run(&[
            ctl.to_str().unwrap(),
            "sessions",
            "--socket",
            sock.to_str().unwrap(),
        ]);
        eprintln!("{out}");
        assert!(out.contains("ENGINE"), "{out}");
        assert!(out.contains(&format!("sessions opened {n} ")), "{out}");
    }
    // A knob reaches both engines.
    let r = control(
        &sock,
        r#"{"cmd":"set","name":"target_skew_us","value":3000}"#,
    );
    assert!(r.is_some_and(|r| r.get("queued").is_some()), "knob queued");
    // A path's precedence reaches only the engine of its session (engine 1's, whose ids
    // are not the server's own), and shows in the next snapshot.
    let p = listed
        .iter()
        .find(|p| (p["session"].as_u64().unwrap() >> 24) & 0xff == 1)
        .expect("a path on engine 1");
    let (sid, pid) = (p["session"].as_u64().unwrap(), p["path"].as_u64().unwrap());
    let r = control(
        &sock,
        &format!(
            r#"{{"cmd":"path","session":{sid},"id":{pid},"status":"available","precedence":7}}"#
        ),
    );
    assert!(
        r.is_some_and(|r| r.get("queued").is_some()),
        "path knob queued"
    );
    let t = Instant::now();
    loop {
        let v = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
        let shown = v["paths"]["paths"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["session"].as_u64() == Some(sid)
                    && p["path"].as_u64() == Some(pid)
                    && p["precedence"] == 7
            })
        });
        if shown {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "precedence 7 never showed: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut presented = [0u64; 2];
    for c in clients {
        let (status, out, err) = c.wait();
        assert!(status.success(), "camp-client failed: {err}");
        let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("client JSON");
        assert_eq!(summary["paths_joined"], 2, "{summary}");
        assert_eq!(summary["ended_by"], "end_of_turn", "{summary}");
        assert_eq!(summary["reliable_lost"], 0, "{summary}");
        for (m, seen) in summary["modalities"].as_array().unwrap()[..2]
            .iter()
            .zip(&mut presented)
        {
            assert!(m["presented"].as_u64().unwrap() > 0, "{m}");
            assert_eq!(m["presented"], m["expected"], "{m}");
            *seen += m["presented"].as_u64().unwrap();
        }
    }
    let cpu = engine_cpu_ticks(campd.pid());
    eprintln!("engine CPU (clock ticks, user+system): {cpu:?}");
    assert_eq!(cpu.len(), ENGINES, "one thread per engine: {cpu:?}");

    let pid = nix::unistd::Pid::from_raw(i32::try_from(campd.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (status, out, err) = campd.wait();
    assert!(status.success(), "campd exit: {status:?}: {err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("campd JSON");
    eprintln!("campd report {report}");
    assert_eq!(report["io"], "udp");
    assert_eq!(report["engines"], ENGINES);
    assert_eq!(report["sessions"], n);
    assert_eq!(report["paths_joined"], 2 * n);
    assert_eq!(report["drained"], true);
    assert_eq!(report["drain_complete"], true);
    assert_eq!(
        report["knobs_applied"],
        ENGINES + 1,
        "the skew knob once per engine, the path's on its engine"
    );
    assert_eq!(report["knobs_ignored"], 0, "{report}");
    assert_eq!(
        report["units_submitted"][0], presented[0],
        "every text unit"
    );
    assert_eq!(
        report["units_submitted"][1], presented[1],
        "every audio unit"
    );
    assert!(!sock.exists(), "control socket removed");
}

#[test]
fn ingest_units_reach_their_sessions_engine() {
    if !root_or_skip("ingest_units_reach_their_sessions_engine") {
        return;
    }
    let lab = Lab::new(
        "ci",
        &[0, 1].map(|i| (SERVER_IFS[i], SERVER_IPS[i], CLIENT_IFS[i], CLIENT_IPS[i])),
    );
    let dir = tempfile::tempdir().unwrap();
    let ingest = dir.path().join("ingest.sock");
    let (campd, cert, sock) =
        start_campd(&lab, dir.path(), &["--ingest", ingest.to_str().unwrap()]);
    wait_ready(Duration::from_secs(5), "no ingest socket", || {
        ingest.exists()
    });
    // Clients one at a time until both engines hold a session (the hash decides; at most
    // ten clients, so all on one engine has odds of 1 in 512).
    let mut clients = Vec::new();
    let sessions = loop {
        clients.push(start_client(&lab, &cert, clients.len()));
        let v = sessions_with_two_paths(&sock, clients.len());
        let engines: std::collections::BTreeSet<u64> = v["sessions"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["engine"].as_u64().unwrap())
            .collect();
        if engines.len() == ENGINES && clients.len() >= 3 {
            break v;
        }
        assert!(clients.len() < CLIENTS, "every session on one engine");
    };
    let ids: Vec<u64> = sessions["sessions"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_u64().unwrap())
        .collect();
    eprintln!("sessions {ids:?}");

    let mut s = UnixStream::connect(&ingest).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut send = |line: String| {
        writeln!(s, "{line}").unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        let v: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
        assert_eq!(v["ok"], true, "{line}: {v}");
    };
    // One unit for "any session": the lowest id's (engine 0's first session).
    send(r#"{"modality":"text","sync_index":0,"media_ms":0,"payload_b64":"aGk="}"#.into());
    // Session k gets a turn of 3 + k audio and video units, so each client's audio count
    // names the session its units were addressed to.
    for (k, id) in ids.iter().enumerate() {
        let n = 3 + k as u32;
        // Text opens the turn too: a client ends the turn once every modality it has seen
        // has ended it, so a text unit arriving after audio and video ended may be too late.
        send(format!(
            r#"{{"session":{id},"modality":"text","sync_index":0,"media_ms":0,"payload_b64":"aGVsbG8="}}"#
        ));
        for i in 0..n {
            let eot = i + 1 == n;
            for (m, size) in [("audio", 80), ("video", 3000)] {
                send(format!(
                    r#"{{"session":{id},"modality":"{m}","sync_index":{i},"media_ms":{},"size":{size},"end_of_turn":{eot},"keyframe":{}}}"#,
                    i * 40,
                    i == 0
                ));
            }
        }
        send(format!(
            r#"{{"session":{id},"modality":"text","sync_index":{},"media_ms":{},"payload_b64":"aGVsbG8=","end_of_turn":true}}"#,
            n - 1,
            (n - 1) * 40
        ));
    }
    let mut audio = Vec::new();
    let mut text = 0;
    for c in clients {
        let (status, out, err) = c.wait();
        assert!(status.success(), "camp-client failed: {err}");
        let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("client JSON");
        assert_eq!(summary["ended_by"], "end_of_turn", "{summary}");
        assert_eq!(summary["reliable_lost"], 0, "{summary}");
        audio.push(summary["modalities"][1]["presented"].as_u64().unwrap());
        text += summary["modalities"][0]["presented"].as_u64().unwrap();
    }
    audio.sort_unstable();
    let want: Vec<u64> = (0..ids.len() as u64).map(|k| 3 + k).collect();
    assert_eq!(audio, want, "each session got the units addressed to it");
    assert_eq!(
        text,
        2 * ids.len() as u64 + 1,
        "two text units each, and the one for any session"
    );

    let pid = nix::unistd::Pid::from_raw(i32::try_from(campd.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (status, out, err) = campd.wait();
    assert!(status.success(), "campd exit: {status:?}: {err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("campd JSON");
    eprintln!("campd report {report}");
    assert_eq!(report["ingest_unrouted"], 0, "{report}");
    assert_eq!(
        report["units_submitted"][1],
        want.iter().sum::<u64>(),
        "{report}"
    );
}
