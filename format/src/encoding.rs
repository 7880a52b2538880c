//! The one binary encoding every custody object uses.
//!
//! An object is a fixed header followed by fields:
//!
//! ```text
//! object := magic "CSTD" | version u8 (=1) | kind u8 | body_len u32be | body
//! body   := field*            (exactly body_len bytes)
//! field  := tag u8 | len u32be | value (len bytes)
//! ```
//!
//! Tags appear in strictly increasing order, so an object has exactly one encoding and a
//! repeated field is an error rather than an ambiguity. Unknown tags, unknown versions,
//! trailing bytes and objects over [`MAX_OBJECT_LEN`] are refused. Integers are big-endian
//! and fixed-width; strings are UTF-8; lists are `count u32be` then `len u32be | item` per
//! item, an item being a nested field sequence. `docs/format.md` is the full definition.

use thiserror::Error;

/// The four bytes every object starts with.
pub const MAGIC: [u8; 4] = *b"CSTD";
/// The only format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// The largest object, header included, that a parser accepts.
pub const MAX_OBJECT_LEN: usize = 64 * 1024;
/// Length of the object header (magic, version, kind, body length).
pub const HEADER_LEN: usize = 10;
/// The longest string a field may hold, in bytes.
pub const MAX_STRING_LEN: usize = 4096;
/// The most items a list may hold.
pub const MAX_LIST_ITEMS: usize = 1024;

/// What went wrong reading an object. Every variant names the field or the position.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the object (or a field of it) does.
    #[error("truncated: {what} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The object does not start with `CSTD`.
    #[error("not a custody object: expected magic \"CSTD\", found {found:02x?}")]
    BadMagic {
        /// The four bytes found instead.
        found: [u8; 4],
    },
    /// A version this parser does not know.
    #[error("unsupported format version {0} (this software reads version 1)")]
    UnsupportedVersion(u8),
    /// A kind byte that names no object.
    #[error("unknown object kind {0}")]
    UnknownKind(u8),
    /// A known kind, but not the one expected here.
    #[error("expected a {expected} object, found kind {found}")]
    WrongKind {
        /// The kind expected.
        expected: &'static str,
        /// The kind byte found.
        found: u8,
    },
    /// The object's declared length is over the limit.
    #[error("object of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes follow a complete object where none may.
    #[error("{count} trailing bytes after the object")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The same tag twice.
    #[error("duplicate field (tag {tag})")]
    DuplicateField {
        /// The repeated tag.
        tag: u8,
    },
    /// A tag lower than the one before it.
    #[error("field tag {tag} after tag {after}: fields must be in increasing tag order")]
    FieldOutOfOrder {
        /// The tag found.
        tag: u8,
        /// The tag before it.
        after: u8,
    },
    /// A tag this object kind does not define.
    #[error("unknown field tag {tag} in {object}")]
    UnknownField {
        /// The tag.
        tag: u8,
        /// The object being read.
        object: &'static str,
    },
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// The field's name.
        field: &'static str,
    },
    /// A fixed-width field has the wrong length.
    #[error("field `{field}` has {found} bytes, expected {expected}")]
    FieldLength {
        /// The field's name.
        field: &'static str,
        /// Its defined width.
        expected: usize,
        /// The width found.
        found: usize,
    },
    /// A string field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// The field's name.
        field: &'static str,
    },
    /// A string or list is over its limit.
    #[error("field `{field}` is too long ({len}, at most {max})")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length (bytes for strings, items for lists).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a value outside its defined range.
    #[error("field `{field}` has an invalid value: {reason}")]
    InvalidValue {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl DecodeError {
    /// A stable kebab-case name for the kind of error, as the test vectors spell it.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadMagic { .. } => "bad-magic",
            DecodeError::UnsupportedVersion(_) => "unsupported-version",
            DecodeError::UnknownKind(_) => "unknown-kind",
            DecodeError::WrongKind { .. } => "wrong-kind",
            DecodeError::TooLarge { .. } => "too-large",
            DecodeError::TrailingBytes { .. } => "trailing-bytes",
            DecodeError::DuplicateField { .. } => "duplicate-field",
            DecodeError::FieldOutOfOrder { .. } => "field-out-of-order",
            DecodeError::UnknownField { .. } => "unknown-field",
            DecodeError::MissingField { .. } => "missing-field",
            DecodeError::FieldLength { .. } => "field-length",
            DecodeError::InvalidUtf8 { .. } => "invalid-utf8",
            DecodeError::TooLong { .. } => "too-long",
            DecodeError::InvalidValue { .. } => "invalid-value",
        }
    }
}

