//! Enrollment: the device proves it holds its key and spends a one-time token; the server
//! answers with the device's certificate, its own key, its TLS pin and the case's signed
//! recipients, which the vault keeps ([`custody_vault::outbox::Enrollment`]).
//!
//! Everything in the answer is checked against the server key before anything is saved:
//! the certificate must be signed by it and name this device, the case recipients must be
//! signed by it (a machine in the middle cannot choose whom the evidence is encrypted to),
//! and, with an enrollment link, the key itself must have the link's fingerprint.

use std::time::Duration;

use custody_format::ids::{Fingerprint, PublicKey};
use custody_protocol::body::{EnrollAnswer, EnrollRequest, ServerInfo};
use custody_protocol::EnrollLink;
use custody_vault::outbox::Enrollment;
use custody_vault::store::{Config, Vault};
use ed25519_dalek::SigningKey;

use crate::error::UploadError;
use crate::request::json_answer;
use crate::tls;

/// Enrolls this vault's device key with the server at `url` using a one-time `token`,
/// saves the enrollment (pinning the server's key, and its TLS certificate's key or, for a
/// publicly trusted certificate, the certificate authorities: [`tls::first_contact_pin`])
/// and makes the
/// server's signed case recipients the vault's recipients. A plain `http://` URL is
/// accepted only because the caller typed it (loopback tests); the answer must then carry
/// no pin.
pub async fn enroll(
    vault: &Vault,
    device_key: &SigningKey,
    url: &str,
    token: &str,
) -> Result<Enrollment, UploadError> {
    let token: [u8; 32] = hex::decode(token.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| UploadError::BadAnswer("the token must be 64 hex digits".into()))?;
    enroll_with(vault, device_key, url, &token, None).await
}

/// Enrolls with an enrollment link (`docs/api.md`, "Enrollment links"): as [`enroll`], and
/// the server's key must have the link's fingerprint. The key is asked for first
/// (`GET /v1/server`), so a server with another key is refused before the token is sent;
/// the enrollment answer is held to the same fingerprint.
pub async fn enroll_link(
    vault: &Vault,
    device_key: &SigningKey,
    link: &EnrollLink,
) -> Result<Enrollment, UploadError> {
    enroll_with(vault, device_key, &link.server, &link.token, Some(&link.fingerprint)).await
}

fn wrong_server(expected: &Fingerprint, found: &PublicKey) -> UploadError {
    UploadError::WrongServer {
        expected: expected.to_string(),
        found: found.fingerprint().to_string(),
    }
}

async fn enroll_with(
    vault: &Vault,
    device_key: &SigningKey,
    url: &str,
    token: &[u8; 32],
    expect: Option<&Fingerprint>,
) -> Result<Enrollment, UploadError> {
    let url = url.trim_end_matches('/').to_string();
    let public = PublicKey::from(device_key.verifying_key());
    let (client, seen) =
        tls::pinned_client(None, Duration::from_secs(30)).map_err(UploadError::Network)?;
    let bad = |what: String| UploadError::BadAnswer(format!("the enrollment answer: {what}"));
    if let Some(fp) = expect {
        let info: ServerInfo = json_answer(client.get(format!("{url}/v1/server"))).await?;
        let key = PublicKey::parse(&info.server_key)
            .map_err(|e| UploadError::BadAnswer(format!("the server's key: {e}")))?;
        if key.fingerprint() != *fp {
            return Err(wrong_server(fp, &key));
        }
    }
    let body = EnrollRequest::sign(device_key, token);
    let answer: EnrollAnswer =
        json_answer(client.post(format!("{url}/v1/enroll")).json(&body)).await?;
    let server_key = answer.server_key().map_err(|e| bad(e.to_string()))?;
    if let Some(fp) = expect.filter(|fp| server_key.fingerprint() != **fp) {
        return Err(wrong_server(fp, &server_key));
    }
    let cert = answer.certificate().map_err(|e| bad(e.to_string()))?;
    if !cert.verify(&server_key)
        || cert.value().device_key != public
        || cert.value().server_key != server_key
    {
        return Err(bad("the certificate is not the server's, for this device".into()));
    }
    let pin = tls::first_contact_pin(&url, answer.tls_sha256.as_deref(), &seen)
        .map_err(|e| bad(e.into()))?;
    // The recipients the device encrypts to are the ones the server signed, not the plain
    // list beside them.
    let case = answer.case_recipients(&server_key).map_err(|e| bad(e.to_string()))?;
    let recipients = case.value().recipients.clone();
    let enrollment = Enrollment {
        url,
        server_key: server_key.to_string(),
        tls_sha256: answer.tls_sha256.clone(),
        tls_pin: pin.and_then(|p| p.to_stored()),
        certificate: answer.certificate.clone(),
        label: cert.value().label.clone(),
        recipients: recipients.clone(),
        case_recipients: Some(hex::encode(case.to_bytes())),
    };
    enrollment.save(vault.dir())?;
    if !recipients.is_empty() {
        vault.set_config(&Config { recipients })?;
    }
    Ok(enrollment)
}
