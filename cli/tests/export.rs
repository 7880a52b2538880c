//! `custody export` and `custody verify --original / --html` on real recordings: clips made
//! with the ffmpeg tool, sealed by the real binary, decrypted and remuxed with FFmpeg.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use common::json;
use common::make_clip;
use real::{ffmpeg, ffprobe, Real};

#[test]
fn export_plays_and_has_the_recordings_packet_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, 9, 1);
    let real = Real::import(&clip);
    assert!(real.segments.len() >= 4, "{} segments", real.segments.len());
    let bundle = real.write(&real.bundle, "bundle");
    let video = real.dir().join("video.mp4");

    let out = real.run_with_keys(&[
        "export",
        bundle.to_str().unwrap(),
        "-o",
        video.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["digest_matches"], true);
    assert_eq!(v["segments"], real.segments.len());
    assert_eq!(v["checks"][0]["code"], "export.digest.match");

    // It plays: every frame decodes, and its length is the segments' media time.
    let frames = ffprobe(
        &video,
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    assert_eq!(frames, "225");
    let duration: f64 = ffprobe(&video, &["-show_entries", "format=duration"]).parse().unwrap();
    assert!(
        (duration - real.media_seconds()).abs() < 0.1,
        "{duration} vs {}",
        real.media_seconds()
    );
    assert!((duration - 9.0).abs() < 0.1, "{duration}");
    let decode = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", video.to_str().unwrap(), "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    // No re-encode: same codec, and the index comes first (fast start).
    assert_eq!(
        ffprobe(&video, &["-select_streams", "v:0", "-show_entries", "stream=codec_name"]),
        "h264"
    );
    let bytes = std::fs::read(&video).unwrap();
    let pos = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(pos(b"moov") < pos(b"mdat"), "moov after mdat: not fast start");

    // The reports beside it say so.
    let html = std::fs::read_to_string(real.dir().join("video.mp4.report.html")).unwrap();
    assert!(
        html.contains("data-code=\"export.digest.match\"") && html.contains("Intact and complete")
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(real.dir().join("video.mp4.report.json")).unwrap())
            .unwrap();
    assert_eq!(report["digest_matches"], true);

    // The same check, done here, and shown able to fail: the export cut where the
    // recording was cut has every record's digest; a re-encoded copy of it has none.
    let boundaries: Vec<custody_capture::Boundary> = real
        .segments
        .iter()
        .map(|s| custody_capture::Boundary { start_us: s.media_start_us, at_keyframe: true })
        .collect();
    let signed: Vec<[u8; 32]> = real.segments.iter().map(|s| s.packet_digest).collect();
    let digests = |path: &std::path::Path| -> Vec<[u8; 32]> {
        custody_capture::digest_file(path, &boundaries, None)
            .unwrap()
            .into_iter()
            .map(|d| d.packet_digest.0)
            .collect()
    };
    assert_eq!(digests(&video), signed);
    let reencoded = tmp.path().join("reencoded.mp4");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "copy",
        reencoded.to_str().unwrap(),
    ]);
    let theirs = digests(&reencoded);
    assert!(theirs.iter().zip(&signed).all(|(a, b)| a != b));
}

