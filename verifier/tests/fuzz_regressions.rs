//! Replays the inputs the tar fuzzer once failed on (tests/fuzz-regressions/tar/, one file
//! each, named after what broke) through the very check the fuzz target runs
//! (fuzz/checks/tar.rs).

use std::io::Cursor;
use std::path::Path;

use custody_verifier::TarIndex;

mod tar {
    include!("../../fuzz/checks/tar.rs");
}

fn inputs(dir: &str) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

#[test]
fn every_kept_input_passes_the_tar_check() {
    // Empty until the fuzzer finds a failure in the tar reader; the seeds below always run.
    for (path, data) in inputs("tests/fuzz-regressions/tar") {
        if std::panic::catch_unwind(|| tar::check(&data)).is_err() {
            panic!("fuzz regression {} fails again", path.display());
        }
    }
}

/// The seed the fuzzer starts from is a whole bundle archive, so the check's assertions on
/// indexed files are reached from the first run, not only once the fuzzer finds a header.
#[test]
fn the_seed_archive_indexes_and_passes_the_check() {
    let seeds = inputs("fuzz/seeds/tar");
    assert!(!seeds.is_empty());
    for (path, data) in seeds {
        let index = TarIndex::read(&mut Cursor::new(&data), data.len() as u64, "seed")
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(index.files.contains_key("recording/segments/00000000.age"), "{index:?}");
        tar::check(&data);
    }
}
