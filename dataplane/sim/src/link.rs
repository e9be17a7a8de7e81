//! One direction of one emulated path: loss, a drop-tail bottleneck queue drained at the
//! link capacity, then propagation delay with jitter. Delay and constant rate may change at
//! given times ([`LinkStep`]), so that a path can turn slow while the endpoints' estimates of
//! it are stale. Deterministic given its RNG.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// Capacity of a link.
#[derive(Clone, Debug, PartialEq)]
pub enum Capacity {
    /// No bottleneck: packets are only delayed.
    Unlimited,
    /// Constant rate in bits per second.
    Constant(u64),
    /// Delivery opportunities from a mahimahi trace.
    Trace(Arc<Trace>),
}

/// A mahimahi link trace: one line per delivery opportunity of one 1500-byte packet,
/// timestamps in ms from the start; the trace repeats after its last timestamp.
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    /// Opportunity times in ms, ascending.
    opportunities_ms: Vec<u64>,
    /// Repetition period in ms.
    period_ms: u64,
    /// Name (file stem) for reports.
    pub name: String,
}

/// Bytes one trace opportunity can deliver (mahimahi's packet size).
pub const TRACE_OPPORTUNITY_BYTES: usize = 1500;

/// Errors reading a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("reading trace {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a non-negative integer, or timestamps go backwards.
    #[error("trace line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No opportunity at all, or a trace of zero length.
    #[error("empty trace")]
    Empty,
}

impl Trace {
    /// Parses mahimahi trace text.
    pub fn parse(name: &str, text: &str) -> Result<Self, TraceError> {
        let mut ops = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let t: u64 = line.parse().map_err(|_| TraceError::Parse {
                line: i + 1,
                reason: "not an integer",
            })?;
            if ops.last().is_some_and(|&l| t < l) {
                return Err(TraceError::Parse {
                    line: i + 1,
                    reason: "time goes backwards",
                });
            }
            ops.push(t);
        }
        let period_ms = *ops.last().ok_or(TraceError::Empty)?;
        if period_ms == 0 {
            return Err(TraceError::Empty);
        }
        Ok(Self {
            opportunities_ms: ops,
            period_ms,
            name: name.to_string(),
        })
    }

    /// Reads a trace file.
    pub fn load(path: &std::path::Path) -> Result<Self, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::parse(&name, &text)
    }

    /// Mean capacity in bits per second over one period.
    pub fn mean_bps(&self) -> f64 {
        self.opportunities_ms.len() as f64 * TRACE_OPPORTUNITY_BYTES as f64 * 8.0 * 1000.0
            / self.period_ms as f64
    }

    /// Time (µs) of opportunity number `n` counted over the repeating trace.
    fn opportunity_us(&self, n: u64) -> u64 {
        let len = self.opportunities_ms.len() as u64;
        let (rep, idx) = (n / len, (n % len) as usize);
        (rep * self.period_ms + self.opportunities_ms[idx]) * 1000
    }

    /// Index of the first opportunity at or after `t_us`.
    fn first_at_or_after(&self, t_us: u64) -> u64 {
        let len = self.opportunities_ms.len() as u64;
        let t_ms = t_us.div_ceil(1000);
        let rep = t_ms / self.period_ms;
        let within = t_ms - rep * self.period_ms;
        let idx = self.opportunities_ms.partition_point(|&o| o < within) as u64;
        rep * len + idx
    }
}

/// Packet loss model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// No random loss.
    None,
    /// Each packet lost independently with probability `p`.
    Bernoulli(f64),
    /// Two-state Gilbert–Elliott bursty loss.
    GilbertElliott {
        /// P(good → bad) per packet.
        p_good_to_bad: f64,
        /// P(bad → good) per packet.
        p_bad_to_good: f64,
        /// Loss probability in the good state.
        loss_good: f64,
        /// Loss probability in the bad state.
        loss_bad: f64,
    },
}

/// A change of a link's propagation delay and/or constant rate from a given time on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStep {
    /// When the change takes effect, measured from the simulation start.
    pub at: Duration,
    /// New one-way propagation delay (jitter stays).
    pub delay: Option<Duration>,
    /// New constant rate, bits per second (only for [`Capacity::Constant`] links).
    pub rate_bps: Option<u64>,
}

