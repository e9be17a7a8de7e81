//! Reassembly of frames from a QUIC stream (the per-connection control stream, or a unit
//! stream read in pieces).
//!
//! QUIC delivers stream bytes in arbitrary chunks; [`FrameReader`] buffers them and hands out
//! complete frames that borrow from its buffer. It is bounded by a caller-chosen maximum frame
//! size and, once its buffer has grown to working size, never allocates again: consumed bytes
//! are dropped by moving the unread tail to the front of the same buffer.

use buffer::Buffer;

use crate::{Frame, FrameHeader, WireError};

/// Accumulates bytes from a QUIC stream and yields complete frames.
///
/// Usage: after every [`push`](FrameReader::push), call
/// [`next_frame`](FrameReader::next_frame) until it returns `None`. Under that discipline the
/// buffer never holds more than `max_frame` + the last chunk's length.
///
/// Errors come in two kinds:
/// - *Framing errors* (bad version, unknown type, impossible length, a frame larger than
///   `max_frame`): the stream cannot be resynchronised. The error is returned once by
///   whichever call finds it; afterwards `push` keeps returning it and `next_frame` returns
///   `None` (so a `while let Some(..)` loop that merely counts errors cannot spin), and
///   [`is_failed`](FrameReader::is_failed) is true. The caller closes the connection.
/// - *Body errors* in a complete, well-framed frame (e.g. unknown modality in a DATA frame):
///   the frame is consumed and its error returned once; later frames can still be read, and
///   the caller decides whether to count a drop or close.
#[derive(Debug)]
pub struct FrameReader {
    buf: Buffer,
    max_frame: usize,
    failed: Option<WireError>,
}

impl FrameReader {
    /// Creates a reader that accepts frames of at most `max_frame` bytes, header included.
    /// Frames are also bounded by [`crate::MAX_BODY_LEN`], whatever `max_frame` says.
    pub fn new(max_frame: usize) -> Self {
        FrameReader {
            buf: Buffer::default(),
            max_frame,
            failed: None,
        }
    }

    /// Appends bytes read from the stream.
    ///
    /// Errors with [`WireError::Oversized`] if the pending frame announces more than
    /// `max_frame` bytes, or if more than `max_frame` bytes are still buffered (the caller
    /// did not drain complete frames with `next_frame`); with a framing error if the pending
    /// frame's header is invalid. After an error the reader is failed for good.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        if self.buf.len() > self.max_frame {
            return self.fail(WireError::Oversized {
                len: self.buf.len() as u64,
                max: self.max_frame as u64,
            });
        }
        self.buf.append(bytes, self.max_frame);
        match self.pending_header() {
            Err(err) => self.fail(err),
            Ok(_) => Ok(()),
        }
    }

    /// Returns the next complete frame, `None` if no complete frame is buffered yet (or the
    /// reader has failed).
    ///
    /// The frame borrows the reader's buffer, so it must be dropped before the next call to
    /// `push` or `next_frame`.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, WireError>> {
        if self.failed.is_some() {
            return None;
        }
        let frame_len = match self.pending_header() {
            Ok(Some(len)) => len,
            Ok(None) => return None,
            Err(err) => return Some(self.fail(err)),
        };
        let bytes = self.buf.take(frame_len)?;
        Some(Frame::parse(bytes).map(|(frame, _)| frame))
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a framing error has made the reader unusable.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail<T>(&mut self, err: WireError) -> Result<T, WireError> {
        self.failed = Some(err);
        Err(err)
    }

    /// Length of the first buffered frame if it is complete; `None` if more bytes are needed.
    fn pending_header(&self) -> Result<Option<usize>, WireError> {
        let Some(header) = FrameHeader::peek(self.buf.unread())? else {
            return Ok(None);
        };
        let frame_len = header.frame_len();
        if frame_len > self.max_frame {
            return Err(WireError::Oversized {
                len: frame_len as u64,
                max: self.max_frame as u64,
            });
        }
        Ok((frame_len <= self.buf.len()).then_some(frame_len))
    }
}

/// The byte buffer behind [`FrameReader`], kept separate so that its one invariant
/// (`head <= bytes.len()`) is local to a few lines.
mod buffer {
    /// Unread bytes are `bytes[head..]`.
    #[derive(Debug, Default)]
    pub(super) struct Buffer {
        bytes: Vec<u8>,
        head: usize,
    }

    impl Buffer {
        pub(super) fn len(&self) -> usize {
            self.bytes.len() - self.head
        }

        pub(super) fn unread(&self) -> &[u8] {
            self.bytes.get(self.head..).unwrap_or_default()
        }

