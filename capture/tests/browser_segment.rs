//! Browser segments (containers 3, 4, 5; docs/format.md 6.4) made by the ffmpeg CLI the way
//! browsers make them: what `browser_segment` computes equals an independent count and
//! digest from ffprobe's own packet dump, and joining segments with `remux_browser` gives
//! one file that holds exactly their packets.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ffmpeg, TempDir};
use custody_capture::{
    browser_segment, digest_by_counts, remux_browser, remux_format, BrowserError, Container,
    MediaKind, TimedSegment,
};
use custody_format::digest::{DigestStream, Framing, PacketDigester};

fn ffprobe_json(path: &Path, what: &str) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", what, "-show_data", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// The bytes of an ffprobe `-show_data` hex dump.
fn dump_bytes(dump: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in dump.lines() {
        let Some((_, rest)) = line.split_once(": ") else { continue };
        let hex_part = rest.split("  ").next().unwrap_or("");
        out.extend(hex::decode(hex_part.replace(' ', "")).expect("hex dump"));
    }
    out
}

/// Packet counts and packet digest of every packet of `path`, from ffprobe's dump alone.
fn oracle(path: &Path) -> (Vec<u64>, [u8; 32]) {
    let streams = ffprobe_json(path, "-show_streams");
    let streams: Vec<DigestStream> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let codec = s["codec_name"].as_str().unwrap().to_string();
            let kind = match s["codec_type"].as_str().unwrap() {
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio,
                _ => MediaKind::Other,
            };
            let extradata = s["extradata"].as_str().map(dump_bytes).unwrap_or_default();
            let framing = Framing::from_extradata(&codec, &extradata);
            DigestStream { kind, codec, framing }
        })
        .collect();
    let packets = ffprobe_json(path, "-show_packets");
    let mut d = PacketDigester::new(&streams);
    for p in packets["packets"].as_array().unwrap() {
        let i = p["stream_index"].as_u64().unwrap() as usize;
        let key = p["flags"].as_str().unwrap().starts_with('K');
        d.push(i, key, &dump_bytes(p["data"].as_str().unwrap_or("")));
    }
    let counts = d.packet_counts();
    (counts, d.finish().0)
}

fn has_encoder(name: &str) -> bool {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-encoders"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == name)
}

/// A WebM or MP4 of `secs` seconds from lavfi, 20 fps like the browser's fake camera, a
/// keyframe every second.
fn make(dir: &TempDir, name: &str, secs: &str, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join(name);
    let mut all = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=20",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        secs,
        "-g",
        "20",
    ];
    all.extend_from_slice(args);
    all.push(out.to_str().unwrap());
    ffmpeg(&all);
    out
}

fn check_against_oracle(container: Container, path: &Path, video: &str, audio: &str) {
    let bytes = std::fs::read(path).unwrap();
    let got = browser_segment(container, &bytes).unwrap();
    let (counts, digest) = oracle(path);
    assert_eq!(got.streams.len(), 2);
    assert_eq!(got.streams[0].codec, video);
    assert_eq!(got.streams[1].codec, audio);
    assert_eq!(got.streams[0].kind, MediaKind::Video);
    assert_eq!((got.streams[0].width, got.streams[0].height), (160, 120));
    assert_eq!(got.streams[1].sample_rate, 48_000);
    assert_eq!(got.packet_counts, counts, "{path:?}");
    assert!(counts[0] >= 39 && counts[1] > 50, "{counts:?}");
    assert_eq!(got.video_frames, counts[0]);
    assert_eq!(got.packet_digest.0, digest, "{path:?}");
    if container == Container::Webm {
        assert_eq!(got.streams[0].time_base, (1, 1000));
    }
}

#[test]
fn webm_segments_with_vp8_vp9_and_opus_digest_like_ffprobe_sees_them() {
    let dir = TempDir::new("browser-webm");
    let vp8 = make(&dir, "vp8.webm", "2", &["-c:v", "libvpx", "-c:a", "libopus"]);
    check_against_oracle(Container::Webm, &vp8, "vp8", "opus");
    let vp9 = make(
        &dir,
        "vp9.webm",
        "2",
        &["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"],
    );
    check_against_oracle(Container::Webm, &vp9, "vp9", "opus");
}

