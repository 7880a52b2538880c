//! How the recording loop saves segments: a live recording's each at once, an import's two
//! at a time on threads of their own, recorded in order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use custody_capture::Segment;
use custody_format::chain::SegmentFields;
use custody_format::time::now_us;
use custody_vault::store::{RecordingWriter, SyncedSegment, UnsyncedSegment, VaultError};

use crate::Progress;

/// What a segment's record and progress report need besides its sealed file.
pub(crate) struct Meta {
    plaintext_len: u64,
    plaintext_sha256: [u8; 32],
    fields: SegmentFields,
    media_start_us: i64,
    media_end_us: i64,
    last_packet_utc_us: i64,
}

impl Meta {
    fn of(seg: &Segment) -> Self {
        Meta {
            plaintext_len: seg.len(),
            plaintext_sha256: seg.sha256,
            fields: fields(seg),
            media_start_us: seg.media_start_us,
            media_end_us: seg.media_end_us,
            last_packet_utc_us: seg.last_packet_utc_us,
        }
    }
}

/// The segments saved so far and the media time they cover.
#[derive(Default)]
pub(crate) struct Tally {
    /// Segments saved.
    pub(crate) segments: u64,
    /// The media time they cover.
    pub(crate) covered: Covered,
}

/// Saves a live recording's segment at once on this thread: sealed, synced, recorded.
pub(crate) fn save_now(
    w: &mut RecordingWriter<'_>,
    seg: Segment,
    tally: &mut Tally,
    progress: &mut impl FnMut(&Progress),
) -> Result<(), VaultError> {
    // A gap (a sender lost and back) goes on the record of the segment after it.
    if let Some(gap) = seg.gap {
        w.gap_before_next(gap);
    }
    let meta = Meta::of(&seg);
    let synced = w.seal_segment(w.next_seq(), &seg.bytes).and_then(UnsyncedSegment::sync);
    // Sealed (or failed): its bytes can hold a later segment.
    custody_capture::recycle(seg.bytes);
    land(w, synced, meta, tally, progress)
}

/// Segments an import seals at once, each on a thread of its own: two, for two cores. Each
/// holds its plaintext (a 2 s segment at 1080p is about 6 MB) until it is encrypted.
pub const SEALING_AT_ONCE: usize = 2;

/// Segments an import has in flight at most, being sealed or, once encrypted, being
/// fsynced: a segment waiting for the disk holds no plaintext, only its open file, so the
/// fsyncs (slow on a busy disk) overlap the encryption of the next segments instead of
/// holding it up; the bound keeps the threads and open files few.
pub const IN_FLIGHT: usize = 4;

/// How many captured segments an import lets wait for the sealing threads (the capture's
/// `channel_capacity`, 4 for a live recording): with [`SEALING_AT_ONCE`] holding their
/// plaintext besides, a 1080p import keeps its peak memory under 128 MiB.
pub const IMPORT_QUEUE: usize = 1;

/// An import's segments in flight, oldest first: at most [`SEALING_AT_ONCE`] being
/// encrypted and at most [`IN_FLIGHT`] in all.
///
/// Each is encrypted, hashed, written, fsynced and renamed into place on its own thread
/// ([`SegmentSealer`](custody_vault::store::SegmentSealer)), into the position it will take;
/// this loop's thread then signs and saves the records in position order
/// ([`RecordingWriter::add_synced`], which refuses any other order) and reports each
/// segment saved only once its file and its record are durable. When one fails, the
/// recording ends after the last segment recorded, and the sealed files of those after it
/// are removed ([`Sealing::discard`]): nothing names them.
pub(crate) struct Sealing {
    pending: VecDeque<Pending>,
    /// Of `pending`, those that may still hold their plaintext.
    encrypting: usize,
    /// One message from each job once it no longer holds its plaintext ([`Encrypted`]).
    encrypted: std::sync::mpsc::Receiver<()>,
    encrypted_tx: std::sync::mpsc::Sender<()>,
}

