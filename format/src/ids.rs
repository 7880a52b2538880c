//! Identifiers: recording ids, public keys, and short human-checkable key fingerprints.

use ed25519_dalek::VerifyingKey;
use rand_core::CryptoRngCore;
use thiserror::Error;

use crate::primitives::{sha256, DOMAIN_KEY_FINGERPRINT};

/// A recording's identifier: 128 random bits, chosen by the device when recording starts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(pub [u8; 16]);

impl RecordingId {
    /// A fresh random id from a cryptographic RNG.
    pub fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut b = [0u8; 16];
        rng.fill_bytes(&mut b);
        RecordingId(b)
    }

    /// Parses the canonical form: 32 lower-case hex digits (docs/format.md). Upper-case
    /// digits are refused, so that one recording has one name everywhere (a file name, a
    /// URL, a log) and two spellings are never taken for two recordings, or one.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = hex::decode(s).map_err(|_| IdError::NotHex { what: "recording id" })?;
        let id = RecordingId(
            bytes.try_into().map_err(|_| IdError::WrongLength { what: "recording id", len: 16 })?,
        );
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(IdError::NotLowerCase { what: "recording id" });
        }
        Ok(id)
    }
}

impl std::fmt::Display for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for RecordingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordingId({self})")
    }
}

/// An Ed25519 public key (RFC 8032) of a device or a server, checked to be a valid,
/// non-weak curve point when parsed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

/// Text prefix of a public key.
const KEY_PREFIX: &str = "ed25519:";

