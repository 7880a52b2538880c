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
//!
//! Damage anywhere else (a flipped bit, a zeroed block, a disk that lied) is not a torn
//! tail, and cutting there would throw intact frames away. [`scan`] reads past it: after a
//! bad frame it searches every later offset for the next frame whose header is plausible,
//! whose CRC-32 holds and whose payload the caller recognises, and reports the byte ranges
//! it skipped. [`Journal::open_scanned`] then cuts only a genuine torn tail, and
//! [`recover`] rewrites a damaged journal as its intact frames, keeping the damaged one
//! beside it.

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

/// A stretch of a journal's bytes that holds no frame the reader accepts: damage in the
/// middle, or what follows the last accepted frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Offset of its first byte.
    pub offset: u64,
    /// How many bytes it spans.
    pub len: u64,
}

impl Damage {
    /// Offset of the byte after it.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bytes {}..{} ({} bytes)", self.offset, self.end(), self.len)
    }
}

/// What [`scan`] found in a journal: every intact frame the caller accepted, wherever it
/// lies, and the byte ranges between them that were skipped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The accepted frames, in file order.
    pub frames: Vec<Frame>,
    /// Ranges skipped before an accepted frame: damage in the middle. Empty for a journal
    /// that is intact or only torn at its end.
    pub damaged: Vec<Damage>,
    /// The bytes after the last accepted frame (or the whole file, if none was accepted),
    /// if any.
    pub tail: Option<Damage>,
    /// Whether `tail` is what a crash while appending leaves (see [`Scan::torn`]).
    tail_is_torn: bool,
    /// The file's length when it was scanned.
    pub file_len: u64,
}

impl Scan {
    /// Whether every byte of the journal is in an accepted frame.
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty() && self.tail.is_none()
    }

    /// The tail, if it is a torn one: what a crash in the middle of the last append leaves,
    /// and nothing else is wrong before it. That is the bytes of at most one frame at the
    /// very end, after at least one accepted frame or at offset 0: fewer than a frame
    /// header; or a frame whose length reaches to (or past) the end of the file but whose
    /// CRC or payload fails; or, after accepted frames, zeros no longer than one frame (a
    /// file extended before its data reached the disk). Such a tail is cut off, as
    /// [`Journal::open`] does.
    pub fn torn(&self) -> Option<Damage> {
        self.tail.filter(|_| self.tail_is_torn && self.damaged.is_empty())
    }

    /// Whether the journal holds damage that is not a torn tail: a bad range with accepted
    /// frames after it, or a tail that is more than one unfinished frame. Such a journal
    /// is never cut: see [`recover`].
    pub fn is_damaged(&self) -> bool {
        !self.damaged.is_empty() || self.tail.is_some_and(|_| !self.tail_is_torn)
    }

    /// Every range that is not an accepted frame, the tail included, in file order.
    pub fn gaps(&self) -> Vec<Damage> {
        self.damaged.iter().copied().chain(self.tail).collect()
    }

    /// The payloads of the accepted frames, in order.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|f| f.payload.as_slice())
    }
}

/// The frame at `at` in `bytes`, if its header is whole, its length plausible and inside
/// the buffer, and its CRC-32 holds.
fn frame_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let header = bytes.get(at..at.checked_add(FRAME_HEADER as usize)?)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_PAYLOAD {
        return None;
    }
    let start = at + FRAME_HEADER as usize;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Whether the `rest` of a file, after `before` accepted frames, is what a crash in the
/// middle of appending one frame leaves; see [`Scan::torn`].
fn looks_torn(rest: &[u8], before: usize) -> bool {
    let Some(header) = rest.get(..FRAME_HEADER as usize) else { return true };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let frame = FRAME_HEADER as usize + len;
    if len <= MAX_PAYLOAD && frame > rest.len() {
        return true;
    }
    // A whole last frame that fails, or zeros no longer than a frame: torn only after
    // frames that were accepted, so that a journal damaged from its first byte is never
    // cut to nothing.
    before > 0
        && ((len <= MAX_PAYLOAD && frame == rest.len())
            || (rest.len() <= FRAME_HEADER as usize + MAX_PAYLOAD && rest.iter().all(|&b| b == 0)))
}

/// How [`scan`] came upon a frame it asks the caller about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// Right after the frame before it (or at offset 0): where the writer put a frame.
    InSequence,
    /// By searching past damage: bytes at this offset pass as a frame, which random bytes
    /// do about once in 2^32 tries, so a caller may check the payload harder.
    BySearch,
}

