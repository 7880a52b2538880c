//! Reading a bundle's parts under one rule (`docs/format.md` 11.2): a part that is absent
//! is reported `bundle.part.missing` (not checked) and the checks that need it are not
//! made; a part that is present but cannot be read is reported as a failure, and of a file
//! of several objects the objects before the first unreadable one are still checked.
//! Checking always goes on.

use std::io::ErrorKind;

use custody_format::encoding::DecodeError;
use custody_format::report::{code, Check};

use crate::source::Source;

/// The largest `records.bin`, receipts, log-proof or receipt-proof file read into memory
/// (64 MiB: about 100 000 segments, more than two days of 2 s segments).
pub(crate) const SMALL_LIMIT: u64 = 64 << 20;

/// The bytes of the part at `path`, or `None` when it is absent (reported
/// `bundle.part.missing`) or over `limit` bytes (reported `bundle.part.invalid`).
pub(crate) fn read(
    source: &dyn Source,
    path: &str,
    limit: u64,
    checks: &mut Vec<Check>,
) -> Option<Vec<u8>> {
    if !source.files().contains_key(path) {
        checks.push(Check::new(code::BUNDLE_PART_MISSING, format!("{path} is absent")));
        return None;
    }
    match source.read_small(path, limit) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == ErrorKind::InvalidData => {
            checks.push(Check::new(code::BUNDLE_PART_INVALID, format!("{path}: {e}")));
            None
        }
        Err(e) => {
            checks
                .push(Check::new(code::BUNDLE_PART_MISSING, format!("{path} cannot be read: {e}")));
            None
        }
    }
}

/// The one object of the part at `path`, parsed by `parse`; a parse error is reported
/// `bundle.part.invalid` with what the parser said.
pub(crate) fn single<T>(
    source: &dyn Source,
    path: &str,
    limit: u64,
    checks: &mut Vec<Check>,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Option<T> {
    let bytes = read(source, path, limit, checks)?;
    match parse(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            checks
                .push(Check::new(code::BUNDLE_PART_INVALID, format!("{path} cannot be read: {e}")));
            None
        }
    }
}

/// The objects of the part at `path`, a concatenation read one object at a time by `read`:
/// all of them, or those before the first that cannot be read (which is reported
/// `bundle.part.invalid`, naming its position; nothing after it is read, since an object
/// whose framing is wrong gives no reliable place to resume).
pub(crate) fn many<T>(
    source: &dyn Source,
    path: &str,
    checks: &mut Vec<Check>,
    read_one: impl Fn(&[u8]) -> Result<(T, &[u8]), DecodeError>,
) -> Option<Vec<T>> {
    let bytes = read(source, path, SMALL_LIMIT, checks)?;
    let mut out = Vec::new();
    let mut rest: &[u8] = &bytes;
    while !rest.is_empty() {
        match read_one(rest) {
            Ok((v, tail)) => {
                out.push(v);
                rest = tail;
            }
            Err(e) => {
                checks.push(Check::new(
                    code::BUNDLE_PART_INVALID,
                    format!(
                        "{path}: object {} (byte {}) cannot be read ({}): {e}; the {} before it are checked",
                        out.len(),
                        bytes.len() - rest.len(),
                        e.code(),
                        out.len()
                    ),
                ));
                break;
            }
        }
    }
    Some(out)
}

/// Which version of the bundle layout and rules a bundle is checked under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// `custody-bundle 1`: made before completeness statements and receipt proofs.
    V1,
    /// `custody-bundle 2`: with both. Also the rules for a bundle whose marker is absent or
    /// unreadable, so that removing or editing the marker never loosens a check.
    V2,
    /// `custody-bundle 3`: version 2 with the time-stamp token entries that cover its
    /// receipted records (counted in the statement), consistency proofs for their stamped
    /// heads, and optionally `custody/tsa-roots.pem`. Relabelling one as version 2 loosens
    /// nothing: its statement counted the tokens, so without them it no longer holds.
    V3,
}

/// Reads the `BUNDLE` marker.
pub(crate) fn marker(source: &dyn Source, checks: &mut Vec<Check>) -> Version {
    match read(source, custody_format::bundle::MARKER, 64, checks).as_deref() {
        Some(b"custody-bundle 1\n") => Version::V1,
        Some(b"custody-bundle 2\n") | None => Version::V2,
        Some(b"custody-bundle 3\n") => Version::V3,
        Some(other) => {
            checks.push(Check::new(
                code::BUNDLE_PART_INVALID,
                format!(
                    "BUNDLE reads {:?}, not \"custody-bundle 1\", \"custody-bundle 2\" or \"custody-bundle 3\": checked as version 2",
                    String::from_utf8_lossy(other)
                ),
            ));
            Version::V2
        }
    }
}

/// `custody/server-key.txt`: exactly the key's text form and one `\n`.
pub(crate) fn server_key(bytes: &[u8]) -> Result<custody_format::ids::PublicKey, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let line = text.strip_suffix('\n').ok_or("it does not end with one newline")?;
    let key = custody_format::ids::PublicKey::parse(line).map_err(|e| e.to_string())?;
    if key.to_string() != line {
        return Err(
            "it is not the key's text form (`ed25519:` and 64 lowercase hex digits) alone".into()
        );
    }
    Ok(key)
}
