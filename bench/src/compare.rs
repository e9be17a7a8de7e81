//! `camp-bench compare`: CAMP against the baseline schedulers on the simulator, side by
//! side, for one or more path profiles, several seeds each.
//!
//! Every run drives the real CAMP server and client (quinn-proto, TLS 1.3) over the
//! emulated paths of the profile. Figures are means over seeds (and over scenarios for the
//! P6 sweep) with a 95% confidence interval (Student's t).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use camp_proto::config::SchedulerKind;
use camp_recv::PlayoutPolicy;
use camp_sim::experiment::{Experiment, RunMetrics, VideoNotShown, run, run_captured};

use crate::dominance::{Rule, Viewer, dominates};
use camp_sim::profile::{self, Scenario};
use camp_sim::workload::TurnConfig;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Arguments of `camp-bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Path profile(s): P1..P6 or a .toml file (comma-separated).
    #[arg(long, default_value = "P2", value_delimiter = ',')]
    profile: Vec<String>,
    /// Run every shipped profile (P1–P6).
    #[arg(long)]
    all: bool,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 5)]
    runs: u64,
    /// Schedulers (comma-separated names; default: all).
    #[arg(long, value_delimiter = ',')]
    schedulers: Vec<String>,
    /// Client alignment policy: camp, fixed, lipsync, onarrival, or `all` to cross every
    /// scheduler with every policy.
    #[arg(long, default_value = "camp")]
    policy: String,
    /// Speech length of the turn, ms (profiles may override).
    #[arg(long, default_value_t = 10_000)]
    turn_ms: u64,
    /// Release every unit at its media time (no LLM/TTS production ahead of real time).
    #[arg(long)]
    realtime: bool,
    /// Replay a JSON-lines turn trace instead of the seeded synthetic turn (one unit per
    /// line: release_ms, media_ms, modality, size, optional sync_index / keyframe /
    /// end_of_turn / deadline_ms).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Write the synthetic turn of seed 1 as a JSON-lines trace to this file and exit.
    #[arg(long)]
    dump_turn: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Directory for CSV files and SVG plots.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Capture the first seed of every (profile, scheduler, policy) as pcaps with the TLS
    /// key log, into DIR/<profile>/<scheduler>-<policy>/ (Wireshark / tshark decrypt them).
    #[arg(long, value_name = "DIR")]
    pcap: Option<PathBuf>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Directory holding the profiles.
    #[arg(long)]
    profiles_dir: Option<PathBuf>,
}

/// Writes one run's capture under `dir`/<profile>[-variant]/<scheduler>-<policy>/.
fn write_capture(
    dir: &std::path::Path,
    e: &Experiment,
    capture: &camp_sim::run::TurnCapture,
) -> Result<(), String> {
    let mut profile = e.scenario.profile.clone();
    if !e.scenario.variant.is_empty() {
        profile = format!("{profile}-{}", e.scenario.variant);
    }
    let d = dir
        .join(profile)
        .join(format!("{}-{}", e.scheduler.name(), e.policy.name()));
    let io = |r: std::io::Result<()>| r.map_err(|err| format!("{}: {err}", d.display()));
    io(std::fs::create_dir_all(&d))?;
    for (file, bytes) in &capture.pcaps {
        io(std::fs::write(d.join(file), bytes))?;
    }
    io(std::fs::write(d.join("keys.log"), &capture.key_log))
}

fn policies(name: &str) -> Result<Vec<PlayoutPolicy>, String> {
    let camp = PlayoutPolicy::camp_default();
    let fixed = PlayoutPolicy::Fixed { delay_us: 150_000 };
    let lipsync = PlayoutPolicy::LipSync {
        audio_delay_us: 60_000,
    };
    Ok(match name {
        "camp" => vec![camp],
        "fixed" => vec![fixed],
        "lipsync" => vec![lipsync],
        "onarrival" => vec![PlayoutPolicy::OnArrival],
        "all" => vec![camp, fixed, lipsync, PlayoutPolicy::OnArrival],
        other => return Err(format!("unknown policy {other:?}")),
    })
}

/// Mean and 95% confidence half-width.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Half-width of the 95% confidence interval (0 with one sample).
    pub ci95: f64,
}

fn t_975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 {
        0.0
    } else {
        T.get(df - 1).copied().unwrap_or(1.96)
    }
}

fn stat(xs: impl Iterator<Item = f64>) -> Stat {
    let v: Vec<f64> = xs.collect();
    let n = v.len();
    if n == 0 {
        return Stat {
            mean: f64::NAN,
            ci95: 0.0,
        };
    }
    let mean = v.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Stat { mean, ci95: 0.0 };
    }
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    Stat {
        mean,
        ci95: t_975(n - 1) * (var / n as f64).sqrt(),
    }
}

/// A run that produced no figures (its session did not start, ...): counted and reported,
/// never a panic.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FailedRun {
    /// Profile variant (sweeps).
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// What went wrong.
    pub error: String,
}

/// One row of the comparison: a scheduler (and policy) on a profile.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    /// Scheduler name.
    pub scheduler: String,
    /// Alignment policy.
    pub policy: String,
    /// Profile.
    pub profile: String,
    /// Runs aggregated (the failed ones not included).
    pub runs: usize,
    /// Runs that failed, with why; their figures are missing from the row.
    pub failed: Vec<FailedRun>,
    /// Speech length of the turn, ms.
    #[serde(skip)]
    pub turn_ms: u64,
    /// Mean per-unit lateness (draft L), ms.
    #[serde(rename = "L_ms")]
    pub l_ms: f64,
    /// 95% CI of L.
    #[serde(rename = "L_ci95_ms")]
    pub l_ci: f64,
    /// 99th percentile lateness, ms (mean over runs).
    #[serde(rename = "L_p99_ms")]
    pub l_p99_ms: f64,
    /// C = mean Delta_k, ms.
    #[serde(rename = "C_ms")]
    pub c_ms: f64,
    /// 95% CI of C.
    #[serde(rename = "C_ci95_ms")]
    pub c_ci: f64,
    /// Delta_k p95, ms.
    pub skew_p95_ms: f64,
    /// Delta_k p99, ms.
    pub skew_p99_ms: f64,
    /// Share of sync indices outside BT.1359 after alignment.
    pub outside_bt1359: f64,
    /// Share outside IS-191 after alignment.
    pub outside_is191: f64,
    /// Added playout delay, ms.
    pub added_delay_ms: f64,
    /// Audio stalls per run.
    pub stalls: f64,
    /// Deadline-miss rate per modality (text, audio, video).
    pub deadline_miss: [f64; 3],
    /// Audio deadline-miss rate.
    pub audio_deadline_miss: f64,
    /// Reliable units lost, summed over runs.
    pub reliable_lost: u64,
    /// Share of video frames shown.
    pub video_shown: f64,
    /// Why video frames were not shown, shares of planned frames (mean over runs).
    pub video_not_shown: VideoNotShown,
    /// Total delay felt by the viewer (presentation − media time), mean, ms.
    pub total_delay_ms: f64,
    /// Total delay felt by the viewer, 95th percentile (mean over runs), ms.
    pub total_delay_p95_ms: f64,
    /// Set on a baseline's row when it dominates CAMP's row of the same profile and policy
    /// on what a viewer sees (see `dominance.rs`), with the rule that holds.
    pub dominates_camp: Option<Rule>,
    /// Redundant bytes, %.
    pub redundant_bytes_pct: f64,
    /// Byte share per path.
    pub path_share: Vec<f64>,
    /// Outage recovery, mean over the outages that settled, mean over runs, ms.
    pub recovery_ms: Option<f64>,
    /// Longest recovery of an outage that settled, over all runs, ms.
    pub recovery_max_ms: Option<f64>,
    /// Outages (over all runs) after which the skew or audio lateness never settled.
    pub recovery_unsettled: u32,
}

/// The row of one (profile, scheduler, policy): figures over the runs that completed, plus
/// the failed ones. A key whose every run failed gets a row of zero figures and its
/// failures.
fn row(
    (profile, scheduler, policy): (&str, &str, &str),
    runs: &[&RunMetrics],
    failed: Vec<FailedRun>,
) -> Row {
    let mut r = if runs.is_empty() {
        Row {
            scheduler: scheduler.to_string(),
            policy: policy.to_string(),
            profile: profile.to_string(),
            ..Row::default()
        }
    } else {
        aggregate(runs)
    };
    r.failed = failed;
    r
}

fn aggregate(runs: &[&RunMetrics]) -> Row {
    let f = |g: &dyn Fn(&RunMetrics) -> f64| stat(runs.iter().map(|r| g(r)));
    let l = f(&|r| r.l_ms);
    let c = f(&|r| r.c_ms);
    let paths = runs.iter().map(|r| r.path_share.len()).max().unwrap_or(0);
    let rec: Vec<f64> = runs.iter().filter_map(|r| r.recovery_ms).collect();
    let first = runs[0];
    Row {
        scheduler: first.scheduler.clone(),
        policy: first.policy.clone(),
        profile: first.profile.clone(),
        runs: runs.len(),
        failed: Vec::new(),
        turn_ms: first.turn_ms,
        l_ms: l.mean,
        l_ci: l.ci95,
        l_p99_ms: f(&|r| r.l_p99_ms).mean,
        c_ms: c.mean,
        c_ci: c.ci95,
        skew_p95_ms: f(&|r| r.skew_p95_ms).mean,
        skew_p99_ms: f(&|r| r.skew_p99_ms).mean,
        outside_bt1359: f(&|r| r.outside_bt1359).mean,
        outside_is191: f(&|r| r.outside_is191).mean,
        added_delay_ms: f(&|r| r.added_delay_ms).mean,
        stalls: f(&|r| r.stalls as f64).mean,
        deadline_miss: [0, 1, 2].map(|i| f(&|r| r.deadline_miss[i]).mean),
        audio_deadline_miss: f(&|r| r.audio_deadline_miss).mean,
        reliable_lost: runs.iter().map(|r| r.reliable_lost).sum(),
        video_shown: f(&|r| r.video_shown).mean,
        total_delay_ms: f(&|r| r.total_delay_ms).mean,
        total_delay_p95_ms: f(&|r| r.total_delay_p95_ms).mean,
        dominates_camp: None,
        video_not_shown: VideoNotShown {
            no_path_in_time: f(&|r| r.video_not_shown.no_path_in_time).mean,
            expired_at_sender: f(&|r| r.video_not_shown.expired_at_sender).mean,
            reset_in_flight: f(&|r| r.video_not_shown.reset_in_flight).mean,
            arrived_too_late: f(&|r| r.video_not_shown.arrived_too_late).mean,
            lost_in_network: f(&|r| r.video_not_shown.lost_in_network).mean,
        },
        redundant_bytes_pct: f(&|r| r.redundant_bytes_pct).mean,
        path_share: (0..paths)
            .map(|i| f(&|r| r.path_share.get(i).copied().unwrap_or(0.0)).mean)
            .collect(),
        recovery_ms: (!rec.is_empty()).then(|| stat(rec.into_iter()).mean),
        recovery_max_ms: runs
            .iter()
            .filter_map(|r| r.recovery_max_ms)
            .reduce(f64::max),
        recovery_unsettled: runs.iter().map(|r| r.recovery_unsettled).sum(),
    }
}

/// Scheduler names from the command line; every scheduler when none is given.
pub fn parse_schedulers(names: &[String]) -> Result<Vec<SchedulerKind>, String> {
    if names.is_empty() {
        return Ok(SchedulerKind::ALL.to_vec());
    }
    names
        .iter()
        .map(|s| s.parse::<SchedulerKind>().map_err(|e| e.to_string()))
        .collect()
}

/// Runs the comparison.
pub fn run_compare(args: &CompareArgs) -> Result<(), String> {
    let dir = args
        .profiles_dir
        .clone()
        .unwrap_or_else(profile::default_dir);
    let names: Vec<String> = if args.all {
        [
            "P1",
            "P2",
            "P3",
            "P4",
            "P5",
            "P6",
            "lossyfirst2",
            "deadfirst2",
            "slowdown2",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.profile.clone()
    };
    let mut scenarios: Vec<Scenario> = Vec::new();
    for n in &names {
        scenarios.extend(profile::load(n, &dir).map_err(|e| e.to_string())?);
    }
    let schedulers = parse_schedulers(&args.schedulers)?;
    let policies = policies(&args.policy)?;
    let replay = match &args.trace {
        Some(path) => Some(std::sync::Arc::new(
            camp_sim::workload::load_replay(path).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let turn = TurnConfig {
        duration_ms: args.turn_ms,
        realtime: args.realtime,
        replay,
        ..TurnConfig::default()
    };
    if let Some(path) = &args.dump_turn {
        let plan = camp_sim::workload::plan_turn(&turn, 0, 1);
        std::fs::write(path, camp_sim::workload::to_jsonl(&plan, 0))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {} units to {}", plan.len(), path.display());
        return Ok(());
    }

    let mut experiments = Vec::new();
    for sc in &scenarios {
        for &scheduler in &schedulers {
            for &policy in &policies {
                for seed in 1..=args.runs {
                    experiments.push(Experiment {
                        scenario: sc.clone(),
                        scheduler,
                        policy,
                        seed,
                        turn: turn.clone(),
                    });
                }
            }
        }
    }

    let bar = ProgressBar::new(experiments.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {elapsed} elapsed, eta {eta}")
            .map_err(|e| e.to_string())?,
    );
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicUsize::new(0);
    type Outcome = Result<RunMetrics, String>;
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; experiments.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(e) = experiments.get(i) else { break };
                    let m = match &args.pcap {
                        Some(dir) if e.seed == 1 => run_captured(e)
                            .map_err(|err| err.to_string())
                            .and_then(|(m, capture)| {
                                write_capture(dir, e, &capture)?;
                                Ok(m)
                            }),
                        _ => run(e).map_err(|err| err.to_string()),
                    };
                    if let Ok(mut r) = results.lock() {
                        r[i] = Some(m);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let outcomes: Vec<Outcome> = results
        .into_inner()
        .map_err(|_| "a worker panicked".to_string())?
        .into_iter()
        .flatten()
        .collect();
    if outcomes.len() != experiments.len() {
        return Err("some runs did not complete".into());
    }
    let mut rows = group_rows(&experiments, &outcomes);
    let results: Vec<RunMetrics> = outcomes.into_iter().filter_map(Result::ok).collect();
    let n_failed: usize = rows.iter().map(|r| r.failed.len()).sum();

    mark_dominations(&mut rows);
    match args.format.as_str() {
        "json" => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
            )
        }
        _ => {
            print_table(&rows, &turn, args.runs);
            print_viewer_table(&rows);
            print_video_reasons(&rows);
            print_failures(&rows);
        }
    }
    if let Some(out) = &args.out {
        write_outputs(out, &rows, &results)?;
        eprintln!("wrote CSV and SVG files to {}", out.display());
    }
    // Failed runs are results, reported above; only a comparison with nothing at all to
    // compare is an error (exit code 1).
    if results.is_empty() && n_failed > 0 {
        return Err(format!("all {n_failed} runs failed"));
    }
    Ok(())
}

/// Groups outcomes per (profile, scheduler, policy), in the order of first appearance.
fn group_rows(experiments: &[Experiment], outcomes: &[Result<RunMetrics, String>]) -> Vec<Row> {
    let key = |e: &Experiment| {
        (
            e.scenario.profile.clone(),
            format!("{:?}", e.scheduler).to_lowercase(),
            e.policy.name().to_string(),
        )
    };
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for e in experiments {
        let k = key(e);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.iter()
        .map(|k| {
            let mut runs = Vec::new();
            let mut failed = Vec::new();
            for (e, o) in experiments.iter().zip(outcomes) {
                if &key(e) != k {
                    continue;
                }
                match o {
                    Ok(m) => runs.push(m),
                    Err(error) => failed.push(FailedRun {
                        variant: e.scenario.variant.clone(),
                        seed: e.seed,
                        error: error.clone(),
                    }),
                }
            }
            row((&k.0, &k.1, &k.2), &runs, failed)
        })
        .collect()
}

/// One line per row with failed runs, and the total.
fn print_failures(rows: &[Row]) {
    let total: usize = rows.iter().map(|r| r.failed.len()).sum();
    println!(
        "
failed runs: {total}"
    );
    for r in rows.iter().filter(|r| !r.failed.is_empty()) {
        let seeds: Vec<String> = r
            .failed
            .iter()
            .map(|f| {
                let v = if f.variant.is_empty() {
                    String::new()
                } else {
                    format!("{}/", f.variant)
                };
                format!("{v}seed {}: {}", f.seed, f.error)
            })
            .collect();
        println!(
            "  {} {} {}: {} of {} failed ({})",
            r.profile,
            r.scheduler,
            r.policy,
            r.failed.len(),
            r.failed.len() + r.runs,
            seeds.join("; ")
        );
    }
}

/// What a viewer sees of a row.
fn viewer(r: &Row) -> Viewer {
    Viewer {
        video_shown: r.video_shown,
        audio_miss: r.audio_deadline_miss,
        outside_is191: r.outside_is191,
        total_delay_ms: r.total_delay_ms,
    }
}

/// Marks every non-redundant baseline row that dominates CAMP's row of its profile and
/// policy. The redundant scheduler is left out: it buys its figures with a second copy of
/// every byte, which the comparison is not about.
fn mark_dominations(rows: &mut [Row]) {
    let camp: Vec<(String, String, Viewer)> = rows
        .iter()
        .filter(|r| r.scheduler == "camp" && r.runs > 0)
        .map(|r| (r.profile.clone(), r.policy.clone(), viewer(r)))
        .collect();
    for r in rows.iter_mut() {
        // A row without a completed run has no figures to compare.
        if r.scheduler == "camp" || r.scheduler == "redundant" || r.runs == 0 {
            continue;
        }
        r.dominates_camp = camp
            .iter()
            .find(|(p, pol, _)| *p == r.profile && *pol == r.policy)
            .and_then(|(_, _, c)| dominates(&viewer(r), c));
    }
}

/// The viewer's view of each row, and which baselines dominate CAMP.
fn print_viewer_table(rows: &[Row]) {
    let mut profile = String::new();
    for r in rows {
        if r.profile != profile {
            profile = r.profile.clone();
            println!(
                "\n{profile} — what a viewer sees\n{:<10} {:<9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8}  dominates camp",
                "scheduler",
                "policy",
                "delay ms",
                "p95 ms",
                "video",
                "a-miss",
                "stalls",
                "IS-191",
                "BT1359",
            );
        }
        println!(
            "{:<10} {:<9} {:>9.1} {:>9.1} {:>6.1}% {:>6.2}% {:>7.1} {:>7.2}% {:>7.2}%  {}",
            r.scheduler,
            r.policy,
            r.total_delay_ms,
            r.total_delay_p95_ms,
            r.video_shown * 100.0,
            r.audio_deadline_miss * 100.0,
            r.stalls,
            r.outside_is191 * 100.0,
            r.outside_bt1359 * 100.0,
            match r.dominates_camp {
                Some(Rule::NoWorseAndBetter) => "YES: no worse, better on one",
                Some(Rule::MoreVideo) => "YES: more video at bounded delay",
                None => "",
            }
        );
    }
    let n = rows.iter().filter(|r| r.dominates_camp.is_some()).count();
    println!("\ndominations of camp by a non-redundant baseline: {n}");
}

/// Why video frames were not shown, per row, in points of the planned frames.
fn print_video_reasons(rows: &[Row]) {
    let mut profile = String::new();
    for r in rows {
        if r.profile != profile {
            profile = r.profile.clone();
            println!(
                "\n{profile} — video frames not shown, by reason (% of planned)\n{:<10} {:<9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "scheduler", "policy", "shown", "no path", "expired", "too late", "reset", "lost"
            );
        }
        let v = &r.video_not_shown;
        println!(
            "{:<10} {:<9} {:>7.1}% {:>7.1}% {:>7.1}% {:>7.1}% {:>7.1}% {:>7.1}%",
            r.scheduler,
            r.policy,
            r.video_shown * 100.0,
            v.no_path_in_time * 100.0,
            v.expired_at_sender * 100.0,
            v.arrived_too_late * 100.0,
            v.reset_in_flight * 100.0,
            v.lost_in_network * 100.0,
        );
    }
}

fn print_table(rows: &[Row], turn: &TurnConfig, runs: u64) {
    let mut profile = String::new();
    for r in rows {
        if r.profile != profile {
            profile = r.profile.clone();
            println!(
                "\n{} — {}{}, {} seeds{}; mean ± 95% CI",
                profile,
                if turn.replay.is_some() {
                    "replayed turn".to_string()
                } else {
                    format!("{} s turn", r.turn_ms / 1000)
                },
                if turn.realtime {
                    " (released in real time)"
                } else {
                    ""
                },
                runs,
                if r.runs as u64 > runs {
                    " × scenarios"
                } else {
                    ""
                }
            );
            println!(
                "{:<10} {:<9} {:>14} {:>8} {:>15} {:>8} {:>8} {:>8} {:>7} {:>5} {:>6} {:>6} {:>11} {:>6}",
                "scheduler",
                "policy",
                "L ms",
                "L p99",
                "C ms",
                "Δk p99",
                "IS-191",
                "BT1359",
                "a-miss",
                "lost",
                "video",
                "red%",
                "path share",
                "recov"
            );
        }
        let share: Vec<String> = r
            .path_share
            .iter()
            .map(|s| format!("{:.0}", s * 100.0))
            .collect();
        println!(
            "{:<10} {:<9} {:>7.2} ±{:>5.2} {:>8.1} {:>8.1} ±{:>6.1} {:>8.1} {:>7.2}% {:>7.2}% {:>6.2}% {:>5} {:>5.1}% {:>6.1} {:>11} {:>6}",
            r.scheduler,
            r.policy,
            r.l_ms,
            r.l_ci,
            r.l_p99_ms,
            r.c_ms,
            r.c_ci,
            r.skew_p99_ms,
            r.outside_is191 * 100.0,
            r.outside_bt1359 * 100.0,
            r.audio_deadline_miss * 100.0,
            r.reliable_lost,
            r.video_shown * 100.0,
            r.redundant_bytes_pct,
            share.join("/"),
            r.recovery_ms.map_or("-".to_string(), |v| format!("{v:.0}")),
        );
    }
}

fn csv_escape(s: &str) -> String {
    if s.contains(',') || s.contains('"') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_outputs(dir: &std::path::Path, rows: &[Row], runs: &[RunMetrics]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    let mut csv = String::from(
        "profile,scheduler,policy,runs,L_ms,L_ci95_ms,L_p99_ms,C_ms,C_ci95_ms,skew_p95_ms,skew_p99_ms,outside_bt1359,outside_is191,added_delay_ms,stalls,text_miss,audio_miss,video_miss,reliable_lost,video_shown,redundant_bytes_pct,path_share,recovery_ms\n",
    );
    for r in rows {
        let share: Vec<String> = r.path_share.iter().map(|s| format!("{s:.4}")).collect();
        let _ = writeln!(
            csv,
            "{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3},{:.5},{:.5},{:.3},{:.2},{:.5},{:.5},{:.5},{},{:.4},{:.3},{},{}",
            csv_escape(&r.profile),
            r.scheduler,
            r.policy,
            r.runs,
            r.l_ms,
            r.l_ci,
            r.l_p99_ms,
            r.c_ms,
            r.c_ci,
            r.skew_p95_ms,
            r.skew_p99_ms,
            r.outside_bt1359,
            r.outside_is191,
            r.added_delay_ms,
            r.stalls,
            r.deadline_miss[0],
            r.deadline_miss[1],
            r.deadline_miss[2],
            r.reliable_lost,
            r.video_shown,
            r.redundant_bytes_pct,
            share.join("/"),
            r.recovery_ms.map_or(String::new(), |v| format!("{v:.1}")),
        );
    }
    write("summary.csv", &csv)?;
    let mut csv = String::from(
        "profile,variant,scheduler,policy,seed,L_ms,L_p99_ms,C_ms,skew_p99_ms,outside_is191,audio_miss,reliable_lost,video_shown,redundant_bytes_pct,recovery_ms\n",
    );
    for r in runs {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.5},{:.5},{},{:.4},{:.3},{}",
            csv_escape(&r.profile),
            csv_escape(&r.variant),
            r.scheduler,
            r.policy,
            r.seed,
            r.l_ms,
            r.l_p99_ms,
            r.c_ms,
            r.skew_p99_ms,
            r.outside_is191,
            r.audio_deadline_miss,
            r.reliable_lost,
            r.video_shown,
            r.redundant_bytes_pct,
            r.recovery_ms.map_or(String::new(), |v| format!("{v:.1}")),
        );
    }
    write("runs.csv", &csv)?;
    let mut profiles: Vec<&str> = runs.iter().map(|r| r.profile.as_str()).collect();
    profiles.dedup();
    for p in profiles {
        let svg = cdf_svg(p, runs.iter().filter(|r| r.profile == p));
        write(&format!("cdf_{p}.svg"), &svg)?;
        let svg = viewer_svg(p, rows.iter().filter(|r| r.profile == p));
        write(&format!("viewer_{p}.svg"), &svg)?;
    }
    Ok(())
}

/// An SVG plot of the CDF of Delta_k per scheduler (log-scaled x axis, 0.1 ms – 10 s).
/// Video shown against total delay, one point per scheduler (and policy): the picture of
/// what a viewer gets. Up and left is better.
fn viewer_svg<'a>(profile: &str, rows: impl Iterator<Item = &'a Row>) -> String {
    const W: f64 = 560.0;
    const H: f64 = 380.0;
    const L: f64 = 60.0;
    const R: f64 = 150.0;
    const T: f64 = 30.0;
    const B: f64 = 45.0;
    let rows: Vec<&Row> = rows.collect();
    let max_d = rows
        .iter()
        .map(|r| r.total_delay_ms)
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.05;
    let min_d = rows.iter().map(|r| r.total_delay_ms).fold(max_d, f64::min) * 0.9;
    let min_d = if max_d - min_d < 10.0 {
        (max_d - 10.0).max(0.0)
    } else {
        min_d
    };
    let min_v = rows
        .iter()
        .map(|r| r.video_shown)
        .fold(1.0_f64, f64::min)
        .min(0.9);
    let lo_v = (min_v * 10.0).floor() / 10.0;
    let x = |d: f64| L + (d - min_d) / (max_d - min_d).max(1e-9) * (W - L - R);
    let y = |v: f64| T + (1.0 - (v - lo_v) / (1.0 - lo_v).max(1e-9)) * (H - T - B);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<rect width="{W}" height="{H}" fill="white"/><text x="{L}" y="18" font-size="14">{profile}: video shown vs total delay (up and left is better)</text>"#
    );
    let _ = write!(
        s,
        r#"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="black"/>"#,
        H - B,
        W - R,
        H - B,
        H - B
    );
    for i in 0..=5 {
        let d = min_d + (max_d - min_d) * f64::from(i) / 5.0;
        let v = lo_v + (1.0 - lo_v) * f64::from(i) / 5.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{d:.0}</text><text x="{}" y="{:.1}" text-anchor="end">{:.0}%</text>"#,
            x(d),
            H - B + 16.0,
            L - 6.0,
            y(v) + 4.0,
            v * 100.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">total delay (presentation − media time), mean ms</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">video shown</text>"#,
        (L + W - R) / 2.0,
        H - 8.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    for (i, r) in rows.iter().enumerate() {
        let (cx, cy) = (x(r.total_delay_ms), y(r.video_shown));
        // Alternate label rows so that neighbours do not print over each other.
        let dy = [4.0, -8.0, 16.0][i % 3];
        let (fill, rad) = if r.scheduler == "camp" {
            ("crimson", 6)
        } else if r.dominates_camp.is_some() {
            ("darkorange", 5)
        } else {
            ("steelblue", 4)
        };
        let label = if r.policy == "camp" {
            r.scheduler.clone()
        } else {
            format!("{}/{}", r.scheduler, r.policy)
        };
        let _ = write!(
            s,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="{rad}" fill="{fill}"/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            cx + 8.0,
            cy + dy
        );
    }
    s.push_str("</svg>\n");
    s
}

fn cdf_svg<'a>(profile: &str, runs: impl Iterator<Item = &'a RunMetrics>) -> String {
    let mut by: Vec<(String, Vec<f64>)> = Vec::new();
    for r in runs {
        let name = if r.policy == "camp" {
            r.scheduler.clone()
        } else {
            format!("{}/{}", r.scheduler, r.policy)
        };
        match by.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.extend(&r.deltas_ms),
            None => by.push((name, r.deltas_ms.clone())),
        }
    }
    const W: f64 = 760.0;
    const H: f64 = 420.0;
    const L: f64 = 60.0;
    const R: f64 = 170.0;
    const T: f64 = 30.0;
    const B: f64 = 45.0;
    let (lo, hi) = (0.1f64.log10(), 10_000f64.log10());
    let x = |ms: f64| L + (ms.max(0.1).log10() - lo) / (hi - lo) * (W - L - R);
    let y = |p: f64| H - B - p * (H - T - B);
    let colors = [
        "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf", "#000000", "#aec7e8",
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="14">CDF of inter-modal skew Δk — {profile}</text>"#,
        (W - R + L) / 2.0
    );
    for decade in [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0] {
        let xv = x(decade);
        let _ = writeln!(
            s,
            r##"<line x1="{xv:.1}" y1="{T}" x2="{xv:.1}" y2="{}" stroke="#ddd"/><text x="{xv:.1}" y="{}" text-anchor="middle">{decade}</text>"##,
            H - B,
            H - B + 15.0
        );
    }
    for p in [0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0] {
        let yv = y(p);
        let _ = writeln!(
            s,
            r##"<line x1="{L}" y1="{yv:.1}" x2="{}" y2="{yv:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{p}</text>"##,
            W - R,
            L - 5.0,
            yv + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">Δk (ms, log scale)</text>"#,
        (W - R + L) / 2.0,
        H - 8.0
    );
    for (i, (name, v)) in by.iter_mut().enumerate() {
        v.sort_by(|a, b| a.total_cmp(b));
        let color = colors[i % colors.len()];
        let n = v.len().max(1) as f64;
        let mut pts = String::new();
        let step = (v.len() / 400).max(1);
        for (j, d) in v.iter().enumerate().step_by(step) {
            let _ = write!(pts, "{:.1},{:.1} ", x(*d), y((j + 1) as f64 / n));
        }
        if let Some(last) = v.last() {
            let _ = write!(pts, "{:.1},{:.1}", x(*last), y(1.0));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{pts}"/>"#
        );
        let ly = T + 14.0 + i as f64 * 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>"#,
            W - R + 10.0,
            W - R + 30.0,
            W - R + 35.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {

    /// Every figure of a row lies in its possible range: shares in [0, 1], times and
    /// counts finite and non-negative, path shares summing to 1, the video reasons adding
    /// up to what was not shown. Run for every scheduler on a profile with an outage, loss
    /// and an LTE trace (P5, shortened), where the impossible 101% miss rate was found.
    #[test]
    fn every_figure_of_every_row_is_in_its_possible_range() {
        let mut scenario = profile::load("P5", &profile::default_dir()).unwrap()[0].clone();
        scenario.turn_ms = Some(4_000);
        scenario.outages = scenario
            .outages
            .iter()
            .map(|&(p, _, _)| (p, 1_500, 2_500))
            .collect();
        for realtime in [false, true] {
            let experiments: Vec<Experiment> = SchedulerKind::ALL
                .iter()
                .map(|&scheduler| Experiment {
                    scenario: scenario.clone(),
                    scheduler,
                    policy: PlayoutPolicy::camp_default(),
                    seed: 3,
                    turn: TurnConfig {
                        realtime,
                        ..TurnConfig::default()
                    },
                })
                .collect();
            let outcomes: Vec<Result<RunMetrics, String>> = experiments
                .iter()
                .map(|e| run(e).map_err(|err| err.to_string()))
                .collect();
            let mut rows = group_rows(&experiments, &outcomes);
            mark_dominations(&mut rows);
            assert_eq!(rows.len(), SchedulerKind::ALL.len());
            for r in &rows {
                let who = format!("{} realtime={realtime}", r.scheduler);
                assert_eq!(r.runs, 1, "{who}: {:?}", r.failed);
                let v = &r.video_not_shown;
                let shares = [
                    ("outside_bt1359", r.outside_bt1359),
                    ("outside_is191", r.outside_is191),
                    ("text_miss", r.deadline_miss[0]),
                    ("audio_miss", r.deadline_miss[1]),
                    ("video_miss", r.deadline_miss[2]),
                    ("audio_deadline_miss", r.audio_deadline_miss),
                    ("video_shown", r.video_shown),
                    ("no_path_in_time", v.no_path_in_time),
                    ("expired_at_sender", v.expired_at_sender),
                    ("reset_in_flight", v.reset_in_flight),
                    ("arrived_too_late", v.arrived_too_late),
                    ("lost_in_network", v.lost_in_network),
                ];
                for (name, x) in shares {
                    assert!((0.0..=1.0).contains(&x), "{who}: {name} = {x}");
                }
                let times = [
                    ("L", r.l_ms),
                    ("L p99", r.l_p99_ms),
                    ("C", r.c_ms),
                    ("skew p95", r.skew_p95_ms),
                    ("skew p99", r.skew_p99_ms),
                    ("added delay", r.added_delay_ms),
                    ("total delay", r.total_delay_ms),
                    ("total delay p95", r.total_delay_p95_ms),
                    ("stalls", r.stalls),
                    ("redundant %", r.redundant_bytes_pct),
                ];
                for (name, x) in times {
                    assert!(x.is_finite() && x >= 0.0, "{who}: {name} = {x}");
                }
                // One run per row: its percentiles are ordered.
                assert!(r.skew_p99_ms + 1e-9 >= r.skew_p95_ms, "{who}");
                let sum: f64 = r.path_share.iter().sum();
                assert!(
                    r.path_share.iter().all(|s| (0.0..=1.0).contains(s))
                        && (sum - 1.0).abs() < 1e-6,
                    "{who}: path shares {:?}",
                    r.path_share
                );
                assert!(
                    (r.video_shown + v.total() - 1.0).abs() < 1e-9,
                    "{who}: shown {} + not shown {} != 1",
                    r.video_shown,
                    v.total()
                );
                assert!(
                    r.recovery_ms.is_none_or(|x| x.is_finite() && x >= 0.0),
                    "{who}"
                );
                assert_eq!(r.reliable_lost, 0, "{who}");
            }
        }
    }

    #[test]
    fn failed_runs_are_reported_per_row_and_all_failed_keys_keep_a_row() {
        let scenario = profile::load("lossy2", &profile::default_dir()).unwrap()[0].clone();
        let exp = |scheduler, seed| Experiment {
            scenario: scenario.clone(),
            scheduler,
            policy: PlayoutPolicy::camp_default(),
            seed,
            turn: TurnConfig::default(),
        };
        let experiments = vec![
            exp(SchedulerKind::MinRtt, 1),
            exp(SchedulerKind::MinRtt, 2),
            exp(SchedulerKind::Camp, 1),
        ];
        let outcomes = vec![
            Err("session not established within 3s".to_string()),
            Err("no path".to_string()),
            Err("no path".to_string()),
        ];
        let rows = group_rows(&experiments, &outcomes);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].scheduler, "minrtt");
        assert_eq!(rows[0].runs, 0);
        assert_eq!(
            rows[0].failed,
            vec![
                FailedRun {
                    variant: String::new(),
                    seed: 1,
                    error: "session not established within 3s".into()
                },
                FailedRun {
                    variant: String::new(),
                    seed: 2,
                    error: "no path".into()
                },
            ]
        );
        assert_eq!(rows[1].failed.len(), 1);
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["failed"][1]["seed"], 2);
        // A row without figures never dominates CAMP.
        let mut rows = rows;
        mark_dominations(&mut rows);
        assert!(rows.iter().all(|r| r.dominates_camp.is_none()));
    }

    use super::*;

    #[test]
    fn confidence_interval_uses_student_t() {
        let s = stat([1.0, 2.0, 3.0].into_iter());
        assert!((s.mean - 2.0).abs() < 1e-12);
        // sd = 1, n = 3: 4.303 / sqrt(3)
        assert!((s.ci95 - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert_eq!(
            stat([5.0].into_iter()),
            Stat {
                mean: 5.0,
                ci95: 0.0
            }
        );
    }

    #[test]
    fn policy_names_parse() {
        assert_eq!(policies("all").unwrap().len(), 4);
        assert!(policies("nope").is_err());
    }
}
