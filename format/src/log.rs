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
    /// An RFC 3161 time-stamp token was obtained over one of the log's own signed heads
    /// (`label` = the time-stamp authority's URL without credentials, `tree_head` = the
    /// signed head exactly as stamped, `tsa_token` = the DER TimeStampToken exactly as the
    /// authority returned it). Logging it orders and proves the token like any entry, so a
    /// bundle can carry it with an inclusion proof; the stamped head's `tree_size` is at
    /// most this entry's log index (the head was signed before the token was asked for).
    TimeStampToken,
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
            EntryType::TimeStampToken => 10,
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
            10 => EntryType::TimeStampToken,
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
            EntryType::TimeStampToken => &["label", "tree_head", "tsa_token"],
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
const CHAIN_COUNT: Field = f(12, "chain_count");
const CHAIN_LAST_SEQ: Field = f(13, "chain_last_seq");
const CHAIN_ENDED: Field = f(14, "chain_ended");
const CHAIN_HASH: Field = f(15, "chain_hash");
const ENTRIES_COUNT: Field = f(16, "entries_count");
const ENTRIES_HASH: Field = f(17, "entries_hash");
const TREE_HEAD: Field = f(18, "tree_head");
const TSA_TOKEN: Field = f(19, "tsa_token");

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
    /// Retrieval statement: how many of the recording's records were stored and
    /// receipted before this entry ([`crate::statement::Statement`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_count: Option<u64>,
    /// Retrieval statement: the highest of their positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_last_seq: Option<u64>,
    /// Retrieval statement: whether one of them is the end record (encoded as a u8, 0 or
    /// 1; any other value is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_ended: Option<bool>,
    /// Retrieval statement: [`crate::statement::chain_hash`] over them.
    #[serde(serialize_with = "opt_hex", skip_serializing_if = "Option::is_none")]
    pub chain_hash: Option<Hash>,
    /// Retrieval statement: how many earlier log entries the bundle must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_count: Option<u64>,
    /// Retrieval statement: [`crate::statement::entries_hash`] over them.
    #[serde(serialize_with = "opt_hex", skip_serializing_if = "Option::is_none")]
    pub entries_hash: Option<Hash>,
    /// Time-stamp token: the signed tree head that was stamped, exactly the bytes of a
    /// [`TreeHead`] object as `custody/tree-head.bin` holds one (kind 17). The token's
    /// message imprint is SHA-256 over these bytes (`docs/format.md` §9.2).
    #[serde(serialize_with = "opt_hex_bytes", skip_serializing_if = "Option::is_none")]
    pub tree_head: Option<Vec<u8>>,
    /// Time-stamp token: the DER TimeStampToken (the CMS ContentInfo of RFC 3161 §2.4.2)
    /// exactly as the authority returned it inside its TimeStampResp.
    #[serde(serialize_with = "opt_hex_bytes", skip_serializing_if = "Option::is_none")]
    pub tsa_token: Option<Vec<u8>>,
}

