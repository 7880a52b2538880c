//! The packet digest, computed on a second thread while the muxer runs on the first.
//!
//! Hashing every packet's payload costs about as much as hashing the segment bytes; doing
//! it beside the muxer, not after it, keeps segmenting as fast as FFmpeg's own segment
//! muxer on a two-core machine. The packets themselves are handed over once the muxer has
//! written them (it keeps no reference to them, and their payload is never written again),
//! in batches ([`BATCH_BYTES`], [`BATCH_PACKETS`]). If the thread cannot be started, the
//! digest is computed inline; if it dies, the segment's digest is reported as unknown
//! rather than guessed.
//!
//! The hashing thread may fall behind by up to [`BACKLOG_BYTES`] of packet payload (and
//! [`QUEUE`] batches): enough that the muxer is rarely held up when the scheduler gives the
//! hashing thread's core to another thread for a while, small enough to bound memory.
//!
//! The hashed packets go back to the muxer's thread to be freed there. Their buffers come
//! from that thread's allocator arena; freed here, every free would take the arena's lock
//! against the muxer's own allocations, and on two cores a lock holder is often preempted
//! while the muxer waits for it (measured: the muxer's thread blocked ~0.6 s of a 1.6 s
//! run, most of it in `av_malloc`).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use custody_format::digest::{DigestStream, PacketDigest, PacketDigester};
use ffmpeg_next as ff;

use crate::sink::Deferred;

/// A muxed packet on its way to be digested.
struct Queued {
    stream: usize,
    key: bool,
    packet: ff::Packet,
}

enum Msg {
    /// Packets of the open segment, in order.
    Packets(Vec<Queued>),
    Finish(SyncSender<(PacketDigest, Vec<u64>)>),
}

/// What the hashing thread hands back.
#[derive(Default)]
struct Back {
    /// Batches hashed, their packets to be freed on the muxer's thread (and the vectors
    /// reused for the next batches).
    batches: Vec<Vec<Queued>>,
    /// Payload bytes sent to the hashing thread and not yet hashed.
    in_flight: usize,
    /// The muxer waits for `in_flight` to shrink.
    waiting: bool,
}

