// The server_objects target's check, shared by fuzz/fuzz_targets/server_objects.rs and the
// regression test that replays tests/fuzz-regressions/server_objects/
// (format/tests/fuzz_regressions.rs).
use custody_format::bundle::{ConsistencyProof, LogProof};
use custody_format::cert::DeviceCertificate;
use custody_format::log::{LogEntry, TreeHead};
use custody_format::receipt::Receipt;
use custody_format::recipients::CaseRecipients;
use custody_format::signed::Signed;

/// Receipts, tree heads, device certificates, signed case recipients, log entries, log
/// proofs and receipt consistency proofs: parsing never panics; receipts, case recipients,
/// log entries and consistency proofs that parse re-encode to the same bytes.
pub fn check(data: &[u8]) {
    if let Ok(r) = Signed::<Receipt>::parse(data) {
        assert_eq!(r.to_bytes(), data);
    }
    let _ = Signed::<TreeHead>::parse_all(data);
    let _ = Signed::<DeviceCertificate>::parse(data);
    if let Ok(c) = Signed::<CaseRecipients>::parse(data) {
        assert_eq!(c.to_bytes(), data);
    }
    if let Ok(e) = LogEntry::decode(data) {
        assert_eq!(e.encode(), data);
    }
    let _ = LogProof::parse_all(data);
    if let Ok(proofs) = ConsistencyProof::parse_all(data) {
        assert_eq!(proofs.iter().flat_map(ConsistencyProof::encode).collect::<Vec<u8>>(), data);
    }
}
