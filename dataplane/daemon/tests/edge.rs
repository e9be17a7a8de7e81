//! The edge of campd against strangers (issue 11): no root needed, everything on 127.0.0.1.
//!
//! * An independent QUIC stack (aioquic, `tests/strangers.py`) knocks with a wrong ALPN,
//!   with garbage instead of HELLO, and with nothing at all, while a real camp-client is
//!   served; each case must be refused the documented way and counted.
//! * The control and ingest sockets are 0660, a control connection is rate-limited, and the
//!   ingest socket's per-session unit rate holds.
//!
//! The aioquic test needs `python3` with `aioquic` (`pip install aioquic`); without it the
//! test says so and passes, except with `CI=true`, where it fails (CI installs it).

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use campd::client::{ClientArgs, run_client};
use campd::config::{Cli, load};
use clap::Parser;

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

fn control_request(path: &Path, line: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(path).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    writeln!(s, "{line}").unwrap();
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).expect("JSON reply")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// campd on a thread over 127.0.0.1 (self-signed certificate, control socket and extra
/// files in a temporary directory); it stops by itself after 60 s if a test goes wrong.
struct Campd {
    dir: tempfile::TempDir,
    cert: PathBuf,
    sock: PathBuf,
    port: u16,
    stop: Arc<AtomicBool>,
    thread:
        std::thread::JoinHandle<Result<campd::daemon::DaemonReport, campd::daemon::DaemonError>>,
}

impl Campd {
    fn start(extra: &[&str], wait_for: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let cert = dir.path().join("cert.der");
        let sock = dir.path().join("campd.sock");
        let port = free_udp_port();
        let mut args: Vec<String> = vec![
            "campd".into(),
            "--address".into(),
            "127.0.0.1".into(),
            "--io".into(),
            "udp".into(),
            "--self-signed".into(),
            "--prometheus".into(),
            "off".into(),
            "--port".into(),
            port.to_string(),
            "--cert-out".into(),
            cert.to_str().unwrap().into(),
            "--control-socket".into(),
            sock.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|a| a.replace("{dir}", &d)));
        let settings = load(&Cli::try_parse_from(&args).unwrap()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let t0 = Instant::now();
        let thread = std::thread::spawn(move || {
            campd::daemon::run(&settings, || {
                flag.load(Ordering::Acquire) || t0.elapsed() > Duration::from_secs(60)
            })
        });
        let waits: Vec<PathBuf> = [cert.clone(), sock.clone()]
            .into_iter()
            .chain(wait_for.iter().map(|w| w.replace("{dir}", &d).into()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !waits.iter().all(|p| p.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(waits.iter().all(|p| p.exists()), "campd started: {waits:?}");
        Campd {
            dir,
            cert,
            sock,
            port,
            stop,
            thread,
        }
    }

    fn client_args(&self, seconds: u32) -> ClientArgs {
        ClientArgs::try_parse_from([
            "camp-client".to_owned(),
            "--local".into(),
            format!("127.0.0.1:{}", free_udp_port()),
            "--server".into(),
            format!("127.0.0.1:{}", self.port),
            "--ca".into(),
            self.cert.to_str().unwrap().into(),
            "--seconds".into(),
            seconds.to_string(),
        ])
        .unwrap()
    }

    fn edge(&self) -> serde_json::Value {
        let v = control_request(&self.sock, r#"{"cmd":"sessions"}"#);
        v["sessions"]["server"].clone()
    }

    fn stop(self) -> (campd::daemon::DaemonReport, tempfile::TempDir) {
        self.stop.store(true, Ordering::Release);
        (self.thread.join().unwrap().expect("campd run"), self.dir)
    }
}

fn aioquic_available() -> Result<(), String> {
    match Command::new("python3")
        .args(["-c", "import aioquic"])
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "python3 cannot import aioquic ({}); pip install aioquic",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("no python3: {e}")),
    }
}

/// The HELLO timeout this test runs campd with; the draft leaves it to the implementation,
/// campd's default is 10 s (`hello_timeout_ms`, docs/tuning.md).
const HELLO_TIMEOUT_MS: u64 = 1500;

#[test]
fn strangers_with_an_independent_quic_stack_are_refused_and_counted() {
    if let Err(why) = aioquic_available() {
        assert!(!in_ci(), "CI must run the aioquic test: {why}");
        eprintln!("skipping the aioquic stranger test: {why}");
        return;
    }
    let campd = Campd::start(
        &[
            "--hello-timeout-ms",
            &HELLO_TIMEOUT_MS.to_string(),
            "--turn-ms",
            "3000",
        ],
        &[],
    );
    // A real client is served throughout.
    let args = campd.client_args(20);
    let client = std::thread::spawn(move || run_client(&args));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/strangers.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            "127.0.0.1",
            &campd.port.to_string(),
            &format!("{}", HELLO_TIMEOUT_MS as f64 / 1000.0 + 5.0),
        ])
        .output()
        .expect("run strangers.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "strangers.py failed");
    let cases: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or_else(|| panic!("case {name} reported"))
            .clone()
    };

