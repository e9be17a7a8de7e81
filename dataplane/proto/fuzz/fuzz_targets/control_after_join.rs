//! Fuzz target: arbitrary bytes on the CAMP control streams of a joined session.
//!
//! Each input runs a real handshake on the in-memory network: a two-path client says HELLO
//! on path 0 and JOINs path 1, the server answers SESSION and JOIN_OK. Then the input's
//! records are written, as plaintext, onto the real (QUIC-encrypted) control streams
//! (`fuzz_send_control` hooks of the `fuzzing` feature) and the network runs on, so the
//! bytes go through quinn's stream reassembly into the receiving end's own `read_control`,
//! frame reader and frame handling.
//!
//! Input: records (`camp_proto_fuzz::records`); selector bit 0 picks the direction (0:
//! client to server, 1: server to client), bit 1 the path.
//!
//! Checks besides "no panic", from what the bytes of each stream are (walked with
//! `Frame::parse`): if every stream carries only whole frames its receiver accepts from a
//! member path (server: ACK, FEEDBACK, PATH_STATUS, RTT; client: RTT, PATH_STATUS,
//! ADD_ADDRESS, REMOVE_ADDRESS), no control frame is counted malformed, no path closes and
//! both paths stay in the session;
//! if some stream holds a malformed or forbidden frame (or one beyond the 4 KiB control
//! limit) and none an ABANDON before it, a malformed control frame is counted and a path
//! closes. Streams ending in a partial frame, or with ABANDON, are not judged.
#![no_main]

use std::time::Duration;

use camp_proto::PathId;
use camp_proto::client::ClientEvent;
use camp_proto::server::ServerEvent;
use camp_proto_fuzz::{Net, records};
use camp_wire::{FRAME_HEADER_LEN, Frame, MAX_CONTROL_FRAME, WireError};
use libfuzzer_sys::fuzz_target;

/// What a stream's bytes are, as far as the receiving end can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Only whole frames the receiver accepts.
    Valid,
    /// A frame the receiver must refuse (closing the connection).
    Bad,
    /// Ends in a partial frame or abandons a path: not judged.
    Unknown,
}

/// The bytes written onto one control stream, and where each write started: the sending
/// end may put a frame of its own (an RTT report) between two writes, so a frame split
/// across writes is not judged.
#[derive(Default)]
struct Written {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Written {
    /// Whether a write started strictly inside `from..to`.
    fn split(&self, from: usize, to: usize) -> bool {
        self.starts.iter().any(|&s| from < s && s < to)
    }
}

fn judge(w: &Written, to_server: bool) -> Verdict {
    let bytes = &w.bytes[..];
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match Frame::parse(rest) {
            Ok((frame, used)) => {
                if w.split(at, at + used) {
                    return Verdict::Unknown;
                }
                if used > MAX_CONTROL_FRAME {
                    return Verdict::Bad;
                }
                let accepted = match frame {
                    Frame::Abandon(_) => return Verdict::Unknown,
                    Frame::Rtt(_) | Frame::PathStatus(_) => true,
                    Frame::Ack(_) | Frame::Feedback(_) => to_server,
                    // Address advertisements: a client applies (or ignores) them, a
                    // server never expects one.
                    Frame::AddAddress(_) | Frame::RemoveAddress(_) => !to_server,
                    _ => false,
                };
                if !accepted {
                    return Verdict::Bad;
                }
                at += used;
            }
            Err(WireError::Truncated { needed, .. }) => {
                // The reader refuses a frame announced beyond its limit before it is whole.
                let whole_header =
                    rest.len() >= FRAME_HEADER_LEN && !w.split(at, at + FRAME_HEADER_LEN);
                return if needed > MAX_CONTROL_FRAME && whole_header {
                    Verdict::Bad
                } else {
                    Verdict::Unknown
                };
            }
            // Where the frame ends is not known here: judged only if no write started after
            // it began.
            Err(_) if w.split(at, bytes.len() + 1) => return Verdict::Unknown,
            Err(_) => return Verdict::Bad,
        }
    }
    Verdict::Valid
}

fuzz_target!(|data: &[u8]| {
    let mut net = Net::new(2, false);
    let session = net.join(2).expect("the in-memory session joins both paths");
    let joined_events = (net.server_events.len(), net.client_events.len());

    // Bytes per stream: [direction][path].
    let mut streams: [[Written; 2]; 2] = Default::default();
    for record in records(data) {
        let to_server = record.selector & 1 == 0;
        let path = usize::from((record.selector >> 1) & 1);
        let queued = if to_server {
            net.client.fuzz_send_control(path, record.payload)
        } else {
            net.server
                .fuzz_send_control(session, PathId(path as u32), record.payload)
        };
        // Refused only once the path is gone, which some earlier record caused.
        if queued {
            let w = &mut streams[usize::from(!to_server)][path];
            w.starts.push(w.bytes.len());
            w.bytes.extend_from_slice(record.payload);
        }
        net.run(Duration::from_millis(20), |_| false);
    }
    net.run(Duration::from_millis(200), |_| false);

    let verdicts: Vec<Verdict> = streams
        .iter()
        .enumerate()
        .flat_map(|(dir, paths)| paths.iter().map(move |b| judge(b, dir == 0)))
        .collect();
    let malformed =
        net.server.counters().malformed_control + net.client.counters().malformed_control;
    let closed = net.server_events[joined_events.0..]
        .iter()
        .any(|e| matches!(e, ServerEvent::PathClosed(..)))
        || net.client_events[joined_events.1..]
            .iter()
            .any(|e| matches!(e, ClientEvent::PathClosed { .. }));
    if verdicts.iter().all(|v| *v == Verdict::Valid) {
        assert_eq!(malformed, 0, "valid control bytes counted malformed");
        assert!(!closed, "valid control bytes closed a path");
        assert_eq!(net.server.paths(session).len(), 2);
        assert!(net.client.path_id(0).is_some() && net.client.path_id(1).is_some());
    } else if !verdicts.contains(&Verdict::Unknown) {
        assert!(
            malformed > 0,
            "a bad control frame was not counted: {verdicts:?}"
        );
        assert!(closed, "a bad control frame closed nothing: {verdicts:?}");
    }
});
