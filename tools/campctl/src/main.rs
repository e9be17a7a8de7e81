//! campctl entry point: parses the command line and reports errors plainly.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = campctl::Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match campctl::run(&cli, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("campctl: {e}");
            ExitCode::FAILURE
        }
    }
}
