//! Every JSON request and answer of `docs/api.md`, as typed values. The server builds its
//! answers from these and the clients read them into these; neither touches untyped JSON.
//!
//! Keys, ids and fingerprints travel in their text forms (`ed25519:…`, 32 hex digits,
//! `XXXXX-…`) and are kept as text here, with accessors that parse them, so that a value
//! read from the wire can always be shown even when it does not parse. Hashes are read as
//! bytes: a proof hash that is not 32 bytes of hex is a malformed answer.

use custody_format::cert::DeviceCertificate;
use custody_format::ids::{IdError, PublicKey};
use custody_format::log::TreeHead;
use custody_format::primitives::{self, sha256, DOMAIN_ENROLLMENT_SIGNATURE};
use custody_format::receipt::Receipt;
use custody_format::recipients::CaseRecipients;
use custody_format::signed::Signed;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Why a field of a JSON body does not hold what it must.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// A field is not of its form (hex of the wrong length, not a key, not an object).
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn field_err(field: &'static str, reason: impl std::fmt::Display) -> BodyError {
    BodyError::Field { field, reason: reason.to_string() }
}

fn hex_exact<const N: usize>(field: &'static str, s: &str) -> Result<[u8; N], BodyError> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| field_err(field, format!("must be {} hex digits", 2 * N)))
}

fn key(field: &'static str, s: &str) -> Result<PublicKey, BodyError> {
    PublicKey::parse(s).map_err(|e: IdError| field_err(field, e))
}

fn signed<T: custody_format::signed::Object>(
    field: &'static str,
    s: &str,
) -> Result<Signed<T>, BodyError> {
    let bytes = hex::decode(s).map_err(|_| field_err(field, "is not hex"))?;
    Signed::<T>::parse(&bytes).map_err(|e| field_err(field, e))
}

/// Serde for a hash as 64 lowercase hex digits.
pub mod hex_hash {
    /// Writes the hash as hex.
    pub fn serialize<S: serde::Serializer>(v: &super::Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    /// Reads 64 hex digits.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<super::Hash, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(&s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("a hash must be 64 hex digits"))
    }
}

/// Serde for a list of hashes, each as 64 lowercase hex digits.
pub mod hex_hashes {
    /// Writes the hashes as hex strings.
    pub fn serialize<S: serde::Serializer>(v: &[super::Hash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    /// Reads a list of 64-hex-digit strings.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<super::Hash>, D::Error> {
        let v = <Vec<String> as serde::Deserialize>::deserialize(d)?;
        v.iter()
            .map(|s| {
                hex::decode(s)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| serde::de::Error::custom("a hash must be 64 hex digits"))
            })
            .collect()
    }
}

/// `GET /v1/server`: the server's key, TLS pin and latest tree head, unauthenticated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's signing key, `ed25519:<hex>`.
    pub server_key: String,
    /// SHA-256 of its TLS certificate, hex; `null` over plain HTTP.
    pub tls_sha256: Option<String>,
    /// Hex of the latest signed tree head.
    pub tree_head: String,
}

/// The message a device signs to enroll (under `custody/v1/enrollment-signature\0`):
/// `SHA-256(token) || device_key`, binding the proof to this one token.
pub fn enrollment_message(token: &[u8; 32], device_key: &PublicKey) -> Vec<u8> {
    let mut m = sha256(&[token]).to_vec();
    m.extend_from_slice(&device_key.to_bytes());
    m
}

/// `POST /v1/enroll`: a one-time token, the device key and its proof of possession.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// The token, 64 hex digits.
    pub token: String,
    /// The device key, `ed25519:<hex>`.
    pub device_key: String,
    /// The proof of possession, 128 hex digits.
    pub signature: String,
}

/// The parts of an [`EnrollRequest`], read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollClaim {
    /// The token's 32 bytes.
    pub token: [u8; 32],
    /// The device key.
    pub device_key: PublicKey,
    /// The proof of possession.
    pub signature: [u8; 64],
}

impl EnrollRequest {
    /// The request of the device holding `key`, for `token`.
    pub fn sign(key: &SigningKey, token: &[u8; 32]) -> EnrollRequest {
        let public = PublicKey::from(key.verifying_key());
        let sig =
            primitives::sign(key, DOMAIN_ENROLLMENT_SIGNATURE, &enrollment_message(token, &public));
        EnrollRequest {
            token: hex::encode(token),
            device_key: public.to_string(),
            signature: hex::encode(sig),
        }
    }

