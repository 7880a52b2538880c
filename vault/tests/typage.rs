//! A segment sealed by the capture page (typage, the `age-encryption` npm package) opens with
//! the Rust age crate the vault and the verifier use, to the exact plaintext.
//!
//! The vector `tests/vectors/web/typage-seal.txt` is made by the page's own code
//! (`web/test/core-seal.test.js`, which also opens it with the stock `age` binary); this test
//! reads only the file. Regenerate with
//! `CUSTODY_REGENERATE_VECTORS=1 node --test test/core-seal.test.js` in `web/`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use sha2::{Digest, Sha256};

fn vector() -> BTreeMap<String, String> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/web/typage-seal.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let (k, v) = line.split_once(": ").unwrap_or_else(|| panic!("bad line {line:?}"));
        if k != "comment" {
            values.entry(k.to_string()).or_default().push_str(v);
        }
    }
    values
}

#[test]
fn a_segment_sealed_by_typage_opens_with_the_rust_age_crate() {
    let v = vector();
    assert_eq!(v["kind"], "age-decrypt");
    assert_eq!(v["expect"], "ok");
    let identity = age::x25519::Identity::from_str(&v["identity"]).unwrap();
    let ciphertext = hex::decode(&v["ciphertext"]).unwrap();
    let plaintext = hex::decode(&v["plaintext"]).unwrap();
    let opened = custody_vault::seal::open(&ciphertext, &[identity]).unwrap();
    assert_eq!(opened.len(), plaintext.len());
    assert!(opened == plaintext, "the plaintext differs");
    assert_eq!(hex::encode(Sha256::digest(&opened)), v["plaintext-sha256"]);
    // More than one 64 KiB STREAM chunk, so the last-chunk flag is exercised too.
    assert!(plaintext.len() > 64 * 1024);
}

#[test]
fn a_typage_segment_with_one_byte_changed_does_not_open() {
    let v = vector();
    let identity = age::x25519::Identity::from_str(&v["identity"]).unwrap();
    let mut ciphertext = hex::decode(&v["ciphertext"]).unwrap();
    let n = ciphertext.len();
    ciphertext[n - 20] ^= 1;
    assert!(custody_vault::seal::open(&ciphertext, &[identity]).is_err());
    let other = age::x25519::Identity::generate();
    let ciphertext = hex::decode(&v["ciphertext"]).unwrap();
    assert!(custody_vault::seal::open(&ciphertext, &[other]).is_err());
}
