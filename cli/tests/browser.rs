//! Recordings made the way a phone's browser makes them (docs/format.md 6.4), through the
//! real binary: WebM (and MP4) segments made by the ffmpeg tool, each a complete file,
//! sealed and signed with the vault's and format's Rust API as the capture page seals
//! them; `custody verify --identity` recomputes every segment's packets from its
//! plaintext, `custody export` joins them into one playable file proven to hold them, and
//! a photo is shown as a photo and exported as it is.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use common::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;
use custody_capture::browser_segment;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::primitives::sha256;
use custody_format::record::{Container, CutReason, EndReason, Record};
use custody_format::testkit;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn ffprobe(path: &Path, args: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `secs`-second clip at the fake camera's 20 fps, a keyframe every 2 s, cut into 2 s
/// pieces at keyframes by FFmpeg's segment muxer (`-c copy`): each piece a complete file of
/// its own, initialisation data and then whole clusters (fragments), as a browser's
/// segments are. WebM pieces keep the stream's timestamps; MP4 pieces start again at 0, as
/// a recorder restarted at each boundary writes them.
fn pieces(dir: &Path, name: &str, secs: u32, source: &str, codecs: &[&str]) -> Vec<Vec<u8>> {
    let ext = Path::new(name).extension().unwrap().to_str().unwrap().to_string();
    let whole = dir.join(name);
    let total = secs.to_string();
    let video = format!("{source}=size=320x240:rate=20");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &total,
        "-g",
        "40",
    ];
    args.extend_from_slice(codecs);
    args.push(whole.to_str().unwrap());
    ffmpeg(&args);
    let pattern = dir.join(format!("{name}.%d.{ext}"));
    let mut args = vec![
        "-i",
        whole.to_str().unwrap(),
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        "2",
        "-reset_timestamps",
        "0",
        "-segment_format",
        &ext,
    ];
    if ext == "mp4" {
        args.extend_from_slice(&[
            "-segment_format_options",
            "movflags=frag_keyframe+empty_moov+default_base_moof",
        ]);
    }
    args.push(pattern.to_str().unwrap());
    ffmpeg(&args);
    (0..)
        .map(|k| dir.join(format!("{name}.{k}.{ext}")))
        .take_while(|p| p.exists())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// A sealed, signed, receipted chain of `plaintexts` in `container`, its records stating
/// what `stated[i]` (the segment the device meant to seal) holds: equal to the plaintexts
/// for an honest device. The header's streams are those of the first segment.
fn chain(
    env: &Env,
    container: Container,
    plaintexts: &[Vec<u8>],
    stated: &[Vec<u8>],
) -> bundles::Bundle {
    let device = testkit::key("phone");
    let header = common::page_header(env, container, &stated[0], &device, "browser MediaRecorder");
    let (mut b, h) = ChainBuilder::start(header, device).unwrap();
    let mut records = vec![h];
    let sealer = custody_vault::seal::Sealer::new(
        custody_vault::keys::parse_recipients(std::slice::from_ref(&env.recipient)).unwrap(),
    )
    .unwrap();
    let mut sealed = BTreeMap::new();
    let mut media_us = 0i64;
    for (n, (plain, meant)) in plaintexts.iter().zip(stated).enumerate() {
        let facts = browser_segment(container, meant).unwrap();
        let span = match (facts.first_time_us, facts.end_time_us) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        };
        // WebM pieces keep the stream's block times (one recorder stream, offset 0); MP4
        // pieces start again at 0, as after a recorder restart, and follow on.
        if container == Container::Webm {
            media_us = facts.first_time_us.unwrap_or(media_us);
        }
        let (ct, s) = sealer.seal(plain, Vec::new()).unwrap();
        let wall = testkit::T0_US + 100_000 + media_us;
        records.push(b.segment(SegmentFields {
            wall_first_us: wall,
            wall_last_us: wall + span,
            media_start_us: media_us,
            media_end_us: media_us + span,
            stream_packets: facts.packet_counts,
            video_frames: facts.video_frames,
            plaintext_len: plain.len() as u64,
            plaintext_sha256: sha256(&[plain]),
            ciphertext_len: s.len,
            ciphertext_sha256: s.sha256,
            packet_digest: facts.packet_digest.0,
            cut: if n + 1 == plaintexts.len() { CutReason::Final } else { CutReason::Keyframe },
        }));
        sealed.insert(n as u64 + 1, ct);
        media_us += span;
    }
    records.push(b.end(testkit::T0_US + 200_000 + media_us, EndReason::Stopped, None));
    bundles::receipted(records, sealed, testkit::public("phone"), "server")
        .bundle_for(testkit::public("phone"), "server")
}