#[test]
fn webm_with_av1_digests_like_ffprobe_sees_it() {
    let args: &[&str] = if has_encoder("libsvtav1") {
        &["-c:v", "libsvtav1", "-preset", "12", "-c:a", "libopus"]
    } else if has_encoder("libaom-av1") {
        &["-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "1", "-c:a", "libopus"]
    } else {
        eprintln!("no AV1 encoder in this FFmpeg: AV1 not tested");
        return;
    };
    let dir = TempDir::new("browser-av1");
    let av1 = make(&dir, "av1.webm", "2", args);
    check_against_oracle(Container::Webm, &av1, "av1", "opus");
}

#[test]
fn fragmented_mp4_with_opus_and_with_aac_digests_like_ffprobe_sees_it() {
    let dir = TempDir::new("browser-mp4");
    // As Safari and Chromium's MP4 mode write it: an init segment, then moof+mdat fragments.
    let frag = ["-movflags", "frag_keyframe+empty_moov+default_base_moof"];
    for (name, audio, codec) in [("opus.mp4", "libopus", "opus"), ("aac.mp4", "aac", "aac")] {
        let mut args = vec!["-c:v", "libx264", "-preset", "ultrafast", "-c:a", audio];
        args.extend_from_slice(&frag);
        let mp4 = make(&dir, name, "2", &args);
        check_against_oracle(Container::SelfContainedMp4, &mp4, "h264", codec);
    }
}

#[test]
fn a_photo_is_one_packet_of_the_whole_file() {
    let dir = TempDir::new("browser-photo");
    let jpg = dir.join("p.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=1",
        "-frames:v",
        "1",
        jpg.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&jpg).unwrap();
    let got = browser_segment(Container::Photo, &bytes).unwrap();
    assert_eq!((got.streams[0].width, got.streams[0].height), (320, 180));
    assert_eq!(got.streams[0].codec, "mjpeg");
    assert_eq!(got.packet_counts, vec![1]);
    assert_eq!(got.video_frames, 1);
    let mut d = PacketDigester::new(&[DigestStream {
        kind: MediaKind::Video,
        codec: "mjpeg".into(),
        framing: Framing::Whole,
    }]);
    d.push(0, true, &bytes);
    assert_eq!(got.packet_digest, d.finish());
    // One byte changed in the picture data changes the digest.
    let mut other = bytes.clone();
    let n = other.len() - 10;
    other[n] ^= 1;
    assert_ne!(browser_segment(Container::Photo, &other).unwrap().packet_digest, got.packet_digest);
    assert!(matches!(
        browser_segment(Container::Photo, b"GIF89a"),
        Err(BrowserError::Format { .. })
    ));
}

#[test]
fn a_file_that_is_not_the_named_container_is_refused() {
    let dir = TempDir::new("browser-wrong");
    let mp4 = make(
        &dir,
        "x.mp4",
        "1",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-movflags",
            "frag_keyframe+empty_moov",
        ],
    );
    let bytes = std::fs::read(&mp4).unwrap();
    assert!(matches!(browser_segment(Container::Webm, &bytes), Err(BrowserError::Format { .. })));
    assert!(browser_segment(Container::MpegTs, &bytes).is_err());
    assert!(browser_segment(Container::Webm, b"not media at all").is_err());
}

#[test]
fn a_changed_block_changes_the_digest_but_not_the_counts() {
    let dir = TempDir::new("browser-flip");
    let vp8 = make(&dir, "vp8.webm", "1", &["-c:v", "libvpx", "-c:a", "libopus"]);
    let bytes = std::fs::read(&vp8).unwrap();
    let good = browser_segment(Container::Webm, &bytes).unwrap();
    // A byte near the end of the file lies in the last Cluster's block payload.
    let mut bad = bytes.clone();
    let n = bad.len() - 40;
    bad[n] ^= 0x55;
    let changed = browser_segment(Container::Webm, &bad).unwrap();
    assert_eq!(changed.packet_counts, good.packet_counts);
    assert_ne!(changed.packet_digest, good.packet_digest);
}

/// Two self-contained WebM pieces cut with `-ss/-t -c copy` (each a complete file whose
/// block times go on from where the first ended, like a recorder's clusters), joined:
/// the result plays for the whole time, and cut by the segments' packet counts it has each
/// segment's own digest.
#[test]
fn remuxed_segments_hold_exactly_their_packets() {
    let dir = TempDir::new("browser-remux");
    let whole = make(&dir, "whole.webm", "4", &["-c:v", "libvpx", "-c:a", "libopus"]);
    let mut segs = Vec::new();
    for (i, ss) in ["0", "2"].iter().enumerate() {
        let p = dir.join(&format!("s{i}.webm"));
        ffmpeg(&[
            "-ss",
            ss,
            "-t",
            "2",
            "-i",
            whole.to_str().unwrap(),
            "-c",
            "copy",
            p.to_str().unwrap(),
        ]);
        segs.push(std::fs::read(&p).unwrap());
    }
    let facts: Vec<_> = segs.iter().map(|b| browser_segment(Container::Webm, b).unwrap()).collect();
    let codecs: Vec<&str> = facts[0].streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(remux_format(&codecs), ("webm", "webm"));
    let out = dir.join("joined.webm");
    let mut start = 0;
    let timed: Vec<_> = facts
        .iter()
        .zip(&segs)
        .map(|(f, b)| {
            let t = TimedSegment { plaintext: b.clone(), media_start_us: start };
            start += f.end_time_us.unwrap() - f.first_time_us.unwrap();
            Ok(t)
        })
        .collect();
    let summary =
        remux_browser(Container::Webm, timed.into_iter(), &out, "webm", &mut |_| {}).unwrap();
    let total: Vec<u64> = (0..2).map(|i| facts.iter().map(|f| f.packet_counts[i]).sum()).collect();
    assert_eq!(summary.packets, total);
    assert!(summary.duration_us > 3_500_000, "{summary:?}");
    let counts: Vec<Vec<u64>> = facts.iter().map(|f| f.packet_counts.clone()).collect();
    let back = digest_by_counts(&out, &counts).unwrap();
    for (f, b) in facts.iter().zip(&back) {
        assert_eq!(b.packet_counts, f.packet_counts);
        assert_eq!(b.packet_digest, f.packet_digest);
    }
    // ffprobe agrees it plays for the whole time, with both streams.
    let probe = ffprobe_json(&out, "-show_format");
    let secs: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!(secs > 3.5, "{secs}");
    // The second segment's digest, laid over the first's counts, does not match: the check
    // can fail.
    let swapped = digest_by_counts(&out, &[counts[1].clone(), counts[0].clone()]).unwrap();
    assert_ne!(swapped[0].packet_digest, facts[1].packet_digest);
}

