//! The protocol's test vectors in `tests/vectors/protocol/`: made by `generate()` below
//! from fixed seeds (`custody_format::testkit`), and checked by one driver,
//! `every_protocol_vector_holds`, that reads only the files, so that a client in another
//! language can check itself against the same files.
//!
//! Regenerate after a deliberate protocol change with:
//!
//! ```text
//! CUSTODY_REGENERATE_VECTORS=1 cargo test -p custody-protocol --test vectors
//! ```
//!
//! The file format is the one of `tests/vectors/` (`docs/format.md`, "Test vectors"):
//! UTF-8 lines `key: value`; `comment:` says what the vector is for, `kind:` what to check,
//! `expect:` the outcome; binary values are lowercase hex (long ones continue on further
//! lines with the same key, to be concatenated); `json:` values are one line of JSON.
//! Secret keys (`device-secret`, `server-secret`) are RFC 8032 secrets, given so that an
//! implementation can reproduce the signatures, which are deterministic.

use std::collections::BTreeMap;
use std::path::PathBuf;

use custody_format::cert::DeviceCertificate;
use custody_format::ids::PublicKey;
use custody_format::primitives::sha256;
use custody_format::receipt::Receipt;
use custody_format::recipients::CaseRecipients;
use custody_format::record::SignedRecord;
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_protocol::body::{enrollment_message, EnrollAnswer, EnrollRequest};
use custody_protocol::link::{EnrollLink, LinkError};
use custody_protocol::request::{request_message, SignedHeaders};
use ed25519_dalek::SigningKey;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/protocol")
}

struct Vector {
    comment: &'static str,
    kind: &'static str,
    expect: String,
    fields: Vec<(&'static str, String)>,
}

impl Vector {
    fn new(kind: &'static str, comment: &'static str, expect: impl Into<String>) -> Self {
        Vector { comment, kind, expect: expect.into(), fields: Vec::new() }
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((key, value.into()));
        self
    }

