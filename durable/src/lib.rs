//! Durable files: what the vault and the server both stand on.
//!
//! Nothing custody reports as saved (on the device) or receipted (on the server) may be
//! lost by a crash after the report. [`fsutil`] writes whole files by fsync, rename and
//! directory fsync; [`journal`] keeps append-only files of checksummed frames, fsynced per
//! frame, and repairs a torn tail without throwing anything away.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod fsutil;
pub mod journal;
