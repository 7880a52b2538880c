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
use std::io::{self, Read, Seek, SeekFrom, Write};
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

/// Reads every whole frame of the journal at `path` without changing it.
pub fn read(path: &Path) -> io::Result<Contents> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut contents = Contents::default();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + 8) else { break };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_PAYLOAD {
            break;
        }
        let Some(payload) = bytes.get(pos + 8..pos + 8 + len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        contents.payloads.push(payload.to_vec());
        pos += 8 + len;
    }
    contents.good_len = pos as u64;
    if pos < bytes.len() {
        contents.torn =
            Some(TornTail { offset: pos as u64, len: (bytes.len() - pos) as u64, kept_in: None });
    }
    Ok(contents)
}

/// A journal open for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Creates a new, empty journal (and makes its creation durable).
    pub fn create(path: &Path) -> io::Result<Journal> {
        let file = OpenOptions::new().append(true).create_new(true).open(path)?;
        file.sync_all()?;
        sync_dir(crate::fsutil::parent_dir(path))?;
        Ok(Journal { file, path: path.to_path_buf() })
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
        Ok((Journal { file, path: path.to_path_buf() }, contents))
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
        self.file.write_all(&frame)?;
        self.file.sync_data()
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
}
