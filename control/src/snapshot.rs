//! Snapshots of what the engine knows about its sessions and paths.
//!
//! The types are plain data from `camp-control-types` (re-exported here); this module adds
//! the constructors that read them off `camp_proto::server::Server` telemetry. The engine
//! builds an [`EngineSnapshot`] once per loop interval and hands it to [`crate::publish`];
//! everything downstream (Prometheus, the control socket, `campctl`) reads only these types,
//! never protocol state.

use camp_proto::Modality;
use camp_proto::edge::{EdgeCounters, EdgeDrop};
use camp_proto::sched::ClientFeedback;
use camp_proto::server::{PathInfo, ServerCounters, SessionId};
use camp_proto::store::StoreCounters;

pub use camp_control_types::snapshot::*;

use crate::convert::ToPlain;

/// Copies one path's telemetry.
pub fn path_snapshot(
    session: SessionId,
    info: &PathInfo,
    nic: &str,
    xdp: Option<XdpCounters>,
) -> PathSnapshot {
    let v = &info.view;
    PathSnapshot {
        session: session.to_bits(),
        path: v.id.0,
        local: info.local,
        remote: info.remote,
        nic: nic.to_owned(),
        status: v.status.to_plain(),
        precedence: v.precedence,
        usable: v.usable,
        suspect: v.suspect,
        srtt_us: v.srtt_us,
        min_rtt_us: v.min_rtt_us,
        rttvar_us: v.rttvar_us,
        cwnd: v.cwnd,
        in_flight: v.in_flight,
        unsent: v.unsent,
        delivery_rate: v.delivery_rate,
        btl_bw: v.btl_bw,
        loss_ppm: v.loss_ppm,
        mtu: v.mtu,
        units_sent: info.units_sent,
        bytes_sent: info.bytes_sent,
        wire_bytes_sent: info.gauges.sent_bytes,
        lost_bytes: info.gauges.lost_bytes,
        xdp,
    }
}

/// Copies one session's counters from the server's accessors.
pub fn session_snapshot(
    session: SessionId,
    scheduler: &str,
    paths: usize,
    store: &StoreCounters,
    feedback: Option<&ClientFeedback>,
) -> SessionSnapshot {
    let mut modalities = [ModalityCounters::default(); Modality::COUNT];
    for (m, c) in modalities.iter_mut().enumerate() {
        *c = ModalityCounters {
            submitted: store.submitted[m],
            sent: store.sent[m],
            reinjected: store.reinjected[m],
            dropped: store.dropped[m],
            acked: store.acked[m],
        };
    }
    let fb = feedback.copied().unwrap_or_default();
    SessionSnapshot {
        session: session.to_bits(),
        engine: 0,
        scheduler: scheduler.to_owned(),
        paths: u32::try_from(paths).unwrap_or(u32::MAX),
        modalities,
        safety_reinjections: store.safety_reinjections,
        playout_delay_us: fb.playout_delay_us,
        skew_mean_us: fb.skew_mean_us,
        skew_p95_us: fb.skew_p95_us,
        late_units: fb.late_units,
    }
}

/// The server's edge counters (the ingest count is campd's and set separately).
pub fn edge_totals(c: &EdgeCounters) -> EdgeTotals {
    EdgeTotals {
        handshakes_started: c.handshakes_started,
        handshakes_failed: c.handshakes_failed,
        hello_timeouts: c.hello_timeouts,
        refused_handshake_rate: c.refused[EdgeDrop::HandshakeRate as usize],
        refused_source_table_full: c.refused[EdgeDrop::SourceTableFull as usize],
        refused_sessions_per_source: c.refused[EdgeDrop::SessionsPerSource as usize],
        refused_join_attempts: c.refused[EdgeDrop::JoinAttempts as usize],
        retries_sent: c.retries_sent,
        ingest_rate_limited: 0,
        datagrams_dropped: c.datagrams_dropped,
        datagrams_answered: c.datagrams_answered,
    }
}

