//! Chain checking over arbitrary bytes (see fuzz/checks/chain.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/chain/.
#![no_main]

mod check {
    include!("../checks/chain.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
