//! The observer's vault: where a captured segment becomes evidence.
//!
//! `custody-vault` takes each segment (`custody-recorder` hands it over from
//! `custody-capture`; the vault itself links no FFmpeg), encrypts it as an age v1 file to
//! the legal team's recipients ([`seal`]), builds and signs its record with the device's
//! Ed25519 key and links it into the recording's hash chain (`custody-format`), and keeps
//! it in append-only files that are fsynced before anything is reported as saved
//! ([`store`], [`journal`]). A sled database ([`index`]) holds summaries and the upload
//! queue; it is never the only copy of anything and is rebuilt from the files whenever it
//! is missing, broken or behind. A journal damaged on the disk is read past the damage,
//! keeping every intact record ([`damage`]). [`check`] checks every chain and sealed file
//! on the device. [`outbox`] keeps what uploading leaves in the vault (the enrollment, the
//! server's signed receipts, the custody-log head held); the network side is
//! `custody-client`'s.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod check;
pub mod damage;
pub mod index;
pub mod keys;
pub mod outbox;
pub mod seal;
pub mod status;
pub mod store;

pub use custody_durable::{fsutil, journal};
pub use store::{Vault, VaultError};
