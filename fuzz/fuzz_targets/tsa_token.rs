//! RFC 3161 time-stamp tokens as the verifier checks them (see fuzz/checks/tsa_token.rs).
//! The check is shared with the test that replays fuzz/seeds/tsa_token/ and
//! tests/fuzz-regressions/tsa_token/.
#![no_main]

mod check {
    include!("../checks/tsa_token.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
