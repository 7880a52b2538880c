//! The server's identity: its Ed25519 signing key and its TLS certificate.
//!
//! Both are made on first start and kept in the data directory (secrets mode 0600, written
//! durably). The signing key is what devices trust: receipts, tree heads, certificates and
//! case recipients are all signed by it. TLS is transport privacy. By default the
//! certificate is self-signed, which CLI devices pin by its public key (SPKI) at
//! enrollment; a phone's browser cannot pin, so for phones the legal team brings a
//! certificate the phone trusts (`custody serve --tls-cert --tls-key`, [`TlsFiles`]), which
//! devices then check against the system's certificate authorities. The chain and key are
//! read from PEM files at every start (so a renewal takes effect on restart) and checked:
//! the key must be the certificate's, and an expired certificate is reported
//! ([`Identity::warnings`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use custody_durable::fsutil::{replace_durable, write_durable};
use custody_format::ids::PublicKey;
use custody_format::primitives::sha256;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const KEY_FILE: &str = "server.key";
const PUB_FILE: &str = "server.pub";
const CERT_FILE: &str = "tls-cert.der";
const TLS_KEY_FILE: &str = "tls-key.der";
const KEY_PREFIX: &str = "custody-server-key-v1 ";
/// A copy of the certificate served from `--tls-cert` at the last start (public), so that
/// `custody admin enroll-token --link` can say whether a link's host is one it covers.
const SERVED_FILE: &str = "tls-served-cert.der";

/// A certificate chain and its private key, in PEM files, that the legal team obtained
/// (e.g. from Let's Encrypt) for a name the phones reach the server by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The chain, end-entity certificate first (as `fullchain.pem`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC).
    pub key: PathBuf,
}

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
    /// A PEM file holds nothing usable of what it should.
    #[error("{path}: {why}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("{key} is not the private key of the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
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
    /// The TLS certificate served, DER (the end-entity certificate of the chain).
    pub tls_cert_der: Vec<u8>,
    /// The certificates served after it (intermediates), DER.
    tls_chain: Vec<Vec<u8>>,
    /// The TLS private key.
    tls_key: PrivateKeyDer<'static>,
    /// Whether this start created the signing key or the self-signed certificate.
    pub created: bool,
    /// What is wrong but does not stop the server (an expired certificate), for the
    /// operator to read.
    pub warnings: Vec<String>,
}

impl Identity {
    /// Loads the identity from `dir`, making whatever is missing; serves the self-signed
    /// certificate.
    pub fn load_or_create(dir: &Path) -> Result<Identity, IdentityError> {
        Identity::load(dir, None)
    }

