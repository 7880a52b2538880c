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

use std::path::Path;
use std::time::Duration;

use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::sha256;
use custody_format::recipients::CaseRecipients;
use custody_format::signed::Signed;
use custody_protocol::body::BodyError;
use rand_core::{OsRng, RngCore};

use crate::error::{ApiError, Code};
use crate::server::{lock, Device, Server};
use crate::store::{block_on, TokenRecord, TokenStore};

/// Failures issuing a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The label is empty or too long.
    #[error("a device label must be 1 to 200 characters")]
    BadLabel,
}

/// Issues a one-time enrollment token for a device to be labelled `label`, valid for
/// `ttl`. Returns the token (64 hex digits), which is shown once and stored only hashed.
/// Works on the data directory, so an admin command can run beside the server.
pub fn issue_token(data_dir: &Path, label: &str, ttl: Duration) -> Result<String, TokenError> {
    issue_into(&crate::store::fs::FsTokens::new(data_dir), label, ttl)
}

/// Issues a token into `store` (a shared database's, for `custody admin enroll-token
/// --database`); see [`issue_token`].
pub fn issue_into(
    store: &dyn TokenStore,
    label: &str,
    ttl: Duration,
) -> Result<String, TokenError> {
    if label.is_empty() || label.len() > 200 {
        return Err(TokenError::BadLabel);
    }
    let mut token = [0u8; 32];
    OsRng.fill_bytes(&mut token);
    let now = crate::now_us();
    let record = TokenRecord {
        label: label.to_string(),
        issued_at_us: now,
        expires_at_us: now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)),
    };
    block_on(store.issue(sha256(&[&token]), &record))?;
    Ok(hex::encode(token))
}

pub use custody_protocol::body::{enrollment_message, EnrollAnswer, EnrollRequest};

/// The answer to a successful enrollment (the protocol's [`EnrollAnswer`]).
pub type EnrollResponse = EnrollAnswer;

fn malformed(what: &str) -> ApiError {
    ApiError::new(Code::EnrollMalformed, what.to_string())
}

impl Server {
    /// Enrolls a device for a request from `peer`: as [`Self::enroll`], but once an address
    /// has failed too often (wrong, spent or expired tokens, bad proofs, malformed
    /// requests; shared with failed logins), its failing requests are refused with
    /// `auth.rate_limited` for a while, unlogged. Each refusal of a spent or expired token
    /// is otherwise written to the custody log, and a seized phone's spent token must not be
    /// able to fill it. An issued, unspent, unexpired token with a right proof is never
    /// refused for what other requests from its address did: the legal team may share one
    /// address (a NAT) with whoever is failing.
    /// `req` is the request, or why it could not be read as one.
    pub fn enroll_from(
        &self,
        req: Result<EnrollRequest, ApiError>,
        peer: Option<std::net::IpAddr>,
    ) -> Result<EnrollResponse, ApiError> {
        let addr = peer.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if self.address_limited(addr) {
            return match req {
                Ok(req) if self.would_enroll(&req) => self.enroll(&req),
                _ => Err(crate::members::rate_limited("enrollments or logins")),
            };
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
            // Refusals of an address already limited are not written: they are what a
            // flood is made of.
            let event =
                crate::events::Event::new("enrollment refused").with("reason", e.code.as_str());
            crate::events::emit(&self.config().events, &event);
        }
        result
    }

    /// Whether `req` names an issued token, unspent and unexpired, with a proof that
    /// verifies: what [`Self::enroll`] takes. Reads the token store; writes and logs
    /// nothing.
    fn would_enroll(&self, req: &EnrollRequest) -> bool {
        let Ok(claim) = req.claim() else { return false };
        let tokens = self.inner.tokens.as_ref();
        let hash = sha256(&[&claim.token]);
        match block_on(tokens.get(hash)) {
            Ok(Some(t)) => {
                crate::now_us() <= t.expires_at_us
                    && matches!(block_on(tokens.is_spent(hash)), Ok(false))
                    && claim.proof_verifies()
            }
            _ => false,
        }
    }

    /// Enrolls a device. Blocking (reads and writes token files, appends to the log).
    pub fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, ApiError> {
        let claim = req.claim().map_err(|e| match e {
            BodyError::Field { field: "device_key", reason } => {
                malformed(&format!("device_key is not a valid key: {reason}"))
            }
            BodyError::Field { field, reason } => malformed(&format!("{field} {reason}")),
            e => malformed(&e.to_string()),
        })?;
        let (token, device) = (claim.token, claim.device_key);

        let tokens = self.inner.tokens.as_ref();
        let hash = sha256(&[&token]);
        // One enrollment at a time, so a token cannot be spent twice by racing requests.
        let _held = lock(&self.inner.token_lock);
        let file = match block_on(tokens.get(hash)) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(ApiError::new(
                    Code::EnrollTokenUnknown,
                    "this server did not issue that token",
                ))
            }
            Err(e) => return Err(ApiError::internal("reading a token", e)),
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
        if block_on(tokens.is_spent(hash)).map_err(|e| ApiError::internal("reading a token", e))? {
            return Err(refused(Code::EnrollTokenUsed, "the token was already used"));
        }
        if now > file.expires_at_us {
            return Err(refused(Code::EnrollTokenExpired, "the token has expired"));
        }
        if !claim.proof_verifies() {
            // Not spent: the token's holder may still enroll with a correct proof.
            return Err(ApiError::new(
                Code::EnrollProof,
                "the proof of possession does not verify with device_key",
            ));
        }
        match block_on(tokens.spend(hash, &device)) {
            Ok(()) => {}
            // Spent through another replica since the check above (a shared database).
            Err(crate::store::StoreError::Spent) => {
                return Err(refused(Code::EnrollTokenUsed, "the token was already used"))
            }
            Err(e) => return Err(ApiError::internal("spending the token", e)),
        }
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
            case_recipients: hex::encode(self.case_recipients().to_bytes()),
            label: file.label,
        })
    }

    /// The case recipients, signed with the server key: what the enrollment answer and
    /// `GET /v1/recipients` carry (Ed25519 is deterministic, so always the same bytes for
    /// the same list).
    pub fn case_recipients(&self) -> Signed<CaseRecipients> {
        Signed::sign(
            CaseRecipients {
                server_key: self.public_key(),
                recipients: self.inner.recipients.clone(),
            },
            &self.inner.identity.signing_key,
        )
    }
}