/// [`Back`], shared, with a signal for a muxer waiting for the backlog to shrink.
#[derive(Default)]
struct Shared {
    back: Mutex<Back>,
    shrunk: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Back> {
        // Nothing panics while holding it; a poisoned lock still holds consistent data.
        self.back.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

type Returned = Arc<Shared>;

/// Packets waiting to be sent to the hashing thread together.
#[derive(Default)]
struct Batch {
    packets: Vec<Queued>,
    bytes: usize,
}

enum Mode {
    Threaded {
        tx: SyncSender<Msg>,
        thread: Option<JoinHandle<()>>,
        failed: bool,
        returned: Returned,
        batch: Batch,
        /// Vectors the hashing thread gave back, emptied, for the next batches.
        spare: Vec<Vec<Queued>>,
    },
    Inline(PacketDigester),
}

/// Digests the packets of one segment after another.
pub(crate) struct DigestWorker {
    streams: Vec<DigestStream>,
    mode: Mode,
}

/// Batches the hashing thread may lag behind by, at most.
const QUEUE: usize = 64;
/// Payload bytes the hashing thread may lag behind by, at most: about 3 s of 1080p video
/// from a phone.
const BACKLOG_BYTES: usize = 4 << 20;
/// Packets are sent to the hashing thread in batches of this many payload bytes (or
/// [`BATCH_PACKETS`] packets, or a segment's last ones), not one by one: each message
/// wakes the thread (a futex call and, on a virtual machine, an interrupt to the other
/// core), which per packet cost the capture thread more than the hand-over itself.
const BATCH_BYTES: usize = 512 << 10;
/// Packets in a batch at most (many are small audio packets).
const BATCH_PACKETS: usize = 64;

fn work(streams: Vec<DigestStream>, rx: Receiver<Msg>, returned: Returned) {
    let mut digester = PacketDigester::new(&streams);
    for msg in rx {
        match msg {
            Msg::Packets(batch) => {
                let mut size = 0;
                for q in &batch {
                    if let Some(data) = q.packet.data() {
                        digester.push(q.stream, q.key, data);
                        size += data.len();
                    }
                }
                let mut back = returned.lock();
                back.in_flight = back.in_flight.saturating_sub(size);
                back.batches.push(batch);
                // A muxer waiting for room is woken once the backlog is down to half, not
                // after every batch: woken at once it would send one batch and wait again,
                // two context switches per batch on the two cores.
                let wake = back.waiting && back.in_flight <= BACKLOG_BYTES / 2;
                if wake {
                    back.waiting = false;
                }
                drop(back);
                if wake {
                    returned.shrunk.notify_one();
                }
            }
            Msg::Finish(reply) => {
                let done = std::mem::replace(&mut digester, PacketDigester::new(&streams));
                let counts = done.packet_counts();
                let _ = reply.send((done.finish(), counts));
            }
        }
    }
}

impl DigestWorker {
    pub(crate) fn new(streams: Vec<DigestStream>) -> Self {
        let (tx, rx) = sync_channel(QUEUE);
        let for_thread = streams.clone();
        let returned: Returned = Arc::default();
        let back = Arc::clone(&returned);
        let mode = match std::thread::Builder::new()
            .name("custody-digest".into())
            .spawn(move || work(for_thread, rx, back))
        {
            Ok(thread) => Mode::Threaded {
                tx,
                thread: Some(thread),
                failed: false,
                returned,
                batch: Batch::default(),
                spare: Vec::new(),
            },
            Err(_) => Mode::Inline(PacketDigester::new(&streams)),
        };
        DigestWorker { streams, mode }
    }

    /// Adds a packet of the open segment (once the muxer has written it: its payload is
    /// not written again).
    pub(crate) fn push(&mut self, stream: usize, key: bool, packet: ff::Packet) {
        match &mut self.mode {
            Mode::Threaded { batch, .. } => {
                let size = packet.data().map_or(0, <[u8]>::len);
                batch.bytes += size;
                batch.packets.push(Queued { stream, key, packet });
                if batch.bytes >= BATCH_BYTES || batch.packets.len() >= BATCH_PACKETS {
                    self.send_batch();
                }
            }
            Mode::Inline(d) => {
                if let Some(data) = packet.data() {
                    d.push(stream, key, data);
                }
            }
        }
    }

    /// Sends the packets batched so far to the hashing thread, first waiting while it lags
    /// behind by the backlog (but never for a batch alone larger than it), and frees the
    /// packets it is done with.
    fn send_batch(&mut self) {
        let Mode::Threaded { tx, thread, failed, returned, batch, spare } = &mut self.mode else {
            return;
        };
        if batch.packets.is_empty() {
            return;
        }
        let mut back = returned.lock();
        while back.in_flight > 0
            && back.in_flight + batch.bytes > BACKLOG_BYTES
            && thread.as_ref().is_some_and(|t| !t.is_finished())
        {
            back.waiting = true;
            back = returned
                .shrunk
                .wait_timeout(back, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        back.in_flight += batch.bytes;
        // Free what the hashing thread is done with, here where it was allocated.
        spare.append(&mut back.batches);
        drop(back);
        for v in spare.iter_mut() {
            v.clear();
        }
        let next = spare.pop().unwrap_or_else(|| Vec::with_capacity(BATCH_PACKETS));
        let packets = std::mem::replace(&mut batch.packets, next);
        batch.bytes = 0;
        // A few vectors cover the batches in flight; more would only be kept.
        spare.truncate(4);
        if tx.send(Msg::Packets(packets)).is_err() {
            *failed = true;
        }
    }

    /// The digest and per-stream packet counts of the packets pushed since the last call,
    /// to come; `None` if the hashing thread died and the digest cannot be trusted.
    pub(crate) fn finish_segment(&mut self) -> Deferred<(PacketDigest, Vec<u64>)> {
        self.send_batch();
        match &mut self.mode {
            Mode::Threaded { tx, failed, .. } => {
                if *failed {
                    return Deferred::Ready(None);
                }
                let (reply_tx, reply_rx) = sync_channel(1);
                match tx.send(Msg::Finish(reply_tx)) {
                    Ok(()) => Deferred::Waiting(reply_rx),
                    Err(_) => Deferred::Ready(None),
                }
            }
            Mode::Inline(d) => {
                let done = std::mem::replace(d, PacketDigester::new(&self.streams));
                let counts = done.packet_counts();
                Deferred::Ready(Some((done.finish(), counts)))
            }
        }
    }
}

impl Drop for DigestWorker {
    fn drop(&mut self) {
        if let Mode::Threaded { tx, thread, .. } = &mut self.mode {
            // Closing the channel ends the thread's loop.
            let (closed, _) = sync_channel(1);
            drop(std::mem::replace(tx, closed));
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use custody_format::digest::{Framing, MediaKind};

    use super::*;

    fn streams() -> Vec<DigestStream> {
        vec![
            DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing: Framing::AnnexB },
            DigestStream { kind: MediaKind::Audio, codec: "aac".into(), framing: Framing::Whole },
        ]
    }

    /// Packets of all sizes, some alone larger than the backlog the thread may lag by,
    /// over several segments: every digest equals the one computed inline, and nothing
    /// waits forever on the backlog.
    #[test]
    fn threaded_digests_equal_inline_ones_whatever_the_packet_sizes() {
        let sizes =
            [7, BACKLOG_BYTES + 3, 188, BACKLOG_BYTES / 2 + 1, BACKLOG_BYTES / 2, 0, 65_536];
        let mut worker = DigestWorker::new(streams());
        assert!(matches!(worker.mode, Mode::Threaded { .. }));
        let mut expected = Vec::new();
        let mut pending = Vec::new();
        for segment in 0..3u8 {
            let mut inline = PacketDigester::new(&streams());
            for (n, &size) in sizes.iter().enumerate() {
                let mut data: Vec<u8> = (0..size).map(|i| (i % 251) as u8 ^ segment).collect();
                if let Some(first) = data.get_mut(..4) {
                    first.copy_from_slice(&[0, 0, 1, 0x65]);
                }
                let stream = n % 2;
                inline.push(stream, n == 0, &data);
                worker.push(stream, n == 0, ff::Packet::copy(&data));
            }
            let counts = inline.packet_counts();
            expected.push((inline.finish(), counts));
            pending.push(worker.finish_segment());
        }
        let got: Vec<_> = pending.into_iter().map(|d| d.wait().expect("digest")).collect();
        assert_eq!(got, expected);
    }
}
