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
///   `max_frame`): the stream cannot be resynchronised. The reader keeps returning the same
///   error from `push` and `next_frame`; the caller closes the connection.
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
        self.buf.append(bytes);
        match self.pending_header() {
            Err(err) => self.fail(err),
            Ok(_) => Ok(()),
        }
    }

    /// Returns the next complete frame, `None` if no complete frame is buffered yet.
    ///
    /// The frame borrows the reader's buffer, so it must be dropped before the next call to
    /// `push` or `next_frame`.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, WireError>> {
        if let Some(err) = self.failed {
            return Some(Err(err));
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
        pub(super) fn append(&mut self, src: &[u8]) {
            if self.head > 0 {
                self.bytes.copy_within(self.head.., 0);
                self.bytes.truncate(self.bytes.len() - self.head);
                self.head = 0;
            }
            // Exact so that the buffer's capacity tracks the bound instead of doubling past
            // it; once capacity suffices this neither allocates nor copies.
            self.bytes.reserve_exact(src.len());
            self.bytes.extend_from_slice(src);
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
