//! Device request authentication: every ingest request is signed by an enrolled device.
//!
//! The signature covers the method, the path, a timestamp, a random nonce, the body's
//! SHA-256 and the server's own key, so a captured request cannot be sent to another path,
//! another server, or again later: the timestamp must be within [`crate::Limits::clock_skew`]
//! of the server clock and the nonce must not have been seen from that device inside that
//! window. The exact message is specified in `docs/api.md`; the uploader in
//! `custody-vault` builds the same bytes independently and the tests hold the two together.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::HeaderMap;
use custody_format::ids::PublicKey;
use custody_format::primitives::{self, DOMAIN_REQUEST_SIGNATURE};

use crate::error::{ApiError, Code};

/// The header naming the requesting device's key (`ed25519:<hex>`).
pub const H_DEVICE: &str = "custody-device";
/// The header with the request time, µs since the epoch, decimal.
pub const H_TIMESTAMP: &str = "custody-timestamp";
/// The header with 16 random bytes, 32 lowercase hex digits.
pub const H_NONCE: &str = "custody-nonce";
/// The header with the Ed25519 signature, 128 lowercase hex digits.
pub const H_SIGNATURE: &str = "custody-signature";

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

/// The authentication headers of a request, parsed but not yet checked.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The key the request claims to come from.
    pub device: PublicKey,
    /// Its timestamp, µs.
    pub timestamp_us: i64,
    /// Its nonce.
    pub nonce: [u8; 16],
    /// Its signature.
    pub signature: [u8; 64],
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, ApiError> {
    let v = headers
        .get(name)
        .ok_or_else(|| ApiError::new(Code::AuthMissing, format!("the {name} header is missing")))?;
    v.to_str()
        .map_err(|_| ApiError::new(Code::AuthMalformed, format!("the {name} header is not text")))
}

fn hex_array<const N: usize>(s: &str, name: &str) -> Result<[u8; N], ApiError> {
    let bad = || ApiError::new(Code::AuthMalformed, format!("{name} must be {} hex digits", 2 * N));
    let bytes = hex::decode(s).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

impl Claimed {
    /// Parses the four headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Claimed, ApiError> {
        let device = PublicKey::parse(header(headers, H_DEVICE)?).map_err(|e| {
            ApiError::new(Code::AuthMalformed, format!("{H_DEVICE} is not a device key: {e}"))
        })?;
        let timestamp_us = header(headers, H_TIMESTAMP)?.parse::<i64>().map_err(|_| {
            ApiError::new(Code::AuthMalformed, format!("{H_TIMESTAMP} is not a decimal integer"))
        })?;
        let nonce = hex_array::<16>(header(headers, H_NONCE)?, H_NONCE)?;
        let signature = hex_array::<64>(header(headers, H_SIGNATURE)?, H_SIGNATURE)?;
        Ok(Claimed { device, timestamp_us, nonce, signature })
    }

    /// Checks the timestamp against the server clock `now_us`.
    pub fn check_fresh(&self, now_us: i64, skew: Duration) -> Result<(), ApiError> {
        let skew_us = i64::try_from(skew.as_micros()).unwrap_or(i64::MAX);
        if (now_us.saturating_sub(self.timestamp_us)).abs() > skew_us {
            return Err(ApiError::new(
                Code::AuthStale,
                format!(
                    "the request timestamp is {} s from the server clock; at most {} s is accepted",
                    (now_us - self.timestamp_us) / 1_000_000,
                    skew.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Checks the signature over the request.
    pub fn check_signature(
        &self,
        server_key: &PublicKey,
        method: &str,
        path: &str,
        body_sha256: &[u8; 32],
    ) -> Result<(), ApiError> {
        let msg =
            request_message(server_key, method, path, self.timestamp_us, &self.nonce, body_sha256);
        if primitives::verify(
            self.device.verifying_key(),
            DOMAIN_REQUEST_SIGNATURE,
            &msg,
            &self.signature,
        ) {
            Ok(())
        } else {
            Err(ApiError::new(Code::AuthSignature, "the request signature does not verify"))
        }
    }
}

/// Nonces seen inside the freshness window, per device. Entries older than the window are
/// dropped, since a request that old is refused as stale anyway. After a restart the cache
/// is empty: a replay then reaches ingest, which is idempotent, so it stores nothing new.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: HashMap<([u8; 32], [u8; 16]), i64>,
    last_prune_us: i64,
}

/// Most nonces kept; past this the oldest window is pruned at once.
const MAX_NONCES: usize = 1 << 20;

impl ReplayCache {
    /// Records `(device, nonce)`; `false` if it was already there.
    pub fn insert(&mut self, claimed: &Claimed, now_us: i64, window: Duration) -> bool {
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        if now_us - self.last_prune_us > 10_000_000 || self.seen.len() >= MAX_NONCES {
            self.seen.retain(|_, ts| now_us.saturating_sub(*ts) <= window_us);
            self.last_prune_us = now_us;
        }
        let key = (claimed.device.to_bytes(), claimed.nonce);
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, claimed.timestamp_us);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_message_is_the_documented_text() {
        let key = PublicKey::from(custody_format::testkit::key("server").verifying_key());
        let nonce: [u8; 16] = std::array::from_fn(|i| i as u8);
        let body = primitives::sha256(&[b""]);
        let m = request_message(
            &key,
            "PUT",
            "/v1/recordings/01/records/0",
            1_714_564_800_000_000,
            &nonce,
            &body,
        );
        let expected = format!(
            "{key}\nPUT\n/v1/recordings/01/records/0\n1714564800000000\n\
             000102030405060708090a0b0c0d0e0f\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(String::from_utf8(m).unwrap(), expected);
    }

    #[test]
    fn a_nonce_is_accepted_once_per_device() {
        let key = PublicKey::from(custody_format::testkit::key("device").verifying_key());
        let c = Claimed { device: key, timestamp_us: 1_000, nonce: [1; 16], signature: [0; 64] };
        let mut cache = ReplayCache::default();
        let w = Duration::from_secs(300);
        assert!(cache.insert(&c, 1_000, w));
        assert!(!cache.insert(&c, 2_000, w));
    }
}
