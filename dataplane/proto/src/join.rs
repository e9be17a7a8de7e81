//! Authenticated path join (the CAMP analogue of MP-DCCP MP_JOIN + MP_HMAC).
//!
//! The first path's QUIC connection creates the session and both ends derive a join key
//! from its TLS exporter. A further path proves membership with
//! `HMAC-SHA256(join_key, "camp-join-v1" || token || nonce || binding)`, where `binding` is
//! the *joining* connection's own exporter value. The binding ties the proof to one TLS
//! connection, so a JOIN copied onto another connection fails verification; the nonce cache
//! refuses a proof seen before. Verification is constant-time (ring).

use ring::hmac;

/// TLS exporter label for the session's join key (from the first path's connection).
pub const JOIN_KEY_LABEL: &[u8] = b"EXPORTER-camp-join-key";
/// TLS exporter label for the joining connection's binding value.
pub const JOIN_BINDING_LABEL: &[u8] = b"EXPORTER-camp-join-binding";
/// Domain separation prefix of the MAC input.
const MAC_DOMAIN: &[u8] = b"camp-join-v1";

/// Length of session tokens, nonces and exporter outputs.
pub const TOKEN_LEN: usize = 16;
/// Length of the join nonce.
pub const NONCE_LEN: usize = 16;
/// Length of exporter secrets and of the MAC.
pub const SECRET_LEN: usize = 32;

/// The session secret every joining path must prove knowledge of.
#[derive(Clone)]
pub struct JoinKey(hmac::Key);

impl std::fmt::Debug for JoinKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinKey(..)")
    }
}

