//! Refusals: every answer other than a receipt carries one stable code.
//!
//! A device (or a person reading its logs) must be able to tell, from the code alone, what
//! was wrong and whether retrying can help. The codes are part of the HTTP API and are
//! listed in `docs/api.md`; they never change meaning.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request was refused. Each variant has one stable code string ([`Code::as_str`])
/// and one HTTP status ([`Code::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// A device request lacks one of the `Custody-*` authentication headers.
    AuthMissing,
    /// An authentication header cannot be parsed.
    AuthMalformed,
    /// The requesting key is not enrolled here.
    AuthUnknownDevice,
    /// The requesting key was enrolled and has been revoked.
    AuthRevoked,
    /// The request signature does not verify.
    AuthSignature,
    /// The request's timestamp is too far from the server clock.
    AuthStale,
    /// The request's nonce was already used by this device.
    AuthReplayed,
    /// The enrollment request is not valid JSON of the expected shape.
    EnrollMalformed,
    /// The enrollment token is not one this server issued.
    EnrollTokenUnknown,
    /// The enrollment token was already used (logged).
    EnrollTokenUsed,
    /// The enrollment token has expired (logged).
    EnrollTokenExpired,
    /// The device's proof of possession of its key does not verify.
    EnrollProof,
    /// The body does not start with a readable signed record.
    RecordMalformed,
    /// The record's recording id or position is not the one in the URL.
    RecordPosition,
    /// The record's signature does not verify with the requesting device's key.
    RecordSignature,
    /// A header names a device key other than the requesting device's.
    RecordDevice,
    /// The recording was opened by another device.
    RecordingOwner,
    /// The record does not link to the stored record before it, or the stored record
    /// after it does not link to this one.
    ChainLink,
    /// A record after the stored end record, or an end record before a stored record.
    ChainAfterEnd,
    /// The sealed segment's length is not the record's `ciphertext_len`.
    SegmentLength,
    /// The sealed segment's SHA-256 is not the record's `ciphertext_sha256`.
    SegmentHash,
    /// A different record is already stored at this position (logged as equivocation).
    Equivocation,
    /// The body is larger than the server accepts.
    BodyTooLarge,
    /// The body did not arrive within the body timeout.
    BodyTimeout,
    /// The body could not be read (connection broken).
    BodyRead,
    /// The device already has as many requests in progress as it may.
    DeviceBusy,
    /// The request took longer than the request timeout.
    Timeout,
    /// No such route or recording.
    NotFound,
    /// The server failed (storage, log); nothing was receipted, retry later.
    Internal,
    /// A member request's bearer token is not one this server issued.
    AuthToken,
    /// Too many failed logins from this address; wait and retry.
    AuthRateLimited,
    /// A device key was presented where a member's token is needed: devices cannot read.
    AuthDeviceKey,
    /// The member's role does not allow this (an admin-only action).
    AuthRole,
    /// The `Range` header is malformed or outside the bundle.
    RangeInvalid,
    /// `Custody-Bundle-Access` names no bundle retrieval of this recording by this member.
    BundleAccess,
    /// The revocation request is not valid JSON of the expected shape.
    RevokeMalformed,
    /// No enrolled device has that key or fingerprint.
    DeviceUnknown,
}

impl Code {
    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::AuthMissing => "auth.missing",
            Code::AuthMalformed => "auth.malformed",
            Code::AuthUnknownDevice => "auth.unknown_device",
            Code::AuthRevoked => "auth.revoked",
            Code::AuthSignature => "auth.signature",
            Code::AuthStale => "auth.stale",
            Code::AuthReplayed => "auth.replayed",
            Code::EnrollMalformed => "enroll.malformed",
            Code::EnrollTokenUnknown => "enroll.token_unknown",
            Code::EnrollTokenUsed => "enroll.token_used",
            Code::EnrollTokenExpired => "enroll.token_expired",
            Code::EnrollProof => "enroll.proof",
            Code::RecordMalformed => "record.malformed",
            Code::RecordPosition => "record.position",
            Code::RecordSignature => "record.signature",
            Code::RecordDevice => "record.device",
            Code::RecordingOwner => "recording.owner",
            Code::ChainLink => "chain.link",
            Code::ChainAfterEnd => "chain.after_end",
            Code::SegmentLength => "segment.length",
            Code::SegmentHash => "segment.hash",
            Code::Equivocation => "equivocation",
            Code::BodyTooLarge => "body.too_large",
            Code::BodyTimeout => "body.timeout",
            Code::BodyRead => "body.read",
            Code::DeviceBusy => "device.busy",
            Code::Timeout => "timeout",
            Code::NotFound => "not_found",
            Code::Internal => "internal",
            Code::AuthToken => "auth.token",
            Code::AuthRateLimited => "auth.rate_limited",
            Code::AuthDeviceKey => "auth.device_key",
            Code::AuthRole => "auth.role",
            Code::RangeInvalid => "range.invalid",
            Code::BundleAccess => "bundle.access",
            Code::RevokeMalformed => "revoke.malformed",
            Code::DeviceUnknown => "device.unknown",
        }
    }

    /// The HTTP status it is sent with.
    pub fn status(self) -> StatusCode {
        match self {
            Code::AuthMissing
            | Code::AuthMalformed
            | Code::AuthUnknownDevice
            | Code::AuthSignature
            | Code::AuthStale
            | Code::AuthReplayed
            | Code::AuthToken => StatusCode::UNAUTHORIZED,
            Code::AuthRateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::AuthDeviceKey | Code::AuthRole => StatusCode::FORBIDDEN,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::BundleAccess | Code::DeviceUnknown => StatusCode::NOT_FOUND,
            Code::RevokeMalformed => StatusCode::BAD_REQUEST,
            Code::AuthRevoked
            | Code::EnrollTokenUnknown
            | Code::EnrollTokenUsed
            | Code::EnrollTokenExpired
            | Code::RecordingOwner => StatusCode::FORBIDDEN,
            Code::EnrollMalformed
            | Code::EnrollProof
            | Code::RecordMalformed
            | Code::RecordPosition
            | Code::BodyRead => StatusCode::BAD_REQUEST,
            Code::RecordSignature
            | Code::RecordDevice
            | Code::ChainLink
            | Code::ChainAfterEnd
            | Code::SegmentLength
            | Code::SegmentHash => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Equivocation => StatusCode::CONFLICT,
            Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::DeviceBusy => StatusCode::TOO_MANY_REQUESTS,
            Code::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refusal: its code and a sentence saying what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// A server-side failure; the detail goes to the server's log, not to the client.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        eprintln!("custody-server: {what}: {detail}");
        ApiError::new(Code::Internal, format!("{what} failed; nothing was receipted, retry"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        let mut resp = (self.code.status(), body.to_string()).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}
