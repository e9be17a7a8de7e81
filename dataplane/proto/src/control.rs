//! Control frames copied out of a connection's [`camp_wire::FrameReader`] so they can be
//! acted upon while the reader is borrowed again. Fixed-size: no allocation.

use std::ops::Range;

use camp_wire::{
    Abandon, AddAddress, Feedback, Frame, Hello, Join, JoinOk, MAX_ACK_RANGES, Modality,
    PathStatusFrame, RemoveAddress, RttReport, Seq, SessionInfo,
};

/// A CAMP ACK with its ranges copied into a fixed array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnedAck {
    /// Acknowledged modality.
    pub modality: Modality,
    /// Every seq below this was received.
    pub cumulative: Seq,
    ranges: [(Seq, Seq); MAX_ACK_RANGES],
    len: usize,
}

impl OwnedAck {
    /// The acknowledged ranges above the cumulative point.
    pub fn ranges(&self) -> impl Iterator<Item = Range<Seq>> + Clone + '_ {
        self.ranges[..self.len].iter().map(|&(a, b)| a..b)
    }
}

/// One control frame (anything but DATA).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlFrame {
    /// Starts a session.
    Hello(Hello),
    /// Server answer to HELLO.
    Session(SessionInfo),
    /// Joins a path to a session.
    Join(Join),
    /// Server answer to an accepted JOIN.
    JoinOk(JoinOk),
    /// CAMP-level acknowledgement (1 KiB of ranges: the largest variant by design, copied
    /// on the stack rather than boxed so that decoding never allocates).
    Ack(OwnedAck),
    /// Path status / precedence change.
    PathStatus(PathStatusFrame),
    /// Path abandonment.
    Abandon(Abandon),
    /// RTT report.
    Rtt(RttReport),
    /// Alignment-buffer feedback.
    Feedback(Feedback),
    /// The server advertises an address.
    AddAddress(AddAddress),
    /// The server withdraws an advertised address.
    RemoveAddress(RemoveAddress),
}

impl ControlFrame {
    /// Copies a decoded frame; `None` for DATA (units never travel on the control stream).
    pub fn from_frame(frame: &Frame<'_>) -> Option<Self> {
        Some(match *frame {
            Frame::Hello(h) => ControlFrame::Hello(h),
            Frame::Session(s) => ControlFrame::Session(s),
            Frame::Join(j) => ControlFrame::Join(j),
            Frame::JoinOk(j) => ControlFrame::JoinOk(j),
            Frame::PathStatus(p) => ControlFrame::PathStatus(p),
            Frame::Abandon(a) => ControlFrame::Abandon(a),
            Frame::Rtt(r) => ControlFrame::Rtt(r),
            Frame::Feedback(f) => ControlFrame::Feedback(f),
            Frame::AddAddress(a) => ControlFrame::AddAddress(a),
            Frame::RemoveAddress(r) => ControlFrame::RemoveAddress(r),
            Frame::Ack(a) => {
                let mut ranges = [(0, 0); MAX_ACK_RANGES];
                let mut len = 0;
                // The decoder already bounded the count by MAX_ACK_RANGES.
                for (dst, r) in ranges.iter_mut().zip(a.ranges.iter()) {
                    *dst = (r.start, r.end);
                    len += 1;
                }
                ControlFrame::Ack(OwnedAck {
                    modality: a.modality,
                    cumulative: a.cumulative,
                    ranges,
                    len,
                })
            }
            Frame::Data { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_ranges_are_copied_and_data_is_refused() {
        let mut buf = [0u8; 256];
        let n = camp_wire::emit_ack(Modality::Audio, 5, &[7..9, 12..13], &mut buf).unwrap();
        let (frame, used) = Frame::parse(&buf[..n]).unwrap();
        assert_eq!(used, n);
        let Some(ControlFrame::Ack(a)) = ControlFrame::from_frame(&frame) else {
            panic!("not an ack")
        };
        assert_eq!(a.cumulative, 5);
        assert_eq!(a.ranges().collect::<Vec<_>>(), vec![7..9, 12..13]);
    }
}
