//! The protocol's signature headers, JSON bodies, refusals and enrollment links (see
//! fuzz/checks/protocol.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/protocol/.
#![no_main]

mod check {
    include!("../checks/protocol.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
