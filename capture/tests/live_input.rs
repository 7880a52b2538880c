//! Live network inputs on loopback, with the `ffmpeg` CLI as the phone app (`-re`): UDP
//! MPEG-TS, an SRT listener and an RTMP listener. Every segment arrives, each decodes
//! alone, and the segmenter's latency is measured.

mod common;

use common::*;
use custody_capture::{
    digest_file, Boundary, Capture, CutReason, EndReason, Event, Segment, Settings, Source,
};
use std::time::Duration;

fn live_settings() -> Settings {
    Settings {
        stall_timeout: Duration::from_secs(3),
        open_timeout: Duration::from_secs(20),
        analyze_duration: Duration::from_millis(1500),
        ..Settings::default()
    }
}

fn check_segments(proto: &str, segments: &[Segment]) -> u64 {
    let mut total = 0;
    for s in segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.video_frames, s.video_frames, "{proto}: segment {} decodes alone", s.seq);
        total += d.video_frames;
    }
    let latencies: Vec<i64> = segments
        .iter()
        .filter(|s| s.cut == CutReason::Keyframe)
        .map(|s| s.emitted_utc_us - s.last_packet_utc_us)
        .collect();
    eprintln!(
        "{proto}: {} segments, {total} frames, latency last packet -> emitted (us): {latencies:?}",
        segments.len()
    );
    for l in &latencies {
        assert!(*l < 1_000_000, "{proto}: latency {l} us");
    }
    total
}

/// The phone's original file matches the live recording, segment by segment.
fn matches_original(proto: &str, original: &std::path::Path, segments: &[Segment]) {
    let boundaries: Vec<Boundary> = segments.iter().map(|s| s.boundary).collect();
    let theirs = digest_file(original, &boundaries, None).unwrap();
    for (a, b) in segments.iter().zip(&theirs) {
        assert_eq!(a.packet_counts, b.packet_counts, "{proto}: segment {}", a.seq);
        assert_eq!(a.packet_digest, b.packet_digest, "{proto}: segment {}", a.seq);
    }
}

fn clip_for(dir: &TempDir, name: &str) -> std::path::PathBuf {
    clip(dir, name, 6, 25)
}

#[test]
fn udp_mpegts_stream_is_segmented_live() {
    quiet();
    let dir = TempDir::new("udp");
    let src = clip_for(&dir, "src.ts");
    let port = free_port(true);
    let capture = Capture::start(
        Source::network(format!("udp://127.0.0.1:{port}?overrun_nonfatal=1&fifo_size=100000")),
        live_settings(),
    );
    wait_listening(port, true);
    let _sender = Sender::start(&src, "mpegts", &format!("udp://127.0.0.1:{port}?pkt_size=1316"));
    let (started, segments, end) = collect(&capture, Duration::from_secs(20));
    assert_eq!(started.unwrap().input_format, "mpegts");
    // UDP has no end of stream: the recording ends when the input goes quiet, and says so.
    assert_eq!(end.reason, EndReason::InputEnded);
    assert!(end.detail.as_deref().is_some_and(|d| d.contains("sent nothing")), "{end:?}");
    assert!(segments.len() >= 3);
    assert_eq!(segments.last().unwrap().cut, CutReason::Final);
    assert_eq!(check_segments("udp", &segments), 150, "every frame sent arrived");
    matches_original("udp", &src, &segments);
}

#[test]
fn srt_listener_receives_a_caller() {
    quiet();
    let dir = TempDir::new("srt");
    let src = clip_for(&dir, "src.ts");
    let port = free_port(true);
    let capture = Capture::start(
        Source::network(format!("srt://127.0.0.1:{port}?mode=listener")),
        live_settings(),
    );
    wait_listening(port, true);
    let _sender =
        Sender::start(&src, "mpegts", &format!("srt://127.0.0.1:{port}?mode=caller&linger=2"));
    let (_, segments, end) = collect(&capture, Duration::from_secs(20));
    assert!(segments.len() >= 3, "{end:?}");
    eprintln!("srt end: {end:?}");
    assert_eq!(end.reason, EndReason::InputEnded);
    assert!(end.detail.is_some());
    assert_eq!(check_segments("srt", &segments), 150);
    matches_original("srt", &src, &segments);
}

