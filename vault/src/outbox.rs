//! What the vault keeps of its uploads: the enrollment, the server's receipts, and the
//! custody-log head the device holds (and the evidence, if a check of it ever failed).
//!
//! These are files in the vault like the journals, and like them they are the vault's:
//! the HTTP client (`custody-client`) fills them, `custody status` ([`crate::status`])
//! reads them, and neither needs the other to do so. Nothing here touches the network.
//!
//! ```text
//! <vault>/enrollment.json               the server's URL, key, TLS certificate pin, our certificate
//! <vault>/recordings/<id>/receipts.bin  the signed receipts, one journal frame each
//! <vault>/log-head.json                 the largest log head seen: size, root, the signed object naming it
//! <vault>/log-inconsistent.json         written once a check fails; nothing more is sent while it exists
//! ```

use std::path::{Path, PathBuf};

use custody_durable::fsutil::replace_durable;
use custody_durable::journal::{self, Found, Journal};
use custody_format::ids::PublicKey;
use custody_format::receipt::Receipt;
use custody_format::signed::Signed;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use thiserror::Error;

const ENROLLMENT_FILE: &str = "enrollment.json";
/// The name of a recording's receipts journal, beside its `journal.bin`.
pub const RECEIPTS_FILE: &str = "receipts.bin";
const HEAD_FILE: &str = "log-head.json";
const INCONSISTENT_FILE: &str = "log-inconsistent.json";

/// The stable code of a failed custody-log consistency check.
pub const LOG_INCONSISTENT: &str = "log.inconsistent";

/// Reading or writing the upload state failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is there but does not hold what it should (damaged or hand-edited).
    #[error("{path}: {why}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The index failed.
    #[error("the index: {0}")]
    Index(#[from] sled::Error),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] crate::VaultError),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io { what, path: path.to_path_buf(), source }
}

fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, OutboxError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| OutboxError::Damaged { path: path.to_path_buf(), why: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// Writes `value` as `<dir>/<name>`, replacing it durably (a crash leaves the old file or
/// the new one, never a mix).
fn save<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), OutboxError> {
    let path = dir.join(name);
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| OutboxError::Damaged { path: path.clone(), why: e.to_string() })?;
    replace_durable(&path, &bytes, false).map_err(io_err("writing", &path))
}

/// What the vault keeps of its enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The server's base URL (`https://host:port`).
    pub url: String,
    /// The server's key, `ed25519:<hex>`: receipts must verify with it.
    pub server_key: String,
    /// SHA-256 of the server's TLS certificate at enrollment, hex, as the server named it.
    /// `None` for a plain-HTTP loopback server enrolled with an `http://` URL (or a server
    /// behind a reverse proxy). Enrollments made before `tls_pin` pinned exactly this
    /// certificate.
    pub tls_sha256: Option<String>,
    /// What the device accepts as the server's TLS certificate (`custody_client::tls`):
    /// `webpki` (a certificate from an authority the device trusts, for the URL's name) or
    /// `spki-sha256:<hex>` (the self-signed server's key). Written at enrollment, or on
    /// the first connection of a vault enrolled before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin: Option<String>,
    /// Our signed device certificate, hex.
    pub certificate: String,
    /// The label the legal team gave this device.
    pub label: String,
    /// The recipients the server named.
    pub recipients: Vec<String>,
    /// The server-signed case recipients the list came from, hex (`docs/api.md`, "Case
    /// recipients"); `None` in an enrollment made before servers signed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_recipients: Option<String>,
}

impl Enrollment {
    /// Reads `<vault>/enrollment.json`, if the vault is enrolled.
    pub fn load(vault_dir: &Path) -> Result<Option<Enrollment>, OutboxError> {
        load(&vault_dir.join(ENROLLMENT_FILE))
    }

    /// Writes `<vault>/enrollment.json` durably (replacing an earlier enrollment).
    pub fn save(&self, vault_dir: &Path) -> Result<(), OutboxError> {
        save(vault_dir, ENROLLMENT_FILE, self)
    }

    /// The server key, parsed.
    pub fn server_key(&self) -> Result<PublicKey, OutboxError> {
        PublicKey::parse(&self.server_key).map_err(|e| OutboxError::Damaged {
            path: PathBuf::from(ENROLLMENT_FILE),
            why: format!("server key: {e}"),
        })
    }
}

/// The receipts stored in a recording's directory, in the order they came: every intact
/// one in `receipts.bin`, read past any damage.
pub fn read_receipts(recording_dir: &Path) -> Result<Vec<Signed<Receipt>>, OutboxError> {
    let path = recording_dir.join(RECEIPTS_FILE);
    receipts_in(&path).map_err(io_err("reading", &path))
}

/// A frame of `receipts.bin` is a receipt if it parses as one (its signature is checked
/// against the enrolled server's key when it is stored and when a bundle is verified).
fn is_receipt(payload: &[u8], _: Found) -> bool {
    Signed::<Receipt>::parse(payload).is_ok()
}

/// The receipts in the receipts journal at `path` (none if it is missing), past any damage.
pub(crate) fn receipts_in(path: &Path) -> std::io::Result<Vec<Signed<Receipt>>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let scan = journal::scan(path, is_receipt)?;
    Ok(scan.payloads().filter_map(|p| Signed::<Receipt>::parse(p).ok()).collect())
}

