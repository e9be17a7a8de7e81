//! The simulator's file parsers (mahimahi traces, JSON-lines turn traces) never panic on
//! arbitrary input: they return a typed error or a value.

use camp_sim::link::Trace;
use camp_sim::workload::parse_replay;
use proptest::prelude::*;

proptest! {
    #[test]
    fn trace_parser_never_panics(text in "[0-9 \\n\\-x]{0,200}") {
        if let Ok(t) = Trace::parse("fuzz", &text) {
            prop_assert!(t.mean_bps() > 0.0);
        }
    }

    #[test]
    fn replay_parser_never_panics(text in "\\PC{0,300}") {
        let _ = parse_replay(&text);
    }

    #[test]
    fn replay_parser_accepts_every_valid_line(
        release in 0u32..10_000, extra in 0u32..10_000, size in 0usize..100_000,
        m in prop::sample::select(vec!["text", "audio", "video"]),
    ) {
        let media = release + extra;
        let line = format!(
            "{{\"release_ms\": {release}, \"media_ms\": {media}, \"modality\": \"{m}\", \"size\": {size}}}"
        );
        let units = parse_replay(&line).unwrap();
        prop_assert_eq!(units.len(), 1);
        prop_assert_eq!(units[0].release_us, u64::from(release) * 1000);
        prop_assert_eq!(units[0].gen_us, u64::from(media) * 1000);
        prop_assert_eq!(units[0].size, size);
    }
}
