//! The stores in memory: the second implementation of every seam, which runs the server's
//! ingest, log and bundle tests beside the filesystem's, and the default nonce cache.
//!
//! Nothing here survives the process, so it is for tests, benchmarks and the nonce cache
//! (whose loss on a restart is harmless: a replayed request then reaches ingest, which is
//! idempotent). "Durable" here means "visible to every later call".

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use custody_format::ids::{PublicKey, RecordingId};

use super::{
    BoxFuture, IndexStore, LogStore, MemberEntry, MemberStore, NonceStore, RecordStore, StoreError,
    StoreResult, TokenRecord, TokenStore,
};
use crate::index::Stored;
use crate::members::Member;
use crate::server::lock;

fn ready<'a, T: Send + 'a>(v: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

type Key = ([u8; 16], u64);

/// [`RecordStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    records: RwLock<BTreeMap<Key, Vec<u8>>>,
    segments: RwLock<HashMap<Key, Vec<u8>>>,
    /// Segments replaced by other bytes, kept as the filesystem keeps them aside.
    orphans: Mutex<Vec<(Key, Vec<u8>)>>,
}

impl RecordStore for MemoryRecords {
    fn put_segment<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>> {
        let mut segments = write(&self.segments);
        if let Some(old) = segments.insert((id.0, seq), bytes.to_vec()) {
            if old != bytes {
                lock(&self.orphans).push(((id.0, seq), old));
            }
        }
        ready(Ok(()))
    }

    fn put_record<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<()>> {
        let mut records = write(&self.records);
        let r = match records.get(&(id.0, seq)) {
            Some(existing) if existing != bytes => Err(StoreError::Conflict { id, seq }),
            Some(_) => Ok(()),
            None => {
                records.insert((id.0, seq), bytes.to_vec());
                Ok(())
            }
        };
        ready(r)
    }

    fn record(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        ready(Ok(read(&self.records).get(&(id.0, seq)).cloned()))
    }

    fn segment(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        ready(Ok(read(&self.segments).get(&(id.0, seq)).cloned()))
    }

    fn segment_range(
        &self,
        id: RecordingId,
        seq: u64,
        offset: u64,
        len: usize,
    ) -> BoxFuture<'_, StoreResult<Option<Vec<u8>>>> {
        let segments = read(&self.segments);
        let r = segments.get(&(id.0, seq)).map(|b| {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
            b[start..start.saturating_add(len).min(b.len())].to_vec()
        });
        ready(Ok(r))
    }

    fn recordings(&self) -> BoxFuture<'_, StoreResult<Vec<RecordingId>>> {
        let mut ids: Vec<RecordingId> =
            read(&self.records).keys().map(|(id, _)| RecordingId(*id)).collect();
        ids.dedup();
        ready(Ok(ids))
    }

    fn record_positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<u64>>> {
        let seqs =
            read(&self.records).range((id.0, 0)..=(id.0, u64::MAX)).map(|(k, _)| k.1).collect();
        ready(Ok(seqs))
    }
}

/// [`LogStore`] in memory. It behaves as a store several writers share (a database would):
/// a batch goes after whatever is there, and [`LogStore::append_batch`] and
/// [`LogStore::entries_after`] return what others appended, so that two
/// [`crate::custody_log::CustodyLog`]s on one `MemoryLog` test a shared log's catch-up.
#[derive(Debug, Default)]
pub struct MemoryLog {
    entries: RwLock<Vec<Vec<u8>>>,
    heads: Mutex<Vec<Vec<u8>>>,
}

