//! The evidence bundle: what it holds, where, and its manifest.
//!
//! A bundle is a directory (or the same files in one POSIX ustar archive) that carries
//! everything needed to verify one recording offline:
//!
//! ```text
//! BUNDLE                          the marker line "custody-bundle 2"
//! README.txt                      how to verify it, in plain words
//! MANIFEST.sha256                 SHA-256 of every other file, in `sha256sum` format
//! recording/records.bin           the signed records, in chain order
//! recording/segments/00000001.age the sealed segments, named by chain position
//! custody/server-key.txt          the server's public key (`ed25519:…`)
//! custody/device-certificate.bin  the device's signed certificate
//! custody/receipts.bin            a signed receipt per stored record
//! custody/receipt-proofs.bin      consistency proofs from each receipt's tree to the head
//! custody/tree-head.bin           the signed log head every proof is against
//! custody/log-proofs.bin          the log entries about the recording, with inclusion proofs
//! custody/tsa-roots.pem           optional: the time-stamp authorities' roots the team ships
//! ```
//!
//! The manifest can be checked with `sha256sum -c MANIFEST.sha256` as well as by custody;
//! it is an index against accidental damage and missing files. What makes the bundle
//! evidence is the signatures and proofs inside it, checked against a server key the
//! verifier trusts.
//!
//! **Versions.** `custody-bundle 2` adds `custody/receipt-proofs.bin` and requires the
//! retrieval's access entry to carry its statement ([`crate::statement`]); every object
//! inside stays format version 1. A `custody-bundle 1` bundle, made by a server before
//! statements existed, still verifies, but what it leaves out cannot be proven complete.
//! `custody-bundle 3` also carries, in `custody/log-proofs.bin`, the RFC 3161 time-stamp
//! token entries ([`crate::log::EntryType::TimeStampToken`]) that cover its receipted
//! records, counts them in the retrieval statement, and proves each stamped head's tree
//! consistent with the bundle's head in `custody/receipt-proofs.bin`; it may carry
//! [`TSA_ROOTS`]. Versions 1 and 2 still read and verify as before.

use crate::encoding::{DecodeError, Field, FieldReader, FieldWriter};
use crate::record::{kind, Hash};
use crate::report::{code, Check};

/// The marker file's name.
pub const MARKER: &str = "BUNDLE";
/// The marker file's exact content, as this version writes it: bundle version 2, whose
/// retrieval entry states the chain and the entries (see [`crate::statement`]) and which
/// carries [`RECEIPT_PROOFS`].
pub const MARKER_CONTENT: &str = MARKER_CONTENT_V2;
/// The marker of a version-2 bundle: a retrieval statement and receipt proofs, no
/// time-stamp tokens.
pub const MARKER_CONTENT_V2: &str = "custody-bundle 2\n";
/// The marker of a version-3 bundle: version 2 plus the time-stamp token entries that cover
/// its receipted records, counted in the statement, with consistency proofs for the
/// stamped heads (`docs/format.md` §10.6, §11.4).
pub const MARKER_CONTENT_V3: &str = "custody-bundle 3\n";
/// The marker of a version-1 bundle (made before retrieval statements and receipt
/// proofs): still read, but its completeness cannot be proven.
pub const MARKER_CONTENT_V1: &str = "custody-bundle 1\n";
/// The manifest's name.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// The plain-language instructions.
pub const README: &str = "README.txt";
/// The signed records.
pub const RECORDS: &str = "recording/records.bin";
/// The directory of sealed segments.
pub const SEGMENTS_DIR: &str = "recording/segments";
/// The server's public key.
pub const SERVER_KEY: &str = "custody/server-key.txt";
/// The device certificate.
pub const DEVICE_CERT: &str = "custody/device-certificate.bin";
/// The receipts.
pub const RECEIPTS: &str = "custody/receipts.bin";
/// The signed tree head.
pub const TREE_HEAD: &str = "custody/tree-head.bin";
/// The log entries with their inclusion proofs.
pub const LOG_PROOFS: &str = "custody/log-proofs.bin";
/// The consistency proofs from each receipt's tree to the bundle's head (bundle version 2).
pub const RECEIPT_PROOFS: &str = "custody/receipt-proofs.bin";
/// Optional (bundle version 3): concatenated PEM certificates, the RFC 3161 time-stamp
/// authorities' roots the legal team ships with its bundles (`custody serve --tsa-root`).
/// Listed in the manifest like every file; a verifier reports tokens checked against them
/// as checked against roots that came with the bundle, not ones it was given.
pub const TSA_ROOTS: &str = "custody/tsa-roots.pem";
/// Object kind of a [`ConsistencyProof`].
pub const KIND_CONSISTENCY_PROOF: u8 = 22;
/// Longest path in a bundle (ustar's name field without a prefix).
pub const MAX_PATH_LEN: usize = 100;

