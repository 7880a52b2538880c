//! `custody export`: one playable file of a verified recording (an MP4; for a browser's
//! recording a WebM, MP4 or Matroska file; for a photo the JPEG itself), with proof that it
//! holds the same media packets as the sealed segments, and on request a re-encoded
//! viewing copy labelled as such.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use custody_format::record::{Container, RecordingHeader, SegmentRecord};
use custody_format::report::{code, Check, CheckState, Verdict};
use custody_verifier::html::{HtmlExtras, Section};
use sha2::Digest as _;

use crate::cli::ExportArgs;
use crate::common::{print, CliError};

/// `video.mp4` → `video.mp4.report.html` (or `.json`).
fn beside(out: &Path, ext: &str) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(format!(".report.{ext}"));
    PathBuf::from(name)
}

/// A media time as typed: `730`, `730.5` (seconds), `12:10` (m:ss), `0:12:10` (h:mm:ss),
/// the last part with an optional fraction.
pub fn parse_media_time(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let (last, whole) = parts.split_last()?;
    let seconds: f64 = last.parse().ok().filter(|s: &f64| s.is_finite() && *s >= 0.0)?;
    if !whole.is_empty() && seconds >= 60.0 {
        return None;
    }
    let mut total = 0i64;
    for (i, p) in whole.iter().enumerate() {
        let v: i64 = p.parse().ok().filter(|v| *v >= 0)?;
        // Minutes under an hour when hours are given; hours (or minutes alone) unbounded.
        if i > 0 && v >= 60 {
            return None;
        }
        total = total.checked_mul(60)?.checked_add(v)?;
    }
    let us = (total as f64 * 60.0 + seconds) * 1e6;
    (us < 1e17).then(|| us.round() as i64)
}

