//! Captures of the emulated network (issue 12): a captured turn writes one pcap per path
//! with every datagram offered to its links, and the client's TLS key log lets tshark
//! decrypt the QUIC packets down to CAMP's streams.

use std::path::PathBuf;
use std::process::Command;

use camp_proto::config::SchedulerKind;
use camp_sim::matrix::setup;
use camp_sim::run::run_turn_captured;
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, PathConfig};

fn packets_in(pcap: &[u8]) -> u64 {
    let mut at = 24;
    let mut n = 0;
    while at + 16 <= pcap.len() {
        let caught = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caught;
        n += 1;
    }
    assert_eq!(at, pcap.len(), "records end at the end of the file");
    n
}

#[test]
fn a_captured_turn_has_every_offered_datagram_and_decrypts_in_tshark() {
    let paths = vec![
        PathConfig::symmetric(LinkConfig::new(20.0, 10)),
        PathConfig::symmetric(LinkConfig::new(10.0, 30)),
    ];
    let s = setup(paths, SchedulerKind::Camp, 3);
    let turn = TurnConfig {
        duration_ms: 1_500,
        ..TurnConfig::default()
    };
    let (report, capture) = run_turn_captured(&s, &turn, &[]).expect("turn");
    assert!(report.reliable_faults().is_empty());
    let names: Vec<&str> = capture.pcaps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["path0.pcap", "path1.pcap"]);
    for (i, (_, pcap)) in capture.pcaps.iter().enumerate() {
        let l = &report.links[i];
        assert_eq!(packets_in(pcap), l.up.offered + l.down.offered, "path {i}");
    }
    assert!(capture.key_log.contains("CLIENT_TRAFFIC_SECRET_0 "));

    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in &capture.pcaps {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let keys = dir.join("keys.log");
    std::fs::write(&keys, &capture.key_log).unwrap();

    if Command::new("tshark").arg("-v").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark missing (tools/test.sh installs it)"
        );
        eprintln!("skipping the tshark check: tshark not installed");
        return;
    }
    // Decrypted 1-RTT packets show their STREAM frames; without the keys tshark sees only
    // the Initial packets' frames.
    let stream_frames = |with_keys: bool| -> usize {
        let mut cmd = Command::new("tshark");
        cmd.arg("-n")
            .arg("-r")
            .arg(dir.join("path0.pcap"))
            .args(["-d", "udp.port==4433,quic", "-Y", "quic.stream.stream_id"])
            .args(["-T", "fields", "-e", "quic.stream.stream_id"]);
        if with_keys {
            cmd.arg("-o")
                .arg(format!("tls.keylog_file:{}", keys.display()));
        }
        let out = cmd.output().expect("tshark runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let with = stream_frames(true);
    let without = stream_frames(false);
    eprintln!("packets with STREAM frames: {with} decrypted, {without} without keys");
    assert!(
        with > 100,
        "decrypted only {with} packets with STREAM frames"
    );
    assert_eq!(without, 0);
    let _ = std::fs::remove_dir_all(&dir);
}
