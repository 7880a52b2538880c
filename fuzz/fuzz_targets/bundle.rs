//! Bundle manifests (see fuzz/checks/bundle.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/bundle/.
#![no_main]

mod check {
    include!("../checks/bundle.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
