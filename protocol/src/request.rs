//! Signed device requests: the message a device signs, the four `Custody-*` headers that
//! carry the signature, and their parser.
//!
//! The signature covers the server's key, the method, the path, a timestamp, a random
//! nonce and the body's SHA-256, so a captured request cannot be sent to another path,
//! another server, or again later (the server bounds the timestamp and remembers nonces).
//! The exact bytes are specified in `docs/api.md`, "Request signatures", with vectors in
//! `tests/vectors/protocol/request-*.txt`.

use custody_format::ids::PublicKey;
use custody_format::primitives::{self, sha256, DOMAIN_REQUEST_SIGNATURE};
use ed25519_dalek::SigningKey;

use crate::code::Code;

/// The header naming the requesting device's key (`ed25519:<hex>`). Header names are
/// case-insensitive (RFC 9110 §5.1); these are the lower-case forms HTTP/2 requires.
pub const H_DEVICE: &str = "custody-device";
/// The header with the request time, µs since the epoch, decimal.
pub const H_TIMESTAMP: &str = "custody-timestamp";
/// The header with 16 random bytes, 32 lowercase hex digits.
pub const H_NONCE: &str = "custody-nonce";
/// The header with the Ed25519 signature, 128 lowercase hex digits.
pub const H_SIGNATURE: &str = "custody-signature";
/// The header naming the access (log index) of a bundle retrieval: sent by the server with
/// a bundle, and by a member resuming that download.
pub const H_BUNDLE_ACCESS: &str = "custody-bundle-access";

/// The four signature headers, in the order `docs/api.md` lists them.
pub const SIGNATURE_HEADERS: [&str; 4] = [H_DEVICE, H_TIMESTAMP, H_NONCE, H_SIGNATURE];

/// The message a device signs (under `custody/v1/request-signature\0`) for one request:
///
/// ```text
/// server_key "\n" method "\n" path "\n" timestamp_us "\n" nonce_hex "\n" body_sha256_hex
/// ```
///
/// `server_key` in text form (`ed25519:…`), `method` upper case, `path` exactly as in the
/// request line (path and query), numbers in decimal, hex in lower case.
pub fn request_message(
    server_key: &PublicKey,
    method: &str,
    path: &str,
    timestamp_us: i64,
    nonce: &[u8; 16],
    body_sha256: &[u8; 32],
) -> Vec<u8> {
    format!(
        "{server_key}\n{method}\n{path}\n{timestamp_us}\n{}\n{}",
        hex::encode(nonce),
        hex::encode(body_sha256)
    )
    .into_bytes()
}

/// The authentication headers of a device request: who claims to send it, when, with
/// which nonce and signature. Parsed, not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    /// The key the request claims to come from.
    pub device: PublicKey,
    /// Its timestamp, µs since the epoch.
    pub timestamp_us: i64,
    /// Its nonce.
    pub nonce: [u8; 16],
    /// Its signature.
    pub signature: [u8; 64],
}

/// Why the signature headers could not be read. [`HeaderError::code`] is the refusal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A header is absent.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// A header's value is not visible ASCII text.
    #[error("the {0} header is not text")]
    NotText(&'static str),
    /// A header's value is text but not of its form.
    #[error("{header} {reason}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What its value must be.
        reason: String,
    },
}

impl HeaderError {
    /// The refusal code a server answers with: `auth.missing` or `auth.malformed`.
    pub fn code(&self) -> Code {
        match self {
            HeaderError::Missing(_) => Code::AuthMissing,
            HeaderError::NotText(_) | HeaderError::Malformed { .. } => Code::AuthMalformed,
        }
    }
}

fn text<'a>(name: &'static str, value: Option<&'a [u8]>) -> Result<&'a str, HeaderError> {
    let v = value.ok_or(HeaderError::Missing(name))?;
    // RFC 9110 §5.5: field values are visible ASCII, spaces and tabs.
    if !v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') {
        return Err(HeaderError::NotText(name));
    }
    std::str::from_utf8(v).map_err(|_| HeaderError::NotText(name))
}

