//! `custody serve --tls-cert/--tls-key` at the library level: the server serves the chain
//! the legal team brought (a client trusting only their authority connects), refuses a key
//! that is not the certificate's and files that hold no certificate or key, warns about an
//! expired certificate, and tells which names the certificate covers.

use std::path::Path;
use std::sync::Arc;

use custody_server::identity::{Identity, IdentityError};
use custody_server::{Config, Server, TlsFiles};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate authority of the test's own.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

fn ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "custody test authority");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let der = p.self_signed(&key).unwrap().der().to_vec();
    Ca { issuer: Issuer::new(p, key), der }
}

/// A certificate for `names` signed by `ca`, valid from `from` to `until` (years).
fn leaf(ca: &Ca, key: &KeyPair, names: &[&str], from: i32, until: i32) -> String {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.not_before = rcgen::date_time_ymd(from, 1, 1);
    p.not_after = rcgen::date_time_ymd(until, 1, 1);
    p.signed_by(key, &ca.issuer).unwrap().pem()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test]
async fn the_chain_the_legal_team_brought_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let files = TlsFiles {
        cert: write(
            dir.path(),
            "fullchain.pem",
            &leaf(&ca, &key, &["127.0.0.1", "legal.example"], 2020, 2200),
        ),
        key: write(dir.path(), "privkey.pem", &key.serialize_pem()),
    };
    let mut config = Config::new(&dir.path().join("data"));
    config.tls = Some(files.clone());
    let (server, opened) = Server::open(config).unwrap();
    assert!(opened.tls_warnings.is_empty(), "{:?}", opened.tls_warnings);
    let info = server.tls_certificate().unwrap();
    assert!(info.covers("legal.example") && info.covers("127.0.0.1") && !info.self_issued);
    assert!(!info.covers("other.example") && !info.covers("127.0.0.2"));
    let (addr, _task) =
        custody_server::serve::spawn(server, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    // A client that trusts only the test authority and checks names, as a phone does.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(ca.der.clone())).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    let v: serde_json::Value =
        client.get(format!("https://{addr}/v1/server")).send().await.unwrap().json().await.unwrap();
    assert!(v["server_key"].as_str().unwrap().starts_with("ed25519:"));

    // `admin enroll-token --link` reads what is served from the data directory.
    let served = Identity::served_certificate(&dir.path().join("data")).unwrap().unwrap();
    assert_eq!(served, info);
    // Without the files the self-signed certificate is served again, and named.
    let id = Identity::load(&dir.path().join("data"), None).unwrap();
    let served = Identity::served_certificate(&dir.path().join("data")).unwrap().unwrap();
    assert!(served.self_issued && served.covers("localhost"));
    assert_eq!(served, id.certificate_info().unwrap());
}

#[test]
fn a_wrong_key_unreadable_or_empty_files_are_refused_and_an_expired_certificate_warned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let other = KeyPair::generate().unwrap();
    let cert = write(dir.path(), "cert.pem", &leaf(&ca, &key, &["legal.example"], 2020, 2200));
    let right = write(dir.path(), "key.pem", &key.serialize_pem());
    let wrong = write(dir.path(), "other.pem", &other.serialize_pem());

    let e = Identity::load(&data, Some(&TlsFiles { cert: cert.clone(), key: wrong.clone() }))
        .unwrap_err();
    assert!(matches!(e, IdentityError::KeyMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("is not the private key of the certificate in"), "{e}");

    let missing = dir.path().join("nope.pem");
    let e = Identity::load(&data, Some(&TlsFiles { cert: missing.clone(), key: right.clone() }))
        .unwrap_err();
    assert!(matches!(e, IdentityError::Io { .. }) && e.to_string().contains("nope.pem"), "{e}");

    // The files swapped: no certificate where the chain should be, no key in the other.
    let e = Identity::load(&data, Some(&TlsFiles { cert: right.clone(), key: cert.clone() }))
        .unwrap_err();
    assert!(matches!(e, IdentityError::Pem { .. }), "{e:?}");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    let e = Identity::load(&data, Some(&TlsFiles { cert: cert.clone(), key: cert.clone() }))
        .unwrap_err();
    assert!(e.to_string().contains("holds no private key"), "{e}");

    let id =
        Identity::load(&data, Some(&TlsFiles { cert: cert.clone(), key: right.clone() })).unwrap();
    assert!(id.warnings.is_empty());
    assert!(id.tls_config().is_ok());

    let old = write(dir.path(), "old.pem", &leaf(&ca, &key, &["legal.example"], 2020, 2021));
    let id = Identity::load(&data, Some(&TlsFiles { cert: old, key: right })).unwrap();
    assert_eq!(id.warnings.len(), 1);
    assert!(
        id.warnings[0].contains("expired") && id.warnings[0].contains("renew it"),
        "{:?}",
        id.warnings
    );
}

#[test]
fn the_key_pin_survives_a_renewal_with_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca();
    let key = KeyPair::generate().unwrap();
    let k = write(dir.path(), "key.pem", &key.serialize_pem());
    let a = write(dir.path(), "a.pem", &leaf(&ca, &key, &["legal.example"], 2020, 2200));
    let b = write(dir.path(), "b.pem", &leaf(&ca, &key, &["legal.example"], 2024, 2300));
    let data = dir.path().join("data");
    let first = Identity::load(&data, Some(&TlsFiles { cert: a, key: k.clone() })).unwrap();
    let renewed = Identity::load(&data, Some(&TlsFiles { cert: b, key: k })).unwrap();
    assert_ne!(first.tls_sha256(), renewed.tls_sha256(), "a new certificate");
    assert_eq!(first.tls_spki_sha256().unwrap(), renewed.tls_spki_sha256().unwrap(), "same key");
}
