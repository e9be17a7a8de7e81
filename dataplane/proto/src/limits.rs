//! Token-bucket rate limiters for the edge of the server: one bucket, and a bounded table of
//! buckets keyed by source address (or session, or connection).
//!
//! Sans-IO like the rest of the crate: time enters as `now: Instant`. A bucket holds at most
//! `burst` tokens and refills at `rate` tokens per second; an action that costs `n` tokens is
//! allowed when `n` tokens are there. A rate of 0 means "no limit" everywhere in this module,
//! so a knob set to 0 turns a limit off instead of refusing everything.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A token bucket (rate per second, burst).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` tokens per second up to `burst` (at least 1 when
    /// `rate` is positive). `rate == 0.0` never refuses.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = if rate > 0.0 { burst.max(1.0) } else { 0.0 };
        TokenBucket {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Whether this bucket limits at all.
    pub fn is_unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes `n` tokens if they are there; false (and nothing taken) otherwise.
    pub fn try_take(&mut self, now: Instant, n: f64) -> bool {
        if self.is_unlimited() {
            return true;
        }
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full at `now` (an idle key: forgetting it changes nothing).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    /// Changes rate and burst, keeping the tokens there (capped at the new burst).
    pub fn reconfigure(&mut self, now: Instant, rate: f64, burst: f64) {
        self.refill(now);
        let fresh = TokenBucket::new(rate, burst, now);
        self.rate = fresh.rate;
        self.burst = fresh.burst;
        self.tokens = self.tokens.min(self.burst);
    }
}

/// Why a keyed limiter refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The key's bucket is empty.
    Rate,
    /// The table is full of keys that are all still active; a new key cannot be tracked.
    TableFull,
}

/// Token buckets per key, at most `capacity` keys.
///
/// Memory is bounded whatever the keys: when the table is full, keys whose buckets have
/// refilled completely are forgotten (they behave exactly like a new key); if none can be
/// forgotten, a new key is refused ([`Refusal::TableFull`]) until a sweep one second later
/// frees room. A flood of spoofed sources therefore cannot grow the table, and cannot evict a
/// busy key to reset its bucket.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    rate: f64,
    burst: f64,
    capacity: usize,
    buckets: HashMap<K, TokenBucket>,
    last_sweep: Option<Instant>,
}

