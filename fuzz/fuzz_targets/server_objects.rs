//! Receipts, tree heads, device certificates, log entries and log proofs.
#![no_main]
use custody_format::bundle::LogProof;
use custody_format::cert::DeviceCertificate;
use custody_format::log::{LogEntry, TreeHead};
use custody_format::receipt::Receipt;
use custody_format::signed::Signed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Signed::<Receipt>::parse(data) {
        assert_eq!(r.to_bytes(), data);
    }
    let _ = Signed::<TreeHead>::parse_all(data);
    let _ = Signed::<DeviceCertificate>::parse(data);
    if let Ok(e) = LogEntry::decode(data) {
        assert_eq!(e.encode(), data);
    }
    let _ = LogProof::parse_all(data);
});