/// `digest_by_counts` numbers, counts and digests a file's streams in the canonical order
/// itself (video, then audio), so a file that lists its audio track first is cut and
/// digested as its records state it.
#[test]
fn digest_by_counts_follows_the_canonical_order_whatever_the_files_track_order() {
    let dir = TempDir::new("browser-counts-order");
    let audio_first = make(
        &dir,
        "audio-first.webm",
        "2",
        &["-map", "1:a", "-map", "0:v", "-c:v", "libvpx", "-c:a", "libopus"],
    );
    let probe = ffprobe_json(&audio_first, "-show_streams");
    assert_eq!(probe["streams"][0]["codec_type"], "audio", "the file lists audio first");
    let facts = browser_segment(Container::Webm, &std::fs::read(&audio_first).unwrap()).unwrap();
    assert_eq!(facts.streams[0].kind, MediaKind::Video);
    let back = digest_by_counts(&audio_first, std::slice::from_ref(&facts.packet_counts)).unwrap();
    assert_eq!(back[0].packet_counts, facts.packet_counts);
    assert_eq!(back[0].packet_digest, facts.packet_digest);
}

/// A browser segment's packets, hashed on the recording's timeline, are found in the file
/// they came from, packet for packet (all but the Opus priming packet that precedes the
/// opening keyframe by more than the 10 ms the matcher allows).
#[test]
fn a_browser_segments_packets_are_found_in_the_file_it_came_from() {
    let dir = TempDir::new("browser-match");
    let whole = make(&dir, "whole.webm", "2", &["-c:v", "libvpx", "-c:a", "libopus"]);
    let bytes = std::fs::read(&whole).unwrap();
    let facts = browser_segment(Container::Webm, &bytes).unwrap();
    let start = facts.first_time_us.unwrap();
    let mine = custody_capture::browser_packet_hashes(Container::Webm, &bytes, start).unwrap();
    let total: u64 = facts.packet_counts.iter().sum();
    assert_eq!(mine.len() as u64, total);
    let theirs = custody_capture::packet_hashes(custody_capture::Media::File(whole)).unwrap();
    let spans = [custody_capture::SegmentSpan {
        seq: 1,
        start_us: start,
        end_us: facts.end_time_us.unwrap(),
    }];
    let c = custody_capture::compare(&mine, &spans, &theirs);
    assert!(c.segments[0].matched + 1 >= c.segments[0].packets, "{:?}", c.segments);
}

/// Capture records a browser's WebM into WebM segments (container 3), copying VP8 and
/// Opus: every segment is a complete WebM file whose packets, demuxed alone, are the ones
/// its segment reports; and a container capture does not write is refused by name.
#[test]
fn capture_writes_each_webm_segment_as_a_complete_file() {
    use custody_capture::{Settings, Source};
    let dir = TempDir::new("browser-capture");
    let webm = make(&dir, "in.webm", "6", &["-g", "40", "-c:v", "libvpx", "-c:a", "libopus"]);
    let settings = Settings { container: Container::Webm, ..Settings::default() };
    let (started, segments, end) = common::record(Source::file(&webm), settings);
    let started = started.expect("started");
    assert_eq!(started.container, Container::Webm);
    let codecs: Vec<&str> = started.streams.iter().map(|s| s.codec.as_str()).collect();
    assert_eq!(codecs, ["vp8", "opus"]);
    assert!(segments.len() >= 3, "{} segments, {end:?}", segments.len());
    for s in &segments {
        assert!(
            s.bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]),
            "segment {} has no EBML header",
            s.seq
        );
        let facts = browser_segment(Container::Webm, &s.bytes).unwrap();
        assert_eq!(facts.packet_counts, s.packet_counts, "segment {}", s.seq);
        assert_eq!(facts.video_frames, s.video_frames, "segment {}", s.seq);
        assert_eq!(facts.packet_digest, s.packet_digest, "segment {}", s.seq);
    }
    let total: u64 = segments.iter().map(|s| s.video_frames).sum();
    assert_eq!(total, 120);

    let settings = Settings { container: Container::SelfContainedMp4, ..Settings::default() };
    let (_, segments, end) = common::record(Source::file(&webm), settings);
    assert!(segments.is_empty());
    assert!(end.detail.unwrap_or_default().contains("cannot record into"));
}