/// Configuration of one link direction.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Base one-way propagation delay.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]` per packet (order is preserved).
    pub jitter: Duration,
    /// Bottleneck capacity.
    pub capacity: Capacity,
    /// Drop-tail queue limit in bytes (ignored when unlimited).
    pub queue_bytes: usize,
    /// Random loss.
    pub loss: Loss,
    /// Blackout windows `[start, end)` measured from the simulation start: every packet
    /// entering the link inside one is lost.
    pub outages: Vec<(Duration, Duration)>,
    /// Delay and rate changes, in any order; at a given time the latest step at or before
    /// it that sets a field wins. A packet's delay is the one in force when it leaves the
    /// queue, its serialisation uses the rate in force when its transmission starts. Order
    /// is preserved when the delay drops (packets behind a slower one wait for it).
    pub steps: Vec<LinkStep>,
}

impl LinkConfig {
    /// Propagation delay in force at `t_us` (µs since the simulation start).
    pub fn delay_at(&self, t_us: u64) -> Duration {
        self.latest_step(t_us, |s| s.delay).unwrap_or(self.delay)
    }

    /// Capacity in force at `t_us`: a constant rate may be stepped, other capacities not.
    fn constant_rate_at(&self, t_us: u64, base: u64) -> u64 {
        self.latest_step(t_us, |s| s.rate_bps).unwrap_or(base)
    }

    fn latest_step<T>(&self, t_us: u64, field: impl Fn(&LinkStep) -> Option<T>) -> Option<T> {
        let t = Duration::from_micros(t_us);
        self.steps
            .iter()
            .filter(|s| s.at <= t)
            .filter_map(|s| field(s).map(|v| (s.at, v)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, v)| v)
    }
}

impl LinkConfig {
    /// A link with the given rate (Mbit/s) and one-way delay (ms), a queue of one
    /// bandwidth-delay product (at least 64 kB), no loss.
    pub fn new(mbit: f64, delay_ms: u64) -> Self {
        let bps = (mbit * 1e6) as u64;
        let bdp = (bps / 8) as f64 * (2 * delay_ms) as f64 / 1000.0;
        Self {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::ZERO,
            capacity: Capacity::Constant(bps),
            queue_bytes: (bdp as usize).max(64 * 1024),
            loss: Loss::None,
            outages: Vec::new(),
            steps: Vec::new(),
        }
    }
}

/// Counters of one link direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Packets offered to the link.
    pub offered: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Packets dropped by random loss.
    pub lost_random: u64,
    /// Packets dropped because the queue was full.
    pub lost_queue: u64,
    /// Packets dropped during an outage.
    pub lost_outage: u64,
}

/// State of one link direction. Times are microseconds since the simulation start.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    /// Departure times (µs) and sizes of packets still in the bottleneck queue.
    queue: VecDeque<(u64, usize)>,
    queued_bytes: usize,
    last_departure_us: u64,
    last_arrival_us: u64,
    /// Trace service state: next opportunity number and bytes already used of it.
    trace_next: u64,
    trace_used: usize,
    bad_state: bool,
    stats: LinkStats,
}

impl Link {
    /// A fresh link.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            config,
            queue: VecDeque::new(),
            queued_bytes: 0,
            last_departure_us: 0,
            last_arrival_us: 0,
            trace_next: 0,
            trace_used: 0,
            bad_state: false,
            stats: LinkStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    /// Configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Adds a blackout window without disturbing the link's queue.
    pub fn add_outage(&mut self, from: Duration, until: Duration) {
        self.config.outages.push((from, until));
    }

    /// Removes the blackout windows `keep` returns false for, leaving the queue alone.
    pub fn retain_outages(&mut self, keep: impl Fn(Duration, Duration) -> bool) {
        self.config.outages.retain(|&(a, b)| keep(a, b));
    }

    /// Adds a delay/rate step without disturbing the link's queue.
    pub fn add_step(&mut self, step: LinkStep) {
        self.config.steps.push(step);
    }

