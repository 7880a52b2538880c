//! A test time-stamp authority (RFC 3161) for custody's tests, and nothing else.
//!
//! The server asks time-stamp authorities for tokens over its signed tree heads and the
//! verifier checks those tokens offline (issue 18). Their tests need a real TSA that they
//! start themselves: [`Pki`] makes a test root CA and TSA certificates with the `openssl`
//! command-line tool in a temporary directory (a good TSA and the broken ones the verifier
//! must refuse, see [`Variant`]), [`Tsa::reply`] answers a time-stamp query through
//! `openssl ts -reply`, and [`TsaServer`] puts that behind HTTP/1.1 on 127.0.0.1 (RFC 3161
//! §3.4, `application/timestamp-query` in, `application/timestamp-reply` out) and can be
//! told to refuse for a while.
//!
//! Certificates and tokens come from OpenSSL rather than from code written here so that a
//! token the verifier accepts was made by an implementation other than the verifier's own.
//! Making a [`Pki`] costs a few hundred milliseconds (key generation): make one per test
//! binary.
//!
//! [`Front`] is a round-robin TCP front on loopback, for tests of several server replicas
//! behind one address.
//!
//! [`pg`] starts a real PostgreSQL (Debian's `initdb` and `pg_ctl`) once per test binary and
//! makes a fresh database per test, for the server's PostgreSQL stores.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod der;
mod front;
pub mod pg;
mod pki;
mod s3;
mod server;

pub use der::token_of_reply;
pub use front::Front;
pub use pki::{Ess, Pki, Tsa, Variant, POLICY};
pub use s3::{IgnoresIfNoneMatch, S3Server, S3S_FS_VERSION};
pub use server::{Mode, TsaServer};

/// What went wrong making certificates or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the temporary directory, or starting `openssl`, failed.
    #[error("testkit: {0}")]
    Io(#[from] std::io::Error),
    /// An `openssl` command exited unsuccessfully (its arguments and standard error kept,
    /// since that is the only way to tell why).
    #[error("testkit: `openssl {args}` failed: {stderr}")]
    Openssl {
        /// The arguments it was run with.
        args: String,
        /// What it printed on standard error.
        stderr: String,
    },
    /// A time-stamp response or query was not the DER this crate expects.
    #[error("testkit: malformed time-stamp message: {0}")]
    Malformed(&'static str),
}
