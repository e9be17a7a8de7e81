//! The server's edge policy: what a stranger may do before it is a session member.
//!
//! [`Edge`] decides, for the server, whether a new QUIC connection attempt is accepted,
//! answered with a Retry (address validation, RFC 9000 §8.1) or refused; whether a HELLO may
//! open another session for its source; and whether a JOIN attempt against a known session
//! token is still allowed. It counts every refusal by reason ([`EdgeCounters`]). The server
//! calls it at three points (accept, HELLO, JOIN) and tells it when a session closes; all
//! state is bounded (see [`KeyedBuckets`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::limits::{KeyedBuckets, Refusal, TokenBucket};

/// When the server answers a new connection attempt with a QUIC Retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Never: every Initial that passes the limits gets a handshake (one round trip less).
    #[default]
    Off,
    /// Always: the handshake starts only once the client proved it receives at its address.
    Always,
    /// Only while new connection attempts arrive faster than this many per second (all
    /// sources together): a flood of Initials from spoofed sources costs one stateless Retry
    /// each instead of a connection.
    AboveRate(u32),
}

/// Limits on strangers; 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// New connection attempts (handshakes) per source address per second.
    pub handshakes_per_source_per_s: u32,
    /// Burst of handshakes a source may start at once.
    pub handshake_burst: u32,
    /// Open sessions per source address.
    pub sessions_per_source: u32,
    /// JOIN attempts (accepted or not) a session token may receive at once; the budget
    /// refills by as many every [`JOIN_REFILL_PERIOD`], so a long session whose paths keep
    /// coming and going (link flaps, reconnects) can always JOIN again, while a forger
    /// guessing MACs against one token gets a few attempts a minute.
    pub join_attempts_per_token: u32,
    /// Address validation.
    pub retry: RetryPolicy,
    /// Source addresses tracked by the handshake limiter (memory bound).
    pub max_tracked_sources: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            handshakes_per_source_per_s: 20,
            handshake_burst: 40,
            sessions_per_source: 16,
            join_attempts_per_token: 32,
            retry: RetryPolicy::Off,
            max_tracked_sources: 65_536,
        }
    }
}

/// The time in which a token's JOIN budget ([`EdgeLimits::join_attempts_per_token`])
/// refills from empty.
pub const JOIN_REFILL_PERIOD: std::time::Duration = std::time::Duration::from_secs(600);

/// What to do with a new connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptVerdict {
    /// Start the handshake.
    Accept,
    /// Answer with a stateless Retry.
    Retry,
    /// Refuse (CONNECTION_REFUSED) and count why.
    Refuse(EdgeDrop),
}

/// Why the edge refused something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeDrop {
    /// The source started handshakes faster than its limit.
    HandshakeRate,
    /// The handshake limiter's table was full of active sources.
    SourceTableFull,
    /// The source already has its maximum of open sessions (HELLO refused).
    SessionsPerSource,
    /// The session token has seen its maximum of JOIN attempts.
    JoinAttempts,
}

impl EdgeDrop {
    /// All reasons, in counter order.
    pub const ALL: [EdgeDrop; 4] = [
        EdgeDrop::HandshakeRate,
        EdgeDrop::SourceTableFull,
        EdgeDrop::SessionsPerSource,
        EdgeDrop::JoinAttempts,
    ];

    /// Label used in metrics.
    pub const fn name(self) -> &'static str {
        match self {
            EdgeDrop::HandshakeRate => "handshake_rate",
            EdgeDrop::SourceTableFull => "source_table_full",
            EdgeDrop::SessionsPerSource => "sessions_per_source",
            EdgeDrop::JoinAttempts => "join_attempts",
        }
    }
}

/// Why a datagram that reached no connection was dropped, read from its first bytes
/// (RFC 8999 invariants and RFC 9000 §17). quinn-proto drops these silently; the server
/// counts them here so a flood shows in the metrics by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramDrop {
    /// Empty, or the QUIC fixed bit is clear: not QUIC at all.
    NotQuic,
    /// A long header too short to hold its version and connection IDs.
    Truncated,
    /// A long header of a version other than QUIC v1 too short for Version Negotiation.
    UnsupportedVersion,
    /// A v1 Initial shorter than 1200 bytes (RFC 9000 §14.1).
    InitialTooSmall,
    /// A v1 Initial of full size that did not decrypt (forged or corrupted).
    InitialUndecryptable,
    /// A v1 long header other than Initial (0-RTT, Handshake, Retry) for no connection.
    LongHeaderNoConnection,
    /// A short header whose connection ID matches no connection.
    UnknownConnection,
}

