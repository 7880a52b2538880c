//! The client's errors, and how they are told to people.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Upload and enrollment errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The server could not be reached or the connection broke.
    #[error("could not reach the server: {0}")]
    Network(String),
    /// The server refused, with its stable code.
    #[error("the server refused ({code}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The code from `docs/api.md`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server's answer is not what the API promises (a bad receipt or certificate).
    #[error("the server's answer is not valid: {0}")]
    BadAnswer(String),
    /// This vault is not enrolled with a server.
    #[error("this vault is not enrolled with a server; run `custody enroll URL TOKEN` first")]
    NotEnrolled,
    /// A local file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The vault's upload state (enrollment, receipts, log head) could not be read or
    /// written.
    #[error(transparent)]
    Outbox(#[from] custody_vault::outbox::OutboxError),
    /// The index failed.
    #[error("the index: {0}")]
    Index(#[from] sled::Error),
    /// The vault failed.
    #[error(transparent)]
    Vault(#[from] custody_vault::VaultError),
    /// The server's custody log does not extend a head this vault holds
    /// ([`crate::log_check::CODE`]); nothing more is sent to it.
    #[error("log.inconsistent: {0}")]
    LogInconsistent(String),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> UploadError + 'a {
    move |source| UploadError::Io { what, path: path.to_path_buf(), source }
}

/// An error with its causes, for people: an HTTP client's own message names only the
/// request, while what went wrong (a refused connection, a certificate that is not the
/// pinned one) is in its sources.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
