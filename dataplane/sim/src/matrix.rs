//! The reliability matrix (issue 14): every scheduler over seeded lossy, bursty, flapping,
//! dying and asymmetric networks, each run checked against the reliability promise (every
//! reliable unit presented exactly once, in order per modality, while a path lives).
//!
//! `cargo test -p camp-sim --test reliable` runs a slice of it in CI; `camp-bench matrix`
//! runs it at full size and prints one row per network and scheduler.

use std::time::Duration;

use camp_proto::config::{CampConfig, SchedulerKind};
use camp_recv::ReceiverConfig;
use camp_wire::Modality;

use crate::run::{NetEvent, run_turn};
use crate::workload::TurnConfig;
use crate::{LinkConfig, Loss, PathConfig, Setup};

/// A network of the matrix: its paths and what happens to them during the turn.
#[derive(Clone, Debug)]
pub struct Network {
    /// Short name (a table row key).
    pub name: &'static str,
    /// The paths.
    pub paths: Vec<PathConfig>,
    /// Events during the turn.
    pub events: Vec<NetEvent>,
}

fn link(mbit: f64, delay_ms: u64, loss: Loss) -> LinkConfig {
    LinkConfig {
        loss,
        ..LinkConfig::new(mbit, delay_ms)
    }
}

/// The matrix's networks. At least one path of each lives to the end of the turn, so the
/// promise applies to every run.
pub fn networks() -> Vec<Network> {
    let bursty = Loss::GilbertElliott {
        p_good_to_bad: 0.01,
        p_bad_to_good: 0.15,
        loss_good: 0.0,
        loss_bad: 1.0,
    };
    vec![
        Network {
            name: "lossy",
            paths: vec![
                PathConfig::symmetric(link(20.0, 15, Loss::Bernoulli(0.03))),
                PathConfig::symmetric(link(8.0, 40, Loss::Bernoulli(0.01))),
            ],
            events: vec![],
        },
        Network {
            name: "bursty",
            paths: vec![
                PathConfig::symmetric(link(40.0, 8, bursty)),
                PathConfig::symmetric(link(10.0, 50, Loss::None)),
            ],
            events: vec![],
        },
        Network {
            name: "flapping",
            paths: vec![
                PathConfig::symmetric(link(20.0, 10, Loss::None)),
                PathConfig::symmetric(link(10.0, 30, Loss::Bernoulli(0.005))),
            ],
            events: (0..3)
                .map(|i| NetEvent::Outage {
                    path: i % 2,
                    from_ms: 500 + i as u64 * 900,
                    until_ms: 900 + i as u64 * 900,
                })
                .collect(),
        },
        Network {
            name: "dying",
            paths: vec![
                PathConfig::symmetric(link(40.0, 8, Loss::Bernoulli(0.01))),
                PathConfig::symmetric(link(10.0, 50, Loss::None)),
            ],
            events: vec![NetEvent::Cut {
                path: 0,
                at_ms: 700,
            }],
        },
        Network {
            name: "closing",
            paths: vec![
                PathConfig::symmetric(link(30.0, 10, Loss::Bernoulli(0.01))),
                PathConfig::symmetric(link(10.0, 40, Loss::None)),
            ],
            events: vec![NetEvent::Close {
                path: 0,
                at_ms: 900,
            }],
        },
        Network {
            name: "asymmetric",
            paths: vec![
                PathConfig::symmetric(link(50.0, 5, Loss::Bernoulli(0.002))),
                PathConfig::symmetric(link(1.5, 120, bursty)),
            ],
            events: vec![],
        },
    ]
}

/// The setup every matrix run uses: the receiver logs arrivals (so a fault names them) and
/// a short idle timeout lets a dead path leave the client mid-turn (with the default 10 s it
/// outlives a short turn, and what the client does with that path's half-received units is
/// then never exercised).
pub fn setup(paths: Vec<PathConfig>, kind: SchedulerKind, seed: u64) -> Setup {
    Setup {
        paths,
        scheduler: kind.factory(),
        receiver: ReceiverConfig {
            arrival_log: true,
            ..Default::default()
        },
        camp: CampConfig {
            idle_timeout: Duration::from_secs(1),
            ..CampConfig::default()
        },
        seed,
    }
}

/// Outcome of one cell (network x scheduler x release mode) over its seeds.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Network name.
    pub network: &'static str,
    /// Scheduler.
    pub scheduler: &'static str,
    /// Released in real time (else ahead of it).
    pub realtime: bool,
    /// Runs whose session opened (the promise was checked).
    pub runs: u32,
    /// Seeds whose session never opened (reported, not checked), with why.
    pub not_opened: u32,
    /// Why each of those did not open, prefixed with its seed.
    pub not_opened_why: Vec<String>,
    /// Reliable units accepted over the checked runs.
    pub reliable_accepted: u64,
    /// Reliable units never presented over the checked runs.
    pub reliable_lost: u64,
    /// Every fault of a checked run (a reliable unit not presented exactly once, in order),
    /// prefixed with its seed.
    pub faults: Vec<String>,
}

/// Runs one cell over seeds `1..=seeds` with a turn of `duration_ms`.
pub fn run_cell(
    net: &Network,
    kind: SchedulerKind,
    realtime: bool,
    seeds: u64,
    duration_ms: u64,
) -> Cell {
    let turn = TurnConfig {
        duration_ms,
        realtime,
        ..TurnConfig::default()
    };
    let mut cell = Cell {
        network: net.name,
        scheduler: kind.name(),
        realtime,
        ..Cell::default()
    };
    for seed in 1..=seeds {
        let r = match run_turn(&setup(net.paths.clone(), kind, seed), &turn, &net.events) {
            Ok(r) => r,
            Err(e) => {
                cell.not_opened += 1;
                cell.not_opened_why.push(format!("seed {seed}: {e}"));
                continue;
            }
        };
        cell.runs += 1;
        cell.reliable_accepted +=
            r.accepted[Modality::Text.index()] + r.accepted[Modality::Audio.index()];
        cell.reliable_lost += r.reliable_lost();
        for f in r.reliable_faults() {
            cell.faults.push(format!("seed {seed}: {f}"));
        }
    }
    cell
}