    /// Loads the identity from `dir`, making whatever is missing, and serves the chain in
    /// `tls` if given (else the self-signed certificate kept in `dir`). A key that is not
    /// the certificate's, or files that cannot be read or hold no certificate or key, are
    /// refused; an expired certificate is accepted with a warning, so that the server
    /// keeps receiving from CLI devices while the legal team renews it.
    pub fn load(dir: &Path, tls: Option<&TlsFiles>) -> Result<Identity, IdentityError> {
        let mut id = Identity::load_self_signed(dir)?;
        let served = dir.join(SERVED_FILE);
        match tls {
            None => match std::fs::remove_file(&served) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_at(&served)(e)),
                _ => {}
            },
            Some(files) => {
                let (chain, key) = read_tls_files(files)?;
                let info = CertificateInfo::parse(&chain[0])
                    .map_err(|why| IdentityError::Pem { path: files.cert.clone(), why })?;
                let now = custody_format::time::now_us();
                if now > info.not_after_us {
                    id.warnings.push(format!(
                        "the TLS certificate in {} expired {} days ago: phones will refuse \
                         it, and so will devices that check it against the certificate \
                         authorities; renew it",
                        files.cert.display(),
                        (now - info.not_after_us) / 86_400_000_000
                    ));
                } else if now < info.not_before_us {
                    id.warnings.push(format!(
                        "the TLS certificate in {} is not valid yet (check this computer's clock)",
                        files.cert.display()
                    ));
                }
                if std::fs::read(&served).ok().as_deref() != Some(chain[0].as_slice()) {
                    replace_durable(&served, &chain[0], false).map_err(io_at(&served))?;
                }
                id.tls_cert_der = chain[0].clone();
                id.tls_chain = chain[1..].to_vec();
                id.tls_key = key;
            }
        }
        Ok(id)
    }

    /// The names (DNS names and IP addresses) the certificate this server serves covers,
    /// as found in `dir`: the one from `--tls-cert` at its last start, else its
    /// self-signed one. `None` before the server has first started.
    pub fn served_certificate(dir: &Path) -> Result<Option<CertificateInfo>, IdentityError> {
        for name in [SERVED_FILE, CERT_FILE] {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(der) => {
                    return CertificateInfo::parse(&der)
                        .map(Some)
                        .map_err(|why| IdentityError::Pem { path, why })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        Ok(None)
    }

    fn load_self_signed(dir: &Path) -> Result<Identity, IdentityError> {
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
        let tls_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls_key_der));
        Ok(Identity {
            signing_key,
            public_key,
            tls_cert_der,
            tls_chain: Vec::new(),
            tls_key,
            created,
            warnings: Vec::new(),
        })
    }

    /// The served certificate's validity and names.
    pub fn certificate_info(&self) -> Result<CertificateInfo, IdentityError> {
        CertificateInfo::parse(&self.tls_cert_der).map_err(IdentityError::Certificate)
    }

    /// SHA-256 of the served certificate's SubjectPublicKeyInfo (RFC 5280, 4.1.2.7), hex:
    /// what a CLI device pins when the certificate is self-signed. It stays the same when
    /// the certificate is renewed with the same key.
    pub fn tls_spki_sha256(&self) -> Result<String, IdentityError> {
        self.certificate_info().map(|i| hex::encode(i.spki_sha256))
    }

    /// SHA-256 of the TLS certificate's DER bytes, lowercase hex: what devices pin.
    pub fn tls_sha256(&self) -> String {
        hex::encode(sha256(&[&self.tls_cert_der]))
    }

    /// The rustls server configuration for this certificate (HTTP/1.1 over TLS 1.2/1.3).
    pub fn tls_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        let mut chain = vec![CertificateDer::from(self.tls_cert_der.clone())];
        chain.extend(self.tls_chain.iter().cloned().map(CertificateDer::from));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| IdentityError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, self.tls_key.clone_key())
            .map_err(|e| IdentityError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Reads a PEM chain and key, and checks that the key is the end-entity certificate's.
fn read_tls_files(
    files: &TlsFiles,
) -> Result<(Vec<Vec<u8>>, PrivateKeyDer<'static>), IdentityError> {
    let pem = |path: &Path, why: String| IdentityError::Pem { path: path.to_path_buf(), why };
    let cert_pem = std::fs::read(&files.cert).map_err(io_at(&files.cert))?;
    let key_pem = std::fs::read(&files.key).map_err(io_at(&files.key))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&files.cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(pem(&files.cert, "holds no certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        pem(&files.key, format!("holds no private key (PKCS#8, PKCS#1 or SEC1 PEM): {e}"))
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let certs = chain.iter().cloned().map(CertificateDer::from).collect();
    let certified = rustls::sign::CertifiedKey::from_der(certs, key.clone_key(), &provider)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                IdentityError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() }
            }
            e => pem(&files.key, format!("not a usable private key: {e}")),
        })?;
    // `from_der` lets a key whose public half it cannot compute through; check it here.
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(IdentityError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
    }
    Ok((chain, key))
}

/// What a TLS certificate says about itself that the server and the CLI report: when it is
/// valid, which names it covers, and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Its subjectAltName DNS names (RFC 5280, 4.2.1.6), wildcards as written (`*.x.org`).
    pub dns_names: Vec<String>,
    /// Its subjectAltName IP addresses.
    pub ip_addresses: Vec<std::net::IpAddr>,
    /// notBefore, µs since the Unix epoch.
    pub not_before_us: i64,
    /// notAfter, µs since the Unix epoch.
    pub not_after_us: i64,
    /// Whether its issuer is its subject (a self-signed certificate, which no phone trusts).
    pub self_issued: bool,
    /// SHA-256 of its SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
}

impl CertificateInfo {
    /// Parses a DER certificate (RFC 5280).
    pub fn parse(der: &[u8]) -> Result<CertificateInfo, String> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => dns_names.push(n.to_ascii_lowercase()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            ip_addresses.push(std::net::IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            ip_addresses.push(std::net::IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let us = |t: &x509_parser::time::ASN1Time| t.timestamp().saturating_mul(1_000_000);
        Ok(CertificateInfo {
            dns_names,
            ip_addresses,
            not_before_us: us(&cert.validity().not_before),
            not_after_us: us(&cert.validity().not_after),
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            spki_sha256: sha256(&[cert.public_key().raw]),
        })
    }

    /// Whether a client reaching the server as `host` (a DNS name or an IP address, as in
    /// a URL) finds it among the names: exact, or under a wildcard for one leftmost label
    /// (RFC 6125, 6.4.3), as browsers match.
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return self.ip_addresses.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns_names.iter().any(|n| match n.strip_prefix("*.") {
            Some(parent) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            None => *n == host,
        })
    }

    /// Every name, for messages.
    pub fn names(&self) -> Vec<String> {
        let mut v = self.dns_names.clone();
        v.extend(self.ip_addresses.iter().map(|ip| ip.to_string()));
        v
    }
}
