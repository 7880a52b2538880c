//! Offline verification of evidence bundles.
//!
//! `custody-verifier` will take an evidence bundle and a trusted server key and prove,
//! with nothing but public keys, that every segment is intact, none is missing, reordered
//! or added, how the recording ended, that the times are consistent and that the custody
//! log is complete. It depends on `custody-format` alone so that it stays small enough to
//! audit.
