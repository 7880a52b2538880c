//! Refusal codes: every answer other than a success carries one stable code.
//!
//! A device (or a person reading its logs) must be able to tell, from the code alone, what
//! was wrong and whether retrying can help. The codes are part of the HTTP API, listed in
//! `docs/api.md` (kept equal to [`Code::ALL`] by `protocol/tests/docs.rs`); they never
//! change meaning. Clients decide what to do with [`Code::retry`] and
//! [`Code::rejects_record`], never by matching the code's text.

use serde::{Deserialize, Serialize};

/// Why a request was refused. Each variant has one stable code string ([`Code::as_str`]),
/// one HTTP status ([`Code::status`]), a meaning ([`Code::meaning`]) and a retry
/// classification ([`Code::retry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// A log proof between sizes (or of an entry) the log cannot answer.
    LogRange,
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
    /// An upload declares no `Content-Length`: its length must be known before it is read.
    BodyLength,
    /// The server holds as many bytes of uploads in progress as it may; retry shortly.
    ServerBusy,
    /// The server's disk is full: nothing was stored, receipted or retrieved; retry later.
    StorageFull,
    /// The server's custody log is damaged in the middle: it serves what it can prove and
    /// refuses whatever would append to the log until it is restored from a backup.
    LogDamaged,
}

/// Whether sending a refused request again can succeed: what a client does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Retry {
    /// The same request will be refused the same way: do not send it again.
    Never,
    /// The refusal is about the moment (load, a broken connection, a server failure): the
    /// same request may succeed later, with backoff.
    Later,
    /// Only after something changes first (enrolling, the clock, a new nonce, a new token,
    /// a wait, a fresh download); [`Code::retry_hint`] says what.
    AfterChange,
}

