//! One direction of one emulated path: loss, a drop-tail bottleneck queue drained at the
//! link capacity, then propagation delay with jitter. Deterministic given its RNG.

use std::collections::VecDeque;
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
        let departure = match self.config.capacity {
            Capacity::Unlimited => now_us,
            Capacity::Constant(bps) => {
                while self.queue.front().is_some_and(|&(d, _)| d <= now_us) {
                    let (_, s) = self.queue.pop_front().expect("front exists");
                    self.queued_bytes -= s;
                }
                if self.queued_bytes + size > self.config.queue_bytes {
                    self.stats.lost_queue += 1;
                    return None;
                }
                let tx_us = (size as u64 * 8 * 1_000_000).div_ceil(bps.max(1));
                let d = now_us.max(self.last_departure_us) + tx_us;
                self.queue.push_back((d, size));
                self.queued_bytes += size;
                d
            }
        };
        self.last_departure_us = departure;
        let jitter = self.config.jitter.as_micros() as u64;
        let extra = if jitter > 0 {
            rng.random_range(0..=jitter)
        } else {
            0
        };
        let arrival =
            (departure + self.config.delay.as_micros() as u64 + extra).max(self.last_arrival_us);
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
