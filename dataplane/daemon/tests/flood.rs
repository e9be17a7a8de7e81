//! Root-only, bounded floods at a live session (issue 11 part 4): the real `campd` in
//! namespace A, `camp-client` and a flooder in B, one veth pair (198.18.12.0/24).
//!
//! One session runs undisturbed (the baseline); a second runs while the flooder sends
//! 100 000 random datagrams of 1–1500 bytes at the CAMP port, then 40 000 near-valid
//! Initials (forged versions, truncated long headers, full-size v1 Initials that do not
//! decrypt). Both sessions must lose no reliable unit, campd's RSS must grow by less than
//! 16 MiB, the flooded session's skew p99 must stay within the bound explained at
//! [`skew_bound_us`], and the datagrams campd saw must be counted by reason.
//!
//! Without root these tests print `SKIPPED` and pass, unless `CI` is set. Namespaces are
//! per run and deleted on drop; children are killed on drop; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use camp_testkit::netns::{Lab, Netns, root_or_skip, wait_ready};

const SERVER_IP: &str = "198.18.12.1";
const CLIENT_IP: &str = "198.18.12.2";
const PORT: u16 = 4433;
/// Longest any child may run.
const LIMIT: Duration = Duration::from_secs(60);
/// Random datagrams of the first phase.
const RANDOM: u64 = 100_000;
/// Near-valid Initials of the second phase, per kind (three kinds, the last twice).
const NEAR_VALID: u64 = 10_000;
/// Datagrams per burst of the flood.
const BURST: u64 = 250;
/// The flood's bursts are spread evenly over this span, which starts 0.5 s into the turn
/// and ends before it does, so the whole turn's skew is measured under the flood.
const FLOOD_SPAN: Duration = Duration::from_secs(9);
/// Length of campd's turn: long enough (about 300 video sync indices) that the skew p99 is
/// a statistic of several indices, not of the worst one.
const TURN_MS: u64 = 12_000;

struct Proc {
    child: Child,
    started: Instant,
}

impl Proc {
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded by `LIMIT`) and returns (success, stdout, stderr).
    fn wait(mut self) -> (bool, String, String) {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let (mut out, mut err) = (String::new(), String::new());
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return (status.success(), out, err);
            }
            assert!(
                self.started.elapsed() < LIMIT,
                "child ran longer than {LIMIT:?}"
            );
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

fn control(sock: &Path, line: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(sock).expect("control socket");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    writeln!(s, "{line}").unwrap();
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).expect("JSON reply")
}

/// Resident set size of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// xorshift64*: reproducible bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

/// What the flooder sent, by phase.
#[derive(Debug, Default)]
struct Sent {
    random: u64,
    near_valid: u64,
}

/// Sends the two phases from `CLIENT_IP` (inside namespace B) in bursts of [`BURST`] spread
/// evenly over [`FLOOD_SPAN`]: at most 140 000 datagrams and 20 s.
fn flood(seed: u64) -> Sent {
    let sock = UdpSocket::bind((CLIENT_IP, 0)).expect("flooder socket");
    let to = format!("{SERVER_IP}:{PORT}");
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; 1500];
    let mut sent = Sent::default();
    let t0 = Instant::now();
    let bursts = (RANDOM + 4 * NEAR_VALID).div_ceil(BURST);
    let every = FLOOD_SPAN / u32::try_from(bursts).expect("burst count");
    let mut next = t0;
    let mut burst = |n: &mut u64, total: u64, make: &mut dyn FnMut(&mut Rng, &mut Vec<u8>)| {
        while *n < total && t0.elapsed() < Duration::from_secs(20) {
            for _ in 0..BURST {
                make(&mut rng, &mut buf);
                if sock.send_to(&buf, &to).is_ok() {
                    *n += 1;
                }
                if *n == total {
                    break;
                }
            }
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    };
    // Phase 1: random bytes, random length 1..=1500.
    burst(&mut sent.random, RANDOM, &mut |rng, buf| {
        let len = 1 + (rng.next() % 1500) as usize;
        buf.resize(len, 0);
        rng.fill(buf);
    });
    // Phase 2: near-valid Initials, the kinds interleaved.
    let mut k = 0u64;
    burst(&mut sent.near_valid, 4 * NEAR_VALID, &mut |rng, buf| {
        buf.resize(1200, 0);
        rng.fill(buf);
        buf[0] = 0xc0 | (buf[0] & 0x0f); // long header, fixed bit, Initial
        buf[5] = 8 + (rng.next() % 13) as u8; // DCID 8..=20
        let scid_at = 6 + usize::from(buf[5]);
        buf[scid_at] = 8;
        match k % 4 {
            // A version nobody speaks (never 1, and short enough that no VN is owed).
            0 => {
                let v = (rng.next() as u32) | 0x0a0a_0a0a;
                buf[1..5].copy_from_slice(&v.to_be_bytes());
                buf.truncate(600);
            }
            // v1, cut inside the header.
            1 => {
                buf[1..5].copy_from_slice(&1u32.to_be_bytes());
                let cut = 1 + (rng.next() % (scid_at as u64 + 8)) as usize;
                buf.truncate(cut);
            }
            // v1 Initials of full size that cannot decrypt.
            _ => buf[1..5].copy_from_slice(&1u32.to_be_bytes()),
        }
        k += 1;
    });
    sent
}

