//! The seams of the server's state: every record, sealed segment, custody-log entry, index
//! entry, enrollment token, member and request nonce is reached through one of the traits
//! here, and [`Backend`] in the configuration picks their implementations.
//!
//! | trait           | what it keeps                                   | [`fs`]               | [`memory`] |
//! |-----------------|-------------------------------------------------|----------------------|------------|
//! | [`RecordStore`] | signed records and sealed segments              | `<data>/recordings/` | maps       |
//! | [`LogStore`]    | custody-log entries and signed tree heads       | `<data>/log/`        | vectors    |
//! | [`IndexStore`]  | the rebuildable index of stored records         | sled, `<data>/index` | a B-tree   |
//! | [`TokenStore`]  | enrollment tokens (by hash) and their spending  | `<data>/tokens/`     | a map      |
//! | [`MemberStore`] | legal-team members (by token hash)              | `<data>/members/`    | a map      |
//! | [`NonceStore`]  | request nonces inside the freshness window      | —                    | a map      |
//!
//! The traits are asynchronous, so that an object store or a database can implement them:
//! each method returns a [`BoxFuture`] that is `Send` (the boxed form of `async fn` in a
//! trait, usable as `dyn`). The filesystem and in-memory implementations do their work
//! when first polled and never wait.
//!
//! **The one bridge.** The server's checking and storing paths (ingest, enrollment,
//! bundles) run on blocking threads (`spawn_blocking`) because they hash, sign and fsync;
//! there they drive a store's future to completion with [`block_on`], which parks the thread
//! until the future wakes it. A blocking thread of the tokio runtime is inside the runtime's
//! context, so a future that needs the runtime's reactor (a network client) works there
//! too. Only [`NonceStore`] is awaited directly, from the async authentication step.
//!
//! Every `put`, `append`, `spend` and `add` is durable when its future completes: the server
//! receipts nothing before that. The index alone is a cache that can always be rebuilt from
//! the records and the log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use custody_format::ids::{PublicKey, RecordingId};
use serde::{Deserialize, Serialize};

use crate::index::Stored;
use crate::members::Member;

pub mod fs;
pub mod memory;
pub mod pg;
pub mod s3;

/// A boxed, `Send` future borrowing from the store: what every store method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store's failure. It names what failed, never where as part of its type: the
/// filesystem implementation puts the path in the message, an object store its key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The back-end failed (a file, the network, a database).
    #[error("{context}: {source}")]
    Backend {
        /// What was being done, and on what.
        context: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Different bytes are already stored for this record; nothing was overwritten.
    #[error("a different record is already stored at position {seq} of recording {id}")]
    Conflict {
        /// The recording.
        id: RecordingId,
        /// The position.
        seq: u64,
    },
    /// Something stored does not read back as what was written.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// The enrollment token was already spent: by another server replica on the same
    /// store, between this one's check and its spend ([`TokenStore::spend`]).
    #[error("the token was already spent")]
    Spent,
    /// A member of this name was already added (through another replica or an admin
    /// command, between the check and the addition: [`MemberStore::add`]).
    #[error("there is already a member named {0:?}")]
    Exists(String),
}

impl StoreError {
    /// A back-end failure while doing `context`.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError::Backend { context: context.into(), source: source.into() }
    }
}

/// What a store method's future yields.
pub type StoreResult<T> = Result<T, StoreError>;

