//! Where a bundle's files come from: a directory, or one ustar archive of the same files.
//!
//! Every path is checked with [`custody_format::bundle::is_safe_path`] before anything is
//! opened, so neither a hostile archive nor a hostile manifest can reach outside the
//! bundle.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use custody_format::bundle::is_safe_path;

/// Why a bundle could not be opened at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The archive is not a ustar archive, or is damaged.
    #[error("{0} is not a readable bundle archive: {1}")]
    BadArchive(String, String),
}

/// A bundle's files.
pub trait Source: Sync {
    /// Every file's path (relative, `/`-separated) and length.
    fn files(&self) -> &BTreeMap<String, u64>;
    /// Opens a file for reading.
    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>>;

    /// Reads a whole (small) file, refusing one over `limit` bytes.
    fn read_small(&self, path: &str, limit: u64) -> io::Result<Vec<u8>> {
        let len = *self
            .files()
            .get(path)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{path} is absent")))?;
        if len > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path} is {len} bytes, more than the {limit} allowed"),
            ));
        }
        let mut out = Vec::with_capacity(len as usize);
        self.open(path)?.take(limit).read_to_end(&mut out)?;
        Ok(out)
    }

    /// For an archive, the name of its one top-level directory (a bundle's archive keeps its
    /// files under `custody-bundle-<recording id>/`, which the verifier checks); `None` for
    /// a directory, whose own name is not part of the bundle.
    fn top_directory(&self) -> Option<&str> {
        None
    }
}

/// A bundle directory.
#[derive(Debug)]
pub struct Dir {
    root: PathBuf,
    files: BTreeMap<String, u64>,
}

impl Dir {
    /// Lists the directory (regular files only; links are refused by being left out).
    pub fn open(root: &Path) -> Result<Dir, SourceError> {
        let err = |p: &Path| {
            let p = p.display().to_string();
            move |source| SourceError::Io { path: p, source }
        };
        let mut files = BTreeMap::new();
        let mut stack = vec![PathBuf::new()];
        let mut seen = 0usize;
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            for entry in std::fs::read_dir(&dir).map_err(err(&dir))? {
                seen += 1;
                if seen > 1_000_000 {
                    return Err(SourceError::BadArchive(
                        root.display().to_string(),
                        "too many files".into(),
                    ));
                }
                let entry = entry.map_err(err(&dir))?;
                let kind = entry.file_type().map_err(err(&dir))?;
                let name = rel.join(entry.file_name());
                if kind.is_dir() {
                    stack.push(name);
                } else if kind.is_file() {
                    let path = name.to_string_lossy().into_owned();
                    let len = entry.metadata().map_err(err(&dir))?.len();
                    files.insert(path, len);
                }
            }
        }
        Ok(Dir { root: root.to_path_buf(), files })
    }
}

impl Source for Dir {
    fn files(&self) -> &BTreeMap<String, u64> {
        &self.files
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>> {
        if !is_safe_path(path) || !self.files.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path} is not in the bundle"),
            ));
        }
        Ok(Box::new(File::open(self.root.join(path))?))
    }
}

/// A bundle as one POSIX ustar archive: its files live under one top-level directory.
#[derive(Debug)]
pub struct Tar {
    path: PathBuf,
    index: TarIndex,
}

/// An archive's headers, indexed: each file's length and where its data starts.
///
/// Built by [`TarIndex::read`] from any seekable reader, so the same code indexes a file on
/// disk ([`Tar::open`]) and, in the fuzz target, bytes in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TarIndex {
    /// Every file's path, relative to the top-level directory (always a safe bundle path),
    /// and its length.
    pub files: BTreeMap<String, u64>,
    /// Where each file's data starts, from the archive's first byte; the data lies wholly
    /// inside the archive.
    pub offsets: BTreeMap<String, u64>,
    /// The name of the archive's one top-level directory, if it has any entry.
    pub top: Option<String>,
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn c_string(field: &[u8]) -> Option<&str> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).ok()
}