fn custody(env: &Env, args: &[&str]) -> std::process::Output {
    let server = testkit::public("server").to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--identity", env.case_key.to_str().unwrap(), "--trust", &server]);
    env.run(&all)
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect()
}

fn write(env: &Env, bundle: &bundles::Bundle, name: &str) -> PathBuf {
    let path = env.dir.path().join(name);
    bundle.write(&path);
    path
}

#[test]
fn a_webm_recording_from_a_browser_verifies_exports_and_catches_a_swapped_segment() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let webm = pieces(&dir, "phone.webm", 6, "testsrc2", &["-c:v", "libvpx", "-c:a", "libopus"]);
    assert_eq!(webm.len(), 3);
    let good = write(&env, &chain(&env, Container::Webm, &webm, &webm), "good");

    let out = custody(&env, &["verify", good.to_str().unwrap(), "--json"]);
    let report = json(&out);
    assert_eq!(report["verdict"], "intact-complete", "{report}");
    assert!(codes(&report).contains(&"segment.media.match".to_string()), "{report}");
    assert_eq!(out.status.code(), Some(0));

    // The HTML report shows each segment's first frame, read from that segment alone.
    let html = dir.join("report.html");
    let out = custody(&env, &["verify", good.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.matches("data:image/jpeg").count() >= 3, "thumbnails missing");

    // Segment 2's plaintext swapped for another valid WebM of the same codecs, sealed and
    // signed consistently (its record names the new bytes' hash), but the packets its
    // record states are the original's: caught only by demuxing the plaintext.
    let other = pieces(&dir, "other.webm", 2, "testsrc", &["-c:v", "libvpx", "-c:a", "libopus"]);
    let mut swapped = webm.clone();
    swapped[1] = other[0].clone();
    let bad = write(&env, &chain(&env, Container::Webm, &swapped, &webm), "swapped");
    // Without the identity nothing is wrong that the verifier can see.
    let server = testkit::public("server").to_string();
    let blind = json(&env.run(&["verify", bad.to_str().unwrap(), "--json", "--trust", &server]));
    assert_eq!(blind["verdict"], "intact-complete", "{blind}");
    let out = custody(&env, &["verify", bad.to_str().unwrap(), "--json"]);
    let report = json(&out);
    assert_eq!(report["verdict"], "tampered", "{report}");
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["code"] == "segment.media.mismatch")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["seq"], 2, "{report}");
    assert_ne!(out.status.code(), Some(0));
    // And export refuses it.
    let refused = custody(
        &env,
        &["export", bad.to_str().unwrap(), "-o", dir.join("x.webm").to_str().unwrap()],
    );
    assert_ne!(refused.status.code(), Some(0));

    // The intact one exports to one WebM that plays for the whole 6 s, VP8 and Opus, no
    // re-encode, and whose packets are proven to be the sealed ones; the viewing copy is
    // H.264/AAC and says what it is everywhere.
    let video = dir.join("video.webm");
    let out = custody(
        &env,
        &[
            "export",
            good.to_str().unwrap(),
            "-o",
            video.to_str().unwrap(),
            "--viewing-copy",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["digest_matches"], true, "{v}");
    assert_eq!(v["checks"][0]["code"], "export.digest.match");
    let codecs = ffprobe(&video, &["-show_entries", "stream=codec_name"]);
    assert_eq!(codecs.lines().collect::<Vec<_>>(), ["vp8", "opus"]);
    let duration: f64 = ffprobe(&video, &["-show_entries", "format=duration"]).parse().unwrap();
    assert!((duration - 6.0).abs() < 0.3, "{duration}");
    let frames = ffprobe(
        &video,
        &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
    );
    let sealed_frames: u64 =
        webm.iter().map(|p| browser_segment(Container::Webm, p).unwrap().video_frames).sum();
    assert_eq!(frames, sealed_frames.to_string());

    let copy = dir.join("video.re-encoded-viewing-copy.mp4");
    assert_eq!(v["viewing_copy"]["file"], copy.display().to_string(), "{v}");
    let codecs = ffprobe(&copy, &["-show_entries", "stream=codec_name"]);
    assert_eq!(codecs.lines().collect::<Vec<_>>(), ["h264", "aac"]);
    let copy_duration: f64 = ffprobe(&copy, &["-show_entries", "format=duration"]).parse().unwrap();
    assert!((copy_duration - 6.0).abs() < 0.4, "{copy_duration}");
    let label = "re-encoded viewing copy; its proof is the remux video.webm it was made from";
    assert_eq!(ffprobe(&copy, &["-show_entries", "format_tags=title"]), label);
    assert_eq!(ffprobe(&copy, &["-show_entries", "format_tags=comment"]), label);
    assert!(v["summary"].as_str().unwrap().contains(label), "{v}");
    let html = std::fs::read_to_string(dir.join("video.webm.report.html")).unwrap();
    assert!(html.contains(label) && html.contains("export.digest.match"));
    // A wrong extension for these codecs is refused with the right one named.
    let wrong = custody(
        &env,
        &["export", good.to_str().unwrap(), "-o", dir.join("v.avi").to_str().unwrap()],
    );
    assert_ne!(wrong.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains(".webm"));
}

