//! Enrollment: one-time, expiring tokens, and the device's proof that it holds its key.
//!
//! The legal team issues a token (`issue_token`, behind `custody admin enroll-token`); only
//! its SHA-256 is stored, so a copy of the data directory does not hand out enrollments.
//!
//! ```text
//! <data>/tokens/<sha256(token) hex>.json   {"label", "issued_at_us", "expires_at_us"}
//! <data>/tokens/<sha256(token) hex>.used   the enrolled device's key, written durably on use
//! ```
//!
//! The device sends its key and an Ed25519 signature, under
//! `custody/v1/enrollment-signature\0`, over `SHA-256(token) || device_key`: it proves
//! possession of the key and binds it to this one token, so the proof cannot be replayed
//! with another token. A token used again, or after it expired, is refused and the refusal
//! is logged (`EnrollmentRefused`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_durable::fsutil::write_durable;
use custody_format::ids::PublicKey;
use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::{self, sha256, DOMAIN_ENROLLMENT_SIGNATURE};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Code};
use crate::server::{lock, Device, Server};

/// A stored token (by hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TokenFile {
    label: String,
    issued_at_us: i64,
    expires_at_us: i64,
}

/// Failures issuing a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The label is empty or too long.
    #[error("a device label must be 1 to 200 characters")]
    BadLabel,
}

/// Issues a one-time enrollment token for a device to be labelled `label`, valid for
/// `ttl`. Returns the token (64 hex digits), which is shown once and stored only hashed.
/// Works on the data directory, so an admin command can run beside the server.
pub fn issue_token(data_dir: &Path, label: &str, ttl: Duration) -> Result<String, TokenError> {
    if label.is_empty() || label.len() > 200 {
        return Err(TokenError::BadLabel);
    }
    let mut token = [0u8; 32];
    OsRng.fill_bytes(&mut token);
    let dir = data_dir.join("tokens");
    std::fs::create_dir_all(&dir).map_err(|source| TokenError::Io { path: dir.clone(), source })?;
    let now = crate::now_us();
    let file = TokenFile {
        label: label.to_string(),
        issued_at_us: now,
        expires_at_us: now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)),
    };
    let path = dir.join(format!("{}.json", hex::encode(sha256(&[&token]))));
    let bytes = serde_json::to_vec(&file).unwrap_or_default();
    write_durable(&path, &bytes, true).map_err(|source| TokenError::Io { path, source })?;
    Ok(hex::encode(token))
}

/// The message a device signs to enroll: `SHA-256(token) || device_key`.
pub fn enrollment_message(token: &[u8; 32], device_key: &PublicKey) -> Vec<u8> {
    let mut m = sha256(&[token]).to_vec();
    m.extend_from_slice(&device_key.to_bytes());
    m
}

/// An enrollment request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token, 64 hex digits.
    pub token: String,
    /// The device key, `ed25519:<hex>`.
    pub device_key: String,
    /// The proof of possession, 128 hex digits.
    pub signature: String,
}

/// The answer to a successful enrollment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// The signed device certificate, hex of its bytes and signature.
    pub certificate: String,
    /// The server's key, `ed25519:<hex>`.
    pub server_key: String,
    /// SHA-256 of the server's TLS certificate, hex; `null` when serving plain HTTP.
    pub tls_sha256: Option<String>,
    /// The age recipients (`age1…`) the device must encrypt every segment to.
    pub recipients: Vec<String>,
    /// The label the legal team gave the device.
    pub label: String,
}

fn malformed(what: &str) -> ApiError {
    ApiError::new(Code::EnrollMalformed, what.to_string())
}