/// A tag and the name used for it in errors and in `docs/format.md`.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Wire tag.
    pub tag: u8,
    /// Name in the specification.
    pub name: &'static str,
}

/// Writes the fields of an object (or of a list item) in tag order.
#[derive(Debug, Default)]
pub struct FieldWriter {
    buf: Vec<u8>,
    last: Option<u8>,
}

impl FieldWriter {
    /// An empty field sequence.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a raw field. Tags must be written in increasing order; a caller writing
    /// them out of order is a bug in this crate, caught by the round-trip tests.
    pub fn raw(&mut self, f: Field, value: &[u8]) -> &mut Self {
        debug_assert!(self.last.is_none_or(|l| l < f.tag), "tag {} out of order", f.tag);
        self.last = Some(f.tag);
        self.buf.push(f.tag);
        self.buf.extend_from_slice(&(value.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(value);
        self
    }

    /// A `u8` field.
    pub fn u8(&mut self, f: Field, v: u8) -> &mut Self {
        self.raw(f, &[v])
    }

    /// A `u32be` field.
    pub fn u32(&mut self, f: Field, v: u32) -> &mut Self {
        self.raw(f, &v.to_be_bytes())
    }

    /// A `u64be` field.
    pub fn u64(&mut self, f: Field, v: u64) -> &mut Self {
        self.raw(f, &v.to_be_bytes())
    }

    /// An `i64be` (two's complement) field.
    pub fn i64(&mut self, f: Field, v: i64) -> &mut Self {
        self.raw(f, &v.to_be_bytes())
    }

    /// A UTF-8 string field.
    pub fn str(&mut self, f: Field, v: &str) -> &mut Self {
        self.raw(f, v.as_bytes())
    }

    /// A list field whose items are already-encoded field sequences.
    pub fn list(&mut self, f: Field, items: &[Vec<u8>]) -> &mut Self {
        let mut v = Vec::new();
        v.extend_from_slice(&(items.len() as u32).to_be_bytes());
        for item in items {
            v.extend_from_slice(&(item.len() as u32).to_be_bytes());
            v.extend_from_slice(item);
        }
        self.raw(f, &v)
    }

    /// The encoded field sequence.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// The fields wrapped as a complete object of `kind`.
    pub fn into_object(self, kind: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.buf.len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(kind);
        out.extend_from_slice(&(self.buf.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.buf);
        out
    }
}

/// An object split off the front of an input: `(kind, whole object bytes, body, rest of
/// the input)`.
pub type Split<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Splits `input` into the first object and the rest. Checks magic, version, and length
/// limits.
pub fn split_object(input: &[u8]) -> Result<Split<'_>, DecodeError> {
    if input.len() < HEADER_LEN {
        return Err(DecodeError::Truncated {
            what: "object header",
            needed: HEADER_LEN,
            available: input.len(),
        });
    }
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&input[..4]);
    if magic != MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    if input[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(input[4]));
    }
    let kind = input[5];
    let body_len = u32::from_be_bytes([input[6], input[7], input[8], input[9]]) as usize;
    let total = HEADER_LEN.saturating_add(body_len);
    if total > MAX_OBJECT_LEN {
        return Err(DecodeError::TooLarge { len: total, max: MAX_OBJECT_LEN });
    }
    if input.len() < total {
        return Err(DecodeError::Truncated {
            what: "object body",
            needed: total,
            available: input.len(),
        });
    }
    let (object, rest) = input.split_at(total);
    Ok((kind, object, &object[HEADER_LEN..], rest))
}

