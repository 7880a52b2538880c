//! The capture page's segmenter (web/src/media, JavaScript) against capture's
//! `browser_segment`: for WebM and fragmented MP4 made by the ffmpeg CLI the way browsers
//! write them, every segment the page would seal states the packet counts, video frames
//! and packet digest that FFmpeg-based Rust computes from that segment's plaintext alone,
//! which is what `custody verify --identity` checks. The page's side runs through its
//! command-line tool, `node web/tools/segment.mjs`; without node (or its npm packages,
//! `cargo xtask web` installs them) the test says so and checks nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ffmpeg, TempDir};
use custody_capture::{browser_segment, Container};
use custody_format::digest::MediaKind;

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn node_ready() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    node && web_dir().join("node_modules/@noble/hashes").is_dir()
}

/// Runs the page's segmenter over `file` in 4 KiB chunks, writing each segment into `out`.
fn segment_with_node(file: &Path, out: &Path) -> serde_json::Value {
    let o = Command::new("node")
        .arg(web_dir().join("tools/segment.mjs"))
        .arg(file)
        .args(["--chunk", "4096", "--write"])
        .arg(out)
        .output()
        .expect("node runs");
    assert!(o.status.success(), "segment.mjs failed: {}", String::from_utf8_lossy(&o.stdout));
    serde_json::from_slice(&o.stdout).expect("segment.mjs prints JSON")
}

fn check(dir: &TempDir, name: &str, container: Container, args: &[&str]) {
    let src = dir.join(name);
    let mut all = vec!["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"];
    all.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "7"]);
    all.extend(args);
    let src_str = src.to_str().unwrap();
    all.push(src_str);
    ffmpeg(&all);
    let out = dir.join(&format!("{name}.segments"));
    let json = segment_with_node(&src, &out);
    let code = match container {
        Container::Webm => 3,
        _ => 4,
    };
    assert_eq!(json["container"], code, "{name}: container code");
    let segments = json["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3, "{name}: {} segments of 7 s", segments.len());
    for s in segments {
        let bytes = std::fs::read(s["file"].as_str().unwrap()).unwrap();
        let rust = browser_segment(container, &bytes).expect("capture reads the segment");
        assert_eq!(rust.streams[0].kind, MediaKind::Video, "{name}: video is the first stream");
        let counts: Vec<u64> =
            s["streamPackets"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        let seq = &s["seq"];
        assert_eq!(counts, rust.packet_counts, "{name} segment {seq}: packet counts");
        assert_eq!(
            s["videoFrames"].as_u64(),
            Some(rust.video_frames),
            "{name} segment {seq}: frames"
        );
        assert_eq!(
            s["packetDigest"].as_str().unwrap(),
            hex::encode(rust.packet_digest.0),
            "{name} segment {seq}: packet digest"
        );
    }
}

#[test]
fn the_pages_segments_digest_as_capture_reads_them() {
    if !node_ready() {
        eprintln!("skipped: node or web/node_modules is missing (cargo xtask web installs them)");
        return;
    }
    let dir = TempDir::new("web-segmenter");
    let vp8 = ["-c:v", "libvpx", "-g", "60", "-deadline", "realtime", "-cpu-used", "8"];
    let opus = ["-c:a", "libopus", "-b:a", "32k"];
    let frag = ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4"];
    let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "60"];
    let live = ["-live", "1", "-f", "webm"];
    check(&dir, "vp8.webm", Container::Webm, &[&vp8[..], &opus, &live].concat());
    let vp9 = ["-c:v", "libvpx-vp9", "-g", "60", "-deadline", "realtime", "-cpu-used", "8"];
    check(&dir, "vp9.webm", Container::Webm, &[&vp9[..], &opus, &live].concat());
    check(&dir, "vp8-sized.webm", Container::Webm, &[&vp8[..], &opus, &["-f", "webm"]].concat());
    check(&dir, "h264.mkv", Container::Webm, &[&x264[..], &opus, &["-f", "matroska"]].concat());
    check(&dir, "h264-opus.mp4", Container::SelfContainedMp4, &[&x264[..], &opus, &frag].concat());
    // Audio listed first, as Chromium's muxer does when the audio encoder gives output
    // first: counts and digest still follow the canonical order (video, then audio).
    let audio_first = ["-map", "1:a", "-map", "0:v"];
    check(
        &dir,
        "vp8-audio-first.webm",
        Container::Webm,
        &[&audio_first[..], &vp8, &opus, &live].concat(),
    );
    let aac = ["-c:a", "aac"];
    check(&dir, "h264-aac.mp4", Container::SelfContainedMp4, &[&x264[..], &aac, &frag].concat());
}

#[test]
fn a_segment_counts_and_digests_its_streams_in_the_canonical_order_whatever_the_files_order() {
    let dir = TempDir::new("web-segmenter-order");
    let video_first = dir.join("video-first.webm");
    let audio_first = dir.join("audio-first.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "3",
        "-c:v",
        "libvpx",
        "-g",
        "30",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-c:a",
        "libopus",
        "-f",
        "webm",
        video_first.to_str().unwrap(),
    ]);
    // The same packets, the tracks listed the other way round.
    ffmpeg(&[
        "-i",
        video_first.to_str().unwrap(),
        "-map",
        "0:a",
        "-map",
        "0:v",
        "-c",
        "copy",
        "-f",
        "webm",
        audio_first.to_str().unwrap(),
    ]);
    let a = browser_segment(Container::Webm, &std::fs::read(&video_first).unwrap()).unwrap();
    let b = browser_segment(Container::Webm, &std::fs::read(&audio_first).unwrap()).unwrap();
    assert_eq!(b.streams[0].kind, MediaKind::Video);
    assert_eq!(a.packet_counts, b.packet_counts);
    assert_eq!(a.video_frames, b.video_frames);
    assert_eq!(a.packet_digest, b.packet_digest, "one digest whatever the file's track order");
}
