//! Evidence bundles of real recordings: a clip made with the ffmpeg tool, sealed by the
//! real binary (`custody import`), then receipted and logged by a test server key the way
//! a live upload would leave them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use custody_format::record::{Record, SegmentRecord, SignedRecord};

use crate::bundles::{self, Bundle};
use crate::common::{events, recording_id, segment_records, Env};

pub struct Real {
    pub env: Env,
    pub clip: PathBuf,
    pub records: Vec<SignedRecord>,
    pub segments: Vec<SegmentRecord>,
    pub bundle: Bundle,
}

impl Real {
    /// Imports `clip` and builds its bundle, receipted by the test key "server".
    pub fn import(clip: &Path) -> Real {
        let env = Env::new();
        let out = env.run(&["import", "--json", "-r", &env.recipient, clip.to_str().unwrap()]);
        Real::from_output(env, clip, out)
    }

    /// Records `seconds` of a synthetic camera live (`custody record`) and builds its
    /// bundle, receipted by the test key "server".
    pub fn record(seconds: u32) -> Real {
        let env = Env::new();
        let out = env.record_synthetic(seconds, &[]);
        Real::from_output(env, Path::new("lavfi"), out)
    }

    fn from_output(env: Env, clip: &Path, out: std::process::Output) -> Real {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let id = recording_id(&events(&out.stdout)).unwrap();
        let vault = env.open_vault();
        let records = vault.records(&id).unwrap();
        let segments = segment_records(&records);
        let mut sealed = BTreeMap::new();
        for s in &segments {
            sealed.insert(s.seq, std::fs::read(vault.segment_path(&id, s.seq)).unwrap());
        }
        let Record::Header(h) = records[0].record() else { panic!("no header") };
        let device = h.device_key;
        let bundle = bundles::receipted(records.clone(), sealed, device, "server")
            .bundle_for(device, "server");
        Real { env, clip: clip.to_path_buf(), records, segments, bundle }
    }

    /// The same recording without its end record (and its receipt and log entry): what a
    /// seized device leaves.
    pub fn cut_off(&self) -> Bundle {
        let Record::Header(h) = self.records[0].record() else { panic!("no header") };
        let records = self.records[..self.records.len() - 1].to_vec();
        let sealed = bundles::Bundle { files: self.bundle.files.clone() };
        let seg: BTreeMap<u64, Vec<u8>> = self
            .segments
            .iter()
            .map(|s| (s.seq, sealed.files[&custody_format::bundle::segment_path(s.seq)].clone()))
            .collect();
        bundles::receipted(records, seg, h.device_key, "server").bundle_for(h.device_key, "server")
    }

    pub fn dir(&self) -> &Path {
        self.env.dir.path()
    }

    /// Writes `bundle` under the test's directory as `name`.
    pub fn write(&self, bundle: &Bundle, name: &str) -> PathBuf {
        let path = self.dir().join(name);
        bundle.write(&path);
        path
    }

    pub fn server() -> String {
        custody_format::testkit::public("server").to_string()
    }

    /// `custody ARGS`, with the case key as --identity and the test server as --trust.
    pub fn run_with_keys(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<&str> = args.to_vec();
        let server = Real::server();
        let key = self.env.case_key.to_str().unwrap().to_string();
        all.extend_from_slice(&["--identity", &key, "--trust", &server]);
        self.env.run(&all)
    }

    /// Total media time of the segments, seconds.
    pub fn media_seconds(&self) -> f64 {
        self.segments.iter().map(|s| (s.media_end_us - s.media_start_us) as f64 / 1e6).sum()
    }
}

/// Runs the ffmpeg tool; panics with its error output if it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `ffprobe` output for `entries` of `path`'s first video stream (or the format).
pub fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