/// `h:mm:ss` of a media time, as a clip's report says where it sits.
fn hms(us: i64) -> String {
    let s = (us.max(0) + 500_000) / 1_000_000;
    format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// The asked span, from the arguments (before any I/O, so a mistyped time fails at once).
fn asked_span(args: &ExportArgs) -> Result<Option<(i64, i64)>, CliError> {
    let (Some(from), Some(to)) = (&args.from, &args.to) else { return Ok(None) };
    let parse = |flag: &str, v: &str| {
        parse_media_time(v).ok_or_else(|| {
            CliError::cannot(format!("{flag} {v:?} is not a media time")).hint(
                "give seconds (730), m:ss (12:10) or h:mm:ss (0:12:10) from the recording's start",
            )
        })
    };
    let (from_us, to_us) = (parse("--from", from)?, parse("--to", to)?);
    if from_us >= to_us {
        return Err(CliError::cannot(format!(
            "--from {from} is not before --to {to}: the clip would be empty"
        )));
    }
    Ok(Some((from_us, to_us)))
}

/// The whole segments that cover `from_us..to_us` of the recording's media time (counted
/// from the start of its first segment); a span outside the recording is an error.
fn clip_segments(
    segments: &[SegmentRecord],
    (from_us, to_us): (i64, i64),
) -> Result<Vec<SegmentRecord>, CliError> {
    let origin = segments.first().map_or(0, |s| s.media_start_us);
    let end = segments.iter().map(|s| s.media_end_us).max().unwrap_or(origin) - origin;
    // A length shown rounded to the second (0:20:00) may be typed as the end.
    if from_us >= end || to_us > end + 1_000_000 {
        return Err(CliError::cannot(format!(
            "the span {}–{} is outside the recording, which is {} long",
            hms(from_us),
            hms(to_us),
            hms(end)
        ))
        .hint("media time counts from the recording's start: `custody verify` shows its length"));
    }
    let picked: Vec<SegmentRecord> = segments
        .iter()
        .filter(|s| s.media_end_us - origin > from_us && s.media_start_us - origin < to_us)
        .cloned()
        .collect();
    let contiguous = picked.windows(2).all(|w| w[1].seq == w[0].seq + 1);
    if picked.is_empty() || !contiguous {
        return Err(CliError::cannot(format!(
            "no contiguous sealed segments cover {}–{} of the recording",
            hms(from_us),
            hms(to_us)
        )));
    }
    Ok(picked)
}

pub fn run(args: &ExportArgs) -> Result<(), CliError> {
    let bundle = Path::new(&args.bundle);
    let span = asked_span(args)?;
    let (report, ids) =
        crate::verify::verified(bundle, args.trust.as_deref(), Some(args.identity.as_path()))?;
    let ids = ids.unwrap_or_default();
    match report.verdict {
        Verdict::IntactComplete | Verdict::IntactCutOff { .. } => {}
        Verdict::Tampered => {
            let reasons: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.state == CheckState::Failure)
                .map(|c| format!("{} ({})", c.message, c.code))
                .collect();
            return Err(CliError::failed(format!(
                "refusing to export a bundle that failed verification: {}",
                reasons.join("; ")
            ))
            .hint("run `custody verify --html FILE` on it for the full report"));
        }
        Verdict::SignerNotConfirmed { .. } => {
            return Err(CliError::cannot(format!(
                "the bundle is not signed by the server key given to trust, so it is not exported: {}",
                report.summary
            ))
            .hint("compare --trust with the fingerprint the legal team reads out to you"));
        }
        Verdict::CouldNotCheck => {
            let reasons: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.state == CheckState::NotChecked)
                .map(|c| c.message.clone())
                .collect();
            return Err(CliError::cannot(format!(
                "the bundle could not be fully checked, so it is not exported: {}",
                reasons.join("; ")
            ))
            .hint("check that --identity is the case key the recording was sealed to"));
        }
    }

    let segments = crate::media::segment_records(bundle)?;
    if segments.is_empty() {
        return Err(CliError::cannot("the bundle holds no segments to export"));
    }
    let header = crate::media::header(bundle)?;
    let container = header.as_ref().map_or(Container::MpegTs, |h| h.container);
    let file_name = name_of(&args.output);
    let all = segments;
    let segments = match span {
        None => all.clone(),
        Some(_) if container == Container::Photo => {
            return Err(CliError::cannot(
                "a photo has no media time: --from and --to are for videos",
            ))
        }
        Some(span) => {
            let picked = clip_segments(&all, span)?;
            if container == Container::FragmentedMp4 && picked[0].seq != 1 {
                return Err(CliError::cannot(
                    "a clip of a fragmented-MP4 recording must start at its first segment, which holds the initialisation every later segment needs",
                )
                .hint("give --from 0"));
            }
            picked
        }
    };
    let written = match container {
        Container::Photo => export_photo(args, bundle, &ids, &segments, &file_name)?,
        _ => export_video(
            args,
            bundle,
            &ids,
            &segments,
            header.as_ref(),
            &file_name,
            span.is_some(),
        )?,
    };
    let Written { mut checks, mismatched, mut summary, duration_us, packets } = written;
    let clip = span.map(|(from_us, to_us)| {
        let origin = all[0].media_start_us;
        let total = all.iter().map(|s| s.media_end_us).max().unwrap_or(origin) - origin;
        let (first, last) = (&segments[0], &segments[segments.len() - 1]);
        let (start, end) = (first.media_start_us - origin, last.media_end_us - origin);
        let last_seq = all.last().map_or(0, |s| s.seq);
        let which = if first.seq == last.seq {
            format!("segment {} of {last_seq}", first.seq)
        } else {
            format!("segments {}–{} of {last_seq}", first.seq, last.seq)
        };
        let place = format!("{}–{} of {}, {which}", hms(start), hms(end), hms(total));
        let those = match segments.len() {
            1 => "that sealed segment".to_string(),
            n => format!("those {n} sealed segments"),
        };
        checks.insert(
            0,
            Check::new(
                code::CLIP_SPAN,
                format!(
                    "{file_name} is {place}: the whole sealed segments at chain positions {} to {} (contiguous), which cover the asked {}–{} of the recording's media time",
                    first.seq,
                    last.seq,
                    hms(from_us),
                    hms(to_us)
                ),
            ),
        );
        if mismatched.is_empty() {
            summary = format!(
                "is a clip of the recording, {place}: it holds exactly the media packets of {those}, {:.3} s, remuxed without re-encoding, and its packet digest equals the signed packet digest of each.",
                duration_us as f64 / 1e6
            );
        }
        serde_json::json!({
            "from_us": from_us,
            "to_us": to_us,
            "start_us": start,
            "end_us": end,
            "recording_us": total,
            "first_seq": first.seq,
            "last_seq": last.seq,
            "of_segments": last_seq,
            "segments": segments.iter().map(|s| serde_json::json!({
                "seq": s.seq,
                "media_start_us": s.media_start_us - origin,
                "media_end_us": s.media_end_us - origin,
                "packet_digest": hex::encode(s.packet_digest),
                "stream_packets": s.stream_packets,
            })).collect::<Vec<_>>(),
            "place": place,
        })
    });
    let sha = file_sha256(&args.output)?;
    let mut summary = if mismatched.is_empty() {
        format!("{file_name} (SHA-256 {sha}) {summary}")
    } else {
        format!(
            "{file_name} (SHA-256 {sha}) does NOT hold the same media packets as segments {mismatched:?}."
        )
    };
    // The viewing copy is made from the proven remux only.
    let mut viewing = serde_json::Value::Null;
    if args.viewing_copy && mismatched.is_empty() && container != Container::Photo {
        let path = viewing_copy_path(&args.output);
        let copy_name = name_of(&path);
        let label =
            format!("re-encoded viewing copy; its proof is the remux {file_name} it was made from");
        let made = custody_capture::viewing_copy(&args.output, &path, &label)
            .map_err(|e| CliError::cannot(format!("making the viewing copy: {e}")))?;
        let copy_sha = file_sha256(&path)?;
        summary.push_str(&format!(
            " {copy_name} (SHA-256 {copy_sha}, {:.3} s, H.264/AAC) is a {label}: its packets are new, so it proves nothing by itself.",
            made.duration_us as f64 / 1e6
        ));
        viewing = serde_json::json!({
            "file": path.display().to_string(),
            "sha256": copy_sha,
            "label": label,
            "duration_us": made.duration_us,
        });
    }
    let section = Section { title: "Exported video".into(), summary: summary.clone(), checks };
    let html_path = beside(&args.output, "html");
    let json_path = beside(&args.output, "json");
    let json = serde_json::json!({
        "file": args.output.display().to_string(),
        "sha256": sha,
        "segments": segments.len(),
        "clip": clip,
        "duration_us": duration_us,
        "packets": packets,
        "digest_matches": mismatched.is_empty(),
        "mismatched_segments": mismatched,
        "summary": summary,
        "checks": section.checks,
        "viewing_copy": viewing,
        "report_html": html_path.display().to_string(),
        "verification": report,
    });
    let json_text = serde_json::to_string_pretty(&json).unwrap_or_default();
    std::fs::write(&json_path, format!("{json_text}\n"))
        .map_err(|e| CliError::cannot(format!("{}: {e}", json_path.display())))?;
    let extras = HtmlExtras { sections: vec![section], ..HtmlExtras::default() };
    crate::verify::write_html(&html_path, &report, &extras)?;
    if args.json {
        print(&format!("{json_text}\n"));
    } else {
        print(&format!("{summary}\nReport: {}\n", html_path.display()));
    }
    if mismatched.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed("the exported file's packets differ from the recording's"))
    }
}

