//! The server's receipts: checked against what was sent, then kept in the recording's
//! `receipts.bin` journal ([`custody_vault::outbox`]) before the record leaves the queue.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use custody_durable::journal::Journal;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::signed::Signed;
use custody_vault::outbox::{read_receipts, RECEIPTS_FILE};

use crate::error::{io_err, UploadError};

/// Checks that `bytes` is a receipt signed by `server_key` for exactly `record` (its
/// recording, position, hash and ciphertext) from the device `device_key`.
pub fn check_receipt(
    bytes: &[u8],
    record: &SignedRecord,
    server_key: &PublicKey,
    device_key: &PublicKey,
) -> Result<Signed<Receipt>, String> {
    let r = Signed::<Receipt>::parse(bytes).map_err(|e| format!("receipt: {e}"))?;
    if !r.verify(server_key) {
        return Err("the receipt is not signed by the enrolled server".into());
    }
    let v = r.value();
    let cipher = match record.record() {
        Record::Segment(s) => Some(s.ciphertext_sha256),
        _ => None,
    };
    if v.recording_id != record.record().recording_id()
        || v.seq != record.record().seq()
        || v.record_hash != record.hash()
        || v.ciphertext_sha256 != cipher
        || &v.device_key != device_key
    {
        return Err("the receipt does not name the record sent".into());
    }
    Ok(r)
}

/// The receipts journals open for appending, and which positions each recording holds a
/// receipt for (read once per recording, then kept up to date).
#[derive(Debug, Default)]
pub(crate) struct ReceiptBook {
    journals: HashMap<RecordingId, Journal>,
    receipted: HashMap<RecordingId, HashSet<u64>>,
}

impl ReceiptBook {
    /// Whether a receipt for `seq` is stored in `recording_dir`.
    pub(crate) fn has(
        &mut self,
        id: &RecordingId,
        recording_dir: &Path,
        seq: u64,
    ) -> Result<bool, UploadError> {
        if !self.receipted.contains_key(id) {
            let set = read_receipts(recording_dir)?.iter().map(|r| r.value().seq).collect();
            self.receipted.insert(*id, set);
        }
        Ok(self.receipted.get(id).is_some_and(|s| s.contains(&seq)))
    }

    /// Appends `receipt` to the recording's journal and fsyncs it.
    pub(crate) fn append(
        &mut self,
        id: &RecordingId,
        recording_dir: &Path,
        receipt: &Signed<Receipt>,
    ) -> Result<(), UploadError> {
        let path = recording_dir.join(RECEIPTS_FILE);
        if !self.journals.contains_key(id) {
            let j = if path.exists() {
                Journal::open(&path).map(|(j, _)| j)
            } else {
                Journal::create(&path)
            }
            .map_err(io_err("opening", &path))?;
            self.journals.insert(*id, j);
        }
        if let Some(j) = self.journals.get_mut(id) {
            j.append(&receipt.to_bytes()).map_err(io_err("saving a receipt in", &path))?;
        }
        self.receipted.entry(*id).or_default().insert(receipt.value().seq);
        Ok(())
    }
}