/// Sweeps of a full table happen at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<K: Hash + Eq + Copy> KeyedBuckets<K> {
    /// A table of `capacity` keys, each with a bucket of `rate` per second and `burst`.
    pub fn new(rate: f64, burst: f64, capacity: usize) -> Self {
        KeyedBuckets {
            rate,
            burst,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Changes rate and burst of every key, present and future.
    pub fn reconfigure(&mut self, now: Instant, rate: f64, burst: f64) {
        self.rate = rate;
        self.burst = burst;
        for b in self.buckets.values_mut() {
            b.reconfigure(now, rate, burst);
        }
    }

    /// Takes `n` tokens from `key`'s bucket.
    pub fn try_take(&mut self, key: K, now: Instant, n: f64) -> Result<(), Refusal> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            if self
                .last_sweep
                .is_some_and(|t| now.saturating_duration_since(t) < SWEEP_EVERY)
            {
                return Err(Refusal::TableFull);
            }
            self.last_sweep = Some(now);
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= self.capacity {
                return Err(Refusal::TableFull);
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let b = self
            .buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        if b.try_take(now, n) {
            Ok(())
        } else {
            Err(Refusal::Rate)
        }
    }

    /// Forgets a key (its connection or session is gone).
    pub fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        assert!(b.try_take(t0, 1.0));
        assert!(b.try_take(t0, 1.0));
        assert!(b.try_take(t0, 1.0));
        assert!(!b.try_take(t0, 1.0), "burst of 3 spent");
        // 10/s: one token per 100 ms.
        assert!(!b.try_take(ms(t0, 50), 1.0));
        assert!(b.try_take(ms(t0, 101), 1.0));
        assert!(!b.try_take(ms(t0, 102), 1.0));
        // Long idle refills only up to the burst.
        let later = ms(t0, 60_000);
        for _ in 0..3 {
            assert!(b.try_take(later, 1.0));
        }
        assert!(!b.try_take(later, 1.0));
    }

    #[test]
    fn bucket_charges_by_size_and_refuses_without_taking() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000.0, 1500.0, t0);
        assert!(b.try_take(t0, 1200.0));
        assert!(!b.try_take(t0, 400.0), "300 left");
        assert!(b.try_take(t0, 300.0), "the refused take took nothing");
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0.0, 0.0, t0);
        assert!(b.is_unlimited());
        for _ in 0..10_000 {
            assert!(b.try_take(t0, 1e9));
        }
        let mut k = KeyedBuckets::<u32>::new(0.0, 0.0, 1);
        for i in 0..1000 {
            assert_eq!(k.try_take(i, t0, 1.0), Ok(()));
        }
        assert!(k.is_empty(), "an unlimited table tracks nothing");
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let t0 = Instant::now();
        let later = ms(t0, 1000);
        let mut b = TokenBucket::new(1.0, 1.0, later);
        assert!(b.try_take(later, 1.0));
        assert!(!b.try_take(t0, 1.0));
        assert!(!b.try_take(ms(t0, 1500), 1.0));
        assert!(b.try_take(ms(t0, 2000), 1.0));
    }

    #[test]
    fn reconfigure_caps_tokens() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 100.0, t0);
        b.reconfigure(t0, 1.0, 2.0);
        assert!(b.try_take(t0, 1.0));
        assert!(b.try_take(t0, 1.0));
        assert!(!b.try_take(t0, 1.0));
    }

    #[test]
    fn keys_have_separate_buckets() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(1.0, 2.0, 16);
        assert_eq!(k.try_take(1u8, t0, 1.0), Ok(()));
        assert_eq!(k.try_take(1u8, t0, 1.0), Ok(()));
        assert_eq!(k.try_take(1u8, t0, 1.0), Err(Refusal::Rate));
        assert_eq!(
            k.try_take(2u8, t0, 1.0),
            Ok(()),
            "another key is unaffected"
        );
        k.forget(&1);
        assert_eq!(
            k.try_take(1u8, t0, 1.0),
            Ok(()),
            "forgotten: a fresh bucket"
        );
    }

    #[test]
    fn full_table_keeps_busy_keys_and_forgets_idle_ones() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(1.0, 1.0, 4);
        for key in 0..4u32 {
            assert_eq!(k.try_take(key, t0, 1.0), Ok(()));
        }
        // Every key is busy (empty bucket): a fifth is refused, and the busy keys stay
        // limited (not evicted and reset).
        assert_eq!(k.try_take(99, t0, 1.0), Err(Refusal::TableFull));
        assert_eq!(k.try_take(0, t0, 1.0), Err(Refusal::Rate));
        assert_eq!(k.len(), 4);
        // No second sweep within a second, even though keys are now idle.
        assert_eq!(k.try_take(98, ms(t0, 500), 1.0), Err(Refusal::TableFull));
        // After the keys refilled and the sweep interval passed, the idle keys go.
        assert_eq!(k.try_take(97, ms(t0, 2100), 1.0), Ok(()));
        assert_eq!(k.len(), 1);
    }

    #[test]
    fn table_stays_bounded_under_a_flood_of_keys() {
        let t0 = Instant::now();
        let mut k = KeyedBuckets::new(1.0, 1.0, 1000);
        let mut refused = 0;
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(i * 10);
            if k.try_take(i, now, 1.0).is_err() {
                refused += 1;
            }
            assert!(k.len() <= 1000);
        }
        assert!(refused >= 99_000 - 1000, "refused {refused}");
    }
}
