//! The in-memory byte sink behind the segment muxer's custom AVIOContext.
//!
//! The muxer writes into a [`SharedSink`]; the bytes are hashed as they arrive, so a
//! segment's SHA-256 is ready the moment it is cut, with no second pass over the segment.
//! The hashing runs on its own thread, which reads the segment's buffer in place as the
//! muxer fills it (256 KiB at a time, while the bytes are still in cache), so hashing
//! overlaps with demuxing and muxing on a second core and costs the muxer no copy. At a
//! cut the buffer itself goes to the hashing thread, which hashes the last partial chunk
//! and hands the buffer back with its hash. (If the thread cannot be started, or stops,
//! the sink hashes on the muxer's thread instead: a segment is never lost to it.)
//!
//! The sink is shared (an `Arc`) because FFmpeg's `StreamIo` owns its writer while the
//! segmenter, on the same thread, takes the bytes out at every cut.
//!
//! The muxer's AVIO buffer is not a buffer of its own: once [`SharedSink::attach`]ed, the
//! AVIO context writes straight into the segment's buffer, into a window just past the
//! bytes written so far (as large as the buffer FFmpeg allocated, so the muxer flushes and
//! may seek back exactly where it would have). When FFmpeg flushes the window, the write
//! callback finds the bytes already in place, counts them as written and moves the window
//! on: no copy out of the AVIO buffer (that copy was a memmove of every segment byte on the
//! capture thread). Bytes that arrive from anywhere else are copied as before.
//!
//! A segment's buffer is megabytes, and the CLI keeps every large allocation mmapped (see
//! its `bound_allocator`), so a fresh buffer per segment costs a page fault and a zeroed
//! page per 4 KiB written, and an unmap when it is freed: measured, a fifth of an import's
//! CPU time. The consumer hands each segment's bytes back through [`recycle`] once they are
//! sealed, and the next segment is written into them: the pages are already there.