impl DatagramDrop {
    /// All reasons, in counter order.
    pub const ALL: [DatagramDrop; 7] = [
        DatagramDrop::NotQuic,
        DatagramDrop::Truncated,
        DatagramDrop::UnsupportedVersion,
        DatagramDrop::InitialTooSmall,
        DatagramDrop::InitialUndecryptable,
        DatagramDrop::LongHeaderNoConnection,
        DatagramDrop::UnknownConnection,
    ];

    /// Label used in metrics.
    pub const fn name(self) -> &'static str {
        match self {
            DatagramDrop::NotQuic => "not_quic",
            DatagramDrop::Truncated => "truncated",
            DatagramDrop::UnsupportedVersion => "unsupported_version",
            DatagramDrop::InitialTooSmall => "initial_too_small",
            DatagramDrop::InitialUndecryptable => "initial_undecryptable",
            DatagramDrop::LongHeaderNoConnection => "long_header_no_connection",
            DatagramDrop::UnknownConnection => "unknown_connection",
        }
    }

    /// Classifies a datagram quinn-proto dropped without a connection or a response.
    pub fn classify(data: &[u8]) -> DatagramDrop {
        let Some(&first) = data.first() else {
            return DatagramDrop::NotQuic;
        };
        if first & 0x80 == 0 {
            // Short header: the fixed bit (0x40) must be set (RFC 9000 §17.3.1).
            return if first & 0x40 == 0 {
                DatagramDrop::NotQuic
            } else {
                DatagramDrop::UnknownConnection
            };
        }
        // Long header: 1 byte, version (4), DCID length and DCID, SCID length and SCID.
        let Some(version) = data.get(1..5) else {
            return DatagramDrop::Truncated;
        };
        let version = u32::from_be_bytes([version[0], version[1], version[2], version[3]]);
        let dcid_len = data.get(5).map(|l| usize::from(*l));
        let scid_at = dcid_len.map(|l| 6 + l);
        if scid_at.is_none_or(|at| {
            data.get(at)
                .is_none_or(|l| data.len() < at + 1 + usize::from(*l))
        }) {
            return DatagramDrop::Truncated;
        }
        if version != 1 {
            return DatagramDrop::UnsupportedVersion;
        }
        if first & 0x40 == 0 {
            return DatagramDrop::NotQuic;
        }
        match (first >> 4) & 0x3 {
            0 if data.len() < 1200 => DatagramDrop::InitialTooSmall,
            0 => DatagramDrop::InitialUndecryptable,
            _ => DatagramDrop::LongHeaderNoConnection,
        }
    }
}

/// Edge counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeCounters {
    /// Datagrams that reached no connection and got no response, by [`DatagramDrop`]
    /// (index = position in [`DatagramDrop::ALL`]).
    pub datagrams_dropped: [u64; DatagramDrop::ALL.len()],
    /// Datagrams answered without a connection (Version Negotiation, stateless reset,
    /// CONNECTION_REFUSED, Retry).
    pub datagrams_answered: u64,
    /// Refusals by [`EdgeDrop`] (index = position in [`EdgeDrop::ALL`]).
    pub refused: [u64; EdgeDrop::ALL.len()],
    /// Retries sent.
    pub retries_sent: u64,
    /// Connection attempts that quinn would not let us Retry (already validated, or a
    /// second Retry): accepted instead.
    pub retry_impossible: u64,
    /// Handshakes that failed before completing (wrong ALPN, bad TLS, peer gave up).
    pub handshakes_failed: u64,
    /// Connections closed because no HELLO or JOIN came in time.
    pub hello_timeouts: u64,
    /// Connection attempts accepted into a handshake.
    pub handshakes_started: u64,
}

/// The edge policy and its state.
#[derive(Debug)]
pub struct Edge {
    limits: EdgeLimits,
    handshakes: KeyedBuckets<IpAddr>,
    /// Connection attempts of all sources, to decide [`RetryPolicy::AboveRate`].
    all_attempts: Option<TokenBucket>,
    sessions_by_source: HashMap<IpAddr, u32>,
    session_source: HashMap<u32, IpAddr>,
    /// Per session: its JOIN budget.
    join_attempts: HashMap<u32, TokenBucket>,
    counters: EdgeCounters,
}

