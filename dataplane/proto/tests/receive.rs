//! The client's receive path: a unit that arrives in one stream chunk is decoded from
//! quinn's own buffer (no copy of ours before the receiver's), a unit spread over several
//! chunks is gathered once, and every unit of both kinds reaches the receiver in order.

mod pair;

use std::time::Duration;

use camp_proto::config::CampConfig;
use camp_proto::store::UnitSubmit;
use camp_wire::{CaptureId, Modality, Reliability, UnitFlags};
use pair::Net;

#[test]
fn small_units_skip_the_gather_copy_and_large_ones_are_gathered_whole() {
    let mut net = Net::new(CampConfig::default());
    let (i, s) = net.open_session(CampConfig::default());
    let payload: Vec<u8> = (0..20_000u32).map(|b| b as u8).collect();
    let now = net.now;
    let now_us = net.server.clock().micros(now);
    // 30 small text units (one chunk each) and 6 reliable video units of 12 kB (several
    // packets, so several chunks each).
    let (small, large) = (30u32, 6u32);
    for k in 0..small {
        let unit = UnitSubmit {
            modality: Modality::Text,
            reliability: Reliability::Reliable,
            flags: UnitFlags::empty(),
            sync_index: k,
            gen_time_us: now_us,
            deadline_us: 0,
            capture_id: CaptureId(0),
            payload: &payload[..40],
        };
        net.server.send_unit(now, s, &unit).expect("text accepted");
    }
    for k in 0..large {
        let unit = UnitSubmit {
            modality: Modality::Video,
            reliability: Reliability::Reliable,
            flags: UnitFlags::empty(),
            sync_index: k,
            gen_time_us: now_us,
            deadline_us: 0,
            capture_id: CaptureId(0),
            payload: &payload[..12_000],
        };
        net.server.send_unit(now, s, &unit).expect("video accepted");
    }
    let acked = net.run_until(Duration::from_secs(3), |net| {
        net.server.pending_units(s) == 0
    });
    assert!(acked, "units not acknowledged");
    let client = net.clients[i].as_mut().expect("client");
    let rx = client.receiver();
    assert_eq!(rx.in_order_point(Modality::Text), u64::from(small));
    assert_eq!(rx.in_order_point(Modality::Video), u64::from(large));
    let c = *client.counters();
    assert_eq!(c.malformed_units, 0);
    assert_eq!(c.refused_units, 0);
    // No 12 kB unit fits one chunk; most 40-byte units do (several share a packet, so the
    // one that straddles a packet boundary comes in two chunks and is gathered).
    assert!(
        c.units_in_one_chunk <= u64::from(small) && c.units_in_one_chunk >= u64::from(small) / 2,
        "{c:?}"
    );
    // Both paths hand the receiver the bytes that were sent.
    let mut seen = [0u32; Modality::COUNT];
    // The player's surface: the next presentation time, then the units due by then.
    let due = client
        .next_playout()
        .expect("units queued for presentation");
    assert!(
        client
            .poll_playout(due - Duration::from_micros(1))
            .is_none(),
        "nothing is due before the next presentation time"
    );
    let first = client
        .poll_playout(due)
        .map(|p| p.meta.modality)
        .expect("a unit is due at it");
    seen[first.index()] += 1;
    let later = net.now + Duration::from_secs(10);
    while let Some(p) = client.poll_playout(later) {
        let len = if p.meta.modality == Modality::Text {
            40
        } else {
            12_000
        };
        assert_eq!(
            p.payload,
            &payload[..len],
            "{:?} {}",
            p.meta.modality,
            p.meta.seq
        );
        seen[p.meta.modality.index()] += 1;
    }
    assert_eq!(seen[Modality::Text.index()], small);
    assert_eq!(seen[Modality::Video.index()], large);
}