    // Wrong ALPN: TLS alert no_application_protocol (120) as QUIC CRYPTO_ERROR 0x100 + 120.
    let alpn = case("wrong_alpn");
    assert_eq!(alpn["handshake"], false, "{alpn}");
    assert_eq!(alpn["terminated"], true, "{alpn}");
    assert_eq!(alpn["error_code"], 0x100 + 120, "{alpn}");

    // Garbage on the control stream: CAMP's protocol-violation code with a reason.
    let garbage = case("garbage");
    assert_eq!(garbage["handshake"], true, "{garbage}");
    assert_eq!(
        garbage["error_code"],
        u64::from(camp_proto::codes::PROTOCOL_VIOLATION),
        "{garbage}"
    );
    assert!(
        garbage["reason"]
            .as_str()
            .is_some_and(|r| r.contains("protocol violation")),
        "{garbage}"
    );

    // Nothing at all: closed as late (no HELLO/JOIN in time), after the HELLO timeout and
    // well before twice it.
    let silent = case("silent");
    assert_eq!(silent["handshake"], true, "{silent}");
    assert_eq!(
        silent["error_code"],
        u64::from(camp_proto::join::JoinRefusal::Late.close_code()),
        "{silent}"
    );
    let after = silent["after_handshake_s"]
        .as_f64()
        .expect("closed after the handshake");
    let timeout = HELLO_TIMEOUT_MS as f64 / 1000.0;
    assert!(
        after >= timeout - 0.05 && after < 2.0 * timeout,
        "closed after {after} s"
    );

    // Each case is counted. (Snapshots are 100 ms apart: wait for one taken after the last.)
    let deadline = Instant::now() + Duration::from_secs(3);
    let server = loop {
        let s = campd.edge();
        if s["edge"]["hello_timeouts"].as_u64() >= Some(1) || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("{server}");
    assert!(
        server["edge"]["handshakes_failed"].as_u64() >= Some(1),
        "{server}"
    );
    assert!(server["malformed_control"].as_u64() >= Some(1), "{server}");
    assert!(
        server["edge"]["hello_timeouts"].as_u64() >= Some(1),
        "{server}"
    );

    let summary = client.join().unwrap().expect("client run");
    let (report, _dir) = campd.stop();
    eprintln!("{}", summary.table());
    assert_eq!(summary.ended_by, "end_of_turn");
    assert_eq!(summary.reliable_lost, 0);
    assert_eq!(report.sessions, 1, "the strangers opened no session");
    assert_eq!(
        summary.modalities[1].presented, report.units_submitted[1],
        "every audio unit reached the real client"
    );
}

#[test]
fn sockets_are_0660_and_the_ingest_and_control_rates_hold() {
    let campd = Campd::start(
        &[
            "--ingest",
            "{dir}/ingest.sock",
            "--ingest-units-per-second",
            "20",
            "--control-requests-per-second",
            "5",
        ],
        &["{dir}/ingest.sock"],
    );
    let ingest = campd.dir.path().join("ingest.sock");
    for p in [&campd.sock, &ingest] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{}", p.display());
    }