/// Said once by each job (on drop, so also if it fails or never runs) when it no longer
/// holds its segment's plaintext: another segment may then be encrypted.
pub(crate) struct Encrypted(std::sync::mpsc::Sender<()>);

impl Drop for Encrypted {
    fn drop(&mut self) {
        // The loop may be gone (a failed recording): nobody needs to know then.
        let _ = self.0.send(());
    }
}

/// A segment being sealed on its own thread, with what its record needs.
struct Pending {
    path: PathBuf,
    meta: Meta,
    work: Work,
}

/// The sealing of one segment: into its file, synced, not yet recorded. It drops its
/// [`Encrypted`] as soon as it no longer holds the plaintext.
type Job = Box<dyn FnOnce(Encrypted) -> Result<SyncedSegment, VaultError> + Send>;

/// A [`Job`] running on its own thread, or done already on this one.
enum Work {
    Thread(std::thread::JoinHandle<Result<SyncedSegment, VaultError>>),
    /// The thread could not be started: sealed on the loop's thread.
    Done(Result<SyncedSegment, VaultError>),
}

impl Work {
    fn start(job: Job, encrypted: Encrypted) -> Self {
        // Handed over once the thread runs, so that a thread that cannot be made leaves the
        // job here, to be done on this thread.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Job, Encrypted)>(1);
        let spawned =
            std::thread::Builder::new().name("custody-seal".into()).spawn(move || {
                match rx.recv() {
                    Ok((job, encrypted)) => job(encrypted),
                    Err(_) => Err(thread_failed("the segment never reached its sealing thread")),
                }
            });
        match spawned {
            Ok(handle) => match tx.send((job, encrypted)) {
                Ok(()) => Work::Thread(handle),
                Err(std::sync::mpsc::SendError((job, encrypted))) => Work::Done(job(encrypted)),
            },
            Err(_) => Work::Done(job(encrypted)),
        }
    }

    fn is_finished(&self) -> bool {
        match self {
            Work::Thread(handle) => handle.is_finished(),
            Work::Done(_) => true,
        }
    }

    fn wait(self) -> Result<SyncedSegment, VaultError> {
        match self {
            Work::Thread(handle) => {
                handle.join().unwrap_or_else(|_| Err(thread_failed("the sealing thread failed")))
            }
            Work::Done(result) => result,
        }
    }
}

fn thread_failed(why: &str) -> VaultError {
    VaultError::Io {
        what: "saving the segment",
        path: String::new(),
        source: std::io::Error::other(why.to_string()),
    }
}

impl Sealing {
    pub(crate) fn new() -> Self {
        let (encrypted_tx, encrypted) = std::sync::mpsc::channel();
        Sealing { pending: VecDeque::new(), encrypting: 0, encrypted, encrypted_tx }
    }

    /// Records the segments that are done, then starts sealing `seg` into the position
    /// after those in flight, once fewer than [`SEALING_AT_ONCE`] are being encrypted and
    /// fewer than [`IN_FLIGHT`] are in flight (waiting for that as long as it takes).
    pub(crate) fn add(
        &mut self,
        w: &mut RecordingWriter<'_>,
        seg: Segment,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), VaultError> {
        if let Some(gap) = seg.gap {
            // A gap goes on the record of the segment after it, which is the next one the
            // writer records only once none is in flight. (Imports have none.)
            self.land_all(w, tally, progress)?;
            w.gap_before_next(gap);
        }
        self.make_room(w, tally, progress)?;
        let seq = w.next_seq() + self.pending.len() as u64;
        let sealer = w.segment_sealer();
        let path = sealer.path(seq);
        let meta = Meta::of(&seg);
        let bytes = seg.bytes;
        let job: Job = Box::new(move |encrypted| {
            let sealed = sealer.seal(seq, &bytes);
            // Sealed (or failed): its bytes can hold a later segment, and another segment
            // may be encrypted while this one's fsync runs.
            custody_capture::recycle(bytes);
            drop(encrypted);
            sealed?.sync()
        });
        self.start(path, meta, job);
        Ok(())
    }

