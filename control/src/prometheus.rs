//! Prometheus text exposition (format 0.0.4) of an [`EngineSnapshot`] and the last
//! interval's latency and skew quantiles.
//!
//! Every metric is prefixed `camp_`, times are in seconds and sizes in bytes, as Prometheus
//! naming asks. Per-path series carry `session`, `path`, `local`, `remote` and `nic` labels;
//! XDP counters are per NIC. Interval quantiles are gauges (they describe one interval, not
//! a cumulative distribution), labelled `quantile`.

use std::fmt::Write as _;

use crate::histo::Quantiles;
use crate::snapshot::{
    EngineSnapshot, MODALITY_NAMES, NicSnapshot, PacketsBytes, PathSnapshot, PathState, XdpCounters,
};
use crate::socket::StatsReply;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn us(v: u64) -> f64 {
    v as f64 / 1e6
}

fn status_code(s: PathState) -> f64 {
    match s {
        PathState::Standby => 0.0,
        PathState::Available => 1.0,
        PathState::Drain => 2.0,
    }
}

type PathMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&EngineSnapshot, &PathSnapshot) -> f64,
);

const PATH_METRICS: &[PathMetric] = &[
    (
        "camp_path_status",
        "gauge",
        "Administrative status (0 standby, 1 available, 2 drain).",
        |_, p| status_code(p.status),
    ),
    (
        "camp_path_precedence",
        "gauge",
        "Path precedence (higher preferred).",
        |_, p| f64::from(p.precedence),
    ),
    (
        "camp_path_usable",
        "gauge",
        "1 when the path is established and joined.",
        |_, p| f64::from(u8::from(p.usable)),
    ),
    (
        "camp_path_suspect",
        "gauge",
        "1 when the path has stalled for several PTOs.",
        |_, p| f64::from(u8::from(p.suspect)),
    ),
    (
        "camp_path_srtt_seconds",
        "gauge",
        "Smoothed round-trip time.",
        |_, p| us(p.srtt_us),
    ),
    (
        "camp_path_min_rtt_seconds",
        "gauge",
        "Minimum round-trip time.",
        |_, p| us(p.min_rtt_us),
    ),
    (
        "camp_path_rttvar_seconds",
        "gauge",
        "Round-trip time variance.",
        |_, p| us(p.rttvar_us),
    ),
    (
        "camp_path_cwnd_bytes",
        "gauge",
        "Congestion window.",
        |_, p| p.cwnd as f64,
    ),
    (
        "camp_path_in_flight_bytes",
        "gauge",
        "Bytes sent and not yet acknowledged or lost.",
        |_, p| p.in_flight as f64,
    ),
    (
        "camp_path_unsent_bytes",
        "gauge",
        "Bytes written to the path but not yet packetised.",
        |_, p| p.unsent as f64,
    ),
    (
        "camp_path_delivery_rate_bytes_per_second",
        "gauge",
        "Measured delivery rate.",
        |_, p| p.delivery_rate as f64,
    ),
    (
        "camp_path_btl_bw_bytes_per_second",
        "gauge",
        "Bottleneck bandwidth estimate.",
        |_, p| p.btl_bw as f64,
    ),
    (
        "camp_path_loss_ratio",
        "gauge",
        "Recent loss rate (fraction of sent bytes).",
        |_, p| p.loss_ppm as f64 / 1e6,
    ),
    (
        "camp_path_mtu_bytes",
        "gauge",
        "Maximum datagram size.",
        |_, p| p.mtu as f64,
    ),
    (
        "camp_path_units_sent_total",
        "counter",
        "Units written to the path.",
        |_, p| p.units_sent as f64,
    ),
    (
        "camp_path_unit_bytes_sent_total",
        "counter",
        "Unit payload bytes written to the path.",
        |_, p| p.bytes_sent as f64,
    ),
    (
        "camp_path_wire_bytes_sent_total",
        "counter",
        "Bytes handed to the network, QUIC overhead and retransmissions included.",
        |_, p| p.wire_bytes_sent as f64,
    ),
    (
        "camp_path_lost_bytes_total",
        "counter",
        "Bytes declared lost.",
        |_, p| p.lost_bytes as f64,
    ),
    (
        "camp_path_traffic_share",
        "gauge",
        "Share of the session's unit bytes sent on this path.",
        |s, p| s.traffic_share(p),
    ),
];

