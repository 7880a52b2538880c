//! Replays the inputs the journal fuzzer once failed on (tests/fuzz-regressions/journal/,
//! one file each, named after what broke) through the very check the fuzz target runs
//! (fuzz/checks/journal.rs), and the seeds it starts from.

use std::path::Path;

mod journal {
    include!("../../fuzz/checks/journal.rs");
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
        if std::panic::catch_unwind(|| journal::check(&data)).is_err() {
            panic!("fuzz input {} fails the journal check", path.display());
        }
        n += 1;
    }
    n
}

#[test]
fn every_kept_input_passes_the_journal_check() {
    // Empty until the fuzzer finds a failure in the frame reader; the seeds always run.
    replay("tests/fuzz-regressions/journal");
}

/// The seeds the fuzzer starts from are journals of real records, one whole and one with a
/// torn tail, so the check's assertions on frames are reached from the first run.
#[test]
fn the_seed_journals_hold_frames_and_pass_the_journal_check() {
    assert_eq!(replay("fuzz/seeds/journal"), 2);
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/journal");
    let whole = custody_durable::journal::read(&seeds.join("three-records")).unwrap();
    assert_eq!((whole.payloads.len(), whole.torn), (3, None));
    let torn = custody_durable::journal::read(&seeds.join("torn-tail")).unwrap();
    assert_eq!(torn.payloads, whole.payloads);
    assert_eq!(torn.torn.map(|t| (t.offset, t.len)), Some((whole.good_len, 11)));
}
