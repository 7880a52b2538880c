//! Record and signed-record parsing: never panics; whatever parses re-encodes to the same
//! bytes (one encoding per record).
#![no_main]
use custody_format::record::{Record, SignedRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(record.encode(), data);
    }
    if let Ok(signed) = SignedRecord::parse(data) {
        assert_eq!(signed.to_bytes(), data);
    }
});
