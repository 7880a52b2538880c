//! Durable file writes: nothing is reported as saved before it is on the disk.
//!
//! A new file is written under a temporary name in its final directory, fsynced, renamed
//! into place, and then the directory is fsynced so that the rename itself survives a
//! power cut. A reader therefore sees either no file or the whole file, never a part.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// fsyncs a directory, making the creation, removal or renaming of its entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A file being written under a temporary name; [`DurableFile::commit`] makes it durable
/// under its final name. Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct DurableFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
}

impl DurableFile {
    /// Starts writing `path` (mode 0600 if `owner_only`, else 0644). Refuses to start if
    /// `path` already exists.
    pub fn create(path: &Path, owner_only: bool) -> io::Result<Self> {
        if path.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", path.display()),
            ));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if owner_only { 0o600 } else { 0o644 })
            .open(&tmp)?;
        Ok(DurableFile { file: Some(file), tmp, path: path.to_path_buf() })
    }

    /// fsyncs the data, renames the file into place and fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().ok_or_else(|| io::Error::other("already committed"))?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)?;
        sync_dir(parent_dir(&self.path))
    }
}

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for DurableFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a whole new file durably.
pub fn write_durable(path: &Path, bytes: &[u8], owner_only: bool) -> io::Result<()> {
    let mut f = DurableFile::create(path, owner_only)?;
    f.write_all(bytes)?;
    f.commit()
}

/// The directory holding `path`: its parent, or `.` for a bare file name (whose
/// `Path::parent` is the empty path, which cannot be opened).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let mut f = DurableFile::create(&path, false).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!path.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        assert!(DurableFile::create(&path, false).is_err());
        let g = DurableFile::create(&dir.path().join("y"), false).unwrap();
        drop(g);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("case.agekey")), Path::new("."));
        assert_eq!(parent_dir(Path::new("keys/case.agekey")), Path::new("keys"));
        assert_eq!(parent_dir(Path::new("/case.agekey")), Path::new("/"));
        sync_dir(parent_dir(Path::new("case.agekey"))).unwrap();
    }
}
