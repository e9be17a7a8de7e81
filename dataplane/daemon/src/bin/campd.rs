//! campd: the CAMP data-plane daemon.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

fn main() -> ExitCode {
    let cli = campd::config::Cli::parse();
    let settings = match campd::config::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campd: {e}");
            return ExitCode::from(2);
        }
    };
    // SIGINT and SIGTERM are blocked in every thread (threads inherit the mask, so this
    // comes first) and read from a signalfd by the engine loop.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    if let Err(e) = mask.thread_block() {
        eprintln!("campd: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("campd: signalfd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = || matches!(sfd.read_signal(), Ok(Some(_)));
    match campd::daemon::run(&settings, stop) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            );
            eprintln!("campd: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("campd: {e}");
            ExitCode::FAILURE
        }
    }
}