fn hex_array<const N: usize>(name: &'static str, s: &str) -> Result<[u8; N], HeaderError> {
    let bad =
        || HeaderError::Malformed { header: name, reason: format!("must be {} hex digits", 2 * N) };
    let bytes = hex::decode(s).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

impl SignedHeaders {
    /// Parses the four header values (each `None` when absent), in the order of
    /// [`SIGNATURE_HEADERS`]. A plain function over bytes so that it can be fuzzed.
    pub fn parse(
        device: Option<&[u8]>,
        timestamp: Option<&[u8]>,
        nonce: Option<&[u8]>,
        signature: Option<&[u8]>,
    ) -> Result<SignedHeaders, HeaderError> {
        let device = PublicKey::parse(text(H_DEVICE, device)?).map_err(|e| {
            HeaderError::Malformed { header: H_DEVICE, reason: format!("is not a device key: {e}") }
        })?;
        let timestamp_us =
            text(H_TIMESTAMP, timestamp)?.parse::<i64>().map_err(|_| HeaderError::Malformed {
                header: H_TIMESTAMP,
                reason: "is not a decimal integer".into(),
            })?;
        let nonce = hex_array::<16>(H_NONCE, text(H_NONCE, nonce)?)?;
        let signature = hex_array::<64>(H_SIGNATURE, text(H_SIGNATURE, signature)?)?;
        Ok(SignedHeaders { device, timestamp_us, nonce, signature })
    }

    /// Parses the headers found by `lookup` (a header name, lower case, to its value).
    pub fn from_lookup<'a>(
        lookup: impl Fn(&'static str) -> Option<&'a [u8]>,
    ) -> Result<SignedHeaders, HeaderError> {
        SignedHeaders::parse(
            lookup(H_DEVICE),
            lookup(H_TIMESTAMP),
            lookup(H_NONCE),
            lookup(H_SIGNATURE),
        )
    }

    /// Signs a request with the device key `key`: `nonce` must be 16 fresh random bytes
    /// and `timestamp_us` the device clock.
    pub fn sign(
        key: &SigningKey,
        server_key: &PublicKey,
        method: &str,
        path: &str,
        timestamp_us: i64,
        nonce: [u8; 16],
        body: &[u8],
    ) -> SignedHeaders {
        let msg = request_message(server_key, method, path, timestamp_us, &nonce, &sha256(&[body]));
        let signature = primitives::sign(key, DOMAIN_REQUEST_SIGNATURE, &msg);
        SignedHeaders {
            device: PublicKey::from(key.verifying_key()),
            timestamp_us,
            nonce,
            signature,
        }
    }

    /// The four `(name, value)` pairs to send, in the order of [`SIGNATURE_HEADERS`].
    pub fn to_pairs(&self) -> [(&'static str, String); 4] {
        [
            (H_DEVICE, self.device.to_string()),
            (H_TIMESTAMP, self.timestamp_us.to_string()),
            (H_NONCE, hex::encode(self.nonce)),
            (H_SIGNATURE, hex::encode(self.signature)),
        ]
    }

    /// Whether the signature covers this request to `server_key`, with a body whose SHA-256
    /// is `body_sha256`. Freshness and nonce reuse are the server's to check.
    pub fn verify(
        &self,
        server_key: &PublicKey,
        method: &str,
        path: &str,
        body_sha256: &[u8; 32],
    ) -> bool {
        let msg =
            request_message(server_key, method, path, self.timestamp_us, &self.nonce, body_sha256);
        primitives::verify(
            self.device.verifying_key(),
            DOMAIN_REQUEST_SIGNATURE,
            &msg,
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::testkit;

    #[test]
    fn the_request_message_is_the_documented_text() {
        let key = testkit::public("server");
        let nonce: [u8; 16] = std::array::from_fn(|i| i as u8);
        let m = request_message(
            &key,
            "PUT",
            "/v1/recordings/01/records/0",
            1_714_564_800_000_000,
            &nonce,
            &sha256(&[b""]),
        );
        let expected = format!(
            "{key}\nPUT\n/v1/recordings/01/records/0\n1714564800000000\n\
             000102030405060708090a0b0c0d0e0f\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(String::from_utf8(m).unwrap(), expected);
    }

    #[test]
    fn signed_headers_round_trip_and_verify_only_their_request() {
        let server = testkit::public("server");
        let h = SignedHeaders::sign(
            &testkit::key("device"),
            &server,
            "GET",
            "/v1/log/head",
            5,
            [9; 16],
            b"",
        );
        let pairs = h.to_pairs();
        let back = SignedHeaders::from_lookup(|n| {
            pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_bytes())
        })
        .unwrap();
        assert_eq!(back, h);
        let empty = sha256(&[b""]);
        assert!(back.verify(&server, "GET", "/v1/log/head", &empty));
        assert!(!back.verify(&server, "GET", "/v1/log/head?x", &empty));
        assert!(!back.verify(&testkit::public("other"), "GET", "/v1/log/head", &empty));
    }

    #[test]
    fn header_errors_carry_their_refusal_code() {
        let e = SignedHeaders::parse(None, None, None, None).unwrap_err();
        assert_eq!(e, HeaderError::Missing(H_DEVICE));
        assert_eq!(e.code(), Code::AuthMissing);
        let dev = testkit::public("device").to_string();
        let e = SignedHeaders::parse(Some(dev.as_bytes()), Some(b"12x"), Some(b""), Some(b""))
            .unwrap_err();
        assert_eq!(e.code(), Code::AuthMalformed);
        let e = SignedHeaders::parse(Some(b"\xff"), None, None, None).unwrap_err();
        assert_eq!(e, HeaderError::NotText(H_DEVICE));
        let e = SignedHeaders::parse(Some(dev.as_bytes()), Some(b"1"), Some(b"00"), Some(b""))
            .unwrap_err();
        assert!(matches!(e, HeaderError::Malformed { header: H_NONCE, .. }), "{e:?}");
    }
}
