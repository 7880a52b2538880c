//! Bundle archives, indexed as `custody verify` and `custody fetch` do (see
//! fuzz/checks/tar.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/tar/.
#![no_main]

mod check {
    include!("../checks/tar.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