use std::io::Write;
use std::ptr::NonNull;
use std::sync::mpsc::{sync_channel, Receiver, SendError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use ffmpeg_next::ffi;
use sha2::{Digest, Sha256};

/// Bytes handed to the hashing thread at a time.
const CHUNK: usize = 256 << 10;
/// Chunks the hashing thread may lag behind by. They cost no memory (the thread reads the
/// segment's own buffer); the bound only keeps the last hash of a segment close at hand.
const IN_FLIGHT: usize = 64;
/// Room a fresh segment buffer starts with, at least.
const MIN_CAPACITY: usize = 64 << 10;

/// Segment buffers kept for reuse, at most: the segments in flight between the muxer and
/// the consumer are bounded anyway (the capture's channel and finisher queue), so a few
/// spare buffers cover the steady state without holding on to much memory.
const POOL_MAX: usize = 2;

/// Buffers the consumer gave back, for the next segments (see [`recycle`]).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Gives a segment's bytes back once the consumer is done with them (sealed and saved), so
/// that a later segment is written into memory that is already mapped instead of a fresh
/// allocation. Buffers beyond a small number are freed at once.
pub fn recycle(mut bytes: Vec<u8>) {
    if bytes.capacity() < MIN_CAPACITY {
        return;
    }
    bytes.clear();
    let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < POOL_MAX {
        pool.push(bytes);
    }
}

/// A buffer with room for `wanted` bytes: the largest one given back, or a new one.
fn pooled(wanted: usize) -> Buffer {
    let spare = {
        let mut pool = POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let largest = (0..pool.len()).max_by_key(|&i| pool[i].capacity());
        largest.map(|i| pool.swap_remove(i))
    };
    match spare {
        Some(mut v) => {
            v.reserve(wanted);
            Buffer::from_vec(v)
        }
        None => Buffer::with_capacity(wanted),
    }
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

/// A segment's bytes and their SHA-256.
pub(crate) type Hashed = (Vec<u8>, [u8; 32]);

/// A growable byte buffer whose written prefix another thread may read in place.
///
/// It is a `Vec<u8>` taken apart: no reference to the whole buffer is ever made while it
/// is being filled, so handing out raw pointers to its written prefix is sound as long as
/// the allocation is neither moved nor freed meanwhile — which is what [`State`] ensures
/// by waiting for the hashing thread before [`Buffer::reserve`] moves it.
struct Buffer {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: `Buffer` owns its allocation exactly as a `Vec<u8>` does.
unsafe impl Send for Buffer {}

impl Buffer {
    fn with_capacity(cap: usize) -> Self {
        Self::from_vec(Vec::with_capacity(cap))
    }

    fn from_vec(v: Vec<u8>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        let (len, cap) = (v.len(), v.capacity());
        // A Vec's pointer is never null (dangling but non-null when it has no capacity).
        let ptr = NonNull::new(v.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Buffer { ptr, len, cap }
    }

    fn into_vec(self) -> Vec<u8> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the parts are those of a Vec<u8> (from `from_vec`), with `len` bytes
        // initialised by `append`.
        unsafe { Vec::from_raw_parts(this.ptr.as_ptr(), this.len, this.cap) }
    }

    fn spare(&self) -> usize {
        self.cap - self.len
    }

    /// Grows the allocation to hold `additional` more bytes. This may move it: only call
    /// it when no other thread is reading the buffer.
    fn reserve(&mut self, additional: usize) {
        let mut v = std::mem::replace(self, Buffer::with_capacity(0)).into_vec();
        v.reserve(additional.max(v.capacity()));
        *self = Buffer::from_vec(v);
    }

    /// Appends `src`, which must fit in the spare capacity.
    fn append(&mut self, src: &[u8]) {
        assert!(src.len() <= self.spare(), "append beyond capacity");
        // SAFETY: the destination lies in the allocation's spare capacity, which nothing
        // else reads or writes, and `src` cannot overlap it (it is borrowed elsewhere).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(self.len), src.len());
        }
        self.len += src.len();
    }

    /// The start of the spare capacity, where the next byte goes.
    fn end_ptr(&self) -> *mut u8 {
        // SAFETY: `len <= cap`, so this is within (or one past) the allocation.
        unsafe { self.ptr.as_ptr().add(self.len) }
    }

    /// Counts `n` bytes that were written into the spare capacity in place as written.
    ///
    /// # Safety
    /// The first `n` bytes of the spare capacity must have been initialised.
    unsafe fn commit(&mut self, n: usize) {
        assert!(n <= self.spare(), "commit beyond capacity");
        self.len += n;
    }

    /// Bytes `start..end` of the written prefix, for the hashing thread to read in place.
    fn region(&self, start: usize, end: usize) -> Region {
        assert!(start <= end && end <= self.len, "region outside the written bytes");
        // SAFETY: in bounds, as asserted.
        Region { ptr: unsafe { self.ptr.as_ptr().add(start) }, len: end - start }
    }

    #[cfg(test)]
    fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: as in `into_vec`; the parts are not used again.
        drop(unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), self.len, self.cap) });
    }
}

/// Written bytes of a [`Buffer`] the hashing thread reads in place.
struct Region {
    ptr: *const u8,
    len: usize,
}

// SAFETY: a region is only ever read, and `State` keeps its allocation alive and unmoved
// until the hashing thread has said it is done with it.
unsafe impl Send for Region {}

enum Msg {
    /// Hash these bytes next.
    Bytes(Region),
    /// Reply once every region sent before this one has been hashed.
    Sync(SyncSender<()>),
    /// The segment is cut: hash `bytes[from..]`, then send back the bytes and the hash of
    /// everything since the last `End`.
    End { bytes: Vec<u8>, from: usize, reply: SyncSender<Hashed> },
}

