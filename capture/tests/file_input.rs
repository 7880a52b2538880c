//! A recorded file in, segments out: each plays alone, together they are the whole file,
//! and their packet digests match the source and a remux of it.

mod common;

use common::*;
use custody_capture::{digest_file, Boundary, Container, CutReason, EndReason, Settings, Source};
use sha2::{Digest, Sha256};
use std::time::Duration;

#[test]
fn file_segments_decode_alone_add_up_and_are_hashed() {
    quiet();
    let dir = TempDir::new("file");
    let src = clip(&dir, "src.mp4", 7, 50);
    let source_decoded = decode_file(&src);
    assert_eq!(source_decoded.video_frames, 175);

    let (started, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    let started = started.expect("a started event");
    assert_eq!(started.container, Container::MpegTs);
    assert_eq!(started.streams.len(), 2);
    assert_eq!(started.streams[0].codec, "h264");
    assert_eq!((started.streams[0].width, started.streams[0].height), (320, 240));
    assert_eq!(started.streams[0].frame_rate, (25, 1));
    assert_eq!(started.streams[1].codec, "aac");
    assert_eq!(started.streams[1].sample_rate, 44100);
    assert_eq!(started.streams[1].time_base, (1, 90000));

    // Keyframes every 2 s, target 2 s: cuts at 2, 4, 6 s.
    assert_eq!(segments.len(), 4, "{segments:#?}");
    assert_eq!(end.segments, 4);
    let mut frames = 0;
    let mut wall = i64::MIN;
    for (i, seg) in segments.iter().enumerate() {
        assert_eq!(seg.seq, i as u64 + 1);
        assert_eq!(seg.sha256, <[u8; 32]>::from(Sha256::digest(&seg.bytes)), "independent hash");
        assert_eq!(seg.len(), seg.bytes.len() as u64);
        let d = decode_bytes(&seg.bytes);
        assert_eq!(d.decode_errors, 0);
        assert_eq!(
            d.video_frames, seg.video_frames,
            "segment {} decodes every frame alone",
            seg.seq
        );
        assert_eq!(seg.packet_counts[0], seg.video_frames);
        assert!(d.audio_frames > 0);
        frames += d.video_frames;
        assert!(
            seg.first_packet_utc_us >= wall && seg.last_packet_utc_us >= seg.first_packet_utc_us
        );
        assert!(seg.emitted_utc_us >= seg.last_packet_utc_us);
        wall = seg.last_packet_utc_us;
        assert_eq!(seg.boundary.start_us, 2_000_000 * i as i64);
        assert!(seg.boundary.at_keyframe);
        // Audio presented up to 10 ms before the keyframe goes with it.
        let lead = seg.boundary.start_us - seg.media_start_us;
        assert!((0..=10_000).contains(&lead), "{lead}");
        let expected_cut = if i == 3 { CutReason::Final } else { CutReason::Keyframe };
        assert_eq!(seg.cut, expected_cut);
    }
    assert_eq!(frames, 175, "the segments' frames add up to the source's");
    // Only the AAC priming packet (presented before the first keyframe) is left out.
    assert_eq!(segments[0].dropped_before, 1);
    assert!(segments[1..].iter().all(|s| s.dropped_before == 0));
    assert_eq!(segments[3].media_end_us, 7_000_000);
    assert!(segments.windows(2).all(|w| w[0].media_end_us <= w[1].media_start_us + 40_000));

    // The concatenation plays as a whole, with the source's duration and frame count.
    let whole: Vec<u8> = segments.iter().flat_map(|s| s.bytes.iter().copied()).collect();
    let d = decode_bytes(&whole);
    assert_eq!(d.video_frames, 175);
    assert!((d.video_span - 7.0).abs() < 0.05, "span {}", d.video_span);
    assert_eq!(d.decode_errors, 0);
}

#[test]
fn packet_digests_match_the_source_and_its_remuxes() {
    quiet();
    let dir = TempDir::new("digest");
    let src = clip(&dir, "src.mp4", 7, 50);
    let (_, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let ours: Vec<_> =
        segments.iter().map(|s| (s.packet_digest, s.packet_counts.clone())).collect();

    let check = |path: &std::path::Path| {
        let theirs = digest_file(path, &boundaries, None).unwrap();
        let theirs: Vec<_> =
            theirs.into_iter().map(|d| (d.packet_digest, d.packet_counts)).collect();
        assert_eq!(ours, theirs, "digest of {path:?} cut at the same times");
    };
    check(&src);
    let mkv = dir.join("remux.mkv");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c", "copy", mkv.to_str().unwrap()]);
    check(&mkv);
    let ts = dir.join("remux.ts");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c", "copy", ts.to_str().unwrap()]);
    // The TS remux shifts timestamps by the muxer's delay; times are relative, so the
    // same boundaries cut it at the same media.
    check(&ts);
    let (_, ts_segments, _) = record(Source::file(&ts), Settings::default());
    let again: Vec<_> =
        ts_segments.iter().map(|s| (s.packet_digest, s.packet_counts.clone())).collect();
    assert_eq!(ours, again, "a recording of the TS remux has the same digests");

    // Recording the segments' own concatenation gives the same digests again.
    let whole = dir.join("whole.ts");
    std::fs::write(&whole, segments.iter().flat_map(|s| s.bytes.clone()).collect::<Vec<u8>>())
        .unwrap();
    let (_, again, _) = record(Source::file(&whole), Settings::default());
    let again: Vec<_> = again.iter().map(|s| (s.packet_digest, s.packet_counts.clone())).collect();
    assert_eq!(ours, again);
}

#[test]
fn sparse_keyframes_make_long_segments_and_the_cap_forces_cuts() {
    quiet();
    let dir = TempDir::new("sparse");
    let src = clip(&dir, "src.mp4", 9, 200); // keyframes at 0 and 8 s
    let (_, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    assert_eq!(segments.len(), 2);
    assert_eq!(segments[0].cut, CutReason::Keyframe);
    assert!((8_000_000..8_030_000).contains(&segments[0].media_end_us), "audio may overhang");
    for s in &segments {
        assert_eq!(decode_bytes(&s.bytes).video_frames, s.video_frames);
    }

    let settings = Settings { cap: Duration::from_secs(3), ..Settings::default() };
    let (_, capped, _) = record(Source::file(&src), settings);
    // Forced cuts a little after 3 and 6 s (at the first packet in decode order shown that
    // late); the keyframe at 8 s then comes too soon after the second to cut again.
    assert_eq!(capped.len(), 3, "{capped:#?}");
    assert_eq!(capped[0].cut, CutReason::ForcedCap);
    assert_eq!(capped[1].cut, CutReason::ForcedCap);
    assert!(!capped[1].boundary.at_keyframe);
    assert!((3_000_000..3_200_000).contains(&capped[1].boundary.start_us));
    let total: u64 = capped.iter().map(|s| s.video_frames).sum();
    assert_eq!(total, 225);
    // The first segment still decodes alone; later ones start mid-GOP.
    assert_eq!(decode_bytes(&capped[0].bytes).video_frames, capped[0].video_frames);
    let boundaries: Vec<Boundary> = capped.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(&src, &boundaries, None).unwrap();
    for (a, b) in capped.iter().zip(&theirs) {
        assert_eq!(a.packet_digest, b.packet_digest, "forced segment {}", a.seq);
    }
}

#[test]
fn audio_only_file_is_cut_every_target() {
    quiet();
    let dir = TempDir::new("audio");
    let src = dir.join("a.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "5",
        "-c:a",
        "aac",
        src.to_str().unwrap(),
    ]);
    let (started, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    assert_eq!(started.unwrap().streams.len(), 1);
    assert_eq!(segments.len(), 3);
    for s in &segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.audio_frames, s.packet_counts[0], "segment {} decodes alone", s.seq);
    }
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(&src, &boundaries, None).unwrap();
    for (a, b) in segments.iter().zip(&theirs) {
        assert_eq!(a.packet_digest, b.packet_digest);
    }
}

#[test]
fn a_cover_picture_is_not_recorded_as_video() {
    quiet();
    let dir = TempDir::new("cover");
    let cover = dir.join("cover.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64",
        "-frames:v",
        "1",
        cover.to_str().unwrap(),
    ]);
    let src = dir.join("memo.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=sample_rate=44100",
        "-i",
        cover.to_str().unwrap(),
        "-t",
        "3",
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "aac",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        src.to_str().unwrap(),
    ]);
    let (started, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    let started = started.unwrap();
    assert_eq!(started.streams.len(), 1);
    assert_eq!(started.streams[0].codec, "aac");
    assert!(
        started.notes.iter().any(|n| n.contains("(png) was not recorded")),
        "{:?}",
        started.notes
    );
    assert_eq!(segments.len(), 2);
}

