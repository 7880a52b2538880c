//! TLS pins that survive renewals, over real loopback TLS: a device enrolled with a server
//! whose certificate comes from an authority the device trusts keeps uploading when the
//! certificate is renewed with the same key and when it is replaced by one with a new key
//! from the same authority; a device enrolled with a self-signed server keeps uploading
//! through a renewal with the same key and refuses a different self-signed certificate; a
//! vault enrolled before key pins (certificate SHA-256 only) keeps working and migrates;
//! and a server moved behind a TLS-terminating reverse proxy with a publicly trusted
//! certificate keeps its key-pinned device, and enrolls new ones through the proxy.
//!
//! The device's certificate authorities are the system's, which `SSL_CERT_FILE` replaces:
//! this test points it at an authority of its own before any client is made (one test
//! function, so nothing reads the variable concurrently).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use custody_client::tls::TlsPin;
use custody_client::{Enrollment, Options, Uploader};
use custody_format::chain::SegmentFields;
use custody_format::ids::RecordingId;
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::testkit;
use custody_server::TlsFiles;
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};

fn ca() -> (Issuer<'static, KeyPair>, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "custody test authority");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (Issuer::new(p, key), pem)
}

/// A certificate for 127.0.0.1 with `key`, signed by `ca`, valid from `year`.
fn leaf(ca: &Issuer<'static, KeyPair>, key: &KeyPair, year: i32) -> String {
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(year, 1, 1);
    p.not_after = rcgen::date_time_ymd(2200, 1, 1);
    p.signed_by(key, ca).unwrap().pem()
}

/// A server on the data in `data`, at `addr`, serving `tls` (else its self-signed one).
async fn serve(
    data: &Path,
    recipient: &str,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    serve_plain(data, recipient, addr, tls, false).await
}

async fn serve_plain(
    data: &Path,
    recipient: &str,
    addr: SocketAddr,
    tls: Option<TlsFiles>,
    plain: bool,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let mut config = custody_server::Config::new(data);
    config.recipients = vec![recipient.to_string()];
    config.tls = tls;
    config.insecure_http = plain;
    let (server, _) = custody_server::Server::open(config).unwrap();
    custody_server::serve::spawn(server, addr).await.unwrap()
}

/// A reverse proxy at `addr` that terminates TLS with `cert`/`key` (PEM) and forwards each
/// connection's bytes to the plain-HTTP server at `upstream`, as nginx in front does.
async fn tls_proxy(
    addr: SocketAddr,
    cert: &str,
    key: &KeyPair,
    upstream: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(tcp).await else { return };
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    })
}

async fn stop(task: tokio::task::JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}

fn files(dir: &Path, name: &str, cert: &str, key: &KeyPair) -> TlsFiles {
    let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    TlsFiles { cert: c, key: k }
}

/// Seals a one-segment recording into `vault`.
fn record(vault: &Vault, key: &SigningKey, recipient: &str) -> RecordingId {
    let sealer = Sealer::new(parse_recipients(&[recipient.to_string()]).unwrap()).unwrap();
    let mut h = testkit::header(1, key);
    h.recording_id = RecordingId::random(&mut rand_core::OsRng);
    h.recipients = vec![recipient.to_string()];
    let id = h.recording_id;
    let mut w = vault.begin(h, key.clone(), sealer).unwrap();
    let p = sha256(&[id.to_string().as_bytes()]).repeat(64);
    let fields: SegmentFields = testkit::segment(1, 1);
    w.add_segment(SegmentInput { plaintext: &p, plaintext_sha256: sha256(&[&p]), fields }).unwrap();
    w.end(testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
    id
}

/// Records and uploads with a fresh uploader (a new connection); whether all was receipted,
/// and the last error.
async fn upload(vault: &Vault, key: &SigningKey, recipient: &str) -> (bool, Option<String>) {
    record(vault, key, recipient);
    let opts = Options {
        poll: Duration::from_millis(20),
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..Options::default()
    };
    let up = Uploader::new(vault, key.clone(), opts).unwrap();
    let f = up.flush(Duration::from_secs(3)).await.unwrap();
    (f.pending == 0 && f.refused.is_empty() && f.receipted > 0, f.last_error)
}

async fn enroll(data: &Path, url: &str, seed: u8) -> (tempfile::TempDir, Vault, SigningKey) {
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[seed; 32]);
    let token = custody_server::issue_token(data, "o", Duration::from_secs(60)).unwrap();
    custody_client::enroll(&vault, &key, url, &token).await.unwrap();
    (vdir, vault, key)
}

fn pin(vault: &Vault) -> Option<String> {
    Enrollment::load(vault.dir()).unwrap().unwrap().tls_pin
}