/// The bundle version a marker file's content names: 1, 2 or 3, or `None` for anything
/// else (not a bundle this version can read). The content must be exactly one of the
/// marker lines, newline included.
pub fn marker_version(content: &[u8]) -> Option<u8> {
    [(MARKER_CONTENT_V3, 3), (MARKER_CONTENT_V2, 2), (MARKER_CONTENT_V1, 1)]
        .into_iter()
        .find(|(marker, _)| content == marker.as_bytes())
        .map(|(_, version)| version)
}

/// The path of the sealed segment at chain position `seq`.
pub fn segment_path(seq: u64) -> String {
    format!("{SEGMENTS_DIR}/{seq:08}.age")
}

/// The chain position a segment path names, if it is one.
pub fn segment_seq(path: &str) -> Option<u64> {
    let name = path.strip_prefix(SEGMENTS_DIR)?.strip_prefix('/')?.strip_suffix(".age")?;
    if name.len() < 8 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Whether `path` may appear in a bundle: relative, `/`-separated, made of `a-z A-Z 0-9 .
/// _ -`, no empty, `.` or `..` component, at most [`MAX_PATH_LEN`] bytes. Anything else is
/// refused before a file is opened, so a hostile manifest cannot reach outside the bundle.
pub fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_LEN
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// One manifest line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The file's path in the bundle.
    pub path: String,
    /// Its SHA-256.
    pub sha256: Hash,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestError {
    /// A line is not `<64 hex digits><two spaces><path>`.
    #[error("manifest line {line} is not `<sha256 hex>  <path>`")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A path that could escape the bundle or is not allowed.
    #[error("manifest line {line} names an unsafe path")]
    UnsafePath {
        /// 1-based line number.
        line: usize,
    },
    /// Paths not in strictly increasing byte order (which also rules out duplicates).
    #[error("manifest line {line} is out of order or repeats a path")]
    OutOfOrder {
        /// 1-based line number.
        line: usize,
    },
    /// The manifest lists itself.
    #[error("the manifest lists itself")]
    ListsItself,
    /// Not UTF-8, or over 4 MiB.
    #[error("the manifest is not UTF-8 text of at most 4 MiB")]
    NotText,
}

/// The manifest: every file of the bundle but itself, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The entries, in increasing path order.
    pub entries: Vec<ManifestEntry>,
}

impl Manifest {
    /// A manifest of these files (sorted here).
    pub fn new(mut entries: Vec<ManifestEntry>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// The text form: `<hex>  <path>\n` per file, as `sha256sum` writes it.
    pub fn to_text(&self) -> String {
        self.entries.iter().map(|e| format!("{}  {}\n", hex::encode(e.sha256), e.path)).collect()
    }

    /// Parses the text form strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > 4 << 20 {
            return Err(ManifestError::NotText);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
        let mut entries: Vec<ManifestEntry> = Vec::new();
        let body = text.strip_suffix('\n').unwrap_or(text);
        if body.is_empty() {
            return Ok(Manifest::default());
        }
        for (i, line) in body.split('\n').enumerate() {
            let line_no = i + 1;
            let (hash_hex, path) =
                line.split_once("  ").ok_or(ManifestError::Malformed { line: line_no })?;
            let sha256: Hash = hex::decode(hash_hex)
                .ok()
                .filter(|_| {
                    hash_hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                })
                .and_then(|v| v.try_into().ok())
                .ok_or(ManifestError::Malformed { line: line_no })?;
            if !is_safe_path(path) {
                return Err(ManifestError::UnsafePath { line: line_no });
            }
            if path == MANIFEST {
                return Err(ManifestError::ListsItself);
            }
            if entries.last().is_some_and(|last| last.path.as_str() >= path) {
                return Err(ManifestError::OutOfOrder { line: line_no });
            }
            entries.push(ManifestEntry { path: path.to_string(), sha256 });
        }
        Ok(Manifest { entries })
    }

