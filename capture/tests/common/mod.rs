//! Test harness: media generated with the `ffmpeg` CLI into a temp dir, and decoders that
//! open segments from memory.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use custody_capture::{Capture, End, Event, Segment, Settings, Source, Started};
use ffmpeg_next as ff;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "custody-capture-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the ffmpeg CLI quietly and insists it succeeds.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg CLI runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 320x240 25 fps H.264 + 44.1 kHz AAC clip of `secs` seconds, a keyframe every `gop`
/// frames (no scene-cut keyframes), as `name` (container from the extension).
pub fn clip(dir: &TempDir, name: &str, secs: u32, gop: u32) -> PathBuf {
    let out = dir.join(name);
    let secs = secs.to_string();
    let g = gop.to_string();
    let params = format!("keyint={gop}:min-keyint={gop}:scenecut=0");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &secs,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        &g,
        "-x264-params",
        &params,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        out.to_str().unwrap(),
    ]);
    out
}

/// A 30 fps H.264 + AAC clip with every third and seventh frame dropped, so its
/// timestamps are not evenly spaced (a variable frame rate), a keyframe every 40 frames.
pub fn vfr_clip(dir: &TempDir, name: &str, secs: u32) -> PathBuf {
    let out = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=44100",
        "-t",
        &secs.to_string(),
        "-vf",
        "select='not(eq(mod(n\\,3)\\,1))*not(eq(mod(n\\,7)\\,2))'",
        "-vsync",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-x264-params",
        "keyint=40:min-keyint=40:scenecut=0",
        "-c:a",
        "aac",
        out.to_str().unwrap(),
    ]);
    out
}

/// Runs a capture to its end and returns what it reported.
pub fn record(source: Source, settings: Settings) -> (Option<Started>, Vec<Segment>, End) {
    let capture = Capture::start(source, settings);
    collect(&capture, Duration::from_secs(60))
}

/// Takes events until the end event (each within `per_event`).
pub fn collect(capture: &Capture, per_event: Duration) -> (Option<Started>, Vec<Segment>, End) {
    let mut started = None;
    let mut segments = Vec::new();
    for _ in 0..100_000 {
        match capture.next_event_timeout(per_event).expect("an event in time") {
            Event::Started(s) => started = Some(s),
            Event::Segment(s) => segments.push(s),
            Event::End(e) => return (started, segments, e),
            other => panic!("unexpected event {other:?}"),
        }
    }
    panic!("no end event");
}

/// What decoding a whole media stream found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Decoded {
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Presentation span of the video frames, seconds (first to last + one frame).
    pub video_span: f64,
    pub decode_errors: u64,
}

/// Opens `bytes` from memory (as the vault would) and decodes every frame.
pub fn decode_bytes(bytes: &[u8]) -> Decoded {
    let io = ff::format::context::StreamIo::from_read(Cursor::new(bytes.to_vec())).unwrap();
    let input = ff::format::input_from_stream(io, None, None).expect("segment opens alone");
    decode(input)
}

pub fn decode_file(path: &Path) -> Decoded {
    decode(ff::format::input(path).unwrap())
}

fn decode(mut input: ff::format::context::Input) -> Decoded {
    let mut d = Decoded::default();
    let v = input.streams().best(ff::media::Type::Video).map(|s| {
        let ctx = ff::codec::context::Context::from_parameters(s.parameters()).unwrap();
        (s.index(), s.time_base(), ctx.decoder().video().unwrap())
    });
    let a = input.streams().best(ff::media::Type::Audio).map(|s| {
        let ctx = ff::codec::context::Context::from_parameters(s.parameters()).unwrap();
        (s.index(), ctx.decoder().audio().unwrap())
    });
    let (mut v, mut a) = (v, a);
    let mut pts = Vec::new();
    let mut frame = ff::frame::Video::empty();
    let mut aframe = ff::frame::Audio::empty();
    let mut rate = 25.0;
    for (stream, packet) in input.packets() {
        if let Some((idx, _, dec)) = v.as_mut() {
            if stream.index() == *idx {
                rate = f64::from(stream.avg_frame_rate()).max(1.0);
                if dec.send_packet(&packet).is_err() {
                    d.decode_errors += 1;
                }
                while dec.receive_frame(&mut frame).is_ok() {
                    d.video_frames += 1;
                    pts.push(frame.pts().or(frame.timestamp()).unwrap_or(0));
                }
            }
        }
        if let Some((idx, dec)) = a.as_mut() {
            if stream.index() == *idx {
                if dec.send_packet(&packet).is_err() {
                    d.decode_errors += 1;
                }
                while dec.receive_frame(&mut aframe).is_ok() {
                    d.audio_frames += 1;
                }
            }
        }
    }
    if let Some((_, tb, dec)) = v.as_mut() {
        let _ = dec.send_eof();
        while dec.receive_frame(&mut frame).is_ok() {
            d.video_frames += 1;
            pts.push(frame.pts().or(frame.timestamp()).unwrap_or(0));
        }
        if let (Some(lo), Some(hi)) = (pts.iter().min(), pts.iter().max()) {
            d.video_span = (hi - lo) as f64 * f64::from(*tb) + 1.0 / rate;
        }
    }
    if let Some((_, dec)) = a.as_mut() {
        let _ = dec.send_eof();
        while dec.receive_frame(&mut aframe).is_ok() {
            d.audio_frames += 1;
        }
    }
    d
}

/// Quiets FFmpeg's logging for the test process.
pub fn quiet() {
    ff::init().unwrap();
    ff::util::log::set_level(ff::util::log::Level::Error);
}

/// A loopback port that was free a moment ago.
pub fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }
}

/// Waits (bounded) until something in this machine listens on `port`: a bound UDP socket
/// or a TCP socket in LISTEN state, as the kernel reports in /proc/net. The capture binds
/// inside FFmpeg, so this is the only way to know when a sender may start.
pub fn wait_listening(port: u16, udp: bool) {
    let needle = format!(":{port:04X} ");
    let file = if udp { "/proc/net/udp" } else { "/proc/net/tcp" };
    for _ in 0..1000 {
        let table = std::fs::read_to_string(file).unwrap_or_default();
        let found = table.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.get(1).is_some_and(|local| format!("{local} ").ends_with(&needle))
                && (udp || cols.get(3) == Some(&"0A"))
        });
        if found {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on port {port}");
}

/// The `ffmpeg` CLI playing a phone app: streams `input` in real time to `url`.
pub struct Sender(pub std::process::Child);

impl Sender {
    pub fn start(input: &Path, format: &str, url: &str) -> Sender {
        Sender::start_with(input, format, url, &[])
    }

    pub fn start_with(input: &Path, format: &str, url: &str, extra: &[&str]) -> Sender {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(input)
            .args(["-c", "copy"])
            .args(extra)
            .args(["-f", format, url])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ffmpeg sender starts");
        Sender(child)
    }

    /// Kills the sender mid-stream (a phone losing its connection).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.kill();
    }
}
