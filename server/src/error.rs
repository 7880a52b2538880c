//! Refusals: every answer other than a receipt carries one stable code.
//!
//! The codes, their HTTP statuses and meanings are the protocol's
//! ([`custody_protocol::Code`], listed in `docs/api.md`); this module adds only what is the
//! server's: the error value handlers return and its axum response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use custody_protocol::code::{Code, Retry};
use custody_protocol::Refusal;

/// The HTTP status a refusal with `code` is sent with.
pub fn status(code: Code) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A refusal: its code and a sentence saying what exactly was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The stable code.
    pub code: Code,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A refusal with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    /// A server-side failure; the detail goes to the server's log, not to the client.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        eprintln!("custody-server: {what}: {detail}");
        ApiError::new(Code::Internal, format!("{what} failed; nothing was receipted, retry"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Refusal::new(self.code, self.message).to_body();
        let mut resp = (status(self.code), body).into_response();
        resp.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_real_http_status() {
        for &c in Code::ALL {
            assert_eq!(status(c).as_u16(), c.status(), "{c}");
        }
    }
}
