//! RFC 3161 time-stamping of the custody log (issue 18, `docs/format.md` §9.2).
//!
//! While entries arrive, the server asks each configured time-stamp authority (TSA) for a
//! token over its latest signed tree head, at most once an interval (`custody serve
//! --tsa-interval`, 10 s by default), and only if the log grew (by anything but tokens)
//! since the head that TSA last stamped. One token over a head proves that every entry
//! under it, and so every record those entries log, existed by the TSA's `genTime`: a time
//! that neither the device nor the legal team controls. Each token obtained becomes a log
//! entry of type 10 ([`EntryType::TimeStampToken`]), appended through the log's normal
//! path, so it is ordered and proven like any entry and a bundle can carry it.
//!
//! The request (RFC 3161 §2.4.1) is a DER `TimeStampReq`: version 1, `messageImprint` =
//! SHA-256 over the head's object bytes (exactly as `custody/tree-head.bin` holds one), a
//! random 64-bit `nonce`, `certReq` TRUE (so the token carries the TSA's certificate and
//! can be checked offline), no policy. It is POSTed as `application/timestamp-query`
//! (RFC 3161 §3.4). The answer is used only if its status is granted (0 or 1) and the
//! token's `TSTInfo` names the imprint and the nonce that were asked for; anything else is
//! reported on stderr and the token is not logged. The token's signature and certificate
//! chain are checked by the verifier, offline (`verifier/src/tsa.rs`), not here: the
//! server has nothing it could do with a token it distrusts but drop it, and a verifier
//! must check every token whatever the server thought.
//!
//! **Never in the way.** Each TSA has its own task, apart from ingest: a receipt never
//! waits for a token. Each request has a timeout; a failure is retried with backoff (1 s,
//! doubling, at most the interval), always for the newest head, so the queue of heads
//! waiting for a given TSA is bounded at one (a newer head covers everything an older one
//! does). While a TSA fails, the server says on stderr when the gap began and how many
//! entries wait, and says so again when a token is obtained after it: as event lines
//! (`time-stamping failed`, `time-stamping resumed`, [`crate::events`]) when the
//! operations log is on, else as plain lines on stderr.
//!
//! **Visible.** What each TSA's task found is kept in a [`StatusBook`] and answered to the
//! legal team by `GET /v1/status` ([`custody_protocol::body::ServerStatus`], `docs/api.md`):
//! per TSA its latest token (log index, the head size it covers, its `genTime`), the
//! failures in a row since, when they began and why, and how many log entries no token of
//! it covers yet. The token itself comes from the log, so it survives a restart; the
//! failures are this process's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use custody_protocol::body::{ServerStatus, TokenStatus, TsaStatus};

use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::primitives::sha256;
use custody_format::signed::Signed;
use der::asn1::{Int, OctetString, Uint};
use der::{Decode, Encode};
use x509_tsp::{MessageImprint, TimeStampReq, TimeStampResp, TspVersion, TstInfo};

use crate::server::Server;

/// `id-sha256` (NIST, RFC 5754 §2.2): the imprint's hash algorithm.
const ID_SHA256: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `id-signedData` (RFC 5652 §5.1): a token's content type.
const ID_SIGNED_DATA: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// `id-ct-TSTInfo` (RFC 3161 §2.4.2): the signed content's type.
const ID_CT_TSTINFO: der::oid::ObjectIdentifier =
    der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// The largest TimeStampResp read (a token with a certificate chain is a few KiB).
const MAX_RESPONSE: usize = 256 << 10;

/// How the server time-stamps its log (`custody serve --tsa`, `--tsa-interval`,
/// `--tsa-root`).
#[derive(Clone, Debug)]
pub struct TsaConfig {
    /// The TSAs' URLs; each gets its own token per head. None: no time-stamping.
    pub urls: Vec<String>,
    /// How often, at most, each TSA is asked (while the log grows).
    pub interval: Duration,
    /// Time allowed for one request (connect, send, answer).
    pub timeout: Duration,
    /// Concatenated PEM certificates: the TSA roots shipped in every bundle as
    /// `custody/tsa-roots.pem`. Not used to check tokens here.
    pub roots_pem: Option<Vec<u8>>,
    /// Where the time-stamping tasks report what they find, for `GET /v1/status`. Shared
    /// by clones of this configuration: a server's tasks and its routes see one book.
    pub status: Arc<StatusBook>,
}

impl Default for TsaConfig {
    fn default() -> Self {
        TsaConfig {
            urls: Vec::new(),
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            roots_pem: None,
            status: Arc::default(),
        }
    }
}

