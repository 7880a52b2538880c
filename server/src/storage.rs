//! Records and sealed segments as the server's blocking code paths read and write them: a
//! synchronous view of the configured [`RecordStore`], each call
//! driven to completion with [`crate::store::block_on`] (the one bridge; see
//! [`crate::store`]). Every `put` returns only once the bytes are durable; the server
//! receipts nothing before that.

use std::sync::Arc;

use custody_format::ids::RecordingId;

use crate::store::{block_on, RecordStore, SegmentUpload};

/// How many record reads [`Storage::records`] keeps in flight.
pub const READS_IN_FLIGHT: usize = 16;

/// Storage failures: a [`crate::store::StoreError`], which names no path as part of its type.
pub type StorageError = crate::store::StoreError;

/// The server's records and sealed segments. Call only from a blocking thread (or with a
/// store that never waits, as the filesystem and memory stores).
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn RecordStore>,
}

impl Storage {
    /// The view of `store`.
    pub fn new(store: Arc<dyn RecordStore>) -> Storage {
        Storage { store }
    }

    /// The store behind the view.
    pub fn store(&self) -> &Arc<dyn RecordStore> {
        &self.store
    }

    /// Stores the sealed segment at `seq`, durably (see [`RecordStore::put_segment`]).
    pub fn put_segment(
        &self,
        id: &RecordingId,
        seq: u64,
        bytes: &[u8],
    ) -> Result<(), StorageError> {
        block_on(self.store.put_segment(*id, seq, bytes))
    }

    /// Starts receiving the sealed segment at `seq`, of `len` bytes (see [`StagedSegment`]).
    pub fn stage_segment(
        &self,
        id: &RecordingId,
        seq: u64,
        len: u64,
    ) -> Result<StagedSegment, StorageError> {
        Ok(StagedSegment(match block_on(self.store.stage_segment(*id, seq))? {
            Some(s) => Staging::Streamed(s),
            None => Staging::Whole(Vec::with_capacity(len.min(1 << 20) as usize)),
        }))
    }

    /// Stores a received sealed segment at `seq`, durably, as [`Storage::put_segment`].
    pub fn commit_segment(
        &self,
        id: &RecordingId,
        seq: u64,
        staged: StagedSegment,
    ) -> Result<(), StorageError> {
        match staged.0 {
            Staging::Streamed(s) => block_on(s.commit()),
            Staging::Whole(b) => self.put_segment(id, seq, &b),
        }
    }

    /// Stores the signed record at `seq`, durably; other bytes already there are
    /// [`StorageError::Conflict`].
    pub fn put_record(&self, id: &RecordingId, seq: u64, bytes: &[u8]) -> Result<(), StorageError> {
        block_on(self.store.put_record(*id, seq, bytes))
    }

    /// The signed record at `seq`, if stored.
    pub fn record(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        block_on(self.store.record(*id, seq))
    }

    /// The sealed segment at `seq`, if stored (for the legal team; no device route reads it).
    pub fn segment(&self, id: &RecordingId, seq: u64) -> Result<Option<Vec<u8>>, StorageError> {
        block_on(self.store.segment(*id, seq))
    }

    /// Up to `len` bytes of the sealed segment at `seq` from `offset` on, if stored.
    pub fn segment_range(
        &self,
        id: &RecordingId,
        seq: u64,
        offset: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        block_on(self.store.segment_range(*id, seq, offset, len))
    }

    /// The signed records at `seqs` (each `None` if not stored), in the order asked, read
    /// [`READS_IN_FLIGHT`] at a time: each read of an object store is a round trip.
    pub fn records(
        &self,
        id: &RecordingId,
        seqs: &[u64],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        use futures_util::stream::{self, StreamExt, TryStreamExt};
        block_on(
            stream::iter(seqs.iter().map(|&seq| self.store.record(*id, seq)))
                .buffered(READS_IN_FLIGHT)
                .try_collect(),
        )
    }

    /// How many bytes of a segment to read at a time ([`RecordStore::range_read_len`]).
    pub fn range_read_len(&self) -> usize {
        self.store.range_read_len()
    }

    /// Every recording with at least one stored record.
    pub fn recordings(&self) -> Result<Vec<RecordingId>, StorageError> {
        block_on(self.store.recordings())
    }

    /// The positions of a recording's stored records, ascending.
    pub fn record_positions(&self, id: &RecordingId) -> Result<Vec<u64>, StorageError> {
        block_on(self.store.record_positions(*id))
    }
}

/// A sealed segment being received ([`Storage::stage_segment`]): streamed into the store
/// as it arrives when the store can take it so ([`crate::store::SegmentUpload`]), else
/// gathered here and stored whole. Only [`Storage::commit_segment`] puts it where
/// [`Storage::segment`] finds it; dropped uncommitted, it leaves nothing behind.
#[derive(Debug)]
pub struct StagedSegment(Staging);

#[derive(Debug)]
enum Staging {
    Streamed(Box<dyn SegmentUpload>),
    Whole(Vec<u8>),
}

impl StagedSegment {
    /// A segment already received whole.
    pub fn whole(bytes: Vec<u8>) -> StagedSegment {
        StagedSegment(Staging::Whole(bytes))
    }

    /// Appends the next bytes of the segment. Blocking.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        match &mut self.0 {
            Staging::Streamed(s) => block_on(s.write(bytes)),
            Staging::Whole(b) => {
                b.extend_from_slice(bytes);
                Ok(())
            }
        }
    }
}