type NicField = (&'static str, fn(&NicSnapshot) -> PacketsBytes);

const NIC_ACTIONS: [NicField; 5] = [
    ("redirected", |n| n.redirected),
    ("pass_other", |n| n.pass_other),
    ("pass_no_socket", |n| n.pass_no_socket),
    ("redirect_failed", |n| n.redirect_failed),
    ("parse_failed", |n| n.parse_failed),
];

type PathXdpField = (&'static str, fn(&XdpCounters) -> u64);

const PATH_XDP_VERDICTS: [PathXdpField; 4] = [
    ("redirected", |x| x.redirected),
    ("passed", |x| x.passed),
    ("redirect_failed", |x| x.redirect_failed),
    ("parse_failed", |x| x.parse_failed),
];

/// Renders the exposition text.
pub fn render(snap: &EngineSnapshot, stats: Option<&StatsReply>) -> String {
    let mut o = Out(String::with_capacity(4096 + 2048 * snap.paths.len()));

    o.family(
        "camp_snapshot_seq",
        "gauge",
        "Sequence number of the engine snapshot.",
    );
    o.sample("camp_snapshot_seq", &[], snap.seq as f64);
    o.family(
        "camp_snapshot_timestamp_seconds",
        "gauge",
        "Wall-clock time of the snapshot.",
    );
    o.sample(
        "camp_snapshot_timestamp_seconds",
        &[],
        us(snap.unix_time_us),
    );

    let server: [(&str, &str, u64); 5] = [
        (
            "camp_server_sessions_opened_total",
            "Sessions created.",
            snap.server.sessions_opened,
        ),
        (
            "camp_server_join_refused_total",
            "Path joins refused.",
            snap.server.join_refused,
        ),
        (
            "camp_server_malformed_control_total",
            "Control frames that failed to decode.",
            snap.server.malformed_control,
        ),
        (
            "camp_server_deadline_resets_total",
            "Unit streams reset at their deadline.",
            snap.server.deadline_resets,
        ),
        (
            "camp_server_suspected_paths_total",
            "Paths suspected failed.",
            snap.server.suspected,
        ),
    ];
    for (name, help, v) in server {
        o.family(name, "counter", help);
        o.sample(name, &[], v as f64);
    }
    o.family(
        "camp_edge_events_total",
        "counter",
        "Strangers and limits at the edge: handshakes started and failed, HELLO timeouts, refusals by limit, Retries, ingest units over their rate.",
    );
    for (event, v) in snap.server.edge.events() {
        o.sample("camp_edge_events_total", &[("event", event)], v as f64);
    }
    o.family(
        "camp_edge_datagrams_dropped_total",
        "counter",
        "Datagrams that reached no connection and got no answer, by what their header says.",
    );
    for (reason, v) in camp_proto::edge::DatagramDrop::ALL
        .iter()
        .zip(snap.server.edge.datagrams_dropped)
    {
        o.sample(
            "camp_edge_datagrams_dropped_total",
            &[("reason", reason.name())],
            v as f64,
        );
    }
    o.family(
        "camp_edge_datagrams_answered_total",
        "counter",
        "Datagrams answered without a connection (version negotiation, stateless reset, refusal, Retry).",
    );
    o.sample(
        "camp_edge_datagrams_answered_total",
        &[],
        snap.server.edge.datagrams_answered as f64,
    );

    let st = &snap.settings;
    o.family(
        "camp_scheduler_info",
        "gauge",
        "Scheduler of new sessions (value always 1).",
    );
    o.sample("camp_scheduler_info", &[("scheduler", &st.scheduler)], 1.0);
    o.family(
        "camp_target_skew_seconds",
        "gauge",
        "Target inter-modal skew of the CAMP scheduler.",
    );
    o.sample("camp_target_skew_seconds", &[], us(st.target_skew_us));
    o.family(
        "camp_deadline_seconds",
        "gauge",
        "Deadline per modality (0 = none).",
    );
    for (m, name) in MODALITY_NAMES.iter().enumerate() {
        o.sample(
            "camp_deadline_seconds",
            &[("modality", name)],
            us(st.deadline_us[m]),
        );
    }
    o.family(
        "camp_coupled_cc",
        "gauge",
        "1 when coupled congestion control is on.",
    );
    o.sample("camp_coupled_cc", &[], f64::from(u8::from(st.coupled_cc)));
    if !st.scheduler_params.is_empty() {
        o.family(
            "camp_scheduler_param",
            "gauge",
            "Scheduler parameters in force, by campctl name (units as the name says).",
        );
        for (name, v) in &st.scheduler_params {
            o.sample("camp_scheduler_param", &[("name", name)], *v);
        }
    }

    o.family("camp_sessions", "gauge", "Open sessions.");
    o.sample("camp_sessions", &[], snap.sessions.len() as f64);

    let ids: Vec<String> = snap
        .sessions
        .iter()
        .map(|s| s.session.to_string())
        .collect();
    // Sessions per engine (campd --engines K), engines 0..=the highest holding a session.
    let engines = snap
        .sessions
        .iter()
        .map(|s| usize::from(s.engine) + 1)
        .max();
    o.family(
        "camp_engine_sessions",
        "gauge",
        "Open sessions held by each engine.",
    );
    for e in 0..engines.unwrap_or(1) {
        let n = snap
            .sessions
            .iter()
            .filter(|s| usize::from(s.engine) == e)
            .count();
        o.sample(
            "camp_engine_sessions",
            &[("engine", &e.to_string())],
            n as f64,
        );
    }
    o.family("camp_session_paths", "gauge", "Paths in the session.");
    for (s, id) in snap.sessions.iter().zip(&ids) {
        o.sample(
            "camp_session_paths",
            &[("session", id), ("engine", &s.engine.to_string())],
            f64::from(s.paths),
        );
    }
    type UnitField = (
        &'static str,
        &'static str,
        fn(&crate::snapshot::ModalityCounters) -> u64,
    );
    let units: [UnitField; 5] = [
        (
            "camp_session_units_submitted_total",
            "Units accepted.",
            |c| c.submitted,
        ),
        (
            "camp_session_units_sent_total",
            "Units transmitted for the first time.",
            |c| c.sent,
        ),
        (
            "camp_session_units_reinjected_total",
            "Units retransmitted on another path.",
            |c| c.reinjected,
        ),
        (
            "camp_session_units_dropped_total",
            "Droppable units dropped at their deadline.",
            |c| c.dropped,
        ),
        (
            "camp_session_units_acked_total",
            "Units acknowledged.",
            |c| c.acked,
        ),
    ];
    for (name, help, f) in units {
        o.family(name, "counter", help);
        for (s, id) in snap.sessions.iter().zip(&ids) {
            for (m, mname) in MODALITY_NAMES.iter().enumerate() {
                o.sample(
                    name,
                    &[("session", id), ("modality", mname)],
                    f(&s.modalities[m]) as f64,
                );
            }
        }
    }
    type FeedbackField = (
        &'static str,
        &'static str,
        fn(&crate::snapshot::SessionSnapshot) -> f64,
    );
    let feedback: [FeedbackField; 3] = [
        (
            "camp_session_client_skew_p95_seconds",
            "95th percentile inter-modal skew the client reported for its last interval.",
            |s| us(u64::from(s.skew_p95_us)),
        ),
        (
            "camp_session_client_playout_delay_seconds",
            "Target playout delay the client reported.",
            |s| us(u64::from(s.playout_delay_us)),
        ),
        (
            "camp_session_client_late_units",
            "Units the client saw arrive late in its last interval.",
            |s| f64::from(s.late_units),
        ),
    ];
    for (name, help, f) in feedback {
        o.family(name, "gauge", help);
        for (s, id) in snap.sessions.iter().zip(&ids) {
            o.sample(name, &[("session", id)], f(s));
        }
    }

    let labels: Vec<[String; 5]> = snap
        .paths
        .iter()
        .map(|p| {
            [
                p.session.to_string(),
                p.path.to_string(),
                p.local.to_string(),
                p.remote.to_string(),
                p.nic.clone(),
            ]
        })
        .collect();
    for (name, kind, help, f) in PATH_METRICS {
        o.family(name, kind, help);
        for (p, l) in snap.paths.iter().zip(&labels) {
            let l = [
                ("session", &*l[0]),
                ("path", &l[1]),
                ("local", &l[2]),
                ("remote", &l[3]),
                ("nic", &l[4]),
            ];
            o.sample(name, &l, f(snap, p));
        }
    }

    if !snap.nics.is_empty() {
        for (name, help, bytes) in [
            (
                "camp_xdp_packets_total",
                "Frames seen by the XDP classifier of a NIC, by action.",
                false,
            ),
            (
                "camp_xdp_bytes_total",
                "Bytes seen by the XDP classifier of a NIC, by action.",
                true,
            ),
        ] {
            o.family(name, "counter", help);
            for n in &snap.nics {
                for (action, f) in NIC_ACTIONS {
                    let c = f(n);
                    o.sample(
                        name,
                        &[("nic", &n.name), ("action", action)],
                        if bytes { c.bytes } else { c.packets } as f64,
                    );
                }
            }
        }
    }
    if snap.paths.iter().any(|p| p.xdp.is_some()) {
        let name = "camp_path_xdp_packets_total";
        o.family(
            name,
            "counter",
            "CAMP frames from a path's remote endpoint seen by the XDP classifier, by verdict.",
        );
        for p in &snap.paths {
            let Some(x) = p.xdp else { continue };
            let (session, path) = (p.session.to_string(), p.path.to_string());
            for (verdict, f) in PATH_XDP_VERDICTS {
                o.sample(
                    name,
                    &[
                        ("session", &session),
                        ("path", &path),
                        ("nic", &p.nic),
                        ("verdict", verdict),
                    ],
                    f(&x) as f64,
                );
            }
        }
    }

    if let Some(st) = stats {
        o.family(
            "camp_interval_seq",
            "gauge",
            "Number of the last finished histogram interval.",
        );
        o.sample("camp_interval_seq", &[], st.interval as f64);
        o.family(
            "camp_interval_latency_seconds",
            "gauge",
            "Unit latency L over the last interval, by modality and quantile.",
        );
        for (m, mname) in MODALITY_NAMES.iter().enumerate() {
            quantiles(
                &mut o,
                "camp_interval_latency_seconds",
                &[("modality", mname)],
                &st.summary.latency[m],
            );
        }
        o.family(
            "camp_interval_latency_count",
            "gauge",
            "Units in the last interval's latency histogram.",
        );
        for (m, mname) in MODALITY_NAMES.iter().enumerate() {
            o.sample(
                "camp_interval_latency_count",
                &[("modality", mname)],
                st.summary.latency[m].count as f64,
            );
        }
        o.family(
            "camp_interval_skew_seconds",
            "gauge",
            "Inter-modal skew of sync indices completed in the last interval, by quantile.",
        );
        quantiles(&mut o, "camp_interval_skew_seconds", &[], &st.summary.skew);
        o.family(
            "camp_interval_skew_count",
            "gauge",
            "Sync indices in the last interval's skew histogram.",
        );
        o.sample(
            "camp_interval_skew_count",
            &[],
            st.summary.skew.count as f64,
        );
    }
    o.0
}

fn quantiles(o: &mut Out, name: &str, base: &[(&str, &str)], q: &Quantiles) {
    for (label, v) in [
        ("0.5", q.p50_us),
        ("0.99", q.p99_us),
        ("0.999", q.p999_us),
        ("1", q.max_us),
    ] {
        let mut l = base.to_vec();
        l.push(("quantile", label));
        o.sample(name, &l, us(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histo::IntervalSummary;
    use crate::snapshot::{EngineSettings, ModalityCounters, ServerTotals, SessionSnapshot};

    fn snapshot() -> EngineSnapshot {
        let mut s = SessionSnapshot {
            session: 3,
            scheduler: "camp".into(),
            paths: 1,
            skew_p95_us: 4_000,
            ..Default::default()
        };
        s.modalities[1] = ModalityCounters {
            submitted: 10,
            sent: 9,
            reinjected: 1,
            dropped: 0,
            acked: 8,
        };
        EngineSnapshot {
            seq: 42,
            unix_time_us: 1_700_000_000_500_000,
            server: ServerTotals {
                sessions_opened: 5,
                join_refused: 1,
                malformed_control: 0,
                deadline_resets: 2,
                suspected: 0,
                edge: crate::snapshot::EdgeTotals {
                    handshakes_failed: 3,
                    ..Default::default()
                },
            },
            settings: EngineSettings {
                scheduler_params: [("margin_factor".to_owned(), 1.5)].into_iter().collect(),
                ..EngineSettings::default()
            },
            sessions: vec![s],
            paths: vec![PathSnapshot {
                session: 3,
                path: 1,
                local: "10.0.0.1:4433".parse().unwrap(),
                remote: "[2001:db8::2]:5000".parse().unwrap(),
                nic: "eth\"1".into(),
                status: PathState::Drain,
                precedence: 2,
                usable: true,
                suspect: false,
                srtt_us: 12_500,
                min_rtt_us: 10_000,
                rttvar_us: 1_250,
                cwnd: 64_000,
                in_flight: 1_200,
                unsent: 0,
                delivery_rate: 1_000_000,
                btl_bw: 2_000_000,
                loss_ppm: 2_500,
                mtu: 1_452,
                units_sent: 9,
                bytes_sent: 4_000,
                wire_bytes_sent: 5_000,
                lost_bytes: 12,
                xdp: Some(XdpCounters {
                    packets: 8,
                    bytes: 760,
                    redirected: 7,
                    passed: 1,
                    redirect_failed: 0,
                    parse_failed: 0,
                }),
            }],
            nics: vec![NicSnapshot {
                name: "eth\"1".into(),
                attach: "native".into(),
                redirected: PacketsBytes {
                    packets: 7,
                    bytes: 700,
                },
                pass_other: PacketsBytes {
                    packets: 3,
                    bytes: 180,
                },
                pass_no_socket: PacketsBytes {
                    packets: 1,
                    bytes: 60,
                },
                ..NicSnapshot::default()
            }],
        }
    }

    #[test]
    fn renders_exact_text() {
        let stats = StatsReply {
            interval: 4,
            interval_ms: 1000,
            summary: IntervalSummary {
                latency: [
                    Quantiles::default(),
                    Quantiles {
                        count: 3,
                        p50_us: 40_000,
                        p99_us: 61_000,
                        p999_us: 61_000,
                        max_us: 61_000,
                    },
                    Quantiles::default(),
                ],
                skew: Quantiles {
                    count: 2,
                    p50_us: 1_000,
                    p99_us: 3_000,
                    p999_us: 3_000,
                    max_us: 3_000,
                },
            },
        };
        let got = render(&snapshot(), Some(&stats));
        let want = include_str!("testdata/metrics.txt");
        if std::env::var_os("CAMP_BLESS").is_some() {
            // Rewrites the expected text after an intended change; review the diff.
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/metrics.txt");
            std::fs::write(path, &got).unwrap();
            return;
        }
        if got != want {
            for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
                assert_eq!(g, w, "first difference on line {}", i + 1);
            }
            assert_eq!(got.lines().count(), want.lines().count());
        }
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let text = render(&snapshot(), None);
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert!(
                    families.insert(rest.split(' ').next().unwrap().to_owned()),
                    "duplicate {line}"
                );
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(line.starts_with("camp_"), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(families.contains(name), "{name} has no TYPE line");
        }
        assert!(
            !text.contains("camp_interval_"),
            "no interval metrics without stats"
        );
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
