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

pub fn run(args: &ExportArgs) -> Result<(), CliError> {
    let bundle = Path::new(&args.bundle);
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
    let written = match container {
        Container::Photo => export_photo(args, bundle, &ids, &segments, &file_name)?,
        _ => export_video(args, bundle, &ids, &segments, header.as_ref(), &file_name)?,
    };
    let Written { checks, mismatched, summary, duration_us, packets } = written;
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
        custody_capture::remux_to_mp4(media, &args.output, &mut progress)
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
    let by_counts = browser || opus;
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
