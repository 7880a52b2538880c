//! The test TSA against OpenSSL's own verifier, and its HTTP front over real loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use custody_testkit::{token_of_reply, Ess, Mode, Pki, TsaServer, Variant};

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| Pki::new().unwrap())
}

/// `openssl ts -verify` of a reply against the query and a root: `true` when it verifies.
fn openssl_verifies(query: &[u8], reply: &[u8], root_pem: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q"), query).unwrap();
    std::fs::write(dir.path().join("r"), reply).unwrap();
    std::fs::write(dir.path().join("root"), root_pem).unwrap();
    Command::new("openssl")
        .args(["ts", "-verify", "-queryfile", "q", "-in", "r", "-CAfile", "root"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn good_and_intermediate_tokens_verify_with_openssl_and_the_broken_ones_do_not() {
    let pki = pki();
    let root = pki.root_pem().unwrap();
    let digest = [7u8; 32];
    for (variant, ok) in [
        (Variant::Good, true),
        (Variant::Intermediate, true),
        (Variant::GoodTwin, true),
        (Variant::Untrusted, false),
        (Variant::Expired, false),
        (Variant::NoEku, false),
    ] {
        let tsa = pki.tsa(variant);
        let query = tsa.query(&digest).unwrap();
        let reply = tsa.reply(&query).unwrap();
        assert_eq!(openssl_verifies(&query, &reply, &root), ok, "{variant:?}");
        // A token was made all the same, and it is a CMS ContentInfo.
        let token = token_of_reply(&reply).unwrap();
        assert_eq!(token[0], 0x30, "{variant:?}");
    }
    let other = pki.other_root_pem().unwrap();
    let tsa = pki.tsa(Variant::Untrusted);
    let query = tsa.query(&digest).unwrap();
    assert!(openssl_verifies(&query, &tsa.reply(&query).unwrap(), &other));
}

#[test]
fn a_token_is_over_the_imprint_asked_for_with_the_ess_version_asked_for() {
    let pki = pki();
    let digest = [0xabu8; 32];
    for ess in [Ess::V1Sha1, Ess::V2Sha256] {
        let tsa = pki.tsa(Variant::Good).with_ess(ess);
        let query = tsa.query(&digest).unwrap();
        let reply = tsa.reply(&query).unwrap();
        assert!(openssl_verifies(&query, &reply, &pki.root_pem().unwrap()));
        let token = token_of_reply(&reply).unwrap();
        assert!(token.windows(32).any(|w| w == digest));
        // id-aa-signingCertificate (…9.16.2.12) or id-aa-signingCertificateV2 (…9.16.2.47).
        let oid_tail: &[u8] = match ess {
            Ess::V1Sha1 => &[0x09, 0x10, 0x02, 0x0c],
            Ess::V2Sha256 => &[0x09, 0x10, 0x02, 0x2f],
        };
        assert!(token.windows(4).any(|w| w == oid_tail), "{ess:?}");
        // Another imprint: the query no longer matches this reply.
        let other = tsa.query(&[0u8; 32]).unwrap();
        assert!(!openssl_verifies(&other, &reply, &pki.root_pem().unwrap()));
    }
}

/// One HTTP/1.1 POST by hand: the status code and the body, or `None` when the server
/// closed the connection without answering.
fn post(url_addr: std::net::SocketAddr, kind: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(url_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: tsa\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The server may have closed already (Mode::Down): a write error is an answer too.
    if s.write_all(head.as_bytes()).and_then(|()| s.write_all(body)).is_err() {
        return None;
    }
    let mut all = Vec::new();
    if s.read_to_end(&mut all).is_err() || all.is_empty() {
        return None;
    }
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Some((status, all[split + 4..].to_vec()))
}

#[test]
fn the_http_front_answers_refuses_and_comes_back() {
    let pki = pki();
    let tsa = pki.tsa(Variant::Good);
    let server = TsaServer::start(tsa.clone()).unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let query = tsa.query(&[1u8; 32]).unwrap();

    let (status, body) = post(server.addr(), "application/timestamp-query", &query).unwrap();
    assert_eq!(status, 200);
    assert!(openssl_verifies(&query, &body, &pki.root_pem().unwrap()));
    assert_eq!(server.granted(), 1);

    let (status, _) = post(server.addr(), "text/plain", &query).unwrap();
    assert_eq!(status, 415);

    server.set_mode(Mode::Unavailable);
    let (status, _) = post(server.addr(), "application/timestamp-query", &query).unwrap();
    assert_eq!(status, 503);

    server.set_mode(Mode::Down);
    assert_eq!(post(server.addr(), "application/timestamp-query", &query), None);

    server.set_mode(Mode::Up);
    let (status, _) = post(server.addr(), "application/timestamp-query", &query).unwrap();
    assert_eq!(status, 200);
    assert_eq!(server.granted(), 2);
    assert_eq!(server.connections(), 5);
}