#[test]
fn a_tampered_bundle_is_refused_and_a_cut_off_one_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, 6, 1);
    let real = Real::import(&clip);

    let mut bad = real.bundle.clone();
    let path = custody_format::bundle::segment_path(2);
    let n = bad.files[&path].len();
    bad.files.get_mut(&path).unwrap()[n / 2] ^= 1;
    bad.remanifest();
    let bad = real.write(&bad, "bad");
    let video = real.dir().join("bad.mp4");
    let out = real.run_with_keys(&["export", bad.to_str().unwrap(), "-o", video.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to export") && err.contains("segment.hash.mismatch"), "{err}");
    assert!(!video.exists());

    let cut = real.write(&real.cut_off(), "cut");
    let video = real.dir().join("cut.mp4");
    let out = real.run_with_keys(&[
        "export",
        cut.to_str().unwrap(),
        "-o",
        video.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["digest_matches"], true);
    assert_eq!(v["verification"]["verdict"], "intact-cut-off");
    let duration: f64 = ffprobe(&video, &["-show_entries", "format=duration"]).parse().unwrap();
    assert!((duration - 6.0).abs() < 0.1, "{duration}");
}

fn outcomes(v: &serde_json::Value) -> Vec<String> {
    v["original"]["comparison"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_original_is_matched_packet_by_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("phone.mp4");
    make_clip(&clip, 10, 1);
    let real = Real::import(&clip);
    let bundle = real.write(&real.bundle, "bundle");
    let b = bundle.to_str().unwrap();
    let verify = |file: &std::path::Path| {
        let out =
            real.run_with_keys(&["verify", b, "--json", "--original", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    };

    // The same file, and the same media in another container: every segment matches.
    let v = verify(&clip);
    assert!(outcomes(&v).iter().all(|o| o == "match"), "{:?}", outcomes(&v));
    assert_eq!(v["original"]["comparison"]["only_in_original"], serde_json::json!([]));
    let mkv = tmp.path().join("phone.mkv");
    ffmpeg(&["-i", clip.to_str().unwrap(), "-c", "copy", mkv.to_str().unwrap()]);
    assert!(outcomes(&verify(&mkv)).iter().all(|o| o == "match"));

    // A trimmed copy (stream copy, 4 s from 4 s in): the middle matches, the start and the
    // end exist only in the recording.
    let trimmed = tmp.path().join("trimmed.mp4");
    ffmpeg(&[
        "-ss",
        "4",
        "-i",
        clip.to_str().unwrap(),
        "-t",
        "4",
        "-c",
        "copy",
        trimmed.to_str().unwrap(),
    ]);
    let v = verify(&trimmed);
    let o = outcomes(&v);
    assert_eq!(o.first().map(String::as_str), Some("absent"), "{o:?}");
    assert_eq!(o.last().map(String::as_str), Some("absent"), "{o:?}");
    assert!(o.iter().any(|x| x == "match"), "{o:?}");
    assert!(!o.iter().any(|x| x == "differs"), "{o:?}");
    let only_rec = v["original"]["comparison"]["only_in_recording"].as_array().unwrap();
    assert_eq!(only_rec.len(), 2, "{only_rec:?}");
    assert_eq!(only_rec[0][0], 0, "{only_rec:?}");
    let offset = v["original"]["comparison"]["offset_us"].as_i64().unwrap();
    assert!((offset + 4_000_000).abs() <= 100_000, "offset {offset}");

    // A re-encoded copy: the same pictures, other packets: every segment differs.
    let reencoded = tmp.path().join("reencoded.mp4");
    ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        "30",
        "-c:a",
        "copy",
        reencoded.to_str().unwrap(),
    ]);
    let v = verify(&reencoded);
    assert!(outcomes(&v).iter().all(|o| o == "differs"), "{:?}", outcomes(&v));
    assert!(!v["original"]["comparison"]["only_in_original"].as_array().unwrap().is_empty());

    // In text and HTML too.
    let html = real.dir().join("report.html");
    let out = real.run_with_keys(&[
        "verify",
        b,
        "--original",
        trimmed.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("original.segment.absent") && text.contains("original.segment.match"),
        "{text}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("Original file from the device")
            && page.contains("data-code=\"original.segment.absent\"")
    );
}

#[test]
fn html_report_with_a_thumbnail_per_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, 6, 1);
    let real = Real::import(&clip);
    let bundle = real.write(&real.bundle, "bundle");
    let html = real.dir().join("report.html");
    let out =
        real.run_with_keys(&["verify", bundle.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("src=\"data:image/jpeg;base64,/9j/").count(), real.segments.len());
    assert_eq!(page.matches("<rect class=\"segment\"").count(), real.segments.len());

    // Without --identity: the same report, without pictures.
    let out = real.env.run(&["verify", bundle.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!std::fs::read_to_string(&html).unwrap().contains("data:image"));

    // --original needs --identity.
    let out =
        real.env.run(&["verify", bundle.to_str().unwrap(), "--original", clip.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}
