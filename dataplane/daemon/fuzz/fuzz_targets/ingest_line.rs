//! campd's ingest socket takes JSON lines from any local process: arbitrary bytes must give
//! a unit or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = campd::ingest::parse_line(data);
});
