//! Steady-state reception allocates nothing: after a warm-up, `on_unit`, `handle_timeout`,
//! `poll_playout`, `poll_ack` and `poll_feedback` over thousands of units of all three
//! modalities (two paths, reordering, duplicates, video losses, keyframes) make zero heap
//! allocations. Its own test binary, because it installs a counting global allocator.

use camp_recv::{
    CaptureId, Micros, Modality, PathId, PlayoutPolicy, Receiver, ReceiverConfig, Seq, UnitFlags,
    UnitMeta,
};
use camp_testkit::alloc::{CountingAlloc, counted, panic_if_env};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const MS: Micros = 1_000;

/// One unit of a synthetic digital-human turn: per 40 ms group k, a text token, two 20 ms
/// audio frames and one video frame (a keyframe every 25), sent over two paths whose one-way
/// delays differ by 15 ms; every 50th video frame is lost, every 30th audio frame is
/// duplicated on the other path.
struct Unit {
    arrival: Micros,
    path: PathId,
    meta: UnitMeta,
    len: usize,
}

fn turn(groups: u32) -> Vec<Unit> {
    let mut units = Vec::new();
    let mut push = |m: Modality, seq: Seq, k: u32, gen_us: Micros, len: usize, flags: UnitFlags| {
        let fast = seq % 3 != 0;
        let delay = if fast { 20 * MS } else { 35 * MS } + (seq * 7919 % 5) * MS;
        let meta = UnitMeta {
            modality: m,
            reliability: m.default_reliability(),
            flags,
            sync_index: k,
            seq,
            gen_time_us: gen_us,
            deadline_us: if m == Modality::Video { 150_000 } else { 0 },
            capture_id: CaptureId(1),
        };
        if m == Modality::Video && seq % 50 == 49 {
            return;
        }
        units.push(Unit {
            arrival: gen_us + delay,
            path: PathId(u32::from(fast)),
            meta,
            len,
        });
        if m == Modality::Audio && seq % 30 == 29 {
            units.push(Unit {
                arrival: gen_us + delay + 9 * MS,
                path: PathId(u32::from(!fast)),
                meta,
                len,
            });
        }
    };
    for k in 0..groups {
        let g = Micros::from(k) * 40 * MS;
        let s = Seq::from(k);
        push(
            Modality::Text,
            s,
            k,
            g,
            8 + (s % 24) as usize,
            UnitFlags::empty(),
        );
        push(Modality::Audio, 2 * s, k, g, 160, UnitFlags::empty());
        push(
            Modality::Audio,
            2 * s + 1,
            k,
            g + 20 * MS,
            160,
            UnitFlags::empty(),
        );
        let (flags, len) = if k % 25 == 0 {
            (UnitFlags::KEYFRAME, 24_000)
        } else {
            (UnitFlags::empty(), 2_000 + (s % 7) as usize * 500)
        };
        push(Modality::Video, s, k, g, len, flags);
    }
    units.sort_by_key(|u| u.arrival);
    units
}

/// Drives the receiver the way a session would, up to and including `now`.
fn pump(r: &mut Receiver, now: Micros, played: &mut u64, acks: &mut u64) {
    r.handle_timeout(now);
    while let Some(u) = r.poll_playout(now) {
        *played += u.payload.len() as u64;
    }
    while let Some(a) = r.poll_ack(now) {
        *acks += a.cumulative + a.ranges.len() as u64;
    }
    let _ = r.poll_feedback(now);
}

#[test]
fn steady_state_reception_does_not_allocate() {
    panic_if_env();
    assert!(
        camp_testkit::alloc::installed(),
        "the counting allocator is in use"
    );
    let units = turn(2_500); // 10 000 units of payload plus duplicates, minus losses
    let payload = vec![0xA5u8; 32 * 1024];
    for policy in [
        PlayoutPolicy::camp_default(),
        PlayoutPolicy::Fixed { delay_us: 60_000 },
        PlayoutPolicy::LipSync {
            audio_delay_us: 40_000,
        },
        PlayoutPolicy::OnArrival,
    ] {
        let mut r = Receiver::new(ReceiverConfig {
            playout: policy,
            ..ReceiverConfig::default()
        });
        r.set_path_rtt(PathId(0), 70 * MS as u32);
        r.set_path_rtt(PathId(1), 40 * MS as u32);
        let (mut played, mut acks) = (0, 0);
        let feed = |r: &mut Receiver, u: &Unit, played: &mut u64, acks: &mut u64| {
            // Timers that fell due between two arrivals run first, as a session would.
            while let Some(t) = r.poll_timeout() {
                if t >= u.arrival {
                    break;
                }
                pump(r, t, played, acks);
            }
            let res = r.on_unit(u.arrival, u.path, u.meta, &payload[..u.len]);
            assert!(res.is_ok(), "{:?}: {res:?}", u.meta);
            pump(r, u.arrival, played, acks);
        };
        let (warm, steady) = units.split_at(1_000);
        for u in warm {
            feed(&mut r, u, &mut played, &mut acks);
        }
        let ((), allocations) = counted(|| {
            for u in steady {
                feed(&mut r, u, &mut played, &mut acks);
            }
        });
        let counted_units = steady.len();
        assert!(counted_units >= 9_000);
        assert_eq!(
            allocations,
            0,
            "{}: {allocations} allocations over {counted_units} units",
            policy.name()
        );
        // The run was real: units were presented and acknowledged, losses inferred.
        assert!(played > 0 && acks > 0);
        assert!(r.counters().duplicates > 0);
        assert!(r.counters().video_lost_inferred > 0, "{:?}", r.counters());
        assert_eq!(
            r.counters().refused_too_far + r.counters().refused_buffer_full,
            0
        );
        assert_eq!(r.metrics().delivered(Modality::Audio), 5_000);
    }
}
