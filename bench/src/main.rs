//! `camp-bench`: benchmark entry point. Each subcommand lives in its own
//! module; this file only dispatches.
#![forbid(unsafe_code)]

mod compare;
#[cfg(feature = "xdp")]
mod io;

use clap::{Parser, Subcommand};

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
    /// Packet I/O (build with `--features xdp`): AF_XDP (native and generic XDP) against kernel UDP with
    /// quinn-udp on one veth pair between two network namespaces (root).
    #[cfg(feature = "xdp")]
    Io(io::IoArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compare(args) => compare::run_compare(&args),
        #[cfg(feature = "xdp")]
        Command::Io(args) => io::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("camp-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
