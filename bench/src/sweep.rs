//! `camp-bench io --sweep`: an RFC 2544-style throughput and latency sweep (RFC 2544 §26.1
//! and §26.2) over AF_XDP. For every frame size: the highest offered rate with no loss, found
//! by binary search (a bounded number of trials of bounded length), then latency percentiles
//! with the load at 10, 50 and 90 % of that rate. Written as JSON, CSV and an SVG of frames/s
//! and % of line rate against frame size.
//!
//! Deviations from RFC 2544, on purpose: trials are short (`--trial-seconds`, the RFC asks
//! for 60 s), latency is taken from every frame's payload stamp rather than one tagged frame
//! per trial, and it is measured at fractions of the zero-loss rate instead of at it.

use std::fmt::Write as _;
use std::time::Duration;

use camp_xdp::frame::FrameHeader;
use serde::Serialize;

use crate::line::{LineReport, Measure, Port, RFC2544_SIZES, Role, line_rate_pps, measure_once};

/// Limits of one sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Frame sizes (FCS included).
    pub sizes: Vec<usize>,
    /// Binary-search trials per size after the unthrottled one.
    pub steps: u32,
    /// Seconds per trial.
    pub trial_seconds: f64,
    /// Accepted loss ratio of a passing trial.
    pub loss_tolerance: f64,
    /// Upper bound on frames per trial.
    pub max_frames: u64,
}

impl SweepConfig {
    /// The sizes to run: the configured ones or the RFC 2544 list.
    pub fn sizes(&self) -> Vec<usize> {
        if self.sizes.is_empty() {
            RFC2544_SIZES.to_vec()
        } else {
            self.sizes.clone()
        }
    }
}

/// One trial of the search.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// Offered frames/s (0: unthrottled).
    pub offered_pps: f64,
    /// Frames/s actually sent.
    pub sent_pps: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// Within the loss tolerance.
    pub passed: bool,
}

/// Latency at one load.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyPoint {
    /// Load as a percentage of the zero-loss rate.
    pub load_pct: u32,
    /// Offered frames/s.
    pub offered_pps: f64,
    /// Frames received.
    pub received: u64,
    /// Frames lost.
    pub lost: u64,
    /// Percentiles in microseconds: p50, p90, p99, max.
    pub p50_us: f64,
    /// p90 (us).
    pub p90_us: f64,
    /// p99 (us).
    pub p99_us: f64,
    /// Maximum (us).
    pub max_us: f64,
}

/// Result for one frame size.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRow {
    /// Frame size (FCS included).
    pub frame_size: usize,
    /// Line rate of the link in frames/s, when its speed is known.
    pub line_rate_pps: Option<f64>,
    /// Frames/s of the unthrottled sender (the search's upper bound).
    pub sender_max_pps: f64,
    /// The unthrottled trial lost nothing: the zero-loss rate is the sender's ceiling, not
    /// the receiver's (no search was needed).
    pub sender_bound: bool,
    /// Highest received rate of a passing trial (0 when none passed).
    pub zero_loss_pps: f64,
    /// The same in Gbit/s of frames.
    pub zero_loss_gbps: f64,
    /// The same as a share of line rate (%).
    pub line_rate_pct: Option<f64>,
    /// Every trial of the search, in order.
    pub trials: Vec<Trial>,
    /// Latency at 10, 50 and 90 % of the zero-loss rate.
    pub latency: Vec<LatencyPoint>,
}

/// The sweep's result.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// Sending interface.
    pub tx_interface: String,
    /// Receiving interface.
    pub rx_interface: String,
    /// AF_XDP bind mode of the receiver.
    pub bind: String,
    /// Link speed (Mbit/s), when known.
    pub speed_mbps: Option<u64>,
    /// Seconds per trial.
    pub trial_seconds: f64,
    /// Loss tolerance.
    pub loss_tolerance: f64,
    /// One row per frame size.
    pub rows: Vec<SweepRow>,
}

fn passes(r: &LineReport, tol: f64) -> bool {
    r.sent > 0 && (r.sent.saturating_sub(r.received) as f64) <= tol * r.sent as f64
}

