//! Replays the inputs the protocol fuzzer once failed on (tests/fuzz-regressions/protocol/,
//! one file each, named after what broke) through the very check the fuzz target runs
//! (fuzz/checks/protocol.rs), and the seeds it starts from.

use std::path::Path;

use custody_protocol::body::{EnrollRequest, InclusionProof, RecordingList};
use custody_protocol::code::Refusal;
use custody_protocol::{EnrollLink, SignedHeaders};

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
    // Empty until the fuzzer finds a failure in the protocol; the seeds always run.
    replay("tests/fuzz-regressions/protocol");
}

/// The seeds the fuzzer starts from are well-formed (headers that parse, a link that
/// parses, bodies that read), so the check's round trips are reached from the first run.
#[test]
fn the_seeds_are_well_formed_and_pass_the_protocol_check() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/protocol");
    assert_eq!(replay("fuzz/seeds/protocol"), std::fs::read_dir(&seeds).unwrap().count());
    let seed = |name: &str| std::fs::read(seeds.join(name)).unwrap()[1..].to_vec();
    let headers = seed("headers");
    let v: Vec<&[u8]> = headers.split(|&b| b == b'\n').collect();
    SignedHeaders::parse(Some(v[0]), Some(v[1]), Some(v[2]), Some(v[3])).unwrap();
    EnrollLink::parse(std::str::from_utf8(&seed("link")).unwrap()).unwrap();
    assert!(Refusal::from_body(&seed("refusal")).unwrap().code().is_some());
    serde_json::from_slice::<EnrollRequest>(&seed("enroll-request")).unwrap().claim().unwrap();
    serde_json::from_slice::<RecordingList>(&seed("recordings")).unwrap();
    serde_json::from_slice::<InclusionProof>(&seed("inclusion")).unwrap();
}