fn hash_thread(rx: Receiver<Msg>) {
    let mut hasher = Sha256::new();
    for msg in rx {
        match msg {
            Msg::Bytes(region) => {
                // SAFETY: `State` sent a region of written bytes that are never written
                // again and whose allocation stays put until a `Sync` or `End` after it.
                hasher.update(unsafe { std::slice::from_raw_parts(region.ptr, region.len) });
            }
            Msg::Sync(reply) => {
                let _ = reply.send(());
            }
            Msg::End { bytes, from, reply } => {
                hasher.update(&bytes[from..]);
                let _ = reply.send((bytes, std::mem::take(&mut hasher).finalize().into()));
            }
        }
    }
}

enum Hashing {
    /// The hashing thread reads the buffer in place.
    Thread { tx: SyncSender<Msg>, thread: Option<JoinHandle<()>> },
    /// Hashed on the muxer's thread, as written.
    Inline(Sha256),
    /// The hashing thread stopped during this segment: it is hashed whole at the cut, and
    /// the segments after it inline.
    Lost,
}

/// The muxer's AVIO context while its buffer is a window into the segment's buffer.
struct Io {
    ctx: NonNull<ffi::AVIOContext>,
    /// The buffer FFmpeg allocated for the context, given back to it by
    /// [`State::detach`] (FFmpeg frees `buffer` with the context).
    own: *mut u8,
    /// Its size, and the window's.
    window: usize,
}

// SAFETY: the pointers are only used on the muxer's thread, inside the sink's lock, while
// the muxer (which owns the context) is alive: `Muxer` detaches before it drops it.
unsafe impl Send for Io {}

struct State {
    bytes: Buffer,
    /// Set while the muxer's AVIO context writes into `bytes` in place.
    io: Option<Io>,
    /// Bytes taken in place from the AVIO window, and bytes copied (for tests).
    #[cfg(test)]
    in_place: (usize, usize),
    /// How much of `bytes` has been handed to the hashing thread.
    hashed: usize,
    /// Regions were handed over since the thread last confirmed it was done with them:
    /// until it does, `bytes` must not move.
    lent: bool,
    hashing: Hashing,
}

impl State {
    fn new(capacity: usize) -> Self {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let hashing = match std::thread::Builder::new()
            .name("custody-sha256".into())
            .spawn(move || hash_thread(rx))
        {
            Ok(thread) => Hashing::Thread { tx, thread: Some(thread) },
            Err(_) => Hashing::Inline(Sha256::new()),
        };
        State {
            bytes: pooled(capacity.max(MIN_CAPACITY)),
            io: None,
            #[cfg(test)]
            in_place: (0, 0),
            hashed: 0,
            lent: false,
            hashing,
        }
    }

    /// Hands `bytes[hashed..]` to the hashing thread.
    fn lend(&mut self) {
        let Hashing::Thread { tx, .. } = &self.hashing else { return };
        let region = self.bytes.region(self.hashed, self.bytes.len);
        match tx.send(Msg::Bytes(region)) {
            Ok(()) => {
                self.hashed = self.bytes.len;
                self.lent = true;
            }
            // The thread is gone, and reads nothing any more.
            Err(_) => self.lose_thread(),
        }
    }

    /// Waits until the hashing thread no longer reads `bytes`, so that it may move.
    fn reclaim(&mut self) {
        if !std::mem::take(&mut self.lent) {
            return;
        }
        let Hashing::Thread { tx, .. } = &self.hashing else { return };
        let (reply_tx, reply_rx) = sync_channel(1);
        // Either it answers, or it is gone; either way it has stopped reading.
        if tx.send(Msg::Sync(reply_tx)).is_err() || reply_rx.recv().is_err() {
            self.lose_thread();
        }
    }

