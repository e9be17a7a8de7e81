//! Fuzz target: any bytes a client sends as one control-socket line get a reply that
//! serialises, never a panic; over-long lines are refused as such, and a knob is queued only
//! when the reply says so.
#![no_main]

use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use camp_control::snapshot::{EngineSnapshot, PathSnapshot, PathState};
use camp_control::socket::{ErrorCode, MAX_LINE, Reply, handle_line};
use camp_control::{ControlState, Engine, channels};
use libfuzzer_sys::fuzz_target;

fn path(session: u64, id: u32) -> PathSnapshot {
    PathSnapshot {
        session,
        path: id,
        local: "127.0.0.1:4433".parse().unwrap(),
        remote: "127.0.0.1:5000".parse().unwrap(),
        nic: "lo".into(),
        status: PathState::Available,
        precedence: 1,
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
        bytes_sent: 0,
        wire_bytes_sent: 0,
        lost_bytes: 0,
        xdp: None,
    }
}

/// The engine end and the request handler's state, built once per process: building them
/// (channels, a published snapshot) costs far more than handling one line, and nothing a line
/// does outlives it once the knob queue is drained, so sharing them changes no verdict.
struct Fixture {
    engine: Engine,
    state: ControlState,
}

static FIXTURE: LazyLock<Mutex<Fixture>> = LazyLock::new(|| {
    let (mut engine, ends) = channels();
    engine.snapshots.publish(|s| {
        *s = EngineSnapshot {
            paths: vec![path(0, 1), path(1, 1), path(1, 2)],
            ..Default::default()
        };
    });
    let state = ControlState::new(ends.snapshots, ends.knobs, Duration::from_secs(1));
    Mutex::new(Fixture { engine, state })
});

fuzz_target!(|data: &[u8]| {
    // A panic in an earlier input poisons the lock; the process is about to report it anyway.
    let mut fixture = FIXTURE.lock().unwrap_or_else(PoisonError::into_inner);
    let Fixture { engine, state } = &mut *fixture;
    let reply = handle_line(state, data);
    serde_json::to_string(&reply).expect("every reply serialises");
    if data.len() > MAX_LINE {
        assert!(matches!(
            reply,
            Reply::Error {
                kind: ErrorCode::TooLong,
                ..
            }
        ));
    }
    let queued = engine.knobs.drain(|_| {});
    assert_eq!(queued, usize::from(matches!(reply, Reply::Queued { .. })));
});