impl LogStore for MemoryLog {
    fn load(&self) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        ready(Ok(read(&self.entries).clone()))
    }

    fn append<'a>(&'a self, entry: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        write(&self.entries).push(entry.to_vec());
        ready(Ok(()))
    }

    fn append_batch<'a>(
        &'a self,
        known: u64,
        batch: &'a [Vec<u8>],
    ) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        let mut entries = write(&self.entries);
        let r = match usize::try_from(known).ok().and_then(|k| entries.get(k..)) {
            Some(others) => {
                let others = others.to_vec();
                entries.extend(batch.iter().cloned());
                Ok(others)
            }
            None => Err(StoreError::Damaged(format!(
                "a batch after {known} entries was appended to a log of {}",
                entries.len()
            ))),
        };
        ready(r)
    }

    fn entries_after(&self, known: u64) -> BoxFuture<'_, StoreResult<Vec<Vec<u8>>>> {
        let entries = read(&self.entries);
        let r = usize::try_from(known).ok().and_then(|k| entries.get(k..)).map_or_else(
            || {
                Err(StoreError::Damaged(format!(
                    "entries after {known} asked of a log of {}",
                    entries.len()
                )))
            },
            |e| Ok(e.to_vec()),
        );
        ready(r)
    }

    fn append_head<'a>(&'a self, head: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        let mut heads = lock(&self.heads);
        // Only the latest head matters to a restart; keep memory bounded.
        heads.clear();
        heads.push(head.to_vec());
        ready(Ok(()))
    }

    fn entries<'a>(&'a self, indices: &'a [u64]) -> BoxFuture<'a, StoreResult<Vec<Vec<u8>>>> {
        let entries = read(&self.entries);
        let r = indices
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| entries.get(i).cloned())
                    .ok_or_else(|| StoreError::Damaged(format!("no custody log entry {i} to read")))
            })
            .collect();
        ready(r)
    }
}

/// [`IndexStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    inner: RwLock<MemoryIndexInner>,
}

#[derive(Debug, Default)]
struct MemoryIndexInner {
    records: BTreeMap<Key, Stored>,
    owners: HashMap<[u8; 16], [u8; 32]>,
    log_size: Option<u64>,
}

impl IndexStore for MemoryIndex {
    fn get(&self, id: RecordingId, seq: u64) -> BoxFuture<'_, StoreResult<Option<Stored>>> {
        ready(Ok(read(&self.inner).records.get(&(id.0, seq)).cloned()))
    }

    fn put<'a>(
        &'a self,
        id: RecordingId,
        seq: u64,
        s: &'a Stored,
    ) -> BoxFuture<'a, StoreResult<()>> {
        write(&self.inner).records.insert((id.0, seq), s.clone());
        ready(Ok(()))
    }

    fn positions(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Vec<(u64, Stored)>>> {
        let inner = read(&self.inner);
        let out = inner
            .records
            .range((id.0, 0)..=(id.0, u64::MAX))
            .map(|(k, s)| (k.1, s.clone()))
            .collect();
        ready(Ok(out))
    }

    fn last(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<(u64, Stored)>>> {
        let inner = read(&self.inner);
        let out = inner
            .records
            .range((id.0, 0)..=(id.0, u64::MAX))
            .next_back()
            .map(|(k, s)| (k.1, s.clone()));
        ready(Ok(out))
    }

    fn owner(&self, id: RecordingId) -> BoxFuture<'_, StoreResult<Option<[u8; 32]>>> {
        ready(Ok(read(&self.inner).owners.get(&id.0).copied()))
    }

    fn set_owner(&self, id: RecordingId, device: [u8; 32]) -> BoxFuture<'_, StoreResult<()>> {
        write(&self.inner).owners.insert(id.0, device);
        ready(Ok(()))
    }

    fn log_size(&self) -> BoxFuture<'_, StoreResult<Option<u64>>> {
        ready(Ok(read(&self.inner).log_size))
    }

    fn set_log_size(&self, size: u64) -> BoxFuture<'_, StoreResult<()>> {
        write(&self.inner).log_size = Some(size);
        ready(Ok(()))
    }

    fn clear(&self) -> BoxFuture<'_, StoreResult<()>> {
        *write(&self.inner) = MemoryIndexInner::default();
        ready(Ok(()))
    }

    fn flush(&self) -> BoxFuture<'_, StoreResult<()>> {
        ready(Ok(()))
    }
}

type Token = (TokenRecord, Option<PublicKey>);

/// [`TokenStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryTokens {
    /// Each token, and the device it was spent on.
    tokens: RwLock<HashMap<[u8; 32], Token>>,
}