    fn lose_thread(&mut self) {
        if let Hashing::Thread { thread, .. } = &mut self.hashing {
            // A thread that returned (or panicked) holds nothing of ours.
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
        self.hashing = Hashing::Lost;
        self.lent = false;
    }

    fn write(&mut self, buf: &[u8]) {
        let in_place = self.io.is_some()
            && std::ptr::eq(buf.as_ptr(), self.bytes.end_ptr())
            && buf.len() <= self.bytes.spare();
        if in_place {
            // SAFETY: `buf` is the AVIO window's start, in `bytes`' spare capacity, and
            // FFmpeg wrote its `buf.len()` bytes.
            unsafe { self.bytes.commit(buf.len()) };
            #[cfg(test)]
            {
                self.in_place.0 += buf.len();
            }
        } else {
            if self.bytes.spare() < buf.len() {
                self.reclaim();
                self.bytes.reserve(buf.len());
            }
            self.bytes.append(buf);
            #[cfg(test)]
            {
                self.in_place.1 += buf.len();
            }
        }
        match &mut self.hashing {
            Hashing::Thread { .. } => {
                if self.bytes.len - self.hashed >= CHUNK {
                    self.lend();
                }
            }
            Hashing::Inline(h) => h.update(buf),
            Hashing::Lost => {}
        }
        // FFmpeg resets its write pointer to the window's start when this returns: the
        // window moves on past what was just written.
        self.place_window();
    }

    /// Points the attached AVIO context at a window of its buffer's size just past the
    /// written bytes, growing the segment's buffer first if the window would not fit. The
    /// window must hold no bytes FFmpeg has yet to hand over (it has just flushed).
    fn place_window(&mut self) {
        let Some(window) = self.io.as_ref().map(|io| io.window) else { return };
        if self.bytes.spare() < window {
            self.reclaim();
            self.bytes.reserve(window);
        }
        let Some(io) = &self.io else { return };
        let start = self.bytes.end_ptr();
        // SAFETY: the context is alive while attached; `start..start + window` lies in the
        // spare capacity of `bytes`, which nothing else reads or writes.
        unsafe {
            let ctx = io.ctx.as_ptr();
            (*ctx).buffer = start;
            (*ctx).buf_ptr = start;
            (*ctx).buf_ptr_max = start;
            (*ctx).buf_end = start.add(window);
        }
    }

    /// Makes `ctx` write into `bytes` in place from now on.
    ///
    /// # Safety
    /// `ctx` must be the write context whose callback writes into this sink, with nothing
    /// in its buffer, and must stay alive until [`State::detach`].
    unsafe fn attach(&mut self, ctx: NonNull<ffi::AVIOContext>) {
        self.detach();
        // SAFETY: per the caller.
        let (own, size) = unsafe { ((*ctx.as_ptr()).buffer, (*ctx.as_ptr()).buffer_size) };
        let Ok(window) = usize::try_from(size) else { return };
        if own.is_null() || window == 0 {
            return;
        }
        self.io = Some(Io { ctx, own, window });
        self.place_window();
    }

    /// Gives the attached context its own buffer back (whatever is in the window is
    /// dropped: flush first).
    fn detach(&mut self) {
        let Some(io) = self.io.take() else { return };
        // SAFETY: the context is alive while attached; `own` is its own buffer, of
        // `window` bytes.
        unsafe {
            let ctx = io.ctx.as_ptr();
            (*ctx).buffer = io.own;
            (*ctx).buf_ptr = io.own;
            (*ctx).buf_ptr_max = io.own;
            (*ctx).buf_end = io.own.add(io.window);
        }
    }

    /// Takes the segment: its bytes and their hash, to come.
    fn take(&mut self) -> Deferred<Hashed> {
        let len = self.bytes.len;
        let fresh = pooled((len + len / 2).max(MIN_CAPACITY));
        let bytes = std::mem::replace(&mut self.bytes, fresh).into_vec();
        let from = std::mem::take(&mut self.hashed);
        // The old buffer now travels with its `End` message, behind the regions lent from it.
        self.lent = false;
        // The muxer writes the next segment into the fresh buffer.
        self.place_window();
        match &mut self.hashing {
            Hashing::Thread { tx, .. } => {
                let (reply, rx) = sync_channel(1);
                match tx.send(Msg::End { bytes, from, reply }) {
                    Ok(()) => Deferred::Waiting(rx),
                    Err(SendError(msg)) => {
                        self.lose_thread();
                        let Msg::End { bytes, .. } = msg else { unreachable!("sent an End") };
                        Deferred::Ready(Some(hash_whole(bytes)))
                    }
                }
            }
            Hashing::Inline(h) => {
                Deferred::Ready(Some((bytes, std::mem::take(h).finalize().into())))
            }
            Hashing::Lost => {
                self.hashing = Hashing::Inline(Sha256::new());
                Deferred::Ready(Some(hash_whole(bytes)))
            }
        }
    }
}

fn hash_whole(bytes: Vec<u8>) -> Hashed {
    let sha = Sha256::digest(&bytes).into();
    (bytes, sha)
}

impl Drop for State {
    fn drop(&mut self) {
        // The thread must be done with `bytes` before they are freed: closing the channel
        // lets it finish what was sent and return.
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
        SharedSink::with_capacity(0)
    }
}

impl SharedSink {
    /// A sink whose first segment's buffer has room for `capacity` bytes, so that it does
    /// not grow (and move, copying what it holds) as the first segment is written; later
    /// ones are sized after the segment before them.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        SharedSink(Arc::new(Mutex::new(State::new(capacity))))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock is only ever taken on the muxer's thread; a poisoned lock would mean a
        // panic inside `write`, which does not panic, so recovering the guard is sound.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes everything written since the last call, with its SHA-256, and starts afresh.
    /// `None` from the result only if the hashing thread died holding the segment.
    pub(crate) fn take(&self) -> Deferred<Hashed> {
        self.lock().take()
    }

