//! The observer's vault: where a captured segment becomes evidence.
//!
//! `custody-vault` will take each segment from `custody-capture`, encrypt it as an age v1
//! file to the legal team's recipients, build and sign its record with the device's
//! Ed25519 key, link it into the recording's hash chain, keep it in append-only files that
//! are fsynced before anything is reported as saved (sled only as a rebuildable index and
//! upload queue), and upload it live to the legal team's server until a signed receipt
//! comes back.