/// Reads a field sequence: checks order and framing up front, then hands out fields by
/// tag; [`FieldReader::finish`] refuses any field nobody asked for.
#[derive(Debug)]
pub struct FieldReader<'a> {
    object: &'static str,
    fields: Vec<(u8, &'a [u8])>,
    taken: Vec<bool>,
}

impl<'a> FieldReader<'a> {
    /// Parses the framing of `body`, a field sequence of the named object.
    pub fn new(object: &'static str, body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut fields: Vec<(u8, &'a [u8])> = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if rest.len() < 5 {
                return Err(DecodeError::Truncated {
                    what: "field header",
                    needed: 5,
                    available: rest.len(),
                });
            }
            let tag = rest[0];
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let Some(value) = rest.get(5..5usize.saturating_add(len)) else {
                return Err(DecodeError::Truncated {
                    what: "field value",
                    needed: len,
                    available: rest.len() - 5,
                });
            };
            if let Some(&(last, _)) = fields.last() {
                if tag == last {
                    return Err(DecodeError::DuplicateField { tag });
                }
                if tag < last {
                    return Err(DecodeError::FieldOutOfOrder { tag, after: last });
                }
            }
            fields.push((tag, value));
            rest = &rest[5 + len..];
        }
        let taken = vec![false; fields.len()];
        Ok(FieldReader { object, fields, taken })
    }

    /// The value of field `f`, if present.
    pub fn optional(&mut self, f: Field) -> Option<&'a [u8]> {
        let i = self.fields.iter().position(|&(t, _)| t == f.tag)?;
        self.taken[i] = true;
        Some(self.fields[i].1)
    }

    /// The value of field `f`, which must be present.
    pub fn required(&mut self, f: Field) -> Result<&'a [u8], DecodeError> {
        self.optional(f).ok_or(DecodeError::MissingField { field: f.name })
    }

    /// A required fixed-width byte array.
    pub fn array<const N: usize>(&mut self, f: Field) -> Result<[u8; N], DecodeError> {
        fixed(f, self.required(f)?)
    }

    /// An optional fixed-width byte array.
    pub fn optional_array<const N: usize>(
        &mut self,
        f: Field,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        self.optional(f).map(|v| fixed(f, v)).transpose()
    }

    /// A required `u8`.
    pub fn u8(&mut self, f: Field) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(f)?[0])
    }

    /// A required `u32be`.
    pub fn u32(&mut self, f: Field) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(f)?))
    }

    /// A required `u64be`.
    pub fn u64(&mut self, f: Field) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(f)?))
    }

    /// A required `i64be`.
    pub fn i64(&mut self, f: Field) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(f)?))
    }

    /// A required UTF-8 string.
    pub fn str(&mut self, f: Field) -> Result<String, DecodeError> {
        string(f, self.required(f)?)
    }

    /// An optional UTF-8 string.
    pub fn optional_str(&mut self, f: Field) -> Result<Option<String>, DecodeError> {
        self.optional(f).map(|v| string(f, v)).transpose()
    }

    /// A required list; each item is returned as its raw field sequence.
    pub fn list(&mut self, f: Field) -> Result<Vec<&'a [u8]>, DecodeError> {
        let v = self.required(f)?;
        let Some((count, mut rest)) = v.split_first_chunk::<4>() else {
            return Err(DecodeError::Truncated { what: f.name, needed: 4, available: v.len() });
        };
        let count = u32::from_be_bytes(*count) as usize;
        if count > MAX_LIST_ITEMS {
            return Err(DecodeError::TooLong { field: f.name, len: count, max: MAX_LIST_ITEMS });
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(DecodeError::Truncated {
                    what: f.name,
                    needed: 4,
                    available: rest.len(),
                });
            };
            let len = u32::from_be_bytes(*len) as usize;
            let Some((item, tail)) = tail.split_at_checked(len) else {
                return Err(DecodeError::Truncated {
                    what: f.name,
                    needed: len,
                    available: tail.len(),
                });
            };
            items.push(item);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        Ok(items)
    }

    /// Refuses any field that was present but not read.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.taken.iter().position(|&t| !t) {
            Some(i) => {
                Err(DecodeError::UnknownField { tag: self.fields[i].0, object: self.object })
            }
            None => Ok(()),
        }
    }
}

