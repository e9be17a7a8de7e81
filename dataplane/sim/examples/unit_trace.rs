//! Per-unit trace of one simulated turn (issue 9's diagnosis): every unit's path, media
//! time, arrival, latency and presentation − media time, so the playout delay's trajectory
//! can be compared between profiles, e.g.
//! `cargo run --release -p camp-sim --example unit_trace -- mnh1 single 1`.

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::{PlayoutPolicy, ReceiverConfig};
use camp_sim::Setup;
use camp_sim::profile::{default_dir, load};
use camp_sim::run::run_turn;
use camp_sim::workload::TurnConfig;

fn main() -> Result<(), String> {
    let usage = "usage: unit_trace PROFILE SCHEDULER [SEED]";
    let args: Vec<String> = std::env::args().collect();
    let prof = args.get(1).ok_or(usage)?;
    let sched: SchedulerKind = args
        .get(2)
        .ok_or(usage)?
        .parse()
        .map_err(|e| format!("{e:?}"))?;
    let seed: u64 = match args.get(3) {
        Some(s) => s.parse().map_err(|e| format!("seed: {e}"))?,
        None => 1,
    };
    let sc = load(prof, &default_dir())
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("empty profile")?;
    let setup = Setup {
        paths: sc.paths.clone(),
        scheduler: sched.factory(),
        receiver: ReceiverConfig {
            playout: PlayoutPolicy::camp_default(),
            arrival_log: true,
            ..Default::default()
        },
        camp: CampConfig::default(),
        seed,
    };
    let r = run_turn(&setup, &TurnConfig::default(), &[]).map_err(|e| e.to_string())?;
    let t0 = r.turn_start_us;
    println!("turn_start {t0} final D {}", r.summary.playout_delay_us);
    let mut arr = r.arrivals.clone();
    arr.sort_by_key(|a| a.arrival_us);
    for a in arr.iter() {
        let lat = a.arrival_us as i64 - a.gen_us as i64;
        let pd = a.present_us.map(|p| p as i64 - a.gen_us as i64);
        println!(
            "{:?} seq {} k {} path {:?} gen {:.1} arr {:.1} lat {:.1} pres-gen {:?}",
            a.modality,
            a.seq,
            a.sync_index,
            a.path,
            (a.gen_us as f64 - t0 as f64) / 1e3,
            (a.arrival_us as f64 - t0 as f64) / 1e3,
            lat as f64 / 1e3,
            pd.map(|x| x as f64 / 1e3)
        );
    }
    Ok(())
}
