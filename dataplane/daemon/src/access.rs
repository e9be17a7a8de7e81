//! campd's access settings: who may use the local sockets, how fast strangers may knock,
//! and how much one session may push through the ingest socket.
//!
//! The protocol-side limits live in `camp_proto::edge` (applied inside the server at accept,
//! HELLO and JOIN); this module resolves their knobs from the configuration, and owns the
//! ingest limiter, which runs on the engine thread where an ingested unit meets its session.
//! `docs/security.md` says who can do what.

use std::time::{Duration, Instant};

use camp_proto::edge::{EdgeLimits, RetryPolicy};
use camp_proto::limits::KeyedBuckets;

/// Access and rate-limit settings (every rate: 0 = no limit).
#[derive(Clone, Debug, PartialEq)]
pub struct AccessSettings {
    /// Group of the control and ingest sockets (None: campd's own). Mode is always 0660.
    pub socket_group: Option<u32>,
    /// Requests per second one control connection may make.
    pub control_requests_per_second: u32,
    /// A connection must send HELLO or JOIN within this time of its handshake.
    pub hello_timeout: Duration,
    /// Handshake, session and JOIN limits and the Retry policy.
    pub edge: EdgeLimits,
    /// Ingested units per second per session (burst: one second's worth).
    pub ingest_units_per_second: u32,
    /// Ingested payload bytes per second per session (burst: one second's worth).
    pub ingest_bytes_per_second: u64,
}

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            socket_group: None,
            control_requests_per_second: camp_control::DEFAULT_REQUESTS_PER_SECOND,
            hello_timeout: camp_proto::config::CampConfig::default().join_timeout,
            edge: EdgeLimits::default(),
            ingest_units_per_second: 20_000,
            ingest_bytes_per_second: 64 << 20,
        }
    }
}

/// Parses a Retry policy: `off`, `always`, or `above:N` (Retry while more than N new
/// connection attempts per second arrive, all sources together).
pub fn parse_retry(s: &str) -> Result<RetryPolicy, String> {
    match s {
        "off" => Ok(RetryPolicy::Off),
        "always" => Ok(RetryPolicy::Always),
        other => other
            .strip_prefix("above:")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .map(RetryPolicy::AboveRate)
            .ok_or_else(|| format!("expected off, always or above:N (N > 0), got {other:?}")),
    }
}

/// Sessions whose ingest budget is tracked (one bucket pair each); more than campd serves.
const INGEST_SESSIONS_TRACKED: usize = 4096;

/// Per-session unit and byte rate of the ingest socket.
#[derive(Debug)]
pub struct IngestLimiter {
    units: KeyedBuckets<u64>,
    bytes: KeyedBuckets<u64>,
    /// Units refused.
    pub refused: u64,
}

impl IngestLimiter {
    /// A limiter with the rates of `a`.
    pub fn new(a: &AccessSettings) -> Self {
        let u = f64::from(a.ingest_units_per_second);
        let b = a.ingest_bytes_per_second as f64;
        IngestLimiter {
            units: KeyedBuckets::new(u, u, INGEST_SESSIONS_TRACKED),
            bytes: KeyedBuckets::new(b, b, INGEST_SESSIONS_TRACKED),
            refused: 0,
        }
    }

    /// Whether session `session` (its `SessionId::to_bits`) may take one more unit of `bytes` payload bytes now;
    /// refusals are counted.
    pub fn admit(&mut self, now: Instant, session: u64, bytes: usize) -> bool {
        // Charge bytes first: a unit too large for the byte budget must not spend a unit token.
        let ok = self.bytes.try_take(session, now, bytes as f64).is_ok()
            && self.units.try_take(session, now, 1.0).is_ok();
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// The session closed.
    pub fn forget(&mut self, session: u64) {
        self.units.forget(&session);
        self.bytes.forget(&session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policies_parse() {
        assert_eq!(parse_retry("off"), Ok(RetryPolicy::Off));
        assert_eq!(parse_retry("always"), Ok(RetryPolicy::Always));
        assert_eq!(parse_retry("above:500"), Ok(RetryPolicy::AboveRate(500)));
        for bad in [
            "", "on", "above:", "above:0", "above:-1", "above:x", "Always",
        ] {
            assert!(parse_retry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ingest_is_limited_per_session_in_units_and_bytes() {
        let t0 = Instant::now();
        let mut l = IngestLimiter::new(&AccessSettings {
            ingest_units_per_second: 3,
            ingest_bytes_per_second: 1000,
            ..AccessSettings::default()
        });
        assert!(l.admit(t0, 1, 10));
        assert!(l.admit(t0, 1, 10));
        assert!(l.admit(t0, 1, 10));
        assert!(!l.admit(t0, 1, 10), "fourth unit in the same instant");
        assert!(l.admit(t0, 2, 900), "another session has its own budget");
        assert!(!l.admit(t0, 2, 200), "over 1000 bytes");
        assert_eq!(l.refused, 2);
        // A second later both budgets are back.
        let later = t0 + Duration::from_secs(1);
        assert!(l.admit(later, 1, 10));
        assert!(l.admit(later, 2, 1000));
        l.forget(1);
        assert!(l.admit(later, 1, 10), "a forgotten session starts full");
    }

    #[test]
    fn zero_rates_do_not_limit() {
        let t0 = Instant::now();
        let mut l = IngestLimiter::new(&AccessSettings {
            ingest_units_per_second: 0,
            ingest_bytes_per_second: 0,
            ..AccessSettings::default()
        });
        assert!((0..100_000).all(|_| l.admit(t0, 0, 128 * 1024)));
    }
}
