//! The in-memory byte sink behind the segment muxer's custom AVIOContext.
//!
//! The muxer writes into a [`SharedSink`]; every byte is hashed as it arrives, so a
//! segment's SHA-256 is ready the moment it is cut, with no second pass over the bytes.
//! The sink is shared (an `Arc`) because FFmpeg's `StreamIo` owns its writer while the
//! segmenter, on the same thread, needs to take the bytes out at every cut.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

#[derive(Default)]
struct State {
    bytes: Vec<u8>,
    hasher: Sha256,
}

/// A growable buffer that hashes what is written to it.
#[derive(Clone, Default)]
pub(crate) struct SharedSink(Arc<Mutex<State>>);

impl SharedSink {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is only ever taken on the muxer's thread; a poisoned lock would mean a
        // panic inside `write`, which does not panic, so recovering the guard is sound.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes everything written since the last call, with its SHA-256, and starts afresh.
    /// `reserve` pre-sizes the next buffer (the previous segment's size is a good guess).
    pub(crate) fn take(&self) -> (Vec<u8>, [u8; 32]) {
        let mut state = self.lock();
        let reserve = state.bytes.len();
        let bytes = std::mem::replace(&mut state.bytes, Vec::with_capacity(reserve));
        let hash = std::mem::take(&mut state.hasher).finalize().into();
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
        state.hasher.update(buf);
        state.bytes.extend_from_slice(buf);
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
        assert_eq!(ha, <[u8; 32]>::from(Sha256::digest(b"first")));
        assert_eq!(hb, <[u8; 32]>::from(Sha256::digest(b"second")));
        assert_eq!(sink.pending(), 0);
    }
}
