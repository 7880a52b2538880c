//! What phones really record, imported, verified and exported by the real binary: HEVC in
//! MP4 and MOV at 44.1 and 48 kHz, a portrait video's rotation, tracks that cannot be kept,
//! and Android's VP9/Opus in WebM and MP4. Every clip is made here with the ffmpeg tool, a
//! few seconds long, in the test's temp dir.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use std::path::{Path, PathBuf};

use real::{ffmpeg, ffprobe, Real};

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A clip of `seconds` of test picture and tone, encoded with `args` (codecs and their
/// options) into `name` under `dir`.
fn clip(dir: &Path, name: &str, seconds: u32, rate: u32, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let video = format!("testsrc2=size=320x240:rate=30:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate={rate}:duration={seconds}");
    let mut all = vec!["-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-shortest", path.to_str().unwrap()]);
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
            &["-select_streams", "a:0", "-count_packets", "-show_entries", "stream=nb_read_packets"],
        )
        .parse()
        .unwrap();
        let exported: u64 = v["packets"][1].as_u64().unwrap();
        assert_eq!(exported + 1, source_audio, "{name}: {v}");
    }
}