/// What the time-stamping tasks found, per TSA (by its [`public_url`]).
#[derive(Debug, Default)]
pub struct StatusBook {
    tsas: Mutex<HashMap<String, Found>>,
}

/// One TSA's failures since its last token, and the genTimes of its tokens read so far.
#[derive(Clone, Debug, Default)]
struct Found {
    failures: u32,
    failing_since_us: Option<i64>,
    last_error: Option<String>,
    /// genTime (µs) by the token's log index.
    gen_times: HashMap<u64, i64>,
}

impl StatusBook {
    fn with<T>(&self, label: &str, f: impl FnOnce(&mut Found) -> T) -> T {
        let mut m = self.tsas.lock().unwrap_or_else(|p| p.into_inner());
        f(m.entry(label.to_string()).or_default())
    }

    fn failed(&self, label: &str, error: &str) -> (u32, i64) {
        self.with(label, |f| {
            f.failures = f.failures.saturating_add(1);
            let since = *f.failing_since_us.get_or_insert_with(crate::now_us);
            f.last_error = Some(error.to_string());
            (f.failures, since)
        })
    }

    fn stamped(&self, label: &str, index: u64, gen_time_us: Option<i64>) {
        self.with(label, |f| {
            f.failures = 0;
            f.failing_since_us = None;
            f.last_error = None;
            if let Some(t) = gen_time_us {
                f.gen_times.insert(index, t);
            }
        });
    }

    fn known(&self, label: &str, index: u64, gen_time_us: i64) {
        self.with(label, |f| {
            f.gen_times.insert(index, gen_time_us);
        });
    }
}

/// Why a TSA's answer was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsaError {
    /// The request could not be made or the answer not read (refused, timed out, not 200).
    #[error("{0}")]
    Http(String),
    /// The answer is not a DER TimeStampResp with a token (RFC 3161 §2.4.2).
    #[error("the answer is not a time-stamp response: {0}")]
    Malformed(String),
    /// The TSA refused (status other than granted or granted with modifications).
    #[error("the time-stamp authority refused: status {status}{text}")]
    Refused {
        /// The PKIStatus value.
        status: u8,
        /// Its free text, if any (`: …`).
        text: String,
    },
    /// The token's imprint or nonce is not what was asked for: not a token over this head.
    #[error("the token does not answer this request: {0}")]
    Mismatch(&'static str),
}

/// The URL as a log entry and the server's messages name it: without user name or
/// password (they are credentials, and the log is evidence that others read).
pub fn public_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// A DER TimeStampReq for `head_bytes` with `nonce` (RFC 3161 §2.4.1).
pub fn request(head_bytes: &[u8], nonce: u64) -> Result<Vec<u8>, TsaError> {
    let der_err = |e: der::Error| TsaError::Malformed(e.to_string());
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki_sha256(),
            hashed_message: OctetString::new(sha256(&[head_bytes]).to_vec()).map_err(der_err)?,
        },
        req_policy: None,
        nonce: Some(nonce_int(nonce)?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(der_err)
}

fn spki_sha256() -> x509_cert::spki::AlgorithmIdentifier<der::Any> {
    // RFC 5754 §2: the parameters of id-sha256 are absent or NULL; NULL, as OpenSSL writes.
    x509_cert::spki::AlgorithmIdentifier {
        oid: ID_SHA256,
        parameters: Some(der::asn1::Null.into()),
    }
}

/// The nonce as a positive INTEGER.
fn nonce_int(nonce: u64) -> Result<Int, TsaError> {
    Uint::new(&nonce.to_be_bytes()).map(Int::from).map_err(|e| TsaError::Malformed(e.to_string()))
}

