//! camp-client: CAMP test receiver.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = campd::client::ClientArgs::parse();
    campd::log::init(args.log_level);
    // stdout carries the presentation records then; the summary must not corrupt them.
    let to_stderr = args.present == Some(camp_present::SinkTarget::Stdout);
    match campd::client::run_client(&args) {
        Ok(summary) => {
            if args.json {
                match serde_json::to_string(&summary) {
                    Ok(s) if to_stderr => eprintln!("{s}"),
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("camp-client: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else if to_stderr {
                eprint!("{}", summary.table());
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
