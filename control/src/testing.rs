//! Fixtures shared by the crate's unit tests.

use crate::snapshot::{PathSnapshot, PathState};

/// An available path of `session` with id `id` between two loopback addresses, `bytes`
/// sent, every gauge at its smallest plausible value.
pub(crate) fn path(session: u64, id: u32, bytes: u64) -> PathSnapshot {
    PathSnapshot {
        session,
        path: id,
        local: "127.0.0.1:4433".parse().unwrap(),
        remote: "127.0.0.1:5000".parse().unwrap(),
        nic: "lo".into(),
        status: PathState::Available,
        precedence: 7,
        usable: true,
        suspect: false,
        srtt_us: 1,
        min_rtt_us: 1,
        rttvar_us: 1,
        cwnd: 1,
        in_flight: 0,
        unsent: 0,
        delivery_rate: 0,
        btl_bw: 0,
        loss_ppm: 0,
        mtu: 1200,
        units_sent: 0,
        bytes_sent: bytes,
        wire_bytes_sent: 0,
        lost_bytes: 0,
        xdp: None,
    }
}
