//! What can go wrong while driving the browser or the server.

use std::path::PathBuf;

/// Why a harness step could not be done. The harness reports, it does not panic: a test
/// unwraps with the message, which says what was being waited for or what answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A process could not be started (the path is the program).
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program that would not start.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing a file or a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A bounded wait ran out.
    #[error("timed out after {seconds:.1} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        seconds: f64,
    },
    /// The DevTools WebSocket failed (closed, refused, or a protocol error).
    #[error("DevTools WebSocket: {0}")]
    WebSocket(String),
    /// The browser answered a DevTools command with an error.
    #[error("DevTools {method} failed: {message}")]
    Protocol {
        /// The command.
        method: String,
        /// Chromium's message (and data, if any).
        message: String,
    },
    /// Script evaluated in the page threw.
    #[error("the page threw while evaluating {expression:?}: {message}")]
    Script {
        /// The expression (shortened).
        expression: String,
        /// The exception's description.
        message: String,
    },
    /// A process said something the harness did not expect, or failed.
    #[error("{0}")]
    Unexpected(String),
    /// The capture page is not built into the server.
    #[error(
        "the capture page is not built into this custody binary (/capture/ answered {status}): \
         run cargo xtask web, then rebuild (cargo build -p custody-cli)"
    )]
    PageMissing {
        /// The HTTP status /capture/ answered.
        status: u16,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
