//! A renderer reads presentation records from a socket or pipe: arbitrary bytes, pushed in
//! arbitrary chunks, must give records or a typed error, never a panic, and every record
//! accepted must re-encode to the bytes it came from.
#![no_main]

use camp_present::{Decoder, preamble};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so the fuzzer also explores split reads.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = Decoder::new();
    let mut again = preamble().to_vec();
    let mut failed = false;
    for part in stream.chunks(chunk) {
        d.push(part);
        loop {
            match d.next_record() {
                Ok(Some(r)) => r.emit(&mut again).expect("a decoded payload fits"),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            break;
        }
    }
    if !failed && d.finish().is_ok() {
        assert_eq!(again, stream, "accepted bytes re-encode identically");
    }
});
