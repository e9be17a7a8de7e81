//! Root-only: the real `campd` binary in network namespace A and `camp-client` in B, joined
//! by two veth pairs (198.18.10.0/24, 198.18.11.0/24). The client must receive every text
//! and audio unit over two paths; the control socket must list both paths; SIGTERM must
//! drain campd and exit cleanly. Path 0 is rate-shaped (tc netem delay and rate where the
//! kernel has `sch_netem`, else tbf rate only); path 1 is taken down in the middle of the
//! turn, and nothing reliable may be lost while traffic goes on over path 0.
//!
//! Without root these tests print `SKIPPED` and pass, unless `CI` is set, in which case they
//! fail. Namespaces are per run (`cd-<tag>-<pid>-<n>`) and deleted on drop; children are
//! killed on drop; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use camp_testkit::netns::{Lab, Netns, root_or_skip, run, wait_ready};

const SERVER_IFS: [&str; 2] = ["cda0", "cda1"];
const CLIENT_IFS: [&str; 2] = ["cdb0", "cdb1"];
const SERVER_IPS: [&str; 2] = ["198.18.10.1", "198.18.11.1"];
const CLIENT_IPS: [&str; 2] = ["198.18.10.2", "198.18.11.2"];
const PORT: u16 = 4433;
/// Longest any one child may run.
const LIMIT: Duration = Duration::from_secs(45);