        /// Appends `src`, first moving unread bytes to the front so the vector's capacity
        /// is reused instead of grown.
        ///
        /// When it must grow, capacity at least doubles (so a large frame arriving in small
        /// chunks costs O(frame) copying, not O(frame² / chunk)) but never past
        /// `bound` + `src.len()`: the caller's own limit on what it buffers, so a peer cannot
        /// make the reader hold twice what it allows. Once capacity suffices this neither
        /// allocates nor copies.
        pub(super) fn append(&mut self, src: &[u8], bound: usize) {
            if self.head > 0 {
                self.bytes.copy_within(self.head.., 0);
                self.bytes.truncate(self.bytes.len() - self.head);
                self.head = 0;
            }
            let need = self.bytes.len().saturating_add(src.len());
            if need > self.bytes.capacity() {
                let doubled = self.bytes.capacity().saturating_mul(2);
                let cap = doubled.min(bound.saturating_add(src.len())).max(need);
                self.bytes.reserve_exact(cap - self.bytes.len());
            }
            self.bytes.extend_from_slice(src);
        }

        #[cfg(test)]
        pub(super) fn capacity(&self) -> usize {
            self.bytes.capacity()
        }

        /// Marks the first `n` unread bytes as read and returns them.
        pub(super) fn take(&mut self, n: usize) -> Option<&[u8]> {
            let end = self.head.checked_add(n)?;
            let taken = self.bytes.get(self.head..end)?;
            self.head = end;
            Some(taken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameType, Hello, JoinOk, PathId};

    const HELLO: [u8; 14] = [
        0x01, 0x10, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
    ];
    const JOIN_OK: [u8; 18] = [
        0x01, 0x13, 0x00, 0x00, 0x00, 0x0C, // v1, JOIN_OK, body 12
        0x00, 0x00, 0x00, 0x02, // path 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, // server time 5 µs
    ];
    /// DATA, video, droppable, seq 1, capture composed, payload [0x42, 0x43].
    const DATA: [u8; 44] = [
        0x01, 0x01, 0x00, 0x00, 0x00, 0x26, // v1, DATA, body 38
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // video, droppable, k = 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // seq 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xE8, // gen 1000 µs
        0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, // no deadline, composed
        0x00, 0x00, 0x00, 0x02, 0x42, 0x43, // payload
    ];

    fn stream() -> Vec<u8> {
        [&HELLO[..], &DATA, &JOIN_OK].concat()
    }

    #[test]
    fn frames_fed_one_byte_at_a_time_come_out_whole_and_in_order() {
        let mut reader = FrameReader::new(64);
        let mut types = Vec::new();
        for byte in stream() {
            reader.push(&[byte]).unwrap();
            while let Some(frame) = reader.next_frame() {
                types.push(frame.unwrap().frame_type());
            }
        }
        assert_eq!(
            types,
            [FrameType::Hello, FrameType::Data, FrameType::JoinOk]
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn frames_in_one_chunk_are_returned_one_per_call() {
        let mut reader = FrameReader::new(64);
        reader.push(&stream()).unwrap();
        assert_eq!(
            reader.next_frame(),
            Some(Ok(Frame::Hello(Hello {
                flags: 0,
                units_ahead: 1024
            })))
        );
        let Some(Ok(Frame::Data { header, payload })) = reader.next_frame() else {
            panic!("expected DATA")
        };
        assert_eq!(header.capture_id, crate::CaptureId::COMPOSED);
        assert_eq!(payload, [0x42, 0x43]);
        assert_eq!(
            reader.next_frame(),
            Some(Ok(Frame::JoinOk(JoinOk {
                path_id: PathId(2),
                server_time_us: 5
            })))
        );
        assert_eq!(reader.next_frame(), None);
    }

    #[test]
    fn partial_frame_waits_for_the_rest() {
        let mut reader = FrameReader::new(64);
        reader.push(&DATA[..20]).unwrap();
        assert_eq!(reader.next_frame(), None);
        assert_eq!(reader.buffered(), 20);
        reader.push(&DATA[20..]).unwrap();
        assert!(matches!(reader.next_frame(), Some(Ok(Frame::Data { .. }))));
    }

    #[test]
    fn frame_larger_than_max_frame_fails_the_reader() {
        let mut reader = FrameReader::new(40);
        assert_eq!(
            reader.push(&DATA[..6]),
            Err(WireError::Oversized { len: 44, max: 40 })
        );
        assert!(reader.is_failed());
        assert_eq!(reader.next_frame(), None);
        assert_eq!(
            reader.push(&HELLO),
            Err(WireError::Oversized { len: 44, max: 40 })
        );
    }

    #[test]
    fn oversized_frame_behind_a_good_one_is_reported_by_next_frame() {
        let mut reader = FrameReader::new(40);
        reader.push(&[&HELLO[..], &DATA[..6]].concat()).unwrap();
        assert_eq!(
            reader.next_frame(),
            Some(Ok(Frame::Hello(Hello {
                flags: 0,
                units_ahead: 1024
            })))
        );
        assert_eq!(
            reader.next_frame(),
            Some(Err(WireError::Oversized { len: 44, max: 40 }))
        );
        assert!(reader.is_failed());
        // Reported once, so a loop that only counts errors terminates.
        assert_eq!(reader.next_frame(), None);
    }

    #[test]
    fn framing_error_fails_the_reader() {
        let mut reader = FrameReader::new(64);
        let mut bad = HELLO;
        bad[0] = 9;
        assert_eq!(reader.push(&bad), Err(WireError::UnknownVersion(9)));
        assert_eq!(reader.next_frame(), None);
    }

    #[test]
    fn body_error_drops_one_frame_and_keeps_the_stream() {
        let mut reader = FrameReader::new(64);
        let mut bad = DATA;
        bad[6] = 7; // unknown modality
        reader.push(&[&bad[..], &HELLO].concat()).unwrap();
        assert_eq!(
            reader.next_frame(),
            Some(Err(WireError::UnknownModality(7)))
        );
        assert_eq!(
            reader.next_frame(),
            Some(Ok(Frame::Hello(Hello {
                flags: 0,
                units_ahead: 1024
            })))
        );
        assert!(!reader.is_failed());
    }

    #[test]
    fn undrained_buffer_past_max_frame_is_refused() {
        let mut reader = FrameReader::new(20);
        reader.push(&[&HELLO[..], &HELLO, &HELLO].concat()).unwrap();
        assert_eq!(
            reader.push(&HELLO),
            Err(WireError::Oversized {
                len: 3 * HELLO.len() as u64,
                max: 20
            })
        );
    }

    #[test]
    fn steady_state_neither_grows_nor_reallocates_the_buffer() {
        let max_frame = 64;
        let chunk = 7;
        let bytes: Vec<u8> = (0..200).flat_map(|_| stream()).collect();
        let mut reader = FrameReader::new(max_frame);
        let mut frames = 0;
        let mut warm_capacity = None;
        for (i, piece) in bytes.chunks(chunk).enumerate() {
            reader.push(piece).unwrap();
            assert!(reader.buffered() <= max_frame + chunk);
            while let Some(frame) = reader.next_frame() {
                frame.unwrap();
                frames += 1;
            }
            // After the first few rounds of the repeating pattern the capacity must be fixed.
            if i == 100 {
                warm_capacity = Some(reader.buf.capacity());
            } else if let Some(cap) = warm_capacity {
                assert_eq!(reader.buf.capacity(), cap, "reallocated at chunk {i}");
            }
        }
        assert_eq!(frames, 600);
        assert!(warm_capacity.unwrap() <= max_frame + chunk);
    }

    /// DATA frame like [`DATA`] with a payload of `n` bytes.
    fn data_with_payload(n: usize) -> Vec<u8> {
        let mut f = DATA[..DATA.len() - 2].to_vec();
        f[2..6].copy_from_slice(&u32::try_from(36 + n).unwrap().to_be_bytes());
        let len_at = f.len() - 4;
        f[len_at..].copy_from_slice(&u32::try_from(n).unwrap().to_be_bytes());
        f.extend(std::iter::repeat_n(0x42, n));
        f
    }

    #[test]
    fn a_large_frame_in_small_chunks_grows_the_buffer_a_logarithmic_number_of_times() {
        // The largest payload a DATA frame may carry (the body limit less the unit header).
        let payload = crate::MAX_BODY_LEN - 36;
        let frame = data_with_payload(payload);
        let chunk = 256;
        let max_frame = frame.len();
        let mut reader = FrameReader::new(max_frame);
        let mut growths = 0;
        let mut cap = reader.buf.capacity();
        let mut frames = 0;
        for piece in frame.chunks(chunk) {
            reader.push(piece).unwrap();
            if reader.buf.capacity() != cap {
                growths += 1;
                cap = reader.buf.capacity();
            }
            assert!(cap <= max_frame + chunk, "capacity {cap} past the bound");
            while let Some(f) = reader.next_frame() {
                match f.unwrap() {
                    Frame::Data { payload: p, .. } => assert_eq!(p.len(), payload),
                    other => panic!("unexpected frame {other:?}"),
                }
                frames += 1;
            }
        }
        assert_eq!(frames, 1);
        // Doubling from one chunk to ~1 MiB is 13 steps; exact reservation would be ~4,100.
        assert!(growths <= 16, "buffer grew {growths} times");
    }
}
