//! Live upload: enrollment with the legal team's server, and the uploader that sends every
//! saved record (and its sealed segment) to it and keeps the receipts.
//!
//! The uploader runs beside the recorder and never holds it up: it reads the journals and
//! segment files the recorder has already made durable, and the upload queue in the index.
//! It sends oldest recording first, in chain order, a few requests in flight, and retries
//! failures with exponential backoff and jitter. A receipt is checked (the server's
//! signature, and that it names exactly the record and ciphertext sent) and appended,
//! fsynced, to the recording's `receipts.bin` journal *before* the record leaves the queue,
//! so a kill at any moment loses no receipt and at worst sends a record again (the server
//! answers a repeat with the same receipt).
//!
//! ```text
//! <vault>/enrollment.json               the server's URL, key, TLS certificate pin, our certificate
//! <vault>/recordings/<id>/receipts.bin  the signed receipts, one journal frame each
//! ```
//!
//! The HTTP API and the request signature are specified in `docs/api.md`; this module
//! builds the signed message on its own, from that text, rather than sharing the server's
//! code, and the loopback tests hold the two together.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custody_durable::fsutil::{sync_dir, write_durable};
use custody_durable::journal::{self, Journal};
use custody_format::cert::DeviceCertificate;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::primitives::{self, sha256};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::signed::Signed;
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::index::Index;
use crate::log_check::{self, Failure, HeadRef, HeldHead, Inconsistency};
use crate::store::{Config, Vault};

const ENROLLMENT_FILE: &str = "enrollment.json";
const RECEIPTS: &str = "receipts.bin";

/// Upload and enrollment errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The server could not be reached or the connection broke.
    #[error("could not reach the server: {0}")]
    Network(String),
    /// The server refused, with its stable code.
    #[error("the server refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The code from `docs/api.md`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server's answer is not what the API promises (a bad receipt or certificate).
    #[error("the server's answer is not valid: {0}")]
    BadAnswer(String),
    /// This vault is not enrolled with a server.
    #[error("this vault is not enrolled with a server; run `custody enroll URL TOKEN` first")]
    NotEnrolled,
    /// A local file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The index failed.
    #[error("the index: {0}")]
    Index(#[from] sled::Error),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] crate::VaultError),
    /// The server's custody log does not extend a head this vault holds
    /// ([`crate::log_check::CODE`]); nothing more is sent to it.
    #[error("log.inconsistent: {0}")]
    LogInconsistent(String),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> UploadError + 'a {
    move |source| UploadError::Io { what, path: path.to_path_buf(), source }
}

/// What the vault keeps of its enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The server's base URL (`https://host:port`).
    pub url: String,
    /// The server's key, `ed25519:<hex>`: receipts must verify with it.
    pub server_key: String,
    /// SHA-256 of the server's TLS certificate, hex; the only certificate accepted.
    /// `None` only for a plain-HTTP loopback server enrolled with an `http://` URL.
    pub tls_sha256: Option<String>,
    /// Our signed device certificate, hex.
    pub certificate: String,
    /// The label the legal team gave this device.
    pub label: String,
    /// The recipients the server named.
    pub recipients: Vec<String>,
}

