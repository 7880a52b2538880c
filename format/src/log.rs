//! The custody log's entries and signed tree heads.
//!
//! The server keeps one append-only log, an RFC 9162 Merkle tree ([`crate::merkle`]) whose
//! leaves are the encodings of [`LogEntry`] objects: every enrollment, every record
//! received, every refusal and every access by a legal-team member. It signs a
//! [`TreeHead`] over the tree after appending; receipts name the head they were appended
//! under, and bundles carry inclusion proofs against one head.

use crate::encoding::{split_object, DecodeError, Field, FieldReader, FieldWriter};
use crate::ids::{PublicKey, RecordingId};
use crate::primitives::DOMAIN_TREE_HEAD_SIGNATURE;
use crate::record::{kind, Hash};
use crate::signed::{read_optional_key, Object};

const fn f(tag: u8, name: &'static str) -> Field {
    Field { tag, name }
}

/// What a log entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryType {
    /// A device was enrolled (`device_key`, `label`).
    DeviceEnrolled,
    /// A recording's header was stored (`device_key`, `recording_id`, `seq`, `record_hash`).
    RecordingOpened,
    /// A segment record and its sealed segment were stored (`device_key`, `recording_id`,
    /// `seq`, `record_hash`, `ciphertext_sha256`).
    SegmentReceived,
    /// A recording's end record was stored (`device_key`, `recording_id`, `seq`,
    /// `record_hash`).
    RecordingEnded,
    /// A device sent a different record for a position already stored; it was refused
    /// (`device_key`, `recording_id`, `seq`, `record_hash` refused, `conflicting_hash`
    /// stored).
    EquivocationRefused,
    /// A device key was revoked (`device_key`, `actor`, `detail` = reason).
    DeviceRevoked,
    /// A legal-team member was added (`actor` = who added, `label` = member and role).
    MemberAdded,
    /// A member listed, retrieved or exported evidence (`actor`, `detail` = action,
    /// `recording_id` when one recording).
    Access,
    /// An enrollment token was refused (reused or expired) (`label`, `detail`).
    EnrollmentRefused,
}

impl EntryType {
    /// Its code byte.
    pub fn code(self) -> u8 {
        match self {
            EntryType::DeviceEnrolled => 1,
            EntryType::RecordingOpened => 2,
            EntryType::SegmentReceived => 3,
            EntryType::RecordingEnded => 4,
            EntryType::EquivocationRefused => 5,
            EntryType::DeviceRevoked => 6,
            EntryType::MemberAdded => 7,
            EntryType::Access => 8,
            EntryType::EnrollmentRefused => 9,
        }
    }

    fn from_code(c: u8) -> Result<Self, DecodeError> {
        Ok(match c {
            1 => EntryType::DeviceEnrolled,
            2 => EntryType::RecordingOpened,
            3 => EntryType::SegmentReceived,
            4 => EntryType::RecordingEnded,
            5 => EntryType::EquivocationRefused,
            6 => EntryType::DeviceRevoked,
            7 => EntryType::MemberAdded,
            8 => EntryType::Access,
            9 => EntryType::EnrollmentRefused,
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "type",
                    reason: "unknown entry type",
                })
            }
        })
    }

    /// The optional fields this type requires, by name.
    fn required(self) -> &'static [&'static str] {
        const RECORD: &[&str] = &["device_key", "recording_id", "seq", "record_hash"];
        match self {
            EntryType::DeviceEnrolled => &["device_key", "label"],
            EntryType::RecordingOpened | EntryType::RecordingEnded => RECORD,
            EntryType::SegmentReceived => {
                &["device_key", "recording_id", "seq", "record_hash", "ciphertext_sha256"]
            }
            EntryType::EquivocationRefused => {
                &["device_key", "recording_id", "seq", "record_hash", "conflicting_hash"]
            }
            EntryType::DeviceRevoked => &["device_key", "actor", "detail"],
            EntryType::MemberAdded => &["actor", "label"],
            EntryType::Access => &["actor", "detail"],
            EntryType::EnrollmentRefused => &["label", "detail"],
        }
    }
}

const TYPE: Field = f(1, "type");
const AT: Field = f(2, "at_us");
const DEVICE_KEY: Field = f(3, "device_key");
const RECORDING_ID: Field = f(4, "recording_id");
const SEQ: Field = f(5, "seq");
const RECORD_HASH: Field = f(6, "record_hash");
const CIPHERTEXT_SHA256: Field = f(7, "ciphertext_sha256");
const CONFLICTING_HASH: Field = f(8, "conflicting_hash");
const ACTOR: Field = f(9, "actor");
const LABEL: Field = f(10, "label");
const DETAIL: Field = f(11, "detail");

/// One entry of the custody log. Which optional fields are present depends on the type
/// (see [`EntryType`]); a parser refuses an entry missing one its type requires.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// What happened.
    #[serde(rename = "type")]
    pub entry_type: EntryType,
    /// Server time it happened, µs since the epoch.
    pub at_us: i64,
    /// The device concerned.
    pub device_key: Option<PublicKey>,
    /// The recording concerned.
    pub recording_id: Option<RecordingId>,
    /// The chain position concerned.
    pub seq: Option<u64>,
    /// The record hash concerned.
    #[serde(serialize_with = "opt_hex")]
    pub record_hash: Option<Hash>,
    /// The sealed segment's SHA-256.
    #[serde(serialize_with = "opt_hex")]
    pub ciphertext_sha256: Option<Hash>,
    /// For an equivocation, the record hash already stored at that position.
    #[serde(serialize_with = "opt_hex")]
    pub conflicting_hash: Option<Hash>,
    /// The legal-team member who acted.
    pub actor: Option<String>,
    /// A device label, or a member's name and role.
    pub label: Option<String>,
    /// A reason or an action.
    pub detail: Option<String>,
}

