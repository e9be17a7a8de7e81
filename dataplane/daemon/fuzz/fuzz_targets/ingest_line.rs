//! campd's ingest socket takes JSON lines from any local process: arbitrary bytes must give
//! a unit or a typed error, never a panic, and a unit stays within the documented bounds.
//!
//! The module is compiled here from campd's own source file rather than through the `campd`
//! library, whose dependency graph is the whole daemon (engine, AF_XDP, QUIC, simulator):
//! building that with sanitizers took most of CI's fuzzing budget. `ingest.rs` depends only on
//! std, camp-wire, serde, serde_json, base64 and thiserror, so it builds standalone; if it
//! ever reaches into the rest of campd, this target stops compiling and CI says so.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/ingest.rs"]
mod ingest;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(unit) = ingest::parse_line(data) {
        assert!(data.len() <= ingest::MAX_LINE);
        assert!((1..=ingest::MAX_PAYLOAD).contains(&unit.payload.len()));
        assert!(unit.media_us <= 86_400_000_000);
        assert!(unit.deadline_us <= 60_000_000);
    }
});