    /// Offers a packet of `size` bytes at `now_us`; returns its arrival time at the far end,
    /// or `None` if it is lost.
    pub fn send(&mut self, now_us: u64, size: usize, rng: &mut StdRng) -> Option<u64> {
        self.stats.offered += 1;
        let t = std::time::Duration::from_micros(now_us);
        if self.config.outages.iter().any(|&(a, b)| t >= a && t < b) {
            self.stats.lost_outage += 1;
            return None;
        }
        if self.random_loss(rng) {
            self.stats.lost_random += 1;
            return None;
        }
        if !matches!(self.config.capacity, Capacity::Unlimited) {
            while self.queue.front().is_some_and(|&(d, _)| d <= now_us) {
                let (_, s) = self.queue.pop_front().expect("front exists");
                self.queued_bytes -= s;
            }
            if self.queued_bytes + size > self.config.queue_bytes {
                self.stats.lost_queue += 1;
                return None;
            }
        }
        let departure = match &self.config.capacity {
            Capacity::Unlimited => now_us,
            Capacity::Constant(bps) => {
                let start = now_us.max(self.last_departure_us);
                let bps = self.config.constant_rate_at(start, *bps);
                let tx_us = (size as u64 * 8 * 1_000_000).div_ceil(bps.max(1));
                start + tx_us
            }
            Capacity::Trace(trace) => {
                // Service starts when the link is free; opportunities that passed unused
                // are lost (mahimahi semantics). The packet leaves with its last byte.
                let start = now_us.max(self.last_departure_us);
                let first = trace.first_at_or_after(start);
                if first > self.trace_next {
                    self.trace_next = first;
                    self.trace_used = 0;
                }
                let mut left = size;
                loop {
                    let room = TRACE_OPPORTUNITY_BYTES - self.trace_used;
                    if left <= room {
                        self.trace_used += left;
                        break;
                    }
                    left -= room;
                    self.trace_next += 1;
                    self.trace_used = 0;
                }
                let d = trace.opportunity_us(self.trace_next);
                if self.trace_used == TRACE_OPPORTUNITY_BYTES {
                    self.trace_next += 1;
                    self.trace_used = 0;
                }
                d.max(start)
            }
        };
        if !matches!(self.config.capacity, Capacity::Unlimited) {
            self.queue.push_back((departure, size));
            self.queued_bytes += size;
        }
        self.last_departure_us = departure;
        let jitter = self.config.jitter.as_micros() as u64;
        let extra = if jitter > 0 {
            rng.random_range(0..=jitter)
        } else {
            0
        };
        let delay = self.config.delay_at(departure).as_micros() as u64;
        let arrival = (departure + delay + extra).max(self.last_arrival_us);
        self.last_arrival_us = arrival;
        self.stats.delivered += 1;
        self.stats.delivered_bytes += size as u64;
        Some(arrival)
    }

    fn random_loss(&mut self, rng: &mut StdRng) -> bool {
        match self.config.loss {
            Loss::None => false,
            Loss::Bernoulli(p) => p > 0.0 && rng.random_bool(p.min(1.0)),
            Loss::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad_state {
                    p_bad_to_good
                } else {
                    p_good_to_bad
                };
                if flip > 0.0 && rng.random_bool(flip.min(1.0)) {
                    self.bad_state = !self.bad_state;
                }
                let p = if self.bad_state { loss_bad } else { loss_good };
                p > 0.0 && rng.random_bool(p.min(1.0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn constant_rate_link_serialises_and_delays() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut l = Link::new(LinkConfig::new(8.0, 10)); // 1 byte per µs
        assert_eq!(l.send(0, 1000, &mut rng), Some(1000 + 10_000));
        assert_eq!(l.send(0, 1000, &mut rng), Some(2000 + 10_000));
        assert_eq!(l.send(5000, 500, &mut rng), Some(5500 + 10_000));
    }

    #[test]
    fn full_queue_drops_tail() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut cfg = LinkConfig::new(8.0, 10);
        cfg.queue_bytes = 2500;
        let mut l = Link::new(cfg);
        assert!(l.send(0, 1000, &mut rng).is_some());
        assert!(l.send(0, 1000, &mut rng).is_some());
        assert!(l.send(0, 1000, &mut rng).is_none());
        assert_eq!(l.stats().lost_queue, 1);
        // After the first departed, there is room again.
        assert!(l.send(1000, 1000, &mut rng).is_some());
    }

    #[test]
    fn outage_drops_everything_inside_the_window() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut cfg = LinkConfig::new(100.0, 5);
        cfg.outages = vec![(Duration::from_millis(10), Duration::from_millis(20))];
        let mut l = Link::new(cfg);
        assert!(l.send(9_999, 100, &mut rng).is_some());
        assert!(l.send(10_000, 100, &mut rng).is_none());
        assert!(l.send(19_999, 100, &mut rng).is_none());
        assert!(l.send(20_000, 100, &mut rng).is_some());
        assert_eq!(l.stats().lost_outage, 2);
    }

    #[test]
    fn delay_and_rate_steps_take_effect_at_their_time() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut cfg = LinkConfig::new(8.0, 10); // 1 byte per µs, 10 ms
        cfg.queue_bytes = 1 << 20;
        cfg.steps = vec![
            LinkStep {
                at: Duration::from_millis(200),
                delay: None,
                rate_bps: Some(800_000), // 10 µs per byte
            },
            LinkStep {
                at: Duration::from_millis(100),
                delay: Some(Duration::from_millis(120)),
                rate_bps: None,
            },
        ];
        let mut l = Link::new(cfg);
        // Before any step: 1 ms serialisation + 10 ms.
        assert_eq!(l.send(0, 1000, &mut rng), Some(11_000));
        // Leaves the queue just before the delay step: old delay.
        assert_eq!(l.send(98_000, 1000, &mut rng), Some(99_000 + 10_000));
        // Leaves after it: 120 ms.
        assert_eq!(l.send(150_000, 1000, &mut rng), Some(151_000 + 120_000));
        // Rate step at 200 ms: 1000 bytes take 10 ms; the delay step still holds.
        assert_eq!(l.send(300_000, 1000, &mut rng), Some(310_000 + 120_000));
        // A later step of one field leaves the other field's latest step in force.
        assert_eq!(l.config().delay_at(250_000), Duration::from_millis(120));
        assert_eq!(l.config().delay_at(99_999), Duration::from_millis(10));
    }

