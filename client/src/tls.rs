//! What a client trusts of a server's TLS.
//!
//! A device trusts what the server's *signing key* signs: its certificate, the case
//! recipients, every receipt and every tree head are checked against the key pinned at
//! enrollment, whoever carried them. TLS is transport privacy: it keeps the traffic from
//! being read or cut into on the way. So the TLS pin is chosen to survive what servers
//! really do (renew certificates, move behind a reverse proxy) without taking anyone's
//! word for more than transport ([`TlsPin`]):
//!
//! - a server whose certificate chains to a certificate authority this computer trusts,
//!   for the name in its URL (a publicly trusted certificate, as phones need), is checked
//!   that way from then on (WebPKI, RFC 5280 path validation and RFC 6125 name matching):
//!   renewals and new keys under any trusted authority are accepted;
//! - a self-signed server is pinned by its certificate's public key (the SHA-256 of its
//!   SubjectPublicKeyInfo, as HPKP pinned, RFC 7469 section 2.4), which a renewal with the
//!   same key keeps; such a pin also accepts a publicly trusted certificate for the same
//!   name, so a legal team that moves its server to one for phones keeps its laptops;
//! - vaults enrolled before this pinned the whole certificate's SHA-256; that pin still
//!   admits exactly that certificate, and is replaced by the key pin on the first
//!   connection that presents it (see [`client`]'s `on_new_pin`).
//!
//! The certificate authorities are the operating system's (rustls-native-certs), so
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` replace them, as for OpenSSL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a client accepts as the server's TLS certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsPin {
    /// A certificate that chains to a certificate authority this computer trusts and is
    /// valid for the URL's host name.
    WebPki,
    /// A certificate for this public key: SHA-256 of its SubjectPublicKeyInfo DER (or, as
    /// [`TlsPin::WebPki`] accepts, a publicly trusted certificate for the URL's name).
    Spki([u8; 32]),
    /// Exactly this certificate, by the SHA-256 of its DER: the pin of vaults (and logins)
    /// made before key pins.
    Certificate([u8; 32]),
}

impl TlsPin {
    /// As kept in `enrollment.json`'s `tls_pin`: `webpki` or `spki-sha256:<hex>`.
    /// ([`TlsPin::Certificate`] is kept in the older `tls_sha256` field and has no form here.)
    pub fn to_stored(&self) -> Option<String> {
        match self {
            TlsPin::WebPki => Some("webpki".into()),
            TlsPin::Spki(h) => Some(format!("spki-sha256:{}", hex::encode(h))),
            TlsPin::Certificate(_) => None,
        }
    }

    /// Parses [`TlsPin::to_stored`]'s text.
    pub fn parse_stored(text: &str) -> Result<TlsPin, String> {
        if text == "webpki" {
            return Ok(TlsPin::WebPki);
        }
        text.strip_prefix("spki-sha256:")
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .map(TlsPin::Spki)
            .ok_or_else(|| {
                format!("the stored TLS pin `{text}` is not webpki or spki-sha256:<64 hex>")
            })
    }

    /// A sentence for people: what is trusted.
    pub fn describe(&self) -> String {
        match self {
            TlsPin::WebPki => {
                "checked against this computer's certificate authorities (renewals accepted)".into()
            }
            TlsPin::Spki(h) => format!("key pinned, spki-sha256:{}", hex::encode(h)),
            TlsPin::Certificate(h) => format!("certificate pinned, sha256:{}", hex::encode(h)),
        }
    }
}

/// What the server presented on a connection, noted by the client's verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// SHA-256 of the end-entity certificate's DER.
    pub cert_sha256: [u8; 32],
    /// SHA-256 of its SubjectPublicKeyInfo.
    pub spki_sha256: [u8; 32],
    /// Whether the chain is valid for the host name under this computer's authorities.
    pub web_pki: bool,
}

/// The last certificate a server presented to a [`client`].
pub type SeenCertificate = Arc<Mutex<Option<Seen>>>;

/// Called once with the key pin that replaces a [`TlsPin::Certificate`] pin, when the very
/// certificate pinned was presented.
pub type OnNewPin = Arc<dyn Fn(TlsPin) + Send + Sync>;

/// The system's certificate authorities, read once. `None` when there are none (a
/// minimal container): then no certificate is publicly trusted and servers are pinned.
fn web_pki(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        // Unreadable entries are skipped: the rest still count.
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        Arc::new(store)
    });
    if roots.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().ok()
}

struct Verifier {
    expected: Option<TlsPin>,
    seen: SeenCertificate,
    web_pki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    on_new_pin: Option<OnNewPin>,
    migrated: AtomicBool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("expected", &self.expected).finish_non_exhaustive()
    }
}

impl Verifier {
    fn chains(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        match &self.web_pki {
            Some(v) => v.verify_server_cert(end_entity, intermediates, name, ocsp, now).map(|_| ()),
            None => Err(rustls::Error::General(
                "this computer has no certificate authorities to check the server's certificate"
                    .into(),
            )),
        }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert_sha256 = custody_format::primitives::sha256(&[end_entity.as_ref()]);
        let spki =
            rustls::server::ParsedCertificate::try_from(end_entity)?.subject_public_key_info();
        let spki_sha256 = custody_format::primitives::sha256(&[spki.as_ref()]);
        // The WebPKI check runs only where its answer matters.
        let chain = || self.chains(end_entity, intermediates, name, ocsp, now);
        let outcome = match self.expected {
            None => Ok(chain().is_ok()),
            Some(TlsPin::WebPki) => chain().map(|()| true),
            Some(TlsPin::Spki(pin)) if pin == spki_sha256 => Ok(false),
            Some(TlsPin::Spki(_)) => chain().map(|()| true).map_err(|_| {
                rustls::Error::General(
                    "the server's TLS key is not the one pinned at enrollment, and its \
                     certificate is not from an authority this computer trusts"
                        .into(),
                )
            }),
            Some(TlsPin::Certificate(pin)) if pin == cert_sha256 => {
                let web = chain().is_ok();
                if let Some(hook) = &self.on_new_pin {
                    if !self.migrated.swap(true, Ordering::SeqCst) {
                        hook(if web { TlsPin::WebPki } else { TlsPin::Spki(spki_sha256) });
                    }
                }
                Ok(web)
            }
            Some(TlsPin::Certificate(_)) => Err(rustls::Error::General(
                "the server's TLS certificate is not the one pinned at enrollment".into(),
            )),
        };
        let web_pki = outcome?;
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(Seen { cert_sha256, spki_sha256, web_pki });
        }
        Ok(ServerCertVerified::assertion())
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

/// An HTTPS client that accepts the server's certificate as `pin` says, or with `None`
/// (first contact, at enrollment or login) any certificate, noted in the returned cell so
/// the caller can choose the pin ([`first_contact_pin`]). `on_new_pin` is called once
/// when a [`TlsPin::Certificate`] pin met its certificate, with the pin to keep instead.
pub fn client(
    pin: Option<TlsPin>,
    timeout: Duration,
    on_new_pin: Option<OnNewPin>,
) -> Result<(reqwest::Client, SeenCertificate), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let verifier = Verifier {
        expected: pin,
        seen: seen.clone(),
        web_pki: web_pki(&provider),
        provider: provider.clone(),
        on_new_pin,
        migrated: AtomicBool::new(false),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        // Shorter than the server's wait for a request on an idle connection (15 s by
        // default): a connection the server is about to close is not reused, so a segment
        // after a pause does not first meet a reset and wait for a retry.
        .pool_idle_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    Ok((client, seen))
}

/// [`client`] pinning exactly the certificate whose SHA-256 is `pin` (the lawyer's login
/// keeps such a pin), or any certificate with `None`.
pub fn pinned_client(
    pin: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<(reqwest::Client, SeenCertificate), String> {
    client(pin.map(TlsPin::Certificate), timeout, None)
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

/// The pin an enrollment keeps: its `tls_pin`, else (enrolled before key pins) the
/// certificate hash in `tls_sha256`; `None` for a plain `http://` server.
pub fn enrollment_pin(
    url: &str,
    tls_pin: Option<&str>,
    tls_sha256: Option<&str>,
) -> Result<Option<TlsPin>, String> {
    match tls_pin {
        Some(p) => TlsPin::parse_stored(p).map(Some),
        None => Ok(stored_pin(url, tls_sha256)?.map(TlsPin::Certificate)),
    }
}

