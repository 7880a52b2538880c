// The chain target's check, shared by fuzz/fuzz_targets/chain.rs and the regression test
// that replays tests/fuzz-regressions/chain/ (format/tests/fuzz_regressions.rs).
use custody_format::chain::verify_chain;

/// Chain checking over arbitrary bytes: never panics, always reports.
pub fn check(data: &[u8]) {
    let report = verify_chain(data, None);
    assert!(!report.checks.is_empty());
}