    #[test]
    fn rate_step_is_reproduced_in_delivered_throughput() {
        // Saturate a 10 Mbit/s link that drops to 2 Mbit/s at 5 s; the delivered rate in each
        // phase is the configured one within 2%.
        let mut rng = StdRng::seed_from_u64(3);
        let mut cfg = LinkConfig::new(10.0, 20);
        cfg.queue_bytes = 30_000;
        cfg.steps = vec![LinkStep {
            at: Duration::from_secs(5),
            delay: Some(Duration::from_millis(80)),
            rate_bps: Some(2_000_000),
        }];
        let mut l = Link::new(cfg);
        let mut bytes = [0u64; 2];
        let mut max_delay_before = 0;
        let mut min_delay_after = u64::MAX;
        for t in (0..10_000_000u64).step_by(500) {
            if let Some(a) = l.send(t, 1200, &mut rng) {
                let phase = usize::from(a >= 5_100_000);
                // Count what arrives in the steady part of each phase.
                if (1_000_000..4_900_000).contains(&a) || (6_000_000..9_900_000).contains(&a) {
                    bytes[phase] += 1200;
                }
                if t < 4_000_000 {
                    max_delay_before = max_delay_before.max(a - t);
                } else if t > 6_000_000 {
                    min_delay_after = min_delay_after.min(a - t);
                }
            }
        }
        let rate = |b: u64| b as f64 * 8.0 / 3.9;
        assert!(
            (rate(bytes[0]) / 10e6 - 1.0).abs() < 0.02,
            "{}",
            rate(bytes[0])
        );
        assert!(
            (rate(bytes[1]) / 2e6 - 1.0).abs() < 0.02,
            "{}",
            rate(bytes[1])
        );
        // Queue delay at most 30 kB / rate on top of the propagation delay.
        assert!(max_delay_before <= 20_000 + 25_000, "{max_delay_before}");
        assert!(min_delay_after >= 80_000, "{min_delay_after}");
    }

