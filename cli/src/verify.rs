//! `custody verify`: the lawyer's check of an evidence bundle, offline.

use std::path::Path;

use custody_format::ids::{Fingerprint, PublicKey};
use custody_format::record::Container;
use custody_format::report::{CheckState, Verdict};
use custody_verifier::html::HtmlExtras;
use custody_verifier::{MediaFacts, Opener, Options, Report, Trust};

use crate::cli::VerifyArgs;
use crate::common::{print, CliError};

/// Decrypts with the legal team's age identities, in memory.
struct AgeOpener(Vec<age::x25519::Identity>);

impl Opener for AgeOpener {
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        custody_vault::seal::open(ciphertext, &self.0).map_err(|e| e.to_string())
    }

    /// A browser's segment demuxed alone with FFmpeg (docs/format.md 6.4).
    fn media(&self, container: Container, plaintext: &[u8]) -> Option<Result<MediaFacts, String>> {
        Some(
            custody_capture::browser_segment(container, plaintext)
                .map(|b| MediaFacts {
                    stream_packets: b.packet_counts,
                    video_frames: b.video_frames,
                    packet_digest: b.packet_digest.0,
                    picture: (container == Container::Photo)
                        .then(|| b.streams.first().map(|s| (s.width, s.height)))
                        .flatten(),
                })
                .map_err(|e| e.to_string()),
        )
    }
}

/// The trust anchor as given to --trust: a key, a file holding one, or a fingerprint.
enum Anchor {
    Key(PublicKey),
    Fingerprint(Fingerprint),
}

fn trust_anchor(arg: &str) -> Result<Anchor, CliError> {
    let text = match std::fs::read_to_string(arg) {
        Ok(file) => file,
        Err(_) => arg.to_string(),
    };
    let text = text.trim();
    if let Ok(key) = PublicKey::parse(text) {
        return Ok(Anchor::Key(key));
    }
    if let Ok(fp) = Fingerprint::parse(text) {
        return Ok(Anchor::Fingerprint(fp));
    }
    Err(CliError::cannot(format!("--trust: `{}` is neither a server key nor a fingerprint", text.chars().take(80).collect::<String>()))
        .hint("give the legal team's server key (ed25519:…), a file holding it, or its fingerprint (XXXXX-XXXXX-XXXXX-XXXXX)"))
}

fn state_word(state: CheckState) -> &'static str {
    match state {
        CheckState::Ok => "ok",
        CheckState::Warning => "WARNING",
        CheckState::Failure => "FAILURE",
        CheckState::NotChecked => "not checked",
    }
}

/// The report as text.
pub fn text_report(r: &Report) -> String {
    let mut out = String::new();
    let headline = match &r.verdict {
        Verdict::IntactComplete => "INTACT AND COMPLETE",
        Verdict::IntactCutOff { .. } => "INTACT BUT CUT OFF",
        Verdict::Tampered => "TAMPERED",
        Verdict::CouldNotCheck => "COULD NOT CHECK",
    };
    out.push_str(&format!("Verdict: {headline}\n{}\n\n", r.summary));
    if let Some(id) = &r.recording_id {
        out.push_str(&format!("Recording: {id}\n"));
    }
    if let Some(p) = &r.photo {
        out.push_str(&format!("{}\n", custody_verifier::html::photo_line(p)));
    }
    if let Some((fp, label)) = &r.device {
        out.push_str(&format!("Device:    {fp} (\"{label}\")\n"));
    }
    match &r.trust {
        Trust::Trusted { fingerprint } => {
            out.push_str(&format!("Server:    {fingerprint} (trusted)\n"))
        }
        Trust::Unconfirmed { fingerprint } => {
            out.push_str(&format!("Server:    {fingerprint} (UNCONFIRMED: no --trust given)\n"))
        }
        Trust::Untrusted { fingerprint, trusted } => {
            out.push_str(&format!("Server:    {fingerprint} (NOT the trusted key {trusted})\n"))
        }
        Trust::Unknown => out.push_str("Server:    unknown\n"),
    }
    if let Some(skew) = r.clock_skew_us.filter(|s| *s > 0) {
        out.push_str(&format!(
            "Clock:     device ahead of server by at least {:.3} s\n",
            skew as f64 / 1e6
        ));
    }
    out.push_str(&format!("Segments:  {}\n\nChecks:\n", r.segments.len()));
    for c in &r.checks {
        out.push_str(&format!("  [{}] {} — {}\n", state_word(c.state), c.code, c.message));
    }
    out
}