/// Bound on the flooded session's skew p99: 10 % above the baseline (issue 11's target).
///
/// The turn is [`TURN_MS`] long so that its p99 is a statistic of about three video sync
/// indices. With the 4 s turn this test had before, the p99 was the single worst index: two
/// undisturbed runs differed by up to 8 % and a 10 % bound failed on noise, so it was held
/// to 50 %. With 12 s and the flood spread over the turn, the p99 moved +1.1 % (kernel UDP)
/// and +2.4 % (AF_XDP) on the 2-core development machine, with two other builds running.
fn skew_bound_us(baseline_us: u64) -> u64 {
    baseline_us + baseline_us / 10
}

/// Bound on the flooded session's mean skew C: 10 % above the baseline, or 1 ms.
fn mean_bound_us(baseline_us: f64) -> f64 {
    baseline_us + (baseline_us / 10.0).max(1_000.0)
}

fn client_run(lab: &Lab, cert: &Path) -> serde_json::Value {
    let server = format!("{SERVER_IP}:{PORT}");
    let client = Proc::spawn(
        &lab.b,
        env!("CARGO_BIN_EXE_camp-client"),
        &[
            "--ca",
            cert.to_str().unwrap(),
            "--seconds",
            "30",
            "--json",
            "--local",
            CLIENT_IP,
            "--server",
            &server,
        ],
    );
    let (ok, out, err) = client.wait();
    assert!(ok, "camp-client failed: {err}");
    let line = out.lines().last().expect("summary line");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn flood_test(tag: &str, io: &str) {
    let lab = Lab::new(tag, &[("cfa0", SERVER_IP, "cfb0", CLIENT_IP)]);
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.der");
    let sock = dir.path().join("campd.sock");
    let port = PORT.to_string();
    let campd = Proc::spawn(
        &lab.a,
        env!("CARGO_BIN_EXE_campd"),
        &[
            "--io",
            io,
            "--port",
            &port,
            "--address",
            SERVER_IP,
            "--interface",
            "cfa0",
            "--self-signed",
            "--cert-out",
            cert.to_str().unwrap(),
            "--control-socket",
            sock.to_str().unwrap(),
            "--prometheus",
            "off",
            "--turn-ms",
            &TURN_MS.to_string(),
        ],
    );
    wait_ready(Duration::from_secs(10), "campd did not start", || {
        cert.exists() && sock.exists()
    });

    // The skew p99 must stay within 10 %. A pair of runs that misses it is run once more:
    // on a shared 2-core machine a burst of load from other processes can raise one run's
    // p99 by more than that (seen once in three pairs, +12.7 %, while builds ran), and a
    // flood that really disturbs the session fails both pairs.
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let (b, f) = flood_round(&lab, &cert, &sock, campd.pid(), io);
        pairs.push((b, f));
        if f <= skew_bound_us(b) {
            break;
        }
    }
    drop(campd);
    let &(b, f) = pairs.last().expect("a round");
    assert!(
        f <= skew_bound_us(b),
        "skew p99 (baseline, flooded) us: {pairs:?}"
    );
}

