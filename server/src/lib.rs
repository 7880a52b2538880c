//! The legal team's service.
//!
//! `custody-server` enrolls observers' devices ([`enroll`]), accepts uploads only from them
//! ([`auth`], [`http`]), checks every record's signature, chain link and ciphertext hash
//! before answering (`ingest`), stores the ciphertext durably (it never holds a decryption
//! key), appends an entry to its append-only RFC 9162
//! custody log ([`custody_log`]), and only then answers with a receipt signed by its key.
//! The [`index`] is rebuilt from the stored records and the log whenever it is in doubt.
//! Every piece of state (records and segments, the log, the index, enrollment tokens,
//! members, request nonces) is reached through the traits of [`store`], whose
//! implementation the configuration picks: files in the data directory by default, or
//! memory. The HTTP API is specified in `docs/api.md`.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
mod bundle;
mod catalog;
pub mod custody_log;
pub mod enroll;
pub mod error;
pub mod events;
pub mod http;
pub mod identity;
pub mod index;
mod ingest;
pub mod log_api;
mod log_damage;
mod member_api;
pub mod members;
pub mod proxy;
mod replica;
mod reserve;
pub mod serve;
mod server;
mod state;
pub mod storage;
pub mod store;
pub mod tsa;
mod upload;
pub mod web;

pub use enroll::{issue_token, EnrollRequest, EnrollResponse};
pub use error::{ApiError, Code};
pub use identity::{IdentityError, TlsFiles};
pub use members::{add_member, Member, MemberError, Role};
pub use server::{Config, Device, Limits, OpenError, Opened, Server};
pub use state::Liveness;

/// The server clock, µs since the Unix epoch: format's one reading of the wall clock.
pub use custody_format::time::now_us;
