//! `custody export --from --to`: a clip is the whole sealed segments covering the span, and
//! its report proves it (their positions, each one's packet digest) and says where in the
//! recording it sits.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use common::json;
use common::make_clip;
use custody_format::record::SegmentRecord;
use real::{ffprobe, Real};

/// The positions of the segments overlapping `from..to` seconds of media time.
fn covering(segments: &[SegmentRecord], from: f64, to: f64) -> Vec<u64> {
    let origin = segments[0].media_start_us;
    segments
        .iter()
        .filter(|s| {
            (s.media_end_us - origin) as f64 / 1e6 > from
                && ((s.media_start_us - origin) as f64 / 1e6) < to
        })
        .map(|s| s.seq)
        .collect()
}

#[test]
fn a_clip_is_the_sealed_segments_covering_its_span_with_their_proof() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, 9, 1);
    let real = Real::import(&clip);
    let n = real.segments.len() as u64;
    assert!(n >= 4, "{n} segments");
    let bundle = real.write(&real.bundle, "bundle");
    let b = bundle.to_str().unwrap();
    let export = |from: &str, to: &str, name: &str| {
        let out = real.dir().join(name);
        let o = real.run_with_keys(&[
            "export",
            b,
            "--from",
            from,
            "--to",
            to,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ]);
        (o, out)
    };

    // Inside one segment, across several, at the end; seconds, m:ss and h:mm:ss.
    let inside = covering(&real.segments, 2.5, 3.0);
    assert_eq!(inside.len(), 1, "{inside:?}");
    let across = covering(&real.segments, 2.5, 7.5);
    assert!(across.len() >= 3 && across[0] > 1, "{across:?}");
    let end = covering(&real.segments, 8.0, 9.0);
    assert_eq!(end.last(), Some(&n));
    for (from, to, want, name) in [
        ("2.5", "3", &inside, "inside.mp4"),
        ("0:02.5", "0:07.5", &across, "across.mp4"),
        ("0:00:08", "0:00:09", &end, "end.mp4"),
    ] {
        let (out, file) = export(from, to, name);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let v = json(&out);
        assert_eq!(v["digest_matches"], true, "{v}");
        let c = &v["clip"];
        let seqs: Vec<u64> =
            c["segments"].as_array().unwrap().iter().map(|s| s["seq"].as_u64().unwrap()).collect();
        assert_eq!(&seqs, want, "{from}–{to}");
        assert_eq!(
            (c["first_seq"].as_u64(), c["last_seq"].as_u64()),
            (want.first().copied(), want.last().copied())
        );
        assert_eq!(c["of_segments"], n);
        // Each segment's signed digest, as its record states it.
        for s in c["segments"].as_array().unwrap() {
            let rec = real.segments.iter().find(|r| r.seq == s["seq"].as_u64().unwrap()).unwrap();
            assert_eq!(s["packet_digest"], hex::encode(rec.packet_digest));
        }
        let codes: Vec<&str> =
            v["checks"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["clip.span", "export.digest.match"], "{v}");
        let place = match want.as_slice() {
            [one] => format!("segment {one} of {n}"),
            _ => format!("segments {}–{} of {n}", want.first().unwrap(), want.last().unwrap()),
        };
        let summary = v["summary"].as_str().unwrap();
        assert!(summary.contains(&place) && summary.contains(" of 0:00:09"), "{summary}");
        // It holds those segments' frames and no more.
        let frames: u64 =
            real.segments.iter().filter(|s| want.contains(&s.seq)).map(|s| s.video_frames).sum();
        let counted = ffprobe(
            &file,
            &["-select_streams", "v:0", "-count_frames", "-show_entries", "stream=nb_read_frames"],
        );
        assert_eq!(counted, frames.to_string(), "{name}");
        let html = std::fs::read_to_string(format!("{}.report.html", file.display())).unwrap();
        assert!(html.contains("data-code=\"clip.span\""), "{name}");
    }

    // Outside the recording, an empty span, a mistyped time: clear errors, nothing written.
    for (from, to, says) in [
        ("0:20", "0:30", "outside the recording"),
        ("5", "5", "is not before --to"),
        ("6", "4", "is not before --to"),
        ("1:75", "2:00", "is not a media time"),
    ] {
        let (out, file) = export(from, to, "bad.mp4");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{from}–{to}: {err}");
        assert!(err.contains(says), "{from}–{to}: {err}");
        assert!(!file.exists());
    }
}
