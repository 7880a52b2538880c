//! `custody verify --original` on phone recordings, and `--identity` recomputing every
//! segment's packets whatever its container, through the real binary.
//!
//! A phone's browser records one WebM (or MP4) stream; the capture page cuts it into
//! segments (docs/format.md 6.4), each a complete file, and seals them. The file the
//! browser wrote, kept whole, is the "original": every segment must compare as
//! `original.segment.match` against it. The recordings here are real Chromium output
//! (cli/tests/media/, made by cli/tests/media/record.mjs), cut by the page's own
//! segmenter (`node web/tools/segment.mjs`) and sealed as the page seals them; and a WebM
//! made by FFmpeg (libvpx and libopus, as an Android phone's camera app might keep it),
//! imported with `custody import`.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use common::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Env;
use custody_format::chain::{ChainBuilder, SegmentFields};
use custody_format::primitives::sha256;
use custody_format::record::{Container, CutReason, EndReason, Record, RecordingHeader};
use custody_format::testkit;
use real::{ffmpeg, Real};

fn media_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media")
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// Whether the page's segmenter can run here (node and the page's npm packages, which
/// `cargo xtask web` installs).
fn node_ready() -> bool {
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    node && web_dir().join("node_modules/@noble/hashes").is_dir()
}

/// The page's segments of `file` (its segmenter fed 4 KiB at a time, as MediaRecorder's
/// chunks come), and the records it would state for them.
fn page_segments(file: &Path, out: &Path) -> (Vec<Vec<u8>>, Vec<serde_json::Value>) {
    let o = Command::new("node")
        .arg(web_dir().join("tools/segment.mjs"))
        .arg(file)
        .args(["--chunk", "4096", "--write"])
        .arg(out)
        .output()
        .expect("node runs");
    assert!(o.status.success(), "segment.mjs: {}", String::from_utf8_lossy(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("segment.mjs prints JSON");
    let records = v["segments"].as_array().unwrap().clone();
    let plain =
        records.iter().map(|s| std::fs::read(s["file"].as_str().unwrap()).unwrap()).collect();
    (plain, records)
}

/// A sealed, signed, receipted chain of the page's segments, each record stating exactly
/// what the page's segmenter said (media times, counts, digest, cut).
fn page_chain(
    env: &Env,
    container: Container,
    plain: &[Vec<u8>],
    page: &[serde_json::Value],
) -> bundles::Bundle {
    let device = testkit::key("phone");
    let header =
        common::page_header(env, container, &plain[0], &device, "browser MediaRecorder (test)");
    let (mut b, h) = ChainBuilder::start(header, device).unwrap();
    let mut records = vec![h];
    let sealer = custody_vault::seal::Sealer::new(
        custody_vault::keys::parse_recipients(std::slice::from_ref(&env.recipient)).unwrap(),
    )
    .unwrap();
    let mut sealed = BTreeMap::new();
    let us = |v: &serde_json::Value| v.as_i64().unwrap();
    for (n, (bytes, s)) in plain.iter().zip(page).enumerate() {
        let (ct, c) = sealer.seal(bytes, Vec::new()).unwrap();
        let start = us(&s["mediaStartUs"]);
        let end = us(&s["mediaEndUs"]);
        let wall = testkit::T0_US + 100_000 + start;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(s["packetDigest"].as_str().unwrap(), &mut digest).unwrap();
        records.push(
            b.segment(SegmentFields {
                wall_first_us: wall,
                wall_last_us: wall + (end - start),
                media_start_us: start,
                media_end_us: end,
                stream_packets: s["streamPackets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_u64().unwrap())
                    .collect(),
                video_frames: s["videoFrames"].as_u64().unwrap(),
                plaintext_len: bytes.len() as u64,
                plaintext_sha256: sha256(&[bytes]),
                ciphertext_len: c.len,
                ciphertext_sha256: c.sha256,
                packet_digest: digest,
                cut: match s["cut"].as_u64() {
                    Some(1) => CutReason::Keyframe,
                    Some(2) => CutReason::ForcedCap,
                    _ => CutReason::Final,
                },
            }),
        );
        sealed.insert(n as u64 + 1, ct);
    }
    let last_end = page.last().map_or(0, |s| us(&s["mediaEndUs"]));
    records.push(b.end(testkit::T0_US + 200_000 + last_end, EndReason::Stopped, None));
    bundles::receipted(records, sealed, testkit::public("phone"), "server")
        .bundle_for(testkit::public("phone"), "server")
}

fn verify_original(env: &Env, bundle: &Path, original: &Path) -> serde_json::Value {
    let server = testkit::public("server").to_string();
    let out = env.run(&[
        "verify",
        bundle.to_str().unwrap(),
        "--json",
        "--original",
        original.to_str().unwrap(),
        "--identity",
        env.case_key.to_str().unwrap(),
        "--trust",
        &server,
    ]);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["verdict"], "intact-complete", "{v}");
    v
}

fn outcomes(v: &serde_json::Value) -> Vec<String> {
    v["original"]["comparison"]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_string())
        .collect()
}

/// Every segment matches, and nothing is only in one of the two.
fn assert_all_match(v: &serde_json::Value, what: &str) {
    let c = &v["original"]["comparison"];
    assert!(outcomes(v).iter().all(|o| o == "match"), "{what}: {:?}\n{c}", outcomes(v));
    assert_eq!(c["only_in_recording"], serde_json::json!([]), "{what}: {c}");
    assert_eq!(c["only_in_original"], serde_json::json!([]), "{what}: {c}");
    assert_eq!(c["recording_packets"][0], c["recording_packets"][1], "{what}: {c}");
}

#[test]
fn a_chromium_recording_matches_the_file_its_mediarecorder_wrote() {
    if !node_ready() {
        eprintln!("skipped: node or web/node_modules is missing (cargo xtask web installs them)");
        return;
    }
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    for (name, container) in [
        ("chromium-vp8-opus.webm", Container::Webm),
        ("chromium-avc1-opus.mp4", Container::SelfContainedMp4),
    ] {
        let original = media_dir().join(name);
        let (plain, page) = page_segments(&original, &dir.join(format!("{name}.segments")));
        assert!(plain.len() >= 2, "{name}: {} segments", plain.len());
        let bundle = dir.join(format!("{name}.bundle"));
        page_chain(&env, container, &plain, &page).write(&bundle);
        let v = verify_original(&env, &bundle, &original);
        assert_all_match(&v, name);
    }
}

/// An Android phone's WebM, made the way an FFmpeg-based camera app makes it (libvpx and
/// libopus: the Opus track carries a CodecDelay), imported: every segment matches the file
/// and an FFmpeg remux of it to Matroska, though each FFmpeg pass moves the Opus packets
/// 7 ms earlier against the video. With a keyframe every 50 frames, the cut at 3.33 s has
/// an Opus packet 7 ms ahead of its keyframe and the one at 6.67 s 1 ms ahead: those
/// segments' media times are measured from that packet, the first's from its keyframe.
#[test]
fn an_android_phones_webm_matches_its_import_and_ffmpeg_remuxes_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let android = tmp.path().join("android.webm");
    let a = android.to_str().unwrap();
    let video = "testsrc2=size=320x240:rate=30";
    let audio = "sine=frequency=440:sample_rate=48000";
    let vp8 = ["-c:v", "libvpx", "-g", "50", "-deadline", "realtime", "-cpu-used", "8"];
    let mut args = vec!["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio, "-t", "7"];
    args.extend_from_slice(&vp8);
    args.extend_from_slice(&["-c:a", "libopus", a]);
    ffmpeg(&args);
    let mkv = tmp.path().join("android.mkv");
    ffmpeg(&["-i", a, "-c", "copy", mkv.to_str().unwrap()]);
    let real = Real::import(&android);
    let Record::Header(h) = real.records[0].record() else { panic!("no header") };
    assert_eq!(h.container, Container::Webm);
    assert!(real.segments.len() >= 3, "{} segments", real.segments.len());
    let bundle = real.write(&real.bundle, "bundle");
    for original in [&android, &mkv] {
        let v = verify_original(&real.env, &bundle, original);
        assert_all_match(&v, &original.display().to_string());
        // The import moved the Opus track 7 ms earlier against the video (its CodecDelay):
        // each stream is aligned on its own, and the report says by how much. (The ffmpeg
        // tool's own remux moves both streams back into line.)
        let c = &v["original"]["comparison"];
        let offsets = c["stream_offsets_us"].as_array().unwrap();
        assert_eq!(offsets.len(), 2, "{c}");
        if original == &android {
            let apart = offsets[1].as_i64().unwrap() - offsets[0].as_i64().unwrap();
            assert_eq!(apart, 7_000, "{c}");
        }
    }
    // The same pictures and sound encoded again are other packets: the comparison can fail.
    let again = tmp.path().join("reencoded.webm");
    let again_s = again.to_str().unwrap();
    ffmpeg(&["-i", a, "-c:v", "libvpx", "-b:v", "300k", "-c:a", "libopus", again_s]);
    let v = verify_original(&real.env, &bundle, &again);
    assert!(outcomes(&v).iter().all(|o| o == "differs"), "{:?}", outcomes(&v));
}
/// A chain re-signed by a device key the test holds: every record of `real` as it was,
/// each sealed segment unchanged (so its ciphertext hash is still right), but segment
/// `wrong`'s packet digest altered before signing.
fn resigned(real: &Real, wrong: u64) -> bundles::Bundle {
    let device = testkit::key("phone");
    let Record::Header(h) = real.records[0].record() else { panic!("no header") };
    let header = RecordingHeader { device_key: testkit::public("phone"), ..h.clone() };
    let (mut b, h) = ChainBuilder::start(header, device).unwrap();
    let mut records = vec![h];
    let mut sealed = BTreeMap::new();
    for s in &real.segments {
        let mut packet_digest = s.packet_digest;
        if s.seq == wrong {
            packet_digest[0] ^= 1;
        }
        records.push(b.segment(SegmentFields {
            wall_first_us: s.wall_first_us,
            wall_last_us: s.wall_last_us,
            media_start_us: s.media_start_us,
            media_end_us: s.media_end_us,
            stream_packets: s.stream_packets.clone(),
            video_frames: s.video_frames,
            plaintext_len: s.plaintext_len,
            plaintext_sha256: s.plaintext_sha256,
            ciphertext_len: s.ciphertext_len,
            ciphertext_sha256: s.ciphertext_sha256,
            packet_digest,
            cut: s.cut,
        }));
        let path = custody_format::bundle::segment_path(s.seq);
        sealed.insert(s.seq, real.bundle.files[&path].clone());
    }
    let Some(Record::End(e)) = real.records.last().map(|r| r.record()) else { panic!("no end") };
    records.push(b.end(e.ended_at_us, e.reason, e.message.clone()));
    bundles::receipted(records, sealed, testkit::public("phone"), "server")
        .bundle_for(testkit::public("phone"), "server")
}

/// `--identity` recomputes every segment's packet counts and digest from its decrypted
/// plaintext for the containers capture cuts too: MPEG-TS (each segment alone) and
/// fragmented MP4 (each after segment 1's initialisation segment). A record re-signed with
/// a wrong packet digest but the right ciphertext hash verifies without the identity, and
/// is caught, named by its segment, with it.
#[test]
fn identity_recomputes_the_packet_digest_of_mpeg_ts_and_fragmented_mp4_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let ts_clip = tmp.path().join("laptop.mp4");
    common::make_clip(&ts_clip, 6, 2);
    let opus_clip = tmp.path().join("opus.mp4");
    let video = "testsrc2=size=320x240:rate=25";
    let audio = "sine=frequency=440:sample_rate=48000";
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        video,
        "-f",
        "lavfi",
        "-i",
        audio,
        "-t",
        "6",
        "-g",
        "50",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "libopus",
        opus_clip.to_str().unwrap(),
    ]);
    for (clip, container) in [(&ts_clip, Container::MpegTs), (&opus_clip, Container::FragmentedMp4)]
    {
        let real = Real::import(clip);
        let Record::Header(h) = real.records[0].record() else { panic!("no header") };
        assert_eq!(h.container, container);
        assert!(real.segments.len() >= 3, "{} segments", real.segments.len());
        let good = real.write(&resigned(&real, 0), "good");
        let bad = real.write(&resigned(&real, 2), "bad");
        let verify = |bundle: &Path, identity: bool| {
            let server = testkit::public("server").to_string();
            let key = real.env.case_key.to_str().unwrap();
            let mut args = vec!["verify", bundle.to_str().unwrap(), "--json", "--trust", &server];
            if identity {
                args.extend_from_slice(&["--identity", key]);
            }
            json(&real.env.run(&args))
        };
        let codes = |v: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
            v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| (c["code"].as_str().unwrap().to_string(), c["seq"].clone()))
                .collect()
        };
        let v = verify(&good, true);
        assert_eq!(v["verdict"], "intact-complete", "{container:?}: {v}");
        assert!(codes(&v).iter().any(|(c, _)| c == "segment.media.match"), "{container:?}: {v}");
        let v = verify(&bad, false);
        assert_eq!(v["verdict"], "intact-complete", "{container:?}: without the identity: {v}");
        let v = verify(&bad, true);
        assert_eq!(v["verdict"], "tampered", "{container:?}: {v}");
        let failed: Vec<_> =
            codes(&v).into_iter().filter(|(c, _)| c == "segment.media.mismatch").collect();
        assert_eq!(failed, [("segment.media.mismatch".to_string(), serde_json::json!(2))], "{v}");
    }
}
