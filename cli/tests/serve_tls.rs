//! `custody serve --tls-cert/--tls-key` through the real binary: a key that is not the
//! certificate's and an unreadable file stop it with a message and a hint; an expired
//! certificate starts with a warning; the names it covers are printed, and
//! `admin enroll-token --link` warns when the link's host is not one of them; a device
//! that trusts the certificate's authority (SSL_CERT_FILE) enrolls with the `webpki` pin.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{bin, ok, Env, Killed};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

struct Files {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    expired: PathBuf,
}

fn files(dir: &Path) -> Files {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "custody test authority");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = p.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(p, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = |until: i32| {
        let names = vec!["127.0.0.1".to_string(), "legal.example".to_string()];
        let mut p = CertificateParams::new(names).unwrap();
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(until, 1, 1);
        p.signed_by(&key, &issuer).unwrap().pem()
    };
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Files {
        ca: write("ca.pem", ca_pem),
        cert: write("fullchain.pem", leaf(2200)),
        key: write("privkey.pem", key.serialize_pem()),
        other_key: write("other.pem", KeyPair::generate().unwrap().serialize_pem()),
        expired: write("expired.pem", leaf(2021)),
    }
}

fn serve_cmd(data: &Path, cert: &Path, key: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(["serve", "--listen", "127.0.0.1:0", "--without-case-recipient", "--data"])
        .arg(data)
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    c
}

/// Starts `custody serve` and reads what it printed up to its TLS line, and what it
/// warned about before (stderr goes to a file: warnings come before it listens).
fn start(data: &Path, cert: &Path, key: &Path) -> (Killed, Vec<String>, String) {
    let log = data.with_extension("stderr");
    let mut child = serve_cmd(data, cert, key)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("TLS:");
        lines.push(line);
        if done {
            break;
        }
    }
    (child, lines, std::fs::read_to_string(&log).unwrap())
}

#[test]
fn the_legal_teams_certificate_is_checked_served_and_named() {
    let env = Env::new();
    let f = files(env.dir.path());
    let data = env.dir.path().join("server");

    // A key that is not the certificate's.
    let out = serve_cmd(&data, &f.cert, &f.other_key).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("other.pem is not the private key of the certificate in"), "{err}");
    assert!(err.contains("custody: hint: give the key the certificate was issued for"), "{err}");

    // A file that cannot be read.
    let out = serve_cmd(&data, &env.dir.path().join("missing.pem"), &f.key).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("missing.pem") && err.contains("custody: hint: check the path"), "{err}");

    // Not with plain HTTP, and not one without the other.
    let out = serve_cmd(&data, &f.cert, &f.key).arg("--insecure-http").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin())
        .args(["serve", "--data"])
        .arg(&data)
        .arg("--tls-cert")
        .arg(&f.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));

    // An expired certificate: served, with a warning.
    let (child, lines, warn) = start(&data, &f.expired, &f.key);
    assert!(warn.contains("expired") && warn.contains("renew it"), "{warn}");
    assert!(lines.iter().any(|l| l.starts_with("Listening on https://")), "{lines:?}");
    drop(child);

    // The right pair: the names it covers are printed.
    let (_child, lines, warn) = start(&data, &f.cert, &f.key);
    assert!(!warn.contains("warning"), "{warn}");
    let tls = lines.last().unwrap();
    assert!(tls.contains("for legal.example, 127.0.0.1, valid until 2200-01-01"), "{tls}");
    let url = lines[0].strip_prefix("Listening on ").unwrap().to_string();

    // A link for a name the certificate does not cover is warned about; one it covers is not.
    let token = |host: &str| {
        let out = Command::new(bin())
            .args(["admin", "enroll-token", "--label", "p", "--link", host, "--json", "--data"])
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
        (v["link"].as_str().unwrap().to_string(), stderr)
    };
    let (_, warned) = token("https://other.example");
    assert!(warned.contains("covers legal.example, 127.0.0.1, not other.example"), "{warned}");
    let (_, quiet) = token("https://legal.example");
    assert!(quiet.is_empty(), "{quiet}");

    // A device that trusts the authority enrolls and checks later certificates by it.
    let (link, quiet) = token(&url);
    assert!(quiet.is_empty(), "{quiet}");
    let out = env.cmd().env("SSL_CERT_FILE", &f.ca).args(["enroll", &link, "--json"]).output();
    let e: serde_json::Value = serde_json::from_str(&ok(&out.unwrap())).unwrap();
    assert_eq!(e["tls_pin"], "webpki", "{e}");
    // Without the authority the same server is pinned by its key.
    let env2 = Env::new();
    let (link, _) = token(&url);
    let out =
        env2.cmd().env("SSL_CERT_FILE", &f.other_key).args(["enroll", &link, "--json"]).output();
    let e: serde_json::Value = serde_json::from_str(&ok(&out.unwrap())).unwrap();
    assert!(e["tls_pin"].as_str().unwrap().starts_with("spki-sha256:"), "{e}");
}
