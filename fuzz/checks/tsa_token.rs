// The tsa_token target's check, shared by fuzz/fuzz_targets/tsa_token.rs and the test that
// replays fuzz/seeds/tsa_token/ and tests/fuzz-regressions/tsa_token/
// (verifier/tests/tsa.rs).
use custody_format::log::TreeHead;
use custody_format::signed::Signed;
use custody_verifier::tsa::{check_token, RootOrigin, Roots, TokenEntry};

/// The head every seed token stamps: fixed, so that a mutated token still reaches past the
/// imprint into the CMS signature, the ESS attribute and the certificate path.
pub fn head() -> Vec<u8> {
    let h = TreeHead { tree_size: 37, root_hash: [9; 32], timestamp_us: 1_764_000_000_000_000 };
    Signed::sign(h, &custody_format::testkit::key("server")).to_bytes()
}

/// The test root the seed tokens chain to (made once by custody-testkit).
pub const ROOT: &[u8] = include_bytes!("../seeds/tsa_token/root.der.bin");

/// Time-stamp tokens: checking one never panics, and a token that is accepted stamps the
/// SHA-256 of the head it is checked against (restated here, not taken from the checker).
pub fn check(data: &[u8]) {
    let head = head();
    let key = custody_format::testkit::public("server");
    let roots = Roots::new(vec![ROOT.to_vec()], RootOrigin::Given);
    let entry = TokenEntry {
        log_index: 40,
        logged_at_us: 1_764_000_001_000_000,
        label: "http://127.0.0.1/tsa",
        tree_head: &head,
        token: data,
    };
    let mut checks = Vec::new();
    if let Some(stamp) = check_token(&entry, Some(&key), Some(&roots), 0, &mut checks) {
        assert_eq!(stamp.tree_size, 37);
        let digest = custody_format::primitives::sha256(&[&head]);
        assert!(data.windows(32).any(|w| w == digest), "accepted without the head's imprint");
    }
    assert!(!checks.is_empty(), "a token checked without a word");
}