#[test]
fn variable_frame_rate_file_segments_add_up() {
    quiet();
    let dir = TempDir::new("vfr");
    // Timestamps no longer evenly spaced.
    let src = vfr_clip(&dir, "vfr.mkv", 6);
    let source = decode_file(&src);
    let (_, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    assert!(segments.len() >= 2);
    let mut total = 0;
    for s in &segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.video_frames, s.video_frames);
        total += d.video_frames;
    }
    assert_eq!(total, source.video_frames);
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(&src, &boundaries, None).unwrap();
    for (a, b) in segments.iter().zip(&theirs) {
        assert_eq!(a.packet_digest, b.packet_digest, "segment {}", a.seq);
    }
}

#[test]
fn fragmented_mp4_segments_follow_an_init_segment() {
    quiet();
    let dir = TempDir::new("fmp4");
    let src = clip(&dir, "src.mp4", 5, 50);
    let settings = Settings { container: Container::FragmentedMp4, ..Settings::default() };
    let (started, segments, end) = record(Source::file(&src), settings);
    assert_eq!(end.reason, EndReason::InputEnded);
    assert_eq!(started.unwrap().container, Container::FragmentedMp4);
    assert_eq!(segments.len(), 3);
    assert_eq!(&segments[0].bytes[4..8], b"ftyp");
    let init_end = {
        // ftyp + moov
        let b = &segments[0].bytes;
        let ftyp = u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize;
        let moov = u32::from_be_bytes(b[ftyp..ftyp + 4].try_into().unwrap()) as usize;
        assert_eq!(&b[ftyp + 4..ftyp + 8], b"moov");
        ftyp + moov
    };
    let init = &segments[0].bytes[..init_end];
    assert_eq!(&segments[0].bytes[init_end + 4..init_end + 8], b"moof", "samples follow the init");
    let mut total = 0;
    for s in &segments {
        let bytes = if s.seq == 1 { s.bytes.clone() } else { [init, &s.bytes[..]].concat() };
        let d = decode_bytes(&bytes);
        assert_eq!(d.video_frames, s.video_frames, "init + segment {} decodes", s.seq);
        total += d.video_frames;
    }
    assert_eq!(total, 125);
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(&src, &boundaries, None).unwrap();
    for (a, b) in segments.iter().zip(&theirs) {
        assert_eq!(a.packet_digest, b.packet_digest, "segment {}", a.seq);
    }

    // From MPEG-TS (Annex B video, ADTS audio), as a phone streaming over UDP/SRT sends.
    let ts = dir.join("src.ts");
    ffmpeg(&["-i", src.to_str().unwrap(), "-c", "copy", ts.to_str().unwrap()]);
    let settings = Settings { container: Container::FragmentedMp4, ..Settings::default() };
    let (_, from_ts, end) = record(Source::file(&ts), settings);
    assert_eq!(end.reason, EndReason::InputEnded);
    assert_eq!(from_ts.len(), 3);
    let whole: Vec<u8> = from_ts.iter().flat_map(|s| s.bytes.iter().copied()).collect();
    let d = decode_bytes(&whole);
    assert_eq!(d.video_frames, 125);
    assert!(d.audio_frames > 200);
    for (a, b) in from_ts.iter().zip(&segments) {
        assert_eq!(a.packet_digest, b.packet_digest, "same media from TS, segment {}", a.seq);
    }
}

