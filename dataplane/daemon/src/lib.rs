//! campd, the CAMP data-plane daemon, and camp-client, its test receiver.
//!
//! The binaries are thin: [`config`] resolves the TOML file and flags, [`daemon::run`]
//! drives the engine, [`ingest`] serves the ingest socket, [`client`] runs a receiver
//! session and summarises it.
#![forbid(unsafe_code)]

pub mod access;
pub mod client;
pub mod config;
pub mod daemon;
pub mod due;
pub mod ingest;
pub mod log;
pub mod qlog;
pub mod tls;
