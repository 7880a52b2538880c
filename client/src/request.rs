//! Signed device requests (`docs/api.md`, "Request signatures") and reading refusals.

use custody_format::ids::PublicKey;
use custody_format::primitives::{self, sha256};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};

use crate::error::UploadError;

/// The message a device signs for a request (`docs/api.md`, "Request signatures").
fn request_message(
    server_key: &PublicKey,
    method: &str,
    path: &str,
    ts: i64,
    nonce: &[u8; 16],
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex::encode(sha256(&[body]));
    format!("{server_key}\n{method}\n{path}\n{ts}\n{}\n{body_hash}", hex::encode(nonce))
        .into_bytes()
}

pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The device's signing identity toward one server.
#[derive(Clone, Debug)]
pub(crate) struct Signer {
    pub(crate) key: SigningKey,
    pub(crate) public: PublicKey,
    pub(crate) server_key: PublicKey,
}

impl Signer {
    /// Adds the four signature headers of `docs/api.md` to a request, with a fresh nonce
    /// and the current time.
    pub(crate) fn sign(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let ts = now_us();
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let msg = request_message(&self.server_key, method, path, ts, &nonce, body);
        let sig = primitives::sign(&self.key, primitives::DOMAIN_REQUEST_SIGNATURE, &msg);
        req.header("custody-device", self.public.to_string())
            .header("custody-timestamp", ts.to_string())
            .header("custody-nonce", hex::encode(nonce))
            .header("custody-signature", hex::encode(sig))
    }
}

/// The refusal a server answered with.
pub(crate) async fn refusal(resp: reqwest::Response) -> UploadError {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    UploadError::Refused {
        status,
        code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
        message: v["error"]["message"].as_str().unwrap_or("").to_string(),
    }
}
