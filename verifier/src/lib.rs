//! Offline verification of evidence bundles.
//!
//! `custody-verifier` takes an evidence bundle (a directory or its `.tar`) and a trusted
//! server key and checks, with nothing but public keys, everything `docs/format.md`
//! defines: the manifest, the device certificate, every record's signature and the hash
//! chain, every sealed segment against its record, every receipt against its record and
//! its custody-log entry, every log entry's inclusion proof against the signed head,
//! revocation and time consistency. The outcome is a [`Report`] with a stable code per
//! check and a verdict; `Err` means only that verification could not run. It depends on
//! `custody-format` alone (plus SHA-256 and serde), so that it stays small enough to audit;
//! decryption, when wanted, is supplied by the caller through [`Opener`], and so is demuxing
//! a browser's segments ([`Opener::media`]) to recompute their packets.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod completeness;
mod custody_log;
pub mod facts;
pub mod html;
pub mod imported;
mod media;
mod orientation;
mod parts;
mod receipts;
mod rules;
pub mod source;
mod timeline;
pub mod tsa;
mod verify;

pub use facts::Zone;
pub use source::{Dir, Source, SourceError, Tar, TarIndex};
pub use verify::{
    verify, MediaFacts, Opener, Options, Photo, Report, SegmentRow, Trust, VerifyError,
};