/// Checks a DER TimeStampResp against the request for `head_bytes` with `nonce`; returns
/// the TimeStampToken's bytes exactly as they are inside it.
pub fn check_response(response: &[u8], head_bytes: &[u8], nonce: u64) -> Result<Vec<u8>, TsaError> {
    let bad = |e: der::Error| TsaError::Malformed(e.to_string());
    let resp = TimeStampResp::from_der(response).map_err(bad)?;
    let status = resp.status.status as u8;
    if status > 1 {
        let text =
            resp.status.status_string.as_ref().map(|t| format!(": {t:?}")).unwrap_or_default();
        return Err(TsaError::Refused { status, text });
    }
    let token = resp
        .time_stamp_token
        .as_ref()
        .ok_or_else(|| TsaError::Malformed("granted, but without a token".into()))?;
    if token.content_type != ID_SIGNED_DATA {
        return Err(TsaError::Malformed("the token is not CMS SignedData".into()));
    }
    let signed = cms::signed_data::SignedData::from_der(&token.content.to_der().map_err(bad)?)
        .map_err(bad)?;
    let encap = &signed.encap_content_info;
    if encap.econtent_type != ID_CT_TSTINFO {
        return Err(TsaError::Malformed("the token's content is not a TSTInfo".into()));
    }
    let econtent = encap
        .econtent
        .as_ref()
        .ok_or_else(|| TsaError::Malformed("the token has no TSTInfo".into()))?;
    // The eContent is an OCTET STRING holding the DER TSTInfo.
    let octets = OctetString::from_der(&econtent.to_der().map_err(bad)?).map_err(bad)?;
    let info = TstInfo::from_der(octets.as_bytes()).map_err(bad)?;
    if info.message_imprint.hash_algorithm.oid != ID_SHA256 {
        return Err(TsaError::Mismatch("the imprint is not SHA-256"));
    }
    if info.message_imprint.hashed_message.as_bytes() != sha256(&[head_bytes]) {
        return Err(TsaError::Mismatch("the imprint is not the hash of the head asked for"));
    }
    if info.nonce.as_ref() != Some(&nonce_int(nonce)?) {
        return Err(TsaError::Mismatch("the nonce is not the one sent"));
    }
    // The token exactly as the TSA wrote it: the bytes after the status in the response.
    let outer = der::asn1::AnyRef::from_der(response).map_err(bad)?;
    let body = outer.value();
    let status_len = usize::try_from(resp.status.encoded_len().map_err(bad)?).map_err(bad)?;
    let raw = body
        .get(status_len..)
        .ok_or_else(|| TsaError::Malformed("the response is shorter than its status".into()))?;
    if cms::content_info::ContentInfo::from_der(raw).map_err(bad)? != *token {
        return Err(TsaError::Malformed("the token's bytes do not read back".into()));
    }
    Ok(raw.to_vec())
}

/// The `genTime` of a DER TimeStampToken, µs since the epoch, if it reads as RFC 3161
/// says (a genTime with fractional seconds does not, with `x509-tsp` 0.1; the verifier
/// reads those: `verifier/src/tsa/tst_info.rs`).
pub fn gen_time_us(token: &[u8]) -> Option<i64> {
    let info = cms::content_info::ContentInfo::from_der(token).ok()?;
    let signed = cms::signed_data::SignedData::from_der(&info.content.to_der().ok()?).ok()?;
    let econtent = signed.encap_content_info.econtent.as_ref()?;
    let octets = OctetString::from_der(&econtent.to_der().ok()?).ok()?;
    let tst = TstInfo::from_der(octets.as_bytes()).ok()?;
    i64::try_from(tst.gen_time.to_unix_duration().as_micros()).ok()
}

/// `GET /v1/status` (a member's bearer token): [`Server::status`]. Not logged as an
/// access: it shows nothing of the evidence, and a monitor may ask it every minute.
pub(crate) async fn status_route(State(server): State<Server>, req: Request) -> Response {
    let s = server.clone();
    crate::http::with_timeout(&server, async move {
        let (parts, _) = req.into_parts();
        let peer = parts.extensions.get::<crate::members::Peer>().map(|p| p.0.ip());
        let (s2, headers) = (s.clone(), parts.headers);
        crate::http::blocking(move || s2.authenticate_member(&headers, peer)).await?;
        Ok(crate::http::json(StatusCode::OK, &s.status()))
    })
    .await
}

