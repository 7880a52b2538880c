//! Enrollment on loopback, against what a machine in the middle could change: the signed
//! case recipients and, with an enrollment link, the server key itself.

use std::time::Duration;

use custody_format::ids::PublicKey;
use custody_format::recipients::CaseRecipients;
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_protocol::{Code, EnrollLink};
use custody_vault::keys::new_recipient_identity;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;
use tokio::io::AsyncWriteExt;

/// A plain-HTTP custody server on loopback naming `recipient`: it, its data directory
/// and its URL.
async fn server(recipient: &str) -> (custody_server::Server, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = custody_server::Config::new(dir.path());
    config.recipients = vec![recipient.to_string()];
    config.insecure_http = true;
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, _task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (server, dir, format!("http://{addr}"))
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body).
async fn message<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::io::AsyncReadExt::read(r, &mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().ok()))
        .flatten()
        .unwrap_or(0);
    let mut body = buf.split_off(end);
    while body.len() < len {
        let n = tokio::io::AsyncReadExt::read(r, &mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((buf, body))
}

/// A plain-HTTP relay to `upstream` that replaces the case recipients of every enrollment
/// answer with `forged` (and the plain list beside them with its recipients), as a machine
/// in the middle choosing whom the evidence is encrypted to would. Its URL.
async fn recipients_swapping_relay(upstream: String, forged: Signed<CaseRecipients>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let forged = std::sync::Arc::new(forged);
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let (upstream, forged) = (upstream.clone(), forged.clone());
            tokio::spawn(async move {
                let Some((head, body)) = message(&mut client).await else { return };
                let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                server.write_all(&head).await.unwrap();
                server.write_all(&body).await.unwrap();
                let Some((rhead, rbody)) = message(&mut server).await else { return };
                let mut v: serde_json::Value = match serde_json::from_slice(&rbody) {
                    Ok(v) if head.starts_with(b"POST /v1/enroll ") => v,
                    _ => {
                        let _ = client.write_all(&rhead).await;
                        let _ = client.write_all(&rbody).await;
                        return;
                    }
                };
                v["case_recipients"] = hex::encode(forged.to_bytes()).into();
                v["recipients"] = serde_json::json!(forged.value().recipients);
                let body = v.to_string();
                let out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(out.as_bytes()).await;
                let _ = client.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn token(dir: &std::path::Path) -> String {
    custody_server::issue_token(dir, "observer", Duration::from_secs(60)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_recipients_signed_by_another_key_are_refused_and_nothing_is_saved() {
    let (_identity, recipient) = new_recipient_identity();
    let (srv, sdir, url) = server(&recipient).await;
    let (_, attacker_recipient) = new_recipient_identity();
    let attacker = testkit::key("attacker");
    // Naming the real server, but signed by another key.
    let forged = Signed::sign(
        CaseRecipients { server_key: srv.public_key(), recipients: vec![attacker_recipient] },
        &attacker,
    );
    let relay =
        recipients_swapping_relay(url.trim_start_matches("http://").to_string(), forged).await;
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let before = vault.config().unwrap().recipients;
    let key = SigningKey::from_bytes(&[3; 32]);
    let err = custody_client::enroll(&vault, &key, &relay, &token(sdir.path())).await.unwrap_err();
    assert!(
        matches!(&err, custody_client::UploadError::BadAnswer(m) if m.contains("case_recipients")),
        "{err}"
    );
    assert!(custody_client::Enrollment::load(vdir.path()).unwrap().is_none(), "nothing pinned");
    assert_eq!(vault.config().unwrap().recipients, before, "the recipients are unchanged");

    // The same relay with recipients the server really signed passes (the check is not
    // refusing everything), and the device then encrypts to the server's list.
    let genuine = srv.case_recipients();
    let relay =
        recipients_swapping_relay(url.trim_start_matches("http://").to_string(), genuine).await;
    let e = custody_client::enroll(&vault, &key, &relay, &token(sdir.path())).await.unwrap();
    assert_eq!(e.recipients, vec![recipient.clone()]);
    assert_eq!(vault.config().unwrap().recipients, vec![recipient]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_naming_another_server_key_is_refused_before_the_token_is_sent() {
    let (_identity, recipient) = new_recipient_identity();
    let (srv, sdir, url) = server(&recipient).await;
    let t = token(sdir.path());
    let t_bytes: [u8; 32] = hex::decode(&t).unwrap().try_into().unwrap();
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[4; 32]);
    let other: PublicKey = testkit::public("some other server");
    let wrong = EnrollLink::new(&url, t_bytes, &other);
    let err = custody_client::enroll_link(&vault, &key, &wrong).await.unwrap_err();
    match &err {
        custody_client::UploadError::WrongServer { expected, found } => {
            assert_eq!(expected, &other.fingerprint().to_string());
            assert_eq!(found, &srv.public_key().fingerprint().to_string());
        }
        e => panic!("not WrongServer: {e}"),
    }
    assert!(custody_client::Enrollment::load(vdir.path()).unwrap().is_none());
    // The token was never sent: the right link still enrolls with it, and only once.
    let right =
        EnrollLink::parse(&EnrollLink::new(&url, t_bytes, &srv.public_key()).to_string()).unwrap();
    let e = custody_client::enroll_link(&vault, &key, &right).await.unwrap();
    assert_eq!(e.server_key, srv.public_key().to_string());
    let again = custody_client::enroll_link(&vault, &key, &right).await.unwrap_err();
    assert_eq!(again.code(), Some(Code::EnrollTokenUsed), "{again}");
}