/// One baseline session, then one under the flood; checks all but the skew p99 and returns
/// (baseline, flooded) skew p99 in µs.
fn flood_round(lab: &Lab, cert: &Path, sock: &Path, campd_pid: u32, io: &str) -> (u64, u64) {
    let baseline = client_run(lab, cert);
    let rss_before = rss_kib(campd_pid);
    let before = control(sock, r#"{"cmd":"sessions"}"#)["sessions"]["server"]["edge"].clone();

    let flooder = lab.b.spawn(|| {
        // Let the session start first.
        std::thread::sleep(Duration::from_millis(500));
        flood(0x5eed)
    });
    let flooded = client_run(lab, cert);
    let sent = flooder.join().expect("flooder");
    // Snapshots are 100 ms apart.
    std::thread::sleep(Duration::from_millis(300));
    let rss_after = rss_kib(campd_pid);
    let after = control(sock, r#"{"cmd":"sessions"}"#)["sessions"]["server"]["edge"].clone();

    let count = |v: &serde_json::Value| -> (Vec<u64>, u64) {
        let dropped = v["datagrams_dropped"]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_u64().unwrap_or(0)).collect())
            .unwrap_or_default();
        (dropped, v["datagrams_answered"].as_u64().unwrap_or(0))
    };
    let (d0, a0) = count(&before);
    let (d1, a1) = count(&after);
    let by_reason: Vec<(&str, u64)> = camp_proto::edge::DatagramDrop::ALL
        .iter()
        .zip(d1.iter().zip(d0.iter().chain(std::iter::repeat(&0))))
        .map(|(r, (n1, n0))| (r.name(), n1 - n0))
        .collect();
    let counted: u64 = by_reason.iter().map(|(_, n)| n).sum::<u64>() + (a1 - a0);
    let total = sent.random + sent.near_valid;
    eprintln!(
        "{io}: sent {sent:?}; campd counted {counted} ({by_reason:?}, answered {}); \
         RSS {rss_before} -> {rss_after} KiB; skew p99 baseline {} us, flooded {} us; \
         C baseline {} us, flooded {} us",
        a1 - a0,
        baseline["skew_p99_us"],
        flooded["skew_p99_us"],
        baseline["skew_c_us"],
        flooded["skew_c_us"]
    );

    for (name, s) in [("baseline", &baseline), ("flooded", &flooded)] {
        assert_eq!(s["reliable_lost"], 0, "{name}: {s}");
        assert_eq!(s["ended_by"], "end_of_turn", "{name}: {s}");
    }
    assert_eq!(sent.random, RANDOM);
    assert_eq!(sent.near_valid, 4 * NEAR_VALID);
    assert!(
        rss_after.saturating_sub(rss_before) < 16 * 1024,
        "RSS grew {rss_before} -> {rss_after} KiB"
    );
    let (b, f) = (
        baseline["skew_p99_us"].as_u64().unwrap(),
        flooded["skew_p99_us"].as_u64().unwrap(),
    );
    let (bc, fc) = (
        baseline["skew_c_us"].as_f64().unwrap(),
        flooded["skew_c_us"].as_f64().unwrap(),
    );
    assert!(fc <= mean_bound_us(bc), "mean skew C {bc} -> {fc} us");
    // Nothing campd counted can exceed what was sent; what it did not count was dropped
    // before it (socket buffer or XDP ring full) — see docs/security.md.
    assert!(counted <= total, "counted {counted} of {total}");
    assert!(counted >= total / 2, "counted only {counted} of {total}");
    let reason = |name: &str| by_reason.iter().find(|(r, _)| *r == name).unwrap().1;
    assert!(reason("initial_undecryptable") > 0);
    assert!(reason("unsupported_version") > 0);
    assert!(reason("truncated") > 0);
    (b, f)
}

/// The two floods run one after the other: on a 2-core machine, in parallel they would
/// measure each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn floods_at_a_live_session_over_kernel_udp() {
    if root_or_skip("floods_at_a_live_session_over_kernel_udp") {
        let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        flood_test("cfu", "udp");
    }
}

#[test]
fn floods_at_a_live_session_over_af_xdp() {
    if root_or_skip("floods_at_a_live_session_over_af_xdp") {
        let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        flood_test("cfx", "xdp");
    }
}
