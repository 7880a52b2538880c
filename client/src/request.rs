//! Signed device requests (`docs/api.md`, "Request signatures") and reading answers and
//! refusals. The message signed, its headers and the refusal body are
//! `custody-protocol`'s; this module only sends them.

use custody_format::ids::PublicKey;
use custody_protocol::{Refusal, SignedHeaders};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use serde::de::DeserializeOwned;

use crate::error::{with_causes, UploadError};

pub(crate) use custody_format::time::now_us;

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
        mut req: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let headers =
            SignedHeaders::sign(&self.key, &self.server_key, method, path, now_us(), nonce, body);
        for (name, value) in headers.to_pairs() {
            req = req.header(name, value);
        }
        req
    }
}

/// The refusal a server answered with. An answer that is not a refusal body (a proxy's
/// error page) keeps its status, with the code `unknown`.
pub(crate) async fn refusal(resp: reqwest::Response) -> UploadError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let refusal = Refusal::from_body(&body)
        .unwrap_or_else(|| Refusal { code: "unknown".into(), message: String::new() });
    UploadError::Refused { status, refusal }
}

/// Sends `req` and reads its JSON answer as `T`; a refusal or an unreachable server is the
/// error that says so.
pub(crate) async fn json_answer<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, UploadError> {
    let resp = req.send().await.map_err(|e| UploadError::Network(with_causes(&e)))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let bytes = resp.bytes().await.map_err(|e| UploadError::Network(with_causes(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| UploadError::BadAnswer(e.to_string()))
}