impl TokenStore for MemoryTokens {
    fn issue<'a>(
        &'a self,
        hash: [u8; 32],
        token: &'a TokenRecord,
    ) -> BoxFuture<'a, StoreResult<()>> {
        write(&self.tokens).insert(hash, (token.clone(), None));
        ready(Ok(()))
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<TokenRecord>>> {
        ready(Ok(read(&self.tokens).get(&hash).map(|(t, _)| t.clone())))
    }

    fn is_spent(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<bool>> {
        ready(Ok(read(&self.tokens).get(&hash).is_some_and(|(_, used)| used.is_some())))
    }

    fn spend<'a>(
        &'a self,
        hash: [u8; 32],
        device: &'a PublicKey,
    ) -> BoxFuture<'a, StoreResult<()>> {
        let r = match write(&self.tokens).get_mut(&hash) {
            Some((_, used)) => {
                *used = Some(*device);
                Ok(())
            }
            None => Err(StoreError::Damaged("spending a token that was never issued".into())),
        };
        ready(r)
    }
}

/// [`MemberStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryMembers {
    members: RwLock<Vec<MemberEntry>>,
}

impl MemberStore for MemoryMembers {
    fn all(&self) -> BoxFuture<'_, StoreResult<Vec<MemberEntry>>> {
        ready(Ok(read(&self.members).clone()))
    }

    fn get(&self, hash: [u8; 32]) -> BoxFuture<'_, StoreResult<Option<Member>>> {
        ready(Ok(read(&self.members).iter().find(|(h, _)| *h == hash).map(|(_, m)| m.clone())))
    }

    fn add<'a>(&'a self, hash: [u8; 32], member: &'a Member) -> BoxFuture<'a, StoreResult<()>> {
        write(&self.members).push((hash, member.clone()));
        ready(Ok(()))
    }
}

/// Most nonces kept; past this the expired ones are pruned at once.
const MAX_NONCES: usize = 1 << 20;

/// [`NonceStore`] in memory: the default for every back-end. After a restart it is empty;
/// a replay then reaches ingest, which is idempotent, so it stores nothing new.
#[derive(Debug, Default)]
pub struct MemoryNonces {
    inner: Mutex<Nonces>,
}

#[derive(Debug, Default)]
struct Nonces {
    seen: HashMap<([u8; 32], [u8; 16]), i64>,
    last_prune_us: i64,
}

impl NonceStore for MemoryNonces {
    fn insert(
        &self,
        device: [u8; 32],
        nonce: [u8; 16],
        timestamp_us: i64,
        now_us: i64,
        window: Duration,
    ) -> BoxFuture<'_, StoreResult<bool>> {
        let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        let mut n = lock(&self.inner);
        if now_us - n.last_prune_us > 10_000_000 || n.seen.len() >= MAX_NONCES {
            n.seen.retain(|_, ts| now_us.saturating_sub(*ts) <= window_us);
            n.last_prune_us = now_us;
        }
        let fresh = match n.seen.entry((device, nonce)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(timestamp_us);
                true
            }
        };
        ready(Ok(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::super::block_on;
    use super::*;

    #[test]
    fn a_nonce_is_accepted_once_per_device() {
        let n = MemoryNonces::default();
        let w = Duration::from_secs(300);
        assert!(block_on(n.insert([1; 32], [1; 16], 1_000, 1_000, w)).unwrap());
        assert!(!block_on(n.insert([1; 32], [1; 16], 1_000, 2_000, w)).unwrap());
        assert!(block_on(n.insert([2; 32], [1; 16], 1_000, 2_000, w)).unwrap());
    }

    #[test]
    fn nonces_older_than_the_window_are_forgotten() {
        let n = MemoryNonces::default();
        let w = Duration::from_secs(1);
        assert!(block_on(n.insert([1; 32], [1; 16], 0, 0, w)).unwrap());
        assert!(block_on(n.insert([1; 32], [1; 16], 0, 20_000_000, w)).unwrap());
    }
}
