//! Replays the inputs the protocol fuzzer once failed on (tests/fuzz-regressions/protocol/,
//! one file each, named after what broke) through the very check the fuzz target runs
//! (fuzz/checks/protocol.rs), and the seeds it starts from.

use std::path::Path;

mod protocol {
    include!("../../fuzz/checks/protocol.rs");
}

/// Runs the check on every file in `dir` (relative to the repository), naming the input
/// that fails; returns how many there were.
fn replay(dir: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| protocol::check(&data)).is_err() {
            panic!("fuzz input {} fails the protocol check", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn every_kept_input_passes_the_protocol_check() {
    replay("tests/fuzz-regressions/protocol");
}

#[test]
fn the_seeds_pass_the_protocol_check() {
    assert!(replay("fuzz/seeds/protocol") >= 10);
}