/// Server-wide counters (edge counters left at zero; see [`edge_totals`]).
pub fn server_totals(c: &ServerCounters) -> ServerTotals {
    ServerTotals {
        sessions_opened: c.sessions_opened,
        join_refused: c.join_refused.iter().sum(),
        malformed_control: c.malformed_control,
        deadline_resets: c.deadline_resets,
        suspected: c.suspected,
        edge: EdgeTotals::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use camp_proto::cc::GaugeSnapshot;
    use camp_proto::sched::PathView;
    use camp_proto::{PathId, PathStatus};

    fn info(id: u32, bytes: u64) -> PathInfo {
        let mut view = PathView::placeholder();
        view.id = PathId(id);
        view.status = PathStatus::Drain;
        view.precedence = 3;
        view.srtt_us = 12_000;
        view.cwnd = 64_000;
        view.loss_ppm = 2_500;
        PathInfo {
            slot: id as usize,
            view,
            local: "10.0.0.1:4433".parse().unwrap(),
            remote: "10.0.0.2:50000".parse().unwrap(),
            units_sent: 7,
            bytes_sent: bytes,
            gauges: GaugeSnapshot {
                sent_bytes: 9_999,
                lost_bytes: 11,
                ..Default::default()
            },
        }
    }

    #[test]
    fn path_snapshot_copies_view_and_gauges() {
        let xdp = XdpCounters {
            redirected: 5,
            ..Default::default()
        };
        let p = path_snapshot(SessionId::new(4, 0), &info(2, 100), "eth1", Some(xdp));
        assert_eq!((p.session, p.path, p.nic.as_str()), (4, 2, "eth1"));
        assert_eq!(p.status, PathState::Drain);
        assert_eq!(
            (p.precedence, p.srtt_us, p.cwnd, p.loss_ppm),
            (3, 12_000, 64_000, 2_500)
        );
        assert_eq!(
            (p.units_sent, p.bytes_sent, p.wire_bytes_sent, p.lost_bytes),
            (7, 100, 9_999, 11)
        );
        assert_eq!(p.xdp, Some(xdp));
    }

    #[test]
    fn traffic_share_is_per_session() {
        let snap = EngineSnapshot {
            paths: vec![
                path_snapshot(SessionId::new(0, 0), &info(0, 300), "a", None),
                path_snapshot(SessionId::new(0, 0), &info(1, 100), "b", None),
                path_snapshot(SessionId::new(1, 0), &info(0, 0), "a", None),
            ],
            ..Default::default()
        };
        assert_eq!(snap.traffic_share(&snap.paths[0]), 0.75);
        assert_eq!(snap.traffic_share(&snap.paths[1]), 0.25);
        assert_eq!(snap.traffic_share(&snap.paths[2]), 0.0);
    }

    #[test]
    fn session_snapshot_copies_store_and_feedback() {
        let mut store = StoreCounters::default();
        store.submitted[Modality::Video as usize] = 9;
        store.dropped[Modality::Video as usize] = 2;
        let fb = camp_proto::sched::ClientFeedback {
            skew_p95_us: 1_234,
            ..Default::default()
        };
        let s = session_snapshot(SessionId::new(3, 0), "camp", 2, &store, Some(&fb));
        assert_eq!(s.modalities[2].submitted, 9);
        assert_eq!(s.modalities[2].dropped, 2);
        assert_eq!(s.skew_p95_us, 1_234);
        assert_eq!(s.paths, 2);
    }

    #[test]
    fn edge_and_server_totals_copy_each_counter_to_its_field() {
        let mut edge = EdgeCounters::default();
        for (i, r) in edge.refused.iter_mut().enumerate() {
            *r = 10 + i as u64;
        }
        edge.datagrams_dropped[1] = 5;
        edge.retries_sent = 3;
        edge.hello_timeouts = 2;
        let e = edge_totals(&edge);
        assert_eq!(
            (
                e.refused_handshake_rate,
                e.refused_source_table_full,
                e.refused_sessions_per_source,
                e.refused_join_attempts
            ),
            (
                10 + EdgeDrop::HandshakeRate as u64,
                10 + EdgeDrop::SourceTableFull as u64,
                10 + EdgeDrop::SessionsPerSource as u64,
                10 + EdgeDrop::JoinAttempts as u64
            )
        );
        assert_eq!(e.datagrams_dropped, edge.datagrams_dropped);
        assert_eq!((e.retries_sent, e.hello_timeouts), (3, 2));
        assert_eq!(e.ingest_rate_limited, 0);

        let mut c = ServerCounters {
            sessions_opened: 4,
            suspected: 1,
            ..Default::default()
        };
        c.join_refused[0] = 2;
        c.join_refused[c.join_refused.len() - 1] = 5;
        let t = server_totals(&c);
        assert_eq!((t.sessions_opened, t.join_refused, t.suspected), (4, 7, 1));
        assert_eq!(t.edge, EdgeTotals::default());
    }
}