    // Control: a burst of requests on one connection meets the per-connection limit.
    let mut s = UnixStream::connect(&campd.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(r#"{"cmd":"paths"}\n"#.repeat(30).replace("\\n", "\n").as_bytes())
        .unwrap();
    let mut r = BufReader::new(s);
    let limited = (0..30)
        .filter(|_| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            line.contains("rate_limited")
        })
        .count();
    // Burst 10; at most a few more refill while the 30 are read.
    assert!((15..=20).contains(&limited), "{limited} of 30 rate limited");

    // Ingest: one session, 200 units as fast as the socket takes them; 20/s is the limit.
    let args = campd.client_args(4);
    let client = std::thread::spawn(move || run_client(&args));
    let deadline = Instant::now() + Duration::from_secs(5);
    while campd.edge()["sessions_opened"].as_u64() < Some(1) {
        assert!(Instant::now() < deadline, "a session opened");
        std::thread::sleep(Duration::from_millis(25));
    }
    let t0 = Instant::now();
    let mut w = UnixStream::connect(&ingest).unwrap();
    w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rr = BufReader::new(w.try_clone().unwrap());
    for i in 0..200u32 {
        writeln!(
            w,
            r#"{{"modality":"audio","sync_index":{i},"media_ms":{},"size":80}}"#,
            i * 20
        )
        .unwrap();
        let mut reply = String::new();
        rr.read_line(&mut reply).unwrap();
        assert!(reply.contains("\"ok\":true"), "{reply}");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(3);
    let limited = loop {
        let n = campd.edge()["edge"]["ingest_rate_limited"]
            .as_u64()
            .unwrap_or(0);
        if n > 0 && Instant::now() > t0 + Duration::from_millis(500) || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = client.join().unwrap();
    let (report, _dir) = campd.stop();
    let admitted = report.units_submitted[1] + report.units_refused;
    eprintln!("{elapsed:.3} s: admitted {admitted}, rate limited {limited} ({report:?})");
    assert_eq!(report.ingest_rate_limited, 200 - admitted);
    assert!(limited > 0 && limited <= report.ingest_rate_limited);
    // Burst 20 plus 20/s over however long the 200 lines took (plus the engine's lag).
    let allowed = 20.0 + 20.0 * (elapsed + 0.5);
    assert!(
        admitted >= 20 && (admitted as f64) <= allowed,
        "admitted {admitted}, allowed {allowed}"
    );
}

#[test]
fn retry_always_validates_a_real_client_and_sessions_per_source_hold() {
    // Retry on every new Initial, and one session per source address.
    let campd = Campd::start(
        &[
            "--retry",
            "always",
            "--sessions-per-source",
            "1",
            "--turn-ms",
            "1500",
        ],
        &[],
    );
    let first = campd.client_args(10);
    let client = std::thread::spawn(move || run_client(&first));
    let deadline = Instant::now() + Duration::from_secs(5);
    while campd.edge()["sessions_opened"].as_u64() < Some(1) {
        assert!(
            Instant::now() < deadline,
            "a session opened through the Retry"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    // A second client from the same address (127.0.0.1) while the first is open: its HELLO
    // is refused, and it ends without a session.
    let second = campd.client_args(3);
    let refused = run_client(&second);
    let summary = client.join().unwrap().expect("client run");
    let server = campd.edge();
    let (report, _dir) = campd.stop();
    eprintln!("{server}\n{refused:?}");
    assert_eq!(summary.ended_by, "end_of_turn");
    assert_eq!(summary.reliable_lost, 0);
    assert!(
        refused.as_ref().map_or(true, |s| s.paths_joined == 0),
        "the second session from one source was refused: {refused:?}"
    );
    assert_eq!(report.sessions, 1);
    assert!(
        server["edge"]["retries_sent"].as_u64() >= Some(2),
        "{server}"
    );
    assert_eq!(
        server["edge"]["refused_sessions_per_source"].as_u64(),
        Some(1),
        "{server}"
    );
}
