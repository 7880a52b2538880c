//! The per-recording journal: an append-only file of signed records, each framed with its
//! length and a CRC-32 and fsynced before it counts as saved.
//!
//! ```text
//! frame := len u32be | crc32 u32be (of payload, IEEE) | payload (len bytes)
//! ```
//!
//! A crash can leave the last frame half-written (a torn tail). Opening the journal for
//! writing finds the last whole frame, keeps the bytes after it in a side file (nothing
//! is ever thrown away) and cuts the journal back to it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::fsutil::sync_dir;

/// The largest payload a frame may carry: 1 MiB, far above any custody object (a
/// record is at most 64 KiB plus its signature).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Bytes after the last whole frame, found when reading a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Offset of the first byte after the last whole frame.
    pub offset: u64,
    /// How many bytes follow it.
    pub len: u64,
    /// Where they were kept, once the journal was repaired.
    pub kept_in: Option<PathBuf>,
}

/// What a journal holds.
#[derive(Debug, Default)]
pub struct Contents {
    /// The payloads of the whole frames, in order.
    pub payloads: Vec<Vec<u8>>,
    /// Length of the whole frames.
    pub good_len: u64,
    /// A torn tail, if any.
    pub torn: Option<TornTail>,
}

/// Frame overhead: the length and the CRC-32 before each payload.
pub const FRAME_HEADER: u64 = 8;

/// One whole frame, its CRC checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the frame (its length field) in the journal.
    pub offset: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Offset of the payload in the journal.
    pub fn payload_offset(&self) -> u64 {
        self.offset + FRAME_HEADER
    }

    /// Offset of the byte after the frame: where the next frame starts.
    pub fn end(&self) -> u64 {
        self.payload_offset() + self.payload.len() as u64
    }
}

/// Why reading frames stopped before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The file ends inside a frame: a crash while appending (a torn tail).
    Torn,
    /// A length field larger than [`MAX_PAYLOAD`]: not a frame this journal wrote.
    TooLong,
    /// A whole frame whose payload does not match its CRC-32.
    BadCrc,
}

/// The whole frames of a journal from a byte offset on, each with its CRC checked; see
/// [`frames_from`]. Iteration ends at the end of the file or at the first frame that is
/// not whole and intact ([`Frames::stopped`] says which); an `Err` item is an I/O error.
#[derive(Debug)]
pub struct Frames {
    reader: BufReader<File>,
    pos: u64,
    stopped: Option<Stop>,
    done: bool,
}

/// Reads the frames of the journal at `path` starting at `offset`, which must be where a
/// frame starts (0, or a [`Frame::end`] or [`Frames::position`] of an earlier read). A
/// reader that remembers where it stopped reads only what was appended since.
pub fn frames_from(path: &Path, offset: u64) -> io::Result<Frames> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(Frames { reader: BufReader::new(file), pos: offset, stopped: None, done: false })
}

impl Frames {
    /// Offset of the byte after the last whole frame read so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Why iteration stopped before the end of the file, once it has ended; `None` if it
    /// reached the end cleanly (or has not ended yet).
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut header = [0u8; FRAME_HEADER as usize];
        let got = read_full(&mut self.reader, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < header.len() {
            self.stopped = Some(Stop::Torn);
            return Ok(None);
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_PAYLOAD {
            self.stopped = Some(Stop::TooLong);
            return Ok(None);
        }
        let mut payload = vec![0u8; len];
        if read_full(&mut self.reader, &mut payload)? < len {
            self.stopped = Some(Stop::Torn);
            return Ok(None);
        }
        if crc32fast::hash(&payload) != crc {
            self.stopped = Some(Stop::BadCrc);
            return Ok(None);
        }
        let frame = Frame { offset: self.pos, payload };
        self.pos = frame.end();
        Ok(Some(frame))
    }
}

impl Iterator for Frames {
    type Item = io::Result<Frame>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_frame().transpose();
        if !matches!(next, Some(Ok(_))) {
            self.done = true;
        }
        next
    }
}