    fn hex(self, key: &'static str, bytes: &[u8]) -> Self {
        self.with(key, hex::encode(bytes))
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for line in self.comment.lines() {
            out.push_str(&format!("comment: {}\n", line.trim()));
        }
        out.push_str(&format!("kind: {}\nexpect: {}\n", self.kind, self.expect));
        for (k, v) in &self.fields {
            if v.len() > 128 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                for chunk in v.as_bytes().chunks(128) {
                    out.push_str(&format!("{k}: {}\n", std::str::from_utf8(chunk).unwrap()));
                }
            } else {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out
    }
}

const NONCE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn request_vector(
    comment: &'static str,
    expect: &str,
    method: &str,
    path: &str,
    body: &[u8],
    signed_for: &PublicKey,
) -> Vector {
    let device = testkit::key("device");
    let server = testkit::public("server");
    let ts = testkit::T0_US;
    let msg = request_message(&server, method, path, ts, &NONCE, &sha256(&[body]));
    let h = SignedHeaders::sign(&device, signed_for, method, path, ts, NONCE, body);
    let mut v = Vector::new("request-signature", comment, expect)
        .hex("device-secret", device.as_bytes())
        .with("server-key", server.to_string())
        .with("method", method)
        .with("path", path)
        .hex("body", body)
        .hex("body-sha256", &sha256(&[body]))
        .hex("message", &msg);
    for (name, value) in h.to_pairs() {
        v = v.with(name, value);
    }
    v
}

fn enroll_answer(recipients_signer: &SigningKey) -> EnrollAnswer {
    let server = testkit::key("server");
    let cert = Signed::sign(
        DeviceCertificate {
            device_key: testkit::public("device"),
            label: "observer-7".into(),
            enrolled_at_us: testkit::T0_US,
            server_key: testkit::public("server"),
        },
        &server,
    );
    let recipients = vec!["age1examplerecipient".to_string()];
    let case = Signed::sign(
        CaseRecipients { server_key: testkit::public("server"), recipients: recipients.clone() },
        recipients_signer,
    );
    EnrollAnswer {
        certificate: hex::encode(cert.to_bytes()),
        server_key: testkit::public("server").to_string(),
        tls_sha256: Some(hex::encode(sha256(&[b"example TLS certificate"]))),
        recipients,
        case_recipients: hex::encode(case.to_bytes()),
        label: "observer-7".into(),
    }
}

fn generate() -> Vec<(String, Vector)> {
    let mut v = Vec::new();
    let server = testkit::public("server");
    let header = &testkit::recording(1, "device", 1, false).unwrap()[0];
    let put_path = format!("/v1/recordings/{}/records/0", header.record().recording_id());

    v.push((
        "request-put-header".into(),
        request_vector(
            "A device's signed PUT of a recording header (the body is the signed record).\nmessage is the text signed after the domain string custody/v1/request-signature\\0.",
            "ok",
            "PUT",
            &put_path,
            &header.to_bytes(),
            &server,
        ),
    ));
    v.push((
        "request-get-log-head".into(),
        request_vector(
            "A signed GET with an empty body: body-sha256 is the SHA-256 of nothing.",
            "ok",
            "GET",
            "/v1/log/head",
            b"",
            &server,
        ),
    ));
    v.push((
        "request-other-server".into(),
        request_vector(
            "The same GET signed for another server's key: this server refuses it.",
            "failure: auth.signature",
            "GET",
            "/v1/log/head",
            b"",
            &testkit::public("other"),
        ),
    ));

    let token = sha256(&[b"custody/testkit/token\0"]);
    let device = testkit::key("device");
    let req = EnrollRequest::sign(&device, &token);
    v.push((
        "enroll-request".into(),
        Vector::new("enroll-request", 
            "An enrollment request: the proof of possession signs, after the domain string\ncustody/v1/enrollment-signature\\0, message = SHA-256(token) || device key.",
            "ok",
        )
        .hex("device-secret", device.as_bytes())
        .hex("token", &token)
        .hex("message", &enrollment_message(&token, &testkit::public("device")))
        .with("json", serde_json::to_string(&req).unwrap()),
    ));
    v.push((
        "enroll-answer".into(),
        Vector::new("enroll-answer", 
            "An enrollment answer: the certificate and the case recipients verify with server_key,\nname the device and the server, and the recipients are the signed ones.",
            "ok",
        )
        .with("device-key", testkit::public("device").to_string())
        .with("json", serde_json::to_string(&enroll_answer(&testkit::key("server"))).unwrap()),
    ));
    v.push((
        "enroll-answer-recipients-forged".into(),
        Vector::new(
            "enroll-answer",
            "An enrollment answer whose case recipients were signed by another key: refused.",
            "failure: case_recipients",
        )
        .with("device-key", testkit::public("device").to_string())
        .with("json", serde_json::to_string(&enroll_answer(&testkit::key("other"))).unwrap()),
    ));

    let r = Receipt {
        recording_id: header.record().recording_id(),
        seq: 0,
        record_hash: header.hash(),
        ciphertext_sha256: None,
        device_key: testkit::public("device"),
        received_at_us: testkit::T0_US + 120_000,
        log_index: 1,
        tree_size: 2,
        tree_root: [0x11; 32],
    };
    let receipt = Signed::sign(r, &testkit::key("server"));
    v.push((
        "ingest-receipt".into(),
        Vector::new("ingest-receipt", 
            "The answer (200, application/octet-stream) to the PUT of request-put-header: a receipt\nsigned by the server for that very record (its record hash, position and device).",
            "ok",
        )
        .with("server-key", server.to_string())
        .with("path", put_path.clone())
        .hex("body", &header.to_bytes())
        .hex("answer", &receipt.to_bytes()),
    ));

    let case = Signed::sign(
        CaseRecipients {
            server_key: server,
            recipients: vec!["age1examplerecipient".into(), "age1secondrecipient".into()],
        },
        &testkit::key("server"),
    );
    v.push((
        "case-recipients".into(),
        Vector::new(
            "case-recipients",
            "Signed case recipients (kind 21, domain custody/v1/case-recipients-signature\\0).",
            "ok",
        )
        .with("server-key", server.to_string())
        .with("recipient", "age1examplerecipient")
        .with("recipient", "age1secondrecipient")
        .hex("data", &case.to_bytes()),
    ));

    let link = EnrollLink::new("https://custody.example:8443", token, &server);
    v.push((
        "enroll-link".into(),
        Vector::new("enroll-link", 
            "An enrollment link: the server URL before /enroll, token and server fingerprint in the fragment.",
            "ok",
        )
        .with("link", link.to_string())
        .with("server", link.server.clone())
        .hex("token", &token)
        .with("fp", server.fingerprint().to_string()),
    ));
    let no_fp = format!("https://custody.example:8443/enroll#token={}", hex::encode(token));
    v.push((
        "enroll-link-no-fingerprint".into(),
        Vector::new("enroll-link", 
            "A link without the server fingerprint: refused (the device could not check the server).",
            "error: fragment",
        )
        .with("link", no_fp),
    ));
    let plain = link.to_string().replace("/enroll#", "/#");
    v.push((
        "enroll-link-wrong-path".into(),
        Vector::new(
            "enroll-link",
            "A link whose address does not end in /enroll: refused.",
            "error: path",
        )
        .with("link", plain),
    ));
    v
}

/// A parsed vector file.
struct File {
    kind: String,
    expect: String,
    values: BTreeMap<String, Vec<String>>,
}

impl File {
    fn parse(text: &str) -> File {
        let mut f = File { kind: String::new(), expect: String::new(), values: BTreeMap::new() };
        for line in text.lines() {
            let (k, v) = line.split_once(": ").unwrap_or_else(|| {
                line.strip_suffix(':')
                    .map(|k| (k, ""))
                    .unwrap_or_else(|| panic!("bad line {line:?}"))
            });
            match k {
                "comment" => {}
                "kind" => f.kind = v.into(),
                "expect" => f.expect = v.into(),
                _ => f.values.entry(k.into()).or_default().push(v.into()),
            }
        }
        f
    }