/// Reads every frame of the journal at `path` that is intact (its CRC-32 holds) and whose
/// payload `accept` takes, resynchronising past damage: after a frame that is not whole,
/// whose CRC fails or whose payload `accept` refuses, it looks at every later offset for
/// the next one that is, since frames carry no magic number to find. `accept` is what
/// tells a frame of this journal from bytes that merely happen to pass a CRC-32 (a zeroed
/// stretch is a run of valid empty frames): the vault passes "parses as a signed record of
/// this recording", the server "parses as a log entry". Changes nothing.
///
/// An intact journal is read as [`frames_from`] reads it, one pass; only the bytes after
/// a bad frame are read into memory and searched, each offset costing one header check
/// and, when the length is plausible, one CRC.
pub fn scan(path: &Path, mut accept: impl FnMut(&[u8], Found) -> bool) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut frames = frames_from(path, 0)?;
    let mut stopped_at = None;
    for frame in frames.by_ref() {
        let frame = frame?;
        if !accept(&frame.payload, Found::InSequence) {
            stopped_at = Some(frame.offset);
            break;
        }
        out.frames.push(frame);
    }
    let stopped_at = match (stopped_at, frames.stopped()) {
        (Some(at), _) => at,
        (None, Some(_)) => frames.position(),
        (None, None) => {
            out.file_len = frames.position();
            return Ok(out);
        }
    };
    drop(frames);
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(stopped_at))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    out.file_len = stopped_at + rest.len() as u64;

    // `bad` is where the current damaged range began; `at` the offset being tried.
    let mut bad = 0usize;
    let mut at = 1usize;
    while at < rest.len() {
        let Some(payload) = frame_at(&rest, at).filter(|p| accept(p, Found::BySearch)) else {
            at += 1;
            continue;
        };
        out.damaged.push(Damage { offset: stopped_at + bad as u64, len: (at - bad) as u64 });
        let mut next = at + FRAME_HEADER as usize + payload.len();
        out.frames.push(Frame { offset: stopped_at + at as u64, payload: payload.to_vec() });
        // Whole frames from here on, until the next one that fails.
        while let Some(p) = frame_at(&rest, next).filter(|p| accept(p, Found::InSequence)) {
            out.frames.push(Frame { offset: stopped_at + next as u64, payload: p.to_vec() });
            next += FRAME_HEADER as usize + p.len();
        }
        bad = next;
        at = next + 1;
    }
    if bad < rest.len() {
        let before = out.frames.len();
        out.tail_is_torn = looks_torn(&rest[bad..], before);
        out.tail = Some(Damage { offset: stopped_at + bad as u64, len: (rest.len() - bad) as u64 });
    }
    Ok(out)
}

/// Replaces a damaged journal by its accepted frames without losing a byte: the journal
/// as it is is first copied, durably, to `<journal>.damaged-<seconds since the epoch>`
/// beside it (`journal.bin` → `journal.damaged-…`; a number is added if the name is taken), then the frames `scan` accepted
/// are written to a new file that is fsynced and renamed over the journal (directory
/// fsynced). A crash at any point leaves the damaged journal in place, with or without its
/// copy, or the recovered one with its copy. Returns where the copy is.
///
/// Refuses (`InvalidData`) if the journal's length is no longer the scanned one: it was
/// appended to since, and must be scanned again.
pub fn recover(path: &Path, scan: &Scan) -> io::Result<PathBuf> {
    let original = std::fs::read(path)?;
    if original.len() as u64 != scan.file_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the journal changed since it was scanned",
        ));
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let keep = free_name(path, &format!("damaged-{stamp}"));
    crate::fsutil::write_durable(&keep, &original, false)?;
    let mut bytes = Vec::with_capacity(original.len());
    for f in &scan.frames {
        bytes.extend_from_slice(&(f.payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&f.payload).to_be_bytes());
        bytes.extend_from_slice(&f.payload);
    }
    crate::fsutil::replace_durable(path, &bytes, false)?;
    Ok(keep)
}

/// Copies the bytes of `file` (the journal at `path`) from `offset` on to
/// `<journal>.torn-<offset>`, durably, then cuts the journal back to `offset`.
fn cut_tail(path: &Path, file: &mut File, offset: u64) -> io::Result<TornTail> {
    let keep = free_name(path, &format!("torn-{offset}"));
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(offset))?;
    file.read_to_end(&mut tail)?;
    crate::fsutil::write_durable(&keep, &tail, true)?;
    file.set_len(offset)?;
    file.sync_all()?;
    Ok(TornTail { offset, len: tail.len() as u64, kept_in: Some(keep) })
}