impl PublicKey {
    /// The key from its 32 bytes; refuses encodings that are not a point, and small-order
    /// (weak) points, for which a signature proves nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, IdError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| IdError::InvalidKey)?;
        if key.is_weak() {
            return Err(IdError::InvalidKey);
        }
        Ok(PublicKey(key))
    }

    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The dalek key, for verification.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Parses `ed25519:<64 hex digits>`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let hex_part = s.trim().strip_prefix(KEY_PREFIX).ok_or(IdError::MissingPrefix)?;
        let bytes = hex::decode(hex_part).map_err(|_| IdError::NotHex { what: "public key" })?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| IdError::WrongLength { what: "public key", len: 32 })?;
        Self::from_bytes(&bytes)
    }

    /// The key's short fingerprint, for people to compare out of band.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_key(&self.to_bytes())
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(k: VerifyingKey) -> Self {
        PublicKey(k)
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{KEY_PREFIX}{}", hex::encode(self.to_bytes()))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// A key fingerprint: the first 100 bits of `SHA-256("custody/v1/key-fingerprint\0" ||
/// key)`, written as four groups of five Crockford base32 characters, e.g.
/// `7Q2MX-0K4RT-…`. Short enough to read over the phone, long enough (2^100) that nobody
/// can make a second key with the same one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 13]);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl Fingerprint {
    /// The fingerprint of a 32-byte public key.
    pub fn of_key(key: &[u8; 32]) -> Self {
        let h = sha256(&[DOMAIN_KEY_FINGERPRINT, key]);
        let mut b = [0u8; 13];
        b.copy_from_slice(&h[..13]);
        // Only the first 100 bits are ever shown, so only they take part in comparisons.
        b[12] &= 0xF0;
        Fingerprint(b)
    }

    /// Parses a fingerprint as people write it: 20 Crockford base32 characters, in any
    /// case, with or without the dashes; `I` and `L` read as `1`, `O` as `0`.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let mut b = [0u8; 13];
        let mut n = 0usize;
        for c in s.trim().chars().filter(|c| *c != '-') {
            let c = match c.to_ascii_uppercase() {
                'I' | 'L' => '1',
                'O' => '0',
                c => c,
            };
            let v = CROCKFORD
                .iter()
                .position(|&d| char::from(d) == c)
                .ok_or(IdError::NotFingerprint)?;
            if n == 20 {
                return Err(IdError::NotFingerprint);
            }
            for j in 0..5 {
                if (v >> (4 - j)) & 1 == 1 {
                    let bit = n * 5 + j;
                    b[bit / 8] |= 0x80 >> (bit % 8);
                }
            }
            n += 1;
        }
        if n != 20 {
            return Err(IdError::NotFingerprint);
        }
        Ok(Fingerprint(b))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 20 characters of 5 bits each = the first 100 bits.
        let bit = |i: usize| (self.0[i / 8] >> (7 - i % 8)) & 1;
        for c in 0..20 {
            if c > 0 && c % 5 == 0 {
                f.write_str("-")?;
            }
            let v = (0..5).fold(0usize, |acc, j| (acc << 1) | usize::from(bit(c * 5 + j)));
            write!(f, "{}", CROCKFORD[v] as char)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why an identifier could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Not a key fingerprint (four groups of five Crockford base32 characters).
    #[error("a fingerprint is 20 characters in four groups of five, like 7Q2MX-0K4RT-9ZB1C-XW3HN")]
    NotFingerprint,
    /// Not hexadecimal.
    #[error("{what} is not hexadecimal")]
    NotHex {
        /// Which identifier.
        what: &'static str,
    },
    /// The wrong number of bytes.
    #[error("{what} must be {len} bytes")]
    WrongLength {
        /// Which identifier.
        what: &'static str,
        /// Bytes it must have.
        len: usize,
    },
    /// Hex digits in upper case where the canonical form is lower-case.
    #[error("{what} must be written in lower-case hex digits")]
    NotLowerCase {
        /// Which identifier.
        what: &'static str,
    },
    /// A public key without the `ed25519:` prefix.
    #[error("a public key is written `ed25519:` followed by 64 hex digits")]
    MissingPrefix,
    /// Not a usable Ed25519 public key.
    #[error("not a valid Ed25519 public key (not a curve point, or a weak small-order point)")]
    InvalidKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn key_text_round_trips_and_fingerprint_is_stable() {
        let key = PublicKey::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let text = key.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(PublicKey::parse(&text).unwrap(), key);
        let fp = key.fingerprint().to_string();
        assert_eq!(fp.len(), 23);
        assert_eq!(fp.matches('-').count(), 3);
        assert!(fp.chars().all(|c| c == '-' || CROCKFORD.contains(&(c as u8))));
        let other = PublicKey::from(SigningKey::from_bytes(&[2; 32]).verifying_key());
        assert_ne!(other.fingerprint(), key.fingerprint());
    }

    #[test]
    fn a_fingerprint_parses_as_people_write_it() {
        for seed in 0..50u8 {
            let key = PublicKey::from(SigningKey::from_bytes(&[seed; 32]).verifying_key());
            let fp = key.fingerprint();
            let text = fp.to_string();
            assert_eq!(Fingerprint::parse(&text).unwrap(), fp);
            assert_eq!(Fingerprint::parse(&text.to_lowercase().replace('-', "")).unwrap(), fp);
            let misread = text.replace('1', "l").replace('0', "O");
            assert_eq!(Fingerprint::parse(&misread).unwrap(), fp);
        }
        let fp = PublicKey::from(SigningKey::from_bytes(&[9; 32]).verifying_key()).fingerprint();
        let text = fp.to_string();
        assert_eq!(Fingerprint::parse(&text[..22]), Err(IdError::NotFingerprint));
        assert_eq!(Fingerprint::parse(&format!("{text}0")), Err(IdError::NotFingerprint));
        assert_eq!(Fingerprint::parse("7Q2MX-0K4RT-9ZB1C-XW3HU"), Err(IdError::NotFingerprint));
        // One character changed is another fingerprint.
        let mut other: Vec<char> = text.chars().collect();
        other[0] = if other[0] == 'A' { 'B' } else { 'A' };
        let other: String = other.into_iter().collect();
        assert_ne!(Fingerprint::parse(&other).unwrap(), fp);
    }

    #[test]
    fn weak_and_malformed_keys_are_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(PublicKey::from_bytes(&identity).unwrap_err(), IdError::InvalidKey);
        assert_eq!(PublicKey::parse("abcd").unwrap_err(), IdError::MissingPrefix);
        assert!(matches!(PublicKey::parse("ed25519:zz"), Err(IdError::NotHex { .. })));
        assert!(matches!(PublicKey::parse("ed25519:00"), Err(IdError::WrongLength { .. })));
    }

    #[test]
    fn recording_id_parses_its_display() {
        let id = RecordingId([0xab; 16]);
        assert_eq!(RecordingId::parse(&id.to_string()).unwrap(), id);
        assert!(RecordingId::parse("ab").is_err());
    }

    #[test]
    fn an_upper_case_recording_id_is_refused_saying_so() {
        let text = RecordingId([0xab; 16]).to_string();
        for spelling in [text.to_uppercase(), format!("A{}", &text[1..])] {
            let e = RecordingId::parse(&spelling).unwrap_err();
            assert_eq!(e, IdError::NotLowerCase { what: "recording id" });
            assert!(e.to_string().contains("lower-case"), "{e}");
        }
        // Digits have no case: an id of digits only is its own canonical form.
        assert!(RecordingId::parse(&"01".repeat(16)).is_ok());
    }
}
