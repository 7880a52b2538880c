//! A temp-dir harness for driving the real `custody` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use custody_format::ids::RecordingId;
use custody_format::record::{Record, SignedRecord};
use custody_vault::store::Vault;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub vault: PathBuf,
    pub case_key: PathBuf,
    pub recipient: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_custody")
}

impl Env {
    /// A fresh vault with a device key, and a case key whose recipient is returned.
    pub fn new() -> Env {
        Env::with_vault_in(None)
    }

    pub fn with_vault_in(vault: Option<PathBuf>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let vault = vault.unwrap_or_else(|| dir.path().join("vault"));
        let case_key = dir.path().join("case.agekey");
        let env = Env { vault, case_key, recipient: String::new(), dir };
        let out = env.run(&["keygen"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out =
            env.run(&["keygen", "--recipient-key", "--json", "-o", env.case_key.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Env { recipient: v["recipient"].as_str().unwrap().to_string(), ..env }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("CUSTODY_VAULT", &self.vault).env_remove("CUSTODY_PASSPHRASE");
        // A login saved on the machine running the tests must not change what they see.
        c.env("CUSTODY_CONFIG_DIR", self.dir.path().join("config"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Records `seconds` of media from a synthetic camera (as fast as it can be made).
    pub fn record_synthetic(&self, seconds: u32, extra: &[&str]) -> Output {
        let input = format!("testsrc2=size=320x240:rate=25:duration={seconds}");
        let mut args =
            vec!["record", "--json", "--format", "lavfi", "--input", &input, "-r", &self.recipient];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn open_vault(&self) -> Vault {
        Vault::open(&self.vault).unwrap().0
    }

    pub fn identities(&self) -> Vec<age::x25519::Identity> {
        custody_vault::keys::parse_identities(&std::fs::read_to_string(&self.case_key).unwrap())
    }
}

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `custody serve`, stopped when dropped.
pub struct Served {
    _child: Killed,
    /// Where it listens, as it said (`https://127.0.0.1:PORT`).
    pub url: String,
}

/// `custody serve` on `listen` (port 0: any) with the data in `data` and `env`'s case
/// recipient, once it has said where it listens.
pub fn serve(env: &Env, data: &Path, listen: &str) -> Served {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", listen, "--recipient", &env.recipient, "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let url = first.strip_prefix("Listening on ").unwrap_or_else(|| panic!("{first}")).to_string();
    Served { _child: child, url }
}

/// The stdout of a command that must have succeeded (else its output, in the panic).
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The token of an `admin` command run on the server data in `data` (`--json` output).
fn admin_token(data: &Path, args: &[&str]) -> String {
    let out = Command::new(bin()).arg("admin").args(args).arg("--data").arg(data).output();
    let v: serde_json::Value = serde_json::from_str(&ok(&out.unwrap())).unwrap();
    v["token"].as_str().unwrap().to_string()
}

/// A one-time enrollment token for a device labelled `label` (`custody admin enroll-token`).
pub fn enroll_token(data: &Path, label: &str) -> String {
    admin_token(data, &["enroll-token", "--json", "--label", label])
}

/// A new member's API token (`custody admin member add`); `role` is `admin` or `member`.
pub fn add_member(data: &Path, name: &str, role: &str) -> String {
    admin_token(data, &["member", "add", "--json", "--role", role, name])
}

/// The JSON lines a `--json` command printed.
pub fn events(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn recording_id(events: &[serde_json::Value]) -> Option<RecordingId> {
    events
        .iter()
        .find(|e| e["event"] == "started")
        .map(|e| RecordingId::parse(e["recording"].as_str().unwrap()).unwrap())
}

pub fn segment_records(records: &[SignedRecord]) -> Vec<custody_format::record::SegmentRecord> {
    records
        .iter()
        .filter_map(|r| match r.record() {
            Record::Segment(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Makes a test clip with the ffmpeg tool: H.264 (keyframe every `gop_s` seconds) + AAC.
pub fn make_clip(path: &Path, seconds: u32, gop_s: u32) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate=25:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={seconds}"))
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g"])
        .arg((gop_s * 25).to_string())
        .args(["-c:a", "aac", "-shortest"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The header of a recording made by the capture page in `container`, sealed to `env`'s
/// case recipient, its streams those the first segment `first` holds (as the page states
/// them), under `device`.
pub fn page_header(
    env: &Env,
    container: custody_format::record::Container,
    first: &[u8],
    device: &ed25519_dalek::SigningKey,
    input: &str,
) -> custody_format::record::RecordingHeader {
    let first = custody_capture::browser_segment(container, first).unwrap();
    let mut header = custody_format::testkit::header(14, device);
    header.container = container;
    header.origin = custody_format::record::Origin::Live;
    header.input = input.into();
    header.recipients = vec![env.recipient.clone()];
    header.software = "custody capture page (test)".into();
    header.streams = first
        .streams
        .iter()
        .map(|s| custody_format::record::StreamInfo {
            kind: s.kind,
            codec: s.codec.clone(),
            width: s.width,
            height: s.height,
            frame_rate: (s.frame_rate.0.max(0) as u32, s.frame_rate.1.max(1) as u32),
            sample_rate: s.sample_rate,
            channels: s.channels,
            time_base: (s.time_base.0 as u32, s.time_base.1 as u32),
        })
        .collect();
    header
}

/// A command's stdout as JSON; on failure the panic shows what it printed.
pub fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Records live from a real-time synthetic camera with uploads on, waits (at most 60 s per
/// receipt) until `segments` segments are receipted, then kills the recorder outright
/// (SIGKILL): a device seized mid-recording.
pub fn record_live_then_kill(env: &Env, segments: u32) {
    let mut child = env
        .cmd()
        .args(["record", "--json", "--format", "lavfi", "--input"])
        .arg("testsrc2=size=320x240:rate=25,realtime")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut receipted = 0;
    while receipted < segments {
        let line =
            rx.recv_timeout(std::time::Duration::from_secs(60)).expect("live receipts within 60 s");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "receipted" && v["seq"].as_u64().unwrap() >= 1 {
            receipted += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// The text a QR code drawn in half blocks (`▀ ▄ █`, space; two module rows a line, as
/// `custody admin enroll-token --qr` and `custody record`'s waiting screen draw it) holds,
/// decoded by rqrr, a decoder independent of the encoder, from a greyscale picture as a
/// camera would see it. Anything else on a line, or a short line, is light.
pub fn decode_qr<S: AsRef<str>>(lines: &[S]) -> String {
    // Pixels per module in the picture handed to the decoder.
    const SCALE: usize = 6;
    let mut m: Vec<Vec<bool>> = Vec::new();
    for line in lines {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.as_ref().chars() {
            let (t, b) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            top.push(t);
            bottom.push(b);
        }
        m.push(top);
        m.push(bottom);
    }
    let width = m.iter().map(Vec::len).max().unwrap_or(0);
    let (w, h) = (width * SCALE, m.len() * SCALE);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        if m[y / SCALE].get(x / SCALE).copied().unwrap_or(false) {
            0
        } else {
            255
        }
    });
    let grids = img.detect_grids();
    assert_eq!(
        grids.len(),
        1,
        "one QR code in {:?}",
        lines.iter().map(AsRef::as_ref).collect::<Vec<_>>()
    );
    grids[0].decode().expect("the QR code decodes").1
}