#[test]
fn rtmp_listener_receives_a_publisher() {
    quiet();
    let dir = TempDir::new("rtmp");
    let src = clip_for(&dir, "src.mp4");
    let port = free_port(false);
    let url = format!("rtmp://127.0.0.1:{port}/live/phone");
    let capture =
        Capture::start(Source::network(url.clone()).with_option("listen", "1"), live_settings());
    wait_listening(port, false);
    let _sender = Sender::start(&src, "flv", &url);
    let (started, segments, end) = collect(&capture, Duration::from_secs(20));
    assert_eq!(started.unwrap().streams[0].codec, "h264");
    assert!(segments.len() >= 3, "{end:?}");
    eprintln!("rtmp end: {end:?}");
    assert_eq!(end.reason, EndReason::InputEnded, "the publisher hanging up ends the input");
    assert!(end.detail.as_deref().is_some_and(|d| d.contains("closed")), "{end:?}");
    assert_eq!(check_segments("rtmp", &segments), 150);
    matches_original("rtmp", &src, &segments);
}

#[test]
fn a_sender_that_disconnects_mid_segment_loses_nothing_already_sent() {
    quiet();
    let dir = TempDir::new("disconnect");
    let src = clip_for(&dir, "src.mp4");
    let port = free_port(false);
    let url = format!("rtmp://127.0.0.1:{port}/live/phone");
    let capture =
        Capture::start(Source::network(url.clone()).with_option("listen", "1"), live_settings());
    wait_listening(port, false);
    let mut sender = Sender::start(&src, "flv", &url);
    let mut segments = Vec::new();
    let end = loop {
        match capture.next_event_timeout(Duration::from_secs(20)).unwrap() {
            Event::Segment(s) => {
                if s.seq == 1 {
                    // Half way into the second segment's media, the phone drops off.
                    sender.kill();
                }
                segments.push(s);
            }
            Event::End(e) => break e,
            _ => {}
        }
    };
    eprintln!("disconnect end: {end:?}");
    assert_eq!(end.reason, EndReason::InputEnded);
    assert!(end.detail.is_some(), "the end says the connection closed");
    assert!(segments.len() >= 2, "the cut-short segment is emitted too: {segments:#?}");
    assert_eq!(segments.last().unwrap().cut, CutReason::Final);
    check_segments("rtmp-disconnect", &segments);
}

#[test]
fn rtsp_listener_receives_an_announce() {
    quiet();
    let dir = TempDir::new("rtsp");
    let src = clip_for(&dir, "src.mp4");
    let port = free_port(false);
    let url = format!("rtsp://127.0.0.1:{port}/live.sdp");
    let capture = Capture::start(
        Source::network(url.clone()).with_option("rtsp_flags", "listen"),
        live_settings(),
    );
    wait_listening(port, false);
    let _sender = Sender::start_with(&src, "rtsp", &url, &["-rtsp_transport", "tcp"]);
    let (started, segments, end) = collect(&capture, Duration::from_secs(20));
    eprintln!("rtsp end: {end:?}");
    assert_eq!(started.unwrap().streams[0].codec, "h264");
    assert!(segments.len() >= 3, "{end:?}");
    assert_eq!(end.reason, EndReason::InputEnded);
    let frames = check_segments("rtsp", &segments);
    eprintln!("rtsp: {frames} of 150 frames; first segment dropped {}", segments[0].dropped_before);
    // RTSP's first packets carry no timestamps (until the first RTCP sender report): they
    // cannot be muxed into TS, so the recording joins at the first keyframe after them,
    // losing whole GOPs only, and says how many packets it dropped.
    assert!(frames >= 100 && frames.is_multiple_of(25), "{frames}");
    assert!(frames == 150 || segments[0].dropped_before > 0);
}
