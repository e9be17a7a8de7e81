//! Certificates and TLS settings of campd and camp-client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use camp_proto::tls::Identity;
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: no usable {what} in the file")]
    Pem {
        /// File.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// camp-proto refused the configuration.
    #[error("TLS: {0}")]
    Proto(#[from] camp_proto::tls::TlsError),
    /// quinn refused the configuration.
    #[error("TLS: no TLS 1.3 initial cipher suite")]
    NoInitialCipherSuite,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::File {
        path: path.to_owned(),
        source,
    })
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// Reads a certificate chain: PEM (every CERTIFICATE block) or one DER certificate.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bytes = read(path)?;
    if !is_pem(&bytes) {
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsSetupError::Pem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Reads a private key: PEM or DER PKCS#8.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let bytes = read(path)?;
    if !is_pem(&bytes) {
        return Ok(PrivateKeyDer::Pkcs8(bytes.into()));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsSetupError::Pem {
        path: path.to_owned(),
        what: "private key",
    })
}

/// Writes the leaf certificate of `identity` (DER) to `path`.
pub fn write_cert(identity: &Identity, path: &Path) -> Result<(), TlsSetupError> {
    let leaf = identity.chain.first().map(|c| c.as_ref()).unwrap_or(&[]);
    std::fs::write(path, leaf).map_err(|source| TlsSetupError::File {
        path: path.to_owned(),
        source,
    })
}

/// Server TLS: TLS 1.3, ALPN `camp/1`, key log to `$SSLKEYLOGFILE` when asked.
pub fn server_crypto(
    identity: Identity,
    keylog: bool,
) -> Result<Arc<QuicServerConfig>, TlsSetupError> {
    if !keylog {
        return Ok(camp_proto::tls::server_crypto(identity)?);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)?;
    cfg.alpn_protocols = vec![camp_proto::config::ALPN.to_vec()];
    cfg.max_early_data_size = 0;
    cfg.key_log = Arc::new(rustls::KeyLogFile::new());
    Ok(Arc::new(
        QuicServerConfig::try_from(cfg).map_err(|_| TlsSetupError::NoInitialCipherSuite)?,
    ))
}

/// Client TLS trusting `ca`.
pub fn client_crypto(ca: &Path, keylog: bool) -> Result<Arc<QuicClientConfig>, TlsSetupError> {
    let roots = read_certs(ca)?;
    Ok(camp_proto::tls::client_crypto(&roots, keylog)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = camp_proto::tls::self_signed(&["camp.test"]).unwrap();
        let path = dir.path().join("cert.der");
        write_cert(&id, &path).unwrap();
        let certs = read_certs(&path).unwrap();
        assert_eq!(certs, id.chain);
        client_crypto(&path, false).unwrap();
        server_crypto(id, true).unwrap();
    }

    #[test]
    fn empty_pem_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "-----BEGIN NOTHING-----\n-----END NOTHING-----\n").unwrap();
        assert!(matches!(read_certs(&path), Err(TlsSetupError::Pem { .. })));
        assert!(matches!(
            read_certs(&dir.path().join("missing")),
            Err(TlsSetupError::File { .. })
        ));
    }
}