impl Edge {
    /// An edge with `limits`.
    pub fn new(limits: EdgeLimits) -> Self {
        Edge {
            handshakes: KeyedBuckets::new(
                f64::from(limits.handshakes_per_source_per_s),
                f64::from(limits.handshake_burst),
                limits.max_tracked_sources,
            ),
            all_attempts: None,
            limits,
            sessions_by_source: HashMap::new(),
            session_source: HashMap::new(),
            join_attempts: HashMap::new(),
            counters: EdgeCounters::default(),
        }
    }

    /// Limits in force.
    pub fn limits(&self) -> EdgeLimits {
        self.limits
    }

    /// Changes the limits (existing sessions keep their slots; counts carry over).
    pub fn set_limits(&mut self, now: Instant, limits: EdgeLimits) {
        self.handshakes.reconfigure(
            now,
            f64::from(limits.handshakes_per_source_per_s),
            f64::from(limits.handshake_burst),
        );
        if limits.retry != self.limits.retry {
            self.all_attempts = None;
        }
        self.limits = limits;
    }

    /// Counters.
    pub fn counters(&self) -> &EdgeCounters {
        &self.counters
    }

    fn refuse(&mut self, why: EdgeDrop) -> AcceptVerdict {
        self.counters.refused[why as usize] += 1;
        AcceptVerdict::Refuse(why)
    }

    /// A new connection attempt (a first Initial) from `remote`; `validated` when it
    /// carries a token from our own Retry, `may_retry` when quinn allows a Retry at all.
    pub fn on_incoming(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        validated: bool,
        may_retry: bool,
    ) -> AcceptVerdict {
        let want_retry = !validated
            && match self.limits.retry {
                RetryPolicy::Off => false,
                RetryPolicy::Always => true,
                RetryPolicy::AboveRate(rate) => {
                    let b = self.all_attempts.get_or_insert_with(|| {
                        TokenBucket::new(f64::from(rate), f64::from(rate), now)
                    });
                    !b.try_take(now, 1.0)
                }
            };
        if want_retry {
            if may_retry {
                self.counters.retries_sent += 1;
                return AcceptVerdict::Retry;
            }
            self.counters.retry_impossible += 1;
        }
        // A validated address is real, so its rate is charged; an unvalidated one is charged
        // too (the source address may be spoofed, but then the table bound holds).
        match self.handshakes.try_take(remote.ip(), now, 1.0) {
            Ok(()) => {
                self.counters.handshakes_started += 1;
                AcceptVerdict::Accept
            }
            Err(Refusal::Rate) => self.refuse(EdgeDrop::HandshakeRate),
            Err(Refusal::TableFull) => self.refuse(EdgeDrop::SourceTableFull),
        }
    }

    /// A HELLO from `source` wants to open session `session`; false (counted) when the
    /// source already has its maximum of open sessions.
    pub fn on_hello(&mut self, source: IpAddr, session: u32) -> bool {
        let max = self.limits.sessions_per_source;
        let open = self.sessions_by_source.get(&source).copied().unwrap_or(0);
        if max != 0 && open >= max {
            self.refuse(EdgeDrop::SessionsPerSource);
            return false;
        }
        self.sessions_by_source.insert(source, open + 1);
        self.session_source.insert(session, source);
        true
    }

    /// A JOIN names the token of `session`; false (counted) when the token's budget is
    /// spent. Called before the JOIN is verified, so forged attempts count.
    pub fn on_join_attempt(&mut self, now: Instant, session: u32) -> bool {
        let max = self.limits.join_attempts_per_token;
        if max == 0 {
            return true;
        }
        let burst = f64::from(max);
        let rate = burst / JOIN_REFILL_PERIOD.as_secs_f64();
        let bucket = self
            .join_attempts
            .entry(session)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        if bucket.try_take(now, 1.0) {
            return true;
        }
        self.refuse(EdgeDrop::JoinAttempts);
        false
    }

    /// Session `session` closed: its source gets the slot back, its join count goes.
    pub fn on_session_closed(&mut self, session: u32) {
        self.join_attempts.remove(&session);
        if let Some(src) = self.session_source.remove(&session)
            && let Some(n) = self.sessions_by_source.get_mut(&src)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sessions_by_source.remove(&src);
            }
        }
    }

    /// A connection that was not yet a session member was lost: before its handshake
    /// completed (`established == false`) it counts as a failed handshake.
    pub fn on_pending_lost(&mut self, established: bool) {
        if !established {
            self.counters.handshakes_failed += 1;
        }
    }

    /// quinn-proto dropped `data` without a connection or a response.
    pub fn on_unhandled_datagram(&mut self, data: &[u8]) {
        self.counters.datagrams_dropped[DatagramDrop::classify(data) as usize] += 1;
    }

    /// quinn-proto answered a datagram without a connection.
    pub fn on_answered_datagram(&mut self) {
        self.counters.datagrams_answered += 1;
    }

    /// A connection sent neither HELLO nor JOIN in time and is being closed.
    pub fn on_hello_timeout(&mut self) {
        self.counters.hello_timeouts += 1;
    }
}