    /// Compares the manifest with the files actually present (path and SHA-256 of each,
    /// the manifest itself excluded): one check per problem, or one `ok` check.
    pub fn check(&self, present: &[(String, Hash)]) -> Vec<Check> {
        let mut checks = Vec::new();
        for e in &self.entries {
            match present.iter().find(|(p, _)| *p == e.path) {
                None => checks.push(Check::new(
                    code::BUNDLE_FILE_MISSING,
                    format!("{} is listed in the manifest but absent", e.path),
                )),
                Some((_, h)) if *h != e.sha256 => checks.push(Check::new(
                    code::BUNDLE_FILE_MISMATCH,
                    format!("{} does not match its hash in the manifest", e.path),
                )),
                Some(_) => {}
            }
        }
        for (p, _) in present {
            if p != MANIFEST && !self.entries.iter().any(|e| e.path == *p) {
                checks.push(Check::new(
                    code::BUNDLE_FILE_UNLISTED,
                    format!("{p} is in the bundle but not in the manifest"),
                ));
            }
        }
        if checks.is_empty() {
            checks.push(Check::new(
                code::BUNDLE_MANIFEST_VALID,
                format!("all {} files match the manifest", self.entries.len()),
            ));
        }
        checks
    }
}

const LP_INDEX: Field = Field { tag: 1, name: "log_index" };
const LP_ENTRY: Field = Field { tag: 2, name: "entry" };
const LP_PATH: Field = Field { tag: 3, name: "path" };
const LP_HASH: Field = Field { tag: 1, name: "hash" };

/// A custody-log entry as a bundle carries it: its index, its exact encoding, and its
/// inclusion proof against the bundle's tree head. Unsigned: the proof and the signed head
/// are what bind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogProof {
    /// Index of the entry in the log.
    pub log_index: u64,
    /// The entry's encoding (a [`crate::log::LogEntry`] object).
    pub entry: Vec<u8>,
    /// The RFC 9162 inclusion path, leaf to root.
    pub path: Vec<Hash>,
}

/// A proof's path as list items, each one field `hash` (tag 1).
fn path_items(path: &[Hash]) -> Vec<Vec<u8>> {
    path.iter()
        .map(|h| {
            let mut item = FieldWriter::new();
            item.raw(LP_HASH, h);
            item.into_bytes()
        })
        .collect()
}

/// Reads a path written by [`path_items`].
fn read_path(r: &mut FieldReader<'_>, field: Field) -> Result<Vec<Hash>, DecodeError> {
    r.list(field)?
        .into_iter()
        .map(|item| {
            let mut ir = FieldReader::new("proof hash", item)?;
            let h = ir.array(LP_HASH)?;
            ir.finish()?;
            Ok(h)
        })
        .collect()
}

impl LogProof {
    /// Encodes it (object kind 20).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = FieldWriter::new();
        let path = path_items(&self.path);
        w.u64(LP_INDEX, self.log_index).raw(LP_ENTRY, &self.entry).list(LP_PATH, &path);
        w.into_object(kind::LOG_PROOF)
    }

    /// Reads one from the front of `input`.
    pub fn read(input: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (k, _, body, rest) = crate::encoding::split_object(input)?;
        if k != kind::LOG_PROOF {
            return Err(DecodeError::WrongKind { expected: "log proof", found: k });
        }
        let mut r = FieldReader::new("log proof", body)?;
        let log_index = r.u64(LP_INDEX)?;
        let entry = r.required(LP_ENTRY)?.to_vec();
        let path = read_path(&mut r, LP_PATH)?;
        r.finish()?;
        Ok((LogProof { log_index, entry, path }, rest))
    }

    /// Parses a concatenation (a bundle's `custody/log-proofs.bin`).
    pub fn parse_all(input: &[u8]) -> Result<Vec<Self>, (usize, DecodeError)> {
        parse_concatenation(input, Self::read)
    }
}

