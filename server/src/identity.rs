//! The server's identity: its Ed25519 signing key and its TLS certificate.
//!
//! Both are made on first start and kept in the data directory (secrets mode 0600, written
//! durably). Devices learn the signing key and the certificate's SHA-256 at enrollment and
//! pin both from then on, so the certificate is self-signed: no certificate authority is
//! trusted, and none is needed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody_durable::fsutil::write_durable;
use custody_format::ids::PublicKey;
use custody_format::primitives::sha256;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;

const KEY_FILE: &str = "server.key";
const PUB_FILE: &str = "server.pub";
const CERT_FILE: &str = "tls-cert.der";
const TLS_KEY_FILE: &str = "tls-key.der";
const KEY_PREFIX: &str = "custody-server-key-v1 ";

/// Errors loading or creating the identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The key file is not a server key.
    #[error("{0} is not a custody server key file")]
    BadKeyFile(PathBuf),
    /// The TLS certificate could not be made.
    #[error("making the TLS certificate: {0}")]
    Certificate(String),
    /// The TLS configuration was refused by rustls.
    #[error("setting up TLS: {0}")]
    Tls(String),
    /// Plain HTTP was asked for on an address other machines can reach.
    #[error("plain HTTP is only served on a loopback address, not on {0}")]
    InsecureNotLoopback(String),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_path_buf(), source }
}

/// The server's keys.
#[derive(Debug)]
pub struct Identity {
    /// Signs receipts, tree heads and device certificates.
    pub signing_key: SigningKey,
    /// Its public half.
    pub public_key: PublicKey,
    /// The TLS certificate, DER.
    pub tls_cert_der: Vec<u8>,
    /// The TLS private key, PKCS#8 DER.
    tls_key_der: Vec<u8>,
    /// Whether this start created them.
    pub created: bool,
}

impl Identity {
    /// Loads the identity from `dir`, making whatever is missing.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let mut created = false;
        let key_path = dir.join(KEY_FILE);
        let signing_key = if key_path.exists() {
            let text = std::fs::read_to_string(&key_path).map_err(io_at(&key_path))?;
            let hex_part = text
                .trim()
                .strip_prefix(KEY_PREFIX)
                .ok_or_else(|| IdentityError::BadKeyFile(key_path.clone()))?;
            let secret: [u8; 32] = hex::decode(hex_part)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| IdentityError::BadKeyFile(key_path.clone()))?;
            SigningKey::from_bytes(&secret)
        } else {
            let key = SigningKey::generate(&mut OsRng);
            let text = format!("{KEY_PREFIX}{}\n", hex::encode(key.to_bytes()));
            write_durable(&key_path, text.as_bytes(), true).map_err(io_at(&key_path))?;
            let pub_path = dir.join(PUB_FILE);
            let public = PublicKey::from(key.verifying_key());
            if !pub_path.exists() {
                write_durable(&pub_path, format!("{public}\n").as_bytes(), false)
                    .map_err(io_at(&pub_path))?;
            }
            created = true;
            key
        };
        let cert_path = dir.join(CERT_FILE);
        let tls_key_path = dir.join(TLS_KEY_FILE);
        let (tls_cert_der, tls_key_der) = if cert_path.exists() && tls_key_path.exists() {
            (
                std::fs::read(&cert_path).map_err(io_at(&cert_path))?,
                std::fs::read(&tls_key_path).map_err(io_at(&tls_key_path))?,
            )
        } else {
            // Names a device may use for a loopback or LAN server; devices pin the
            // certificate's hash, so the names matter only to the TLS handshake.
            let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            let ck = rcgen::generate_simple_self_signed(names)
                .map_err(|e| IdentityError::Certificate(e.to_string()))?;
            let cert = ck.cert.der().to_vec();
            let key = ck.signing_key.serialize_der();
            let _ = std::fs::remove_file(&cert_path);
            write_durable(&tls_key_path, &key, true).map_err(io_at(&tls_key_path))?;
            write_durable(&cert_path, &cert, false).map_err(io_at(&cert_path))?;
            created = true;
            (cert, key)
        };
        let public_key = PublicKey::from(signing_key.verifying_key());
        Ok(Identity { signing_key, public_key, tls_cert_der, tls_key_der, created })
    }

    /// SHA-256 of the TLS certificate's DER bytes, lowercase hex: what devices pin.
    pub fn tls_sha256(&self) -> String {
        hex::encode(sha256(&[&self.tls_cert_der]))
    }

    /// The rustls server configuration for this certificate (HTTP/1.1 over TLS 1.2/1.3).
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| IdentityError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.tls_cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.tls_key_der.clone())),
            )
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
