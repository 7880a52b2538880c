//! A loopback test harness: a server on 127.0.0.1 port 0, devices that enroll and sign
//! requests, and chains whose segment records hold the hashes of real bytes.
#![allow(dead_code)]

use std::time::Duration;

use custody_format::chain::ChainBuilder;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::LogEntry;
use custody_format::primitives::{
    self, sha256, DOMAIN_ENROLLMENT_SIGNATURE, DOMAIN_REQUEST_SIGNATURE,
};
use custody_format::record::{EndReason, SignedRecord};
use custody_format::testkit;
use custody_server::store::{block_on, Backend, Stores};
use custody_server::{Config, Limits, Server};
use ed25519_dalek::SigningKey;

/// The back-ends a shared test runs on, as object_store's integration tests run one suite
/// against every store: see [`on_every_backend!`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Back {
    /// Files in the data directory (the default).
    Fs,
    /// Every store in memory.
    Memory,
    /// The log, index, tokens, members and nonces in a fresh PostgreSQL database (the test
    /// binary's cluster, `custody_testkit::pg`), records and segments in the data directory:
    /// `custody serve --database … --single-replica`.
    Postgres,
    /// Records and sealed segments in a real S3-compatible server (s3s-fs, one per test
    /// binary, a fresh bucket per test), the other stores in memory.
    S3,
}

/// Runs each named `async fn(Back)` once per back-end, as the tests `<name>::fs`,
/// `<name>::memory`, `<name>::s3` and `<name>::postgres`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn fs() {
                    super::$name($crate::common::Back::Fs).await
                }
                #[tokio::test]
                async fn memory() {
                    super::$name($crate::common::Back::Memory).await
                }
                #[tokio::test]
                async fn s3() {
                    super::$name($crate::common::Back::S3).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::common::Back::Postgres).await
                }
            }
        )*
    };
}

pub struct TestServer {
    pub server: Server,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub task: tokio::task::JoinHandle<()>,
    /// The back-end it runs on (for memory, the very stores, kept across restarts).
    pub backend: Backend,
}

impl TestServer {
    /// Stops the server, lets `between` act on its data directory, and starts it again
    /// (on the same stores).
    pub async fn restart(mut self, between: impl FnOnce(&std::path::Path)) -> TestServer {
        self.task.abort();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let backend = self.backend.clone();
        drop(self);
        between(dir.path());
        start_full(dir, test_limits(), true, backend).await
    }

    /// Stops the server, loses its index (the sled directory, or the memory index's
    /// contents) and starts it again, which rebuilds the index.
    pub async fn lose_index(self) -> TestServer {
        match self.backend.clone() {
            Backend::Custom(stores) => {
                block_on(stores.index.clear()).unwrap();
                self.restart(|_| {}).await
            }
            _ => self.restart(|dir| std::fs::remove_dir_all(dir.join("index")).unwrap()).await,
        }
    }

