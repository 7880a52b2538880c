//! The server's receipts: checked against what was sent, then kept in the recording's
//! `receipts.bin` journal ([`custody_vault::outbox`]) before the record leaves the queue;
//! and, for a vault that lost them (the file deleted, cut short or damaged: the vault then
//! queues those records again), asked for again instead of sending the records again.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use custody_durable::journal::Journal;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::receipt::Receipt;
use custody_format::record::{Record, SignedRecord};
use custody_format::signed::Signed;
use custody_protocol::body::{ReceiptsAnswer, StoredReceipt};
use custody_protocol::Retry;
use custody_vault::outbox::{open_receipts, read_receipts, HeadRef, RECEIPTS_FILE};

use crate::error::{io_err, UploadError};
use crate::log_check::Failure;
use crate::uploader::Uploader;

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
            // Repaired first, keeping every intact receipt: one after damage is not cut off.
            let j = open_receipts(recording_dir).map_err(io_err("opening", &path))?;
            self.journals.insert(*id, j);
        }
        if let Some(j) = self.journals.get_mut(id) {
            j.append(&receipt.to_bytes()).map_err(io_err("saving a receipt in", &path))?;
        }
        self.receipted.entry(*id).or_default().insert(receipt.value().seq);
        Ok(())
    }
}

impl Uploader {
    /// Asks the server again for the receipts of records it may already hold that this
    /// vault has no receipt for: every recording whose `receipts.bin` is gone, or that has
    /// queued records without a receipt (after an index rebuild, or a recording sent by a
    /// device that lost its copy). Each receipt given back is checked as an upload's would
    /// be (signed by the pinned server, naming exactly the record in the journal, its log
    /// tree consistent with the head held) and stored, so the record is not sent again.
    /// One request per such recording; a recording the server does not hold answers
    /// `not_found` and is uploaded as usual. Returns how many receipts were stored.
    pub(crate) async fn recover_receipts(&self) -> u64 {
        let mut recovered = 0;
        let pending = self.index.pending().unwrap_or_default();
        let summaries = self.index.summaries().unwrap_or_default();
        for s in summaries {
            let Ok(id) = RecordingId::parse(&s.id) else { continue };
            let dir = self.rec_dir(&id);
            let lost_file = !dir.join(RECEIPTS_FILE).exists();
            let queued_without = pending
                .iter()
                .filter(|(p, _)| *p == id.0)
                .any(|(_, seq)| matches!(self.has_receipt(&id, *seq), Ok(false)));
            if !(lost_file || queued_without) {
                continue;
            }
            let answer: ReceiptsAnswer = match self
                .get_json(&format!("/v1/recordings/{id}/receipts"))
                .await
            {
                Ok(a) => a,
                // Unreachable or failing: the uploads will find out and retry.
                Err(UploadError::Network(_)) => return recovered,
                Err(e) if e.code().is_some_and(|c| c.retry() == Retry::Later) => return recovered,
                // Not held there (not_found), or refused: upload as usual.
                Err(_) => continue,
            };
            for stored in &answer.receipts {
                match self.recover_one(&id, stored).await {
                    Recovered::Stored => recovered += 1,
                    Recovered::Skipped => {}
                    Recovered::Stop => return recovered,
                }
            }
        }
        recovered
    }

    async fn recover_one(&self, id: &RecordingId, stored: &StoredReceipt) -> Recovered {
        let seq = stored.seq;
        if !matches!(self.has_receipt(id, seq), Ok(false)) {
            return Recovered::Skipped;
        }
        let Ok(Some(record)) = self.record(id, seq) else { return Recovered::Skipped };
        let Ok(bytes) = hex::decode(&stored.receipt) else { return Recovered::Skipped };
        let Ok(receipt) = check_receipt(&bytes, &record, &self.server_key, &self.signer.public)
        else {
            return Recovered::Skipped;
        };
        let offered = HeadRef {
            tree_size: receipt.value().tree_size,
            root_hash: hex::encode(receipt.value().tree_root),
            source: "receipt".into(),
            signed: hex::encode(&bytes),
        };
        match self.check_log(offered).await {
            Ok(()) => {}
            Err(Failure::Retry(_) | Failure::Inconsistent(_)) => return Recovered::Stop,
        }
        let (this, id) = (self.clone(), *id);
        match tokio::task::spawn_blocking(move || this.store_receipt(&id, seq, &receipt)).await {
            Ok(Ok(true)) => Recovered::Stored,
            Ok(Ok(false)) => Recovered::Skipped,
            _ => Recovered::Stop,
        }
    }
}

/// What became of one receipt given back.
enum Recovered {
    Stored,
    /// Already held, or not one this vault can check and keep: the record is uploaded.
    Skipped,
    /// The server or the vault failed; the uploads go on as usual.
    Stop,
}
