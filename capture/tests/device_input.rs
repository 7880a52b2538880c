//! A synthetic camera through libavdevice's lavfi: raw video and PCM audio are encoded
//! (libx264, AAC), segmented and stopped on request.

mod common;

use common::*;
use custody_capture::{Capture, CutReason, EndReason, Event, Settings, Source};
use std::time::{Duration, Instant};

#[test]
fn lavfi_camera_is_encoded_and_every_segment_decodes_alone() {
    quiet();
    let graph = "testsrc2=size=320x240:rate=25:duration=5[out0];sine=frequency=440:sample_rate=44100:duration=5[out1]";
    let (started, segments, end) = record(Source::device("lavfi", graph), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    let started = started.unwrap();
    assert_eq!(started.input_format, "lavfi");
    let v = &started.streams[0];
    assert_eq!((v.codec.as_str(), v.encoded, v.width, v.height), ("h264", true, 320, 240));
    assert_eq!(v.frame_rate, (25, 1));
    let a = &started.streams[1];
    assert_eq!((a.codec.as_str(), a.encoded, a.sample_rate, a.channels), ("aac", true, 44100, 1));
    assert!(started.notes.iter().any(|n| n.contains("encoded as h264")), "{:?}", started.notes);

    assert_eq!(segments.len(), 3, "{segments:#?}");
    let mut total = 0;
    for s in &segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.decode_errors, 0);
        assert_eq!(d.video_frames, s.video_frames, "segment {} decodes alone", s.seq);
        assert!(d.audio_frames > 0);
        total += d.video_frames;
    }
    assert_eq!(total, 125);
    assert_eq!(segments[1].boundary.start_us, 2_000_000);
}

#[test]
fn stop_cuts_the_open_segment_and_ends_promptly() {
    quiet();
    let graph = "testsrc2=size=160x120:rate=25,realtime[out0]";
    let capture = Capture::start(Source::device("lavfi", graph), Settings::default());
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        assert!(Instant::now() < deadline, "no segment from a live camera");
        match capture.next_event_timeout(Duration::from_secs(10)).unwrap() {
            Event::Segment(s) => break s,
            Event::End(e) => panic!("ended early: {e:?}"),
            _ => {}
        }
    };
    assert_eq!(first.cut, CutReason::Keyframe);
    // A live camera is cut within a frame or two of the keyframe arriving.
    let latency = first.emitted_utc_us - first.last_packet_utc_us;
    eprintln!("segment latency (last packet read -> segment emitted): {latency} us");
    assert!(latency < 500_000, "latency {latency} us");
    let stopped_at = Instant::now();
    capture.stop_handle().stop();
    let (_, rest, end) = collect(&capture, Duration::from_secs(10));
    assert!(stopped_at.elapsed() < Duration::from_secs(3), "stop took {:?}", stopped_at.elapsed());
    assert_eq!(end.reason, EndReason::Stopped);
    assert!(rest.len() <= 2);
    let last = rest.last().expect("the open segment is emitted");
    assert_eq!(last.cut, CutReason::Final);
    assert_eq!(decode_bytes(&last.bytes).video_frames, last.video_frames);
    assert_eq!(end.segments, 1 + rest.len() as u64);
}

#[test]
fn mjpeg_and_pcm_as_a_webcam_sends_them_are_encoded() {
    quiet();
    let dir = TempDir::new("mjpeg");
    let src = dir.join("webcam.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "4",
        "-ac",
        "2",
        "-c:v",
        "mjpeg",
        "-pix_fmt",
        "yuvj422p",
        "-q:v",
        "5",
        "-c:a",
        "pcm_s16le",
        src.to_str().unwrap(),
    ]);
    let (started, segments, end) = record(Source::file(&src), Settings::default());
    assert_eq!(end.reason, EndReason::InputEnded);
    let started = started.unwrap();
    assert_eq!(started.streams[0].codec, "h264");
    assert!(started.streams[0].encoded);
    assert_eq!((started.streams[1].codec.as_str(), started.streams[1].channels), ("aac", 2));
    assert!(
        started.notes.iter().any(|n| n.contains("(mjpeg) encoded as h264")),
        "{:?}",
        started.notes
    );
    assert_eq!(segments.len(), 2);
    let mut total = 0;
    for s in &segments {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.video_frames, s.video_frames, "segment {} decodes alone", s.seq);
        assert!(d.audio_frames > 0);
        total += d.video_frames;
    }
    assert_eq!(total, 100);
}

#[test]
fn a_slow_consumer_gets_every_segment() {
    quiet();
    let graph =
        "testsrc2=size=160x120:rate=25:duration=7[out0];sine=sample_rate=44100:duration=7[out1]";
    let settings = Settings { channel_capacity: 1, ..Settings::default() };
    let capture = Capture::start(Source::device("lavfi", graph), settings);
    let mut frames = 0;
    let mut seqs = Vec::new();
    for _ in 0..100 {
        match capture.next_event_timeout(Duration::from_secs(20)).unwrap() {
            Event::Segment(s) => {
                // Sealing and uploading take time; the capture must wait, not drop.
                std::thread::sleep(Duration::from_millis(200));
                frames += s.video_frames;
                seqs.push(s.seq);
            }
            Event::End(e) => {
                assert_eq!(e.reason, EndReason::InputEnded);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(frames, 175);
}
