//! Reassembly of unit frames on the receiving side (draft-song-tsvwg-camp-00 §4.2): each
//! unit travels on its own unidirectional stream, whose bytes arrive in chunks; the stream's
//! end marks the end of the frame. [`UnitStreams`] collects the chunks of every open unit
//! stream of a connection, refusing a chunk that does not continue the stream where it left
//! off or that would make the frame larger than a unit may be, and [`decode_unit`] turns a
//! finished stream (or a DATAGRAM frame) into the receiver's [`UnitMeta`] and payload.
//!
//! Buffers are pooled: a finished, reset or refused stream's buffer is emptied and reused by
//! the next stream, so a steady flow of units allocates nothing.

use std::collections::HashMap;
use std::hash::Hash;

use camp_recv::UnitMeta;
use camp_wire::{Frame, WireError};

/// Why a chunk was not taken. The stream is dropped in every case (its buffer goes back to
/// the pool), and the caller stops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// No unit stream with this id is open (never opened, already finished or dropped).
    #[error("no open unit stream with this id")]
    NotOpen,
    /// The chunk does not start where the previous one ended.
    #[error("chunk at offset {got}, stream continues at {expected}")]
    OutOfOrder {
        /// Bytes received so far on the stream.
        expected: u64,
        /// Offset the chunk claims.
        got: u64,
    },
    /// The stream carries more than one unit frame may be.
    #[error("unit stream longer than {max} bytes")]
    Oversized {
        /// Largest unit frame accepted.
        max: usize,
    },
}

/// Why a finished unit stream or a DATAGRAM is not a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnitDecodeError {
    /// The frame does not parse.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A well-formed frame that is not DATA.
    #[error("not a DATA frame")]
    NotData,
    /// Bytes after the frame: a unit stream carries exactly one frame.
    #[error("{0} bytes after the unit frame")]
    Trailing(usize),
}

/// The unit streams of one connection being received.
#[derive(Debug)]
pub struct UnitStreams<K> {
    open: HashMap<K, Vec<u8>>,
    pool: Vec<Vec<u8>>,
    max_frame: usize,
}

impl<K: Copy + Eq + Hash> UnitStreams<K> {
    /// No stream open; frames of at most `max_frame` bytes (header included) are accepted.
    pub fn new(max_frame: usize) -> Self {
        Self {
            open: HashMap::new(),
            pool: Vec::new(),
            max_frame,
        }
    }

    /// Starts receiving stream `id`. False (and nothing changes) if it is already open.
    pub fn open(&mut self, id: K) -> bool {
        if self.open.contains_key(&id) {
            return false;
        }
        // Pooled buffers are returned empty; clearing again keeps a unit's frame its own
        // even if a future return path forgets to.
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        self.open.insert(id, buf);
        true
    }

    /// Whether stream `id` is open.
    pub fn is_open(&self, id: K) -> bool {
        self.open.contains_key(&id)
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Bytes received so far on stream `id`.
    pub fn received(&self, id: K) -> Option<usize> {
        self.open.get(&id).map(Vec::len)
    }

    /// Appends a chunk that starts at stream offset `offset`. On an error the stream is
    /// dropped (not open any more).
    pub fn push(&mut self, id: K, offset: u64, bytes: &[u8]) -> Result<(), ChunkError> {
        let buf = self.open.get_mut(&id).ok_or(ChunkError::NotOpen)?;
        let expected = buf.len() as u64;
        let error = if offset != expected {
            ChunkError::OutOfOrder {
                expected,
                got: offset,
            }
        } else if bytes.len() > self.max_frame - buf.len() {
            ChunkError::Oversized {
                max: self.max_frame,
            }
        } else {
            buf.extend_from_slice(bytes);
            return Ok(());
        };
        self.drop_stream(id);
        Err(error)
    }

    /// The stream ended: its bytes, to be decoded and handed back with
    /// [`recycle`](Self::recycle). `None` if it was not open.
    pub fn finish(&mut self, id: K) -> Option<Vec<u8>> {
        self.open.remove(&id)
    }

    /// Returns a buffer taken with [`finish`](Self::finish) to the pool.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        self.pool.push(buf);
    }

    /// Forgets stream `id` (reset by the peer or refused); false if it was not open.
    pub fn drop_stream(&mut self, id: K) -> bool {
        match self.open.remove(&id) {
            Some(buf) => {
                self.recycle(buf);
                true
            }
            None => false,
        }
    }

    /// Forgets every open stream (the connection is gone).
    pub fn clear(&mut self) {
        let bufs: Vec<Vec<u8>> = self.open.drain().map(|(_, b)| b).collect();
        for buf in bufs {
            self.recycle(buf);
        }
    }
}