/// Runs the sweep between two opened ports (both in this thread's reach).
pub fn sweep(
    tx: &mut Port,
    rx: &mut Port,
    header: FrameHeader,
    cfg: &SweepConfig,
    mut progress: impl FnMut(&str),
) -> Result<SweepReport, String> {
    let speed = rx.speed_mbps.or(tx.speed_mbps);
    let duration = Duration::from_secs_f64(cfg.trial_seconds);
    let mut trial_no: u16 = 0;
    let mut run = |tx: &mut Port, rx: &mut Port, size: usize, rate: f64| {
        trial_no = trial_no.wrapping_add(1);
        measure_once(
            Some(tx),
            Some(rx),
            Some(header),
            &Measure {
                role: Role::Both,
                frame_size: size,
                rate,
                duration,
                max_frames: cfg.max_frames,
                trial: trial_no,
            },
        )
    };
    let mut rows = Vec::new();
    for size in cfg.sizes() {
        let line = speed.map(|s| line_rate_pps(s, size));
        let mut trials = Vec::new();
        let record = |r: &LineReport, trials: &mut Vec<Trial>| {
            let t = Trial {
                offered_pps: r.offered_pps,
                sent_pps: r.sent as f64 / r.seconds.max(1e-9),
                sent: r.sent,
                received: r.received,
                passed: passes(r, cfg.loss_tolerance),
            };
            trials.push(t.clone());
            t
        };
        let first = run(tx, rx, size, 0.0)?;
        let t0 = record(&first, &mut trials);
        // Never offer more than line rate: beyond it a real NIC queues, not the path.
        let ceiling = line.map_or(t0.sent_pps, |l| t0.sent_pps.min(l));
        let mut best = if t0.passed { first.pps } else { 0.0 };
        if !t0.passed {
            let (mut lo, mut hi) = (0.0f64, ceiling);
            for _ in 0..cfg.steps {
                let mid = (lo + hi) / 2.0;
                if mid < 1.0 {
                    break;
                }
                let r = run(tx, rx, size, mid)?;
                let t = record(&r, &mut trials);
                if t.passed {
                    lo = mid;
                    best = best.max(r.pps);
                } else {
                    hi = mid;
                }
            }
        }
        let mut latency = Vec::new();
        if best > 0.0 {
            for pct in [10u32, 50, 90] {
                let rate = best * f64::from(pct) / 100.0;
                let r = run(tx, rx, size, rate)?;
                let [p50, p90, p99, max] = r.latency_ns.unwrap_or([0; 4]);
                let us = |v: u64| v as f64 / 1e3;
                latency.push(LatencyPoint {
                    load_pct: pct,
                    offered_pps: rate,
                    received: r.received,
                    lost: r.lost.unwrap_or(0),
                    p50_us: us(p50),
                    p90_us: us(p90),
                    p99_us: us(p99),
                    max_us: us(max),
                });
            }
        }
        let row = SweepRow {
            frame_size: size,
            line_rate_pps: line,
            sender_max_pps: t0.sent_pps,
            sender_bound: t0.passed,
            zero_loss_pps: best,
            zero_loss_gbps: best * (size * 8) as f64 / 1e9,
            line_rate_pct: line.map(|l| 100.0 * best / l),
            trials,
            latency,
        };
        progress(&format!(
            "{size} B: zero-loss {:.0} frames/s after {} trials",
            row.zero_loss_pps,
            row.trials.len()
        ));
        rows.push(row);
    }
    Ok(SweepReport {
        tx_interface: tx.info.name.clone(),
        rx_interface: rx.info.name.clone(),
        bind: rx.bind_mode().to_owned(),
        speed_mbps: speed,
        trial_seconds: cfg.trial_seconds,
        loss_tolerance: cfg.loss_tolerance,
        rows,
    })
}

fn lat(row: &SweepRow, pct: u32) -> Option<&LatencyPoint> {
    row.latency.iter().find(|l| l.load_pct == pct)
}

/// The sweep as a table.
pub fn render_text(r: &SweepReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "camp-bench io --sweep: {} -> {}, {} AF_XDP, link {}, {} s trials, loss tolerance {}",
        r.tx_interface,
        r.rx_interface,
        r.bind,
        r.speed_mbps
            .map_or("speed unknown".into(), |v| format!("{v} Mbit/s")),
        r.trial_seconds,
        r.loss_tolerance
    );
    let _ = writeln!(
        s,
        "{:>6} {:>12} {:>12} {:>12} {:>8} {:>7} {:>7} {:>18} {:>18} {:>18}",
        "frame",
        "line-pps",
        "sender-max",
        "zero-loss",
        "Gbit/s",
        "line%",
        "trials",
        "lat@10% p50/p99us",
        "lat@50% p50/p99us",
        "lat@90% p50/p99us"
    );
    for row in &r.rows {
        let l = |p| {
            lat(row, p).map_or("-".into(), |l: &LatencyPoint| {
                format!("{:.1}/{:.1}", l.p50_us, l.p99_us)
            })
        };
        let _ = writeln!(
            s,
            "{:>6} {:>12} {:>12.0} {:>12.0} {:>8.3} {:>7} {:>7} {:>18} {:>18} {:>18}",
            row.frame_size,
            row.line_rate_pps.map_or("-".into(), |v| format!("{v:.0}")),
            row.sender_max_pps,
            row.zero_loss_pps,
            row.zero_loss_gbps,
            row.line_rate_pct.map_or("-".into(), |v| format!("{v:.2}")),
            format!(
                "{}{}",
                row.trials.len(),
                if row.sender_bound { "*" } else { "" }
            ),
            l(10),
            l(50),
            l(90)
        );
    }
    if r.rows.iter().any(|row| row.sender_bound) {
        let _ = writeln!(
            s,
            "trials marked *: the unthrottled sender lost nothing, so the zero-loss rate is the sender's ceiling"
        );
    }
    s
}