    #[test]
    fn trace_link_delivers_one_packet_per_opportunity_and_repeats() {
        let mut rng = StdRng::seed_from_u64(1);
        let trace = Arc::new(Trace::parse("t", "0\n0\n5\n10\n").unwrap());
        assert_eq!(trace.period_ms, 10);
        let mut cfg = LinkConfig::new(1.0, 0);
        cfg.capacity = Capacity::Trace(trace);
        cfg.queue_bytes = 1 << 20;
        let mut l = Link::new(cfg);
        assert_eq!(l.send(0, 1500, &mut rng), Some(0));
        assert_eq!(l.send(0, 1500, &mut rng), Some(0));
        assert_eq!(l.send(0, 1500, &mut rng), Some(5_000));
        assert_eq!(l.send(0, 1500, &mut rng), Some(10_000));
        // Repeats: period 10 ms, so the next opportunities are at 10 (rep 1, t=0) twice.
        assert_eq!(l.send(0, 1500, &mut rng), Some(10_000));
        assert_eq!(l.send(0, 1500, &mut rng), Some(10_000));
        assert_eq!(l.send(0, 1500, &mut rng), Some(15_000));
        // Two small packets share one opportunity.
        assert_eq!(l.send(16_000, 700, &mut rng), Some(20_000));
        assert_eq!(l.send(16_000, 700, &mut rng), Some(20_000));
        assert_eq!(l.send(16_000, 700, &mut rng), Some(20_000));
    }

    #[test]
    fn trace_parse_rejects_garbage_and_reports_mean_rate() {
        assert!(Trace::parse("t", "1\nx\n").is_err());
        assert!(Trace::parse("t", "5\n3\n").is_err());
        assert!(Trace::parse("t", "").is_err());
        let t = Trace::parse("t", "1\n2\n3\n4\n").unwrap();
        // 4 × 1500 B per 4 ms = 12 Mbit/s.
        assert!((t.mean_bps() - 12e6).abs() < 1.0);
    }

    #[test]
    fn real_trace_mean_rate_is_reproduced_by_the_link() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../bench/profiles/traces/Verizon-LTE-short.down");
        let Ok(trace) = Trace::load(&path) else {
            panic!("trace file missing: {}", path.display());
        };
        let mean = trace.mean_bps();
        assert!(
            (4.5e6..5.5e6).contains(&mean),
            "Verizon-LTE-short ~5 Mbit/s, got {mean}"
        );
        let mut cfg = LinkConfig::new(1.0, 0);
        cfg.capacity = Capacity::Trace(Arc::new(trace));
        cfg.queue_bytes = usize::MAX;
        let mut l = Link::new(cfg);
        let mut rng = StdRng::seed_from_u64(1);
        // Offer far more than capacity for 20 s; the delivered rate is the trace's.
        let mut last = 0;
        for i in 0..(20_000 * 10) {
            if let Some(a) = l.send(i * 100, 1500, &mut rng) {
                last = a;
            }
        }
        let delivered_bps = l.stats().delivered_bytes as f64 * 8.0 / (last as f64 / 1e6);
        assert!(
            (delivered_bps / mean - 1.0).abs() < 0.05,
            "{delivered_bps} vs {mean}"
        );
    }

    #[test]
    fn constant_link_never_delivers_more_than_its_rate() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut l = Link::new(LinkConfig::new(10.0, 20));
        let mut last = 0;
        for i in 0..100_000u64 {
            if let Some(a) = l.send(i * 100, 1200, &mut rng) {
                last = a;
            }
        }
        let bps = l.stats().delivered_bytes as f64 * 8.0 / ((last - 20_000) as f64 / 1e6);
        assert!(bps <= 10e6 * 1.001, "{bps}");
        assert!(bps > 9.9e6, "{bps}");
    }

    #[test]
    fn jitter_and_delay_are_within_configured_bounds() {
        let mut rng = StdRng::seed_from_u64(4);
        let mut cfg = LinkConfig::new(1000.0, 10);
        cfg.jitter = Duration::from_millis(5);
        let mut l = Link::new(cfg);
        let mut sum = 0u64;
        for i in 0..10_000u64 {
            let t = i * 10_000;
            let a = l.send(t, 100, &mut rng).unwrap();
            let d = a - t;
            assert!((10_000..=15_001).contains(&d), "{d}");
            sum += d;
        }
        let mean = sum as f64 / 10_000.0;
        assert!((mean - 12_500.0).abs() < 150.0, "mean delay {mean}");
    }

    #[test]
    fn bernoulli_loss_rate_is_close_to_configured() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut cfg = LinkConfig::new(1000.0, 1);
        cfg.loss = Loss::Bernoulli(0.05);
        cfg.queue_bytes = usize::MAX;
        let mut l = Link::new(cfg);
        for i in 0..20_000 {
            let _ = l.send(i * 100, 100, &mut rng);
        }
        let rate = l.stats().lost_random as f64 / 20_000.0;
        assert!((rate - 0.05).abs() < 0.006, "observed {rate}");
    }
}