/// Decodes one complete unit frame: exactly one DATA frame and nothing after it. The
/// payload borrows from `bytes`; its length is the header's `payload_len`.
pub fn decode_unit(bytes: &[u8]) -> Result<(UnitMeta, &[u8]), UnitDecodeError> {
    let (frame, used) = Frame::parse(bytes)?;
    let Frame::Data { header, payload } = frame else {
        return Err(UnitDecodeError::NotData);
    };
    if used != bytes.len() {
        return Err(UnitDecodeError::Trailing(bytes.len() - used));
    }
    Ok((
        UnitMeta {
            modality: header.modality,
            reliability: header.reliability,
            flags: header.flags,
            sync_index: header.sync_index,
            seq: header.seq,
            gen_time_us: header.gen_time_us,
            deadline_us: header.deadline_us,
            capture_id: header.capture_id,
        },
        payload,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_wire::{CaptureId, Modality, Reliability, UnitFlags, UnitHeader};

    fn unit(seq: u64, payload: &[u8]) -> Vec<u8> {
        let header = UnitHeader {
            modality: Modality::Audio,
            reliability: Reliability::Reliable,
            flags: UnitFlags::empty(),
            sync_index: 3,
            seq,
            gen_time_us: 1_000,
            deadline_us: 0,
            capture_id: CaptureId::COMPOSED,
            payload_len: payload.len() as u32,
        };
        let mut buf = vec![0; camp_wire::DATA_PREFIX_LEN + payload.len()];
        let n = header.emit_prefix(&mut buf).expect("prefix fits");
        buf[n..].copy_from_slice(payload);
        buf
    }

    #[test]
    fn chunks_reassemble_into_the_unit() {
        let frame = unit(7, b"hello units");
        let mut s = UnitStreams::new(1024);
        assert!(s.open(4u64));
        assert!(!s.open(4), "already open");
        let (a, b) = frame.split_at(10);
        s.push(4, 0, a).unwrap();
        s.push(4, 10, b).unwrap();
        let buf = s.finish(4).expect("open");
        let (meta, payload) = decode_unit(&buf).unwrap();
        assert_eq!((meta.seq, meta.modality), (7, Modality::Audio));
        assert_eq!(payload, b"hello units");
        s.recycle(buf);
        assert!(s.is_empty());
        assert!(s.finish(4).is_none(), "finished once");
    }

    #[test]
    fn a_gap_or_an_overlap_drops_the_stream() {
        let mut s = UnitStreams::new(1024);
        s.open(1u64);
        s.push(1, 0, &[1, 2, 3]).unwrap();
        assert_eq!(
            s.push(1, 5, &[4]),
            Err(ChunkError::OutOfOrder {
                expected: 3,
                got: 5
            })
        );
        assert!(!s.is_open(1));
        s.open(2);
        s.push(2, 0, &[1, 2, 3]).unwrap();
        assert!(matches!(
            s.push(2, 1, &[2]),
            Err(ChunkError::OutOfOrder { .. })
        ));
        assert_eq!(s.push(2, 0, &[1]), Err(ChunkError::NotOpen));
    }

    #[test]
    fn the_frame_limit_is_exact_and_reused_buffers_start_empty() {
        let mut s = UnitStreams::new(8);
        s.open(1u64);
        s.push(1, 0, &[0; 5]).unwrap();
        s.push(1, 5, &[0; 3]).unwrap();
        assert_eq!(s.received(1), Some(8));
        assert_eq!(s.push(1, 8, &[0]), Err(ChunkError::Oversized { max: 8 }));
        // The refused stream's buffer is reused by the next stream, empty.
        s.open(2);
        assert_eq!(s.received(2), Some(0));
        s.push(2, 0, &[9]).unwrap();
        s.clear();
        assert!(s.is_empty());
        s.open(3);
        assert_eq!(s.received(3), Some(0));
    }

    #[test]
    fn a_unit_is_one_data_frame_and_nothing_else() {
        let frame = unit(1, b"x");
        let mut trailing = frame.clone();
        trailing.push(0);
        assert_eq!(decode_unit(&trailing), Err(UnitDecodeError::Trailing(1)));
        assert!(matches!(
            decode_unit(&frame[..frame.len() - 1]),
            Err(UnitDecodeError::Wire(WireError::Truncated { .. }))
        ));
        let mut rtt = [0u8; 64];
        let n = Frame::Rtt(camp_wire::RttReport {
            path_id: camp_wire::PathId(0),
            raw_us: 1,
            min_us: 1,
            max_us: 1,
            smoothed_us: 1,
            age_us: 0,
        })
        .emit(&mut rtt)
        .unwrap();
        assert_eq!(decode_unit(&rtt[..n]), Err(UnitDecodeError::NotData));
        assert!(decode_unit(&[]).is_err());
    }
}