/// The HTTP client for the TSAs: plain HTTP, or HTTPS checked against the system's
/// certificate authorities (a token is self-authenticating, so TLS only keeps the
/// request private).
fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// Asks the TSA at `url` for a token over `head`; returns the token's bytes.
async fn stamp(client: &reqwest::Client, url: &str, head: &[u8]) -> Result<Vec<u8>, TsaError> {
    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let nonce = u64::from_be_bytes(nonce);
    let body = request(head, nonce)?;
    let answer = client
        .post(url)
        .header("content-type", "application/timestamp-query")
        .body(body)
        .send()
        .await
        .map_err(|e| TsaError::Http(error_chain(&e)))?;
    if answer.status() != reqwest::StatusCode::OK {
        return Err(TsaError::Http(format!("HTTP {}", answer.status())));
    }
    if answer.content_length().is_some_and(|n| n > MAX_RESPONSE as u64) {
        return Err(TsaError::Http("the answer is too large".into()));
    }
    let bytes = answer.bytes().await.map_err(|e| TsaError::Http(error_chain(&e)))?;
    if bytes.len() > MAX_RESPONSE {
        return Err(TsaError::Http("the answer is too large".into()));
    }
    check_response(&bytes, head, nonce)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

impl Server {
    /// What `GET /v1/status` answers: the log's size and each configured TSA's state.
    pub fn status(&self) -> ServerStatus {
        let config = &self.config().tsa;
        let log = crate::server::lock(&self.inner.log);
        let log_size = log.len();
        let tokens = log.tokens_before(log_size);
        let last_untimed = log.last_untimed();
        let time_stamping = config
            .urls
            .iter()
            .map(|url| {
                let label = public_url(url);
                let found = config.status.with(&label, |f| f.clone());
                let last = tokens.iter().rev().find(|t| t.label == label);
                let covers = last.map_or(0, |t| t.covers);
                // Entries at `covers` and after, up to the last that is not a token, less
                // the tokens among them.
                let entries_waiting = match last_untimed {
                    Some(u) if u >= covers => {
                        let among =
                            tokens.iter().filter(|t| t.index >= covers && t.index <= u).count();
                        (u + 1 - covers).saturating_sub(among as u64)
                    }
                    _ => 0,
                };
                TsaStatus {
                    last_token: last.map(|t| TokenStatus {
                        log_index: t.index,
                        tree_size: t.covers,
                        gen_time_us: found.gen_times.get(&t.index).copied(),
                    }),
                    consecutive_failures: found.failures,
                    failing_since_us: found.failing_since_us,
                    last_error: found.last_error,
                    entries_waiting,
                    tsa: label,
                }
            })
            .collect();
        ServerStatus { log_size, time_stamping }
    }

    /// The log index of the latest token from the TSA labelled `label`, if it has one.
    fn last_token_index(&self, label: &str) -> Option<u64> {
        let log = crate::server::lock(&self.inner.log);
        log.tokens_before(log.len()).iter().rev().find(|t| t.label == label).map(|t| t.index)
    }

    /// Reads back the genTime of the token at log `index` (after a restart) for the status.
    async fn note_gen_time(&self, label: &str, index: u64) {
        let store = crate::server::lock(&self.inner.log).store();
        let Ok(entries) = store.entries(&[index]).await else { return };
        let token = entries
            .first()
            .and_then(|b| LogEntry::decode(b).ok())
            .and_then(|e| e.tsa_token)
            .and_then(|t| gen_time_us(&t));
        if let Some(t) = token {
            self.config().tsa.status.known(label, index, t);
        }
    }

    /// The log size the latest token from the TSA labelled `label` covers, if it has one.
    fn last_stamped(&self, label: &str) -> Option<u64> {
        let log = crate::server::lock(&self.inner.log);
        log.tokens_before(log.len()).iter().rev().find(|t| t.label == label).map(|t| t.covers)
    }

    /// The index of the latest log entry that is not a token.
    fn last_untimed_entry(&self) -> Option<u64> {
        crate::server::lock(&self.inner.log).last_untimed()
    }
}

/// The running time-stamping tasks; dropping it stops them.
#[derive(Debug)]
pub struct Stamping {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stamping {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts one task per configured TSA on the current Tokio runtime (none configured:
/// nothing runs).
pub fn start(server: &Server) -> Result<Stamping, String> {
    let config = server.config().tsa.clone();
    let mut tasks = Vec::new();
    if config.urls.is_empty() {
        return Ok(Stamping { tasks });
    }
    let http = client(config.timeout)?;
    for url in &config.urls {
        tasks.push(tokio::spawn(run(server.clone(), http.clone(), url.clone(), config.interval)));
    }
    Ok(Stamping { tasks })
}

/// Says `event` in the operations log if it is on, else `text` on stderr (a server
/// embedded in a tool or test).
fn say(server: &Server, event: crate::events::Event, text: impl FnOnce() -> String) {
    let log = &server.config().events;
    if log.enabled {
        crate::events::emit(log, &event);
    } else {
        eprintln!("custody-server: {}", text());
    }
}

/// One TSA's loop.
async fn run(server: Server, http: reqwest::Client, url: String, interval: Duration) {
    let label = public_url(&url);
    let book = Arc::clone(&server.config().tsa.status);
    // The log size up to which this TSA has stamped: what its last logged token covers.
    let mut stamped = server.last_stamped(&label).unwrap_or(0);
    if let Some(index) = server.last_token_index(&label) {
        server.note_gen_time(&label, index).await;
    }
    let mut gap: Option<(Instant, u32)> = None;
    let mut backoff = Duration::from_secs(1).min(interval);
    loop {
        let wait = if gap.is_some() { backoff } else { interval };
        tokio::time::sleep(wait).await;
        // A damaged log is read-only (`crate::custody_log::LogDamage`): no token could be
        // logged, so none is asked for.
        if server.log_damage().is_some() {
            continue;
        }
        // Only if the log grew (by anything but tokens) past what this TSA last stamped.
        let Some(grown) = server.last_untimed_entry() else { continue };
        if grown < stamped {
            continue;
        }
        let head: Signed<TreeHead> = server.tree_head();
        let head_bytes = head.to_bytes();
        match stamp(&http, &url, &head_bytes).await {
            Ok(token) => {
                let gen_time = gen_time_us(&token);
                let mut e = LogEntry::new(EntryType::TimeStampToken, crate::now_us());
                e.label = Some(label.clone());
                e.tree_head = Some(head_bytes);
                e.tsa_token = Some(token);
                let s = server.clone();
                let appended =
                    tokio::task::spawn_blocking(move || s.append_log(&e).map(|a| a.index)).await;
                match appended {
                    Ok(Ok(index)) => {
                        stamped = head.value().tree_size;
                        book.stamped(&label, index, gen_time);
                        if let Some((since, failures)) = gap.take() {
                            let secs = since.elapsed().as_secs();
                            let event = crate::events::Event::new("time-stamping resumed")
                                .with("tsa", &label)
                                .with("failures", failures)
                                .with("seconds", secs)
                                .with("covers", stamped)
                                .with("log_index", index);
                            say(&server, event, || {
                                format!(
                                    "time-stamp authority {label} answered again after \
                                     {failures} failed requests over {secs} s; its token over \
                                     the log's first {stamped} entries is log entry {index}"
                                )
                            });
                        }
                        backoff = Duration::from_secs(1).min(interval);
                    }
                    Ok(Err(err)) => {
                        eprintln!("custody-server: logging a time-stamp token from {label}: {err}");
                        backoff = (backoff * 2).min(interval);
                    }
                    Err(err) => {
                        eprintln!("custody-server: logging a time-stamp token from {label}: {err}");
                    }
                }
            }
            Err(err) => {
                let (since, failures) = gap.get_or_insert((Instant::now(), 0));
                *failures += 1;
                let failures = *failures;
                let secs = since.elapsed().as_secs();
                let why = err.to_string();
                let (_, since_us) = book.failed(&label, &why);
                let waiting = head.value().tree_size.saturating_sub(stamped);
                let retry = backoff.as_secs_f32();
                let event = crate::events::Event::new("time-stamping failed")
                    .with("tsa", &label)
                    .with("failures", failures)
                    .with(
                        "since",
                        custody_format::time::utc_seconds(since_us).replacen(' ', "T", 1),
                    )
                    .with("entries_waiting", waiting)
                    .with("retry_s", retry)
                    .with("error", &why);
                say(&server, event, || {
                    format!(
                        "time-stamp authority {label}: {why}; {failures} failed requests over \
                         {secs} s, {waiting} log entries wait for a token (ingest and receipts \
                         go on); retrying in {retry} s"
                    )
                });
                backoff = (backoff * 2).min(interval);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_der_with_the_heads_sha256_a_nonce_and_cert_req() {
        let head = b"a signed head";
        let der = request(head, 0x8000_0000_0000_0001).unwrap();
        let req = TimeStampReq::from_der(&der).unwrap();
        assert_eq!(req.version, TspVersion::V1);
        assert_eq!(req.message_imprint.hash_algorithm.oid, ID_SHA256);
        assert_eq!(req.message_imprint.hashed_message.as_bytes(), sha256(&[head]));
        // A nonce with the top bit set is still a positive INTEGER (a leading zero byte).
        assert_eq!(req.nonce.unwrap().as_bytes(), [0, 0x80, 0, 0, 0, 0, 0, 0, 1]);
        assert!(req.cert_req);
        assert!(req.req_policy.is_none());
    }

    #[test]
    fn credentials_are_not_logged() {
        assert_eq!(public_url("https://user:secret@tsa.example/tsr"), "https://tsa.example/tsr");
        assert_eq!(public_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/");
    }

    #[test]
    fn an_answer_that_is_not_a_response_is_refused() {
        let e = check_response(b"\x30\x03\x02\x01\x00", b"h", 1).unwrap_err();
        assert!(matches!(e, TsaError::Malformed(_)), "{e}");
        // status 2 (rejection), no token.
        let e = check_response(&[0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02], b"h", 1).unwrap_err();
        assert!(matches!(e, TsaError::Refused { status: 2, .. }), "{e}");
    }
}
