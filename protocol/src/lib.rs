//! The custody HTTP API's wire protocol, in one place: pure data, no I/O.
//!
//! `custody-server` answers with these types and every client (the device uploader, the
//! legal team's tools, and later the phone page, which mirrors these names) sends and reads
//! them, so the protocol is written once. [`request`] is the request signature and its
//! `Custody-*` headers; [`code`] the refusal codes, their meaning and whether a retry can
//! help; [`body`] every JSON request and answer; [`link`] the enrollment link. Binary
//! objects (records, receipts, certificates, tree heads, case recipients) are
//! `custody-format`'s. The specification is `docs/api.md`; the vectors in
//! `tests/vectors/protocol/` are checked against this crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod body;
pub mod code;
pub mod link;
pub mod request;

pub use code::{Code, Refusal, Retry};
pub use link::EnrollLink;
pub use request::{request_message, SignedHeaders};
