//! The cryptographic primitives of the format, one small function each, and every
//! domain-separation string.
//!
//! Every hash and every signature input begins with a fixed context string naming what it
//! is, ending in a NUL byte, so that bytes signed or hashed as one kind of object can never
//! be taken for another (a segment record for a receipt, a record hash for a Merkle node).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Hash of a record, the link in the recording's chain.
pub const DOMAIN_RECORD_HASH: &[u8] = b"custody/v1/record-hash\0";
/// Signature input prefix of a device-signed record.
pub const DOMAIN_RECORD_SIGNATURE: &[u8] = b"custody/v1/record-signature\0";
/// Signature input prefix of a server receipt.
pub const DOMAIN_RECEIPT_SIGNATURE: &[u8] = b"custody/v1/receipt-signature\0";
/// Signature input prefix of a signed log tree head.
pub const DOMAIN_TREE_HEAD_SIGNATURE: &[u8] = b"custody/v1/tree-head-signature\0";
/// Signature input prefix of a device certificate.
pub const DOMAIN_DEVICE_CERT_SIGNATURE: &[u8] = b"custody/v1/device-certificate-signature\0";
/// Outer hash of the packet digest.
pub const DOMAIN_PACKET_DIGEST: &[u8] = b"custody/v1/packet-digest\0";
/// Per-stream running hash inside the packet digest.
pub const DOMAIN_PACKET_DIGEST_STREAM: &[u8] = b"custody/v1/packet-digest/stream\0";
/// Signature input prefix of a device's signed HTTP request to the server.
pub const DOMAIN_REQUEST_SIGNATURE: &[u8] = b"custody/v1/request-signature\0";
/// Signature input prefix of a device's proof of possession at enrollment.
pub const DOMAIN_ENROLLMENT_SIGNATURE: &[u8] = b"custody/v1/enrollment-signature\0";
/// Signature input prefix of the server's signed case recipients (`recipients.rs`).
pub const DOMAIN_CASE_RECIPIENTS_SIGNATURE: &[u8] = b"custody/v1/case-recipients-signature\0";
/// Hash behind a key fingerprint.
pub const DOMAIN_KEY_FINGERPRINT: &[u8] = b"custody/v1/key-fingerprint\0";
/// Hash of the chain a bundle retrieval's access entry states (`statement.rs`).
pub const DOMAIN_CHAIN_STATEMENT: &[u8] = b"custody/v1/chain-statement\0";
/// Hash of the log entries a bundle retrieval's access entry states (`statement.rs`).
pub const DOMAIN_ENTRY_STATEMENT: &[u8] = b"custody/v1/entry-statement\0";

/// SHA-256 (FIPS 180-4) of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Ed25519 (RFC 8032, pure Ed25519) signature over `domain || message`.
pub fn sign(key: &SigningKey, domain: &[u8], message: &[u8]) -> [u8; 64] {
    let mut input = Vec::with_capacity(domain.len() + message.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(message);
    key.sign(&input).to_bytes()
}

/// Verifies an Ed25519 (RFC 8032) signature over `domain || message` with the strict rules
/// of `verify_strict`: small-order keys and non-canonical signatures are refused, so one
/// message has one valid signature per key.
pub fn verify(key: &VerifyingKey, domain: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
    let mut input = Vec::with_capacity(domain.len() + message.len());
    input.extend_from_slice(domain);
    input.extend_from_slice(message);
    key.verify_strict(&input, &Signature::from_bytes(signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_fips_180_4_example() {
        // FIPS 180-4 / NIST CSRC example "abc".
        assert_eq!(
            hex::encode(sha256(&[b"a", b"bc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ed25519_matches_rfc_8032_test_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message); we sign domain || message, so use
        // the empty domain to reach the raw primitive.
        let secret: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_bytes(&secret);
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = sign(&key, b"", b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(verify(&key.verifying_key(), b"", b"", &sig));
    }

    #[test]
    fn a_signature_does_not_cross_domains() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let sig = sign(&key, DOMAIN_RECORD_SIGNATURE, b"payload");
        assert!(verify(&key.verifying_key(), DOMAIN_RECORD_SIGNATURE, b"payload", &sig));
        assert!(!verify(&key.verifying_key(), DOMAIN_RECEIPT_SIGNATURE, b"payload", &sig));
    }

    /// The group order L of edwards25519, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    /// A second valid-looking signature made from a first by adding L to its S half: the
    /// same equation holds modulo L, so a lax verifier would accept two signatures for one
    /// message. Refused: one message has one signature per key.
    #[test]
    fn a_malleated_signature_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let sig = sign(&key, DOMAIN_KEY_FINGERPRINT, b"message");
        assert!(verify(&key.verifying_key(), DOMAIN_KEY_FINGERPRINT, b"message", &sig));
        let mut malleated = sig;
        let mut carry = 0u16;
        for (s, l) in malleated[32..].iter_mut().zip(L) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "S + L fits in 32 bytes");
        assert_ne!(malleated, sig);
        assert!(!verify(&key.verifying_key(), DOMAIN_KEY_FINGERPRINT, b"message", &malleated));
    }

    /// The identity point as a public key, with R the identity and S zero, satisfies the
    /// verification equation for every message: RFC 8032's plain check accepts it (shown
    /// with ed25519-dalek's lax `verify`), the strict check used here refuses small-order keys.
    #[test]
    fn a_small_order_key_signs_nothing() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let input = [DOMAIN_KEY_FINGERPRINT, b"any message"].concat();
        use ed25519_dalek::Verifier as _;
        assert!(weak.verify(&input, &Signature::from_bytes(&forged)).is_ok(), "lax check");
        assert!(!verify(&weak, DOMAIN_KEY_FINGERPRINT, b"any message", &forged));
    }
}
