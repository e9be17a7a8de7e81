//! camp-client: CAMP test receiver.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = campd::client::ClientArgs::parse();
    match campd::client::run_client(&args) {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string(&summary) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("camp-client: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", summary.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("camp-client: {e}");
            ExitCode::FAILURE
        }
    }
}
