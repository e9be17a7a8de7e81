//! CAMP wire format (draft-song-tsvwg-camp-00 §4.2, three-stream separation).
//!
//! Owns the byte layout of data units and control frames and nothing else: no I/O, no
//! clocks. Every decoder is strict: malformed, truncated, oversized or unknown-version input
//! is a [`WireError`], never a panic.
#![forbid(unsafe_code)]

mod types;

pub use types::*;