#[test]
fn pins_survive_renewals_and_refuse_another_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (authority, authority_pem) = ca();
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, &authority_pem).unwrap();
    std::env::set_var("SSL_CERT_FILE", &roots);
    std::env::remove_var("SSL_CERT_DIR");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_, recipient) = new_recipient_identity();

        // --- A certificate from an authority the device trusts.
        let data = dir.path().join("public");
        let k1 = KeyPair::generate().unwrap();
        let first = files(dir.path(), "first", &leaf(&authority, &k1, 2024), &k1);
        let (addr, task) =
            serve(&data, &recipient, "127.0.0.1:0".parse().unwrap(), Some(first)).await;
        let url = format!("https://{addr}");
        let (_v, vault, key) = enroll(&data, &url, 1).await;
        assert_eq!(pin(&vault).as_deref(), Some("webpki"));
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None));
        // A lawyer's login pins the same way.
        let member =
            custody_server::add_member(&data, "Ana", custody_server::Role::Member).unwrap();
        let (login, _) = custody_client::lawyer::login(&url, &member).await.unwrap();
        assert_eq!(login.tls_pin.as_deref(), Some("webpki"));
        stop(task).await;

        // Renewed with the same key.
        let renewed = files(dir.path(), "renewed", &leaf(&authority, &k1, 2025), &k1);
        let (_, task) = serve(&data, &recipient, addr, Some(renewed)).await;
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None), "same key, renewed");
        stop(task).await;

        // A new key under the same authority.
        let k2 = KeyPair::generate().unwrap();
        let rekeyed = files(dir.path(), "rekeyed", &leaf(&authority, &k2, 2025), &k2);
        let (_, task) = serve(&data, &recipient, addr, Some(rekeyed)).await;
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None), "new key, same CA");
        let session =
            custody_client::lawyer::Session::new(login.clone(), Duration::from_secs(10)).unwrap();
        assert!(session.recordings().await.is_ok(), "the login survives the new key");
        stop(task).await;

        // The authority is what is trusted: a self-signed certificate is not.
        let (_, task) = serve(&data, &recipient, addr, None).await;
        let (done, err) = upload(&vault, &key, &recipient).await;
        assert!(!done, "a self-signed certificate where a trusted one was");
        assert!(err.unwrap_or_default().contains("certificate"), "a TLS refusal");
        let session = custody_client::lawyer::Session::new(login, Duration::from_secs(10)).unwrap();
        assert!(session.recordings().await.is_err(), "nor does the lawyer's login accept it");
        stop(task).await;

        // --- A self-signed server (the laptop default): its key is pinned.
        let data = dir.path().join("self-signed");
        let (addr, task) = serve(&data, &recipient, "127.0.0.1:0".parse().unwrap(), None).await;
        let url = format!("https://{addr}");
        let (_v2, vault, key) = enroll(&data, &url, 2).await;
        let spki = pin(&vault).unwrap();
        assert!(spki.starts_with("spki-sha256:"), "{spki}");
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None));
        stop(task).await;

        // Renewed with the same key: a new self-signed certificate for the stored key.
        let key_der = std::fs::read(data.join("tls-key.der")).unwrap();
        let old_cert = std::fs::read(data.join("tls-cert.der")).unwrap();
        let same = KeyPair::try_from(key_der.as_slice()).unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.not_before = rcgen::date_time_ymd(2026, 1, 1);
        let renewed = p.self_signed(&same).unwrap().der().to_vec();
        assert_ne!(renewed, old_cert);
        std::fs::write(data.join("tls-cert.der"), &renewed).unwrap();
        let (_, task) = serve(&data, &recipient, addr, None).await;
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None), "renewed, same key");
        stop(task).await;

        // Another self-signed certificate with another key: refused, nothing receipted.
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        std::fs::write(data.join("tls-cert.der"), other.cert.der()).unwrap();
        std::fs::write(data.join("tls-key.der"), other.signing_key.serialize_der()).unwrap();
        let (_, task) = serve(&data, &recipient, addr, None).await;
        let (done, err) = upload(&vault, &key, &recipient).await;
        assert!(!done, "another self-signed key is refused");
        assert!(err.unwrap_or_default().contains("TLS key is not the one pinned"), "refusal");
        assert_eq!(pin(&vault).as_deref(), Some(spki.as_str()), "the pin is unchanged");

        // --- A vault enrolled before key pins: its certificate pin holds, and becomes the
        // key pin on the first connection.
        let (_v3, vault, key) = enroll(&data, &url, 3).await;
        let mut e = Enrollment::load(vault.dir()).unwrap().unwrap();
        let new_spki = e.tls_pin.take().unwrap();
        assert_eq!(
            e.tls_sha256.as_deref(),
            Some(hex::encode(sha256(&[other.cert.der()])).as_str())
        );
        std::fs::write(vault.dir().join("enrollment.json"), serde_json::to_vec(&e).unwrap())
            .unwrap();
        assert_eq!(pin(&vault), None);
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None), "legacy pin");
        assert_eq!(pin(&vault).as_deref(), Some(new_spki.as_str()), "migrated to the key pin");
        assert_eq!(
            TlsPin::parse_stored(&new_spki).unwrap(),
            TlsPin::Spki(sha256(&[&other.signing_key.subject_public_key_info()]))
        );
        stop(task).await;

        // --- The server moved behind a reverse proxy that holds a publicly trusted
        // certificate for the same address (the server itself now plain HTTP on loopback):
        // the key-pinned laptop keeps uploading, and a new device enrolling through the
        // proxy (whose server names no certificate) pins the authorities.
        let (inner, task) =
            serve_plain(&data, &recipient, "127.0.0.1:0".parse().unwrap(), None, true).await;
        let k3 = KeyPair::generate().unwrap();
        let proxy = tls_proxy(addr, &leaf(&authority, &k3, 2025), &k3, inner).await;
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None), "through the proxy");
        let (_v4, vault, key) = enroll(&data, &url, 4).await;
        assert_eq!(pin(&vault).as_deref(), Some("webpki"));
        assert_eq!(Enrollment::load(vault.dir()).unwrap().unwrap().tls_sha256, None);
        assert_eq!(upload(&vault, &key, &recipient).await, (true, None));
        stop(proxy).await;
        stop(task).await;
    });
}
