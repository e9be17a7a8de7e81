//! `camp-bench matrix`: the reliability matrix at full size (issue 14). Every scheduler over
//! the seeded lossy, bursty, flapping, dying, closing and asymmetric networks of
//! `camp_sim::matrix`, released ahead of real time and in real time; each run checked for
//! every accepted reliable unit presented exactly once, in order. CI runs one seed per cell
//! (`cargo test -p camp-sim --test reliable`); this runs the size the targets name.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use camp_proto::config::SchedulerKind;
use camp_sim::matrix::{Cell, Network, networks, run_cell};
use serde::Serialize;

/// Arguments of `camp-bench matrix`.
#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Seeds per cell (network x scheduler x release mode).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// Speech length of each turn, ms.
    #[arg(long, default_value_t = 3_000)]
    turn_ms: u64,
    /// Schedulers (comma-separated names; default: all).
    #[arg(long, value_delimiter = ',')]
    schedulers: Vec<String>,
    /// Release modes: `ahead`, `realtime` or `both`.
    #[arg(long, default_value = "both", value_parser = ["ahead", "realtime", "both"])]
    release: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Worker threads (default: available cores).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Row {
    network: &'static str,
    scheduler: &'static str,
    release: &'static str,
    runs: u32,
    not_opened: u32,
    not_opened_why: Vec<String>,
    reliable_accepted: u64,
    reliable_lost: u64,
    faults: Vec<String>,
}

impl From<Cell> for Row {
    fn from(c: Cell) -> Self {
        Row {
            network: c.network,
            scheduler: c.scheduler,
            release: if c.realtime { "realtime" } else { "ahead" },
            runs: c.runs,
            not_opened: c.not_opened,
            not_opened_why: c.not_opened_why,
            reliable_accepted: c.reliable_accepted,
            reliable_lost: c.reliable_lost,
            faults: c.faults,
        }
    }
}

/// Runs the matrix; fails (non-zero exit) when any run broke the promise.
pub fn run(args: &MatrixArgs) -> Result<(), String> {
    let kinds = crate::compare::parse_schedulers(&args.schedulers)?;
    let modes: &[bool] = match args.release.as_str() {
        "ahead" => &[false],
        "realtime" => &[true],
        _ => &[false, true],
    };
    if args.seeds == 0 {
        return Err("--seeds must be at least 1".into());
    }
    let nets = networks();
    let mut work: Vec<(&Network, SchedulerKind, bool)> = Vec::new();
    for net in &nets {
        for &kind in &kinds {
            for &rt in modes {
                work.push((net, kind, rt));
            }
        }
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, work.len());
    let next = AtomicUsize::new(0);
    let cells: Mutex<Vec<Option<Cell>>> = Mutex::new((0..work.len()).map(|_| None).collect());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(net, kind, rt)) = work.get(i) else {
                        break;
                    };
                    let cell = run_cell(net, kind, rt, args.seeds, args.turn_ms);
                    if let Ok(mut c) = cells.lock() {
                        c[i] = Some(cell);
                    }
                }
            });
        }
    });
    let rows: Vec<Row> = cells
        .into_inner()
        .map_err(|_| "a matrix worker panicked".to_string())?
        .into_iter()
        .map(|c| c.ok_or_else(|| "a matrix cell did not run".to_string()))
        .map(|c| c.map(Row::from))
        .collect::<Result<_, _>>()?;
    let runs: u32 = rows.iter().map(|r| r.runs).sum();
    let not_opened: u32 = rows.iter().map(|r| r.not_opened).sum();
    let lost: u64 = rows.iter().map(|r| r.reliable_lost).sum();
    let faults: usize = rows.iter().map(|r| r.faults.len()).sum();
    let accepted: u64 = rows.iter().map(|r| r.reliable_accepted).sum();
    if args.format == "json" {
        let out = serde_json::json!({
            "seeds": args.seeds,
            "turn_ms": args.turn_ms,
            "runs": runs,
            "not_opened": not_opened,
            "reliable_accepted": accepted,
            "reliable_lost": lost,
            "faults": faults,
            "cells": rows,
        });
        println!("{out:#}");
    } else {
        println!(
            "{:<11} {:<10} {:<8} {:>5} {:>10} {:>9} {:>5} {:>6}",
            "network", "scheduler", "release", "runs", "not_opened", "accepted", "lost", "faults"
        );
        for r in &rows {
            println!(
                "{:<11} {:<10} {:<8} {:>5} {:>10} {:>9} {:>5} {:>6}",
                r.network,
                r.scheduler,
                r.release,
                r.runs,
                r.not_opened,
                r.reliable_accepted,
                r.reliable_lost,
                r.faults.len()
            );
        }
        for r in rows.iter().filter(|r| !r.faults.is_empty()) {
            for f in &r.faults {
                println!("FAULT {} {} {}: {f}", r.network, r.scheduler, r.release);
            }
        }
        println!(
            "{} cells, {runs} runs checked, {not_opened} sessions never opened, {accepted} reliable units accepted, {lost} lost, {faults} faults ({:.1} s)",
            rows.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if faults > 0 {
        return Err(format!("{faults} reliability faults in {runs} runs"));
    }
    if runs == 0 {
        return Err("no session opened in any run".into());
    }
    Ok(())
}