/// Checks, at first contact, the pin a server names against the certificate it presented:
/// over HTTPS they must be the same; over plain HTTP there must be none.
pub fn check_first_contact(
    url: &str,
    named: Option<&str>,
    seen: &SeenCertificate,
) -> Result<(), &'static str> {
    let seen = seen.lock().ok().and_then(|s| *s).map(|s| hex::encode(s.cert_sha256));
    match (url.starts_with("https://"), named) {
        (true, Some(pin)) if Some(pin) == seen.as_deref() => Ok(()),
        (true, _) => Err("tls_sha256 is not the certificate the server presented"),
        (false, None) => Ok(()),
        (false, Some(_)) => Err("a TLS pin from a plain-HTTP server"),
    }
}

/// The pin a device keeps after first contact with the server at `url`, which named
/// `named` as its certificate's SHA-256 and presented what `seen` noted:
/// - a publicly trusted certificate for the URL's name: [`TlsPin::WebPki`], whatever the
///   server names (behind a reverse proxy it does not know the proxy's certificate);
/// - otherwise the certificate must be the one the server names (a machine in the middle
///   with its own certificate is refused), and its key is pinned;
/// - plain HTTP: no pin, and the server must name none.
pub fn first_contact_pin(
    url: &str,
    named: Option<&str>,
    seen: &SeenCertificate,
) -> Result<Option<TlsPin>, &'static str> {
    let s = seen.lock().ok().and_then(|s| *s);
    match (url.starts_with("https://"), s) {
        (false, _) => check_first_contact(url, named, seen).map(|()| None),
        (true, Some(s)) if s.web_pki => Ok(Some(TlsPin::WebPki)),
        (true, Some(s)) => {
            check_first_contact(url, named, seen).map(|()| Some(TlsPin::Spki(s.spki_sha256)))
        }
        (true, None) => Err("no TLS certificate was seen"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_pins_round_trip_and_damage_is_refused() {
        for pin in [TlsPin::WebPki, TlsPin::Spki([7; 32])] {
            let text = pin.to_stored().unwrap();
            assert_eq!(TlsPin::parse_stored(&text).unwrap(), pin);
        }
        assert!(TlsPin::Certificate([1; 32]).to_stored().is_none());
        for bad in ["", "WebPKI", "spki-sha256:00", "sha256:ab"] {
            assert!(TlsPin::parse_stored(bad).is_err(), "{bad}");
        }
        // An enrollment from before key pins keeps its certificate pin until it migrates.
        let legacy = "ab".repeat(32);
        assert_eq!(
            enrollment_pin("https://h", None, Some(&legacy)).unwrap(),
            Some(TlsPin::Certificate([0xab; 32]))
        );
        let pin = TlsPin::Spki([2; 32]).to_stored();
        assert_eq!(
            enrollment_pin("https://h", pin.as_deref(), Some(&legacy)).unwrap(),
            Some(TlsPin::Spki([2; 32]))
        );
        assert_eq!(enrollment_pin("http://127.0.0.1:1", None, None).unwrap(), None);
        assert!(enrollment_pin("https://h", None, None).is_err());
    }

    #[test]
    fn first_contact_pins_the_key_or_the_authorities() {
        let seen: SeenCertificate = Arc::new(Mutex::new(Some(Seen {
            cert_sha256: [1; 32],
            spki_sha256: [2; 32],
            web_pki: false,
        })));
        let named = hex::encode([1; 32]);
        assert_eq!(
            first_contact_pin("https://h", Some(&named), &seen),
            Ok(Some(TlsPin::Spki([2; 32])))
        );
        // A self-signed certificate the server does not name: someone in between.
        assert!(first_contact_pin("https://h", Some(&"00".repeat(32)), &seen).is_err());
        assert!(first_contact_pin("https://h", None, &seen).is_err());
        // Publicly trusted: the server's own word about its certificate is not needed.
        if let Ok(mut s) = seen.lock() {
            *s = s.map(|s| Seen { web_pki: true, ..s });
        }
        assert_eq!(first_contact_pin("https://h", None, &seen), Ok(Some(TlsPin::WebPki)));
        assert_eq!(first_contact_pin("http://h", None, &seen), Ok(None));
        assert!(first_contact_pin("http://h", Some(&named), &seen).is_err());
    }
}
