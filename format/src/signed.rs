//! Signed objects other than chain records: receipts, tree heads, device certificates.
//!
//! Each is encoded once and signed over those bytes behind its own domain string, exactly
//! as records are; on disk and on the wire it is `object bytes || signature (64 bytes)`.

use ed25519_dalek::SigningKey;

use crate::encoding::{split_object, DecodeError, FieldReader, FieldWriter};
use crate::ids::PublicKey;
use crate::primitives;

/// A kind of object that can be signed.
pub trait Object: Sized + Clone {
    /// Its kind byte.
    const KIND: u8;
    /// Its name in errors and in the specification.
    const NAME: &'static str;
    /// The domain string its signature input begins with.
    const DOMAIN: &'static [u8];
    /// Writes its fields.
    fn write(&self, w: &mut FieldWriter);
    /// Reads its fields (the caller checks that nothing is left over).
    fn read(r: &mut FieldReader<'_>) -> Result<Self, DecodeError>;

    /// The object's one encoding.
    fn encode(&self) -> Vec<u8> {
        let mut w = FieldWriter::new();
        self.write(&mut w);
        w.into_object(Self::KIND)
    }
}

/// An object with its exact signed bytes and signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<T> {
    bytes: Vec<u8>,
    value: T,
    signature: [u8; 64],
}

impl<T: Object> Signed<T> {
    /// Encodes `value` once and signs it.
    pub fn sign(value: T, key: &SigningKey) -> Self {
        let bytes = value.encode();
        let signature = primitives::sign(key, T::DOMAIN, &bytes);
        Signed { bytes, value, signature }
    }

    /// Reads one signed object from the front of `input`; returns it and the rest.
    pub fn read(input: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (kind, object, body, rest) = split_object(input)?;
        if kind != T::KIND {
            return Err(DecodeError::WrongKind { expected: T::NAME, found: kind });
        }
        let mut r = FieldReader::new(T::NAME, body)?;
        let value = T::read(&mut r)?;
        r.finish()?;
        let Some((signature, rest)) = rest.split_first_chunk::<64>() else {
            return Err(DecodeError::Truncated {
                what: "signature",
                needed: 64,
                available: rest.len(),
            });
        };
        Ok((Signed { bytes: object.to_vec(), value, signature: *signature }, rest))
    }

    /// Parses exactly one signed object.
    pub fn parse(input: &[u8]) -> Result<Self, DecodeError> {
        let (v, rest) = Self::read(input)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        Ok(v)
    }

    /// Parses a concatenation of signed objects, reporting the position of the first that
    /// fails.
    pub fn parse_all(mut input: &[u8]) -> Result<Vec<Self>, (usize, DecodeError)> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (v, rest) = Self::read(input).map_err(|e| (out.len(), e))?;
            out.push(v);
            input = rest;
        }
        Ok(out)
    }

    /// Whether `key` signed these bytes, under this kind's domain.
    pub fn verify(&self, key: &PublicKey) -> bool {
        primitives::verify(key.verifying_key(), T::DOMAIN, &self.bytes, &self.signature)
    }

    /// The value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The exact signed bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// `bytes || signature`, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend_from_slice(&self.signature);
        out
    }
}

/// Reads a public key field, refusing invalid and weak keys.
pub(crate) fn read_key(
    r: &mut FieldReader<'_>,
    f: crate::encoding::Field,
) -> Result<PublicKey, DecodeError> {
    PublicKey::from_bytes(&r.array(f)?)
        .map_err(|_| DecodeError::InvalidValue { field: f.name, reason: "not a valid Ed25519 key" })
}

/// Reads an optional public key field.
pub(crate) fn read_optional_key(
    r: &mut FieldReader<'_>,
    f: crate::encoding::Field,
) -> Result<Option<PublicKey>, DecodeError> {
    match r.optional_array::<32>(f)? {
        Some(b) => PublicKey::from_bytes(&b).map(Some).map_err(|_| DecodeError::InvalidValue {
            field: f.name,
            reason: "not a valid Ed25519 key",
        }),
        None => Ok(None),
    }
}
