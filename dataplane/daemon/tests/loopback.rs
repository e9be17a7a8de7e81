//! No root needed: campd's loop (`daemon::run`) and camp-client's (`client::run_client`)
//! in one process over 127.0.0.1 (one path), with the control socket queried mid-run and a
//! graceful stop at the end.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use campd::client::{ClientArgs, run_client};
use campd::config::{Cli, load};
use clap::Parser;

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn control_request(path: &std::path::Path, line: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(path).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(s, "{line}").unwrap();
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).expect("JSON reply")
}

/// campd running on a thread over 127.0.0.1 with a self-signed certificate and a control
/// socket in a temporary directory; stops by itself after 40 s if the test goes wrong.
struct Running {
    dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    sock: std::path::PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    daemon:
        std::thread::JoinHandle<Result<campd::daemon::DaemonReport, campd::daemon::DaemonError>>,
}

impl Running {
    /// Starts campd with `extra` flags (paths in them may use `{dir}`), waiting until the
    /// certificate, the control socket and every path in `wait_for` exist.
    fn start(extra: &[&str], wait_for: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.der");
        let sock = dir.path().join("campd.sock");
        let port = free_udp_port();
        let d = dir.path().to_str().unwrap().to_owned();
        let mut args: Vec<String> = [
            "campd",
            "--address",
            "127.0.0.1",
            "--io",
            "udp",
            "--self-signed",
            "--prometheus",
            "off",
        ]
        .map(String::from)
        .to_vec();
        args.extend([
            "--port".into(),
            port.to_string(),
            "--cert-out".into(),
            cert.to_str().unwrap().into(),
            "--control-socket".into(),
            sock.to_str().unwrap().into(),
        ]);
        args.extend(extra.iter().map(|a| a.replace("{dir}", &d)));
        let settings = load(&Cli::try_parse_from(&args).unwrap()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let t0 = std::time::Instant::now();
        let daemon = std::thread::spawn(move || {
            campd::daemon::run(&settings, || {
                flag.load(Ordering::Acquire) || t0.elapsed() > Duration::from_secs(40)
            })
        });
        let waits: Vec<std::path::PathBuf> = [cert.clone(), sock.clone()]
            .into_iter()
            .chain(wait_for.iter().map(|w| w.replace("{dir}", &d).into()))
            .collect();
        for _ in 0..200 {
            if waits.iter().all(|p| p.exists()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(waits.iter().all(|p| p.exists()), "campd started: {waits:?}");
        Running {
            dir,
            cert,
            sock,
            port,
            stop,
            daemon,
        }
    }

    /// camp-client arguments for one path to this campd, plus `extra`.
    fn client_args(&self, extra: &[&str]) -> ClientArgs {
        let mut args = vec![
            "camp-client".to_owned(),
            "--local".into(),
            format!("127.0.0.1:{}", free_udp_port()),
            "--server".into(),
            format!("127.0.0.1:{}", self.port),
            "--ca".into(),
            self.cert.to_str().unwrap().into(),
            "--seconds".into(),
            "20".into(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        ClientArgs::try_parse_from(args).unwrap()
    }

    /// Signals the stop and returns campd's report, and the directory (still present
    /// while the caller holds it).
    fn stop(self) -> (campd::daemon::DaemonReport, tempfile::TempDir) {
        self.stop.store(true, Ordering::Release);
        let report = self.daemon.join().unwrap().expect("campd run");
        (report, self.dir)
    }
}

#[test]
fn one_turn_over_loopback_then_graceful_stop() {
    let campd = Running::start(&["--turn-ms", "1000"], &[]);
    let arrivals = campd.dir.path().join("arrivals.csv");
    let args = campd.client_args(&["--arrivals", arrivals.to_str().unwrap()]);
    let (sock, port) = (campd.sock.clone(), campd.port);
    let sock2 = sock.clone();
    let poller = std::thread::spawn(move || {
        // Ask for paths while the session is open.
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            let v = control_request(&sock2, r#"{"cmd":"paths"}"#);
            if v["paths"]["paths"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
            {
                return Some(v);
            }
        }
        None
    });
    let summary = run_client(&args).expect("client run");
    let paths = poller
        .join()
        .unwrap()
        .expect("control socket listed a path");
    let (report, _dir) = campd.stop();

    eprintln!("{}", summary.table());
    assert_eq!(summary.ended_by, "end_of_turn");
    assert_eq!(summary.paths_joined, 1);
    assert_eq!(summary.reliable_lost, 0);
    for m in &summary.modalities[..2] {
        assert!(m.presented > 0 && m.end_of_turn, "{m:?}");
    }
    assert_eq!(
        summary.modalities[0].presented, report.units_submitted[0],
        "every text unit"
    );
    assert_eq!(
        summary.modalities[1].presented, report.units_submitted[1],
        "every audio unit"
    );
    let p = &paths["paths"]["paths"][0];
    assert_eq!(p["local"], format!("127.0.0.1:{port}"));
    assert_eq!(report.sessions, 1);
    assert!(report.drained && report.drain_complete, "{report:?}");
    assert!(report.snapshots > 0);
    assert!(!sock.exists(), "control socket removed at exit");
    let csv = std::fs::read_to_string(&arrivals).unwrap();
    let units: u64 = summary.modalities.iter().map(|m| m.presented).sum();
    assert!(csv.lines().count() as u64 > units, "one CSV row per unit");
}

#[test]
fn units_from_the_ingest_socket_reach_the_client() {
    let campd = Running::start(&["--ingest", "{dir}/ingest.sock"], &["{dir}/ingest.sock"]);
    let ingest = campd.dir.path().join("ingest.sock");
    let sock = campd.sock.clone();
    let mut s = UnixStream::connect(&ingest).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut send = |line: &str| -> serde_json::Value {
        writeln!(s, "{line}").unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).expect("JSON reply")
    };
    // Sent before any session exists: waits in campd for the first one.
    let v = send(r#"{"modality":"text","sync_index":0,"media_ms":0,"payload_b64":"aGk="}"#);
    assert_eq!(v["ok"], true, "{v}");
    let args = campd.client_args(&[]);
    let client = std::thread::spawn(move || run_client(&args));
    // Wait for the session, then send a short turn.
    let mut open = false;
    for _ in 0..200 {
        let v = control_request(&sock, r#"{"cmd":"sessions"}"#);
        if v["sessions"]["sessions"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            open = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(open, "a session opened");
    let bad = send(r#"{"modality":"smell","sync_index":0,"media_ms":0,"size":1}"#);
    assert_eq!(bad["error"], "bad_modality");
    for i in 0..10u32 {
        let eot = i == 9;
        for (m, size) in [("audio", 80), ("video", 3000)] {
            let v = send(&format!(
                r#"{{"modality":"{m}","sync_index":{i},"media_ms":{},"size":{size},"end_of_turn":{eot},"keyframe":{}}}"#,
                i * 40,
                i == 0
            ));
            assert_eq!(v["ok"], true, "{v}");
        }
        if (i % 3 == 0 && i > 0) || eot {
            let v = send(&format!(
                r#"{{"modality":"text","sync_index":{i},"media_ms":{},"payload_b64":"aGVsbG8=","end_of_turn":{eot}}}"#,
                i * 40
            ));
            assert_eq!(v["ok"], true, "{v}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = client.join().unwrap().expect("client run");
    let (report, _dir) = campd.stop();
    eprintln!("{}\n{summary:?}\n{report:?}", summary.table());
    assert_eq!(summary.ended_by, "end_of_turn");
    assert_eq!(summary.reliable_lost, 0);
    assert_eq!(summary.modalities[0].presented, 4, "text");
    assert_eq!(summary.modalities[1].presented, 10, "audio");
    assert_eq!(report.units_submitted, [4, 10, 10]);
    assert_eq!(report.ingest_unrouted, 0);
    assert!(!ingest.exists(), "ingest socket removed");
}

#[test]
fn present_directory_and_qlog_hold_every_presented_unit() {
    let campd = Running::start(&["--turn-ms", "1000"], &[]);
    let dir = campd.dir.path().to_owned();
    let present = dir.join("present");
    let qlog = dir.join("client.sqlog");
    let args = campd.client_args(&[
        "--present",
        &format!("dir:{}", present.display()),
        "--qlog",
        qlog.to_str().unwrap(),
    ]);
    let summary = run_client(&args).expect("client run");
    let (report, _dir) = campd.stop();
    assert_eq!(summary.reliable_lost, 0);
    let mut rows_total = 0;
    for (i, m) in ["text", "audio", "video"].iter().enumerate() {
        let csv = std::fs::read_to_string(present.join(format!("{m}.csv"))).unwrap();
        let rows: Vec<Vec<u64>> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
            .collect();
        let bin = std::fs::read(present.join(format!("{m}.bin"))).unwrap();
        // Rows tile the payload file in order.
        let mut at = 0;
        for r in &rows {
            assert_eq!(r[12], at, "{m} offset");
            at += r[13];
        }
        assert_eq!(at, bin.len() as u64, "{m}.bin length");
        let shown = rows.iter().filter(|r| r[10] == 0).count() as u64;
        assert_eq!(shown, summary.modalities[i].presented, "{m} shown");
        if i < 2 {
            assert_eq!(shown, report.units_submitted[i], "every {m} unit");
            let seqs: Vec<u64> = rows.iter().map(|r| r[0]).collect();
            assert_eq!(seqs, (0..shown).collect::<Vec<_>>(), "{m} in order");
        }
        rows_total += rows.len();
    }
    let text = std::fs::read(&qlog).unwrap();
    let events: Vec<serde_json::Value> = text
        .split(|b| *b == 0x1E)
        .filter(|r| !r.is_empty())
        .map(|r| serde_json::from_slice(r).expect("qlog record is JSON"))
        .collect();
    assert_eq!(events[0]["qlog_format"], "JSON-SEQ");
    let named = |n: &str| events.iter().filter(|e| e["name"] == n).count();
    assert_eq!(named("camp:unit_presented"), rows_total);
    assert_eq!(named("camp:path_joined"), 1);
    assert!(named("camp:playout_delay_updated") >= 1);
    // Event times never go backwards.
    let times: Vec<f64> = events[1..]
        .iter()
        .map(|e| e["time"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn camp_client_binary_writes_records_to_stdout_and_the_summary_to_stderr() {
    let campd = Running::start(&["--turn-ms", "600"], &[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_camp-client"))
        .args([
            "--local",
            &format!("127.0.0.1:{}", free_udp_port()),
            "--server",
            &format!("127.0.0.1:{}", campd.port),
            "--ca",
            campd.cert.to_str().unwrap(),
            "--seconds",
            "20",
            "--json",
            "--present",
            "stdout",
        ])
        .output()
        .expect("camp-client runs");
    let (report, _dir) = campd.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = camp_present::decode_all(&out.stdout).expect("stdout is a record stream");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap()).expect("JSON summary on stderr");
    assert_eq!(summary["reliable_lost"], 0);
    for m in [camp_wire::Modality::Text, camp_wire::Modality::Audio] {
        let n = records.iter().filter(|r| r.modality == m).count() as u64;
        assert_eq!(n, report.units_submitted[m.index()], "{m}");
    }
    // Presentation times of one stream never go backwards.
    let audio: Vec<u64> = records
        .iter()
        .filter(|r| r.modality == camp_wire::Modality::Audio)
        .map(|r| r.present_us)
        .collect();
    assert!(audio.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn qlog_dir_holds_quic_qlog_of_each_path_at_both_ends() {
    let campd = Running::start(
        &["--turn-ms", "500", "--qlog-dir", "{dir}/server-qlog"],
        &[],
    );
    let dir = campd.dir.path().to_owned();
    let client_dir = dir.join("client-qlog");
    let args = campd.client_args(&["--qlog-dir", client_dir.to_str().unwrap()]);
    let summary = run_client(&args).expect("client run");
    let (report, _dir) = campd.stop();
    assert_eq!(summary.reliable_lost, 0);
    let records = |path: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read(path)
            .unwrap()
            .split(|b| *b == 0x1E)
            .filter(|r| !r.iter().all(u8::is_ascii_whitespace))
            .map(|r| serde_json::from_slice(r).expect("qlog record is JSON"))
            .collect()
    };
    // The server's CAMP-level unit log beside the path's QUIC qlog: the path joined, every
    // unit sent was acknowledged or dropped, all in one session.
    let units = records(&dir.join("server-qlog").join("camp-units.sqlog"));
    assert_eq!(units[0]["trace"]["vantage_point"]["type"], "server");
    let count = |name: &str| units.iter().filter(|r| r["name"] == name).count();
    assert_eq!(count("camp:path_joined"), 1);
    assert!(count("camp:unit_sent") > 10, "{} records", units.len());
    assert!(count("camp:unit_acked") > 10, "{} records", units.len());
    assert!(
        units[1..]
            .iter()
            .all(|r| r["data"]["session"] == units[1]["data"]["session"]),
        "one session"
    );
    assert_eq!(report.unit_log_events as usize, units.len() - 1);
    assert_eq!(report.unit_log_lost, 0);
    for (sub, role) in [("server-qlog", "server"), ("client-qlog", "client")] {
        let files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("camp-units.sqlog"))
            .collect();
        assert_eq!(files.len(), 1, "{role}: one path, one file: {files:?}");
        let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with(&format!("{role}-0-")) && name.ends_with(".sqlog"),
            "{name}"
        );
        let bytes = std::fs::read(&files[0]).unwrap();
        let records: Vec<serde_json::Value> = bytes
            .split(|b| *b == 0x1E)
            .filter(|r| !r.iter().all(u8::is_ascii_whitespace))
            .map(|r| serde_json::from_slice(r).expect("qlog record is JSON"))
            .collect();
        let sent = records
            .iter()
            .filter(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("packet_sent"))
            })
            .count();
        assert!(
            sent > 3,
            "{role}: {sent} packet_sent events in {} records",
            records.len()
        );
    }
}