impl JoinKey {
    /// Wraps exporter output of the first path's connection.
    pub fn from_exporter(secret: &[u8; SECRET_LEN]) -> Self {
        JoinKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn context(
        &self,
        token: &[u8; TOKEN_LEN],
        nonce: &[u8; NONCE_LEN],
        binding: &[u8; SECRET_LEN],
    ) -> hmac::Context {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(MAC_DOMAIN);
        ctx.update(token);
        ctx.update(nonce);
        ctx.update(binding);
        ctx
    }

    /// Computes the MAC a joining client sends.
    pub fn sign(
        &self,
        token: &[u8; TOKEN_LEN],
        nonce: &[u8; NONCE_LEN],
        binding: &[u8; SECRET_LEN],
    ) -> [u8; SECRET_LEN] {
        let tag = self.context(token, nonce, binding).sign();
        let mut out = [0u8; SECRET_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks a MAC in constant time.
    pub fn verify(
        &self,
        token: &[u8; TOKEN_LEN],
        nonce: &[u8; NONCE_LEN],
        binding: &[u8; SECRET_LEN],
        mac: &[u8; SECRET_LEN],
    ) -> bool {
        let mut msg = [0u8; 12 + TOKEN_LEN + NONCE_LEN + SECRET_LEN];
        let parts: [&[u8]; 4] = [MAC_DOMAIN, token, nonce, binding];
        let mut at = 0;
        for p in parts {
            msg[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        hmac::verify(&self.0, &msg[..at], mac).is_ok()
    }
}

/// Why a JOIN was refused. Each reason is counted by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum JoinRefusal {
    /// No session has this token (never existed, or already gone).
    #[error("unknown session token")]
    UnknownSession,
    /// The MAC does not verify: wrong key, or a JOIN copied from another connection.
    #[error("join MAC does not verify (forged or bound to another connection)")]
    Forged,
    /// This nonce was already used by an accepted join of the session.
    #[error("join nonce already used (replay)")]
    Replayed,
    /// The JOIN came after the joining connection's join window, or the session is closing.
    #[error("join arrived too late")]
    Late,
    /// The session already has its maximum number of paths.
    #[error("session has no room for another path")]
    TooManyPaths,
    /// The first frame on the connection was neither HELLO nor JOIN, or came twice.
    #[error("protocol violation during join")]
    Protocol,
    /// An edge limit refused it: too many sessions from the source (HELLO) or too many JOIN
    /// attempts on the token ([`crate::edge::EdgeLimits`]).
    #[error("rate limited")]
    RateLimited,
}

impl JoinRefusal {
    /// All reasons, for counter arrays.
    pub const ALL: [JoinRefusal; 7] = [
        JoinRefusal::UnknownSession,
        JoinRefusal::Forged,
        JoinRefusal::Replayed,
        JoinRefusal::Late,
        JoinRefusal::TooManyPaths,
        JoinRefusal::Protocol,
        JoinRefusal::RateLimited,
    ];

    /// Dense index for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// QUIC application error code used to close a refused connection.
    pub const fn close_code(self) -> u32 {
        0x100 + self as u32
    }
}

/// The nonces of a session's latest accepted joins (replay protection).
///
/// A JOIN's MAC covers keying material exported from the TLS session of the connection it
/// arrives on, so a JOIN copied onto another connection fails verification (`Forged`)
/// whatever this cache holds; the cache refuses a nonce seen again on top of that. It keeps
/// the last [`NonceCache::CAPACITY`] nonces and forgets the oldest, so a session accepts
/// any number of joins over its life (a client whose links come and go JOINs once per
/// return).
#[derive(Debug)]
pub struct NonceCache {
    seen: [[u8; NONCE_LEN]; Self::CAPACITY],
    len: usize,
    /// Where the next nonce goes once the cache is full (the oldest one).
    next: usize,
}

impl Default for NonceCache {
    fn default() -> Self {
        Self {
            seen: [[0; NONCE_LEN]; Self::CAPACITY],
            len: 0,
            next: 0,
        }
    }
}

impl NonceCache {
    /// Nonces remembered.
    pub const CAPACITY: usize = 64;

    /// Whether `nonce` was recorded.
    pub fn contains(&self, nonce: &[u8; NONCE_LEN]) -> bool {
        self.seen[..self.len].iter().any(|n| n == nonce)
    }

    /// Records a nonce, forgetting the oldest when the cache is full; false (nothing
    /// changes) if it is already recorded.
    pub fn insert(&mut self, nonce: [u8; NONCE_LEN]) -> bool {
        if self.contains(&nonce) {
            return false;
        }
        self.seen[self.next] = nonce;
        self.next = (self.next + 1) % Self::CAPACITY;
        self.len = (self.len + 1).min(Self::CAPACITY);
        true
    }

    /// Nonces recorded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_verifies_only_for_the_same_inputs() {
        let key = JoinKey::from_exporter(&[7; 32]);
        let token = [1; 16];
        let nonce = [2; 16];
        let binding = [3; 32];
        let mac = key.sign(&token, &nonce, &binding);
        assert!(key.verify(&token, &nonce, &binding, &mac));
        assert!(
            !key.verify(&token, &nonce, &[4; 32], &mac),
            "other connection"
        );
        assert!(!key.verify(&token, &[9; 16], &binding, &mac), "other nonce");
        assert!(!key.verify(&[0; 16], &nonce, &binding, &mac), "other token");
        let other = JoinKey::from_exporter(&[8; 32]);
        assert!(
            !other.verify(&token, &nonce, &binding, &mac),
            "other session key"
        );
        let mut bad = mac;
        bad[31] ^= 1;
        assert!(!key.verify(&token, &nonce, &binding, &bad));
    }

    #[test]
    fn nonce_cache_detects_replay_and_forgets_the_oldest_when_full() {
        let mut c = NonceCache::default();
        assert!(c.is_empty());
        assert!(!c.contains(&[1; 16]));
        assert!(c.insert([1; 16]));
        assert!(c.contains(&[1; 16]));
        assert!(!c.insert([1; 16]), "a replay");
        for i in 1..NonceCache::CAPACITY {
            assert!(c.insert([i as u8 + 1; 16]));
        }
        assert_eq!(c.len(), NonceCache::CAPACITY);
        assert!(c.insert([200; 16]), "room is made");
        assert!(!c.contains(&[1; 16]), "the oldest went");
        assert!(c.contains(&[2; 16]) && c.contains(&[200; 16]));
        assert_eq!(c.len(), NonceCache::CAPACITY);
        for i in 0..1000u32 {
            let mut n = [0; 16];
            n[..4].copy_from_slice(&i.to_be_bytes());
            n[15] = 0xff;
            assert!(c.insert(n));
            assert!(c.contains(&n));
        }
    }
}
