//! What the phone tests check after the page has done its part: the lawyer's bundle, its
//! records and decrypted segments, the exported video's frames, and the browser profile's
//! bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use custody_browser::{Phone, Server};
use custody_format::record::{Record, SegmentRecord, SignedRecord};

/// Bounds of the phone tests' waits.
pub const DRAIN: Duration = Duration::from_secs(90);

/// Unwraps a harness result, with what the page logged in the panic message.
#[track_caller]
pub fn ok<T>(phone: &Phone, r: Result<T, custody_browser::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}\n--- the page logged:\n{}", phone.console()),
    }
}

/// The records of a fetched bundle, in chain order.
pub fn records(bundle: &Path) -> Vec<SignedRecord> {
    let bytes = std::fs::read(bundle.join("recording/records.bin")).unwrap();
    SignedRecord::parse_all(&bytes).unwrap()
}

pub fn segments(records: &[SignedRecord]) -> Vec<SegmentRecord> {
    records
        .iter()
        .filter_map(|r| match r.record() {
            Record::Segment(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The sealed file of segment `seq` in a bundle.
pub fn segment_file(bundle: &Path, seq: u64) -> PathBuf {
    bundle.join(format!("recording/segments/{seq:08}.age"))
}

/// The case identities of the server fixture.
pub fn identities(server: &Server) -> Vec<age::x25519::Identity> {
    std::fs::read_to_string(&server.case_key)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| age::x25519::Identity::from_str(l.trim()).unwrap())
        .collect()
}

/// Decrypts a sealed segment with the case identities (the stock age format).
pub fn open(sealed: &[u8], ids: &[age::x25519::Identity]) -> Vec<u8> {
    use std::io::Read;
    let decryptor = age::Decryptor::new(sealed).unwrap();
    let mut reader = decryptor.decrypt(ids.iter().map(|i| i as &dyn age::Identity)).unwrap();
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    out
}

/// `ffprobe -v error -of csv=p=0 ARGS FILE`, trimmed.
pub fn ffprobe(file: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "csv=p=0"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The presentation times (seconds) of the first video stream's frames, sorted.
pub fn video_frame_times(file: &Path) -> Vec<f64> {
    let text = ffprobe(file, &["-select_streams", "v:0", "-show_entries", "packet=pts_time"]);
    let mut t: Vec<f64> =
        text.lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t
}

/// Presentation-time gaps above 1.5 frame durations (the frame duration being the median
/// spacing): each as (time of the frame before it, gap) in seconds.
pub fn frame_gaps(times: &[f64]) -> (f64, Vec<(f64, f64)>) {
    let mut d: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_by(|a, b| a.total_cmp(b));
    let frame = d.get(d.len() / 2).copied().unwrap_or(0.0);
    let gaps = times
        .windows(2)
        .filter(|w| w[1] - w[0] > 1.5 * frame)
        .map(|w| (w[0], w[1] - w[0]))
        .collect();
    (frame, gaps)
}

/// Samples of a recording's plaintext: 48-byte windows from inside its Matroska blocks
/// (compressed video, past the container's own bytes), from every segment. Any of them
/// found in a file would mean plaintext reached that file.
pub fn plaintext_samples(plain: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Skip the first 4 KB (EBML header, tracks: the same in every WebM of this browser).
    let mut at = 4096;
    while at + 48 <= plain.len() {
        let w = &plain[at..at + 48];
        // Windows with repeating bytes could be anything; keep the high-entropy ones.
        let mut distinct = [false; 256];
        w.iter().for_each(|&b| distinct[usize::from(b)] = true);
        if distinct.iter().filter(|&&x| x).count() > 30 {
            out.push(w.to_vec());
        }
        at += 997;
    }
    out
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// The files under `dir` holding any of `samples`.
pub fn files_holding(dir: &Path, samples: &[Vec<u8>]) -> Vec<PathBuf> {
    let finders: Vec<memchr::memmem::Finder<'_>> =
        samples.iter().map(memchr::memmem::Finder::new).collect();
    files_under(dir)
        .into_iter()
        .filter(|f| {
            let bytes = std::fs::read(f).unwrap_or_default();
            finders.iter().any(|fd| fd.find(&bytes).is_some())
        })
        .collect()
}

/// The verdict and the check codes of a JSON report.
pub fn verdict(report: &serde_json::Value) -> (String, Vec<String>) {
    let codes = report["checks"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["code"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    (report["verdict"].as_str().unwrap_or_default().to_string(), codes)
}