impl Code {
    /// Every code, in the order `docs/api.md` lists them.
    pub const ALL: &'static [Code] = &[
        Code::AuthMissing,
        Code::AuthMalformed,
        Code::AuthUnknownDevice,
        Code::AuthRevoked,
        Code::AuthSignature,
        Code::AuthStale,
        Code::AuthReplayed,
        Code::EnrollMalformed,
        Code::EnrollTokenUnknown,
        Code::EnrollTokenUsed,
        Code::EnrollTokenExpired,
        Code::EnrollProof,
        Code::RecordMalformed,
        Code::RecordPosition,
        Code::RecordSignature,
        Code::RecordDevice,
        Code::RecordingOwner,
        Code::ChainLink,
        Code::ChainAfterEnd,
        Code::SegmentLength,
        Code::SegmentHash,
        Code::Equivocation,
        Code::BodyTooLarge,
        Code::BodyTimeout,
        Code::BodyRead,
        Code::DeviceBusy,
        Code::Timeout,
        Code::NotFound,
        Code::LogRange,
        Code::Internal,
        Code::AuthToken,
        Code::AuthRateLimited,
        Code::AuthDeviceKey,
        Code::AuthRole,
        Code::RangeInvalid,
        Code::BundleAccess,
        Code::RevokeMalformed,
        Code::DeviceUnknown,
        Code::BodyLength,
        Code::ServerBusy,
        Code::StorageFull,
        Code::LogDamaged,
    ];

    /// The stable code string.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status (RFC 9110 §15) it is sent with.
    pub fn status(self) -> u16 {
        self.row().1
    }

    /// What it means, in the words of `docs/api.md`.
    pub fn meaning(self) -> &'static str {
        self.row().2
    }

    /// Whether the same request can succeed if sent again.
    pub fn retry(self) -> Retry {
        self.row().3
    }

    /// The "retry?" column of `docs/api.md`: what a client does next, for a person.
    pub fn retry_hint(self) -> &'static str {
        self.row().4
    }

    /// Whether the refusal is about the record sent itself (its bytes, its chain, its
    /// segment, its recording's owner), so that the same record can never be accepted by
    /// this server and an uploader sets it aside instead of retrying it. Refusals about the
    /// device, the request or the moment (`auth.*`, `device.busy`, `body.*`, `internal`…)
    /// are not: the record may yet be accepted.
    pub fn rejects_record(self) -> bool {
        matches!(
            self,
            Code::RecordMalformed
                | Code::RecordPosition
                | Code::RecordSignature
                | Code::RecordDevice
                | Code::RecordingOwner
                | Code::ChainLink
                | Code::ChainAfterEnd
                | Code::SegmentLength
                | Code::SegmentHash
                | Code::Equivocation
        )
    }

    /// The code with this stable string, if there is one.
    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// `(code, status, meaning, retry, retry hint)`: one row of the table in `docs/api.md`.
    fn row(self) -> (&'static str, u16, &'static str, Retry, &'static str) {
        use Retry::{AfterChange, Later, Never};
        match self {
            Code::AuthMissing => ("auth.missing", 401, "a `Custody-*` header is missing", Never, "no"),
            Code::AuthMalformed => ("auth.malformed", 401, "a `Custody-*` header does not parse", Never, "no"),
            Code::AuthUnknownDevice => ("auth.unknown_device", 401, "the key is not enrolled", AfterChange, "after enrolling"),
            Code::AuthRevoked => ("auth.revoked", 403, "the key was revoked", Never, "no"),
            Code::AuthSignature => ("auth.signature", 401, "the request signature does not verify", Never, "no"),
            Code::AuthStale => ("auth.stale", 401, "timestamp more than 300 s from the server clock", AfterChange, "after fixing the clock"),
            Code::AuthReplayed => ("auth.replayed", 401, "nonce already used", AfterChange, "with a new nonce"),
            Code::EnrollMalformed => ("enroll.malformed", 400, "the enrollment request does not parse", Never, "no"),
            Code::EnrollTokenUnknown => ("enroll.token_unknown", 403, "token not issued here", Never, "no"),
            Code::EnrollTokenUsed => ("enroll.token_used", 403, "token already used (logged)", AfterChange, "no: ask for a new token"),
            Code::EnrollTokenExpired => ("enroll.token_expired", 403, "token expired (logged)", AfterChange, "no: ask for a new token"),
            Code::EnrollProof => ("enroll.proof", 400, "proof of possession does not verify", AfterChange, "with a correct proof"),
            Code::RecordMalformed => ("record.malformed", 400, "body is not a signed record (plus segment)", Never, "no"),
            Code::RecordPosition => ("record.position", 400, "record's id/position is not the URL's", Never, "no"),
            Code::RecordSignature => ("record.signature", 422, "record not signed by the requesting device", Never, "no"),
            Code::RecordDevice => ("record.device", 422, "header names another device key", Never, "no"),
            Code::RecordingOwner => ("recording.owner", 403, "the recording belongs to another device", Never, "no"),
            Code::ChainLink => ("chain.link", 422, "does not link to a stored neighbour", Never, "no"),
            Code::ChainAfterEnd => ("chain.after_end", 422, "beyond the stored end record", Never, "no"),
            Code::SegmentLength => ("segment.length", 422, "sealed segment's length is not the record's", Never, "no"),
            Code::SegmentHash => ("segment.hash", 422, "sealed segment's SHA-256 is not the record's", Never, "no"),
            Code::Equivocation => ("equivocation", 409, "a different record is stored at this position (logged)", Never, "no"),
            Code::BodyTooLarge => ("body.too_large", 413, "body over the limit (default 64 MiB)", Never, "no"),
            Code::BodyTimeout => ("body.timeout", 408, "body not received within the body timeout (default 60 s)", Later, "yes"),
            Code::BodyRead => ("body.read", 400, "the connection broke while the body was read", Later, "yes"),
            Code::DeviceBusy => ("device.busy", 429, "too many requests in progress for this device (default 8)", Later, "yes, with backoff"),
            Code::Timeout => ("timeout", 503, "request took longer than the request timeout (default 120 s)", Later, "yes"),
            Code::NotFound => ("not_found", 404, "no such route or recording", Never, "no"),
            Code::LogRange => ("log.range", 400, "a log proof between sizes (or of an entry) the log cannot answer", Never, "no"),
            Code::Internal => ("internal", 500, "storage or log failure; nothing was receipted", Later, "yes, with backoff"),
            Code::AuthToken => ("auth.token", 401, "bearer token not issued here (counts as a failed login)", Never, "no"),
            Code::AuthRateLimited => ("auth.rate_limited", 429, "too many failed logins or enrollments from this address", AfterChange, "after 60 s"),
            Code::AuthDeviceKey => ("auth.device_key", 403, "a device key on a member route: devices cannot read", Never, "no"),
            Code::AuthRole => ("auth.role", 403, "an admin route with a member's token", Never, "no"),
            Code::RangeInvalid => ("range.invalid", 416, "`Range` malformed or outside the bundle", Never, "no"),
            Code::BundleAccess => ("bundle.access", 404, "`Custody-Bundle-Access` names no bundle retrieval of this recording by this member", AfterChange, "no: fetch anew"),
            Code::RevokeMalformed => ("revoke.malformed", 400, "revocation request does not parse, or no reason", Never, "no"),
            Code::DeviceUnknown => ("device.unknown", 404, "no enrolled device has that key or fingerprint", Never, "no"),
            Code::BodyLength => ("body.length", 411, "an upload without `Content-Length`", Never, "no"),
            Code::ServerBusy => ("server.busy", 503, "the server holds as many upload bytes as it may at once (default 512 MiB)", Later, "yes, after `Retry-After`"),
            Code::StorageFull => ("storage.full", 507, "the server's disk is full; nothing was stored, receipted or retrieved", Later, "yes, with backoff"),
            Code::LogDamaged => ("log.damaged", 503, "the custody log is damaged: read-only (log head, proofs, receipts) until restored from a backup; nothing was stored", Later, "yes, once the legal team restores the log"),
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the stable codes (a newer server's, or not a code at all).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a refusal code of this protocol version")]
pub struct UnknownCode(pub String);

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::parse(s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s).ok_or_else(|| serde::de::Error::custom(UnknownCode(s)))
    }
}

/// The body of every refusal: `{"error": {"code": "…", "message": "…"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalBody {
    /// The refusal.
    pub error: Refusal,
}

