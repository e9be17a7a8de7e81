//! Real codecs over the two-path netns lab, with A/V sync measured by ffmpeg in the file the
//! client's presented media make (tools/avsync.py has the whole procedure): speech from
//! espeak-ng in Opus, a VP8 flash on every word onset, the words as text units, once on a
//! healthy lab and once with path 1 cut mid-clip.
//!
//! Needs root (namespaces), espeak-ng and ffmpeg; without root it prints `SKIPPED` and
//! passes unless `CI` is set. Namespaces are removed by the script, also on failure.

use std::path::Path;
use std::process::Command;

use camp_testkit::netns::root_or_skip;

const WORDS: u64 = 12;

#[test]
fn opus_and_vp8_through_two_paths_stay_in_lip_sync() {
    if !root_or_skip("opus_and_vp8_through_two_paths_stay_in_lip_sync") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("timeout")
        .args(["240", "python3"])
        .arg(root.join("tools/avsync.py"))
        .args(["--campd", env!("CARGO_BIN_EXE_campd")])
        .args(["--client", env!("CARGO_BIN_EXE_camp-client")])
        .arg("--out")
        .arg(out.path())
        .args(["--words", &WORDS.to_string(), "--cut-at", "5", "--json"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running tools/avsync.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "avsync.py failed:\n{stdout}\n{stderr}"
    );
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("{}", serde_json::to_string_pretty(&r).unwrap());

    // The measurement itself: on the input clip every word is found, within 5 ms.
    let input = &r["input"];
    assert_eq!(input["measured"], WORDS, "{input}");
    for v in input["offsets_ms"].as_array().unwrap() {
        assert!(v.as_f64().unwrap().abs() <= 5.0, "input offsets {input}");
    }
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let name = run["run"].as_str().unwrap();
        assert_eq!(run["client"]["reliable_lost"], 0, "{name}: {run}");
        assert_eq!(run["client"]["ended_by"], "end_of_turn", "{name}: {run}");
        let streams: Vec<&str> = run["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(streams, ["opus", "vp8", "webvtt"], "{name}");
        // Audio and text are reliable: everything sent is presented, every audio frame decodes.
        assert_eq!(run["audio_presented"], run["audio_sent"], "{name}: {run}");
        assert_eq!(run["audio_decoded"], run["audio_sent"], "{name}: {run}");
        assert_eq!(run["text_presented"], WORDS, "{name}: {run}");
        // Every presented video frame decodes (a dropped frame never breaks the stream).
        assert_eq!(
            run["video_decoded"], run["video_presented"],
            "{name}: {run}"
        );
        // The receiver never runs the audio clock fast during speech (this clip's Opus has
        // no gaps): a free-running audio device sees what a timestamp-following player sees,
        // and the audio playout delay only ever rises (issue 12 finding: it fell 51 ms).
        let free = &run["free_running_audio"];
        for k in ["offset_ms_min", "offset_ms_max"] {
            let (f, t) = (free[k].as_f64().unwrap(), run[k].as_f64().unwrap());
            assert!(
                (f - t).abs() <= 1.0,
                "{name}: free-running {k} {f} vs {t}: {run}"
            );
        }
        let d = &run["audio_playout_delay_ms"];
        assert!(
            d["last"].as_f64().unwrap() >= d["first"].as_f64().unwrap(),
            "{name}: {d}"
        );
    }
    let healthy = &runs[0];
    assert_eq!(
        healthy["video_presented"], healthy["video_sent"],
        "{healthy}"
    );
    assert_eq!(healthy["measured"], WORDS, "{healthy}");
    assert_eq!(healthy["inside_is191"], WORDS, "healthy: {healthy}");
    // With the cut, what is measured is reported whatever it is; a word whose flash frame
    // was dropped is not measured, and most words must be.
    let cut = &runs[1];
    assert!(cut["measured"].as_u64().unwrap() >= WORDS / 2, "{cut}");
    assert!(out.path().join("avsync_frame.png").exists());
}