/// Parses a file of objects one after another with `read`; on failure, the position of
/// the object that failed and why.
fn parse_concatenation<T>(
    mut input: &[u8],
    read: impl Fn(&[u8]) -> Result<(T, &[u8]), DecodeError>,
) -> Result<Vec<T>, (usize, DecodeError)> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (v, rest) = read(input).map_err(|e| (out.len(), e))?;
        out.push(v);
        input = rest;
    }
    Ok(out)
}

const CP_SIZE: Field = Field { tag: 1, name: "tree_size" };
const CP_PATH: Field = Field { tag: 2, name: "path" };

/// The RFC 9162 §2.1.4 consistency proof from an earlier tree of the log (a receipt's
/// `tree_size`) to the bundle's tree head, as `custody/receipt-proofs.bin` carries it (object
/// kind 22, unsigned: the receipt's signed root and the signed head are what it binds). With
/// it anyone can check that the log the server receipted a record under is a prefix of the
/// log the bundle was made from: a server that forked its log in between is caught.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The earlier tree's size (a receipt's `tree_size`).
    pub tree_size: u64,
    /// The proof's hashes, in RFC 9162 order.
    pub path: Vec<Hash>,
}

impl ConsistencyProof {
    /// Encodes it (object kind 22; `path` as a log proof's, `docs/format.md` §10.3).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = FieldWriter::new();
        w.u64(CP_SIZE, self.tree_size).list(CP_PATH, &path_items(&self.path));
        w.into_object(KIND_CONSISTENCY_PROOF)
    }

    /// Reads one from the front of `input`.
    pub fn read(input: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (k, _, body, rest) = crate::encoding::split_object(input)?;
        if k != KIND_CONSISTENCY_PROOF {
            return Err(DecodeError::WrongKind { expected: "consistency proof", found: k });
        }
        let mut r = FieldReader::new("consistency proof", body)?;
        let tree_size = r.u64(CP_SIZE)?;
        let path = read_path(&mut r, CP_PATH)?;
        r.finish()?;
        Ok((ConsistencyProof { tree_size, path }, rest))
    }

    /// Parses a concatenation (a bundle's `custody/receipt-proofs.bin`); on failure, the
    /// position of the object that failed and why.
    pub fn parse_all(input: &[u8]) -> Result<Vec<Self>, (usize, DecodeError)> {
        parse_concatenation(input, Self::read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_is_sha256sum_format() {
        let m = Manifest::new(vec![
            ManifestEntry { path: RECORDS.into(), sha256: [2; 32] },
            ManifestEntry { path: MARKER.into(), sha256: [1; 32] },
        ]);
        let text = m.to_text();
        assert!(text.starts_with(&format!("{}  BUNDLE\n", hex::encode([1u8; 32]))));
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let h = hex::encode([0xabu8; 32]);
        for (text, want) in [
            (format!("{h}  ../etc/passwd\n"), ManifestError::UnsafePath { line: 1 }),
            (format!("{h}  /abs\n"), ManifestError::UnsafePath { line: 1 }),
            (format!("{h}  a//b\n"), ManifestError::UnsafePath { line: 1 }),
            (format!("{h}  b\n{h}  a\n"), ManifestError::OutOfOrder { line: 2 }),
            (format!("{h}  a\n{h}  a\n"), ManifestError::OutOfOrder { line: 2 }),
            (format!("{h} a\n"), ManifestError::Malformed { line: 1 }),
            (format!("{}  a\n", h.to_uppercase()), ManifestError::Malformed { line: 1 }),
            (format!("{h}  MANIFEST.sha256\n"), ManifestError::ListsItself),
        ] {
            assert_eq!(Manifest::parse(text.as_bytes()).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn manifest_check_names_each_problem() {
        let m = Manifest::new(vec![
            ManifestEntry { path: "a".into(), sha256: [1; 32] },
            ManifestEntry { path: "b".into(), sha256: [2; 32] },
        ]);
        let codes = |present: &[(String, Hash)]| -> Vec<&str> {
            m.check(present).into_iter().map(|c| c.code).collect()
        };
        assert_eq!(
            codes(&[("a".into(), [1; 32]), ("b".into(), [2; 32])]),
            vec![code::BUNDLE_MANIFEST_VALID]
        );
        assert_eq!(codes(&[("a".into(), [1; 32])]), vec![code::BUNDLE_FILE_MISSING]);
        assert_eq!(
            codes(&[("a".into(), [9; 32]), ("b".into(), [2; 32])]),
            vec![code::BUNDLE_FILE_MISMATCH]
        );
        assert_eq!(
            codes(&[("a".into(), [1; 32]), ("b".into(), [2; 32]), ("c".into(), [3; 32])]),
            vec![code::BUNDLE_FILE_UNLISTED]
        );
    }

    #[test]
    fn segment_paths_round_trip() {
        assert_eq!(segment_path(7), "recording/segments/00000007.age");
        assert_eq!(segment_seq(&segment_path(123_456_789)), Some(123_456_789));
        assert_eq!(segment_seq("recording/segments/7.age"), None);
        assert!(is_safe_path(&segment_path(1)));
    }

    #[test]
    fn log_proof_round_trips() {
        let p = LogProof { log_index: 5, entry: vec![1, 2, 3], path: vec![[7; 32], [8; 32]] };
        let bytes = p.encode();
        let (q, rest) = LogProof::read(&bytes).unwrap();
        assert_eq!((q, rest.len()), (p, 0));
    }

    #[test]
    fn markers_name_their_version_exactly() {
        assert_eq!(marker_version(b"custody-bundle 3\n"), Some(3));
        assert_eq!(marker_version(b"custody-bundle 2\n"), Some(2));
        assert_eq!(marker_version(b"custody-bundle 1\n"), Some(1));
        for bad in [
            &b"custody-bundle 4\n"[..],
            &b"custody-bundle 3"[..],
            &b"custody-bundle 2"[..],
            &b"custody-bundle 2\n\n"[..],
            &b""[..],
        ] {
            assert_eq!(marker_version(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn consistency_proof_round_trips_with_the_log_proofs_path_encoding() {
        let p = ConsistencyProof { tree_size: 9, path: vec![[7; 32], [8; 32], [9; 32]] };
        let bytes = p.encode();
        assert_eq!(bytes[5], 22);
        // Byte for byte: tag 1 u64, then tag 2 the list of one-field items.
        let mut w = FieldWriter::new();
        w.u64(CP_SIZE, 9).list(CP_PATH, &path_items(&p.path));
        assert_eq!(bytes, w.into_object(22));
        let lp = LogProof { log_index: 1, entry: vec![], path: p.path.clone() }.encode();
        let tail = |b: &[u8], n: usize| b[b.len() - n..].to_vec();
        assert_eq!(tail(&bytes, 3 * 41 + 4), tail(&lp, 3 * 41 + 4));
        let mut two = bytes.clone();
        two.extend(ConsistencyProof { tree_size: 0, path: vec![] }.encode());
        let all = ConsistencyProof::parse_all(&two).unwrap();
        assert_eq!(all, vec![p, ConsistencyProof { tree_size: 0, path: vec![] }]);
        // A log proof is not a consistency proof.
        assert_eq!(ConsistencyProof::read(&lp).unwrap_err().code(), "wrong-kind");
        assert_eq!(ConsistencyProof::parse_all(&[&two[..], &lp[..]].concat()).unwrap_err().0, 2);
    }
}
