//! Ingest: checking a record (and its sealed segment), storing it, logging it, receipting it.
//!
//! The order is the promise the receipt makes. Nothing is stored before every check has
//! passed; the sealed segment is stored before the record that names it; both are durable
//! before the log entry is appended; the log entry is durable before the receipt is signed.
//! A crash anywhere leaves either nothing receipted or everything a receipt speaks of.

use std::sync::{Arc, Mutex};

use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry};
use custody_format::primitives::sha256;
use custody_format::record::{kind, Record, SignedRecord};

use crate::error::{ApiError, Code};
use crate::index::Stored;
use crate::server::{lock, receipt_for, stored_of, Server};
use crate::storage::StagedSegment;

fn internal<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> ApiError {
    move |e| ApiError::internal(what, e)
}

impl Server {
    fn recording_lock(&self, id: &RecordingId) -> Arc<Mutex<()>> {
        let mut locks = lock(&self.inner.recording_locks);
        // Drop locks nobody holds, so the map does not grow with every recording ever seen.
        if locks.len() > 4096 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(id.0).or_default().clone()
    }

    /// Checks, stores, logs and receipts the record in `body` (followed, for a segment
    /// record, by the sealed segment), sent by `device` to the URL for `id` and `seq`.
    /// Returns the signed receipt's bytes. Blocking: it writes and fsyncs files.
    pub fn ingest(
        &self,
        device: &PublicKey,
        id: RecordingId,
        seq: u64,
        body: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        let (record, rest) = SignedRecord::read(body).map_err(|e| {
            ApiError::new(Code::RecordMalformed, format!("the body's record cannot be read: {e}"))
        })?;
        self.check_record(device, id, seq, &record)?;
        crate::upload::check_rest_len(&record, rest.len() as u64)?;
        let staged = match record.record() {
            Record::Segment(s) => {
                if sha256(&[rest]) != s.ciphertext_sha256 {
                    return Err(ApiError::new(
                        Code::SegmentHash,
                        "the sealed segment's SHA-256 is not the one its record holds",
                    ));
                }
                Some(StagedSegment::whole(rest.to_vec()))
            }
            _ => None,
        };
        self.store_and_receipt(device, &record, staged)
    }

    /// The checks of a record that need nothing stored: its recording id and position are
    /// the URL's, `device` signed it, and a header names `device`.
    pub(crate) fn check_record(
        &self,
        device: &PublicKey,
        id: RecordingId,
        seq: u64,
        record: &SignedRecord,
    ) -> Result<(), ApiError> {
        let r = record.record();
        if r.recording_id() != id || r.seq() != seq {
            return Err(ApiError::new(
                Code::RecordPosition,
                format!(
                    "the record is position {} of recording {}, not {seq} of {id}",
                    r.seq(),
                    r.recording_id()
                ),
            ));
        }
        if !record.verify(device) {
            return Err(ApiError::new(
                Code::RecordSignature,
                "the record's signature does not verify with the requesting device's key",
            ));
        }
        if let Record::Header(h) = r {
            if h.device_key != *device {
                return Err(ApiError::new(
                    Code::RecordDevice,
                    format!("the header names device {}, not the requesting device", h.device_key),
                ));
            }
        }
        Ok(())
    }

    /// Stores, logs and receipts a checked `record` from `device`, with its sealed segment
    /// (already checked against the record's length and hash) for a segment record.
    /// Blocking.
    pub(crate) fn store_and_receipt(
        &self,
        device: &PublicKey,
        record: &SignedRecord,
        segment: Option<StagedSegment>,
    ) -> Result<Vec<u8>, ApiError> {
        let r = record.record();
        let (id, seq) = (r.recording_id(), r.seq());
        let rlock = self.recording_lock(&id);
        let _held = lock(&rlock);
        let index = &self.inner.index;
        if let Some(owner) = index.owner(&id).map_err(internal("reading the index"))? {
            if owner != device.to_bytes() {
                return Err(ApiError::new(
                    Code::RecordingOwner,
                    format!("recording {id} was opened by another device"),
                ));
            }
        }
        let hash = record.hash();
        let hash_hex = hex::encode(hash);
        let existing = match index.get(&id, seq).map_err(internal("reading the index"))? {
            Some(s) => Some(s),
            // The index is a cache: a record stored just before a crash may be missing.
            None => self
                .inner
                .storage
                .record(&id, seq)
                .map_err(internal("reading storage"))?
                .and_then(|b| SignedRecord::parse(&b).ok())
                .map(|r| stored_of(&r)),
        };
        if let Some(stored) = existing {
            if stored.record_hash == hash_hex {
                // Stored before, its receipt not in the index: perhaps logged by a replica
                // killed before its index write (crate::replica).
                if stored.receipt.is_none() {
                    if let Some(receipt) = self.receipt_from_log(device, record, &stored)? {
                        return Ok(receipt);
                    }
                }
                return self.finish(device, record, stored);
            }
            return Err(self.equivocation(device, record, &stored));
        }
        self.check_links(&id, record)?;

        if let Some(segment) = segment {
            self.inner
                .storage
                .commit_segment(&id, seq, segment)
                .map_err(self.storage_failed("storing the segment"))?;
        }
        self.inner
            .storage
            .put_record(&id, seq, &record.to_bytes())
            .map_err(self.storage_failed("storing the record"))?;
        index.set_owner(&id, &device.to_bytes()).map_err(internal("writing the index"))?;
        let stored = stored_of(record);
        index.put(&id, seq, &stored).map_err(internal("writing the index"))?;
        self.finish(device, record, stored)
    }