#[test]
fn an_mp4_with_opus_recording_from_a_browser_verifies_and_exports() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let mp4 = pieces(
        &dir,
        "phone.mp4",
        4,
        "testsrc2",
        &["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "libopus"],
    );
    let good = write(&env, &chain(&env, Container::SelfContainedMp4, &mp4, &mp4), "good");
    let report = json(&custody(&env, &["verify", good.to_str().unwrap(), "--json"]));
    assert_eq!(report["verdict"], "intact-complete", "{report}");
    assert!(codes(&report).contains(&"segment.media.match".to_string()), "{report}");
    let video = dir.join("video.mp4");
    let out =
        custody(&env, &["export", good.to_str().unwrap(), "-o", video.to_str().unwrap(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        &String::from_utf8_lossy(&out.stdout)[..3000.min(out.stdout.len())]
    );
    assert_eq!(json(&out)["digest_matches"], true);
    let codecs = ffprobe(&video, &["-show_entries", "stream=codec_name"]);
    assert_eq!(codecs.lines().collect::<Vec<_>>(), ["h264", "opus"]);
    let duration: f64 = ffprobe(&video, &["-show_entries", "format=duration"]).parse().unwrap();
    assert!((duration - 4.0).abs() < 0.3, "{duration}");
}

#[test]
fn a_photo_is_reported_as_a_photo_and_exported_as_it_is() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let jpg = dir.join("warrant.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=1",
        "-frames:v",
        "1",
        jpg.to_str().unwrap(),
    ]);
    let jpeg = std::fs::read(&jpg).unwrap();
    let good = write(
        &env,
        &chain(&env, Container::Photo, std::slice::from_ref(&jpeg), std::slice::from_ref(&jpeg)),
        "photo",
    );
    let html = dir.join("photo.html");
    let out = custody(&env, &["verify", good.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Verdict: INTACT AND COMPLETE"), "{text}");
    // T0 + 0.1 s by the device clock; the test server receipts 0.3 s after.
    let line = "Photo, 320×180, taken 2024-05-01 12:00:00.100 UTC by the device clock, received 2024-05-01 12:00:00.400 UTC by the server";
    assert!(text.contains(line), "{text}");
    assert!(text.contains("segment.media.match"), "{text}");
    assert!(std::fs::read_to_string(&html).unwrap().contains(line));

    let out_jpg = dir.join("exported.jpg");
    let out = custody(
        &env,
        &["export", good.to_str().unwrap(), "-o", out_jpg.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["digest_matches"], true);
    assert_eq!(std::fs::read(&out_jpg).unwrap(), jpeg);

    // A photo whose header claims another size than the JPEG has is caught.
    let mut other = jpeg.clone();
    let sof = other.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    other[sof + 8] ^= 0x01; // the width's low byte
    let bad = write(
        &env,
        &chain(&env, Container::Photo, std::slice::from_ref(&other), std::slice::from_ref(&jpeg)),
        "bad",
    );
    let report = json(&custody(&env, &["verify", bad.to_str().unwrap(), "--json"]));
    assert_eq!(report["verdict"], "tampered", "{report}");
    assert!(codes(&report).contains(&"segment.media.mismatch".to_string()), "{report}");
}

/// `custody import` of a browser's own files: a WebM with VP8 and Opus (which MPEG-TS
/// cannot carry) is sealed as WebM segments, an MP4 with Opus as fragmented MP4; both
/// verify with their packets recomputed where the format says so, and export plays.
#[test]
fn importing_a_browsers_webm_and_mp4_with_opus_copies_them_into_a_container_that_carries_them() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, codecs, container, want) in [
        ("chrome.webm", ["-c:v", "libvpx", "-c:a", "libopus"], Container::Webm, ["vp8", "opus"]),
        (
            "safari.mp4",
            ["-c:v", "libx264", "-c:a", "libopus"],
            Container::FragmentedMp4,
            ["h264", "opus"],
        ),
    ] {
        let clip = tmp.path().join(name);
        let video = "testsrc2=size=320x240:rate=20";
        let mut args = vec!["-f", "lavfi", "-i", video, "-f", "lavfi", "-i"];
        args.extend_from_slice(&["sine=frequency=440:sample_rate=48000", "-t", "6", "-g", "40"]);
        args.extend_from_slice(&codecs);
        args.push(clip.to_str().unwrap());
        ffmpeg(&args);
        let real = real::Real::import(&clip);
        let Record::Header(h) = real.records[0].record() else { panic!("no header") };
        assert_eq!(h.container, container, "{name}");
        let codecs_sealed: Vec<&str> = h.streams.iter().map(|s| s.codec.as_str()).collect();
        assert_eq!(codecs_sealed, want, "{name}: copied, not re-encoded");
        assert!(real.segments.len() >= 3, "{name}: {} segments", real.segments.len());
        let bundle = real.write(&real.bundle, "bundle");
        let out = real.run_with_keys(&["verify", bundle.to_str().unwrap(), "--json"]);
        let report = json(&out);
        assert_eq!(report["verdict"], "intact-complete", "{name}: {report}");
        // --identity recomputes every segment's packets, fragmented MP4 ones too.
        let has_media_check = codes(&report).contains(&"segment.media.match".to_string());
        assert!(has_media_check, "{name}: {report}");
        let ext = if container == Container::Webm { "webm" } else { "mp4" };
        let exported = real.dir().join(format!("exported.{ext}"));
        let out = real.run_with_keys(&[
            "export",
            bundle.to_str().unwrap(),
            "-o",
            exported.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains("segment "))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(json(&out)["digest_matches"], true, "{name}");
        let got = ffprobe(&exported, &["-show_entries", "stream=codec_name"]);
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "{name}");
        let duration: f64 =
            ffprobe(&exported, &["-show_entries", "format=duration"]).parse().unwrap();
        assert!((duration - 6.0).abs() < 0.3, "{name}: {duration}");
    }
}
