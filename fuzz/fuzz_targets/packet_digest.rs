//! The packet digest's NAL and ADTS splitting (see fuzz/checks/packet_digest.rs).
//! The check is shared with the regression test that replays tests/fuzz-regressions/packet_digest/.
#![no_main]

mod check {
    include!("../checks/packet_digest.rs");
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