/// Starts `program` inside `ns` (`ip netns exec` execs it, so the child's pid is the
/// program's).
fn spawn(ns: &Netns, program: &str, args: &[&str]) -> Proc {
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

/// A child process, killed on drop.
struct Proc {
    child: Child,
    started: Instant,
}

impl Proc {
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
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

/// Server namespace `a` and client namespace `b`, joined by two veth pairs; path 0 shaped.
fn lab(tag: &str) -> Lab {
    let lab = Lab::new(
        tag,
        &[0, 1].map(|i| (SERVER_IFS[i], SERVER_IPS[i], CLIENT_IFS[i], CLIENT_IPS[i])),
    );
    shape(&lab);
    lab
}

/// Shapes path 0 in both directions: netem delay + rate when available, else tbf rate.
/// (AF_XDP transmits bypass the qdisc, so in xdp mode only the client's direction of
/// path 0 is shaped.) Returns the qdisc kind used.
fn shape(lab: &Lab) -> &'static str {
    let mut kind = "netem";
    for (ns, dev) in [(&lab.a, SERVER_IFS[0]), (&lab.b, CLIENT_IFS[0])] {
        let netem = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "tc", "qdisc", "add", "dev", dev, "root",
            ])
            .args(["netem", "delay", "15ms", "rate", "40mbit"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !netem {
            kind = "tbf";
            ns.run(&[
                "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", "40mbit", "burst", "64kb",
                "latency", "100ms",
            ]);
        }
    }
    eprintln!("path 0 shaped with {kind}");
    kind
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

fn turn(tag: &str, io: &str) {
    let lab = lab(tag);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.der");
    let sock = dir.path().join("campd.sock");
    let port = PORT.to_string();
    let mut args = vec![
        "--io",
        io,
        "--port",
        &port,
        "--self-signed",
        "--cert-out",
        cert.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
        "--prometheus",
        "off",
        "--turn-ms",
        "5000",
    ];
    for i in 0..2 {
        args.extend(["--address", SERVER_IPS[i], "--interface", SERVER_IFS[i]]);
    }
    let campd = spawn(&lab.a, env!("CARGO_BIN_EXE_campd"), &args);
    // The socket is bound right after the certificate is written and the I/O opened.
    wait_ready(Duration::from_secs(10), "campd did not start", || {
        cert.exists() && sock.exists()
    });

    let servers: Vec<String> = SERVER_IPS.iter().map(|ip| format!("{ip}:{PORT}")).collect();
    let mut cargs = vec!["--ca", cert.to_str().unwrap(), "--seconds", "20", "--json"];
    for i in 0..2 {
        cargs.extend(["--local", CLIENT_IPS[i], "--server", servers[i].as_str()]);
    }
    let client = spawn(&lab.b, env!("CARGO_BIN_EXE_camp-client"), &cargs);

    // Both paths in the control socket's view while the turn runs.
    let mut listed = None;
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(15) {
        if let Some(v) = control(&sock, r#"{"cmd":"paths"}"#)
            && v["paths"]["paths"].as_array().is_some_and(|p| p.len() == 2)
        {
            listed = Some(v);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let listed = listed.expect("control socket listed both paths");
    let mut locals: Vec<String> = listed["paths"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["local"].as_str().unwrap_or("").to_owned())
        .collect();
    locals.sort();
    assert_eq!(locals, servers, "both server addresses carry a path");
    // Knobs reach the engine: a path's precedence (status unchanged) and the scheduler of
    // new sessions; the next snapshot shows the precedence.
    let pid = listed["paths"]["paths"][1]["path"].as_u64().unwrap();
    let sid = listed["paths"]["paths"][1]["session"].as_u64().unwrap();
    let r = control(
        &sock,
        &format!(
            r#"{{"cmd":"path","session":{sid},"id":{pid},"status":"available","precedence":7}}"#
        ),
    );
    assert!(r.is_some(), "path knob answered");
    let r = control(
        &sock,
        r#"{"cmd":"set","name":"scheduler","value":"minrtt"}"#,
    );
    assert!(r.is_some(), "scheduler knob answered");
    let t2 = Instant::now();
    loop {
        let v = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
        let applied = v["paths"]["paths"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["path"].as_u64() == Some(pid) && p["precedence"] == 7)
        });
        if applied {
            break;
        }
        assert!(
            t2.elapsed() < Duration::from_secs(5),
            "precedence 7 never showed: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(ctl) = campctl() {
        let out = run(&[
            ctl.to_str().unwrap(),
            "paths",
            "--json",
            "--socket",
            sock.to_str().unwrap(),
        ]);
        for s in &servers {
            assert!(out.contains(s.as_str()), "campctl paths lists {s}: {out}");
        }
    }

    // The other knobs reach the engine and show in the settings.
    for line in [
        r#"{"cmd":"set","name":"target_skew_us","value":4000}"#,
        r#"{"cmd":"set","name":"margin_factor","value":1.5}"#,
        r#"{"cmd":"set","name":"deadline_video_us","value":180000}"#,
        r#"{"cmd":"set","name":"log_level","value":"debug"}"#,
        r#"{"cmd":"set","name":"coupled_cc","value":true}"#,
    ] {
        let r = control(&sock, line).expect("set answered");
        assert!(
            r.get("queued").is_some() || r.get("knob").is_some(),
            "{line}: {r}"
        );
    }
    let t3 = Instant::now();
    loop {
        let v = control(&sock, r#"{"cmd":"sessions"}"#).expect("sessions");
        let st = &v["sessions"]["settings"];
        if st["target_skew_us"] == 4000
            && st["deadline_us"][2] == 180000
            && st["log_level"] == "debug"
            && st["coupled_cc"] == true
            && st["scheduler_params"]["margin_factor"] == 1.5
        {
            break;
        }
        assert!(
            t3.elapsed() < Duration::from_secs(5),
            "settings never showed: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Mid-turn, path 1 goes down on the server side; path 0 must carry on.
    let bytes_on = |v: &serde_json::Value, local: &str| -> u64 {
        v["paths"]["paths"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["local"] == local))
            .and_then(|p| p["bytes_sent"].as_u64())
            .unwrap_or(0)
    };
    let before = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
    lab.a
        .run(&["ip", "link", "set", "dev", SERVER_IFS[1], "down"]);
    let cut_at = Instant::now();
    let b0 = bytes_on(&before, &servers[0]);
    let mut grew = false;
    while cut_at.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        let Some(v) = control(&sock, r#"{"cmd":"paths"}"#) else {
            break; // campd may be done with the turn already
        };
        if bytes_on(&v, &servers[0]) > b0 + 10_000 {
            grew = true;
            break;
        }
    }
    assert!(grew, "traffic continued on path 0 after path 1 went down");
    if io == "xdp" {
        // The classifier's counters reach the snapshots, per NIC and per path (campd reads
        // the maps once a second).
        let t4 = Instant::now();
        loop {
            let v = control(&sock, r#"{"cmd":"paths"}"#).expect("paths");
            let nics = v["paths"]["nics"].as_array().cloned().unwrap_or_default();
            assert_eq!(nics.len(), 2, "both NICs: {v}");
            let p0 = v["paths"]["paths"]
                .as_array()
                .and_then(|ps| {
                    ps.iter()
                        .find(|p| p["local"] == servers[0].as_str())
                        .cloned()
                })
                .expect("path 0");
            let nic0 = nics
                .iter()
                .find(|n| n["name"] == SERVER_IFS[0])
                .expect("nic 0");
            if nic0["redirected"]["packets"].as_u64() > Some(0)
                && p0["xdp"]["redirected"].as_u64() > Some(0)
            {
                assert!(
                    p0["xdp"]["redirected"].as_u64() <= nic0["redirected"]["packets"].as_u64(),
                    "a path's frames are a subset of its NIC's: {v}"
                );
                break;
            }
            assert!(
                t4.elapsed() < Duration::from_secs(4),
                "no XDP counters: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    // Per-modality latency reaches the interval histograms (`campctl stats`).
    let t5 = Instant::now();
    loop {
        let v = control(&sock, r#"{"cmd":"stats"}"#).expect("stats");
        let video = &v["stats"]["summary"]["latency"][2];
        if video["count"].as_u64() > Some(0) {
            assert!(video["max_us"].as_u64() < Some(1_000_000), "{v}");
            break;
        }
        assert!(
            t5.elapsed() < Duration::from_secs(4),
            "no latency interval: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let (status, out, err) = client.wait();
    assert!(status.success(), "camp-client failed: {err}");
    let summary: serde_json::Value = serde_json::from_str(out.trim()).expect("client JSON");
    eprintln!("{io}: client summary {summary}");
    assert_eq!(summary["paths_joined"], 2, "{summary}");
    assert_eq!(summary["ended_by"], "end_of_turn", "{summary}");
    assert_eq!(summary["reliable_lost"], 0, "{summary}");
    for m in &summary["modalities"].as_array().unwrap()[..2] {
        assert!(m["presented"].as_u64().unwrap() > 0, "{m}");
        assert_eq!(m["presented"], m["expected"], "{m}");
        assert_eq!(m["end_of_turn"], true, "{m}");
    }

    // Graceful stop: SIGTERM drains and exits 0, removing its socket.
    nix::sys::signal::kill(campd.pid(), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let (status, out, err) = campd.wait();
    assert!(status.success(), "campd exit: {status:?}: {err}");
    let report: serde_json::Value = serde_json::from_str(out.trim()).expect("campd JSON");
    eprintln!("{io}: campd report {report}");
    assert_eq!(report["io"], io);
    assert_eq!(report["paths_joined"], 2);
    assert_eq!(report["drained"], true);
    assert_eq!(
        report["knobs_applied"], 7,
        "path status, scheduler, target skew, margin, video deadline, log level, coupled cc"
    );
    assert!(report["latency_samples"].as_u64() > Some(100), "{report}");
    assert_eq!(
        report["units_submitted"][0], summary["modalities"][0]["presented"],
        "every text unit"
    );
    assert_eq!(
        report["units_submitted"][1], summary["modalities"][1]["presented"],
        "every audio unit"
    );
    assert!(!sock.exists(), "control socket removed");
}

#[test]
fn campd_and_camp_client_over_two_veth_paths_udp() {
    if !root_or_skip("campd_and_camp_client_over_two_veth_paths_udp") {
        return;
    }
    turn("u", "udp");
}

#[test]
fn campd_and_camp_client_over_two_veth_paths_xdp() {
    if !root_or_skip("campd_and_camp_client_over_two_veth_paths_xdp") {
        return;
    }
    turn("x", "xdp");
}
