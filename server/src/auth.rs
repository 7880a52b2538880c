//! Device request authentication: every device request is signed by an enrolled device.
//!
//! The message, the headers and their parser are the protocol's
//! ([`custody_protocol::request`], specified in `docs/api.md`, "Request signatures"), shared
//! with every client. This module adds the server's checks: the timestamp must be within
//! [`crate::Limits::clock_skew`] of the server clock and the nonce must not have been seen
//! from that device inside that window, so a captured request cannot be sent again (the
//! nonces are kept by the configured [`crate::store::NonceStore`]).

use std::time::Duration;

use axum::http::HeaderMap;
use custody_format::ids::PublicKey;
pub use custody_protocol::request::{
    request_message, SignedHeaders, H_DEVICE, H_NONCE, H_SIGNATURE, H_TIMESTAMP,
};

use crate::error::{ApiError, Code};

/// The authentication headers of a request, parsed but not yet checked.
pub type Claimed = SignedHeaders;

/// Parses the four `Custody-*` headers of `headers`.
pub fn claimed(headers: &HeaderMap) -> Result<Claimed, ApiError> {
    SignedHeaders::from_lookup(|name| headers.get(name).map(|v| v.as_bytes()))
        .map_err(|e| ApiError::new(e.code(), e.to_string()))
}

/// Checks the timestamp of `claimed` against the server clock `now_us`.
pub fn check_fresh(claimed: &Claimed, now_us: i64, skew: Duration) -> Result<(), ApiError> {
    let skew_us = i64::try_from(skew.as_micros()).unwrap_or(i64::MAX);
    if (now_us.saturating_sub(claimed.timestamp_us)).abs() > skew_us {
        return Err(ApiError::new(
            Code::AuthStale,
            format!(
                "the request timestamp is {} s from the server clock; at most {} s is accepted",
                now_us.saturating_sub(claimed.timestamp_us) / 1_000_000,
                skew.as_secs()
            ),
        ));
    }
    Ok(())
}

/// Checks the signature of `claimed` over the request.
pub fn check_signature(
    claimed: &Claimed,
    server_key: &PublicKey,
    method: &str,
    path: &str,
    body_sha256: &[u8; 32],
) -> Result<(), ApiError> {
    if claimed.verify(server_key, method, path, body_sha256) {
        Ok(())
    } else {
        Err(ApiError::new(Code::AuthSignature, "the request signature does not verify"))
    }
}
