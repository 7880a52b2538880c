//! What phones really record, imported, verified and exported by the real binary: HEVC in
//! MP4 and MOV at 44.1 and 48 kHz, a portrait video's rotation, tracks that cannot be kept,
//! and Android's VP9/Opus in WebM and MP4. Every clip is made here with the ffmpeg tool, a
//! few seconds long, in the test's temp dir.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use common::json;
use std::path::{Path, PathBuf};

use real::{ffmpeg, ffprobe, Real};

/// A clip of `seconds` of test picture and tone, encoded with `args` (codecs and their
/// options) into `name` under `dir`.
fn clip(dir: &Path, name: &str, seconds: u32, rate: u32, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let video = format!("testsrc2=size=320x240:rate=30:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate={rate}:duration={seconds}");
    let mut all = vec!["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio];
    all.extend_from_slice(args);
    all.push(path.to_str().unwrap());
    ffmpeg(&all);
    path
}

/// An iPhone's default: HEVC (tagged hvc1, as iOS writes it) with AAC, a keyframe a second.
fn hevc(dir: &Path, name: &str, rate: u32) -> PathBuf {
    clip(
        dir,
        name,
        5,
        rate,
        &[
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
        ],
    )
}

/// Imports `file`, exports its bundle to `out_name` and returns the export's JSON (which
/// must have succeeded) with the bundle.
fn import_export(file: &Path, out_name: &str) -> (Real, serde_json::Value, PathBuf) {
    let real = Real::import(file);
    let bundle = real.write(&real.bundle, "bundle");
    let video = real.dir().join(out_name);
    let out = real.run_with_keys(&[
        "export",
        bundle.to_str().unwrap(),
        "-o",
        video.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let v = json(&out);
    assert_eq!(v["digest_matches"], true, "{}: {v}", file.display());
    (real, v, video)
}

#[test]
fn hevc_in_mp4_and_mov_at_44_1_and_48_khz_passes_its_export_check() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, rate) in [("a.mp4", 44_100), ("b.mov", 44_100), ("c.mp4", 48_000), ("d.mov", 48_000)]
    {
        let file = hevc(tmp.path(), name, rate);
        let (real, v, video) = import_export(&file, "video.mp4");
        assert!(real.segments.len() >= 2, "{name}: {} segments", real.segments.len());
        assert_eq!(
            ffprobe(&video, &["-select_streams", "v:0", "-show_entries", "stream=codec_name"]),
            "hevc"
        );
        // Every audio packet of the source is in the export but the encoder's priming
        // packet, presented before the first keyframe (a recording starts there).
        let source_audio: u64 = ffprobe(
            &file,
            &[
                "-select_streams",
                "a:0",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_packets",
            ],
        )
        .parse()
        .unwrap();
        let exported: u64 = v["packets"][1].as_u64().unwrap();
        assert_eq!(exported + 1, source_audio, "{name}: {v}");
    }
}

/// The header record of a real import.
fn header(real: &Real) -> custody_format::record::RecordingHeader {
    match real.records[0].record() {
        custody_format::record::Record::Header(h) => h.clone(),
        other => panic!("not a header: {other:?}"),
    }
}

/// `custody verify --json` of the real import's bundle, which must be intact.
fn verify(real: &Real) -> serde_json::Value {
    let bundle = real.write(&real.bundle, "verified");
    let out = real.run_with_keys(&["verify", bundle.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    json(&out)
}

fn check<'a>(report: &'a serde_json::Value, code: &str) -> Option<&'a serde_json::Value> {
    report["checks"].as_array().unwrap().iter().find(|c| c["code"] == code)
}

/// The display matrix's rotation as ffprobe states it (counterclockwise degrees), if any.
fn probed_rotation(path: &Path) -> String {
    ffprobe(path, &["-select_streams", "v:0", "-show_entries", "stream_side_data=rotation"])
}

#[test]
fn a_portrait_video_keeps_its_rotation_through_import_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    // A phone held upright, as an iPhone writes it: landscape pixels and a display matrix
    // turning them 90° clockwise (ffprobe: "rotation -90", counterclockwise). FFmpeg 5.1
    // writes the matrix when stream-copying with a `rotate` tag, whose 270 is that matrix.
    let plain = clip(
        tmp.path(),
        "landscape.mp4",
        3,
        48_000,
        &["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac"],
    );
    let file = tmp.path().join("portrait.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=270",
        file.to_str().unwrap(),
    ]);
    assert_eq!(probed_rotation(&file), "-90", "the source is turned");
    let (real, _, video) = import_export(&file, "video.mp4");
    assert_eq!(header(&real).rotation, Some(90));
    assert_eq!(probed_rotation(&video), "-90", "the export is turned as the source was");
    let report = verify(&real);
    let c = check(&report, "media.rotation").unwrap_or_else(|| panic!("{report}"));
    assert!(
        c["message"].as_str().unwrap().contains("shown turned 90° clockwise, as recorded"),
        "{c}"
    );

    // An upright file says nothing of rotation, and its export has no matrix.
    let upright = clip(
        tmp.path(),
        "upright.mp4",
        2,
        48_000,
        &["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac"],
    );
    let (real, _, video) = import_export(&upright, "video.mp4");
    assert_eq!(header(&real).rotation, None);
    assert_eq!(probed_rotation(&video), "");
    assert!(check(&verify(&real), "media.rotation").is_none());
}

#[test]
fn a_subtitle_track_not_recorded_is_named_in_the_header_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let srt = tmp.path().join("subs.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,500\nOfficer 4471\n\n").unwrap();
    let file = clip(
        tmp.path(),
        "subtitled.mp4",
        2,
        48_000,
        &[
            "-i",
            srt.to_str().unwrap(),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:s",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-c:s",
            "mov_text",
        ],
    );
    assert_eq!(
        ffprobe(&file, &["-select_streams", "s", "-show_entries", "stream=codec_name"]),
        "mov_text"
    );
    let real = Real::import(&file);
    let dropped = header(&real).dropped_streams;
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0].codec, "mov_text");
    assert_eq!(dropped[0].kind, custody_format::digest::MediaKind::Other);
    let report = verify(&real);
    assert_eq!(report["verdict"], "intact-complete", "{report}");
    let c = check(&report, "media.streams.dropped").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(c["state"], "warning");
    assert!(c["message"].as_str().unwrap().contains("mov_text"), "{c}");
}

#[test]
fn android_vp9_and_opus_in_webm_and_mp4_import_verify_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let vp9 = [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "30",
        "-b:v",
        "300k",
        "-c:a",
        "libopus",
    ];
    for name in ["android.webm", "android.mp4"] {
        let file = clip(tmp.path(), name, 3, 48_000, &vp9);
        let (real, v, video) = import_export(&file, "video.mp4");
        let codecs: Vec<String> = header(&real).streams.iter().map(|s| s.codec.clone()).collect();
        assert_eq!(codecs, ["vp9", "opus"], "{name}");
        assert_eq!(verify(&real)["verdict"], "intact-complete", "{name}");
        assert_eq!(
            ffprobe(&video, &["-select_streams", "v:0", "-show_entries", "stream=codec_name"]),
            "vp9"
        );
        assert_eq!(v["checks"][0]["code"], "export.digest.match", "{name}: {v}");
    }
}