    /// Checks the links to the stored neighbours and the place of the end record. Reads
    /// only the neighbours and the recording's last stored position (three index lookups,
    /// however long the recording), never every stored position.
    fn check_links(&self, id: &RecordingId, record: &SignedRecord) -> Result<(), ApiError> {
        let index = &self.inner.index;
        let read = internal("reading the index");
        let seq = record.record().seq();
        // An end record is always the last stored position: nothing is stored after one,
        // and one is not stored before a later position.
        let last = index.last(id).map_err(read)?;
        let stored_end = last.as_ref().filter(|(_, st)| st.kind == kind::END).map(|(s, _)| *s);
        let after_end = |s: u64| {
            ApiError::new(
                Code::ChainAfterEnd,
                format!("the recording's end record is stored at position {s}"),
            )
        };
        if let Some(s) = stored_end.filter(|&s| s + 1 < seq) {
            return Err(after_end(s));
        }
        if let Some(before) = seq.checked_sub(1) {
            if let Some(stored) = index.get(id, before).map_err(internal("reading the index"))? {
                if record.record().prev().map(hex::encode).as_ref() != Some(&stored.record_hash) {
                    return Err(ApiError::new(
                        Code::ChainLink,
                        format!("position {seq} does not link to the stored record at {before}"),
                    ));
                }
            }
        }
        if let Some(after) = seq.checked_add(1) {
            if let Some(stored) = index.get(id, after).map_err(internal("reading the index"))? {
                if stored.prev.as_deref() != Some(hex::encode(record.hash()).as_str()) {
                    return Err(ApiError::new(
                        Code::ChainLink,
                        format!("the stored record at {after} does not link to this one"),
                    ));
                }
            }
        }
        if let Some(s) = stored_end.filter(|&s| s < seq) {
            return Err(after_end(s));
        }
        if let (Record::End(_), Some((s, _))) = (record.record(), &last) {
            if *s > seq {
                return Err(ApiError::new(
                    Code::ChainAfterEnd,
                    format!("a record is stored at position {s}, after this end record"),
                ));
            }
        }
        Ok(())
    }

    /// Logs a stored record (unless it already is) and returns its receipt.
    fn finish(
        &self,
        device: &PublicKey,
        record: &SignedRecord,
        mut stored: Stored,
    ) -> Result<Vec<u8>, ApiError> {
        if let Some(receipt) = stored.receipt.as_ref().and_then(|h| hex::decode(h).ok()) {
            return Ok(receipt);
        }
        let r = record.record();
        let id = r.recording_id();
        let seq = r.seq();
        let (entry_type, cipher) = match r {
            Record::Header(_) => (EntryType::RecordingOpened, None),
            Record::Segment(s) => (EntryType::SegmentReceived, Some(s.ciphertext_sha256)),
            Record::End(_) => (EntryType::RecordingEnded, None),
        };
        let mut entry = LogEntry::new(entry_type, crate::now_us());
        entry.device_key = Some(*device);
        entry.recording_id = Some(id);
        entry.seq = Some(seq);
        entry.record_hash = Some(record.hash());
        entry.ciphertext_sha256 = cipher;
        if stored.log_index.is_some() {
            // Logged, yet no receipt in the index: only a damaged index does that, and a
            // restart rebuilds it (the receipt is a function of the logged entry).
            return Err(ApiError::internal(
                "answering a logged record",
                "index entry has a log index but no receipt; restart to rebuild the index",
            ));
        }
        // The order is held from the append until the index entry is written, so that a
        // bundle's statement (which holds it exclusively) sees every logged record indexed.
        let _order = self.inner.commit.ordered();
        let appended = self.append_to(&entry, true).map_err(internal("appending to the log"))?;
        let Some(receipt) =
            receipt_for(&entry, appended.index, appended.root, &self.inner.identity.signing_key)
        else {
            return Err(ApiError::internal("signing a receipt", "the log entry lacks a field"));
        };
        let bytes = receipt.to_bytes();
        stored.log_index = Some(appended.index);
        stored.receipt = Some(hex::encode(&bytes));
        // The index entry goes in before the marker says the index covers the log this far,
        // so a crash between them is seen (and repaired) at start. With appends in flight
        // the marker only reaches the first entry whose index entry is not yet written
        // ([`crate::custody_log::CustodyLog::indexed`]); one that is never written (a failed
        // put) holds it back, and the next start rebuilds the index.
        self.inner.index.put(&id, seq, &stored).map_err(internal("writing the index"))?;
        let mut log = lock(&self.inner.log);
        if let Some(covered) = log.indexed(appended.index) {
            let _ = self.inner.index.set_log_size(covered);
        }
        drop(log);
        Ok(bytes)
    }

    /// Logs an equivocation and makes its refusal.
    fn equivocation(&self, device: &PublicKey, record: &SignedRecord, stored: &Stored) -> ApiError {
        let r = record.record();
        let mut entry = LogEntry::new(EntryType::EquivocationRefused, crate::now_us());
        entry.device_key = Some(*device);
        entry.recording_id = Some(r.recording_id());
        entry.seq = Some(r.seq());
        entry.record_hash = Some(record.hash());
        entry.conflicting_hash =
            hex::decode(&stored.record_hash).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
        if let Err(e) = self.append_log(&entry) {
            return ApiError::internal("logging an equivocation", e);
        }
        ApiError::new(
            Code::Equivocation,
            format!(
                "a different record ({}) is already stored at position {} of recording {}; \
                 this attempt is logged",
                stored.record_hash,
                r.seq(),
                r.recording_id()
            ),
        )
    }
}
