//! Bad input gets a clear error, and every segment completed before the fault is still
//! emitted intact.

mod common;

use common::*;
use custody_capture::{Capture, CutReason, End, EndReason, Settings, Source};
use std::io::Write;
use std::time::{Duration, Instant};

fn error_of(end: &End) -> &str {
    match (end.reason, &end.detail) {
        (EndReason::Error, Some(m)) => m,
        _ => panic!("expected an error with its message, got {end:?}"),
    }
}

#[test]
fn garbage_bytes_are_refused_with_a_clear_error() {
    quiet();
    let dir = TempDir::new("garbage");
    let path = dir.join("garbage.mp4");
    let bytes: Vec<u8> =
        (0u32..200_000).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    let (started, segments, end) = record(Source::file(&path), Settings::default());
    assert!(started.is_none() && segments.is_empty());
    let msg = error_of(&end);
    assert!(msg.contains("garbage.mp4") && msg.contains("nvalid data"), "{msg}");
}

#[test]
fn a_missing_file_says_so() {
    quiet();
    let (_, segments, end) = record(Source::file("/nonexistent/clip.mp4"), Settings::default());
    assert!(segments.is_empty());
    assert!(error_of(&end).contains("No such file"), "{end:?}");
}

#[test]
fn unsupported_codec_is_named_in_the_error() {
    quiet();
    let dir = TempDir::new("ffv1");
    let path = dir.join("ffv1.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25",
        "-t",
        "1",
        "-c:v",
        "ffv1",
        path.to_str().unwrap(),
    ]);
    let (_, segments, end) = record(Source::file(&path), Settings::default());
    assert!(segments.is_empty());
    let msg = error_of(&end);
    assert!(msg.contains("ffv1") && msg.contains("re-encoding"), "{msg}");
}

#[test]
fn truncated_files_keep_every_complete_segment() {
    quiet();
    let dir = TempDir::new("truncated");
    for name in ["src.ts", "src.mp4"] {
        let src = clip(&dir, name, 7, 50);
        // A phone's MP4 has its index up front (else a truncated one cannot be opened at
        // all, which `garbage_bytes_are_refused_with_a_clear_error` covers).
        let src = if name.ends_with("mp4") {
            let fast = dir.join("fast.mp4");
            ffmpeg(&[
                "-i",
                src.to_str().unwrap(),
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                fast.to_str().unwrap(),
            ]);
            fast
        } else {
            src
        };
        let bytes = std::fs::read(&src).unwrap();
        let cut = dir.join(&format!("cut-{name}"));
        std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let (_, segments, end) = record(Source::file(&cut), Settings::default());
        eprintln!("{name} truncated: {} segments, end {end:?}", segments.len());
        assert!(segments.len() >= 2, "{name}: segments before the truncation are kept");
        for s in &segments {
            assert_eq!(decode_bytes(&s.bytes).video_frames, s.video_frames, "{name} seg {}", s.seq);
        }
        assert_eq!(segments.last().unwrap().cut, CutReason::Final);
        if name.ends_with("mp4") {
            // MP4's index promises samples the truncated file no longer holds: an error.
            assert!(error_of(&end).contains("Invalid data"), "{end:?}");
        } else {
            // MPEG-TS has no index; a truncated one simply ends.
            assert_eq!(end.reason, EndReason::InputEnded);
        }
    }
}

#[test]
fn a_stalled_stream_ends_after_the_stall_timeout_with_what_it_had() {
    quiet();
    let dir = TempDir::new("stall");
    let src = clip(&dir, "src.ts", 7, 50);
    let bytes = std::fs::read(&src).unwrap();
    let port = free_port(false);
    let settings = Settings { stall_timeout: Duration::from_secs(1), ..Settings::default() };
    let capture = Capture::start(
        Source::network(format!("tcp://127.0.0.1:{port}?listen=1")).with_format("mpegts"),
        settings,
    );
    wait_listening(port, false);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(&bytes[..bytes.len() * 7 / 10]).unwrap();
    // The connection stays open and silent: a stalled sender.
    let started = Instant::now();
    let (_, segments, end) = collect(&capture, Duration::from_secs(20));
    drop(conn);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(end.reason, EndReason::InputEnded, "{end:?}");
    assert!(end.detail.as_deref().is_some_and(|d| d.contains("sent nothing for 1s")), "{end:?}");
    assert!(segments.len() >= 2);
    for s in &segments {
        assert_eq!(decode_bytes(&s.bytes).video_frames, s.video_frames);
    }
    assert_eq!(segments.last().unwrap().cut, CutReason::Final);
}

#[test]
fn a_listener_nobody_calls_times_out() {
    quiet();
    let port = free_port(false);
    let settings = Settings { open_timeout: Duration::from_secs(1), ..Settings::default() };
    let started = Instant::now();
    let (_, segments, end) = record(
        Source::network(format!("rtmp://127.0.0.1:{port}/live/x")).with_option("listen", "1"),
        settings,
    );
    assert!(segments.is_empty());
    assert!(error_of(&end).contains("timed out"), "{end:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn dropping_the_capture_stops_it() {
    quiet();
    let capture = Capture::start(
        Source::device("lavfi", "testsrc2=size=160x120:rate=25,realtime[out0]"),
        Settings { channel_capacity: 1, ..Settings::default() },
    );
    let started = Instant::now();
    drop(capture);
    assert!(started.elapsed() < Duration::from_secs(5));
}