/// A refusal as sent: the code's text and a sentence for a person. The code is kept as
/// text so that a client can still report a code a newer server sends; [`Refusal::code`]
/// reads it as a [`Code`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The stable code string.
    pub code: String,
    /// What exactly was wrong, for a person.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Refusal { code: code.as_str().to_string(), message: message.into() }
    }

    /// The code, if this protocol version knows it.
    pub fn code(&self) -> Option<Code> {
        Code::parse(&self.code)
    }

    /// Reads a refusal body. `None` when the bytes are not one (a proxy's error page, a
    /// truncated answer): the caller then has only the HTTP status.
    pub fn from_body(body: &[u8]) -> Option<Refusal> {
        serde_json::from_slice::<RefusalBody>(body).ok().map(|b| b.error)
    }

    /// The JSON body of this refusal.
    pub fn to_body(&self) -> String {
        serde_json::to_string(&RefusalBody { error: self.clone() }).unwrap_or_default()
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_text() {
        for &c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(c));
            assert_eq!(c.as_str().parse::<Code>(), Ok(c));
        }
        assert_eq!(Code::parse("record."), None);
        assert!("nope".parse::<Code>().is_err());
    }

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!((400..600).contains(&c.status()), "{c}");
        }
    }

    #[test]
    fn a_refusal_body_round_trips_and_keeps_unknown_codes() {
        let r = Refusal::new(Code::ChainLink, "position 2 does not link");
        let body = r.to_body();
        assert_eq!(body, r#"{"error":{"code":"chain.link","message":"position 2 does not link"}}"#);
        let back = Refusal::from_body(body.as_bytes()).unwrap();
        assert_eq!(back.code(), Some(Code::ChainLink));
        let newer = Refusal::from_body(br#"{"error":{"code":"x.new","message":""}}"#).unwrap();
        assert_eq!(newer.code(), None);
        assert_eq!(Refusal::from_body(b"<html>bad gateway</html>"), None);
    }

    #[test]
    fn only_refusals_of_the_record_itself_reject_it() {
        assert!(Code::ChainLink.rejects_record());
        assert!(Code::Equivocation.rejects_record());
        assert!(!Code::Internal.rejects_record());
        assert!(!Code::AuthStale.rejects_record());
        assert_eq!(Code::DeviceBusy.retry(), Retry::Later);
        assert_eq!(Code::RecordMalformed.retry(), Retry::Never);
    }
}
