//! Record and signed-record parsing (see fuzz/checks/record.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/record/.
#![no_main]

mod check {
    include!("../checks/record.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
