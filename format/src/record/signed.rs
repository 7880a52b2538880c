//! A record together with the exact bytes that were signed and the device's signature.

use ed25519_dalek::SigningKey;

use super::codec::decode_body;
use super::{Hash, Record};
use crate::encoding::{split_object, DecodeError};
use crate::ids::PublicKey;
use crate::primitives::{self, DOMAIN_RECORD_HASH, DOMAIN_RECORD_SIGNATURE};

/// A record as it was signed: its exact bytes, the parsed record and the device's
/// signature. On the wire and on disk it is `record bytes || signature (64 bytes)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRecord {
    bytes: Vec<u8>,
    record: Record,
    signature: [u8; 64],
}

impl SignedRecord {
    /// Encodes `record` once and signs those bytes.
    pub fn sign(record: Record, key: &SigningKey) -> Self {
        let bytes = record.encode();
        let signature = primitives::sign(key, DOMAIN_RECORD_SIGNATURE, &bytes);
        SignedRecord { bytes, record, signature }
    }

    /// Reads one signed record from the front of `input`, returning it and the rest.
    pub fn read(input: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let (kind, object, body, rest) = split_object(input)?;
        let record = decode_body(kind, body)?;
        let Some((signature, rest)) = rest.split_first_chunk::<64>() else {
            return Err(DecodeError::Truncated {
                what: "record signature",
                needed: 64,
                available: rest.len(),
            });
        };
        Ok((SignedRecord { bytes: object.to_vec(), record, signature: *signature }, rest))
    }

    /// Parses exactly one signed record.
    pub fn parse(input: &[u8]) -> Result<Self, DecodeError> {
        let (rec, rest) = Self::read(input)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { count: rest.len() });
        }
        Ok(rec)
    }

    /// Parses a concatenation of signed records (a bundle's `records.bin`), reporting the
    /// position of the first one that fails.
    pub fn parse_all(mut input: &[u8]) -> Result<Vec<Self>, (usize, DecodeError)> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (rec, rest) = Self::read(input).map_err(|e| (out.len(), e))?;
            out.push(rec);
            input = rest;
        }
        Ok(out)
    }

    /// The record.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The exact bytes that were signed.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// `record bytes || signature`, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend_from_slice(&self.signature);
        out
    }

    /// The record hash: `SHA-256("custody/v1/record-hash\0" || bytes)`.
    pub fn hash(&self) -> Hash {
        primitives::sha256(&[DOMAIN_RECORD_HASH, &self.bytes])
    }

    /// Whether `key` signed these exact bytes.
    pub fn verify(&self, key: &PublicKey) -> bool {
        primitives::verify(
            key.verifying_key(),
            DOMAIN_RECORD_SIGNATURE,
            &self.bytes,
            &self.signature,
        )
    }
}
