//! The custody evidence format: pure data, no I/O.
//!
//! Every other crate speaks through this one. `custody-capture` produces the numbers a
//! segment record holds (including the [`digest`] of its packets); `custody-vault` builds,
//! signs and chains the records; `custody-server` checks them, answers with receipts and
//! appends to its Merkle-tree custody log; `custody-verifier` checks all of it again from
//! an evidence bundle with nothing but public keys. The byte-level specification is
//! `docs/format.md`; the vectors in `tests/vectors/` are checked against this crate.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bundle;
pub mod cert;
pub mod chain;
pub mod digest;
pub mod encoding;
pub mod ids;
pub mod log;
pub mod merkle;
pub mod primitives;
pub mod receipt;
pub mod recipients;
pub mod record;
pub mod report;
pub mod signed;
pub mod statement;
pub mod testkit;
pub mod time;