/// What is wrong with a recording's `receipts.bin`, if anything, for a person: damage
/// (byte ranges) or a torn tail. Changes nothing: the file is repaired by the uploader,
/// the one writer of receipts, when it next stores one ([`open_receipts`]); until then
/// every intact receipt in it is read past the damage.
pub fn receipts_damage(recording_dir: &Path) -> std::io::Result<Option<String>> {
    let path = recording_dir.join(RECEIPTS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let scan = journal::scan(&path, is_receipt)?;
    let gaps: Vec<String> = scan.gaps().iter().map(ToString::to_string).collect();
    Ok((!scan.is_intact()).then(|| {
        format!(
            "receipts.bin holds {} intact receipts and {} that {} not a receipt ({}); \
             it is repaired, keeping every byte aside, when the next receipt is stored",
            scan.frames.len(),
            if gaps.len() == 1 { "a stretch" } else { "stretches" },
            if gaps.len() == 1 { "is" } else { "are" },
            gaps.join(", ")
        )
    }))
}

/// Opens a recording's `receipts.bin` for appending, creating it if it is missing. A torn
/// tail is cut back (kept aside as `receipts.torn-<offset>`) and damage elsewhere is
/// recovered past (the damaged file kept as `receipts.damaged-<time>`), as the vault does
/// with journals: every intact receipt stays, and new ones follow whole frames.
pub fn open_receipts(recording_dir: &Path) -> std::io::Result<Journal> {
    let path = recording_dir.join(RECEIPTS_FILE);
    if !path.exists() {
        return Journal::create(&path);
    }
    let mut scan = journal::scan(&path, is_receipt)?;
    if scan.is_damaged() {
        journal::recover(&path, &scan)?;
        scan = journal::scan(&path, is_receipt)?;
    }
    Journal::open_scanned(&path, &scan).map(|(j, _)| j)
}

/// A tree of the server's log, as a signed statement named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadRef {
    /// Entries in the tree.
    pub tree_size: u64,
    /// Its RFC 9162 root, hex.
    pub root_hash: String,
    /// What named it: `receipt` or `tree-head`.
    pub source: String,
    /// That signed object's bytes, hex (the server's own signature over size and root).
    pub signed: String,
}

impl HeadRef {
    /// The root as bytes (`None` if the stored hex is damaged).
    pub fn root(&self) -> Option<[u8; 32]> {
        hex::decode(&self.root_hash).ok()?.try_into().ok()
    }
}

/// The head the vault holds for its server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldHead {
    /// The server key it belongs to (`ed25519:…`).
    pub server_key: String,
    /// The tree.
    #[serde(flatten)]
    pub head: HeadRef,
    /// Device time it was stored, µs since the epoch.
    pub stored_at_us: i64,
}

/// What the vault writes when a consistency check fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inconsistency {
    /// Always [`LOG_INCONSISTENT`].
    pub code: String,
    /// What failed, for a person.
    pub message: String,
    /// The server key.
    pub server_key: String,
    /// The head the vault held.
    pub held: HeadRef,
    /// The head the server offered that does not extend (or is not extended by) it.
    pub offered: HeadRef,
    /// The proof the server gave, hex (empty if it gave none).
    pub proof: Vec<String>,
    /// Device time of the check, µs since the epoch.
    pub detected_at_us: i64,
}

/// The head held in `vault_dir`, if any.
pub fn held(vault_dir: &Path) -> Result<Option<HeldHead>, OutboxError> {
    load(&vault_dir.join(HEAD_FILE))
}

/// Stores `head` as the held head (fsynced, renamed into place).
pub fn store_held(vault_dir: &Path, head: &HeldHead) -> Result<(), OutboxError> {
    save(vault_dir, HEAD_FILE, head)
}

/// The recorded inconsistency, if a check ever failed.
pub fn inconsistency(vault_dir: &Path) -> Result<Option<Inconsistency>, OutboxError> {
    load(&vault_dir.join(INCONSISTENT_FILE))
}

/// Records a failed check (fsynced). An earlier record is kept: the first evidence counts.
pub fn record_inconsistency(vault_dir: &Path, i: &Inconsistency) -> Result<(), OutboxError> {
    if vault_dir.join(INCONSISTENT_FILE).exists() {
        return Ok(());
    }
    save(vault_dir, INCONSISTENT_FILE, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_head_survives_a_reopen_and_the_first_inconsistency_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(held(dir.path()).unwrap(), None);
        let h = HeldHead {
            server_key: "k".into(),
            head: HeadRef {
                tree_size: 3,
                root_hash: hex::encode([7u8; 32]),
                source: "test".into(),
                signed: String::new(),
            },
            stored_at_us: 1,
        };
        store_held(dir.path(), &h).unwrap();
        assert_eq!(held(dir.path()).unwrap(), Some(h.clone()));
        let i = |m: &str| Inconsistency {
            code: LOG_INCONSISTENT.into(),
            message: m.into(),
            server_key: "k".into(),
            held: h.head.clone(),
            offered: h.head.clone(),
            proof: vec![],
            detected_at_us: 2,
        };
        record_inconsistency(dir.path(), &i("first")).unwrap();
        record_inconsistency(dir.path(), &i("second")).unwrap();
        assert_eq!(inconsistency(dir.path()).unwrap().unwrap().message, "first");
    }

    #[test]
    fn a_damaged_enrollment_file_is_an_error_not_unenrolled() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Enrollment::load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(ENROLLMENT_FILE), b"{ not json").unwrap();
        assert!(matches!(Enrollment::load(dir.path()), Err(OutboxError::Damaged { .. })));
    }
}
