//! A live listener that survives its sender's drop: an SRT sender (the `ffmpeg` CLI as the
//! phone app) that stops and starts again is one recording with a gap per drop, and one
//! that comes back with other streams starts a new recording.

mod common;

use common::*;
use custody_capture::{CutReason, EndReason, Event, Segment, Settings, Source};
use std::time::{Duration, Instant};

fn settings(wait: u64) -> Settings {
    Settings {
        target: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(3),
        open_timeout: Duration::from_secs(20),
        analyze_duration: Duration::from_millis(1000),
        reconnect_wait: Duration::from_secs(wait),
        ..Settings::default()
    }
}

fn srt_sender(src: &std::path::Path, port: u16) -> Sender {
    Sender::start(src, "mpegts", &format!("srt://127.0.0.1:{port}?mode=caller&linger=2"))
}

#[derive(Debug, Default)]
struct Run {
    events: Vec<String>,
    segments: Vec<Vec<Segment>>,
    ends: Vec<custody_capture::End>,
}

/// Runs the capture to its last end, starting a sender at every loss until `senders` ran
/// out (each event within `per_event`, the whole within two minutes).
fn drive(
    capture: &custody_capture::Capture,
    port: u16,
    mut senders: Vec<std::path::PathBuf>,
    first: &mut Sender,
) -> Run {
    let mut run = Run::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut current: Option<Sender> = None;
    senders.reverse();
    loop {
        assert!(Instant::now() < deadline, "the capture did not end: {run:?}");
        match capture.next_event_timeout(Duration::from_secs(30)).expect("an event in time") {
            Event::Started(_) => {
                run.events.push("started".into());
                run.segments.push(Vec::new());
            }
            Event::Segment(s) => {
                run.events.push(format!("segment {} {:?}", s.seq, s.cut));
                run.segments.last_mut().unwrap().push(s);
            }
            Event::InputLost { .. } => {
                run.events.push("lost".into());
                first.kill();
                if let Some(next) = senders.pop() {
                    wait_listening(port, true);
                    current = Some(srt_sender(&next, port));
                }
            }
            Event::Reconnected { .. } => run.events.push("reconnected".into()),
            Event::End(e) => {
                run.events.push(format!("end {:?}", e.reason));
                let last = e.reason != EndReason::SenderChanged;
                run.ends.push(e);
                if last {
                    drop(current);
                    return run;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_sender_that_drops_twice_is_one_recording_with_two_gaps() {
    quiet();
    let dir = TempDir::new("reconnect");
    let src = clip(&dir, "a.ts", 3, 25);
    let port = free_port(true);
    let capture = custody_capture::Capture::start(
        Source::network(format!("srt://127.0.0.1:{port}?mode=listener")),
        settings(4),
    );
    wait_listening(port, true);
    let mut first = srt_sender(&src, port);
    let run = drive(&capture, port, vec![src.clone(), src.clone()], &mut first);
    eprintln!("{:#?}", run.events);
    assert_eq!(run.segments.len(), 1, "one recording: {:?}", run.events);
    let segs = &run.segments[0];
    let lost: Vec<&Segment> = segs.iter().filter(|s| s.cut == CutReason::InputLost).collect();
    assert_eq!(lost.len(), 3, "two drops and the last one nobody came back from");
    let gaps: Vec<&Segment> = segs.iter().filter(|s| s.gap.is_some()).collect();
    assert_eq!(gaps.len(), 2, "{segs:#?}");
    for w in segs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        // An audio frame may straddle a keyframe cut; across a gap nothing overlaps.
        let slack = if b.gap.is_some() { 1_000 } else { 50_000 };
        assert!(b.media_start_us >= a.media_end_us - slack, "no overlap: {a:?} {b:?}");
        assert!(b.media_start_us - a.media_end_us < 100_000, "no jump: {a:?} {b:?}");
        assert!(b.first_packet_utc_us >= a.last_packet_utc_us);
        if let Some(g) = b.gap {
            assert_eq!(a.cut, CutReason::InputLost);
            assert!(
                g.wall_from_us == a.last_packet_utc_us && g.wall_to_us == b.first_packet_utc_us
            );
        }
    }
    for s in segs {
        let d = decode_bytes(&s.bytes);
        assert_eq!(d.video_frames, s.video_frames, "segment {} decodes alone", s.seq);
    }
    let total: u64 = segs.iter().map(|s| s.video_frames).sum();
    assert_eq!(total, 3 * 75, "every frame of the three sends");
    let end = &run.ends[0];
    assert_eq!(end.reason, EndReason::InputEnded);
    assert!(
        end.detail.as_deref().unwrap().contains("no sender connected again within 4 s"),
        "{end:?}"
    );
}

#[test]
fn a_sender_that_comes_back_as_another_stream_starts_a_new_recording() {
    quiet();
    let dir = TempDir::new("changed");
    let src = clip(&dir, "a.ts", 2, 25);
    let other = dir.join("b.ts");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=25",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-g",
        "25",
        "-pix_fmt",
        "yuv420p",
        other.to_str().unwrap(),
    ]);
    let port = free_port(true);
    let capture = custody_capture::Capture::start(
        Source::network(format!("srt://127.0.0.1:{port}?mode=listener")),
        settings(3),
    );
    wait_listening(port, true);
    let mut first = srt_sender(&src, port);
    let run = drive(&capture, port, vec![other], &mut first);
    eprintln!("{:#?}", run.events);
    assert_eq!(run.segments.len(), 2, "{:?}", run.events);
    assert_eq!(run.ends[0].reason, EndReason::SenderChanged);
    let why = run.ends[0].detail.as_deref().unwrap();
    assert!(why.contains("160x120") && why.contains("320x240"), "{why}");
    assert!(run.segments[1].iter().all(|s| s.gap.is_none()));
    assert_eq!(run.segments[1][0].media_start_us, 0, "a new recording's own timeline");
    assert_eq!(run.ends[1].reason, EndReason::InputEnded);
}
