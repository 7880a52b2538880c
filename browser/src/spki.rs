//! The SHA-256 of an X.509 certificate's SubjectPublicKeyInfo (RFC 5280 section 4.1), as
//! Chromium's `--ignore-certificate-errors-spki-list` takes it (base64).
//!
//! `custody serve` makes a self-signed certificate that no browser trusts. A phone would
//! be given a certificate it trusts (issue 14, "Trust, said honestly"); the tests tell the
//! test browser to trust this one key instead, which keeps TLS (and the page's secure
//! context, which WebCrypto Ed25519, IndexedDB and getUserMedia need) real.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::Error;

/// One DER element: (tag, contents, rest of the input).
fn tlv(der: &[u8]) -> Result<(u8, &[u8], &[u8]), Error> {
    let bad = || Error::Unexpected("the certificate is not DER (X.690) as expected".into());
    let (&tag, rest) = der.split_first().ok_or_else(bad)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let (bytes, r) = rest.split_at(n);
        rest = r;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(bad());
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

/// The DER bytes (tag and length included) of the certificate's subjectPublicKeyInfo.
pub fn spki_der(cert: &[u8]) -> Result<&[u8], Error> {
    let bad = || Error::Unexpected("the certificate has no subjectPublicKeyInfo".into());
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (_, certificate, _) = tlv(cert)?;
    let (_, tbs, _) = tlv(certificate)?;
    // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    //                               validity, subject, subjectPublicKeyInfo, ... }
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    for _ in 0..5 {
        rest = tlv(rest)?.2;
    }
    let (tag, _, after) = tlv(rest)?;
    if tag != 0x30 {
        return Err(bad());
    }
    Ok(&rest[..rest.len() - after.len()])
}

/// Base64 (RFC 4648, padded) of the SHA-256 of the certificate's SubjectPublicKeyInfo.
pub fn spki_sha256_base64(cert: &[u8]) -> Result<String, Error> {
    let digest = Sha256::digest(spki_der(cert)?);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}