impl Enrollment {
    /// Reads `<vault>/enrollment.json`, if the vault is enrolled.
    pub fn load(vault_dir: &Path) -> Result<Option<Enrollment>, UploadError> {
        let path = vault_dir.join(ENROLLMENT_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| UploadError::BadAnswer(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    fn save(&self, vault_dir: &Path) -> Result<(), UploadError> {
        let path = vault_dir.join(ENROLLMENT_FILE);
        let tmp = vault_dir.join(".enrollment.json.new");
        let _ = std::fs::remove_file(&tmp);
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        write_durable(&tmp, &bytes, false).map_err(io_err("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err("writing", &path))?;
        sync_dir(vault_dir).map_err(io_err("syncing", vault_dir))
    }

    fn server_key(&self) -> Result<PublicKey, UploadError> {
        PublicKey::parse(&self.server_key)
            .map_err(|e| UploadError::BadAnswer(format!("server key: {e}")))
    }
}

/// The message a device signs for a request (`docs/api.md`, "Request signatures").
fn request_message(
    server_key: &PublicKey,
    method: &str,
    path: &str,
    ts: i64,
    nonce: &[u8; 16],
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex::encode(sha256(&[body]));
    format!("{server_key}\n{method}\n{path}\n{ts}\n{}\n{body_hash}", hex::encode(nonce))
        .into_bytes()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

mod tls {
    //! Certificate pinning: the server's certificate is self-signed, so instead of a
    //! certificate authority the device trusts exactly one certificate, by SHA-256.
    use std::sync::{Arc, Mutex};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// The hash of the certificate a server presented, noted by [`Pin`].
    pub type Seen = Arc<Mutex<Option<[u8; 32]>>>;

    /// `Some(hash)`: only that certificate; `None`: any certificate, whose hash is noted in
    /// `seen` (first contact at enrollment, checked against the server's answer).
    #[derive(Debug)]
    pub struct Pin {
        pub expected: Option<[u8; 32]>,
        pub seen: Seen,
        pub provider: Arc<CryptoProvider>,
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

    pub fn client(
        expected: Option<[u8; 32]>,
        timeout: std::time::Duration,
    ) -> Result<(reqwest::Client, Seen), String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = Arc::new(Mutex::new(None));
        let pin = Pin { expected, seen: seen.clone(), provider: provider.clone() };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pin))
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .timeout(timeout)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok((client, seen))
    }
}

/// An error with its causes, for people: an HTTP client's own message names only the
/// request, while what went wrong (a refused connection, a certificate that is not the
/// pinned one) is in its sources.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

/// The SHA-256 of the TLS certificate a server presented, noted by [`pinned_client`].
pub type SeenCertificate = Arc<Mutex<Option<[u8; 32]>>>;

/// An HTTPS client that trusts exactly the TLS certificate whose SHA-256 is `pin`, or, with
/// `None` (first contact), any certificate, whose SHA-256 it notes in the returned cell so
/// the caller can compare it with what the server claims. The legal team's tools use it to
/// pin the server the same way enrollment does.
pub fn pinned_client(
    pin: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<(reqwest::Client, SeenCertificate), String> {
    tls::client(pin, timeout)
}

async fn refusal(resp: reqwest::Response) -> UploadError {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    UploadError::Refused {
        status,
        code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
        message: v["error"]["message"].as_str().unwrap_or("").to_string(),
    }
}

/// Enrolls this vault's device key with the server at `url` using a one-time `token`,
/// saves the enrollment (pinning the server's key and TLS certificate) and makes the
/// server's case recipients the vault's recipients. A plain `http://` URL is accepted
/// only because the caller typed it (loopback tests); the answer must then carry no pin.
pub async fn enroll(
    vault: &Vault,
    device_key: &SigningKey,
    url: &str,
    token: &str,
) -> Result<Enrollment, UploadError> {
    let url = url.trim_end_matches('/').to_string();
    let token_bytes: [u8; 32] = hex::decode(token.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| UploadError::BadAnswer("the token must be 64 hex digits".into()))?;
    let public = PublicKey::from(device_key.verifying_key());
    let mut msg = sha256(&[&token_bytes]).to_vec();
    msg.extend_from_slice(&public.to_bytes());
    let sig = primitives::sign(device_key, primitives::DOMAIN_ENROLLMENT_SIGNATURE, &msg);
    let (client, seen) =
        tls::client(None, Duration::from_secs(30)).map_err(UploadError::Network)?;
    let body = serde_json::json!({
        "token": hex::encode(token_bytes),
        "device_key": public.to_string(),
        "signature": hex::encode(sig),
    });
    let resp = client
        .post(format!("{url}/v1/enroll"))
        .json(&body)
        .send()
        .await
        .map_err(|e| UploadError::Network(with_causes(&e)))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let v: serde_json::Value =
        resp.json().await.map_err(|e| UploadError::BadAnswer(e.to_string()))?;
    let text = |k: &str| v[k].as_str().map(String::from);
    let bad = |what: &str| UploadError::BadAnswer(format!("the enrollment answer: {what}"));
    let server_key = PublicKey::parse(&text("server_key").ok_or_else(|| bad("no server_key"))?)
        .map_err(|_| bad("server_key is not a key"))?;
    let cert_hex = text("certificate").ok_or_else(|| bad("no certificate"))?;
    let cert = hex::decode(&cert_hex)
        .ok()
        .and_then(|b| Signed::<DeviceCertificate>::parse(&b).ok())
        .ok_or_else(|| bad("the certificate does not parse"))?;
    if !cert.verify(&server_key)
        || cert.value().device_key != public
        || cert.value().server_key != server_key
    {
        return Err(bad("the certificate is not the server's, for this device"));
    }
    let tls_sha256 = text("tls_sha256");
    let seen = seen.lock().ok().and_then(|s| *s).map(hex::encode);
    match (url.starts_with("https://"), &tls_sha256) {
        // The pin the server names must be the certificate it actually presented.
        (true, Some(pin)) if Some(pin) == seen.as_ref() => {}
        (true, _) => return Err(bad("tls_sha256 is not the certificate the server presented")),
        (false, None) => {}
        (false, Some(_)) => return Err(bad("a TLS pin from a plain-HTTP server")),
    }
    let recipients: Vec<String> = v["recipients"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let enrollment = Enrollment {
        url,
        server_key: server_key.to_string(),
        tls_sha256,
        certificate: cert_hex,
        label: cert.value().label.clone(),
        recipients: recipients.clone(),
    };
    enrollment.save(vault.dir())?;
    if !recipients.is_empty() {
        vault.set_config(&Config { recipients })?;
    }
    Ok(enrollment)
}

/// The receipts stored in a recording's directory, in the order they came.
pub fn read_receipts(recording_dir: &Path) -> Result<Vec<Signed<Receipt>>, UploadError> {
    let path = recording_dir.join(RECEIPTS);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let c = journal::read(&path).map_err(io_err("reading", &path))?;
    Ok(c.payloads.iter().filter_map(|p| Signed::<Receipt>::parse(p).ok()).collect())
}

/// How the uploader behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// First retry delay; doubles per failure, with jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// How often the queue is looked at when nobody calls [`Uploader::nudge`].
    pub poll: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 4,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(250),
        }
    }
}

/// A record receipted and its receipt stored.
#[derive(Clone, Debug)]
pub struct Receipted {
    /// The recording.
    pub recording: RecordingId,
    /// The record's position.
    pub seq: u64,
    /// When the receipt was stored.
    pub at: Instant,
}

/// What a flush did.
#[derive(Clone, Debug, Default)]
pub struct Flushed {
    /// Records receipted.
    pub receipted: u64,
    /// Records still queued (the server unreachable, or refusing them).
    pub pending: u64,
    /// Records the server refused for good (equivocation, bad record), with the refusal.
    pub refused: Vec<(RecordingId, u64, String)>,
    /// The last failure that will be retried (server unreachable, busy, failing), if any.
    pub last_error: Option<String>,
    /// Set when the server's log failed a consistency check (now or before): why. Nothing
    /// is sent to that server any more.
    pub log_inconsistent: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    records: HashMap<RecordingId, BTreeMap<u64, SignedRecord>>,
    receipted: HashMap<RecordingId, HashSet<u64>>,
    journals: HashMap<RecordingId, Journal>,
    retry: HashMap<(RecordingId, u64), (u32, Instant)>,
    refused: HashMap<(RecordingId, u64), String>,
}

/// The uploader. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub struct Uploader {
    dir: PathBuf,
    index: Index,
    key: SigningKey,
    public: PublicKey,
    server_key: PublicKey,
    url: String,
    client: reqwest::Client,
    opts: Options,
    shared: Arc<Mutex<Shared>>,
    wake: Arc<tokio::sync::Notify>,
    events: Option<tokio::sync::mpsc::UnboundedSender<Receipted>>,
    /// The largest log head seen; held across a check so heads advance one at a time.
    held: Arc<tokio::sync::Mutex<Option<HeldHead>>>,
    /// Why the server is no longer trusted, once its log failed a check.
    distrust: Arc<Mutex<Option<String>>>,
}

fn locked(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Outcome {
    Done,
    Retry(String),
    Refused(String),
    Distrust(String),
}

/// Why no consistency proof came.
enum ProofError {
    /// The server says it has no tree of a size it signed or the device holds.
    Missing(String),
    /// The request failed; try again later.
    Retry(String),
}

impl Uploader {
    /// An uploader for `vault`, which must be enrolled, signing with `device_key`.
    pub fn new(vault: &Vault, device_key: SigningKey, opts: Options) -> Result<Self, UploadError> {
        let e = Enrollment::load(vault.dir())?.ok_or(UploadError::NotEnrolled)?;
        let pin = match &e.tls_sha256 {
            Some(h) => Some(
                hex::decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| UploadError::BadAnswer("the stored TLS pin".into()))?,
            ),
            None if e.url.starts_with("http://") => None,
            None => return Err(UploadError::BadAnswer("an https server without a TLS pin".into())),
        };
        let (client, _) = tls::client(pin, opts.request_timeout).map_err(UploadError::Network)?;
        let dir = vault.dir();
        let held = log_check::held(dir)
            .map_err(io_err("reading the held log head in", dir))?
            .filter(|h| h.server_key == e.server_key);
        let distrust = log_check::inconsistency(dir)
            .map_err(io_err("reading the log check in", dir))?
            .filter(|i| i.server_key == e.server_key)
            .map(|i| i.message);
        Ok(Uploader {
            dir: vault.dir().to_path_buf(),
            index: vault.index().clone(),
            public: PublicKey::from(device_key.verifying_key()),
            key: device_key,
            server_key: e.server_key()?,
            url: e.url,
            client,
            opts,
            shared: Arc::default(),
            wake: Arc::default(),
            events: None,
            held: Arc::new(tokio::sync::Mutex::new(held)),
            distrust: Arc::new(Mutex::new(distrust)),
        })
    }

    /// Why this server is no longer trusted, if its log failed a consistency check.
    pub fn distrusted(&self) -> Option<String> {
        self.distrust.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds the four signature headers of `docs/api.md` to a request.
    fn sign_request(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let ts = now_us();
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let msg = request_message(&self.server_key, method, path, ts, &nonce, body);
        let sig = primitives::sign(&self.key, primitives::DOMAIN_REQUEST_SIGNATURE, &msg);
        req.header("custody-device", self.public.to_string())
            .header("custody-timestamp", ts.to_string())
            .header("custody-nonce", hex::encode(nonce))
            .header("custody-signature", hex::encode(sig))
    }

    /// A signed `GET` answered with JSON.
    async fn get_json(&self, path: &str) -> Result<serde_json::Value, UploadError> {
        let req =
            self.sign_request(self.client.get(format!("{}{path}", self.url)), "GET", path, b"");
        let resp = req.send().await.map_err(|e| UploadError::Network(with_causes(&e)))?;
        if !resp.status().is_success() {
            return Err(refusal(resp).await);
        }
        resp.json().await.map_err(|e| UploadError::BadAnswer(e.to_string()))
    }

    /// The consistency proof between the trees of `from` and `to` entries.
    async fn proof(&self, from: u64, to: u64) -> Result<Vec<[u8; 32]>, ProofError> {
        let v = match self.get_json(&format!("/v1/log/consistency?from={from}&to={to}")).await {
            Ok(v) => v,
            // The server says it has no such tree, yet it signed one of that size (or the
            // device holds a head of it): its log lost entries.
            Err(UploadError::Refused { code, message, .. }) if code == "log.range" => {
                return Err(ProofError::Missing(format!(
                    "the server has no consistency proof from {from} to {to} entries: {message}"
                )))
            }
            Err(e) => return Err(ProofError::Retry(e.to_string())),
        };
        v["proof"]
            .as_array()
            .ok_or_else(|| ProofError::Retry("the consistency answer has no proof".into()))?
            .iter()
            .map(|h| {
                h.as_str()
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| ProofError::Retry("a proof hash is not 32 bytes of hex".into()))
            })
            .collect()
    }

    /// Checks that the tree `offered` and the held head are consistent (one extends the
    /// other), asking the server for the proof, and holds `offered` if it is larger. The
    /// first head seen is held as it is. A failure is recorded in the vault and the server
    /// is no longer trusted.
    async fn check_log(&self, offered: HeadRef) -> Result<(), Failure> {
        let mut held = self.held.lock().await;
        let result = match held.as_ref().map(|h| h.head.clone()) {
            None => Ok(()),
            Some(h) if h.tree_size == offered.tree_size => {
                if h.root_hash == offered.root_hash {
                    Ok(())
                } else {
                    Err(Failure::Inconsistent(Box::new(self.evidence(
                        format!("two different roots for the log of {} entries", h.tree_size),
                        &h,
                        &offered,
                        &[],
                    ))))
                }
            }
            Some(h) => {
                let (older, newer) =
                    if h.tree_size < offered.tree_size { (&h, &offered) } else { (&offered, &h) };
                match self.proof(older.tree_size, newer.tree_size).await {
                    Ok(proof) => log_check::verify(older, newer, &proof).map_err(|m| {
                        Failure::Inconsistent(Box::new(self.evidence(m, &h, &offered, &proof)))
                    }),
                    Err(ProofError::Missing(m)) => {
                        Err(Failure::Inconsistent(Box::new(self.evidence(m, &h, &offered, &[]))))
                    }
                    Err(ProofError::Retry(m)) => Err(Failure::Retry(m)),
                }
            }
        };
        match result {
            Ok(()) => {
                if held.as_ref().is_none_or(|h| h.head.tree_size < offered.tree_size) {
                    let new = HeldHead {
                        server_key: self.server_key.to_string(),
                        head: offered,
                        stored_at_us: now_us(),
                    };
                    log_check::store_held(&self.dir, &new)
                        .map_err(|e| Failure::Retry(format!("storing the log head: {e}")))?;
                    *held = Some(new);
                }
                Ok(())
            }
            Err(Failure::Inconsistent(i)) => {
                if let Err(e) = log_check::record_inconsistency(&self.dir, &i) {
                    eprintln!("custody: recording the log inconsistency: {e}");
                }
                *self.distrust.lock().unwrap_or_else(|p| p.into_inner()) = Some(i.message.clone());
                Err(Failure::Inconsistent(i))
            }
            Err(e) => Err(e),
        }
    }

    fn evidence(
        &self,
        message: String,
        held: &HeadRef,
        offered: &HeadRef,
        proof: &[[u8; 32]],
    ) -> Inconsistency {
        Inconsistency {
            code: log_check::CODE.into(),
            message,
            server_key: self.server_key.to_string(),
            held: held.clone(),
            offered: offered.clone(),
            proof: proof.iter().map(hex::encode).collect(),
            detected_at_us: now_us(),
        }
    }

    /// Fetches the server's latest signed head and checks it against the held one. A
    /// server that cannot be reached is not an error here (the uploads will retry).
    pub async fn check_head(&self) -> Result<(), UploadError> {
        let v = match self.get_json("/v1/log/head").await {
            Ok(v) => v,
            Err(UploadError::Network(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let bytes = v["tree_head"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(|| UploadError::BadAnswer("the log head answer has no tree_head".into()))?;
        let head = Signed::<custody_format::log::TreeHead>::parse(&bytes)
            .map_err(|e| UploadError::BadAnswer(format!("the tree head: {e}")))?;
        if !head.verify(&self.server_key) {
            return Err(UploadError::BadAnswer(
                "the tree head is not signed by the enrolled server".into(),
            ));
        }
        let offered = HeadRef {
            tree_size: head.value().tree_size,
            root_hash: hex::encode(head.value().root_hash),
            source: "tree-head".into(),
            signed: hex::encode(&bytes),
        };
        match self.check_log(offered).await {
            Ok(()) | Err(Failure::Retry(_)) => Ok(()),
            Err(Failure::Inconsistent(i)) => Err(UploadError::LogInconsistent(i.message)),
        }
    }

    /// Sends a [`Receipted`] event for every receipt stored (for status lines and tests).
    pub fn events(&mut self) -> tokio::sync::mpsc::UnboundedReceiver<Receipted> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.events = Some(tx);
        rx
    }

    /// Tells the uploader a record was just saved, so it need not wait for its next poll.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    fn rec_dir(&self, id: &RecordingId) -> PathBuf {
        self.dir.join("recordings").join(id.to_string())
    }

    /// The receipts stored for a recording.
    pub fn receipts(&self, id: &RecordingId) -> Result<Vec<Signed<Receipt>>, UploadError> {
        read_receipts(&self.rec_dir(id))
    }

    /// The queue, oldest recording first, each in chain order, without what is in flight,
    /// waiting out a backoff, or refused for good.
    fn due(
        &self,
        in_flight: &HashSet<(RecordingId, u64)>,
    ) -> Result<Vec<(RecordingId, u64)>, UploadError> {
        let mut pending = self.index.pending()?;
        let started: HashMap<[u8; 16], i64> = pending
            .iter()
            .map(|(id, _)| {
                let t = self.index.summary(id).ok().flatten().map_or(i64::MAX, |s| s.started_at_us);
                (*id, t)
            })
            .collect();
        pending.sort_by_key(|(id, seq)| (started.get(id).copied().unwrap_or(i64::MAX), *id, *seq));
        let now = Instant::now();
        let sh = locked(&self.shared);
        Ok(pending
            .into_iter()
            .map(|(id, seq)| (RecordingId(id), seq))
            .filter(|k| {
                !in_flight.contains(k)
                    && !sh.refused.contains_key(k)
                    && sh.retry.get(k).is_none_or(|(_, at)| *at <= now)
            })
            .collect())
    }

    /// The record at `seq`, from the journal (cached; re-read when the recorder has
    /// written more).
    fn record(&self, id: &RecordingId, seq: u64) -> Result<Option<SignedRecord>, UploadError> {
        if let Some(r) = locked(&self.shared).records.get(id).and_then(|m| m.get(&seq)) {
            return Ok(Some(r.clone()));
        }
        let path = self.rec_dir(id).join("journal.bin");
        let c = journal::read(&path).map_err(io_err("reading", &path))?;
        let map: BTreeMap<u64, SignedRecord> = c
            .payloads
            .iter()
            .filter_map(|p| SignedRecord::parse(p).ok())
            .map(|r| (r.record().seq(), r))
            .collect();
        let found = map.get(&seq).cloned();
        locked(&self.shared).records.insert(*id, map);
        Ok(found)
    }

    /// Whether a receipt for `seq` is already stored (after an index rebuild re-queues it).
    fn has_receipt(&self, id: &RecordingId, seq: u64) -> Result<bool, UploadError> {
        if !locked(&self.shared).receipted.contains_key(id) {
            let set: HashSet<u64> = self.receipts(id)?.iter().map(|r| r.value().seq).collect();
            locked(&self.shared).receipted.insert(*id, set);
        }
        Ok(locked(&self.shared).receipted.get(id).is_some_and(|s| s.contains(&seq)))
    }

    /// Checks a receipt against what was sent.
    fn check_receipt(
        &self,
        bytes: &[u8],
        record: &SignedRecord,
    ) -> Result<Signed<Receipt>, String> {
        let r = Signed::<Receipt>::parse(bytes).map_err(|e| format!("receipt: {e}"))?;
        if !r.verify(&self.server_key) {
            return Err("the receipt is not signed by the enrolled server".into());
        }
        let v = r.value();
        let cipher = match record.record() {
            Record::Segment(s) => Some(s.ciphertext_sha256),
            _ => None,
        };
        if v.recording_id != record.record().recording_id()
            || v.seq != record.record().seq()
            || v.record_hash != record.hash()
            || v.ciphertext_sha256 != cipher
            || v.device_key != self.public
        {
            return Err("the receipt does not name the record sent".into());
        }
        Ok(r)
    }

    /// Appends a receipt to the recording's journal (fsynced), then dequeues the record.
    fn store_receipt(
        &self,
        id: &RecordingId,
        seq: u64,
        receipt: &Signed<Receipt>,
    ) -> Result<(), UploadError> {
        let path = self.rec_dir(id).join(RECEIPTS);
        let mut sh = locked(&self.shared);
        if !sh.journals.contains_key(id) {
            let j = if path.exists() {
                Journal::open(&path).map(|(j, _)| j)
            } else {
                Journal::create(&path)
            }
            .map_err(io_err("opening", &path))?;
            sh.journals.insert(*id, j);
        }
        if let Some(j) = sh.journals.get_mut(id) {
            j.append(&receipt.to_bytes()).map_err(io_err("saving a receipt in", &path))?;
        }
        sh.receipted.entry(*id).or_default().insert(seq);
        sh.retry.remove(&(*id, seq));
        drop(sh);
        self.index.dequeue(&id.0, seq)?;
        if let Some(tx) = &self.events {
            let _ = tx.send(Receipted { recording: *id, seq, at: Instant::now() });
        }
        Ok(())
    }

    /// Uploads one record and, for a segment, its sealed file.
    async fn upload_one(&self, id: RecordingId, seq: u64) -> Outcome {
        match self.has_receipt(&id, seq) {
            Ok(true) => {
                let _ = self.index.dequeue(&id.0, seq);
                return Outcome::Done;
            }
            Ok(false) => {}
            Err(e) => return Outcome::Retry(e.to_string()),
        }
        let record = match self.record(&id, seq) {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Refused("no such record in the journal".into()),
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let mut body = record.to_bytes();
        if let Record::Segment(_) = record.record() {
            let path = self.rec_dir(&id).join("segments").join(format!("{seq:08}.age"));
            match tokio::task::spawn_blocking(move || std::fs::read(path)).await {
                Ok(Ok(ct)) => body.extend_from_slice(&ct),
                Ok(Err(e)) => return Outcome::Retry(format!("reading the segment: {e}")),
                Err(e) => return Outcome::Retry(e.to_string()),
            }
        }
        let path = format!("/v1/recordings/{id}/records/{seq}");
        let req = self.client.put(format!("{}{path}", self.url));
        let resp = self.sign_request(req, "PUT", &path, &body).body(body).send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(with_causes(&e)),
        };
        let status = resp.status().as_u16();
        if status != 200 {
            let err = refusal(resp).await;
            // The record itself is refused: sending it again cannot help. Everything else
            // (server trouble, limits, clock, a stalled body) is worth retrying.
            let permanent = matches!(&err, UploadError::Refused { code, .. } if code.starts_with("record.")
                || code.starts_with("chain.") || code.starts_with("segment.")
                || code == "equivocation" || code == "recording.owner");
            return if permanent {
                Outcome::Refused(err.to_string())
            } else {
                Outcome::Retry(err.to_string())
            };
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Outcome::Retry(with_causes(&e)),
        };
        let receipt = match self.check_receipt(&bytes, &record) {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(e),
        };
        // The receipt's tree must extend (or be extended by) the log head already held;
        // until that is shown the receipt is not stored and the record stays queued.
        let offered = HeadRef {
            tree_size: receipt.value().tree_size,
            root_hash: hex::encode(receipt.value().tree_root),
            source: "receipt".into(),
            signed: hex::encode(&bytes),
        };
        match self.check_log(offered).await {
            Ok(()) => {}
            Err(Failure::Retry(why)) => return Outcome::Retry(why),
            Err(Failure::Inconsistent(i)) => return Outcome::Distrust(i.message),
        }
        let this = self.clone();
        match tokio::task::spawn_blocking(move || this.store_receipt(&id, seq, &receipt)).await {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(e)) => Outcome::Retry(e.to_string()),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self.opts.base_backoff.saturating_mul(1u32 << attempts.min(16));
        let capped = exp.min(self.opts.max_backoff);
        // Full jitter over the upper half, so devices knocked off together do not return
        // together.
        let r = (OsRng.next_u32() % 1000) as f64 / 1000.0;
        capped.mul_f64(0.5 + r / 2.0)
    }

    /// Runs the queue until it is empty or `deadline` passes (`flush`), or, with `stop`,
    /// until `stop` names a grace period, and from then on as a flush bounded by it
    /// (`run`, `run_then_flush`).
    async fn drive(
        &self,
        mut until_empty: bool,
        mut deadline: Option<Instant>,
        mut stop: Option<tokio::sync::watch::Receiver<Option<Duration>>>,
    ) -> Result<Flushed, UploadError> {
        let mut set = tokio::task::JoinSet::new();
        let mut in_flight = HashSet::new();
        let mut out = Flushed::default();
        if self.distrusted().is_none() {
            match self.check_head().await {
                Ok(()) | Err(UploadError::LogInconsistent(_)) => {}
                Err(e) => out.last_error = Some(e.to_string()),
            }
        }
        loop {
            if let Some(grace) = stop.as_ref().and_then(|s| *s.borrow()) {
                // Stopped: what is queued now gets the grace period to go out.
                until_empty = true;
                deadline = Some(Instant::now() + grace);
                stop = None;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let distrusted = self.distrusted().is_some();
            if distrusted && until_empty {
                break;
            }
            // A server whose log failed a check is sent nothing more; the queue stays.
            let due = if distrusted { Vec::new() } else { self.due(&in_flight)? };
            for k in due.iter().take(self.opts.concurrency.saturating_sub(in_flight.len())) {
                in_flight.insert(*k);
                let this = self.clone();
                let (id, seq) = *k;
                set.spawn(async move { ((id, seq), this.upload_one(id, seq).await) });
            }
            if until_empty && in_flight.is_empty() && due.is_empty() {
                let waiting = locked(&self.shared).retry.len();
                if waiting == 0 {
                    break;
                }
            }
            let tick = tokio::time::sleep(self.opts.poll);
            tokio::select! {
                Some(done) = set.join_next(), if !set.is_empty() => {
                    let Ok((k, outcome)) = done else { continue };
                    in_flight.remove(&k);
                    match outcome {
                        Outcome::Done => {
                            out.receipted += 1;
                            locked(&self.shared).retry.remove(&k);
                        }
                        Outcome::Retry(why) => {
                            out.last_error = Some(why);
                            let mut sh = locked(&self.shared);
                            let attempts = sh.retry.get(&k).map_or(0, |(a, _)| *a);
                            let at = Instant::now() + self.backoff(attempts);
                            sh.retry.insert(k, (attempts + 1, at));
                        }
                        Outcome::Distrust(why) => {
                            out.last_error = Some(format!("{}: {why}", log_check::CODE));
                        }
                        Outcome::Refused(why) => {
                            out.refused.push((k.0, k.1, why.clone()));
                            let mut sh = locked(&self.shared);
                            sh.retry.remove(&k);
                            sh.refused.insert(k, why);
                        }
                    }
                }
                _ = self.wake.notified() => {}
                _ = tick => {}
                _ = async {
                    // A dropped sender changes nothing more: wait forever, not in a loop.
                    let changed = match stop.as_mut() {
                        Some(s) => s.changed().await.is_ok(),
                        None => false,
                    };
                    if !changed {
                        std::future::pending::<()>().await;
                    }
                } => {}
            }
        }
        set.abort_all();
        out.pending = self.index.pending()?.len() as u64;
        out.log_inconsistent = self.distrusted();
        Ok(out)
    }

    /// Uploads everything queued, retrying with backoff, until the queue is empty (except
    /// records refused for good) or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> Result<Flushed, UploadError> {
        self.drive(true, Some(Instant::now() + timeout), None).await
    }

    /// Uploads records as they are saved until `stop` turns true. Recording never waits
    /// for this: it only reads what the recorder has already made durable.
    pub async fn run(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Flushed, UploadError> {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let relay = tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            let _ = tx.send(Some(Duration::ZERO));
        });
        let out = self.drive(false, None, Some(rx)).await;
        relay.abort();
        out
    }

    /// Uploads records as they are saved until `finish` names a grace period, then keeps
    /// going until the queue is empty or the grace period has passed, without interrupting
    /// the uploads in flight (`custody record` at the end of a recording).
    pub async fn run_then_flush(
        &self,
        finish: tokio::sync::watch::Receiver<Option<Duration>>,
    ) -> Result<Flushed, UploadError> {
        self.drive(false, None, Some(finish)).await
    }
}