    fn all(&self, k: &str) -> &[String] {
        self.values.get(k).map_or(&[], |v| v.as_slice())
    }

    fn one(&self, k: &str) -> &str {
        &self.all(k)[0]
    }

    fn bytes(&self, k: &str) -> Vec<u8> {
        hex::decode(self.all(k).concat()).unwrap()
    }

    fn key(&self, k: &str) -> PublicKey {
        PublicKey::parse(self.one(k)).unwrap()
    }

    fn secret(&self, k: &str) -> SigningKey {
        SigningKey::from_bytes(&self.bytes(k).try_into().unwrap())
    }
}

fn run(f: &File) -> String {
    match f.kind.as_str() {
        "request-signature" => {
            let body = f.bytes("body");
            assert_eq!(f.bytes("body-sha256"), sha256(&[&body]), "body-sha256");
            let h = match SignedHeaders::parse(
                Some(f.one("custody-device").as_bytes()),
                Some(f.one("custody-timestamp").as_bytes()),
                Some(f.one("custody-nonce").as_bytes()),
                Some(f.one("custody-signature").as_bytes()),
            ) {
                Ok(h) => h,
                Err(e) => return format!("failure: {}", e.code()),
            };
            let server = f.key("server-key");
            let (method, path) = (f.one("method"), f.one("path"));
            let msg =
                request_message(&server, method, path, h.timestamp_us, &h.nonce, &sha256(&[&body]));
            assert_eq!(msg, f.bytes("message"), "message");
            assert_eq!(h.device, PublicKey::from(f.secret("device-secret").verifying_key()));
            if h.verify(&server, method, path, &sha256(&[&body])) {
                "ok".into()
            } else {
                "failure: auth.signature".into()
            }
        }
        "enroll-request" => {
            let req: EnrollRequest = serde_json::from_str(f.one("json")).unwrap();
            let claim = req.claim().unwrap();
            let token: [u8; 32] = f.bytes("token").try_into().unwrap();
            assert_eq!(claim.token, token);
            assert_eq!(enrollment_message(&token, &claim.device_key), f.bytes("message"));
            assert_eq!(EnrollRequest::sign(&f.secret("device-secret"), &token), req);
            if claim.proof_verifies() {
                "ok".into()
            } else {
                "failure: enroll.proof".into()
            }
        }
        "enroll-answer" => {
            let a: EnrollAnswer = serde_json::from_str(f.one("json")).unwrap();
            let server = a.server_key().unwrap();
            let cert = a.certificate().unwrap();
            if !cert.verify(&server)
                || cert.value().device_key != f.key("device-key")
                || cert.value().server_key != server
            {
                return "failure: certificate".into();
            }
            match a.case_recipients(&server) {
                Ok(c) if c.value().recipients == a.recipients => "ok".into(),
                Ok(_) => "failure: recipients differ".into(),
                Err(_) => "failure: case_recipients".into(),
            }
        }
        "ingest-receipt" => {
            let record = SignedRecord::parse(&f.bytes("body")).unwrap();
            let r = Signed::<Receipt>::parse(&f.bytes("answer")).unwrap();
            let rec = record.record();
            let path = format!("/v1/recordings/{}/records/{}", rec.recording_id(), rec.seq());
            assert_eq!(path, f.one("path"));
            if !r.verify(&f.key("server-key")) {
                return "failure: receipt.signature".into();
            }
            let v = r.value();
            if v.record_hash != record.hash()
                || v.seq != rec.seq()
                || v.recording_id != rec.recording_id()
            {
                return "failure: receipt names another record".into();
            }
            "ok".into()
        }
        "case-recipients" => match Signed::<CaseRecipients>::parse(&f.bytes("data")) {
            Err(e) => format!("error: {}", e.code()),
            Ok(c) if !c.verify(&f.key("server-key")) => "failure: signature".into(),
            Ok(c) => {
                assert_eq!(c.value().recipients, f.all("recipient"));
                assert_eq!(c.value().server_key, f.key("server-key"));
                "ok".into()
            }
        },
        "enroll-link" => match EnrollLink::parse(f.one("link")) {
            Ok(l) => {
                assert_eq!(l.server, f.one("server"));
                assert_eq!(l.token.to_vec(), f.bytes("token"));
                assert_eq!(l.fingerprint.to_string(), f.one("fp"));
                assert_eq!(l.to_string(), f.one("link"));
                "ok".into()
            }
            Err(e) => format!(
                "error: {}",
                match e {
                    LinkError::Scheme => "scheme",
                    LinkError::Path => "path",
                    LinkError::Fragment(_) => "fragment",
                    LinkError::Token => "token",
                    LinkError::Fingerprint => "fingerprint",
                    _ => "other",
                }
            ),
        },
        other => panic!("unknown vector kind {other}"),
    }
}

#[test]
fn the_protocol_vector_files_are_what_this_crate_generates() {
    let regenerate = std::env::var_os("CUSTODY_REGENERATE_VECTORS").is_some();
    let generated = generate();
    if regenerate {
        std::fs::create_dir_all(dir()).unwrap();
    }
    let mut names = std::collections::BTreeSet::new();
    for (name, vector) in &generated {
        assert!(names.insert(name.clone()), "vector name {name} used twice");
        let path = dir().join(format!("{name}.txt"));
        let text = vector.render();
        if regenerate {
            std::fs::write(&path, text).unwrap();
        } else {
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; regenerate the vectors", path.display()));
            assert_eq!(on_disk, text, "{name} differs from what this crate generates");
        }
    }
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".txt") {
            assert!(names.contains(stem), "{name} is not generated any more");
        }
    }
}

#[test]
fn every_protocol_vector_holds() {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    let mut count = 0;
    for path in entries {
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let file = File::parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(run(&file), file.expect, "{}", path.display());
        count += 1;
    }
    assert!(count >= 11, "only {count} vectors");
}