    /// Reads its fields (the proof is not checked here).
    pub fn claim(&self) -> Result<EnrollClaim, BodyError> {
        Ok(EnrollClaim {
            token: hex_exact("token", &self.token)?,
            device_key: key("device_key", &self.device_key)?,
            signature: hex_exact("signature", &self.signature)?,
        })
    }
}

impl EnrollClaim {
    /// Whether the proof of possession verifies for this token and key.
    pub fn proof_verifies(&self) -> bool {
        primitives::verify(
            self.device_key.verifying_key(),
            DOMAIN_ENROLLMENT_SIGNATURE,
            &enrollment_message(&self.token, &self.device_key),
            &self.signature,
        )
    }
}

/// The answer to a successful enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollAnswer {
    /// The signed device certificate, hex of its bytes and signature.
    pub certificate: String,
    /// The server's key, `ed25519:<hex>`.
    pub server_key: String,
    /// SHA-256 of the server's TLS certificate, hex; `null` when serving plain HTTP.
    pub tls_sha256: Option<String>,
    /// The age recipients (`age1…`) the device must encrypt every segment to; the same
    /// list as `case_recipients`, which is what a device checks and keeps.
    pub recipients: Vec<String>,
    /// Hex of the server-signed case recipients (`docs/api.md`, "Case recipients").
    pub case_recipients: String,
    /// The label the legal team gave the device.
    pub label: String,
}

impl EnrollAnswer {
    /// The server key it names.
    pub fn server_key(&self) -> Result<PublicKey, BodyError> {
        key("server_key", &self.server_key)
    }

    /// The device certificate.
    pub fn certificate(&self) -> Result<Signed<DeviceCertificate>, BodyError> {
        signed("certificate", &self.certificate)
    }

    /// The signed case recipients, checked against `server_key` (the key the device pins):
    /// signed by it, naming it. The list inside is what the device encrypts to.
    pub fn case_recipients(
        &self,
        server_key: &PublicKey,
    ) -> Result<Signed<CaseRecipients>, BodyError> {
        checked_recipients(&self.case_recipients, server_key)
    }
}

fn checked_recipients(
    hex_text: &str,
    server_key: &PublicKey,
) -> Result<Signed<CaseRecipients>, BodyError> {
    let s = signed::<CaseRecipients>("case_recipients", hex_text)?;
    if !s.verify(server_key) || s.value().server_key != *server_key {
        return Err(field_err("case_recipients", "is not signed by the pinned server key"));
    }
    Ok(s)
}

/// `GET /v1/recipients`: the case recipients, signed by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientsAnswer {
    /// Hex of the signed case recipients.
    pub case_recipients: String,
    /// The recipients inside it, repeated for reading; a device uses the signed ones.
    pub recipients: Vec<String>,
}

impl RecipientsAnswer {
    /// The signed case recipients, checked against the pinned `server_key`.
    pub fn checked(&self, server_key: &PublicKey) -> Result<Signed<CaseRecipients>, BodyError> {
        checked_recipients(&self.case_recipients, server_key)
    }
}

/// `GET /v1/recordings/{id}` (device): what the server holds of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingState {
    /// The recording id, 32 hex digits.
    pub recording_id: String,
    /// Positions stored, ascending.
    pub stored: Vec<u64>,
    /// How many of them have receipts.
    pub receipted: u64,
    /// Inclusive ranges missing below the highest stored position.
    pub gaps: Vec<[u64; 2]>,
    /// Whether the header (position 0) is stored.
    pub header: bool,
    /// Position of the stored end record, if any.
    pub end_seq: Option<u64>,
    /// End record stored and no gaps.
    pub complete: bool,
}

/// `GET /v1/recordings/{id}/receipts` (device): the receipts the server holds for one of
/// the device's recordings, each exactly the bytes ingest answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsAnswer {
    /// The recording id, 32 hex digits.
    pub recording_id: String,
    /// One per receipted position, ascending.
    pub receipts: Vec<StoredReceipt>,
}

/// One receipt of a [`ReceiptsAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// The record's chain position.
    pub seq: u64,
    /// Hex of the signed receipt, the same bytes as the ingest answer.
    pub receipt: String,
}

