//! Sealing: a segment encrypted as an age v1 file to the recipients, hashed as the
//! ciphertext is produced.
//!
//! age encrypts in 64 KiB chunks (ChaCha20-Poly1305 STREAM), writing each as it is done, so
//! sealing writes straight into the destination file through a hashing writer: the
//! ciphertext is never held whole in memory and never read back to be hashed.

use std::io::{self, Write};

use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a sealer could not be made.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SealError {
    /// No recipient: nobody could ever open the segments.
    #[error("no recipients: segments must be encrypted to at least one age recipient (the legal team's case key)")]
    NoRecipients,
    /// age refused the recipient set.
    #[error("age refused the recipients: {0}")]
    Age(String),
}

/// What sealing produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Ciphertext length.
    pub len: u64,
    /// Ciphertext SHA-256.
    pub sha256: [u8; 32],
}

/// Encrypts segments to a fixed set of age X25519 recipients.
#[derive(Clone)]
pub struct Sealer {
    recipients: Vec<age::x25519::Recipient>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("recipients", &self.recipients.len()).finish()
    }
}

impl Sealer {
    /// A sealer for these recipients (at least one).
    pub fn new(recipients: Vec<age::x25519::Recipient>) -> Result<Self, SealError> {
        if recipients.is_empty() {
            return Err(SealError::NoRecipients);
        }
        Ok(Sealer { recipients })
    }

    /// Encrypts `plaintext` into `out`, returning `out` and the ciphertext's length and hash.
    pub fn seal<W: Write>(&self, plaintext: &[u8], out: W) -> io::Result<(W, Sealed)> {
        let encryptor = age::Encryptor::with_recipients(
            self.recipients.iter().map(|r| r as &dyn age::Recipient),
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        let hashing = HashingWriter { inner: out, hasher: Sha256::new(), len: 0 };
        let mut stream = encryptor.wrap_output(hashing)?;
        stream.write_all(plaintext)?;
        let hashing = stream.finish()?;
        let sealed = Sealed { len: hashing.len, sha256: hashing.hasher.finalize().into() };
        Ok((hashing.inner, sealed))
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a sealed segment in memory with the given identities (for verification with
/// the case key, and for tests).
pub fn open(ciphertext: &[u8], identities: &[age::x25519::Identity]) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let decryptor = age::Decryptor::new(ciphertext).map_err(|e| io::Error::other(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_with_the_identity_and_hash_as_reported() {
        let id = age::x25519::Identity::generate();
        let sealer = Sealer::new(vec![id.to_public()]).unwrap();
        let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (ct, sealed) = sealer.seal(&plaintext, Vec::new()).unwrap();
        assert_eq!(sealed.len, ct.len() as u64);
        assert_eq!(sealed.sha256, <[u8; 32]>::from(Sha256::digest(&ct)));
        assert_eq!(open(&ct, &[id]).unwrap(), plaintext);
        let other = age::x25519::Identity::generate();
        assert!(open(&ct, &[other]).is_err());
        assert!(matches!(Sealer::new(vec![]), Err(SealError::NoRecipients)));
    }
}
