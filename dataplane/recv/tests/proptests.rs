//! Property tests of the receiver against simple oracles: exactly-once in-order delivery of a
//! reliable stream, ACK state against a `BTreeSet` of received seqs, and the draft's `C`
//! (draft-song-tsvwg-camp-00 §3.1.4) against a brute-force computation.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use camp_recv::{
    CaptureId, MAX_ACK_RANGES, Micros, Modality, PathId, PlayoutPolicy, Receiver, ReceiverConfig,
    Seq, SyncIndex, UnitFlags, UnitMeta,
};
use proptest::prelude::*;

fn meta(m: Modality, seq: Seq, k: SyncIndex, gen_us: Micros) -> UnitMeta {
    UnitMeta {
        modality: m,
        reliability: m.default_reliability(),
        flags: UnitFlags::empty(),
        sync_index: k,
        seq,
        gen_time_us: gen_us,
        deadline_us: 0,
        capture_id: CaptureId(0),
    }
}

fn receiver(window: u32) -> Receiver {
    Receiver::new(ReceiverConfig {
        playout: PlayoutPolicy::OnArrival,
        max_units_ahead: window,
        ..ReceiverConfig::default()
    })
}

/// A permutation of `0..n` with up to `n` duplicates mixed in.
fn permutation_with_duplicates(max_n: u64) -> impl Strategy<Value = (u64, Vec<u64>)> {
    (1..max_n).prop_flat_map(|n| {
        (
            Just((0..n).collect::<Vec<u64>>()),
            proptest::collection::vec(0..n, 0..n as usize),
        )
            .prop_map(|(mut all, dups)| {
                all.extend(dups);
                all
            })
            .prop_shuffle()
            .prop_map(move |v| (n, v))
    })
}

/// Oracle: cumulative point and the highest `MAX_ACK_RANGES` maximal runs above it.
fn ack_oracle(received: &BTreeSet<u64>) -> (u64, Vec<Range<u64>>) {
    let mut cumulative = 0;
    while received.contains(&cumulative) {
        cumulative += 1;
    }
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for &s in received.range(cumulative..) {
        match ranges.last_mut() {
            Some(r) if r.end == s => r.end = s + 1,
            _ => ranges.push(s..s + 1),
        }
    }
    let skip = ranges.len().saturating_sub(MAX_ACK_RANGES);
    (cumulative, ranges.split_off(skip))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any arrival order with duplicates, over two paths and a small window whose refusals
    /// the "sender" retransmits, delivers exactly `0..n`, once each, in order.
    #[test]
    fn reliable_delivery_is_exactly_once_and_in_order(
        (n, arrivals) in permutation_with_duplicates(200),
        window in 2u32..64,
    ) {
        let mut r = receiver(window);
        let mut delivered = Vec::new();
        let mut retransmit = Vec::new();
        let mut now = 0;
        let feed = |r: &mut Receiver, seq: u64, now: Micros, retransmit: &mut Vec<u64>, delivered: &mut Vec<u64>| {
            let path = PathId((seq % 2) as u32);
            if r.on_unit(now, path, meta(Modality::Text, seq, 0, 0), &seq.to_le_bytes()).is_err() {
                retransmit.push(seq);
            }
            while let Some(u) = r.poll_playout(now) {
                assert_eq!(u.payload, &u.meta.seq.to_le_bytes());
                delivered.push(u.meta.seq);
            }
        };
        for seq in arrivals {
            now += 1;
            feed(&mut r, seq, now, &mut retransmit, &mut delivered);
        }
        // Each pass accepts at least the in-order seq, so this terminates within n passes.
        for _ in 0..=n {
            for seq in std::mem::take(&mut retransmit) {
                now += 1;
                feed(&mut r, seq, now, &mut retransmit, &mut delivered);
            }
        }
        prop_assert!(retransmit.is_empty());
        prop_assert_eq!(delivered, (0..n).collect::<Vec<_>>());
        prop_assert!(r.is_idle());
    }

    /// After every arrival the ACK state equals the oracle built from the received set.
    #[test]
    fn ack_state_matches_a_btreeset_oracle(
        seqs in proptest::collection::vec(0u64..400, 1..400),
    ) {
        let mut r = receiver(1024);
        let mut received = BTreeSet::new();
        for (t, seq) in seqs.into_iter().enumerate() {
            r.on_unit(t as Micros, PathId(0), meta(Modality::Text, seq, 0, 0), b"t").expect("window holds 0..400");
            received.insert(seq);
            let (cumulative, ranges) = r.ack_state(Modality::Text);
            let (oc, or) = ack_oracle(&received);
            prop_assert_eq!(cumulative, oc);
            prop_assert_eq!(ranges, or.as_slice());
            while r.poll_playout(t as Micros).is_some() {}
        }
        // The ACK the session sends carries the same state.
        let ack = r.poll_ack(Micros::MAX).expect("units arrived");
        let (oc, or) = ack_oracle(&received);
        prop_assert_eq!((ack.cumulative, ack.ranges), (oc, or.as_slice()));
    }

    /// `C = mean Delta_k` over groups with two or more modalities equals a brute-force
    /// computation on random arrival sets.
    #[test]
    fn skew_c_matches_a_brute_force_oracle(
        streams in proptest::collection::vec(
            proptest::collection::vec((0u32..=2, 0u64..50_000), 0..60),
            Modality::COUNT,
        ),
    ) {
        // Per modality: units in seq order with non-decreasing sync index and a random
        // arrival time.
        let mut units = Vec::new();
        for (m, stream) in Modality::ALL.into_iter().zip(&streams) {
            let mut k = 0;
            for (seq, &(step, arrival)) in stream.iter().enumerate() {
                k += step;
                units.push((arrival, m, seq as Seq, k));
            }
        }
        units.sort_by_key(|u| u.0);
        let mut r = receiver(1024);
        for &(arrival, m, seq, k) in &units {
            r.on_unit(arrival, PathId(0), meta(m, seq, k, 0), b"u").expect("accepted");
            while r.poll_playout(arrival).is_some() {}
        }
        r.finish(50_000);

        let mut last: BTreeMap<(SyncIndex, usize), Micros> = BTreeMap::new();
        for &(arrival, m, _, k) in &units {
            let a = last.entry((k, m.index())).or_insert(arrival);
            *a = (*a).max(arrival);
        }
        let mut per_k: BTreeMap<SyncIndex, Vec<Micros>> = BTreeMap::new();
        for (&(k, _), &a) in &last {
            per_k.entry(k).or_default().push(a);
        }
        let deltas: Vec<u64> = per_k
            .values()
            .filter(|a| a.len() >= 2)
            .map(|a| a.iter().max().copied().unwrap_or(0) - a.iter().min().copied().unwrap_or(0))
            .collect();
        prop_assert_eq!(r.metrics().skew_groups(), deltas.len() as u64);
        let oracle = (!deltas.is_empty()).then(|| deltas.iter().sum::<u64>() as f64 / deltas.len() as f64);
        match (r.metrics().skew_c_us(), oracle) {
            (Some(c), Some(o)) => prop_assert!((c - o).abs() < 1e-9, "C {} vs oracle {}", c, o),
            (c, o) => prop_assert_eq!(c, o),
        }
    }
}