/// The sweep as CSV, one line per frame size.
pub fn render_csv(r: &SweepReport) -> String {
    let mut s = String::from(
        "frame_size,line_rate_pps,sender_max_pps,sender_bound,zero_loss_pps,zero_loss_gbps,line_rate_pct,trials",
    );
    for p in [10, 50, 90] {
        let _ = write!(
            s,
            ",lat{p}_p50_us,lat{p}_p90_us,lat{p}_p99_us,lat{p}_max_us,lat{p}_lost"
        );
    }
    s.push('\n');
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    for row in &r.rows {
        let _ = write!(
            s,
            "{},{},{:.1},{},{:.1},{:.4},{},{}",
            row.frame_size,
            opt(row.line_rate_pps),
            row.sender_max_pps,
            row.sender_bound,
            row.zero_loss_pps,
            row.zero_loss_gbps,
            opt(row.line_rate_pct),
            row.trials.len()
        );
        for p in [10, 50, 90] {
            match lat(row, p) {
                Some(l) => {
                    let _ = write!(
                        s,
                        ",{:.2},{:.2},{:.2},{:.2},{}",
                        l.p50_us, l.p90_us, l.p99_us, l.max_us, l.lost
                    );
                }
                None => s.push_str(",,,,,"),
            }
        }
        s.push('\n');
    }
    s
}

