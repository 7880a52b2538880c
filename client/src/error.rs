//! The client's errors, and how they are told to people.

use std::path::{Path, PathBuf};

use custody_protocol::{Code, Refusal};
use thiserror::Error;

/// Upload and enrollment errors.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The server could not be reached or the connection broke.
    #[error("could not reach the server: {0}")]
    Network(String),
    /// The server refused, with its stable code ([`UploadError::code`]).
    #[error("the server refused ({}): {}", refusal.code, refusal.message)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal body: the code from `docs/api.md` and the server's explanation.
        refusal: Refusal,
    },
    /// The server's answer is not what the API promises (a bad receipt or certificate).
    #[error("the server's answer is not valid: {0}")]
    BadAnswer(String),
    /// The server's key is not the one the enrollment link names: another server, or a
    /// machine in the middle. Nothing was saved.
    #[error("the server's key fingerprint is {found}, not {expected} as the enrollment link says")]
    WrongServer {
        /// The fingerprint the link names.
        expected: String,
        /// The fingerprint of the key the server has.
        found: String,
    },
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

impl UploadError {
    /// The server's refusal code, when the server refused with one this protocol version
    /// knows.
    pub fn code(&self) -> Option<Code> {
        match self {
            UploadError::Refused { refusal, .. } => refusal.code(),
            _ => None,
        }
    }
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
