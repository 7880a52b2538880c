//! What phones really record, segmented, remuxed back into one MP4 the way `custody export`
//! does, and cut again where the recording was cut: HEVC with B-frames and AAC in MP4 and
//! MOV at 44.1 and 48 kHz. (The whole import → export path is in cli/tests/phone_formats.rs.)

mod common;

use common::{ffmpeg, quiet, record, TempDir};
use custody_capture::{
    digest_file, remux_to_mp4, Boundary, Media, Pieces, Segment, Settings, Source,
};

/// An iPhone's default: HEVC (tagged hvc1, as iOS writes it, with B-frames) and AAC at
/// `rate`, a keyframe a second, 5 s.
fn hevc(dir: &TempDir, name: &str, rate: u32) -> std::path::PathBuf {
    let out = dir.join(name);
    let audio = format!("sine=frequency=440:sample_rate={rate}:duration=5");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=5",
        "-f",
        "lavfi",
        "-i",
        &audio,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error:keyint=30:min-keyint=30",
        "-tag:v",
        "hvc1",
        "-c:a",
        "aac",
        "-shortest",
        out.to_str().unwrap(),
    ]);
    out
}

fn pieces(segments: &[Segment]) -> Media {
    let bytes: Vec<Vec<u8>> = segments.iter().map(|s| s.bytes.clone()).collect();
    Media::Pieces(Pieces::new(bytes.into_iter().map(Ok)))
}

#[test]
fn hevc_exports_with_the_packets_of_every_segment() {
    quiet();
    let dir = TempDir::new("hevc");
    for (name, rate) in [("a.mp4", 44_100), ("b.mov", 44_100), ("c.mp4", 48_000), ("d.mov", 48_000)]
    {
        let src = hevc(&dir, name, rate);
        let (_, segments, _) = record(Source::file(&src), Settings::default());
        assert!(segments.len() >= 2, "{name}: {} segments", segments.len());
        let out = dir.join("export.mp4");
        remux_to_mp4(pieces(&segments), &out, &mut |_| {}).unwrap();
        // Cut where the records say the segments start (their earliest packet), as export
        // does: with an open GOP's leading pictures, before the opening keyframe.
        let boundaries: Vec<Boundary> = segments
            .iter()
            .map(|s| Boundary { start_us: s.media_start_us, at_keyframe: true })
            .collect();
        assert!(
            segments.iter().skip(1).any(|s| s.media_start_us < s.boundary.start_us - 10_000),
            "{name}: no segment opens with leading pictures"
        );
        let ours: Vec<_> =
            segments.iter().map(|s| (s.packet_digest, s.packet_counts.clone())).collect();
        let theirs: Vec<_> = digest_file(&out, &boundaries, None)
            .unwrap()
            .into_iter()
            .map(|d| (d.packet_digest, d.packet_counts))
            .collect();
        assert_eq!(ours, theirs, "{name}: the export cut where the recording was cut");
    }
}