impl Server {
    /// Enrolls a device for a request from `peer`: as [`Self::enroll`], but an address that
    /// keeps failing (wrong, spent or expired tokens, bad proofs, malformed requests) is
    /// refused with `auth.rate_limited` for a while, as failed logins are. Tokens cannot be
    /// guessed, but each refusal of a spent or expired one is written to the custody log, and
    /// a seized phone's spent token must not be able to fill it.
    /// `req` is the request, or why it could not be read as one.
    pub fn enroll_from(
        &self,
        req: Result<EnrollRequest, ApiError>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<EnrollResponse, ApiError> {
        let addr = peer.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if self.address_limited(addr) {
            return Err(ApiError::new(
                Code::AuthRateLimited,
                format!(
                    "too many failed enrollments or logins from this address; retry in {} s",
                    crate::members::FAILURE_WINDOW_US / 1_000_000
                ),
            ));
        }
        let result = req.and_then(|req| self.enroll(&req));
        if let Err(e) = &result {
            if matches!(
                e.code,
                Code::EnrollMalformed
                    | Code::EnrollTokenUnknown
                    | Code::EnrollTokenUsed
                    | Code::EnrollTokenExpired
                    | Code::EnrollProof
            ) {
                self.address_failed(addr);
            }
        }
        result
    }

    /// Enrolls a device. Blocking (reads and writes token files, appends to the log).
    pub fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ApiError> {
        let token: [u8; 32] = hex::decode(&req.token)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("token must be 64 hex digits"))?;
        let device = PublicKey::parse(&req.device_key)
            .map_err(|e| malformed(&format!("device_key is not a valid key: {e}")))?;
        let signature: [u8; 64] = hex::decode(&req.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("signature must be 128 hex digits"))?;

        let dir = self.inner.config.data_dir.join("tokens");
        let hash_hex = hex::encode(sha256(&[&token]));
        let token_path = dir.join(format!("{hash_hex}.json"));
        let used_path = dir.join(format!("{hash_hex}.used"));
        // One enrollment at a time, so a token cannot be spent twice by racing requests.
        let _held = lock(&self.inner.token_lock);
        let file: TokenFile = match std::fs::read(&token_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| ApiError::internal("reading a token file", e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::new(
                    Code::EnrollTokenUnknown,
                    "this server did not issue that token",
                ))
            }
            Err(e) => return Err(ApiError::internal("reading a token file", e)),
        };
        let now = crate::now_us();
        let refused = |code: Code, detail: &str| -> ApiError {
            let mut e = LogEntry::new(EntryType::EnrollmentRefused, now);
            e.label = Some(file.label.clone());
            e.detail = Some(detail.to_string());
            if let Err(err) = self.append_log(&e) {
                return ApiError::internal("logging a refused enrollment", err);
            }
            ApiError::new(code, format!("{detail}; ask the legal team for a new token"))
        };
        if used_path.exists() {
            return Err(refused(Code::EnrollTokenUsed, "the token was already used"));
        }
        if now > file.expires_at_us {
            return Err(refused(Code::EnrollTokenExpired, "the token has expired"));
        }
        let msg = enrollment_message(&token, &device);
        if !primitives::verify(
            device.verifying_key(),
            DOMAIN_ENROLLMENT_SIGNATURE,
            &msg,
            &signature,
        ) {
            // Not spent: the token's holder may still enroll with a correct proof.
            return Err(ApiError::new(
                Code::EnrollProof,
                "the proof of possession does not verify with device_key",
            ));
        }
        write_durable(&used_path, format!("{device}\n").as_bytes(), true)
            .map_err(|e| ApiError::internal("spending the token", e))?;
        let mut entry = LogEntry::new(EntryType::DeviceEnrolled, now);
        entry.device_key = Some(device);
        entry.label = Some(file.label.clone());
        self.append_log(&entry).map_err(|e| ApiError::internal("logging the enrollment", e))?;
        let dev = Device { label: file.label.clone(), enrolled_at_us: now, revoked: false };
        self.inner
            .devices
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device.to_bytes(), dev.clone());
        let cert = self.certificate(&device, &dev);
        Ok(EnrollResponse {
            certificate: hex::encode(cert.to_bytes()),
            server_key: self.public_key().to_string(),
            tls_sha256: (!self.inner.config.insecure_http).then(|| self.tls_sha256()),
            recipients: self.inner.recipients.clone(),
            label: file.label,
        })
    }
}
