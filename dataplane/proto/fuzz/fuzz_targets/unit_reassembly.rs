//! Fuzz target: the client's receive path for units, from stream chunks to playout.
//!
//! Arbitrary operations on up to eight unit streams of `camp_proto::unit_rx::UnitStreams`
//! (open, a chunk at a chosen offset, finish, reset, drop everything), a finished stream or
//! a DATAGRAM decoded with `decode_unit` and handed to a `camp_recv::Receiver`, which is
//! polled for playout as the clock moves.
//!
//! Input: byte 0 picks the frame limit (255: the production limit, 1 MiB + 6 bytes;
//! otherwise 64 + 16 × the byte), then operations: an opcode byte (bits 0-2: operation,
//! bits 3-5: stream), and for a chunk a skew byte (0: the offset the stream continues at;
//! otherwise that plus the skew as a signed byte) and a u16 length; for a datagram a u16
//! length; for a clock step one byte of milliseconds.
//!
//! Checks besides "no panic": `UnitStreams` matches a model (the bytes a finished stream
//! gives back are exactly the chunks pushed since it opened; a gap, an overlap, a chunk past
//! the limit or on a stream not open is refused, and a refused stream is gone); a decoded
//! unit's payload is as long as its header says; the receiver stores a (modality, seq) at
//! most once and calls only a unit it has seen a duplicate; no unit plays twice, and a
//! played unit has the payload it was stored with.
#![no_main]

use std::collections::{HashMap, HashSet};

use camp_proto::unit_rx::{ChunkError, UnitStreams, decode_unit};
use camp_proto::{Modality, PathId};
use camp_recv::{Accepted, Receiver};
use camp_wire::{DATA_PREFIX_LEN, FRAME_HEADER_LEN, MAX_BODY_LEN};
use libfuzzer_sys::fuzz_target;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let hi = self.byte()?;
        let lo = self.byte()?;
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(self.0.len());
        let (b, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(b)
    }
}

/// What the receiver side has seen, for the invariants.
#[derive(Default)]
struct Seen {
    /// Payload of every unit stored (first copy), by (modality, seq).
    stored: HashMap<(Modality, u64), Vec<u8>>,
    /// Units acknowledged without delivery (too late).
    too_late: HashSet<(Modality, u64)>,
    played: HashSet<(Modality, u64)>,
}

fn deliver(rx: &mut Receiver, seen: &mut Seen, now_us: u64, path: PathId, frame: &[u8]) {
    let Ok((meta, payload)) = decode_unit(frame) else {
        return;
    };
    assert_eq!(
        payload.len(),
        frame.len() - DATA_PREFIX_LEN,
        "payload length"
    );
    let key = (meta.modality, meta.seq);
    match rx.on_unit(now_us, path, meta, payload) {
        Ok(Accepted::Stored) => {
            let again = seen.stored.insert(key, payload.to_vec());
            assert!(again.is_none(), "{key:?} stored twice");
        }
        Ok(Accepted::Duplicate) => assert!(
            seen.stored.contains_key(&key) || seen.too_late.contains(&key),
            "{key:?} called a duplicate but never received"
        ),
        Ok(Accepted::TooLate) => {
            assert!(
                !seen.stored.contains_key(&key),
                "{key:?} stored, then too late"
            );
            seen.too_late.insert(key);
        }
        Err(_) => {}
    }
}

fn play(rx: &mut Receiver, seen: &mut Seen, now_us: u64) {
    while let Some(u) = rx.poll_playout(now_us) {
        let key = (u.meta.modality, u.meta.seq);
        assert!(seen.played.insert(key), "{key:?} played twice");
        let Some(stored) = seen.stored.get(&key) else {
            panic!("{key:?} played but never stored");
        };
        assert_eq!(u.payload, &stored[..], "{key:?} played with other bytes");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some(scale) = input.byte() else { return };
    let max_frame = if scale == 255 {
        FRAME_HEADER_LEN + MAX_BODY_LEN
    } else {
        64 + 16 * usize::from(scale)
    };
    let mut streams: UnitStreams<u8> = UnitStreams::new(max_frame);
    // The model: bytes of each open stream.
    let mut model: HashMap<u8, Vec<u8>> = HashMap::new();
    let mut rx = Receiver::new(camp_proto_fuzz::receiver_config());
    let mut seen = Seen::default();
    let mut now_us = 1_000_000u64;

    while let Some(op) = input.byte() {
        let id = (op >> 3) & 7;
        let path = PathId(u32::from(id & 1));
        match op & 7 {
            0 => {
                let fresh = !model.contains_key(&id);
                assert_eq!(streams.open(id), fresh);
                model.entry(id).or_default();
                assert_eq!(streams.received(id), Some(model[&id].len()));
            }
            1 => {
                let Some(skew) = input.byte() else { break };
                let Some(chunk) = input.bytes() else { break };
                let expected = model.get(&id).map_or(0, |m| m.len() as u64);
                let offset = expected.wrapping_add_signed(i64::from(skew as i8));
                let want = match model.get(&id) {
                    None => Err(ChunkError::NotOpen),
                    Some(_) if offset != expected => Err(ChunkError::OutOfOrder {
                        expected,
                        got: offset,
                    }),
                    Some(m) if m.len() + chunk.len() > max_frame => {
                        Err(ChunkError::Oversized { max: max_frame })
                    }
                    Some(_) => Ok(()),
                };
                assert_eq!(streams.push(id, offset, chunk), want);
                match want {
                    Ok(()) => model.entry(id).or_default().extend_from_slice(chunk),
                    Err(_) => {
                        model.remove(&id);
                    }
                }
                assert!(streams.received(id).is_none_or(|n| n <= max_frame));
            }
            2 => {
                let got = streams.finish(id);
                assert_eq!(
                    got.as_deref(),
                    model.remove(&id).as_deref(),
                    "finished bytes"
                );
                if let Some(buf) = got {
                    deliver(&mut rx, &mut seen, now_us, path, &buf);
                    streams.recycle(buf);
                }
            }
            3 => assert_eq!(streams.drop_stream(id), model.remove(&id).is_some()),
            4 => {
                let Some(ms) = input.byte() else { break };
                now_us += u64::from(ms) * 1_000;
                rx.handle_timeout(now_us);
                while rx.poll_ack(now_us).is_some() {}
                let _ = rx.poll_feedback(now_us);
            }
            5 => {
                let Some(datagram) = input.bytes() else { break };
                deliver(&mut rx, &mut seen, now_us, path, datagram);
            }
            6 => {
                streams.clear();
                model.clear();
            }
            _ => rx.finish(now_us),
        }
        assert_eq!(streams.len(), model.len());
        play(&mut rx, &mut seen, now_us);
    }
    // Everything still held plays out eventually.
    rx.finish(now_us);
    play(&mut rx, &mut seen, now_us + 600_000_000);
});
