//! Runs `examples/embedded_receiver.rs` (campd and an embedded receiver over 127.0.0.1)
//! and checks what its renderer saw.

#[allow(dead_code)]
#[path = "../examples/embedded_receiver.rs"]
mod embedded_receiver;

#[test]
fn the_embedded_receiver_example_renders_a_whole_turn() {
    let r = embedded_receiver::run(false).expect("example runs");
    eprintln!("{r:?}");
    // Every text and audio unit campd submitted was handed to the renderer.
    assert_eq!(r.shown[0], r.submitted[0], "text");
    assert_eq!(r.shown[1], r.submitted[1], "audio");
    assert!(r.submitted[1] > 40, "a one-second turn has 50 audio frames");
    assert!(r.ended[0] && r.ended[1]);
    assert!(r.shown[2] > 0, "some video shown");
    // The CAMP playout delay may rise during the turn and shift later audio by the raise;
    // on loopback that stays far below one audio frame's worth of slack per raise.
    assert!(
        r.audio_drift_us < 100_000,
        "audio drift {} µs",
        r.audio_drift_us
    );
}