impl StoredReceipt {
    /// The signed receipt (its signature is the caller's to check, with the pinned key).
    pub fn receipt(&self) -> Result<Signed<Receipt>, BodyError> {
        signed("receipt", &self.receipt)
    }
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Lists and retrieves recordings.
    Member,
    /// Also revokes devices.
    Admin,
}

impl Role {
    /// `member` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }
}

/// `GET /v1/whoami` (member).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The member's name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// The server's key, `ed25519:<hex>`.
    pub server_key: String,
    /// Its fingerprint, for people to compare.
    pub server_fingerprint: String,
    /// SHA-256 of the TLS certificate, hex; `null` over plain HTTP.
    pub tls_sha256: Option<String>,
}

impl WhoAmI {
    /// The server key it names.
    pub fn server_key(&self) -> Result<PublicKey, BodyError> {
        key("server_key", &self.server_key)
    }
}

/// `GET /v1/recordings` (member).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingList {
    /// Every recording.
    pub recordings: Vec<RecordingSummary>,
}

/// Where a recording stands, as the legal team's listing says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RecordingStatus {
    /// End record stored, no gaps.
    #[serde(rename = "complete")]
    Complete,
    /// No end record, and segments still arriving (the last within the stall time).
    #[serde(rename = "live")]
    Live,
    /// No end record, and no segment for longer than the stall time (by default three
    /// segment lengths): the device may have lost its network, or been stopped.
    /// `silent_for_us` says for how long.
    #[serde(rename = "stalled")]
    Stalled,
    /// Positions missing.
    #[serde(rename = "gaps")]
    Gaps,
    /// No end record, and nothing for longer than the cut-off time (by default 10 min).
    #[serde(rename = "cut off")]
    CutOff,
}

impl RecordingStatus {
    /// Its text on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Complete => "complete",
            RecordingStatus::Live => "live",
            RecordingStatus::Stalled => "stalled",
            RecordingStatus::Gaps => "gaps",
            RecordingStatus::CutOff => "cut off",
        }
    }
}

/// One line of [`RecordingList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSummary {
    /// The recording id, 32 hex digits.
    pub recording_id: String,
    /// The device that opened it, `ed25519:<hex>`.
    pub device_key: String,
    /// Its fingerprint.
    pub device_fingerprint: String,
    /// Its label, if the device is known.
    pub device_label: Option<String>,
    /// Whether the device has been revoked.
    pub device_revoked: bool,
    /// The header's device time, µs; `null` without a header.
    pub started_at_us: Option<i64>,
    /// To the end record, else to the last segment, µs; for an import, the media's length
    /// (its device times span only the sealing).
    pub duration_us: Option<i64>,
    /// Where it stands.
    pub state: RecordingStatus,
    /// Segment records stored.
    pub segments: u64,
    /// Records stored.
    pub records: u64,
    /// Inclusive ranges missing below the highest stored position.
    pub gaps: Vec<[u64; 2]>,
    /// Server time of the latest receipt, µs.
    pub last_receipt_at_us: Option<i64>,
    /// For a recording without its end record: how long nothing of it has arrived (since
    /// the latest receipt), µs, when the server reads it as stalled or cut off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_for_us: Option<i64>,
    /// For a recording imported from a file (header origin 2), the file as the header
    /// names it; absent for a live one. Its times are claims, not capture times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportedSummary>,
}

/// The file an imported recording was sealed from, as its signed header names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedSummary {
    /// The file's name when it was imported.
    pub file_name: String,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
    /// For an import that stopped on damaged input (its end record says so), the words
    /// every listing and the report use: "imported up to 0:06 of 0:12: the rest of the
    /// file is damaged". Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// `POST /v1/devices/revoke` (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeRequest {
    /// The device, by `ed25519:…` key or fingerprint.
    pub device: String,
    /// Why, 1–1000 bytes.
    pub reason: String,
}

/// The answer to a revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeAnswer {
    /// The device key, `ed25519:<hex>`.
    pub device_key: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Its label.
    pub label: String,
    /// Always `true`.
    pub revoked: bool,
    /// Whether it was revoked before (then nothing was changed or logged).
    pub already_revoked: bool,
}

