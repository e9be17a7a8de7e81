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

#[test]
fn one_turn_over_loopback_then_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.der");
    let sock = dir.path().join("campd.sock");
    let arrivals = dir.path().join("arrivals.csv");
    let port = free_udp_port();
    let cli = Cli::try_parse_from([
        "campd",
        "--address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--io",
        "udp",
        "--self-signed",
        "--cert-out",
        cert.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
        "--prometheus",
        "off",
        "--turn-ms",
        "1000",
    ])
    .unwrap();
    let settings = load(&cli).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Safety net: the daemon stops by itself if the test goes wrong.
    let t0 = std::time::Instant::now();
    let daemon = std::thread::spawn(move || {
        campd::daemon::run(&settings, || {
            flag.load(Ordering::Acquire) || t0.elapsed() > Duration::from_secs(40)
        })
    });
    for _ in 0..200 {
        if cert.exists() && sock.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cert.exists() && sock.exists(), "campd started");

    let client_port = free_udp_port();
    let args = ClientArgs::try_parse_from([
        "camp-client",
        "--local",
        &format!("127.0.0.1:{client_port}"),
        "--server",
        &format!("127.0.0.1:{port}"),
        "--ca",
        cert.to_str().unwrap(),
        "--seconds",
        "20",
        "--arrivals",
        arrivals.to_str().unwrap(),
    ])
    .unwrap();
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
    stop.store(true, Ordering::Release);
    let report = daemon.join().unwrap().expect("campd run");

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
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.der");
    let sock = dir.path().join("campd.sock");
    let ingest = dir.path().join("ingest.sock");
    let port = free_udp_port();
    let cli = Cli::try_parse_from([
        "campd",
        "--address",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--io",
        "udp",
        "--self-signed",
        "--cert-out",
        cert.to_str().unwrap(),
        "--control-socket",
        sock.to_str().unwrap(),
        "--ingest",
        ingest.to_str().unwrap(),
        "--prometheus",
        "off",
    ])
    .unwrap();
    let settings = load(&cli).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let t0 = std::time::Instant::now();
    let daemon = std::thread::spawn(move || {
        campd::daemon::run(&settings, || {
            flag.load(Ordering::Acquire) || t0.elapsed() > Duration::from_secs(40)
        })
    });
    for _ in 0..200 {
        if cert.exists() && sock.exists() && ingest.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ingest.exists(), "ingest socket bound");
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
    let client_port = free_udp_port();
    let args = ClientArgs::try_parse_from([
        "camp-client",
        "--local",
        &format!("127.0.0.1:{client_port}"),
        "--server",
        &format!("127.0.0.1:{port}"),
        "--ca",
        cert.to_str().unwrap(),
        "--seconds",
        "20",
    ])
    .unwrap();
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
    stop.store(true, Ordering::Release);
    let report = daemon.join().unwrap().expect("campd run");
    eprintln!("{}\n{summary:?}\n{report:?}", summary.table());
    assert_eq!(summary.ended_by, "end_of_turn");
    assert_eq!(summary.reliable_lost, 0);
    assert_eq!(summary.modalities[0].presented, 4, "text");
    assert_eq!(summary.modalities[1].presented, 10, "audio");
    assert_eq!(report.units_submitted, [4, 10, 10]);
    assert_eq!(report.ingest_unrouted, 0);
    assert!(!ingest.exists(), "ingest socket removed");
}
