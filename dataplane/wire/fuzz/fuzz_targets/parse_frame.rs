//! Fuzz target: `Frame::parse` on raw bytes must never panic, and whatever it accepts must
//! re-emit to exactly the bytes it consumed and parse back to the same frame.
#![no_main]

use camp_wire::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((frame, consumed)) = Frame::parse(data) else {
        return;
    };
    assert_eq!(consumed, frame.buffer_len());
    let mut buf = vec![0u8; frame.buffer_len()];
    assert_eq!(frame.emit(&mut buf), Ok(consumed));
    assert_eq!(Some(&buf[..]), data.get(..consumed));
    assert_eq!(Frame::parse(&buf), Ok((frame, consumed)));
});
