//! One LLM turn over two emulated paths, in-process: no root, no setup.
//!
//! Prints per-modality latency (L = a − g) and the draft's skew metrics (Delta_k, C) for
//! the CAMP scheduler and the minRTT baseline side by side.

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::ReceiverConfig;
use camp_sim::run::{NetEvent, TurnReport, run_turn, run_turn_captured};
use camp_sim::workload::TurnConfig;
use camp_sim::{LinkConfig, PathConfig, Setup};
use camp_wire::Modality;

fn ms(us: f64) -> String {
    format!("{:.1}", us / 1000.0)
}

fn print(name: &str, r: &TurnReport) {
    let s = &r.summary;
    println!("\n== scheduler {name} (alignment: {}) ==", s.policy);
    println!(
        "{:<6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "stream", "units", "L mean", "p50", "p95", "p99", "dl-miss"
    );
    for m in Modality::ALL {
        let p = &s.per_modality[m.index()];
        println!(
            "{:<6} {:>6} {:>9} {:>8} {:>8} {:>8} {:>10}",
            m.to_string(),
            p.delivered,
            ms(p.latency.mean_us),
            ms(p.latency.p50_us as f64),
            ms(p.latency.p95_us as f64),
            ms(p.latency.p99_us as f64),
            p.deadline_misses
        );
    }
    println!(
        "all    L mean {} ms | skew C = mean Delta_k {} ms, p95 {} ms, p99 {} ms over {} sync groups",
        ms(s.latency.mean_us),
        ms(s.skew_c_us),
        ms(s.skew_p95_us as f64),
        ms(s.skew_p99_us as f64),
        s.skew_groups
    );
    println!(
        "after alignment: playout delay {} ms, A/V offset |p95| {} ms, outside BT.1359 {:.2}%, outside IS-191 {:.2}%",
        ms(s.playout_delay_us as f64),
        ms(s.av_offset_abs_p95_us as f64),
        s.outside_bt1359 * 100.0,
        s.outside_is191 * 100.0
    );
    let total: u64 = r.bytes_per_path.iter().sum::<u64>().max(1);
    let shares: Vec<String> = r
        .bytes_per_path
        .iter()
        .enumerate()
        .map(|(i, b)| format!("p{i} {:.0}%", *b as f64 * 100.0 / total as f64))
        .collect();
    println!(
        "reliable lost {} | reinjected {:?} | path share {} | simulated {:.1} s in {:.2} s",
        r.reliable_lost(),
        r.store.reinjected,
        shares.join(", "),
        r.simulated.as_secs_f64(),
        r.wall.as_secs_f64()
    );
}

/// One simulated LLM turn over two emulated paths (WiFi-like and LTE-like), CAMP and
/// minRTT side by side, with per-modality detail.
#[derive(Debug, clap::Parser)]
#[command(name = "camp-demo", version, about)]
struct Args {
    /// Speech length of the turn, seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Cut the faster path for good halfway through the turn.
    #[arg(long)]
    cut: bool,
    /// Write each path of each run as a pcap, with the client's TLS key log, into
    /// DIR/<scheduler>/ (`tshark -r path0.pcap -o tls.keylog_file:keys.log -d
    /// udp.port==4433,quic` decrypts it).
    #[arg(long, value_name = "DIR")]
    pcap: Option<std::path::PathBuf>,
}

fn main() {
    let Args { seconds, cut, pcap } = <Args as clap::Parser>::parse();
    let paths = vec![
        // WiFi-like and LTE-like paths (one-way delays), as in the picoquic evaluation.
        PathConfig::symmetric(LinkConfig::new(20.0, 10)),
        PathConfig::symmetric(LinkConfig::new(10.0, 35)),
    ];
    let turn = TurnConfig {
        duration_ms: seconds * 1000,
        ..TurnConfig::default()
    };
    let events = if cut {
        vec![NetEvent::Cut {
            path: 0,
            at_ms: seconds * 500,
        }]
    } else {
        vec![]
    };
    println!(
        "CAMP demo: one {seconds} s LLM turn (text, 20 ms audio, 25 fps video) over two emulated paths:\n  p0 20 Mbit/s 10 ms one-way, p1 10 Mbit/s 35 ms one-way{}",
        if cut { "; p0 cut at half time" } else { "" }
    );
    for (name, kind) in [
        ("camp", SchedulerKind::Camp),
        ("minrtt", SchedulerKind::MinRtt),
    ] {
        let setup = Setup {
            paths: paths.clone(),
            scheduler: kind.factory(),
            receiver: ReceiverConfig::default(),
            camp: CampConfig::default(),
            seed: 1,
        };
        let Some(dir) = &pcap else {
            match run_turn(&setup, &turn, &events) {
                Ok(report) => print(name, &report),
                Err(e) => println!("{name}: run failed: {e}"),
            }
            continue;
        };
        match run_turn_captured(&setup, &turn, &events) {
            Ok((report, capture)) => {
                print(name, &report);
                let dir = dir.join(name);
                let written = std::fs::create_dir_all(&dir).and_then(|()| {
                    for (file, bytes) in &capture.pcaps {
                        std::fs::write(dir.join(file), bytes)?;
                    }
                    std::fs::write(dir.join("keys.log"), &capture.key_log)
                });
                match written {
                    Ok(()) => println!(
                        "  capture: {} pcaps and keys.log in {}",
                        capture.pcaps.len(),
                        dir.display()
                    ),
                    Err(e) => println!("  capture not written to {}: {e}", dir.display()),
                }
            }
            Err(e) => println!("{name}: run failed: {e}"),
        }
    }
}
