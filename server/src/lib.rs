//! The legal team's service.
//!
//! `custody-server` will enroll observers' devices, accept uploads only from them, check
//! every record's signature, chain link and ciphertext hash before answering, store the
//! ciphertext durably (it never holds a decryption key), answer with a signed receipt,
//! and keep an append-only, Merkle-tree custody log of everything it received and every
//! later access, from which evidence bundles are exported.