/// The reason phrase sent in the CONNECTION_CLOSE of a connection closed with `code`, so a
/// client (or an operator reading a packet capture) sees why without our source code.
pub fn close_reason(code: u32) -> &'static [u8] {
    use crate::conn::codes;
    use crate::join::JoinRefusal;
    match code {
        codes::NO_ERROR => b"",
        codes::ABANDONED => b"camp: path abandoned",
        codes::PROTOCOL_VIOLATION => {
            b"camp: protocol violation (malformed or unexpected control frame)"
        }
        codes::DEADLINE_EXPIRED => b"camp: unit deadline expired",
        codes::UNIT_REFUSED => b"camp: unit refused",
        c if c == JoinRefusal::UnknownSession.close_code() => b"camp: unknown session token",
        c if c == JoinRefusal::Forged.close_code() => b"camp: join MAC does not verify",
        c if c == JoinRefusal::Replayed.close_code() => b"camp: join nonce replayed",
        c if c == JoinRefusal::Late.close_code() => {
            b"camp: no HELLO or JOIN within the join timeout, or session closing"
        }
        c if c == JoinRefusal::TooManyPaths.close_code() => b"camp: session has no free path",
        c if c == JoinRefusal::Protocol.close_code() => {
            b"camp: first control frame must be HELLO or JOIN"
        }
        c if c == JoinRefusal::RateLimited.close_code() => b"camp: rate limited",
        _ => b"camp: closed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, last], 40_000))
    }

    #[test]
    fn handshakes_are_limited_per_source() {
        let t0 = Instant::now();
        let mut e = Edge::new(EdgeLimits {
            handshakes_per_source_per_s: 2,
            handshake_burst: 2,
            ..EdgeLimits::default()
        });
        assert_eq!(
            e.on_incoming(t0, addr(1), false, true),
            AcceptVerdict::Accept
        );
        assert_eq!(
            e.on_incoming(t0, addr(1), false, true),
            AcceptVerdict::Accept
        );
        assert_eq!(
            e.on_incoming(t0, addr(1), false, true),
            AcceptVerdict::Refuse(EdgeDrop::HandshakeRate)
        );
        assert_eq!(
            e.on_incoming(t0, addr(2), false, true),
            AcceptVerdict::Accept
        );
        let later = t0 + Duration::from_millis(600);
        assert_eq!(
            e.on_incoming(later, addr(1), false, true),
            AcceptVerdict::Accept
        );
        assert_eq!(e.counters().refused[EdgeDrop::HandshakeRate as usize], 1);
        assert_eq!(e.counters().handshakes_started, 4);
    }

    #[test]
    fn retry_policies() {
        let t0 = Instant::now();
        let mut always = Edge::new(EdgeLimits {
            retry: RetryPolicy::Always,
            ..EdgeLimits::default()
        });
        assert_eq!(
            always.on_incoming(t0, addr(1), false, true),
            AcceptVerdict::Retry
        );
        assert_eq!(
            always.on_incoming(t0, addr(1), true, false),
            AcceptVerdict::Accept
        );
        assert_eq!(
            always.on_incoming(t0, addr(1), false, false),
            AcceptVerdict::Accept
        );
        assert_eq!(always.counters().retries_sent, 1);
        assert_eq!(always.counters().retry_impossible, 1);

        let mut above = Edge::new(EdgeLimits {
            retry: RetryPolicy::AboveRate(3),
            handshakes_per_source_per_s: 0,
            ..EdgeLimits::default()
        });
        let verdicts: Vec<_> = (0..5)
            .map(|i| above.on_incoming(t0, addr(i), false, true))
            .collect();
        assert_eq!(
            verdicts,
            [
                AcceptVerdict::Accept,
                AcceptVerdict::Accept,
                AcceptVerdict::Accept,
                AcceptVerdict::Retry,
                AcceptVerdict::Retry
            ]
        );
        let calm = t0 + Duration::from_secs(2);
        assert_eq!(
            above.on_incoming(calm, addr(9), false, true),
            AcceptVerdict::Accept
        );
    }

    #[test]
    fn sessions_per_source_are_limited_and_released() {
        let mut e = Edge::new(EdgeLimits {
            sessions_per_source: 2,
            ..EdgeLimits::default()
        });
        let a = addr(1).ip();
        assert!(e.on_hello(a, 0));
        assert!(e.on_hello(a, 1));
        assert!(!e.on_hello(a, 2));
        assert!(e.on_hello(addr(2).ip(), 2), "another source");
        e.on_session_closed(0);
        assert!(e.on_hello(a, 3), "a closed session frees its slot");
        assert_eq!(
            e.counters().refused[EdgeDrop::SessionsPerSource as usize],
            1
        );
        e.on_session_closed(1);
        e.on_session_closed(3);
        e.on_session_closed(2);
        assert!(e.sessions_by_source.is_empty() && e.session_source.is_empty());
    }

    #[test]
    fn join_attempts_are_limited_per_token() {
        let mut e = Edge::new(EdgeLimits {
            join_attempts_per_token: 3,
            ..EdgeLimits::default()
        });
        let t0 = Instant::now();
        assert!((0..3).all(|_| e.on_join_attempt(t0, 7)));
        assert!(!e.on_join_attempt(t0, 7));
        assert!(e.on_join_attempt(t0, 8));
        // The budget refills: 3 per JOIN_REFILL_PERIOD, so one more after a third of it.
        let third = JOIN_REFILL_PERIOD / 3;
        assert!(!e.on_join_attempt(t0 + third / 2, 7));
        assert!(e.on_join_attempt(t0 + third + third / 10, 7));
        assert!(!e.on_join_attempt(t0 + third + third / 10, 7));
        // A session that flaps for hours keeps joining at that pace.
        let mut t = t0 + third + third / 10;
        for _ in 0..100 {
            t += third;
            assert!(e.on_join_attempt(t, 7));
        }
        e.on_session_closed(7);
        assert!(
            e.on_join_attempt(t, 7),
            "a new session with the same slot starts afresh"
        );
        assert_eq!(e.counters().refused[EdgeDrop::JoinAttempts as usize], 3);
    }

    #[test]
    fn zero_turns_limits_off() {
        let t0 = Instant::now();
        let mut e = Edge::new(EdgeLimits {
            handshakes_per_source_per_s: 0,
            sessions_per_source: 0,
            join_attempts_per_token: 0,
            ..EdgeLimits::default()
        });
        for i in 0..500u32 {
            assert_eq!(
                e.on_incoming(t0, addr(1), false, true),
                AcceptVerdict::Accept
            );
            assert!(e.on_hello(addr(1).ip(), i));
            assert!(e.on_join_attempt(t0, 0));
        }
    }

    #[test]
    fn dropped_datagrams_are_classified() {
        use DatagramDrop as D;
        let mut initial = vec![0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0];
        assert_eq!(D::classify(&initial), D::InitialTooSmall);
        initial.resize(1200, 0);
        assert_eq!(D::classify(&initial), D::InitialUndecryptable);
        let mut handshake = initial.clone();
        handshake[0] = 0xe0;
        assert_eq!(D::classify(&handshake), D::LongHeaderNoConnection);
        let mut v2 = initial.clone();
        v2[1..5].copy_from_slice(&[0x6b, 0x33, 0x43, 0xcf]);
        assert_eq!(D::classify(&v2[..100]), D::UnsupportedVersion);
        let mut no_fixed = initial.clone();
        no_fixed[0] = 0x80;
        assert_eq!(D::classify(&no_fixed), D::NotQuic);
        for cut in [1, 4, 5, 6, 13, 14] {
            assert_eq!(D::classify(&initial[..cut]), D::Truncated, "cut at {cut}");
        }
        assert_eq!(D::classify(&[]), D::NotQuic);
        assert_eq!(D::classify(&[0x00, 1, 2]), D::NotQuic);
        assert_eq!(D::classify(&[0x41, 1, 2, 3]), D::UnknownConnection);
        // A long DCID length pointing past the end.
        assert_eq!(D::classify(&[0xc0, 0, 0, 0, 1, 200, 1, 2]), D::Truncated);
    }

    #[test]
    fn every_close_code_has_a_reason() {
        use crate::conn::codes;
        use crate::join::JoinRefusal;
        for r in JoinRefusal::ALL {
            assert!(close_reason(r.close_code()).starts_with(b"camp: "), "{r:?}");
            assert_ne!(close_reason(r.close_code()), b"camp: closed");
        }
        assert!(close_reason(codes::PROTOCOL_VIOLATION).starts_with(b"camp: protocol"));
        assert_eq!(close_reason(codes::NO_ERROR), b"");
    }
}
