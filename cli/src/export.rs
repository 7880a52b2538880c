//! `custody export`: one playable MP4 of a verified recording, with proof that it holds the
//! same media packets as the sealed segments.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use custody_format::report::{code, Check, CheckState, Verdict};
use custody_verifier::html::{HtmlExtras, Section};

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
    let media = crate::media::plaintext(bundle, &ids, segments.iter().map(|s| s.seq).collect());
    let remuxed = custody_capture::remux_to_mp4(media, &args.output, &mut |us| {
        if let Some(b) = &bar {
            b.set_position(us.max(0) as u64);
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let remuxed = remuxed.map_err(|e| CliError::cannot(e.to_string()))?;

    // Read the written file back and cut it where the recording was cut: each cut must
    // have the packet digest its signed record states.
    let digests =
        custody_capture::digest_file(&args.output, &crate::media::boundaries(&segments), None)
            .map_err(|e| {
                CliError::cannot(format!("reading back {}: {e}", args.output.display()))
            })?;
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
    let file_name = args
        .output
        .file_name()
        .map_or_else(|| args.output.display().to_string(), |n| n.to_string_lossy().into_owned());
    if mismatched.is_empty() {
        checks.push(Check::new(
            code::EXPORT_DIGEST_MATCH,
            format!(
                "{file_name}, cut where the recording was cut, has the signed packet digest of all {} segments",
                segments.len()
            ),
        ));
    }
    let sha = file_sha256(&args.output)?;
    let summary = if mismatched.is_empty() {
        format!(
            "{file_name} (SHA-256 {sha}) holds exactly the media packets of the {} sealed segments, {:.3} s, remuxed without re-encoding: its packet digest equals the recording's for every segment.",
            segments.len(),
            remuxed.duration_us as f64 / 1e6
        )
    } else {
        format!(
            "{file_name} (SHA-256 {sha}) does NOT hold the same media packets as segments {mismatched:?}."
        )
    };
    let section = Section { title: "Exported video".into(), summary: summary.clone(), checks };
    let html_path = beside(&args.output, "html");
    let json_path = beside(&args.output, "json");
    let json = serde_json::json!({
        "file": args.output.display().to_string(),
        "sha256": sha,
        "segments": segments.len(),
        "duration_us": remuxed.duration_us,
        "packets": remuxed.packets,
        "digest_matches": mismatched.is_empty(),
        "mismatched_segments": mismatched,
        "summary": summary,
        "checks": section.checks,
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