fn opt_hex_bytes<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
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
            chain_count: None,
            chain_last_seq: None,
            chain_ended: None,
            chain_hash: None,
            entries_count: None,
            entries_hash: None,
            tree_head: None,
            tsa_token: None,
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
            "chain_count" => self.chain_count.is_some(),
            "chain_last_seq" => self.chain_last_seq.is_some(),
            "chain_ended" => self.chain_ended.is_some(),
            "chain_hash" => self.chain_hash.is_some(),
            "entries_count" => self.entries_count.is_some(),
            "entries_hash" => self.entries_hash.is_some(),
            "tree_head" => self.tree_head.is_some(),
            "tsa_token" => self.tsa_token.is_some(),
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
        for (field, v) in [(CHAIN_COUNT, self.chain_count), (CHAIN_LAST_SEQ, self.chain_last_seq)] {
            if let Some(n) = v {
                w.u64(field, n);
            }
        }
        if let Some(ended) = self.chain_ended {
            w.u8(CHAIN_ENDED, u8::from(ended));
        }
        if let Some(h) = &self.chain_hash {
            w.raw(CHAIN_HASH, h);
        }
        if let Some(n) = self.entries_count {
            w.u64(ENTRIES_COUNT, n);
        }
        if let Some(h) = &self.entries_hash {
            w.raw(ENTRIES_HASH, h);
        }
        for (field, v) in [(TREE_HEAD, &self.tree_head), (TSA_TOKEN, &self.tsa_token)] {
            if let Some(b) = v {
                w.raw(field, b);
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
            chain_count: r.optional_array::<8>(CHAIN_COUNT)?.map(u64::from_be_bytes),
            chain_last_seq: r.optional_array::<8>(CHAIN_LAST_SEQ)?.map(u64::from_be_bytes),
            chain_ended: match r.optional_array::<1>(CHAIN_ENDED)? {
                None => None,
                Some([0]) => Some(false),
                Some([1]) => Some(true),
                Some(_) => {
                    return Err(DecodeError::InvalidValue {
                        field: "chain_ended",
                        reason: "must be 0 or 1",
                    })
                }
            },
            chain_hash: r.optional_array(CHAIN_HASH)?,
            entries_count: r.optional_array::<8>(ENTRIES_COUNT)?.map(u64::from_be_bytes),
            entries_hash: r.optional_array(ENTRIES_HASH)?,
            tree_head: r.optional(TREE_HEAD).map(<[u8]>::to_vec),
            tsa_token: r.optional(TSA_TOKEN).map(<[u8]>::to_vec),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::FieldWriter;

    fn access() -> LogEntry {
        let mut e = LogEntry::new(EntryType::Access, 1_700_000_000_000_000);
        e.actor = Some("Ana Ruiz".into());
        e.recording_id = Some(RecordingId([7; 16]));
        e.detail = Some("bundle".into());
        e
    }

    #[test]
    fn an_entry_without_the_statement_encodes_as_before() {
        // The six fields are optional: an entry without them is the same bytes as an entry
        // written before they existed, so old logs and old bundles read unchanged.
        let e = access();
        let mut w = FieldWriter::new();
        w.u8(TYPE, 8).i64(AT, e.at_us).raw(RECORDING_ID, &[7; 16]).str(ACTOR, "Ana Ruiz");
        w.str(DETAIL, "bundle");
        assert_eq!(e.encode(), w.into_object(kind::LOG_ENTRY));
        assert_eq!(LogEntry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn the_statement_fields_round_trip_in_tag_order() {
        let mut e = access();
        e.chain_count = Some(3);
        e.chain_last_seq = Some(3);
        e.chain_ended = Some(true);
        e.chain_hash = Some([0x11; 32]);
        e.entries_count = Some(5);
        e.entries_hash = Some([0x22; 32]);
        let bytes = e.encode();
        assert_eq!(LogEntry::decode(&bytes).unwrap(), e);
        let mut w = FieldWriter::new();
        w.u8(TYPE, 8).i64(AT, e.at_us).raw(RECORDING_ID, &[7; 16]).str(ACTOR, "Ana Ruiz");
        w.str(DETAIL, "bundle").u64(CHAIN_COUNT, 3).u64(CHAIN_LAST_SEQ, 3).u8(CHAIN_ENDED, 1);
        w.raw(CHAIN_HASH, &[0x11; 32]).u64(ENTRIES_COUNT, 5).raw(ENTRIES_HASH, &[0x22; 32]);
        assert_eq!(bytes, w.into_object(kind::LOG_ENTRY));
        // In JSON, an entry carries them only when it has them.
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["chain_ended"], true);
        assert_eq!(json["chain_hash"], hex::encode([0x11; 32]));
        assert!(serde_json::to_value(access()).unwrap().get("chain_hash").is_none());
    }

    #[test]
    fn chain_ended_other_than_0_or_1_and_wrong_widths_are_refused() {
        let entry = |ended: &[u8], count: &[u8]| {
            let mut w = FieldWriter::new();
            w.u8(TYPE, 8).i64(AT, 1).str(ACTOR, "a").str(DETAIL, "bundle");
            w.raw(CHAIN_COUNT, count).raw(CHAIN_ENDED, ended);
            LogEntry::decode(&w.into_object(kind::LOG_ENTRY))
        };
        assert_eq!(entry(&[0], &[0; 8]).unwrap().chain_ended, Some(false));
        assert_eq!(entry(&[1], &[0; 8]).unwrap().chain_ended, Some(true));
        for bad in [2u8, 0xff] {
            let e = entry(&[bad], &[0; 8]).unwrap_err();
            assert_eq!(e.code(), "invalid-value", "{bad}");
        }
        assert_eq!(entry(&[1, 0], &[0; 8]).unwrap_err().code(), "field-length");
        assert_eq!(entry(&[1], &[0; 4]).unwrap_err().code(), "field-length");
    }

    fn token() -> LogEntry {
        let mut e = LogEntry::new(EntryType::TimeStampToken, 1_700_000_000_000_000);
        e.label = Some("https://tsa.example/tsr".into());
        e.tree_head = Some(vec![0x17; 90]);
        e.tsa_token = Some(vec![0x30, 0x82, 0x01, 0x00]);
        e
    }

    #[test]
    fn a_time_stamp_token_entry_round_trips_in_tag_order() {
        let e = token();
        let bytes = e.encode();
        let mut w = FieldWriter::new();
        w.u8(TYPE, 10).i64(AT, e.at_us).str(LABEL, "https://tsa.example/tsr");
        w.raw(TREE_HEAD, &[0x17; 90]).raw(TSA_TOKEN, &[0x30, 0x82, 0x01, 0x00]);
        assert_eq!(bytes, w.into_object(kind::LOG_ENTRY));
        assert_eq!(LogEntry::decode(&bytes).unwrap(), e);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "time-stamp-token");
        assert_eq!(json["tsa_token"], "30820100");
        // Other entries do not grow the two keys in JSON.
        assert!(serde_json::to_value(access()).unwrap().get("tree_head").is_none());
    }

    #[test]
    fn a_time_stamp_token_entry_missing_a_required_field_is_refused() {
        for (name, strip) in [
            ("label", (|e: &mut LogEntry| e.label = None) as fn(&mut LogEntry)),
            ("tree_head", |e| e.tree_head = None),
            ("tsa_token", |e| e.tsa_token = None),
        ] {
            let mut e = token();
            strip(&mut e);
            let err = LogEntry::decode(&e.encode()).unwrap_err();
            assert_eq!(err, DecodeError::MissingField { field: name }, "{name}");
            assert_eq!(err.code(), "missing-field");
        }
        // An unknown entry type is still refused (11 is not assigned).
        let mut w = FieldWriter::new();
        w.u8(TYPE, 11).i64(AT, 1);
        assert_eq!(
            LogEntry::decode(&w.into_object(kind::LOG_ENTRY)).unwrap_err().code(),
            "invalid-value"
        );
    }
}
