//! Certificate pinning: the server's certificate is self-signed, so instead of a
//! certificate authority a client trusts exactly one certificate, by SHA-256. The device
//! pins it at enrollment, the lawyer at login.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The SHA-256 of the TLS certificate a server presented, noted by [`pinned_client`].
pub type SeenCertificate = Arc<Mutex<Option<[u8; 32]>>>;

/// `Some(hash)`: only that certificate; `None`: any certificate, whose hash is noted in
/// `seen` (first contact at enrollment or login, checked against the server's answer).
#[derive(Debug)]
struct Pin {
    expected: Option<[u8; 32]>,
    seen: SeenCertificate,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let hash = custody_format::primitives::sha256(&[end_entity.as_ref()]);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(hash);
        }
        match self.expected {
            Some(pin) if pin != hash => Err(rustls::Error::General(
                "the server's TLS certificate is not the one pinned at enrollment".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, algs)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTPS client that trusts exactly the TLS certificate whose SHA-256 is `pin`, or, with
/// `None` (first contact), any certificate, whose SHA-256 it notes in the returned cell so
/// the caller can compare it with what the server claims.
pub fn pinned_client(
    pin: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<(reqwest::Client, SeenCertificate), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let pin = Pin { expected: pin, seen: seen.clone(), provider: provider.clone() };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pin))
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((client, seen))
}

/// The pin a client stored, as bytes: `Ok(None)` for a plain `http://` URL (loopback tests
/// only), an error for an `https://` URL without a pin or a damaged one.
pub fn stored_pin(url: &str, tls_sha256: Option<&str>) -> Result<Option<[u8; 32]>, String> {
    match tls_sha256 {
        Some(h) => hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(Some)
            .ok_or_else(|| "the stored TLS pin is not 64 hex digits".to_string()),
        None if url.starts_with("http://") => Ok(None),
        None => Err("an https:// server without a stored TLS pin".to_string()),
    }
}

/// Checks, at first contact, the pin a server names against the certificate it presented:
/// over HTTPS they must be the same; over plain HTTP there must be none.
pub fn check_first_contact(
    url: &str,
    named: Option<&str>,
    seen: &SeenCertificate,
) -> Result<(), &'static str> {
    let seen = seen.lock().ok().and_then(|s| *s).map(hex::encode);
    match (url.starts_with("https://"), named) {
        (true, Some(pin)) if Some(pin) == seen.as_deref() => Ok(()),
        (true, _) => Err("tls_sha256 is not the certificate the server presented"),
        (false, None) => Ok(()),
        (false, Some(_)) => Err("a TLS pin from a plain-HTTP server"),
    }
}