    /// Starts `job`, the sealing of the segment after those in flight into `path`, on its
    /// own thread.
    fn start(&mut self, path: PathBuf, meta: Meta, job: Job) {
        self.encrypting += 1;
        let encrypted = Encrypted(self.encrypted_tx.clone());
        self.pending.push_back(Pending { path, meta, work: Work::start(job, encrypted) });
    }

    /// Counts the jobs that have said they no longer hold their plaintext.
    fn count_encrypted(&mut self) {
        while self.encrypted.try_recv().is_ok() {
            self.encrypting = self.encrypting.saturating_sub(1);
        }
    }

    /// Records what is done, and waits until another segment may be sealed.
    fn make_room(
        &mut self,
        w: &mut RecordingWriter<'_>,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), VaultError> {
        loop {
            self.land_done(w, tally, progress)?;
            self.count_encrypted();
            if self.pending.len() >= IN_FLIGHT {
                self.land_oldest(w, tally, progress)?;
            } else if self.encrypting >= SEALING_AT_ONCE {
                // Every job says so once, whatever happens to it (see `Encrypted`), and
                // this side holds a sender: this returns.
                if self.encrypted.recv().is_ok() {
                    self.encrypting = self.encrypting.saturating_sub(1);
                }
            } else {
                return Ok(());
            }
        }
    }

    /// Records, in order, the segments whose sealing and fsync are done.
    fn land_done(
        &mut self,
        w: &mut RecordingWriter<'_>,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), VaultError> {
        while self.pending.front().is_some_and(|p| p.work.is_finished()) {
            self.land_oldest(w, tally, progress)?;
        }
        Ok(())
    }

    /// Waits for the oldest segment in flight and records it.
    fn land_oldest(
        &mut self,
        w: &mut RecordingWriter<'_>,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), VaultError> {
        let Some(p) = self.pending.pop_front() else { return Ok(()) };
        let synced = p.work.wait().map_err(|e| with_path(e, &p.path));
        land(w, synced, p.meta, tally, progress)
    }

    /// Records every segment in flight, in order.
    pub(crate) fn land_all(
        &mut self,
        w: &mut RecordingWriter<'_>,
        tally: &mut Tally,
        progress: &mut impl FnMut(&Progress),
    ) -> Result<(), VaultError> {
        while !self.pending.is_empty() {
            self.land_oldest(w, tally, progress)?;
        }
        Ok(())
    }

    /// After a failure: waits for the segments still in flight and removes their sealed
    /// files, which no record will name.
    pub(crate) fn discard(&mut self) {
        for p in self.pending.drain(..) {
            if let Ok(synced) = p.work.wait() {
                synced.discard();
            }
        }
    }
}

impl Drop for Sealing {
    fn drop(&mut self) {
        self.discard();
    }
}

/// A thread's failure named with the segment file it was sealing.
fn with_path(e: VaultError, path: &Path) -> VaultError {
    match e {
        VaultError::Io { what, path: p, source } if p.is_empty() => {
            VaultError::Io { what, path: path.display().to_string(), source }
        }
        other => other,
    }
}

/// Signs and saves the record of a segment whose file is durable, and reports it saved.
fn land(
    w: &mut RecordingWriter<'_>,
    synced: Result<SyncedSegment, VaultError>,
    m: Meta,
    tally: &mut Tally,
    progress: &mut impl FnMut(&Progress),
) -> Result<(), VaultError> {
    let saved = w.add_synced(synced?, m.plaintext_len, m.plaintext_sha256, m.fields)?;
    tally.segments += 1;
    tally.covered.add(m.media_start_us, m.media_end_us);
    progress(&Progress::Saved {
        seq: saved.record.record().seq(),
        plaintext_len: m.plaintext_len,
        ciphertext_len: saved.sealed.len,
        media_end_us: m.media_end_us,
        seal_latency_us: now_us() - m.last_packet_utc_us,
    });
    Ok(())
}