    /// Makes `ctx`, the AVIO context that writes into this sink, write into the segment's
    /// buffer in place (see the module's doc).
    ///
    /// # Safety
    /// `ctx` must be the write context created on a clone of this sink, with nothing written
    /// to it yet (or everything flushed), and must stay alive until [`Self::detach`], which
    /// must be called before it is freed.
    pub(crate) unsafe fn attach(&self, ctx: *mut ffi::AVIOContext) {
        if let Some(ctx) = NonNull::new(ctx) {
            // SAFETY: per the caller.
            unsafe { self.lock().attach(ctx) };
        }
    }

    /// Gives the attached AVIO context its own buffer back, so that FFmpeg can free it.
    /// Bytes still in the window are dropped: flush the context first.
    pub(crate) fn detach(&self) {
        self.lock().detach();
    }

    /// Bytes written since the last [`Self::take`].
    pub(crate) fn pending(&self) -> usize {
        self.lock().bytes.len
    }

    /// A copy of the bytes written since the last [`Self::take`] (for tests).
    #[cfg(test)]
    fn pending_bytes(&self) -> Vec<u8> {
        self.lock().bytes.as_slice().to_vec()
    }
}

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn take_hashes_exactly_what_was_written_since_the_last_take() {
        let sink = SharedSink::default();
        let mut w = sink.clone();
        w.write_all(b"first").unwrap();
        let a = sink.take();
        w.write_all(b"sec").unwrap();
        w.write_all(b"ond").unwrap();
        assert_eq!(sink.pending_bytes(), b"second");
        let b = sink.take();
        assert_eq!(a.wait(), Some((b"first".to_vec(), sha(b"first"))));
        assert_eq!(b.wait(), Some((b"second".to_vec(), sha(b"second"))));
        assert_eq!(sink.pending(), 0);
    }

    /// Segments many chunks long, each larger than the last, so the buffer has to grow
    /// (and move) while the hashing thread is reading it.
    #[test]
    fn growing_segments_larger_than_a_chunk_hash_correctly() {
        let sink = SharedSink::default();
        let mut w = sink.clone();
        let mut pending = Vec::new();
        for n in 1..=6 {
            let data: Vec<u8> =
                (0..(n * 3 * CHUNK + 12_345 * n)).map(|i| (i * n % 251) as u8).collect();
            for piece in data.chunks(32_768 + n) {
                w.write_all(piece).unwrap();
            }
            pending.push((sink.take(), data));
        }
        for (taken, data) in pending {
            let expected = sha(&data);
            assert_eq!(taken.wait(), Some((data, expected)));
        }
        w.write_all(b"next").unwrap();
        assert_eq!(sink.take().wait(), Some((b"next".to_vec(), sha(b"next"))));
    }