/// `path` with the extension `ext`, or `ext-2`, `ext-3`… if that file exists: a side file
/// never replaces an earlier one (a second crash at the same offset).
fn free_name(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.with_extension(ext);
    let mut n = 2;
    while name.exists() && n < 10_000 {
        name = path.with_extension(format!("{ext}-{n}"));
        n += 1;
    }
    name
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
            *torn = cut_tail(path, &mut file, torn.offset)?;
        }
        file.seek(SeekFrom::End(0))?;
        let position = contents.good_len;
        Ok((Journal { file, path: path.to_path_buf(), position }, contents))
    }

    /// Opens for appending a journal that [`scan`] has just read: an intact journal is
    /// opened at its end; a torn tail ([`Scan::torn`]) is copied to
    /// `<journal>.torn-<offset>` and cut back, as [`Journal::open`] does. A journal with
    /// damage in it ([`Scan::is_damaged`]) is refused (`InvalidData`): appending after
    /// damage would hide what follows it, and cutting it would lose intact frames; it is
    /// [`recover`]ed first, or left alone. Refused too if the journal's length is no longer
    /// the scanned one.
    pub fn open_scanned(path: &Path, scan: &Scan) -> io::Result<(Journal, Option<TornTail>)> {
        if scan.is_damaged() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is damaged in the middle; it is not appended to", path.display()),
            ));
        }
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() != scan.file_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the journal changed since it was scanned",
            ));
        }
        let torn = match scan.torn() {
            Some(t) => Some(cut_tail(path, &mut file, t.offset)?),
            None => None,
        };
        file.seek(SeekFrom::End(0))?;
        let position = torn.as_ref().map_or(scan.file_len, |t| t.offset);
        Ok((Journal { file, path: path.to_path_buf(), position }, torn))
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
            // And write the next frame there: a file opened for reading and writing keeps
            // its cursor after the part written, which would leave a hole before the next
            // frame (a server's log appends again once it has freed space).
            let _ = self.file.seek(SeekFrom::Start(self.position));
            return Err(e);
        }
        self.file.sync_data()?;
        self.position += frame.len() as u64;
        Ok(())
    }

    /// Appends `payloads` as consecutive frames with one write and one fsync: when this
    /// returns `Ok`, every one is saved (group commit: many appends share the flush). On
    /// an error none counts as saved and the journal is cut back to where it stood, so a
    /// full disk leaves no partial frame behind.
    pub fn append_all<P: AsRef<[u8]>>(&mut self, payloads: &[P]) -> io::Result<()> {
        let mut frames = Vec::with_capacity(
            payloads.iter().map(|p| FRAME_HEADER as usize + p.as_ref().len()).sum(),
        );
        for p in payloads {
            let p = p.as_ref();
            if p.len() > MAX_PAYLOAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "journal payload too large",
                ));
            }
            frames.extend_from_slice(&(p.len() as u32).to_be_bytes());
            frames.extend_from_slice(&crc32fast::hash(p).to_be_bytes());
            frames.extend_from_slice(p);
        }
        if let Err(e) = self.file.write_all(&frames).and_then(|()| self.file.sync_data()) {
            // As in `append`: cut back whatever part reached the file and write the next
            // frames where these would have gone. A failed fsync leaves the written bytes
            // in doubt, so they are cut too rather than counted.
            let _ = self.file.set_len(self.position);
            let _ = self.file.seek(SeekFrom::Start(self.position));
            return Err(e);
        }
        self.position += frames.len() as u64;
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

    /// A journal of `n` payloads `record-0`, `record-1`… and the offsets of its frames.
    #[test]
    fn frames_appended_together_read_back_one_by_one_after_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut j = Journal::create(&path).unwrap();
        j.append(b"first").unwrap();
        j.append_all(&[b"second".to_vec(), Vec::new(), b"fourth".to_vec()]).unwrap();
        j.append_all::<Vec<u8>>(&[]).unwrap();
        j.append(b"fifth").unwrap();
        let c = read(&path).unwrap();
        let got: Vec<&[u8]> = c.payloads.iter().map(Vec::as_slice).collect();
        assert_eq!(got, [&b"first"[..], b"second", b"", b"fourth", b"fifth"]);
        assert_eq!(j.position(), std::fs::metadata(&path).unwrap().len());
    }

    fn journal_of(path: &Path, n: usize) -> Vec<u64> {
        let mut j = Journal::create(path).unwrap();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(j.position());
            j.append(format!("record-{i}").as_bytes()).unwrap();
        }
        offsets
    }

    /// The scan filter of these tests: a payload is a record if it reads `record-<n>`.
    fn is_record(p: &[u8], _: Found) -> bool {
        p.starts_with(b"record-")
    }

    fn names(scan: &Scan) -> Vec<String> {
        scan.payloads().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
    }

    #[test]
    fn a_bit_flip_in_a_middle_frame_loses_that_frame_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let offsets = journal_of(&path, 9);
        for (flip, what) in [(8 + 3, "payload"), (5, "crc"), (2, "length")] {
            let mut bytes = std::fs::read(&path).unwrap();
            let original = bytes.clone();
            bytes[offsets[3] as usize + flip] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let scan = scan(&path, is_record).unwrap();
            let mut want: Vec<String> = (0..9).map(|i| format!("record-{i}")).collect();
            want.remove(3);
            assert_eq!(names(&scan), want, "{what}");
            assert_eq!(
                scan.damaged,
                vec![Damage { offset: offsets[3], len: offsets[4] - offsets[3] }],
                "{what}"
            );
            assert!(scan.is_damaged() && scan.torn().is_none() && scan.tail.is_none(), "{what}");
            // Reading in sequence, as before, stops at the bad frame.
            assert_eq!(read(&path).unwrap().payloads.len(), 3, "{what}");
            std::fs::write(&path, &original).unwrap();
        }
    }

    #[test]
    fn a_damaged_journal_is_recovered_without_losing_a_byte_and_never_appended_to_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let offsets = journal_of(&path, 5);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[1] as usize + 9] ^= 0x80;
        std::fs::write(&path, &bytes).unwrap();
        let scanned = scan(&path, is_record).unwrap();
        let refused = Journal::open_scanned(&path, &scanned).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "refusing changes nothing");

        let kept = recover(&path, &scanned).unwrap();
        assert!(kept.file_name().unwrap().to_string_lossy().starts_with("journal.damaged-"));
        assert_eq!(std::fs::read(&kept).unwrap(), bytes, "the damaged journal, byte for byte");
        let again = scan(&path, is_record).unwrap();
        assert!(again.is_intact());
        assert_eq!(names(&again), ["record-0", "record-2", "record-3", "record-4"]);
        let (mut j, torn) = Journal::open_scanned(&path, &again).unwrap();
        assert_eq!(torn, None);
        j.append(b"record-5").unwrap();
        assert_eq!(read(&path).unwrap().payloads.len(), 5);
        // A second recovery keeps its own copy beside the first.
        let second = recover(&path, &scan(&path, is_record).unwrap()).unwrap();
        assert_ne!(second, kept);
        assert!(kept.exists());
    }

    #[test]
    fn a_zeroed_journal_is_damage_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        journal_of(&path, 9);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::write(&path, vec![0u8; len as usize]).unwrap();
        // Zeros pass as empty frames with a good CRC: only the filter tells them apart.
        assert!(read(&path).unwrap().torn.is_none());
        let scan = scan(&path, is_record).unwrap();
        assert!(scan.frames.is_empty());
        assert_eq!(scan.tail, Some(Damage { offset: 0, len }));
        assert!(scan.is_damaged() && scan.torn().is_none());
        // A zeroed block in the middle: the frames on both sides are kept.
        journal_of(&dir.path().join("b.bin"), 9);
        let path = dir.path().join("b.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[30..70].fill(0);
        std::fs::write(&path, &bytes).unwrap();
        let scan = super::scan(&path, is_record).unwrap();
        assert_eq!(scan.damaged, vec![Damage { offset: 16, len: 64 }]);
        assert_eq!(names(&scan), ["record-0", "record-5", "record-6", "record-7", "record-8"]);
    }

    #[test]
    fn only_a_torn_last_frame_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let offsets = journal_of(&path, 3);
        let whole = std::fs::read(&path).unwrap();
        // Half a frame; a whole last frame with a bad CRC; zeros for one frame: torn.
        let mut half = whole.clone();
        half.extend_from_slice(&[0, 0, 0, 9, 1, 2, 3, 4, b'r']);
        let mut bad_last = whole.clone();
        let n = bad_last.len();
        bad_last[n - 1] ^= 1;
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0u8; 17]);
        for (bytes, keep) in [(half, 3), (bad_last, 2), (zeros, 3)] {
            std::fs::write(&path, &bytes).unwrap();
            let scanned = scan(&path, is_record).unwrap();
            let torn = scanned.torn().expect("torn");
            assert_eq!(scanned.frames.len(), keep);
            assert_eq!(torn.end(), bytes.len() as u64);
            let (_, cut) = Journal::open_scanned(&path, &scanned).unwrap();
            let cut = cut.unwrap();
            assert_eq!(std::fs::read(cut.kept_in.unwrap()).unwrap(), bytes[torn.offset as usize..]);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), torn.offset);
            assert!(keep < 3 || torn.offset == offsets[2] + 16);
            for f in std::fs::read_dir(dir.path()).unwrap().flatten() {
                if f.file_name().to_string_lossy().contains("torn") {
                    std::fs::remove_file(f.path()).unwrap();
                }
            }
        }
        // Two frames' worth of bad bytes at the end is not one unfinished append.
        let mut two = whole.clone();
        two.extend_from_slice(&[0, 0, 0, 2, 9, 9, 9, 9, 1, 2, 0, 0, 0, 2, 9, 9, 9, 9, 1, 2]);
        std::fs::write(&path, &two).unwrap();
        let scanned = scan(&path, is_record).unwrap();
        assert!(scanned.torn().is_none() && scanned.is_damaged());
    }
}