/// Signed records and sealed segments, by recording and position.
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// Stores the sealed segment at `seq`, durably. The same bytes again is a no-op. Other
    /// bytes already there (a segment whose record never got stored, from a crash) are
    /// kept aside, never deleted, and replaced.
    fn put_segment<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// Starts a streamed write of the sealed segment at `seq`: its bytes are written as
    /// they arrive, to a temporary place, and [`SegmentUpload::commit`] puts them in place
    /// with the meaning of [`RecordStore::put_segment`]. `None` (the default) if this store
    /// takes segments only whole: the server then gathers the segment and calls
    /// `put_segment`.
    fn stage_segment(
        &self,
        id: RecordingId,
        seq: u64,
    ) -> BoxFuture<'_, StoreResult<Option<Box<dyn SegmentUpload>>>> {
        let _ = (id, seq);
        Box::pin(async { Ok(None) })
    }
    /// Stores the signed record at `seq`, durably. The same bytes again is a no-op; other
    /// bytes are [`StoreError::Conflict`].
    fn put_record<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// The signed record at `seq`, if stored.
    fn record(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>>;
    /// The sealed segment at `seq`, if stored.
    fn segment(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>>;
    /// Up to `len` bytes of the sealed segment at `seq` from byte `offset` on (fewer only at
    /// its end), if stored: a ranged read, so a bundle streams without holding a segment.
    fn segment_range(
        &self,
        id: RecordingId,
        seq: u64,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>>;
    /// Every recording with at least one stored record, ascending.
    fn recordings(&self) -> BoxFuture<'_, StoreResult<Vec<RecordingId>>>;
    /// The positions of a recording's stored records, ascending.
    fn record_positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<u64>>>;
    /// How many bytes of a segment a reader should ask for at a time with
    /// [`RecordStore::segment_range`]: small where a read is a local syscall, large where each
    /// is a round trip (an object store), so a bundle is not thousands of requests.
    fn range_read_len(&self) -> usize {
        64 << 10
    }
}

/// A sealed segment being written as it arrives ([`RecordStore::stage_segment`]), so that
/// the server never holds a whole segment in memory. Dropped without a commit, it leaves
/// nothing where [`RecordStore::segment`] looks.
pub trait SegmentUpload: Send + std::fmt::Debug {
    /// Appends the next bytes.
    fn write<'a>(&'a mut self, bytes: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;
    /// Makes what was written durable and puts it in place as the segment, as
    /// [`RecordStore::put_segment`] does with the same bytes.
    fn commit(self: Box<Self>) -> BoxFuture<'static, StoreResult<()>>;
}

/// The custody log's entries (the Merkle leaves' data) and its signed tree heads.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// Every entry's bytes, in order (once, when the server opens; a torn last write is
    /// repaired here).
    fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>>;
    /// Appends the next entry, durably.
    fn append<'a>(&'a self, entry: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;
    /// Appends `entries`, in order, durably and as one step, after every entry the store
    /// holds, of which the caller has seen the first `known`. Returns the entries another
    /// writer (a second server replica on the same store) appended after those `known`;
    /// they come first, so the new entries take the positions `known + returned.len()` on.
    /// A store with one writer returns none (and fails if `known` is not its length). The
    /// default appends one entry at a time; a store that can should make the whole batch
    /// durable with one flush (group commit).
    fn append_batch<'a>(
        &'a self,
        known: u64,
        entries: &'a [Vec<u8>],
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        let _ = known;
        Box::pin(async move {
            for e in entries {
                self.append(e).await?;
            }
            Ok(Vec::new())
        })
    }
    /// The entries appended after the first `known` (by another writer on a shared store),
    /// in order: what a replica reads before it proves or signs a size it has not seen.
    /// A store with one writer keeps the default, none.
    fn entries_after(&self, known: u64) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        let _ = known;
        Box::pin(async { Ok(Vec::new()) })
    }
    /// Appends a signed tree head. Losing one is harmless: the next append makes another.
    fn append_head<'a>(&'a self, head: &'a [u8]) -> BoxFuture<'a, StoreResult<()>>;
    /// The bytes of the entries at `indices` (each below the number appended), in the
    /// order asked.
    fn entries<'a>(&'a self, indices: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>>;
    /// Where the stored log is damaged in the middle, once [`LogStore::load`] found it so:
    /// `load` then returned only the entries before the damage, and every append is
    /// refused. A store that cannot be damaged that way keeps the default, `None`.
    fn damage(&self) -> Option<crate::custody_log::LogDamage> {
        None
    }
}