/// `GET /v1/log/head` (device).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogHead {
    /// Hex of the signed tree head.
    pub tree_head: String,
    /// Its size, repeated for reading.
    pub tree_size: u64,
    /// Its root, repeated for reading.
    #[serde(with = "hex_hash")]
    pub root_hash: Hash,
    /// Its time, repeated for reading.
    pub timestamp_us: i64,
}

impl LogHead {
    /// The signed tree head (a device checks its signature and uses its fields).
    pub fn signed(&self) -> Result<Signed<TreeHead>, BodyError> {
        signed("tree_head", &self.tree_head)
    }
}

/// `GET /v1/log/consistency?from=A&to=B` (device): RFC 9162 §2.1.4 PROOF(A, D\[B\]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    /// The smaller size.
    pub from: u64,
    /// The larger size.
    pub to: u64,
    /// The proof's node hashes.
    #[serde(with = "hex_hashes")]
    pub proof: Vec<Hash>,
}

/// `GET /v1/log/inclusion?index=I&size=N` (device): RFC 9162 §2.1.3 PATH(I, D\[N\]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The entry's index.
    pub index: u64,
    /// The tree size.
    pub size: u64,
    /// The entry's leaf hash.
    #[serde(with = "hex_hash")]
    pub leaf_hash: Hash,
    /// The proof's node hashes.
    #[serde(with = "hex_hashes")]
    pub proof: Vec<Hash>,
}

/// `GET /v1/status` (member): what the legal team needs to see of the server's own
/// health, today its time-stamping (issue 18): whether each time-stamp authority is
/// answering, what its latest token covers, and how much of the log waits for one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Entries in the custody log now (its tree size).
    pub log_size: u64,
    /// One per `custody serve --tsa`, in the order given; empty without time-stamping.
    pub time_stamping: Vec<TsaStatus>,
}

/// One time-stamp authority, as the server has found it since it started (failures) and
/// as its log says (the latest token, kept across restarts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TsaStatus {
    /// Its URL, without user name or password (as the token entries' `label`).
    pub tsa: String,
    /// Its latest token in the log; `null` if it has none yet.
    pub last_token: Option<TokenStatus>,
    /// Requests that failed since its last token (or since the server started): 0 while it
    /// answers.
    pub consecutive_failures: u32,
    /// When the first of those failures happened (server time, µs since the epoch).
    pub failing_since_us: Option<i64>,
    /// Why the last request failed, while it is failing.
    pub last_error: Option<String>,
    /// How far behind it is: log entries (other than tokens) that no token of this TSA
    /// covers yet.
    pub entries_waiting: u64,
}

/// A logged time-stamp token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    /// The token's log index.
    pub log_index: u64,
    /// The `tree_size` of the head it stamps: it proves the first this many entries existed
    /// by `gen_time_us`.
    pub tree_size: u64,
    /// The TSA's `genTime` (RFC 3161 §2.4.2), µs since the epoch; `null` if it could not
    /// be read back (the verifier checks every token in any case).
    pub gen_time_us: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::testkit;

    #[test]
    fn an_enrollment_request_proves_its_key_for_its_token_only() {
        let req = EnrollRequest::sign(&testkit::key("device"), &[7; 32]);
        let claim = req.claim().unwrap();
        assert!(claim.proof_verifies());
        let other = EnrollClaim { token: [8; 32], ..claim };
        assert!(!other.proof_verifies());
        let bad = EnrollRequest { token: "00".into(), ..req };
        assert!(matches!(bad.claim(), Err(BodyError::Field { field: "token", .. })));
    }

    #[test]
    fn listing_states_use_the_documented_words() {
        let s = serde_json::to_string(&RecordingStatus::CutOff).unwrap();
        assert_eq!(s, "\"cut off\"");
        let back: RecordingStatus = serde_json::from_str("\"live\"").unwrap();
        assert_eq!(back, RecordingStatus::Live);
        assert_eq!(serde_json::to_string(&RecordingStatus::Stalled).unwrap(), "\"stalled\"");
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }

    #[test]
    fn proof_hashes_must_be_32_bytes() {
        let ok = r#"{"from":1,"to":2,"proof":["0000000000000000000000000000000000000000000000000000000000000000"]}"#;
        assert_eq!(serde_json::from_str::<ConsistencyProof>(ok).unwrap().proof, vec![[0; 32]]);
        let short = r#"{"from":1,"to":2,"proof":["00"]}"#;
        assert!(serde_json::from_str::<ConsistencyProof>(short).is_err());
    }
}