/// SVG: zero-loss frames/s (left axis) and % of line rate (right axis) against frame size.
pub fn render_svg(r: &SweepReport) -> String {
    let (w, h, ml, mr, mt, mb) = (720.0, 420.0, 80.0, 70.0, 40.0, 60.0);
    let pw = w - ml - mr;
    let ph = h - mt - mb;
    let n = r.rows.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            ml + pw / 2.0
        } else {
            ml + pw * i as f64 / (n - 1) as f64
        }
    };
    let max_pps = r
        .rows
        .iter()
        .map(|row| row.zero_loss_pps.max(row.line_rate_pps.unwrap_or(0.0)))
        .fold(1.0, f64::max);
    let y_pps = |v: f64| mt + ph * (1.0 - v / max_pps);
    let y_pct = |v: f64| mt + ph * (1.0 - v / 100.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Zero-loss rate by frame size: {} -&gt; {} ({} AF_XDP)</text>",
        w / 2.0,
        r.tx_interface,
        r.rx_interface,
        r.bind
    );
    let _ = writeln!(
        s,
        "<line x1=\"{ml}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{ml}\" y1=\"{mt}\" x2=\"{ml}\" y2=\"{}\" stroke=\"black\"/><line x1=\"{}\" y1=\"{mt}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        mt + ph,
        ml + pw,
        mt + ph,
        mt + ph,
        ml + pw,
        ml + pw,
        mt + ph
    );
    for k in 0..=4 {
        let f = f64::from(k) / 4.0;
        let yy = mt + ph * (1.0 - f);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text><text x=\"{}\" y=\"{:.1}\">{:.0}%</text><line x1=\"{ml}\" y1=\"{yy:.1}\" x2=\"{}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>",
            ml - 6.0,
            yy + 4.0,
            f * max_pps,
            ml + pw + 6.0,
            yy + 4.0,
            f * 100.0,
            ml + pw
        );
    }
    for (i, row) in r.rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(i),
            mt + ph + 18.0,
            row.frame_size
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">frame size (bytes, FCS included)</text><text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">frames/s</text><text x=\"{}\" y=\"{}\" transform=\"rotate(90 {} {})\" text-anchor=\"middle\">% of line rate</text>",
        ml + pw / 2.0,
        h - 18.0,
        mt + ph / 2.0,
        mt + ph / 2.0,
        w - 14.0,
        mt + ph / 2.0,
        w - 14.0,
        mt + ph / 2.0
    );
    let line = |pts: Vec<(f64, f64)>, color: &str, dash: &str| {
        let p: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let mut out = format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" {dash} points=\"{}\"/>\n",
            p.join(" ")
        );
        for (a, b) in pts {
            let _ = writeln!(
                out,
                "<circle cx=\"{a:.1}\" cy=\"{b:.1}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        out
    };
    s.push_str(&line(
        r.rows
            .iter()
            .enumerate()
            .map(|(i, row)| (x(i), y_pps(row.zero_loss_pps)))
            .collect(),
        "#1f77b4",
        "",
    ));
    if r.rows.iter().all(|row| row.line_rate_pps.is_some()) {
        s.push_str(&line(
            r.rows
                .iter()
                .enumerate()
                .map(|(i, row)| (x(i), y_pps(row.line_rate_pps.unwrap_or(0.0))))
                .collect(),
            "#999999",
            "stroke-dasharray=\"4 3\"",
        ));
        s.push_str(&line(
            r.rows
                .iter()
                .enumerate()
                .map(|(i, row)| (x(i), y_pct(row.line_rate_pct.unwrap_or(0.0))))
                .collect(),
            "#d62728",
            "",
        ));
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">zero-loss frames/s (left)</text><text x=\"{}\" y=\"{}\" fill=\"#999999\">line rate frames/s (left)</text><text x=\"{}\" y=\"{}\" fill=\"#d62728\">% of line rate (right)</text>",
        ml + 10.0,
        mt + 14.0,
        ml + 200.0,
        mt + 14.0,
        ml + 390.0,
        mt + 14.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SweepReport {
        let row = |size: usize, pps: f64| SweepRow {
            frame_size: size,
            line_rate_pps: Some(line_rate_pps(10_000, size)),
            sender_max_pps: pps * 1.5,
            sender_bound: false,
            zero_loss_pps: pps,
            zero_loss_gbps: pps * (size * 8) as f64 / 1e9,
            line_rate_pct: Some(100.0 * pps / line_rate_pps(10_000, size)),
            trials: vec![],
            latency: vec![LatencyPoint {
                load_pct: 50,
                offered_pps: pps / 2.0,
                received: 10,
                lost: 0,
                p50_us: 12.5,
                p90_us: 20.0,
                p99_us: 30.0,
                max_us: 40.0,
            }],
        };
        SweepReport {
            tx_interface: "a".into(),
            rx_interface: "b".into(),
            bind: "copy".into(),
            speed_mbps: Some(10_000),
            trial_seconds: 1.0,
            loss_tolerance: 0.0,
            rows: vec![row(64, 1_000_000.0), row(1518, 812_743.5)],
        }
    }

    #[test]
    fn csv_has_one_line_per_size_with_latency_columns() {
        let csv = render_csv(&report());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        assert!(
            lines[1].starts_with("64,14880952.381,1500000.0,false,1000000.0,0.5120,6.720,0,,,,,,12.50,20.00,30.00,40.00,0,,,,,"),
            "{}",
            lines[1]
        );
        // 1518 B at 812 743.5 frames/s is line rate of 10GbE.
        assert!(lines[2].contains(",100.000,"), "{}", lines[2]);
    }

    #[test]
    fn svg_plots_both_series_and_axis_labels() {
        let svg = render_svg(&report());
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains(">1518</text>") && svg.contains(">100%</text>"));
        assert!(svg.ends_with("</svg>\n"));
    }

    #[test]
    fn pass_rule_counts_loss_against_tolerance() {
        let mk = |sent, received| LineReport {
            role: "both",
            tx_interface: None,
            rx_interface: None,
            bind: "copy",
            frame_size: 64,
            speed_mbps: None,
            offered_pps: 0.0,
            seconds: 1.0,
            sent,
            received,
            pps: 0.0,
            gbps: 0.0,
            line_rate_pct: None,
            tx_cpu_ns_per_pkt: None,
            rx_cpu_ns_per_pkt: None,
            lost: None,
            latency_ns: None,
            tx_queues: vec![],
            rx_queues: vec![],
            nic_drops: Default::default(),
        };
        assert!(passes(&mk(1000, 1000), 0.0));
        assert!(!passes(&mk(1000, 999), 0.0));
        assert!(passes(&mk(1000, 999), 0.001));
        assert!(
            !passes(&mk(0, 0), 0.0),
            "a trial that sent nothing proves nothing"
        );
    }
}