/// The media time the saved segments cover, as the end record's `media_duration_us` counts
/// it (the first segment's start to the last one's end).
#[derive(Default)]
pub(crate) struct Covered {
    first_start_us: Option<i64>,
    last_end_us: i64,
}

impl Covered {
    fn add(&mut self, start_us: i64, end_us: i64) {
        self.first_start_us.get_or_insert(start_us);
        self.last_end_us = end_us;
    }

    pub(crate) fn us(&self) -> u64 {
        self.first_start_us
            .map_or(0, |s| u64::try_from(self.last_end_us.saturating_sub(s)).unwrap_or(0))
    }
}

fn fields(seg: &Segment) -> SegmentFields {
    SegmentFields {
        wall_first_us: seg.first_packet_utc_us,
        wall_last_us: seg.last_packet_utc_us,
        media_start_us: seg.media_start_us,
        media_end_us: seg.media_end_us,
        stream_packets: seg.packet_counts.clone(),
        video_frames: seg.video_frames,
        plaintext_len: 0,
        plaintext_sha256: [0; 32],
        ciphertext_len: 0,
        ciphertext_sha256: [0; 32],
        packet_digest: seg.packet_digest.0,
        cut: seg.cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::ids::RecordingId;
    use custody_format::record::EndReason;
    use custody_vault::seal::Sealer;
    use custody_vault::store::{SegmentSealer, Vault};

    use crate::end_with_error;

    /// A writer for a test recording in `dir`, and what seals its segments.
    fn sealing_writer(vault: &Vault) -> RecordingWriter<'_> {
        let device = custody_format::testkit::key("device");
        let (_, recipient) = custody_vault::keys::new_recipient_identity();
        let sealer =
            Sealer::new(custody_vault::keys::parse_recipients(&[recipient]).unwrap()).unwrap();
        vault.begin(custody_format::testkit::header(1, &device), device, sealer).unwrap()
    }

    fn meta(n: u64, plaintext: &[u8]) -> Meta {
        let fields = custody_format::testkit::segment(1, n);
        Meta {
            plaintext_len: plaintext.len() as u64,
            plaintext_sha256: [0; 32],
            media_start_us: fields.media_start_us,
            media_end_us: fields.media_end_us,
            last_packet_utc_us: fields.wall_last_us,
            fields,
        }
    }

    /// Seals position `seq` once `gate` opens (or a minute has passed: a failed test must
    /// not leave it waiting).
    fn held(
        sealer: SegmentSealer,
        seq: u64,
        bytes: &'static [u8],
        gate: std::sync::mpsc::Receiver<()>,
    ) -> Job {
        Box::new(move |_encrypted| {
            let _ = gate.recv_timeout(std::time::Duration::from_secs(60));
            sealer.seal(seq, bytes)?.sync()
        })
    }

    /// Seals position `seq` at once and says so on `done` when its file is durable (or
    /// the sealing failed).
    fn signalling(
        sealer: SegmentSealer,
        seq: u64,
        bytes: &'static [u8],
        done: std::sync::mpsc::SyncSender<()>,
    ) -> Job {
        Box::new(move |_encrypted| {
            let synced = sealer.seal(seq, bytes).and_then(UnsyncedSegment::sync);
            let _ = done.send(());
            synced
        })
    }

    fn seqs(vault: &Vault, id: &RecordingId) -> Vec<u64> {
        vault.records(id).unwrap().iter().map(|r| r.record().seq()).collect()
    }

    /// Two segments sealed at once, the second done first: nothing is recorded or
    /// reported while the first is still being sealed, though the second's file is
    /// durable; then both land in position order, each reported only once its file is in
    /// place and its record is the journal's last.
    #[test]
    fn two_segments_sealed_at_once_land_in_order_each_reported_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let mut w = sealing_writer(&vault);
        let id = w.id();
        // Declared before the gate, so that a failing test drops the gate first.
        let mut sealing = Sealing::new();
        let (open, gate) = std::sync::mpsc::sync_channel(1);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let s = w.segment_sealer();
        sealing.start(s.path(1), meta(1, b"first"), held(s.clone(), 1, b"first", gate));
        sealing.start(s.path(2), meta(2, b"second"), signalling(s.clone(), 2, b"second", done_tx));
        done.recv().unwrap();
        assert!(vault.segment_path(&id, 2).is_file(), "the second is durable");
        assert!(!vault.segment_path(&id, 1).exists(), "the first is still being sealed");

        let mut tally = Tally::default();
        let mut saved = Vec::new();
        let mut report = |p: &Progress| {
            if let Progress::Saved { seq, .. } = p {
                assert!(vault.segment_path(&id, *seq).is_file(), "segment {seq} not durable");
                assert_eq!(seqs(&vault, &id).last(), Some(seq), "its record is the last");
                saved.push(*seq);
            }
        };
        // Only what is done lands, oldest first: the first is not, so neither is recorded.
        sealing.land_done(&mut w, &mut tally, &mut report).unwrap();
        assert_eq!((tally.segments, seqs(&vault, &id)), (0, vec![0]));
        open.send(()).unwrap();
        sealing.land_all(&mut w, &mut tally, &mut report).unwrap();
        assert_eq!(saved, vec![1, 2]);
        assert_eq!(tally.segments, 2);
        w.end(custody_format::testkit::T0_US + 10_000_000, EndReason::Stopped, None).unwrap();
        assert_eq!(seqs(&vault, &id), vec![0, 1, 2, 3]);
        let check = custody_vault::check::check_recording(&vault, id).unwrap();
        assert!(check.problems.is_empty() && check.files_without_record.is_empty(), "{check:?}");
    }

    /// Segments encrypted but still waiting for the disk hold no plaintext: another may be
    /// sealed meanwhile, up to [`IN_FLIGHT`] in all, and none is recorded before its fsync.
    #[test]
    fn segments_waiting_for_their_fsync_let_the_next_ones_be_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let mut w = sealing_writer(&vault);
        let id = w.id();
        let mut sealing = Sealing::new();
        let s = w.segment_sealer();
        let mut gates = Vec::new();
        let mut tally = Tally::default();
        let mut saved = Vec::new();
        let mut report = |p: &Progress| {
            if let Progress::Saved { seq, .. } = p {
                assert!(vault.segment_path(&id, *seq).is_file(), "segment {seq} not durable");
                saved.push(*seq);
            }
        };
        for seq in 1..=IN_FLIGHT as u64 {
            // Returns at once: the ones before are encrypted (they say so first thing).
            sealing.make_room(&mut w, &mut tally, &mut report).unwrap();
            assert_eq!(sealing.pending.len() as u64, seq - 1);
            let (open, gate) = std::sync::mpsc::sync_channel::<()>(1);
            gates.push(open);
            let sealer = s.clone();
            let job: Job = Box::new(move |encrypted| {
                drop(encrypted);
                let _ = gate.recv_timeout(std::time::Duration::from_secs(60));
                sealer.seal(seq, b"segment")?.sync()
            });
            sealing.start(s.path(seq), meta(seq, b"segment"), job);
        }
        assert_eq!((tally.segments, seqs(&vault, &id)), (0, vec![0]));
        // All IN_FLIGHT are in flight: room is made by recording the oldest, once it is done.
        gates.remove(0).send(()).unwrap();
        sealing.make_room(&mut w, &mut tally, &mut report).unwrap();
        assert_eq!(sealing.pending.len(), IN_FLIGHT - 1);
        for gate in gates {
            gate.send(()).unwrap();
        }
        sealing.land_all(&mut w, &mut tally, &mut report).unwrap();
        assert_eq!(saved, (1..=IN_FLIGHT as u64).collect::<Vec<_>>());
    }

    /// The second of two segments in flight fails (its file cannot be made): the first,
    /// sealed meanwhile, is saved, and the recording ends after it with an error record
    /// that says what failed; nothing else is left in `segments/`.
    #[test]
    fn when_the_second_of_two_segments_in_flight_fails_the_first_is_saved_and_the_end_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let w = sealing_writer(&vault);
        let id = w.id();
        // Position 2's name is taken, so its sealing fails at once.
        std::fs::create_dir(vault.segment_path(&id, 2)).unwrap();
        let mut sealing = Sealing::new();
        let (open, gate) = std::sync::mpsc::sync_channel(1);
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let s = w.segment_sealer();
        sealing.start(s.path(1), meta(1, b"first"), held(s.clone(), 1, b"first", gate));
        sealing.start(s.path(2), meta(2, b"second"), signalling(s.clone(), 2, b"second", done_tx));
        done.recv().unwrap();
        open.send(()).unwrap();

        let mut writer = Some(w);
        let mut tally = Tally::default();
        let mut saved = Vec::new();
        let error = sealing
            .land_all(writer.as_mut().unwrap(), &mut tally, &mut |p: &Progress| {
                if let Progress::Saved { seq, .. } = p {
                    saved.push(*seq);
                }
            })
            .unwrap_err();
        assert_eq!(saved, vec![1]);
        let error = end_with_error(&mut writer, Some(&mut sealing), error);
        let said = error.to_string();
        assert!(
            said.contains("creating the segment file") && said.contains("00000002.age"),
            "{said}"
        );
        assert!(said.contains("already exists"), "{said}");
        let records = vault.records(&id).unwrap();
        assert_eq!(records.iter().map(|r| r.record().seq()).collect::<Vec<_>>(), vec![0, 1, 2]);
        match records.last().unwrap().record() {
            custody_format::record::Record::End(e) => {
                assert_eq!(e.reason, EndReason::Error);
                let m = e.message.as_deref().unwrap_or_default();
                assert!(m.contains("00000002.age") && m.contains("already exists"), "{m}");
            }
            other => panic!("not an end record: {other:?}"),
        }
        let mut left: Vec<String> = std::fs::read_dir(vault.recording_dir(&id).join("segments"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["00000001.age", "00000002.age"], "no temporary file is left");
        assert!(vault.segment_path(&id, 2).is_dir(), "what took the name is left alone");
    }

    /// The first of two segments in flight fails after the second is sealed and durable:
    /// the recording ends after the header, and the second's file, which no record names,
    /// is removed.
    #[test]
    fn when_the_first_of_two_segments_in_flight_fails_the_second_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::open(dir.path()).unwrap();
        let w = sealing_writer(&vault);
        let id = w.id();
        std::fs::create_dir(vault.segment_path(&id, 1)).unwrap();
        let mut sealing = Sealing::new();
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let (open, gate) = std::sync::mpsc::sync_channel(1);
        let s = w.segment_sealer();
        sealing.start(s.path(1), meta(1, b"first"), held(s.clone(), 1, b"first", gate));
        sealing.start(s.path(2), meta(2, b"second"), signalling(s.clone(), 2, b"second", done_tx));
        done.recv().unwrap();
        assert!(vault.segment_path(&id, 2).is_file());
        drop(open);

        let mut writer = Some(w);
        let mut tally = Tally::default();
        let error = sealing
            .land_all(writer.as_mut().unwrap(), &mut tally, &mut |p: &Progress| {
                assert!(!matches!(p, Progress::Saved { .. }), "{p:?}");
            })
            .unwrap_err();
        let said = end_with_error(&mut writer, Some(&mut sealing), error).to_string();
        assert!(said.contains("00000001.age") && said.contains("already exists"), "{said}");
        assert!(!vault.segment_path(&id, 2).exists(), "the unrecorded file is removed");
        assert_eq!(seqs(&vault, &id), vec![0, 1]);
        assert!(matches!(
            vault.records(&id).unwrap()[1].record(),
            custody_format::record::Record::End(e) if e.reason == EndReason::Error
        ));
    }
}