fn fixed<const N: usize>(f: Field, v: &[u8]) -> Result<[u8; N], DecodeError> {
    v.try_into().map_err(|_| DecodeError::FieldLength {
        field: f.name,
        expected: N,
        found: v.len(),
    })
}

fn string(f: Field, v: &[u8]) -> Result<String, DecodeError> {
    if v.len() > MAX_STRING_LEN {
        return Err(DecodeError::TooLong { field: f.name, len: v.len(), max: MAX_STRING_LEN });
    }
    String::from_utf8(v.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field: f.name })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Field = Field { tag: 1, name: "a" };
    const B: Field = Field { tag: 2, name: "b" };

    fn object(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in fields {
            body.push(*t);
            body.extend_from_slice(&(v.len() as u32).to_be_bytes());
            body.extend_from_slice(v);
        }
        let mut w = FieldWriter::new();
        w.buf = body;
        w.into_object(9)
    }

    #[test]
    fn round_trip() {
        let mut w = FieldWriter::new();
        w.u64(A, 7).str(B, "hé");
        let bytes = w.into_object(9);
        let (kind, obj, body, rest) = split_object(&bytes).unwrap();
        assert_eq!((kind, obj.len(), rest.len()), (9, bytes.len(), 0));
        let mut r = FieldReader::new("test", body).unwrap();
        assert_eq!(r.u64(A).unwrap(), 7);
        assert_eq!(r.str(B).unwrap(), "hé");
        r.finish().unwrap();
    }

    #[test]
    fn duplicates_disorder_and_unknown_fields_are_refused() {
        let dup = object(&[(1, b"x"), (1, b"y")]);
        let (_, _, body, _) = split_object(&dup).unwrap();
        assert_eq!(
            FieldReader::new("t", body).unwrap_err(),
            DecodeError::DuplicateField { tag: 1 }
        );

        let disorder = object(&[(2, b"x"), (1, b"y")]);
        let (_, _, body, _) = split_object(&disorder).unwrap();
        assert_eq!(
            FieldReader::new("t", body).unwrap_err(),
            DecodeError::FieldOutOfOrder { tag: 1, after: 2 }
        );

        let unknown = object(&[(1, &[0; 8]), (7, b"")]);
        let (_, _, body, _) = split_object(&unknown).unwrap();
        let mut r = FieldReader::new("t", body).unwrap();
        r.u64(A).unwrap();
        assert_eq!(r.finish().unwrap_err(), DecodeError::UnknownField { tag: 7, object: "t" });
    }

    #[test]
    fn framing_errors_are_precise() {
        let ok = object(&[(1, &[0; 8])]);
        assert!(matches!(split_object(&ok[..5]), Err(DecodeError::Truncated { .. })));
        assert!(matches!(split_object(&ok[..ok.len() - 1]), Err(DecodeError::Truncated { .. })));
        let mut v2 = ok.clone();
        v2[4] = 2;
        assert_eq!(split_object(&v2).unwrap_err(), DecodeError::UnsupportedVersion(2));
        let mut magic = ok.clone();
        magic[0] = b'X';
        assert!(matches!(split_object(&magic), Err(DecodeError::BadMagic { .. })));
        let mut huge = ok.clone();
        huge[6..10].copy_from_slice(&(u32::MAX).to_be_bytes());
        assert!(matches!(split_object(&huge), Err(DecodeError::TooLarge { .. })));
        let (_, _, body, _) = split_object(&ok).unwrap();
        let mut r = FieldReader::new("t", body).unwrap();
        assert_eq!(
            r.u32(A).unwrap_err(),
            DecodeError::FieldLength { field: "a", expected: 4, found: 8 }
        );
    }
}
