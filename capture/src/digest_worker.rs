//! The packet digest, computed on a second thread while the muxer runs on the first.
//!
//! Hashing every packet's payload costs about as much as hashing the segment bytes; doing
//! it beside the muxer, not after it, keeps segmenting as fast as FFmpeg's own segment
//! muxer on a two-core machine. Packets are handed over by reference (their buffers are
//! reference-counted and never written after muxing), through a bounded channel, so memory
//! stays bounded if the hashing thread falls behind. If the thread cannot be started, the
//! digest is computed inline; if it dies, the segment's digest is reported as unknown
//! rather than guessed.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use custody_format::digest::{DigestStream, PacketDigest, PacketDigester};
use ff::ffi;
use ff::packet::Mut as _;
use ff::packet::Ref as _;
use ffmpeg_next as ff;

use crate::sink::Deferred;

enum Msg {
    Packet { stream: usize, key: bool, packet: ff::Packet },
    Finish(SyncSender<(PacketDigest, Vec<u64>)>),
}

enum Mode {
    Threaded { tx: SyncSender<Msg>, thread: Option<JoinHandle<()>>, failed: bool },
    Inline(PacketDigester),
}

/// Digests the packets of one segment after another.
pub(crate) struct DigestWorker {
    streams: Vec<DigestStream>,
    mode: Mode,
}

/// Packets in flight to the hashing thread, at most: about a second of video, and at
/// 1080p and high bit rates ~10 MB of buffers kept alive.
const QUEUE: usize = 64;

fn work(streams: Vec<DigestStream>, rx: Receiver<Msg>) {
    let mut digester = PacketDigester::new(&streams);
    for msg in rx {
        match msg {
            Msg::Packet { stream, key, packet } => {
                if let Some(data) = packet.data() {
                    digester.push(stream, key, data);
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
        let mode = match std::thread::Builder::new()
            .name("custody-digest".into())
            .spawn(move || work(for_thread, rx))
        {
            Ok(thread) => Mode::Threaded { tx, thread: Some(thread), failed: false },
            Err(_) => Mode::Inline(PacketDigester::new(&streams)),
        };
        DigestWorker { streams, mode }
    }

    /// Adds a packet of the open segment.
    pub(crate) fn push(&mut self, stream: usize, key: bool, packet: &ff::Packet) {
        match &mut self.mode {
            Mode::Threaded { tx, failed, .. } => {
                let mut shared = ff::Packet::empty();
                // SAFETY: both packets are valid; `av_packet_ref` takes a new reference to
                // the same buffer (copying only if the source is not reference-counted).
                let res = unsafe { ffi::av_packet_ref(shared.as_mut_ptr(), packet.as_ptr()) };
                if res < 0 {
                    shared = ff::Packet::copy(packet.data().unwrap_or(&[]));
                }
                if tx.send(Msg::Packet { stream, key, packet: shared }).is_err() {
                    *failed = true;
                }
            }
            Mode::Inline(d) => {
                if let Some(data) = packet.data() {
                    d.push(stream, key, data);
                }
            }
        }
    }

    /// The digest and per-stream packet counts of the packets pushed since the last call,
    /// to come; `None` if the hashing thread died and the digest cannot be trusted.
    pub(crate) fn finish_segment(&mut self) -> Deferred<(PacketDigest, Vec<u64>)> {
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
