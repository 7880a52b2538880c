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
        Self::replacing(path, owner_only)
    }

    /// Starts writing a new version of `path`, which may exist: until the commit, readers
    /// see the old file; after it, the new one.
    pub fn replacing(path: &Path, owner_only: bool) -> io::Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp"));
        // A temporary file left by a crash is removed rather than reused, so the new file
        // is created with the mode asked for (a reused file would keep its old mode).
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if owner_only { 0o600 } else { 0o644 })
            .open(&tmp)?;
        Ok(DurableFile { file: Some(file), tmp, path: path.to_path_buf() })
    }

    /// fsyncs the data, renames the file into place and fsyncs the directory. If the fsync
    /// or the rename fails, the temporary file is removed, as when the file is dropped: a
    /// failed commit leaves nothing behind.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().ok_or_else(|| io::Error::other("already committed"))?;
        let synced = file.sync_all();
        drop(file);
        if let Err(e) = synced.and_then(|()| std::fs::rename(&self.tmp, &self.path)) {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e);
        }
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

/// Replaces the file at `path` (or creates it) durably: a new file is written beside it,
/// fsynced, renamed over it and the directory fsynced, so a crash at any point leaves the
/// old file or the new one, never a part, a mix, or neither. For files that change
/// (configuration, a saved login, the receipts index); evidence is written once, with
/// [`write_durable`], and never replaced.
pub fn replace_durable(path: &Path, bytes: &[u8], owner_only: bool) -> io::Result<()> {
    let mut f = DurableFile::replacing(path, owner_only)?;
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
    fn a_commit_that_fails_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let mut f = DurableFile::replacing(&path, false).unwrap();
        f.write_all(b"new").unwrap();
        // A non-empty directory where the file goes: the rename into place fails.
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"").unwrap();
        assert!(f.commit().is_err());
        let left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("x")], "only the directory is left");
    }

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

    #[test]
    fn a_replaced_file_is_whole_and_new_with_the_mode_asked_for() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("login.json");
        replace_durable(&path, b"old", false).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // A temporary file a crash left behind, readable by everyone.
        let stale = dir.path().join(".login.json.tmp");
        std::fs::write(&stale, b"half").unwrap();
        std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace_durable(&path, b"new secret", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new secret");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("login.json")]);
        // Creating (not replacing) still refuses an existing file.
        assert_eq!(
            DurableFile::create(&path, false).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