/// What one kind of export wrote and found.
struct Written {
    checks: Vec<Check>,
    mismatched: Vec<u64>,
    /// What the file is, after "NAME (SHA-256 …) ", when every segment matched.
    summary: String,
    duration_us: i64,
    packets: Vec<u64>,
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// `video.webm` → `video.re-encoded-viewing-copy.mp4`: the name says what it is.
fn viewing_copy_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.re-encoded-viewing-copy.mp4"))
}

/// A photo: the sealed JPEG as it is, checked byte for byte against its record.
fn export_photo(
    args: &ExportArgs,
    bundle: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
    file_name: &str,
) -> Result<Written, CliError> {
    let s = &segments[0];
    let source =
        custody_verifier::source::open(bundle).map_err(|e| CliError::cannot(e.to_string()))?;
    let jpeg = source
        .read_small(&custody_format::bundle::segment_path(s.seq), 1 << 30)
        .and_then(|ct| custody_vault::seal::open(&ct, ids))
        .map_err(|e| CliError::cannot(format!("segment {}: {e}", s.seq)))?;
    std::fs::write(&args.output, &jpeg)
        .map_err(|e| CliError::cannot(format!("{}: {e}", args.output.display())))?;
    let back = std::fs::read(&args.output)
        .map_err(|e| CliError::cannot(format!("reading back {}: {e}", args.output.display())))?;
    let same = <[u8; 32]>::from(sha2::Sha256::digest(&back)) == s.plaintext_sha256;
    let (checks, mismatched) = if same {
        let what = format!("{file_name} is the sealed photo byte for byte: its SHA-256 is the one its signed record states");
        (vec![Check::new(code::EXPORT_DIGEST_MATCH, what)], Vec::new())
    } else {
        let what = format!("{file_name} differs from the sealed photo");
        (vec![Check::new(code::EXPORT_DIGEST_MISMATCH, what).at(s.seq)], vec![s.seq])
    };
    Ok(Written {
        checks,
        mismatched,
        summary: "is the sealed photo (JPEG) itself, byte for byte.".into(),
        duration_us: 0,
        packets: vec![1],
    })
}