    /// The muxer's path: an AVIO context writing into the sink, attached, fed through
    /// FFmpeg's own `avio_write` and `avio_w8` with a flush at every cut, in segments that
    /// outgrow their buffer while the hashing thread reads it. Every byte arrives in place
    /// (none is copied out of an AVIO buffer), in order and hashed; once detached, the
    /// context writes through its own buffer again and FFmpeg frees it.
    #[test]
    fn an_attached_avio_context_writes_into_the_segment_in_place() {
        let sink = SharedSink::default();
        let mut io = ffmpeg_next::format::context::StreamIo::from_write(sink.clone()).unwrap();
        let ctx = io.as_mut_ptr();
        // SAFETY: `ctx` writes into `sink`, holds nothing yet and is detached before `io`
        // drops.
        unsafe { sink.attach(ctx) };
        let mut pending = Vec::new();
        let mut total = 0;
        for n in 0..5usize {
            let mut data: Vec<u8> =
                (0..(n * 210_000 + 1_234)).map(|i| (i * 7 + n * 13) as u8).collect();
            for piece in data.chunks(188 + n) {
                // SAFETY: `ctx` is a live write context; `piece` is readable.
                unsafe { ffi::avio_write(ctx, piece.as_ptr(), piece.len() as i32) };
            }
            data.push(0x47);
            // SAFETY: as above.
            unsafe {
                ffi::avio_w8(ctx, 0x47);
                ffi::avio_flush(ctx);
            }
            total += data.len();
            pending.push((sink.take(), data));
        }
        assert_eq!(sink.lock().in_place, (total, 0), "every byte in place, none copied");
        for (taken, data) in pending {
            let expected = sha(&data);
            assert_eq!(taken.wait(), Some((data, expected)));
        }
        sink.detach();
        // SAFETY: as above.
        unsafe {
            ffi::avio_write(ctx, b"own".as_ptr(), 3);
            ffi::avio_flush(ctx);
        }
        assert_eq!(sink.lock().in_place, (total, 3), "detached, the bytes are copied");
        assert_eq!(sink.take().wait(), Some((b"own".to_vec(), sha(b"own"))));
        drop(io);
    }

    #[test]
    fn an_empty_segment_has_the_hash_of_nothing() {
        let sink = SharedSink::default();
        assert_eq!(sink.take().wait(), Some((Vec::new(), sha(b""))));
    }

    /// A fault that cannot be caused from outside: the hashing thread is made to stop in
    /// the middle of a segment (its channel replaced by a closed one, as if it had died).
    /// The segment is still hashed, whole, and the sink goes on hashing inline.
    #[test]
    fn a_lost_hashing_thread_costs_no_segment() {
        let sink = SharedSink::default();
        let mut w = sink.clone();
        let data: Vec<u8> = (0..(2 * CHUNK + 7)).map(|i| (i % 253) as u8).collect();
        w.write_all(&data[..CHUNK + 1]).unwrap();
        {
            let mut state = sink.lock();
            state.reclaim();
            if let Hashing::Thread { tx, thread } = &mut state.hashing {
                let (closed, _) = sync_channel(1);
                drop(std::mem::replace(tx, closed));
                thread.take().unwrap().join().unwrap();
            }
        }
        w.write_all(&data[CHUNK + 1..]).unwrap();
        assert_eq!(sink.take().wait(), Some((data.clone(), sha(&data))));
        w.write_all(b"after").unwrap();
        assert_eq!(sink.take().wait(), Some((b"after".to_vec(), sha(b"after"))));
    }
}