/// Everything about a packet the segmenter uses.
type PacketView = (usize, Option<i64>, Option<i64>, i64, bool, Vec<u8>);

fn packets(path: &std::path::Path, options: &[(&str, &str)]) -> Vec<PacketView> {
    use ffmpeg_next as ff;
    let mut dict = ff::Dictionary::new();
    for (k, v) in options {
        dict.set(k, v);
    }
    let mut input = ff::format::input_with_dictionary(path, dict).unwrap();
    let mut out = Vec::new();
    loop {
        let mut p = ff::Packet::empty();
        match p.read(&mut input) {
            Ok(()) => out.push((
                p.stream(),
                p.pts(),
                p.dts(),
                p.duration(),
                p.is_key(),
                p.data().unwrap_or(&[]).to_vec(),
            )),
            Err(ff::Error::Eof) => break,
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
    out
}

/// MP4 and MOV files are read without FFmpeg's parsers (input.rs): the packets must be
/// exactly those read with them — data, timestamps, durations and keyframe flags — for
/// B-frames, sparse keyframes and a variable frame rate.
#[test]
fn mp4_and_mov_packets_are_the_same_without_parsers() {
    quiet();
    let dir = TempDir::new("noparse");
    let files = [
        clip(&dir, "gop50.mp4", 5, 50),
        clip(&dir, "gop200.mov", 10, 200),
        vfr_clip(&dir, "vfr.mp4", 4),
    ];
    for f in &files {
        let parsed = packets(f, &[]);
        let unparsed = packets(f, &[("fflags", "+noparse")]);
        assert!(parsed.len() > 100, "{}", f.display());
        assert_eq!(parsed.len(), unparsed.len(), "{}", f.display());
        for (n, (a, b)) in parsed.iter().zip(&unparsed).enumerate() {
            let fields = |p: &PacketView| (p.0, p.1, p.2, p.3, p.4, p.5.len());
            assert!(a == b, "{} packet {n}: {:?} vs {:?}", f.display(), fields(a), fields(b));
        }
    }
}

/// H.264 from MP4 is written into MPEG-TS by custody's own Annex B conversion (annexb.rs),
/// which puts an access unit delimiter and, at keyframes, the parameter sets in front of
/// each frame. A file whose frames carry their own delimiters keeps them (one per frame):
/// every segment still decodes alone, frame for frame, and the packet digests match the
/// source's.
#[test]
fn mp4_frames_with_their_own_delimiters_segment_and_match() {
    quiet();
    let dir = TempDir::new("aud");
    let src = dir.join("aud.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-t",
        "5",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-x264-params",
        "keyint=25:min-keyint=25:scenecut=0:aud=1",
        "-pix_fmt",
        "yuv420p",
        src.to_str().unwrap(),
    ]);
    let (_, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    assert_eq!(segments.len(), 3);
    let mut frames = 0;
    for s in &segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.decode_errors, 0);
        assert_eq!(d.video_frames, s.video_frames, "segment {} decodes alone", s.seq);
        frames += d.video_frames;
        // One delimiter per frame: the file's own, none added beside it.
        let auds = s.bytes.windows(5).filter(|w| w == &[0, 0, 0, 1, 0x09]).count();
        assert_eq!(auds as u64, s.video_frames, "segment {}", s.seq);
    }
    assert_eq!(frames, 125);
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(&src, &boundaries, None).unwrap();
    for (s, t) in segments.iter().zip(&theirs) {
        assert_eq!(s.packet_digest, t.packet_digest, "segment {}", s.seq);
    }
}
