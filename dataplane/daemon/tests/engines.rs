//! Root-only: the real `campd --engines 2` (kernel UDP, one steered SO_REUSEPORT group per
//! address) in namespace A, and ten `camp-client --routed-joins` processes in B, joined by
//! two veth pairs (198.18.40.0/24, 198.18.41.0/24). Every session must open with both
//! paths on the engine that holds it (no JOIN refused), both engines must hold sessions, no
//! reliable unit may be lost, and the control socket (and campctl, when built) must show the
//! engines' sum. SIGTERM drains both engines.
//!
//! The first path of each session reaches an engine by the kernel's 4-tuple hash, so which
//! engine gets which session is random; with ten sessions all on one engine has odds of
//! 2 in 1024.
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
    let cert = dir.path().join("cert.der");
    let sock = dir.path().join("campd.sock");
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
        "--turn-ms",
        "3000",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..2 {
        args.extend(["--address", SERVER_IPS[i], "--interface", SERVER_IFS[i]].map(String::from));
    }
    let campd = Proc::spawn(&lab.a, env!("CARGO_BIN_EXE_campd"), &args);
    wait_ready(Duration::from_secs(10), "campd did not start", || {
        cert.exists() && sock.exists()
    });

    let clients: Vec<Proc> = (0..CLIENTS)
        .map(|c| {
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
        })
        .collect();

    // Every session open with both paths, in one merged view of both engines.
    let t0 = Instant::now();
    let sessions = loop {
        if let Some(v) = control(&sock, r#"{"cmd":"sessions"}"#) {
            let open = v["sessions"]["sessions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if open.len() == CLIENTS && open.iter().all(|s| s["paths"] == 2) {
                break v;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not every session opened with two paths"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
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
    assert_eq!(ids.len(), CLIENTS, "session ids unique across engines");
    eprintln!("sessions per engine: {per_engine:?}");
    assert!(
        per_engine.iter().all(|n| *n > 0),
        "both engines hold sessions: {per_engine:?}"
    );
    let server = &sessions["sessions"]["server"];
    assert_eq!(server["sessions_opened"], CLIENTS, "summed: {server}");
    assert_eq!(server["join_refused"], 0, "{server}");
    // Paths of both engines, each on its session's engine.
    let paths = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
    let listed = paths["paths"]["paths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(listed.len() >= 2 * CLIENTS - 2, "{paths}");
    if let Some(ctl) = campctl() {
        let out = run(&[
            ctl.to_str().unwrap(),
            "sessions",
            "--socket",
            sock.to_str().unwrap(),
        ]);
        eprintln!("{out}");
        assert!(out.contains("ENGINE"), "{out}");
        assert!(
            out.contains(&format!("sessions opened {CLIENTS} ")),
            "{out}"
        );
    }
    // A knob reaches both engines.
    let r = control(
        &sock,
        r#"{"cmd":"set","name":"target_skew_us","value":3000}"#,
    );
    assert!(r.is_some_and(|r| r.get("queued").is_some()), "knob queued");

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
    assert_eq!(report["sessions"], CLIENTS);
    assert_eq!(report["paths_joined"], 2 * CLIENTS);
    assert_eq!(report["drained"], true);
    assert_eq!(report["drain_complete"], true);
    assert_eq!(
        report["knobs_applied"], ENGINES,
        "the knob, once per engine"
    );
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
