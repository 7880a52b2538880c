//! Chain checking over arbitrary bytes: never panics, always reports.
#![no_main]
use custody_format::chain::verify_chain;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = verify_chain(data, None);
    assert!(!report.checks.is_empty());
});
