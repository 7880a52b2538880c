//! The custody log as devices read it: the latest signed tree head, consistency proofs
//! between any two sizes (RFC 9162 §2.1.4), so that a device holding an earlier head can
//! check that the log it sees now extends it, and inclusion proofs of any entry (§2.1.3).
//!
//! The routes answer enrolled, unrevoked devices' signed requests (the same signature as
//! ingest) and reveal only hashes: a tree head is a size, a root and a time, and a
//! consistency or inclusion proof is a list of interior node hashes (with, for inclusion,
//! the entry's leaf hash). No entry, record or segment leaves
//! the server this way. The routes are specified in `docs/api.md`, "The custody log".

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use custody_protocol::body::{ConsistencyProof, InclusionProof, LogHead};

use crate::error::{ApiError, Code};
use crate::http::json;
use crate::server::{lock, Server};

/// A proof request the log cannot answer (`log.range`): sizes out of order or beyond the
/// log, a parameter missing, malformed or unknown.
fn range_error(message: String) -> Response {
    ApiError::new(Code::LogRange, message).into_response()
}

/// A proof reaching past the entries a damaged log can prove (`log.damaged`): not
/// `log.range`, which tells a device the server lost entries it signed, but a refusal
/// to retry once the log is restored.
fn damaged(d: &crate::custody_log::LogDamage, size: u64) -> ApiError {
    ApiError::new(Code::LogDamaged, format!("no proof reaching a tree of {size} entries: {d}"))
}

/// The two numbers of `A=x&B=y` named `names` (either order of the pairs); any other
/// parameter is refused.
fn two_numbers(query: Option<&str>, names: [&str; 2]) -> Result<(u64, u64), String> {
    let mut found = [None, None];
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
        let slot =
            names.iter().position(|n| *n == k).ok_or_else(|| format!("unknown parameter `{k}`"))?;
        found[slot] = Some(v.parse::<u64>().map_err(|_| format!("{k} must be a decimal number"))?);
    }
    match found {
        [Some(a), Some(b)] => Ok((a, b)),
        _ => Err(format!("both {} and {} are needed", names[0], names[1])),
    }
}

/// The two sizes of `from=A&to=B`.
fn sizes(query: Option<&str>) -> Result<(u64, u64), String> {
    two_numbers(query, ["from", "to"])
}

/// `GET /v1/log/head`: the latest signed tree head.
pub async fn head(State(server): State<Server>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = server.authenticate(&parts, body).await {
        return e.into_response();
    }
    let head = server.tree_head();
    let v = head.value();
    json(
        StatusCode::OK,
        &LogHead {
            tree_head: hex::encode(head.to_bytes()),
            tree_size: v.tree_size,
            root_hash: v.root_hash,
            timestamp_us: v.timestamp_us,
        },
    )
}

/// `GET /v1/log/consistency?from=A&to=B`: the RFC 9162 consistency proof between the trees
/// of the first `A` and the first `B` entries.
pub async fn consistency(State(server): State<Server>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = server.authenticate(&parts, body).await {
        return e.into_response();
    }
    let (from, to) = match sizes(parts.uri.query()) {
        Ok(s) => s,
        Err(m) => return range_error(m),
    };
    let s = server.clone();
    let proof = tokio::task::spawn_blocking(move || {
        s.log_reach(to);
        let log = lock(&s.inner.log);
        let len = log.len();
        if from <= to && to > len {
            if let Some(d) = log.damage() {
                return Err(damaged(d, to));
            }
        }
        if from > to || to > len {
            return Err(ApiError::new(Code::LogRange, format!(
                "no consistency proof from {from} to {to}: the log has {len} entries and from must not exceed to"
            )));
        }
        // O(log n) from the log's subtree hashes, so it is done under the lock.
        log.consistency_proof(from, to).map_err(|e| ApiError::new(Code::LogRange, e.to_string()))
    })
    .await;
    match proof {
        Ok(Ok(p)) => json(StatusCode::OK, &ConsistencyProof { from, to, proof: p }),
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal("a worker", e).into_response(),
    }
}

/// `index=I&size=N`: an entry's index and the tree size to prove it in.
fn index_and_size(query: Option<&str>) -> Result<(u64, u64), String> {
    two_numbers(query, ["index", "size"])
}

/// `GET /v1/log/inclusion?index=I&size=N`: the RFC 9162 inclusion proof of entry `I` in the
/// tree of the first `N` entries, with the entry's leaf hash.
pub async fn inclusion(State(server): State<Server>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = server.authenticate(&parts, body).await {
        return e.into_response();
    }
    let (index, size) = match index_and_size(parts.uri.query()) {
        Ok(s) => s,
        Err(m) => return range_error(m),
    };
    let s = server.clone();
    let proof = tokio::task::spawn_blocking(move || {
        s.log_reach(size);
        let log = lock(&s.inner.log);
        let len = log.len();
        if index < size && size > len {
            if let Some(d) = log.damage() {
                return Err(damaged(d, size));
            }
        }
        if index >= size || size > len {
            return Err(ApiError::new(
                Code::LogRange,
                format!(
                "no inclusion proof of entry {index} in a tree of {size}: the log has {len} entries"
            ),
            ));
        }
        log.inclusion_proof(index, size).map_err(|e| ApiError::new(Code::LogRange, e.to_string()))
    })
    .await;
    match proof {
        Ok(Ok((leaf, p))) => {
            json(StatusCode::OK, &InclusionProof { index, size, leaf_hash: leaf, proof: p })
        }
        Ok(Err(e)) => e.into_response(),
        Err(e) => ApiError::internal("a worker", e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::sizes;

    #[test]
    fn sizes_parse_only_from_and_to() {
        assert_eq!(sizes(Some("from=3&to=9")), Ok((3, 9)));
        assert_eq!(sizes(Some("to=9&from=0")), Ok((0, 9)));
        assert!(sizes(Some("from=3")).is_err());
        assert!(sizes(None).is_err());
        assert!(sizes(Some("from=-1&to=2")).is_err());
        assert!(sizes(Some("from=1&to=2&x=1")).is_err());
    }
}
