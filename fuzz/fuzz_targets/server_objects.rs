//! Receipts, tree heads, device certificates, case recipients, log entries and log proofs (see
//! fuzz/checks/server_objects.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/server_objects/.
#![no_main]

mod check {
    include!("../checks/server_objects.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
