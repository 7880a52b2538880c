//! The journal's frame reader, over arbitrary file contents (see fuzz/checks/journal.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/journal/.
#![no_main]

mod check {
    include!("../checks/journal.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