impl TarIndex {
    /// Indexes the headers of the archive `r`, `total` bytes long (reading no file data);
    /// `name` names the archive in errors.
    pub fn read<R: Read + Seek>(
        r: &mut R,
        total: u64,
        name: &str,
    ) -> Result<TarIndex, SourceError> {
        let bad = |why: &str| SourceError::BadArchive(name.to_string(), why.to_string());
        let mut index = TarIndex::default();
        let mut pos = 0u64;
        let mut header = [0u8; 512];
        let mut top: Option<String> = None;
        for _ in 0..2_000_000 {
            if pos.saturating_add(512) > total {
                return Err(bad("it ends without the two empty blocks that close an archive"));
            }
            r.seek(SeekFrom::Start(pos))
                .and_then(|_| r.read_exact(&mut header))
                .map_err(|e| bad(&e.to_string()))?;
            if header.iter().all(|&b| b == 0) {
                index.top = top;
                return Ok(index);
            }
            let sum: u64 = header
                .iter()
                .enumerate()
                .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
                .sum();
            if octal(&header[148..156]) != Some(sum) {
                return Err(bad(&format!("header checksum mismatch at byte {pos}")));
            }
            if &header[257..262] != b"ustar" {
                return Err(bad("not a ustar archive"));
            }
            let size = octal(&header[124..136]).ok_or_else(|| bad("bad size field"))?;
            let prefix = c_string(&header[345..500]).ok_or_else(|| bad("bad name"))?;
            let base = c_string(&header[0..100]).ok_or_else(|| bad("bad name"))?;
            let full =
                if prefix.is_empty() { base.to_string() } else { format!("{prefix}/{base}") };
            let full = full.trim_end_matches('/');
            let (first, rest) = full.split_once('/').unwrap_or((full, ""));
            match &top {
                None => top = Some(first.to_string()),
                Some(t) if t != first => {
                    return Err(bad("files outside the bundle's top-level directory"))
                }
                Some(_) => {}
            }
            match header[156] {
                b'0' | 0 => {
                    if !is_safe_path(rest) {
                        return Err(bad(&format!("unsafe path {full:?}")));
                    }
                    if index.files.insert(rest.to_string(), size).is_some() {
                        return Err(bad(&format!("{rest} appears twice")));
                    }
                    index.offsets.insert(rest.to_string(), pos + 512);
                }
                b'5' => {}
                other => {
                    return Err(bad(&format!(
                    "entry {full:?} is of type {:?}: only files and directories belong in a bundle",
                    other as char
                )))
                }
            }
            pos = pos.saturating_add(512 + size.div_ceil(512) * 512);
        }
        Err(bad("too many entries"))
    }
}

impl Tar {
    /// Indexes the archive's headers (reading no file data).
    pub fn open(path: &Path) -> Result<Tar, SourceError> {
        let name = path.display().to_string();
        let mut f =
            File::open(path).map_err(|source| SourceError::Io { path: name.clone(), source })?;
        let total =
            f.metadata().map_err(|source| SourceError::Io { path: name.clone(), source })?.len();
        let index = TarIndex::read(&mut f, total, &name)?;
        Ok(Tar { path: path.to_path_buf(), index })
    }

    /// The archive's index.
    pub fn index(&self) -> &TarIndex {
        &self.index
    }
}

impl Source for Tar {
    fn files(&self) -> &BTreeMap<String, u64> {
        &self.index.files
    }

    fn top_directory(&self) -> Option<&str> {
        self.index.top.as_deref()
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + '_>> {
        let (Some(&offset), Some(&len)) =
            (self.index.offsets.get(path), self.index.files.get(path))
        else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path} is not in the bundle"),
            ));
        };
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f.take(len)))
    }
}

/// Opens a bundle directory or `.tar` file.
pub fn open(path: &Path) -> Result<Box<dyn Source>, SourceError> {
    if path.is_dir() {
        Ok(Box::new(Dir::open(path)?))
    } else {
        Ok(Box::new(Tar::open(path)?))
    }
}
