//! Fuzz target: a `FrameReader` fed arbitrary bytes in arbitrary chunks must never panic,
//! never buffer more than `max_frame` + one chunk, and yield exactly the frames (or the
//! first error) that `Frame::parse` finds when walking the same bytes in one piece.
//!
//! Input layout: byte 0 picks the chunk size (1..=256), byte 1 picks `max_frame` (see
//! [`max_frame`]), the rest is the stream.
#![no_main]

use camp_wire::{FRAME_HEADER_LEN, Frame, FrameReader, MAX_BODY_LEN, MAX_CONTROL_FRAME, WireError};
use libfuzzer_sys::fuzz_target;

/// What the reader produced: an encoded frame or the error it reported.
type Item = Result<Vec<u8>, WireError>;

fuzz_target!(|data: &[u8]| {
    let [chunk, scale, stream @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let max_frame = max_frame(*scale);

    let mut reader = FrameReader::new(max_frame);
    let mut got: Vec<Item> = Vec::new();
    'feed: for piece in stream.chunks(chunk) {
        if let Err(err) = reader.push(piece) {
            got.push(Err(err));
            break;
        }
        assert!(reader.buffered() <= max_frame.saturating_add(piece.len()));
        while let Some(item) = reader.next_frame() {
            match item {
                Ok(frame) => got.push(Ok(encode(&frame))),
                Err(err) => {
                    got.push(Err(err));
                    if reader.is_failed() {
                        break 'feed;
                    }
                }
            }
        }
    }

    // Oracle: walk the whole stream with Frame::parse, applying the same size limit.
    let mut want: Vec<Item> = Vec::new();
    let mut rest = stream;
    loop {
        match camp_wire::FrameHeader::peek(rest) {
            Ok(None) => break,
            Err(err) => {
                want.push(Err(err));
                break;
            }
            Ok(Some(header)) if header.frame_len() > max_frame => {
                want.push(Err(WireError::Oversized {
                    len: header.frame_len() as u64,
                    max: max_frame as u64,
                }));
                break;
            }
            Ok(Some(header)) => {
                let Some((frame_bytes, tail)) = rest.split_at_checked(header.frame_len()) else {
                    break;
                };
                rest = tail;
                want.push(Frame::parse(frame_bytes).map(|(frame, _)| encode(&frame)));
            }
        }
    }
    assert_eq!(got, want);
});

/// The reader's limit for selector byte `scale`: 0..=249 step through 6..=4239 bytes (small
/// limits that short inputs can hit, and the whole range around the control-stream limit);
/// 250..=255 are the production limits exactly and one byte either side: the control stream's
/// `MAX_CONTROL_FRAME` and a unit stream's `FRAME_HEADER_LEN + MAX_BODY_LEN` (above which the
/// frame header's own cap decides).
fn max_frame(scale: u8) -> usize {
    const UNIT: usize = FRAME_HEADER_LEN + MAX_BODY_LEN;
    match scale {
        0..=249 => 6 + usize::from(scale) * 17,
        250 => MAX_CONTROL_FRAME - 1,
        251 => MAX_CONTROL_FRAME,
        252 => MAX_CONTROL_FRAME + 1,
        253 => UNIT - 1,
        254 => UNIT,
        255 => UNIT + 1,
    }
}

fn encode(frame: &Frame<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; frame.buffer_len()];
    assert_eq!(frame.emit(&mut buf), Ok(buf.len()));
    buf
}
