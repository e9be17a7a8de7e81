//! Root-only tests of `camp-bench io --interface` and `--sweep`, run through the binary the
//! way an operator runs it on real NICs (`ip netns exec NS camp-bench io --interface IF`),
//! on veth pairs in namespaces the tests create and delete; and a cross-check of its packet
//! counts against two tools nobody here wrote: netsniff-ng's `trafgen` (sender) and
//! xdp-tools' `xdp-filter` (counting drop program). Addresses: 198.18.7.0/24, 198.18.8.0/24.
//! Without root the tests skip with a message (with `CI` set they fail).
#![cfg(feature = "xdp")]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use camp_testkit::netns::{Netns, root_or_skip, veth_queues};

const BIN: &str = env!("CARGO_BIN_EXE_camp-bench");

fn mac(ns: &Netns, ifname: &str) -> String {
    ns.run(&["cat", &format!("/sys/class/net/{ifname}/address")])
        .trim()
        .to_owned()
}

/// Starts `camp-bench io --role rx` in `ns` and returns once it is receiving.
fn start_receiver(ns: &Netns, ifname: &str, extra: &[&str]) -> Child {
    let mut child = ns
        .command(BIN)
        .args([
            "io",
            "--interface",
            ifname,
            "--role",
            "rx",
            "--format",
            "json",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn camp-bench rx");
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("receiving on") => break,
            Some(Ok(_)) => {}
            _ => {
                let out = child.wait_with_output().expect("rx output");
                panic!(
                    "receiver ended before it was ready: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn finish_json(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().expect("camp-bench output");
    assert!(
        out.status.success(),
        "camp-bench failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("camp-bench JSON")
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run camp-bench");
    assert!(
        out.status.success(),
        "camp-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("camp-bench JSON")
}

fn u(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// Two namespaces joined by a veth pair with `queues` queues: `va` 198.18.7.1 in `a`
/// (sender), `vb` 198.18.7.2 in `b` (receiver).
fn bed(tag: &str, queues: u32) -> (Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    veth_queues(&a, "va", "198.18.7.1", &b, "vb", "198.18.7.2", queues);
    (a, b)
}

/// `--role rx` and `--role tx` in two processes on the two ends of a two-queue veth pair,
/// each given its interface by name: every frame sent is counted once, per queue, and the
/// report carries link speed, line rate and CPU per frame. `--zero-copy` fails clearly.
#[test]
fn interface_roles_count_every_frame_per_queue() {
    if !root_or_skip("interface_roles_count_every_frame_per_queue") {
        return;
    }
    let (a, b) = bed("lr", 2);
    let rx = start_receiver(&b, "vb", &["--queues", "0-1", "--seconds", "2"]);
    let vb_mac = mac(&b, "vb");
    let tx = run_json(a.command(BIN).args([
        "io",
        "--interface",
        "va",
        "--role",
        "tx",
        "--queues",
        "0-1",
        "--peer-mac",
        &vb_mac,
        "--peer",
        "198.18.7.2",
        "--rate",
        "50000",
        "--seconds",
        "1",
        "--max-packets",
        "40000",
        "--format",
        "json",
    ]));
    let rx = finish_json(rx);
    let sent = u(&tx, "sent");
    let received = u(&rx, "received");
    assert!(sent > 10_000 && sent <= 40_000, "{tx}");
    assert_eq!(tx["speed_mbps"], 10_000, "veth reports 10 Gbit/s: {tx}");
    assert!(tx["line_rate_pct"].as_f64().unwrap() > 0.0, "{tx}");
    assert!(tx["tx_cpu_ns_per_pkt"].as_f64().unwrap() > 0.0, "{tx}");
    assert_eq!(rx["bind"], "copy", "veth has no zero-copy AF_XDP");
    // Nothing counted twice; little lost at 50 kpps (a loaded CI machine may deschedule
    // the receiver long enough to fill its ring: then the XSK counters say so).
    assert!(received <= sent, "tx {tx}\nrx {rx}");
    let queues = rx["rx_queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2, "{rx}");
    let xsk_drops: u64 = queues
        .iter()
        .map(|q| u(q, "xsk_rx_ring_full") + u(q, "xsk_rx_dropped"))
        .sum();
    assert!(
        received as f64 >= 0.95 * sent as f64 || received + xsk_drops >= sent,
        "tx {tx}\nrx {rx}"
    );
    // AF_XDP TX on queue q enters the peer's RX queue q: both queues carried traffic.
    let tx_q = tx["tx_queues"].as_array().unwrap();
    for (t, r) in tx_q.iter().zip(queues) {
        assert!(u(t, "sent") > 0 && u(r, "received") > 0, "tx {tx}\nrx {rx}");
    }

    let out = b
        .command(BIN)
        .args(["io", "--interface", "vb", "--role", "rx", "--zero-copy"])
        .args(["--seconds", "0.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--zero-copy") && err.contains("veth never offers it"),
        "{err}"
    );
}

/// The CI-sized sweep: all seven RFC 2544 frame sizes, two search steps, 0.1 s trials.
#[test]
fn ci_sized_sweep_writes_json_csv_and_svg() {
    if !root_or_skip("ci_sized_sweep_writes_json_csv_and_svg") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("camp-sweep-{}", std::process::id()));
    let r = run_json(Command::new(BIN).args([
        "io",
        "--sweep",
        "--steps",
        "2",
        "--trial-seconds",
        "0.1",
        "--format",
        "json",
        "--out",
        dir.to_str().unwrap(),
    ]));
    let rows = r["rows"].as_array().unwrap();
    let sizes: Vec<u64> = rows.iter().map(|row| u(row, "frame_size")).collect();
    assert_eq!(sizes, [64, 128, 256, 512, 1024, 1280, 1518]);
    let mut some_pass = false;
    for row in rows {
        let trials = row["trials"].as_array().unwrap();
        assert!((1..=3).contains(&trials.len()), "{row}");
        let zl = row["zero_loss_pps"].as_f64().unwrap();
        let max = row["sender_max_pps"].as_f64().unwrap();
        // The zero-loss rate is a received rate of a passing trial, never above the sender.
        assert!(zl <= 1.05 * max, "{row}");
        let passing_rates: Vec<f64> = trials
            .iter()
            .filter(|t| t["passed"].as_bool().unwrap())
            .map(|t| t["received"].as_f64().unwrap())
            .collect();
        assert_eq!(zl > 0.0, !passing_rates.is_empty(), "{row}");
        for t in trials {
            assert!(u(t, "received") <= u(t, "sent"), "{row}");
        }
        if zl > 0.0 {
            some_pass = true;
            let lat = row["latency"].as_array().unwrap();
            assert_eq!(lat.len(), 3, "{row}");
            for l in lat {
                let (p50, p99, mx) = (
                    l["p50_us"].as_f64().unwrap(),
                    l["p99_us"].as_f64().unwrap(),
                    l["max_us"].as_f64().unwrap(),
                );
                assert!(0.0 < p50 && p50 <= p99 && p99 <= mx, "{row}");
            }
            let line = row["line_rate_pct"].as_f64().unwrap();
            assert!(line > 0.0 && line <= 100.0, "{row}");
        }
    }
    assert!(some_pass, "no frame size had a zero-loss trial: {r}");
    let csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 8);
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert!(svg.contains("<polyline") && svg.ends_with("</svg>\n"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 7);
    let _ = std::fs::remove_dir_all(&dir);
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Counts of the same traffic agree within 5 %: frames sent by trafgen (netsniff-ng) and
/// counted by `camp-bench io --role rx`; frames sent by `camp-bench io --role tx` and
/// counted by xdp-filter (xdp-tools) dropping them in native XDP.
#[test]
fn counts_agree_with_trafgen_and_xdp_filter() {
    if !root_or_skip("counts_agree_with_trafgen_and_xdp_filter") {
        return;
    }
    if !(have("trafgen") && have("xdp-filter")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "trafgen (netsniff-ng) and xdp-filter (xdp-tools) are needed, and CI is set"
        );
        eprintln!("SKIPPED counts_agree_with_trafgen_and_xdp_filter: no trafgen / xdp-filter");
        return;
    }
    let (a, b) = bed("xc", 1);
    let (va_mac, vb_mac) = (mac(&a, "va"), mac(&b, "vb"));

    // trafgen -> camp-bench rx. The payload starts with camp-bench's stamp for trial 1
    // (magic 0xca3b), so the receiver counts these frames as its own.
    const N: u64 = 100_000;
    let cfg = std::env::temp_dir().join(format!("camp-trafgen-{}.cfg", std::process::id()));
    std::fs::write(
        &cfg,
        format!(
            "{{ eth(da={vb_mac}, sa={va_mac}), ipv4(sa=198.18.7.1, da=198.18.7.2), \
             udp(sp=5000, dp=4433), 0xca, 0x3b, 0x00, 0x01, fill(0x00, 14) }}\n"
        ),
    )
    .unwrap();
    let rx = start_receiver(&b, "vb", &["--seconds", "2"]);
    let out = a
        .command("trafgen")
        .args(["-o", "va", "-i", cfg.to_str().unwrap()])
        .args(["-n", &N.to_string(), "-b", "100000pps", "-P", "1", "-Q"])
        .output()
        .expect("trafgen");
    let _ = std::fs::remove_file(&cfg);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "trafgen: {text}");
    let trafgen_sent: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_suffix("packets outgoing"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no packet count in trafgen's output: {text}"));
    let rx = finish_json(rx);
    let received = u(&rx, "received");
    eprintln!("trafgen sent {trafgen_sent}, camp-bench received {received}: {rx}");
    assert_eq!(trafgen_sent, N);
    // What reached camp-bench's socket: frames it received plus the frames the kernel
    // dropped at its XSK (fill ring empty or RX ring full, XDP_STATISTICS). On a loaded
    // 2-core machine the receiving thread can fall behind trafgen's bursts, so received
    // alone varies (74-100 % seen in CI-like runs); the accounting must still add up.
    let xsk_dropped: u64 = rx["rx_queues"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .map(|q| q["xsk_rx_dropped"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let accounted = received + xsk_dropped;
    assert!(
        received <= trafgen_sent
            && (accounted as f64 - trafgen_sent as f64).abs() <= 0.05 * trafgen_sent as f64,
        "trafgen {trafgen_sent} vs camp-bench {received} received + {xsk_dropped} dropped at the XSK: {rx}"
    );
    assert!(
        received as f64 >= 0.5 * trafgen_sent as f64,
        "camp-bench received only {received} of {trafgen_sent}: {rx}"
    );

    // camp-bench tx -> xdp-filter. xdp-filter keeps its state in bpffs, which `ip netns
    // exec` hides: one shell mounts a private bpffs in its own mount namespace, loads the
    // filter, drops UDP to 4433, waits for a line on stdin, prints its status, unloads.
    let mut filt = b
        .command("sh")
        .args([
            "-c",
            "mount -t bpf bpf /sys/fs/bpf && xdp-filter load -m native vb && \
             xdp-filter port -m dst 4433 && echo ready && read _ && xdp-filter status; \
             xdp-filter unload vb --all",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xdp-filter");
    let mut fout = BufReader::new(filt.stdout.take().unwrap());
    let mut line = String::new();
    fout.read_line(&mut line).unwrap();
    if line.trim() != "ready" {
        let mut err = String::new();
        let _ = filt.stderr.take().unwrap().read_to_string(&mut err);
        panic!("xdp-filter did not load: {line}{err}");
    }
    let tx = run_json(a.command(BIN).args([
        "io",
        "--interface",
        "va",
        "--role",
        "tx",
        "--peer-mac",
        &vb_mac,
        "--peer",
        "198.18.7.2",
        "--rate",
        "100000",
        "--seconds",
        "2",
        "--max-packets",
        &N.to_string(),
        "--format",
        "json",
    ]));
    filt.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut status = String::new();
    fout.read_to_string(&mut status).unwrap();
    let _ = filt.wait();
    let dropped: u64 = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("XDP_DROP"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no XDP_DROP count in xdp-filter status: {status}"));
    let sent = u(&tx, "sent");
    eprintln!("camp-bench sent {sent}, xdp-filter dropped {dropped}");
    assert_eq!(sent, N, "{tx}");
    assert!(
        (dropped as f64 - sent as f64).abs() <= 0.05 * sent as f64,
        "camp-bench {sent} vs xdp-filter {dropped}\n{status}"
    );
}

/// `--role both` with two ports in one namespace (the two-ports-of-one-host setup): peer MAC
/// and address default to the receiving port's, nothing sent is counted twice, latency is
/// reported, and a sweep outside role both is refused.
#[test]
fn role_both_on_two_ports_of_one_namespace() {
    if !root_or_skip("role_both_on_two_ports_of_one_namespace") {
        return;
    }
    let ns = Netns::new("lb");
    ns.run(&[
        "ip", "link", "add", "pa", "type", "veth", "peer", "name", "pb",
    ]);
    for (ifname, addr) in [("pa", "198.18.8.1/24"), ("pb", "198.18.8.2/24")] {
        ns.run(&["ip", "addr", "add", addr, "dev", ifname]);
        ns.run(&["ethtool", "-K", ifname, "tx", "off"]);
        ns.run(&["ip", "link", "set", ifname, "up"]);
    }
    let r = run_json(ns.command(BIN).args([
        "io",
        "--interface",
        "pa",
        "--rx-interface",
        "pb",
        "--role",
        "both",
        "--rate",
        "50000",
        "--seconds",
        "0.5",
        "--frame-size",
        "1518",
        "--format",
        "json",
    ]));
    let (sent, received) = (u(&r, "sent"), u(&r, "received"));
    assert!(sent > 5_000 && received <= sent, "{r}");
    assert_eq!(u(&r, "lost"), sent - received, "{r}");
    let lat = r["latency_ns"].as_array().expect("latency in role both");
    let lat: Vec<u64> = lat.iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(lat[0] > 0 && lat.windows(2).all(|w| w[0] <= w[1]), "{r}");
    // 1518 B frames: Gbit/s follows from the frame rate.
    let gbps = r["gbps"].as_f64().unwrap();
    let pps = r["pps"].as_f64().unwrap();
    assert!((gbps - pps * 1518.0 * 8.0 / 1e9).abs() < 1e-6, "{r}");

    let out = ns
        .command(BIN)
        .args(["io", "--interface", "pa", "--role", "tx", "--sweep"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--role both"));
}
