//! The engine's side of every control channel allocates nothing once warm: publishing a
//! snapshot whose fill updates in place, draining knobs, recording latency and skew and
//! handing histogram intervals over. A counting global allocator counts only the thread
//! inside [`counted`], and only around the engine's calls; the control side runs between
//! them, uncounted, as the control thread would.

use camp_control::channels;
use camp_control::knobs::Knob;
use camp_control::snapshot::{EngineSnapshot, PathSnapshot, PathState, SessionSnapshot};
use camp_proto::Modality;
use camp_testkit::alloc::{CountingAlloc, counted};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// The engine's fill: overwrites the snapshot in place (the shape is stable here, as it is
/// between path joins and closes), so reused buffers need no new storage.
fn fill(s: &mut EngineSnapshot, n: u64) {
    s.unix_time_us = n;
    s.server.sessions_opened = n;
    s.sessions.resize_with(2, SessionSnapshot::default);
    for (i, sess) in s.sessions.iter_mut().enumerate() {
        sess.session = i as u64;
        sess.paths = 2;
        sess.modalities[Modality::Video as usize].sent = n;
        sess.scheduler.clear();
        sess.scheduler.push_str("camp");
    }
    while s.paths.len() < 2 {
        // Only while the buffer is new (warm-up).
        s.paths.push(template());
    }
    for p in &mut s.paths {
        p.bytes_sent = n;
        p.status = PathState::Available;
        p.nic.clear();
        p.nic.push_str("eth0");
    }
}

fn template() -> PathSnapshot {
    PathSnapshot {
        session: 0,
        path: 0,
        local: "10.0.0.1:4433".parse().unwrap(),
        remote: "10.0.0.2:5000".parse().unwrap(),
        nic: String::with_capacity(16),
        status: PathState::Standby,
        precedence: 0,
        usable: true,
        suspect: false,
        srtt_us: 0,
        min_rtt_us: 0,
        rttvar_us: 0,
        cwnd: 0,
        in_flight: 0,
        unsent: 0,
        delivery_rate: 0,
        btl_bw: 0,
        loss_ppm: 0,
        mtu: 1200,
        units_sent: 0,
        bytes_sent: 0,
        wire_bytes_sent: 0,
        lost_bytes: 0,
        xdp: None,
    }
}

#[test]
fn engine_side_is_allocation_free_once_warm() {
    let (mut engine, mut ends) = channels();
    let mut total = 0;
    for n in 1..=2_000u64 {
        // Control side, uncounted: read, send a knob, cycle the histogram interval.
        let seen = ends.snapshots.latest();
        if n % 7 == 0 {
            ends.knobs
                .send(Knob::SetCoupledCc { on: n % 2 == 0 })
                .unwrap();
        }
        if let Some(h) = ends.histos.collect() {
            ends.histos.recycle(h);
        }
        ends.histos.request_swap();
        drop(seen);

        let ((), allocs) = counted(|| {
            engine.snapshots.publish(|s| fill(s, n));
            engine.knobs.drain(|_| {});
            engine.histos.record_latency(Modality::Audio, 40_000 + n);
            engine.histos.record_skew(n % 5_000);
            engine.histos.poll_swap();
        });
        if n > 100 {
            total += allocs;
        }
    }
    assert_eq!(
        total, 0,
        "engine-side calls allocated {total} times after warm-up"
    );
    let last = ends.snapshots.latest().unwrap();
    assert_eq!(
        (last.seq, last.paths.len(), last.paths[1].bytes_sent),
        (2_000, 2, 2_000)
    );
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let (v, allocs) = counted(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert!(allocs >= 1);
}