    /// Every custody-log entry, read back from where the back-end keeps them (for files,
    /// the journal on disk).
    pub fn logged_entries(&self) -> Vec<LogEntry> {
        let payloads = match &self.backend {
            Backend::Custom(stores) => block_on(stores.log.load()).unwrap(),
            _ => {
                custody_durable::journal::read(&self.dir.path().join("log/entries.bin"))
                    .unwrap()
                    .payloads
            }
        };
        payloads.iter().map(|p| LogEntry::decode(p).unwrap()).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn test_limits() -> Limits {
    Limits {
        max_body_bytes: 1 << 20,
        body_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(20),
        header_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

pub async fn start(limits: Limits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, limits).await
}

pub async fn start_in(dir: tempfile::TempDir, limits: Limits) -> TestServer {
    start_with(dir, limits, true).await
}

/// A server on `back` (a fresh data directory, and fresh stores for memory and a fresh
/// database for PostgreSQL).
pub async fn start_on(back: Back, limits: Limits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let backend = match back {
        Back::Fs => Backend::Fs,
        Back::Memory => Backend::Custom(Stores::memory()),
        Back::Postgres => Backend::Custom(postgres_stores(dir.path(), &fresh_database()).await),
        Back::S3 => Backend::Custom(Stores {
            records: std::sync::Arc::new(s3_records().await),
            ..Stores::memory()
        }),
    };
    start_full(dir, limits, true, backend).await
}

/// A fresh database on the test binary's PostgreSQL cluster: its URL.
pub fn fresh_database() -> String {
    custody_testkit::pg::fresh_database().unwrap()
}

/// The stores of the database at `url`, with records and segments in `dir/recordings`.
pub async fn postgres_stores(dir: &std::path::Path, url: &str) -> Stores {
    let pg = custody_server::store::pg::PgStores::connect(url).await.unwrap();
    let records = custody_server::store::fs::FsRecords::open(&dir.join("recordings")).unwrap();
    pg.stores(std::sync::Arc::new(records))
}

pub async fn start_with(dir: tempfile::TempDir, limits: Limits, insecure: bool) -> TestServer {
    start_full(dir, limits, insecure, Backend::Fs).await
}

pub async fn start_full(
    dir: tempfile::TempDir,
    limits: Limits,
    insecure: bool,
    backend: Backend,
) -> TestServer {
    let mut config = Config::new(dir.path());
    config.backend = backend.clone();
    config.insecure_http = insecure;
    config.limits = limits;
    config.recipients =
        vec!["age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq".into()];
    let (server, _) = Server::open(config).unwrap();
    let (addr, task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let scheme = if insecure { "http" } else { "https" };
    TestServer { server, base: format!("{scheme}://{addr}"), dir, task, backend }
}

/// The test binary's S3-compatible server (s3s-fs on loopback), started on first use and
/// stopped when the test process exits.
pub fn s3_server() -> &'static custody_testkit::S3Server {
    static S3: std::sync::OnceLock<custody_testkit::S3Server> = std::sync::OnceLock::new();
    S3.get_or_init(|| custody_testkit::S3Server::start().expect("starting s3s-fs"))
}

/// Records in a fresh bucket of [`s3_server`], under a key prefix, probed as
/// `custody serve --store` probes.
pub async fn s3_records() -> custody_server::store::s3::S3Records {
    let s3 = s3_server();
    let url = format!("s3://{}/custody", s3.bucket().unwrap());
    custody_server::store::s3::S3Records::connect_with(&url, s3.config()).await.unwrap()
}

pub fn client() -> reqwest::Client {
    pinned_client([0; 32])
}

/// A client whose connections come from another loopback address (say 127.0.0.2), for
/// what the server keeps per address.
pub fn client_from(local: std::net::IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(pin::config([0; 32]))
        .local_address(local)
        .build()
        .unwrap()
}

/// A client that trusts exactly the TLS certificate with this SHA-256 (and nothing else).
pub fn pinned_client(sha256: [u8; 32]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(pin::config(sha256))
        .timeout(Duration::from_secs(30))
        // Below the tests' header timeout (5 s, [`test_limits`]): a connection the server
        // closes for idling is never picked from the pool for the next request.
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

mod pin {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct Pinned {
        sha256: [u8; 32],
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if custody_format::primitives::sha256(&[end_entity.as_ref()]) == self.sha256 {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General("not the pinned certificate".into()))
            }
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.provider.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &CertificateDer<'_>,
            d: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.provider.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    }

    pub fn config(sha256: [u8; 32]) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { sha256, provider }))
            .with_no_client_auth()
    }
}

#[derive(Clone)]
pub struct Device {
    pub key: SigningKey,
    pub public: PublicKey,
}

pub struct Sent {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Sent {
    pub fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)));
        v["error"]["code"].as_str().unwrap().to_string()
    }
}

pub use custody_server::now_us;

impl Device {
    pub fn new(label: &str) -> Device {
        let key = testkit::key(label);
        let public = PublicKey::from(key.verifying_key());
        Device { key, public }
    }

    pub fn enroll_body(&self, token: &str) -> serde_json::Value {
        let t: [u8; 32] = hex::decode(token).unwrap().try_into().unwrap();
        let msg = custody_server::enroll::enrollment_message(&t, &self.public);
        let sig = primitives::sign(&self.key, DOMAIN_ENROLLMENT_SIGNATURE, &msg);
        serde_json::json!({
            "token": token, "device_key": self.public.to_string(), "signature": hex::encode(sig)
        })
    }

    pub async fn enroll(&self, c: &reqwest::Client, base: &str, token: &str) -> Sent {
        let r = c
            .post(format!("{base}/v1/enroll"))
            .json(&self.enroll_body(token))
            .send()
            .await
            .unwrap();
        Sent { status: r.status().as_u16(), body: r.bytes().await.unwrap().to_vec() }
    }

    /// The four authentication headers, signed by `signer` (normally this device's key).
    #[allow(clippy::too_many_arguments)]
    pub fn headers(
        &self,
        signer: &SigningKey,
        server_key: &PublicKey,
        method: &str,
        path: &str,
        ts: i64,
        nonce: [u8; 16],
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let msg = custody_server::auth::request_message(
            server_key,
            method,
            path,
            ts,
            &nonce,
            &sha256(&[body]),
        );
        let sig = primitives::sign(signer, DOMAIN_REQUEST_SIGNATURE, &msg);
        vec![
            ("custody-device", self.public.to_string()),
            ("custody-timestamp", ts.to_string()),
            ("custody-nonce", hex::encode(nonce)),
            ("custody-signature", hex::encode(sig)),
        ]
    }

