//! `camp-bench`: benchmark entry point. Each subcommand lives in its own
//! module; this file only dispatches.
#![forbid(unsafe_code)]

mod compare;
mod dominance;
#[cfg(feature = "xdp")]
mod goodput;
#[cfg(feature = "xdp")]
mod io;
#[cfg(feature = "xdp")]
mod lab;
#[cfg(feature = "xdp")]
mod line;
mod matrix;
mod scale;
#[cfg(feature = "xdp")]
mod sweep;

use clap::{Parser, Subcommand};

// Live bytes per thread, so that `scale` can attribute memory to the server's calls.
#[global_allocator]
static GLOBAL: camp_testkit::alloc::CountingAlloc = camp_testkit::alloc::CountingAlloc;

/// CAMP benchmarks.
#[derive(Debug, Parser)]
#[command(name = "camp-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// CAMP against the baseline schedulers on the deterministic simulator (no root).
    Compare(compare::CompareArgs),
    /// The reliability matrix at full size: every scheduler over seeded lossy, bursty,
    /// flapping, dying, closing and asymmetric networks; fails on any lost reliable unit.
    Matrix(matrix::MatrixArgs),
    /// Many sessions on one server in the simulator (no root): server CPU per
    /// session-second, memory per session and viewer figures against N.
    Scale(scale::ScaleArgs),
    /// Packet I/O (build with `--features xdp`): AF_XDP (native and generic XDP) against kernel UDP with
    /// quinn-udp on one veth pair between two network namespaces (root).
    #[cfg(feature = "xdp")]
    Io(io::IoArgs),
    /// End-to-end goodput per sender core (build with `--features xdp`): campd's engine
    /// over AF_XDP against quinn on tokio over kernel UDP, same bytes, same veth pair (root).
    #[cfg(feature = "xdp")]
    Goodput(goodput::GoodputArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compare(args) => compare::run_compare(&args),
        Command::Matrix(args) => matrix::run(&args),
        Command::Scale(args) => scale::run(&args),
        #[cfg(feature = "xdp")]
        Command::Io(args) => io::run(&args),
        #[cfg(feature = "xdp")]
        Command::Goodput(args) => goodput::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camp-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
