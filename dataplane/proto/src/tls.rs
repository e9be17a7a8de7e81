//! TLS 1.3 configuration helpers for CAMP (rustls with the ring provider).
//!
//! Real deployments pass their own certificate chain; tests, the simulator and the lab use
//! [`self_signed`], which makes an Ed25519 certificate (fixed-size signatures keep simulated
//! handshakes byte-for-byte the same size from run to run).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::ALPN;

/// Errors building TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration (no TLS 1.3 initial cipher suite).
    #[error("quinn crypto: {0}")]
    Quic(#[from] quinn_proto::crypto::rustls::NoInitialCipherSuite),
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct Identity {
    /// Certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key of the leaf.
    pub key: PrivateKeyDer<'static>,
}

/// Generates a self-signed Ed25519 certificate for `names`.
pub fn self_signed(names: &[&str]) -> Result<Identity, TlsError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let cert = params.self_signed(&key)?;
    Ok(Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Entries of the server's TLS resumption cache (rustls's default): one per handshake,
/// oldest evicted, about 190 bytes each, so ~49 KB server-wide once full, whatever the
/// number of sessions.
pub const SESSION_CACHE_ENTRIES: usize = 256;

/// quinn server crypto for `identity`, TLS 1.3 only, ALPN `camp/1`, with a resumption
/// cache of [`SESSION_CACHE_ENTRIES`].
pub fn server_crypto(
    identity: Identity,
) -> Result<Arc<quinn_proto::crypto::rustls::QuicServerConfig>, TlsError> {
    server_crypto_with_cache(identity, SESSION_CACHE_ENTRIES)
}

/// [`server_crypto`] with a resumption cache of `entries` (0: no resumption). Memory tests
/// use a small one, so that the bounded cache fills within their warm-up.
pub fn server_crypto_with_cache(
    identity: Identity,
    entries: usize,
) -> Result<Arc<quinn_proto::crypto::rustls::QuicServerConfig>, TlsError> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    cfg.max_early_data_size = 0;
    cfg.session_storage = if entries == 0 {
        Arc::new(rustls::server::NoServerSessionStorage {})
    } else {
        rustls::server::ServerSessionMemoryCache::new(entries)
    };
    Ok(Arc::new(
        quinn_proto::crypto::rustls::QuicServerConfig::try_from(cfg)?,
    ))
}

/// quinn client crypto trusting exactly `roots`, TLS 1.3 only, ALPN `camp/1`; an optional
/// key log (SSLKEYLOGFILE) lets Wireshark decrypt captures.
pub fn client_crypto(
    roots: &[CertificateDer<'static>],
    key_log: bool,
) -> Result<Arc<quinn_proto::crypto::rustls::QuicClientConfig>, TlsError> {
    let log: Option<Arc<dyn rustls::KeyLog>> = if key_log {
        Some(Arc::new(rustls::KeyLogFile::new()))
    } else {
        None
    };
    client_crypto_logged(roots, log)
}

/// Like [`client_crypto`], with the TLS secrets handed to `key_log` (NSS key log lines, for
/// a capture tool), or to none.
pub fn client_crypto_logged(
    roots: &[CertificateDer<'static>],
    key_log: Option<Arc<dyn rustls::KeyLog>>,
) -> Result<Arc<quinn_proto::crypto::rustls::QuicClientConfig>, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN.to_vec()];
    if let Some(log) = key_log {
        cfg.key_log = log;
    }
    Ok(Arc::new(
        quinn_proto::crypto::rustls::QuicClientConfig::try_from(cfg)?,
    ))
}