/// A video recording: one remux, read back and compared with every segment's record.
fn export_video(
    args: &ExportArgs,
    bundle: &Path,
    ids: &[age::x25519::Identity],
    segments: &[SegmentRecord],
    header: Option<&RecordingHeader>,
    file_name: &str,
    clip: bool,
) -> Result<Written, CliError> {
    let container = header.map_or(Container::MpegTs, |h| h.container);
    let browser = matches!(container, Container::Webm | Container::SelfContainedMp4);
    // A browser recording's file format follows the output's extension, if it carries the
    // recording's codecs.
    let muxer = if browser {
        let codecs: Vec<&str> = header
            .map(|h| h.streams.iter().map(|s| s.codec.as_str()).collect())
            .unwrap_or_default();
        let (best, best_ext) = custody_capture::remux_format(&codecs);
        let ext = args.output.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("mkv") => "matroska",
            Some("webm") if best == "webm" => "webm",
            Some("mp4") if best != "matroska" => "mp4",
            _ => {
                return Err(CliError::cannot(format!(
                    "{file_name}: a recording of {} is exported as .{best_ext} (or .mkv)",
                    codecs.join(", ")
                ))
                .hint(format!("give -o with the .{best_ext} or .mkv extension")))
            }
        }
    } else {
        "mp4"
    };
    let total_us: i64 = segments.iter().map(|s| s.media_end_us - s.media_start_us).sum();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total_us.max(1) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "exporting {bar:40} {percent:>3}% of the recording's media time",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut progress = |us: i64| {
        if let Some(b) = &bar {
            b.set_position(us.max(0) as u64);
        }
    };
    let remuxed = if browser {
        let pieces = crate::media::timed_plaintext(bundle, ids, segments);
        custody_capture::remux_browser(container, pieces, &args.output, muxer, &mut progress)
    } else {
        let media = crate::media::plaintext(bundle, ids, segments.iter().map(|s| s.seq).collect());
        let rotation = header.and_then(|h| h.rotation);
        custody_capture::remux_to_mp4_turned(media, &args.output, rotation, &mut progress)
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let remuxed = remuxed.map_err(|e| CliError::cannot(e.to_string()))?;

    // Read the written file back and cut it where the recording was cut (a browser
    // recording: by each segment's packet counts, as its segments were cut where the
    // browser's clusters fell): each cut must have the packet digest its signed record
    // states. An MP4 with Opus is cut by packet counts too: its edit list (the Opus
    // pre-skip and end padding) hides samples from a demuxer reading it by time.
    let reading_back =
        |e: String| CliError::cannot(format!("reading back {}: {e}", args.output.display()));
    let opus = header.is_some_and(|h| h.streams.iter().any(|s| s.codec == "opus"));
    // A clip is cut by packet counts too: its first packet is its first segment's, whose
    // first keyframe's time the records do not state exactly (audio may lead it), and
    // cutting by time would need it.
    let by_counts = browser || opus || clip;
    let digests = if by_counts {
        let counts: Vec<Vec<u64>> = segments.iter().map(|s| s.stream_packets.clone()).collect();
        custody_capture::digest_by_counts(&args.output, &counts)
            .map_err(|e| reading_back(e.to_string()))?
    } else {
        custody_capture::digest_file(&args.output, &crate::media::boundaries(segments), None)
            .map_err(|e| reading_back(e.to_string()))?
    };
    let mut checks = Vec::new();
    let mut mismatched = Vec::new();
    for (s, d) in segments.iter().zip(&digests) {
        if d.packet_digest.0 == s.packet_digest && d.packet_counts == s.stream_packets {
            continue;
        }
        mismatched.push(s.seq);
        checks.push(
            Check::new(
                code::EXPORT_DIGEST_MISMATCH,
                format!(
                    "segment {}: the exported file's packets ({:?} per stream) differ from the signed packet digest ({:?} per stream)",
                    s.seq, d.packet_counts, s.stream_packets
                ),
            )
            .at(s.seq),
        );
    }
    if mismatched.is_empty() {
        let how = if by_counts {
            "cut by each segment's packet counts"
        } else {
            "cut where the recording was cut"
        };
        checks.push(Check::new(
            code::EXPORT_DIGEST_MATCH,
            format!(
                "{file_name}, {how}, has the signed packet digest of all {} segments",
                segments.len()
            ),
        ));
    }
    Ok(Written {
        checks,
        mismatched,
        summary: format!(
            "holds exactly the media packets of the {} sealed segments, {:.3} s, remuxed without re-encoding: its packet digest equals the recording's for every segment.",
            segments.len(),
            remuxed.duration_us as f64 / 1e6
        ),
        duration_us: remuxed.duration_us,
        packets: remuxed.packets,
    })
}

fn file_sha256(path: &Path) -> Result<String, CliError> {
    use sha2::Digest;
    use std::io::Read;
    let err = |e: std::io::Error| CliError::cannot(format!("{}: {e}", path.display()));
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            return Ok(hex::encode(h.finalize()));
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_media_time as parse;

    #[test]
    fn media_times_as_typed() {
        assert_eq!(parse("730"), Some(730_000_000));
        assert_eq!(parse("12:10"), Some(730_000_000));
        assert_eq!(parse("0:12:10"), Some(730_000_000));
        assert_eq!(parse("12:10.5"), Some(730_500_000));
        assert_eq!(parse(" 2.25 "), Some(2_250_000));
        // Minutes alone may pass an hour (75:00 is 1:15:00).
        assert_eq!(parse("75:00"), parse("1:15:00"));
        for bad in ["", "1:75", "1:60:00", "a", "-3", "1::2", "1:2:3:4", "inf", "NaN", "1:-5"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
