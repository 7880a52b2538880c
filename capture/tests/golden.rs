//! The bytes of whole multi-segment captures, pinned: a small file in `tests/data` captured
//! into MPEG-TS (H.264 from MP4 through `annexb`, AAC) and into fragmented MP4 must give, segment
//! for segment, the lengths, SHA-256s, packet digests and packet counts listed in
//! `tests/data/golden.txt`. The other capture tests check that segments decode, add up and
//! are hashed correctly; this one says that a change to the muxing path (the sink, the AVIO
//! buffer, the bitstream filters) left every byte as it was.
//!
//! The muxers' bytes are libavformat's: with another libavformat than the one the list was
//! made with, only what does not depend on the muxer (packet digests and counts) is
//! compared, and the test says so. WebM segments cannot be pinned this way (the Matroska
//! muxer writes a random segment UID into every file); the test of WebM here checks that
//! each of its segments, written by a muxer opened afresh on the same in-place buffer, is a
//! complete file that decodes alone. Regenerate the list (after a change that is meant to
//! change the bytes, saying why in the commit) with
//! `CUSTODY_REGENERATE_GOLDEN=1 cargo test -p custody-capture --test golden`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use custody_capture::{Container, EndReason, Settings, Source};
use sha2::{Digest, Sha256};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The libavformat this test runs with, as `major.minor.micro`.
fn libavformat() -> String {
    // SAFETY: a plain query of the linked library's version.
    let v = unsafe { ffmpeg_next::ffi::avformat_version() };
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// One line per segment: `<case> <seq> <length> <sha256> <packet digest> <packet counts>`.
fn capture(case: &str, file: &str, container: Container) -> Vec<String> {
    let settings = Settings { container, ..Settings::default() };
    let (started, segments, end) = record(Source::file(data(file)), settings);
    assert_eq!(end.reason, EndReason::InputEnded, "{case}: {end:?}");
    assert_eq!(started.map(|s| s.container), Some(container), "{case}");
    assert!(segments.len() >= 3, "{case}: a capture of several segments");
    segments
        .iter()
        .map(|s| {
            assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&s.bytes)), "{case} {}", s.seq);
            let counts: Vec<String> = s.packet_counts.iter().map(u64::to_string).collect();
            format!(
                "{case} {} {} {} {} {}",
                s.seq,
                s.len(),
                hex::encode(s.sha256),
                hex::encode(s.packet_digest.0),
                counts.join(",")
            )
        })
        .collect()
}

/// The fields that do not depend on the muxer: case, seq, packet digest, counts.
fn media_fields(line: &str) -> Vec<&str> {
    let f: Vec<&str> = line.split(' ').collect();
    [0, 1, 4, 5].iter().filter_map(|&i| f.get(i).copied()).collect()
}

#[test]
fn whole_captures_are_byte_for_byte_as_pinned() {
    quiet();
    let mut got = Vec::new();
    got.extend(capture("mpegts", "golden-h264-aac.mp4", Container::MpegTs));
    got.extend(capture("fmp4", "golden-h264-aac.mp4", Container::FragmentedMp4));
    let list = data("golden.txt");
    let version = libavformat();
    if std::env::var_os("CUSTODY_REGENERATE_GOLDEN").is_some() {
        let mut text = String::from(
            "# Segments of tests/data/golden-h264-aac.mp4 captured with the default settings into\n\
             # MPEG-TS (mpegts) and fragmented MP4 (fmp4): case, seq, length, SHA-256, packet\n\
             # digest, packets per stream. Checked by tests/golden.rs, which says how to\n\
             # regenerate it.\n",
        );
        text.push_str(&format!("libavformat {version}\n"));
        for line in &got {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&list, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&list).unwrap();
    let mut lines = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#'));
    let made_with = lines.next().and_then(|l| l.strip_prefix("libavformat ")).unwrap();
    let expected: Vec<&str> = lines.collect();
    if made_with == version {
        assert_eq!(got, expected, "segments differ from tests/data/golden.txt");
    } else {
        eprintln!(
            "golden: the list was made with libavformat {made_with}, this is {version}: \
             comparing packet digests and counts only, not the muxed bytes"
        );
        let got: Vec<_> = got.iter().map(|l| media_fields(l)).collect();
        let expected: Vec<_> = expected.iter().map(|l| media_fields(l)).collect();
        assert_eq!(got, expected, "packet digests differ from tests/data/golden.txt");
    }
}

/// WebM's every segment is a file of its own: at a cut the muxer ends the file and a new
/// one starts on the same sink (its AVIO window handed back and a new context attached).
/// Every segment starts with its own EBML header, decodes alone frame for frame, and two
/// captures of the same file agree on everything but the random segment UIDs.
#[test]
fn webm_segments_are_whole_files_written_in_place() {
    quiet();
    let dir = TempDir::new("golden-webm");
    let src = dir.join("src.webm");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "5",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "25",
        "-c:a",
        "libopus",
        src.to_str().unwrap(),
    ]);
    let settings = Settings { container: Container::Webm, ..Settings::default() };
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let (_, segments, end) = record(Source::file(&src), settings.clone());
            assert_eq!(end.reason, EndReason::InputEnded, "{end:?}");
            segments
        })
        .collect();
    let segments = &runs[0];
    assert!(segments.len() >= 3, "{} segments of 5 s", segments.len());
    let mut frames = 0;
    for s in segments {
        assert_eq!(&s.bytes[..4], &[0x1a, 0x45, 0xdf, 0xa3], "segment {} is an EBML file", s.seq);
        assert_eq!(s.sha256, <[u8; 32]>::from(Sha256::digest(&s.bytes)), "segment {}", s.seq);
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.decode_errors, 0, "segment {}", s.seq);
        assert_eq!(d.video_frames, s.video_frames, "segment {} decodes alone", s.seq);
        frames += d.video_frames;
    }
    assert_eq!(frames, 125);
    let fields = |segments: &[custody_capture::Segment]| -> Vec<_> {
        segments.iter().map(|s| (s.len(), s.packet_digest, s.packet_counts.clone())).collect()
    };
    assert_eq!(fields(&runs[0]), fields(&runs[1]), "two captures of the same file");
}
