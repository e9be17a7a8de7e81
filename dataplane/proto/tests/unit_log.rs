//! The server's CAMP-level event log (`CampConfig::unit_log`): every unit the client
//! acknowledged was logged as sent before it was logged as acknowledged, a droppable unit
//! whose deadline passed at the sender is logged as dropped with that reason, the session's
//! path is logged as joined, and an unread log keeps its newest events and counts the rest.

mod pair;

use std::collections::HashSet;
use std::time::Duration;

use camp_proto::config::CampConfig;
use camp_proto::store::UnitSubmit;
use camp_proto::unit_log::{DropReason, UnitEventKind};
use camp_wire::{CaptureId, Modality, Reliability, UnitFlags};
use pair::Net;

fn submit(net: &mut Net, s: camp_proto::server::SessionId, n: u32) {
    // A session clock past 1 s, so that "a second ago" exists.
    net.run_for(Duration::from_millis(1_200));
    let now = net.now;
    let now_us = net.server.clock().micros(now);
    let payload = [7u8; 200];
    for k in 0..n {
        let text = UnitSubmit {
            modality: Modality::Text,
            reliability: Reliability::Reliable,
            flags: UnitFlags::empty(),
            sync_index: k,
            gen_time_us: now_us,
            deadline_us: 0,
            capture_id: CaptureId(0),
            payload: &payload[..40],
        };
        net.server.send_unit(now, s, &text).expect("text accepted");
        // Generated a second ago with a 100 ms deadline: it expires before it is sent.
        let stale = UnitSubmit {
            modality: Modality::Video,
            reliability: Reliability::Droppable,
            sync_index: k,
            gen_time_us: now_us.saturating_sub(1_000_000),
            deadline_us: 100_000,
            payload: &payload,
            ..text
        };
        net.server
            .send_unit(now, s, &stale)
            .expect("video accepted");
    }
}

#[test]
fn the_log_follows_every_unit_from_send_to_ack_or_drop() {
    let camp = CampConfig {
        unit_log: 10_000,
        ..CampConfig::default()
    };
    let mut net = Net::new(camp);
    let (_, s) = net.open_session(CampConfig::default());
    submit(&mut net, s, 20);
    assert!(
        net.run_until(Duration::from_secs(3), |net| net.server.unacked_reliable(s)
            == 0)
    );

    let mut sent = HashSet::new();
    let (mut acked, mut expired, mut joined) = (0, 0, 0);
    let mut last_time = 0;
    while let Some(e) = net.server.poll_unit_event() {
        assert_eq!(e.session, s);
        assert!(e.time_us >= last_time, "events in time order");
        last_time = e.time_us;
        match e.kind {
            UnitEventKind::Sent {
                modality,
                seq,
                reinjection,
                datagram,
                bytes,
                ..
            } => {
                assert_eq!(modality, Modality::Text, "the stale video is never sent");
                assert!(!datagram, "reliable units go on streams");
                assert!(bytes > 40, "frame = prefix + payload");
                if !reinjection {
                    assert!(sent.insert(seq), "first send of text {seq} logged once");
                }
            }
            UnitEventKind::Acked { modality, seq, .. } => {
                assert_eq!(modality, Modality::Text);
                assert!(sent.contains(&seq), "text {seq} acked before it was sent");
                acked += 1;
            }
            UnitEventKind::Dropped {
                modality, reason, ..
            } => {
                assert_eq!(
                    (modality, reason),
                    (Modality::Video, DropReason::ExpiredAtSender)
                );
                expired += 1;
            }
            UnitEventKind::PathJoined { .. } => joined += 1,
            UnitEventKind::PathClosed { .. } => panic!("no path closed"),
        }
    }
    assert_eq!((sent.len(), acked, expired, joined), (20, 20, 20, 1));
    assert_eq!(net.server.unit_log_overflowed(), 0);
}

#[test]
fn an_unread_log_keeps_its_newest_events_and_counts_the_rest() {
    let camp = CampConfig {
        unit_log: 8,
        ..CampConfig::default()
    };
    let mut net = Net::new(camp);
    let (_, s) = net.open_session(CampConfig::default());
    submit(&mut net, s, 20);
    assert!(
        net.run_until(Duration::from_secs(3), |net| net.server.unacked_reliable(s)
            == 0)
    );
    let kept = std::iter::from_fn(|| net.server.poll_unit_event()).count();
    assert_eq!(kept, 8);
    // 1 join + 20 sent + 20 acked + 20 dropped at least (reinjections may add sends).
    assert!(net.server.unit_log_overflowed() >= 61 - 8);
}

#[test]
fn without_a_log_nothing_is_recorded() {
    let mut net = Net::new(CampConfig::default());
    let (_, s) = net.open_session(CampConfig::default());
    submit(&mut net, s, 5);
    assert!(
        net.run_until(Duration::from_secs(3), |net| net.server.unacked_reliable(s)
            == 0)
    );
    assert_eq!(net.server.poll_unit_event(), None);
    assert_eq!(net.server.unit_log_overflowed(), 0);
}