/// The server's index of stored records: a cache, rebuilt from the records and the log
/// whenever it is in doubt.
pub trait IndexStore: Send + Sync + std::fmt::Debug {
    /// What is stored at `seq`.
    fn get(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Stored>>>;
    /// Notes what is stored at `seq`.
    fn put<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        s: &'a Stored,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// Every stored record of a recording, by position.
    fn positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<(u64, Stored)>>>;
    /// The highest stored position of a recording, without reading the others.
    fn last(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<(u64, Stored)>>>;
    /// The device that opened a recording.
    fn owner(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<[u8; 32]>>>;
    /// Notes the device that opened a recording.
    fn set_owner(&self, id: RecordingId, device: [u8; 32]) -> BoxFuture<'_, StoreResult<()>>;
    /// The log size the index was last brought up to date with.
    fn log_size(&self) -> BoxFuture<'_, StoreResult<Option<u64>>>;
    /// Notes that the index covers the first `size` log entries.
    fn set_log_size(&self, size: u64) -> BoxFuture<'_, StoreResult<()>>;
    /// Empties the index (before a rebuild).
    fn clear(&self) -> BoxFuture<'_, StoreResult<()>>;
    /// Makes everything noted so far durable.
    fn flush(&self) -> BoxFuture<'_, StoreResult<()>>;
}

/// An enrollment token as stored, by the SHA-256 of the token (the token itself is never
/// stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The label (pseudonym) the enrolled device gets.
    pub label: String,
    /// When it was issued, µs since the epoch.
    pub issued_at_us: i64,
    /// When it expires, µs since the epoch.
    pub expires_at_us: i64,
}

/// One-time enrollment tokens.
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Stores a new token, durably.
    fn issue<'a>(
        &'a self,
        hash: [u8; 32],
        token: &'a TokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>>;
    /// The token with this hash, if issued.
    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<TokenRecord>>>;
    /// Whether the token has been spent.
    fn is_spent(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<bool>>;
    /// Spends the token on `device`, durably. (The caller holds the server's token lock.) A
    /// store shared by several replicas spends it at most once and answers a second spend
    /// with [`StoreError::Spent`].
    fn spend<'a>(&'a self, hash: [u8; 32], device: &'a PublicKey)
        -> BoxFuture<'a, StoreResult<()>>;
}

/// A member and the SHA-256 of their API token.
pub type MemberEntry = ([u8; 32], Member);

/// Legal-team members, by the SHA-256 of their API token.
pub trait MemberStore: Send + Sync + std::fmt::Debug {
    /// Every member, oldest first.
    fn all(&self) -> BoxFuture<'_, StoreResult<Vec<MemberEntry>>>;
    /// The member with this token hash.
    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<Member>>>;
    /// Adds a member, durably.
    fn add<'a>(&'a self, hash: [u8; 32], member: &'a Member) -> BoxFuture<'a, StoreResult<()>>;
}

/// Request nonces seen inside the freshness window, per device, so that a captured request
/// is refused if sent again.
pub trait NonceStore: Send + Sync + std::fmt::Debug {
    /// Records the nonce of a request from `device` stamped `timestamp_us`, at server time
    /// `now_us`; `false` if it was already seen inside `window`. Entries older than the
    /// window may be forgotten: such a request is refused as stale anyway.
    fn insert(
        &self,
        device: [u8; 32],
        nonce: [u8; 16],
        timestamp_us: i64,
        now_us: i64,
        window: Duration,
    ) -> BoxFuture<'_, StoreResult<bool>>;
}

/// One implementation of every store.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Records and sealed segments.
    pub records: Arc<dyn RecordStore>,
    /// The custody log.
    pub log: Arc<dyn LogStore>,
    /// The index.
    pub index: Arc<dyn IndexStore>,
    /// Enrollment tokens.
    pub tokens: Arc<dyn TokenStore>,
    /// Members.
    pub members: Arc<dyn MemberStore>,
    /// Request nonces.
    pub nonces: Arc<dyn NonceStore>,
}

impl Stores {
    /// Every store in memory, empty. Cloning the result shares the stores, so a test can
    /// open a second server on the same state (a restart without the files).
    pub fn memory() -> Stores {
        Stores {
            records: Arc::new(memory::MemoryRecords::default()),
            log: Arc::new(memory::MemoryLog::default()),
            index: Arc::new(memory::MemoryIndex::default()),
            tokens: Arc::new(memory::MemoryTokens::default()),
            members: Arc::new(memory::MemoryMembers::default()),
            nonces: Arc::new(memory::MemoryNonces::default()),
        }
    }
}

/// Which implementation of the stores the server uses.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum Backend {
    /// Files in the data directory, the index in sled, nonces in memory (the default).
    #[default]
    Fs,
    /// These stores (e.g. [`Stores::memory`]); the data directory keeps only the server's
    /// identity and `recipients.txt`.
    Custom(Stores),
}

/// Drives `fut` to completion on this thread, parking it while the future waits: the
/// server's one bridge from its blocking code paths to the asynchronous stores (see the
/// module documentation). Never call it from an async task with a future that really
/// waits; the filesystem and memory stores never do.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_a_future_woken_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(block_on(rx).unwrap(), 7);
        t.join().unwrap();
    }
}
