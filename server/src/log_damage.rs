//! A server whose custody log is damaged in the middle runs read-only.
//!
//! The log opens on the entries before the damage ([`crate::custody_log::LogDamage`]): it
//! serves their tree head and proofs, the receipts already given, and the recordings'
//! states, and refuses, with `log.damaged`, every request that would append to the log,
//! since an entry appended after the damage would take an index an entry already had:
//! ingest, enrollment, revocation, and bundle retrievals (each logs its access first).
//! The operator restores the log from a backup (`docs/deploy.md`).

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, Code};
use crate::server::Server;

/// Refuses requests that would append to a damaged log, before their bodies are read.
pub(crate) async fn refuse_appends(
    State(server): State<Server>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(d) = server.log_damage() {
        if appends(req.method(), req.uri().path()) {
            return ApiError::new(Code::LogDamaged, format!("{d}; nothing was stored or logged"))
                .into_response();
        }
    }
    next.run(req).await
}

/// Whether a request appends to the custody log: everything that is not a read (ingest,
/// enrollment, revocation) and a bundle retrieval, whose access entry is logged first.
fn appends(method: &Method, path: &str) -> bool {
    !(method == Method::GET || method == Method::HEAD) || path.ends_with("/bundle")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_bundle_retrievals_append_reads_do_not() {
        assert!(appends(&Method::PUT, "/v1/recordings/ab/records/3"));
        assert!(appends(&Method::POST, "/v1/enroll"));
        assert!(appends(&Method::POST, "/v1/devices/revoke"));
        assert!(appends(&Method::GET, "/v1/recordings/ab/bundle"));
        assert!(!appends(&Method::GET, "/v1/log/head"));
        assert!(!appends(&Method::GET, "/v1/log/consistency"));
        assert!(!appends(&Method::GET, "/v1/recordings/ab/receipts"));
        assert!(!appends(&Method::GET, "/v1/recordings"));
    }
}