fn opt_hex<S: serde::Serializer>(v: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_str(&hex::encode(h)),
        None => s.serialize_none(),
    }
}

impl LogEntry {
    /// An entry of `entry_type` at `at_us` with every optional field absent.
    pub fn new(entry_type: EntryType, at_us: i64) -> Self {
        LogEntry {
            entry_type,
            at_us,
            device_key: None,
            recording_id: None,
            seq: None,
            record_hash: None,
            ciphertext_sha256: None,
            conflicting_hash: None,
            actor: None,
            label: None,
            detail: None,
        }
    }

    fn present(&self, name: &str) -> bool {
        match name {
            "device_key" => self.device_key.is_some(),
            "recording_id" => self.recording_id.is_some(),
            "seq" => self.seq.is_some(),
            "record_hash" => self.record_hash.is_some(),
            "ciphertext_sha256" => self.ciphertext_sha256.is_some(),
            "conflicting_hash" => self.conflicting_hash.is_some(),
            "actor" => self.actor.is_some(),
            "label" => self.label.is_some(),
            "detail" => self.detail.is_some(),
            _ => false,
        }
    }

    /// Checks that every field the type requires is present.
    pub fn validate(&self) -> Result<(), DecodeError> {
        for &name in self.entry_type.required() {
            if !self.present(name) {
                return Err(DecodeError::MissingField { field: name });
            }
        }
        Ok(())
    }

    /// The entry's one encoding: the leaf data of the Merkle tree.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = FieldWriter::new();
        w.u8(TYPE, self.entry_type.code()).i64(AT, self.at_us);
        if let Some(k) = &self.device_key {
            w.raw(DEVICE_KEY, &k.to_bytes());
        }
        if let Some(id) = &self.recording_id {
            w.raw(RECORDING_ID, &id.0);
        }
        if let Some(s) = self.seq {
            w.u64(SEQ, s);
        }
        for (field, v) in [
            (RECORD_HASH, &self.record_hash),
            (CIPHERTEXT_SHA256, &self.ciphertext_sha256),
            (CONFLICTING_HASH, &self.conflicting_hash),
        ] {
            if let Some(h) = v {
                w.raw(field, h);
            }
        }
        for (field, v) in [(ACTOR, &self.actor), (LABEL, &self.label), (DETAIL, &self.detail)] {
            if let Some(s) = v {
                w.str(field, s);
            }
        }
        w.into_object(kind::LOG_ENTRY)
    }

    /// Parses exactly one entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (kind, _, body, rest) = split_object(bytes)?;
        if kind != kind::LOG_ENTRY {
            return Err(DecodeError::WrongKind { expected: "log entry", found: kind });
        }
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        let mut r = FieldReader::new("log entry", body)?;
        let e = LogEntry {
            entry_type: EntryType::from_code(r.u8(TYPE)?)?,
            at_us: r.i64(AT)?,
            device_key: read_optional_key(&mut r, DEVICE_KEY)?,
            recording_id: r.optional_array(RECORDING_ID)?.map(RecordingId),
            seq: r.optional_array::<8>(SEQ)?.map(u64::from_be_bytes),
            record_hash: r.optional_array(RECORD_HASH)?,
            ciphertext_sha256: r.optional_array(CIPHERTEXT_SHA256)?,
            conflicting_hash: r.optional_array(CONFLICTING_HASH)?,
            actor: r.optional_str(ACTOR)?,
            label: r.optional_str(LABEL)?,
            detail: r.optional_str(DETAIL)?,
        };
        r.finish()?;
        e.validate()?;
        Ok(e)
    }
}

const TH_SIZE: Field = f(1, "tree_size");
const TH_ROOT: Field = f(2, "root_hash");
const TH_AT: Field = f(3, "timestamp_us");

/// A log tree head, signed by the server: the log had `tree_size` entries with this root
/// at this time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TreeHead {
    /// Number of entries.
    pub tree_size: u64,
    /// RFC 9162 Merkle tree hash of those entries.
    #[serde(with = "crate::record::hex_bytes")]
    pub root_hash: Hash,
    /// Server time of signing, µs since the epoch.
    pub timestamp_us: i64,
}

impl Object for TreeHead {
    const KIND: u8 = kind::TREE_HEAD;
    const NAME: &'static str = "tree head";
    const DOMAIN: &'static [u8] = DOMAIN_TREE_HEAD_SIGNATURE;

    fn write(&self, w: &mut FieldWriter) {
        w.u64(TH_SIZE, self.tree_size).raw(TH_ROOT, &self.root_hash).i64(TH_AT, self.timestamp_us);
    }

    fn read(r: &mut FieldReader<'_>) -> Result<Self, DecodeError> {
        Ok(TreeHead {
            tree_size: r.u64(TH_SIZE)?,
            root_hash: r.array(TH_ROOT)?,
            timestamp_us: r.i64(TH_AT)?,
        })
    }
}
