//! The HTTP client side of custody's protocol (`docs/api.md`).
//!
//! The device's half: [`enroll()`] spends a one-time token and pins the server's key and TLS
//! certificate; the [`Uploader`] sends every record the vault has made durable, signing
//! each request, checks and keeps the server's receipts, and watches the server's custody
//! log ([`log_check`]). What it keeps lives in the vault's files
//! ([`custody_vault::outbox`]); this crate adds only the network. The lawyer's half
//! ([`lawyer`]) logs in, lists recordings and fetches evidence bundles, resuming a broken
//! download. `custody-cli` calls both and prints; nothing here prints.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod enroll;
pub mod error;
pub mod lawyer;
pub mod log_check;
mod progress;
pub mod receipts;
mod records;
mod request;
pub mod tls;
pub mod uploader;

pub use custody_vault::outbox::{read_receipts, Enrollment};
pub use enroll::{enroll, enroll_link};
pub use error::{with_causes, UploadError};
pub use tls::{pinned_client, SeenCertificate};
pub use uploader::{Flushed, Options, Receipted, Uploader};
