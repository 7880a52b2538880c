// The record target's check, shared by fuzz/fuzz_targets/record.rs and the regression test
// that replays tests/fuzz-regressions/record/ (format/tests/fuzz_regressions.rs).
use custody_format::record::{Record, SignedRecord};

/// Record and signed-record parsing: never panics; whatever parses re-encodes to the same
/// bytes (one encoding per record).
pub fn check(data: &[u8]) {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(record.encode(), data);
    }
    if let Ok(signed) = SignedRecord::parse(data) {
        assert_eq!(signed.to_bytes(), data);
    }
}