    pub async fn send(
        &self,
        c: &reqwest::Client,
        base: &str,
        method: reqwest::Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> Sent {
        self.try_send(c, base, method, path, headers, body).await.unwrap()
    }

    /// [`Self::send`], with a request that got no whole answer as an error.
    pub async fn try_send(
        &self,
        c: &reqwest::Client,
        base: &str,
        method: reqwest::Method,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    ) -> reqwest::Result<Sent> {
        let mut req = c.request(method, format!("{base}{path}")).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok(Sent { status, body: r.bytes().await?.to_vec() })
    }

    pub async fn put(
        &self,
        c: &reqwest::Client,
        base: &str,
        server_key: &PublicKey,
        id: RecordingId,
        seq: u64,
        body: Vec<u8>,
    ) -> Sent {
        let path = format!("/v1/recordings/{id}/records/{seq}");
        let h = self.headers(&self.key, server_key, "PUT", &path, now_us(), fresh_nonce(), &body);
        self.send(c, base, reqwest::Method::PUT, &path, h, body).await
    }

    /// [`Self::put`] as the vault's uploader sends it: a request that fails before any
    /// answer (a connection the server closed as it was reused, a reset) is sent again, with
    /// a fresh nonce, up to four more times 200 ms apart. Also returns how many times it was
    /// sent again. A record the server had stored is answered with its receipt again.
    #[allow(dead_code)]
    #[allow(clippy::too_many_arguments)]
    pub async fn put_retrying(
        &self,
        c: &reqwest::Client,
        base: &str,
        server_key: &PublicKey,
        id: RecordingId,
        seq: u64,
        body: Vec<u8>,
    ) -> (Sent, u32) {
        let path = format!("/v1/recordings/{id}/records/{seq}");
        let mut again = 0;
        loop {
            let h =
                self.headers(&self.key, server_key, "PUT", &path, now_us(), fresh_nonce(), &body);
            match self.try_send(c, base, reqwest::Method::PUT, &path, h, body.clone()).await {
                Ok(sent) => return (sent, again),
                Err(e) if again < 4 => {
                    eprintln!("PUT {path} failed before an answer ({e}); sending it again");
                    again += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("PUT {path} failed five times: {e}"),
            }
        }
    }

    pub async fn state(
        &self,
        c: &reqwest::Client,
        base: &str,
        server_key: &PublicKey,
        id: RecordingId,
    ) -> serde_json::Value {
        let path = format!("/v1/recordings/{id}");
        let h = self.headers(&self.key, server_key, "GET", &path, now_us(), fresh_nonce(), b"");
        let s = self.send(c, base, reqwest::Method::GET, &path, h, Vec::new()).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
        serde_json::from_slice(&s.body).unwrap()
    }
}

pub fn fresh_nonce() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let h = sha256(&[&n.to_be_bytes(), &now_us().to_be_bytes(), &std::process::id().to_be_bytes()]);
    h[..16].try_into().unwrap()
}

/// Deterministic "ciphertext": `len` bytes derived from `seed`.
pub fn bytes(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(&sha256(&[seed, &i.to_be_bytes()]));
        i += 1;
    }
    out.truncate(len);
    out
}

/// A chain by `device` of `segments` segments (and an end record if `ended`), whose segment
/// records hold the length and SHA-256 of the returned ciphertexts (index 0 is empty, for
/// the header; the end record's is empty too).
pub struct Chain {
    pub id: RecordingId,
    pub records: Vec<SignedRecord>,
    pub ciphertexts: Vec<Vec<u8>>,
}

impl Chain {
    pub fn new(
        recording: u8,
        device: &Device,
        segments: u64,
        ended: bool,
        variant: &[u8],
    ) -> Chain {
        let header = testkit::header(recording, &device.key);
        let id = header.recording_id;
        let (mut b, h) = ChainBuilder::start(header, device.key.clone()).unwrap();
        let mut records = vec![h];
        let mut ciphertexts = vec![Vec::new()];
        for n in 1..=segments {
            let ct =
                bytes(&[variant, &[recording], &n.to_be_bytes()].concat(), 20_000 + n as usize * 7);
            let mut f = testkit::segment(recording, n);
            f.ciphertext_len = ct.len() as u64;
            f.ciphertext_sha256 = sha256(&[&ct]);
            records.push(b.segment(f));
            ciphertexts.push(ct);
        }
        if ended {
            records.push(b.end(testkit::T0_US + 60_000_000, EndReason::Stopped, None));
            ciphertexts.push(Vec::new());
        }
        Chain { id, records, ciphertexts }
    }

    pub fn body(&self, seq: usize) -> Vec<u8> {
        let mut b = self.records[seq].to_bytes();
        b.extend_from_slice(&self.ciphertexts[seq]);
        b
    }
}

/// Enrolls `device` on `ts` with a fresh token.
pub async fn enrolled(ts: &TestServer, c: &reqwest::Client, label: &str) -> Device {
    let d = Device::new(label);
    let token = ts.server.issue_token(label, Duration::from_secs(600)).unwrap();
    let s = d.enroll(c, &ts.base, &token).await;
    assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    d
}
