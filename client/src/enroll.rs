//! Enrollment: the device proves it holds its key and spends a one-time token; the server
//! answers with the device's certificate, its own key, its TLS pin and the case's
//! recipients, which the vault keeps ([`custody_vault::outbox::Enrollment`]).

use std::time::Duration;

use custody_format::cert::DeviceCertificate;
use custody_format::ids::PublicKey;
use custody_format::primitives::{self, sha256};
use custody_format::signed::Signed;
use custody_vault::outbox::Enrollment;
use custody_vault::store::{Config, Vault};
use ed25519_dalek::SigningKey;

use crate::error::{with_causes, UploadError};
use crate::request::refusal;
use crate::tls;

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
        tls::pinned_client(None, Duration::from_secs(30)).map_err(UploadError::Network)?;
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
    tls::check_first_contact(&url, tls_sha256.as_deref(), &seen).map_err(bad)?;
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