/// The server key saved by `custody login`, when no --trust is given.
fn saved_trust() -> Result<Option<PublicKey>, CliError> {
    let Some(cfg) = crate::lawyer::load()? else { return Ok(None) };
    let key = PublicKey::parse(&cfg.server_key)
        .map_err(|e| CliError::cannot(format!("lawyer.json: server_key: {e}")))?;
    eprintln!(
        "custody: trusting the server key pinned by `custody login` to {} ({})",
        cfg.url,
        key.fingerprint()
    );
    Ok(Some(key))
}

/// Verifies the bundle at `bundle`, decrypting every segment if `identity` is given.
pub fn verified(
    bundle: &Path,
    trust: Option<&str>,
    identity: Option<&Path>,
) -> Result<(Report, Option<Vec<age::x25519::Identity>>), CliError> {
    let (trust, trust_fingerprint) = match trust.map(trust_anchor).transpose()? {
        Some(Anchor::Key(k)) => (Some(k), None),
        Some(Anchor::Fingerprint(f)) => (None, Some(f)),
        None => (saved_trust()?, None),
    };
    let identities = identity.map(crate::media::identities).transpose()?;
    let source = custody_verifier::source::open(bundle).map_err(|e| {
        CliError::cannot(e.to_string()).hint("give a bundle directory or its .tar file")
    })?;
    let opener = identities.clone().map(AgeOpener);
    let options =
        Options { trust, trust_fingerprint, opener: opener.as_ref().map(|o| o as &dyn Opener) };
    let report = custody_verifier::verify(source.as_ref(), &options)
        .map_err(|e| CliError::cannot(e.to_string()))?;
    Ok((report, identities))
}

pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let bundle = Path::new(&args.bundle);
    let (report, identities) = verified(bundle, args.trust.as_deref(), args.identity.as_deref())?;
    let mut extras = HtmlExtras::default();
    let mut original_json = None;
    // A matching that cannot run (say, a segment that will not decrypt) does not hide the
    // report: it is printed, then the error is returned.
    let mut original_error = None;
    if let (Some(original), Some(ids)) = (&args.original, &identities) {
        match crate::media::segment_records(bundle)
            .and_then(|segs| crate::media::match_original(bundle, ids, &segs, original))
        {
            Ok((section, json)) => {
                extras.sections.push(section);
                original_json = Some(json);
            }
            Err(e) => original_error = Some(e),
        }
    }
    if args.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let (Some(o), Some(map)) = (original_json, value.as_object_mut()) {
            map.insert("original".into(), o);
        }
        print(&format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default()));
    } else {
        let mut text = text_report(&report);
        for s in &extras.sections {
            text.push_str(&format!("\n{}:\n{}\n", s.title, s.summary));
            for c in &s.checks {
                text.push_str(&format!("  [{}] {} — {}\n", state_word(c.state), c.code, c.message));
            }
        }
        print(&text);
    }
    if let Some(path) = &args.html {
        if let Some(ids) = &identities {
            match crate::media::segment_records(bundle)
                .and_then(|segs| crate::media::thumbnails(bundle, ids, &segs))
            {
                Ok(t) => extras.thumbnails = t,
                Err(e) => eprintln!("custody: the report has no thumbnails: {}", e.message),
            }
        }
        write_html(path, &report, &extras)?;
    }
    let intact = matches!(report.verdict, Verdict::IntactComplete | Verdict::IntactCutOff { .. });
    if let (false, Some(e)) = (intact, &original_error) {
        eprintln!("custody: the original could not be matched: {}", e.message);
    }
    match report.verdict {
        Verdict::IntactComplete | Verdict::IntactCutOff { .. } => {
            original_error.map_or(Ok(()), Err)
        }
        Verdict::Tampered => Err(CliError::failed("the bundle failed verification")),
        Verdict::CouldNotCheck => Err(CliError::cannot("the bundle could not be fully checked")),
    }
}

/// Writes the HTML report to `path`.
pub fn write_html(path: &Path, report: &Report, extras: &HtmlExtras) -> Result<(), CliError> {
    std::fs::write(path, custody_verifier::html::render(report, extras))
        .map_err(|e| CliError::cannot(format!("{}: {e}", path.display())))
}