/// Reads into `buf` until it is full or the input ends; returns how many bytes it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads every whole frame of the journal at `path` without changing it.
pub fn read(path: &Path) -> io::Result<Contents> {
    let mut frames = frames_from(path, 0)?;
    let mut contents = Contents::default();
    for frame in frames.by_ref() {
        contents.payloads.push(frame?.payload);
    }
    contents.good_len = frames.position();
    if frames.stopped().is_some() {
        let file_len = std::fs::metadata(path)?.len();
        contents.torn = Some(TornTail {
            offset: contents.good_len,
            len: file_len.saturating_sub(contents.good_len),
            kept_in: None,
        });
    }
    Ok(contents)
}

/// A journal open for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    position: u64,
}

impl Journal {
    /// Creates a new, empty journal (and makes its creation durable).
    pub fn create(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().append(true).create_new(true).open(path)?;
        file.sync_all()?;
        sync_dir(crate::fsutil::parent_dir(path))?;
        Ok(Journal { file, path: path.to_path_buf(), position: 0 })
    }

    /// Opens an existing journal for appending, repairing a torn tail: the bytes after the
    /// last whole frame are copied to `<journal>.torn-<offset>` and the journal is cut back.
    pub fn open(path: &Path) -> io::Result<(Journal, Contents)> {
        let mut contents = read(path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        if let Some(torn) = &mut contents.torn {
            let keep = path.with_extension(format!("torn-{}", torn.offset));
            let mut tail = Vec::new();
            file.seek(SeekFrom::Start(torn.offset))?;
            file.read_to_end(&mut tail)?;
            crate::fsutil::write_durable(&keep, &tail, true)?;
            file.set_len(torn.offset)?;
            file.sync_all()?;
            torn.kept_in = Some(keep);
        }
        file.seek(SeekFrom::End(0))?;
        let position = contents.good_len;
        Ok((Journal { file, path: path.to_path_buf(), position }, contents))
    }

    /// Appends one payload and fsyncs it; when this returns `Ok`, the payload is saved.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > MAX_PAYLOAD {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "journal payload too large"));
        }
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
        frame.extend_from_slice(payload);
        if let Err(e) = self.file.write_all(&frame) {
            // Part of the frame may be in the file (a full disk): cut it back, so that the
            // next append (the end record saying why) follows the last whole frame instead
            // of a torn one that would hide it from every reader. No reader can have taken
            // a part for a frame, since its CRC covers the whole payload.
            let _ = self.file.set_len(self.position);
            return Err(e);
        }
        self.file.sync_data()?;
        self.position += frame.len() as u64;
        Ok(())
    }

    /// Offset of the byte after the last frame appended: the journal's length in whole
    /// frames, and where a [`frames_from`] reader that has read them all stands.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_tail_is_kept_aside_and_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"first").unwrap();
        j.append(b"second").unwrap();
        drop(j);
        // A crash in the middle of the third append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 5, 1, 2]).unwrap();
        drop(f);
        let (mut j, contents) = Journal::open(&path).unwrap();
        assert_eq!(contents.payloads, vec![b"first".to_vec(), b"second".to_vec()]);
        let torn = contents.torn.unwrap();
        assert_eq!((torn.offset, torn.len), (8 + 5 + 8 + 6, 6));
        assert_eq!(std::fs::read(torn.kept_in.unwrap()).unwrap(), vec![0, 0, 0, 5, 1, 2]);
        j.append(b"third").unwrap();
        let again = read(&path).unwrap();
        assert_eq!(again.payloads.len(), 3);
        assert!(again.torn.is_none());
    }

    #[test]
    fn a_corrupted_frame_ends_the_readable_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"one").unwrap();
        j.append(b"two").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.payloads, vec![b"one".to_vec()]);
        assert_eq!(c.torn.unwrap().len, 11);
    }

    #[test]
    fn frames_from_an_offset_are_only_those_appended_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"one").unwrap();
        let mut frames = frames_from(&path, 0).unwrap();
        let first: Vec<Frame> = frames.by_ref().map(Result::unwrap).collect();
        assert_eq!(first, vec![Frame { offset: 0, payload: b"one".to_vec() }]);
        assert_eq!(frames.position(), j.position());
        assert_eq!(frames.stopped(), None);
        j.append(b"two").unwrap();
        j.append(b"three").unwrap();
        let later: Vec<Frame> =
            frames_from(&path, first[0].end()).unwrap().map(Result::unwrap).collect();
        assert_eq!(later.len(), 2);
        assert_eq!((later[0].offset, later[0].payload_offset()), (11, 19));
        assert_eq!(later[1].payload, b"three");
        assert_eq!(later[1].end(), j.position());
        assert_eq!(j.position(), std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_frame_with_a_bad_crc_is_not_returned_and_reading_stops_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"one").unwrap();
        j.append(b"two").unwrap();
        j.append(b"three").unwrap();
        // Flip one bit of the second payload: its length is intact, its CRC is not.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[11 + 8] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let mut frames = frames_from(&path, 0).unwrap();
        let got: Vec<Vec<u8>> = frames.by_ref().map(|f| f.unwrap().payload).collect();
        assert_eq!(got, vec![b"one".to_vec()], "the frame after the bad one is not read either");
        assert_eq!(frames.stopped(), Some(Stop::BadCrc));
        assert_eq!(frames.position(), 11);
        // From the bad frame's own offset, nothing either.
        let mut from_bad = frames_from(&path, 11).unwrap();
        assert!(from_bad.next().is_none());
        assert_eq!(from_bad.stopped(), Some(Stop::BadCrc));
    }

    #[test]
    fn a_torn_tail_or_an_impossible_length_ends_the_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"one").unwrap();
        drop(j);
        let whole = std::fs::read(&path).unwrap();
        for (tail, stop) in [
            (vec![0, 0], Stop::Torn),
            (vec![0, 0, 0, 9, 0, 0, 0, 0, 1, 2], Stop::Torn),
            (vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], Stop::TooLong),
        ] {
            let mut bytes = whole.clone();
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            let mut frames = frames_from(&path, 0).unwrap();
            assert_eq!(frames.by_ref().count(), 1);
            assert_eq!(frames.stopped(), Some(stop), "{tail:?}");
            assert_eq!(frames.position(), whole.len() as u64);
            let c = read(&path).unwrap();
            assert_eq!(c.torn.unwrap().len, tail.len() as u64);
        }
    }

    #[test]
    fn a_frame_cut_short_by_a_full_disk_is_cut_back_so_the_next_one_is_read() {
        // A 64 KiB tmpfs to fill (this needs root, as cli/tests/vault.rs's full-disk test).
        let mount = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(mount.path())
            .status()
            .unwrap();
        assert!(status.success(), "this test mounts a small tmpfs to fill it, which needs root");
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(mount.path());
        let path = mount.path().join("journal.bin");
        let mut j = Journal::create(&path).unwrap();
        let big = vec![7u8; 10_000];
        let mut saved = 0;
        let err = loop {
            match j.append(&big) {
                Ok(()) => saved += 1,
                Err(e) => break e,
            }
            assert!(saved < 100, "the tmpfs never filled");
        };
        assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), j.position(), "cut back");
        // The room the cut-short frame took is free again: a small record still fits, and
        // every reader finds it after the whole ones.
        j.append(b"the end record").unwrap();
        let c = read(&path).unwrap();
        assert!(c.torn.is_none());
        assert_eq!(c.payloads.len(), saved + 1);
        assert_eq!(c.payloads.last().unwrap(), b"the end record");
    }
}
