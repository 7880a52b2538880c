//! The in-memory byte sink behind the segment muxer's custom AVIOContext.
//!
//! The muxer writes into a [`SharedSink`]; the bytes are hashed as they arrive, so a
//! segment's SHA-256 is ready the moment it is cut, with no second pass over the segment.
//! The hashing runs on its own thread, fed 1 MiB at a time as the muxer writes, so it
//! overlaps with demuxing and muxing on a second core; at a cut only the last partial
//! chunk is left to hash. (If the thread cannot be started, the sink hashes inline.)
//! The sink is shared (an `Arc`) because FFmpeg's `StreamIo` owns its writer while the
//! segmenter, on the same thread, takes the bytes out at every cut.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// Bytes handed to the hashing thread at a time.
const CHUNK: usize = 1 << 20;
/// Chunks in flight to the hashing thread, at most (bounds the memory it can lag by).
const IN_FLIGHT: usize = 8;

enum Msg {
    Bytes(Vec<u8>),
    Finish(SyncSender<[u8; 32]>),
}

/// A result another thread is still working out.
pub(crate) enum Deferred<T> {
    /// Known already (`None`: it cannot be had).
    Ready(Option<T>),
    /// To be received.
    Waiting(Receiver<T>),
}

impl<T> Deferred<T> {
    /// Waits for it; `None` if the thread that owed it is gone.
    pub(crate) fn wait(self) -> Option<T> {
        match self {
            Deferred::Ready(v) => v,
            Deferred::Waiting(rx) => rx.recv().ok(),
        }
    }
}

enum Hashing {
    Thread { tx: SyncSender<Msg>, thread: Option<JoinHandle<()>> },
    Inline(Sha256),
}

struct State {
    bytes: Vec<u8>,
    /// How much of `bytes` has been handed to the hasher.
    hashed: usize,
    hashing: Hashing,
    /// The hashing thread is gone: the hash of this segment cannot be vouched for.
    failed: bool,
}

fn hash_thread(rx: Receiver<Msg>) {
    let mut hasher = Sha256::new();
    for msg in rx {
        match msg {
            Msg::Bytes(b) => hasher.update(&b),
            Msg::Finish(reply) => {
                let _ = reply.send(std::mem::take(&mut hasher).finalize().into());
            }
        }
    }
}

impl State {
    fn new() -> Self {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let hashing = match std::thread::Builder::new()
            .name("custody-sha256".into())
            .spawn(move || hash_thread(rx))
        {
            Ok(thread) => Hashing::Thread { tx, thread: Some(thread) },
            Err(_) => Hashing::Inline(Sha256::new()),
        };
        State { bytes: Vec::new(), hashed: 0, hashing, failed: false }
    }

    /// Hands `bytes[hashed..upto]` to the hasher.
    fn feed(&mut self, upto: usize) {
        let part = &self.bytes[self.hashed..upto];
        match &mut self.hashing {
            Hashing::Thread { tx, .. } => {
                if tx.send(Msg::Bytes(part.to_vec())).is_err() {
                    self.failed = true;
                }
            }
            Hashing::Inline(h) => h.update(part),
        }
        self.hashed = upto;
    }

    /// Asks for the hash of everything fed since the last call, without waiting for it:
    /// the hashing thread may still be catching up, and the muxer goes on meanwhile.
    fn finish_hash(&mut self) -> Deferred<[u8; 32]> {
        match &mut self.hashing {
            Hashing::Thread { tx, .. } => {
                if std::mem::take(&mut self.failed) {
                    return Deferred::Ready(None);
                }
                let (reply_tx, reply_rx) = sync_channel(1);
                match tx.send(Msg::Finish(reply_tx)) {
                    Ok(()) => Deferred::Waiting(reply_rx),
                    Err(_) => Deferred::Ready(None),
                }
            }
            Hashing::Inline(h) => Deferred::Ready(Some(std::mem::take(h).finalize().into())),
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Hashing::Thread { tx, thread } = &mut self.hashing {
            let (closed, _) = sync_channel(1);
            drop(std::mem::replace(tx, closed));
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// A growable buffer that hashes what is written to it.
#[derive(Clone)]
pub(crate) struct SharedSink(Arc<Mutex<State>>);

impl Default for SharedSink {
    fn default() -> Self {
        SharedSink(Arc::new(Mutex::new(State::new())))
    }
}

impl SharedSink {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is only ever taken on the muxer's thread; a poisoned lock would mean a
        // panic inside `write`, which does not panic, so recovering the guard is sound.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes everything written since the last call, with its SHA-256 to come (`None` if
    /// the hashing thread died), and starts afresh.
    pub(crate) fn take(&self) -> (Vec<u8>, Deferred<[u8; 32]>) {
        let mut state = self.lock();
        let len = state.bytes.len();
        if state.hashed < len {
            state.feed(len);
        }
        let hash = state.finish_hash();
        state.hashed = 0;
        let bytes = std::mem::replace(&mut state.bytes, Vec::with_capacity(len));
        (bytes, hash)
    }

    /// Bytes written since the last [`Self::take`].
    pub(crate) fn pending(&self) -> usize {
        self.lock().bytes.len()
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut state = self.lock();
        state.bytes.extend_from_slice(buf);
        let len = state.bytes.len();
        if len - state.hashed >= CHUNK {
            state.feed(len);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_hashes_exactly_what_was_written_since_the_last_take() {
        let sink = SharedSink::default();
        let mut w = sink.clone();
        w.write_all(b"first").unwrap();
        let (a, ha) = sink.take();
        w.write_all(b"sec").unwrap();
        w.write_all(b"ond").unwrap();
        let (b, hb) = sink.take();
        assert_eq!(a, b"first");
        assert_eq!(b, b"second");
        assert_eq!(ha.wait(), Some(<[u8; 32]>::from(Sha256::digest(b"first"))));
        assert_eq!(hb.wait(), Some(<[u8; 32]>::from(Sha256::digest(b"second"))));
        assert_eq!(sink.pending(), 0);
    }

    #[test]
    fn segments_larger_than_a_chunk_hash_correctly() {
        let sink = SharedSink::default();
        let mut w = sink.clone();
        let data: Vec<u8> = (0..(3 * CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(32_768) {
            w.write_all(piece).unwrap();
        }
        let (bytes, hash) = sink.take();
        assert_eq!(bytes, data);
        assert_eq!(hash.wait(), Some(<[u8; 32]>::from(Sha256::digest(&data))));
        w.write_all(b"next").unwrap();
        assert_eq!(sink.take().1.wait(), Some(<[u8; 32]>::from(Sha256::digest(b"next"))));
    }
}
