//! `custody verify`: the lawyer's check of an evidence bundle, offline.

use std::path::{Path, PathBuf};

use custody_format::ids::{Fingerprint, PublicKey};
use custody_format::record::Container;
use custody_format::report::{CheckState, Verdict};
use custody_verifier::facts::Zone;
use custody_verifier::html::HtmlExtras;
use custody_verifier::{MediaFacts, Opener, Options, Report, Trust};

use crate::cli::VerifyArgs;
use crate::common::{print, CliError};

/// Decrypts with the legal team's age identities, in memory.
/// The second field is a fragmented MP4 recording's initialisation segment, which its
/// later segments are demuxed with.
struct AgeOpener(Vec<age::x25519::Identity>, Option<Vec<u8>>);

impl Opener for AgeOpener {
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        custody_vault::seal::open(ciphertext, &self.0).map_err(|e| e.to_string())
    }

    /// A segment demuxed alone with FFmpeg (docs/format.md 6.3, 6.4).
    fn media(&self, container: Container, plaintext: &[u8]) -> Option<Result<MediaFacts, String>> {
        crate::media::segment_facts(container, self.1.as_deref(), plaintext)
    }

    fn recipients(&self) -> Vec<String> {
        self.0.iter().map(|i| i.to_public().to_string()).collect()
    }
}

/// A time zone from the IANA database that jiff carries inside the binary (the same on
/// every machine, whatever its own zoneinfo), for `--tz`.
struct IanaZone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone for IanaZone {
    fn name(&self) -> &str {
        &self.name
    }

    fn offset_at(&self, us: i64) -> (i32, String) {
        match jiff::Timestamp::from_microsecond(us) {
            Ok(ts) => {
                let info = self.tz.to_offset_info(ts);
                (info.offset().seconds(), info.abbreviation().to_string())
            }
            // Outside jiff's range (years beyond ±9999): shown in UTC only.
            Err(_) => (0, String::new()),
        }
    }
}

/// The zone `--tz` names, or an error that says how to name one.
fn zone(name: &str) -> Result<IanaZone, CliError> {
    let tz = jiff::tz::TimeZone::get(name).map_err(|_| {
        CliError::cannot(format!("--tz: `{name}` is not a time zone in the IANA database"))
            .hint("give an IANA zone name such as America/Chicago, Europe/Madrid or UTC")
    })?;
    let name = tz.iana_name().unwrap_or(name).to_string();
    Ok(IanaZone { name, tz })
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
        Verdict::SignerNotConfirmed { .. } => "SIGNER NOT CONFIRMED",
        Verdict::CouldNotCheck => "COULD NOT CHECK",
    };
    out.push_str(&format!("Verdict: {headline}\n{}\n\n", r.summary));
    out.push_str(&format!("Time:      {}\n", r.independent_time));
    if let Some(id) = &r.recording_id {
        out.push_str(&format!("Recording: {id}\n"));
    }
    if let Some(f) = &r.recording {
        let by =
            f.device_label.as_deref().map_or("an unknown device".into(), |l| format!("\"{l}\""));
        match &f.imported {
            Some(file) => {
                out.push_str(&format!(
                    "Origin:    IMPORTED from a file by {by}, not captured live\n"
                ));
                out.push_str(&format!(
                    "File:      {} (SHA-256 {}, {} bytes); its own times are claims\n",
                    file.name, file.sha256, file.len
                ));
                out.push_str(&format!(
                    "Sealed:    {} (device clock, at import)\n",
                    f.started.full()
                ));
            }
            None => {
                out.push_str(&format!("Origin:    live, captured by {by}\n"));
                out.push_str(&format!("Started:   {} (device clock)\n", f.started.full()));
                // A cut-off recording's end is its last proven second, printed below.
                if let Some(e) = f.ended.as_ref().filter(|_| f.last_proven.is_none()) {
                    out.push_str(&format!("Ended:     {} (device clock)\n", e.full()));
                }
            }
        }
        out.push_str(&format!(
            "Duration:  {} of media\n",
            custody_verifier::facts::seconds(f.duration_us)
        ));
        if let Some(l) = &f.last_proven {
            let received =
                l.received.as_ref().map(|m| format!("; received {}", m.full())).unwrap_or_default();
            out.push_str(&format!(
                "Last proven second: {} (record {}, device clock{received})\n",
                l.device.full(),
                l.seq
            ));
        }
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
    let failed = if r.failed_positions.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = r.failed_positions.iter().map(u64::to_string).collect();
        format!(" (FAILED: position {}; every other one verified)", list.join(", "))
    };
    out.push_str(&format!("Segments:  {}{failed}\n", r.segments.len()));
    out.push_str(&format!(
        "Report:    made {} by {}\nBundle:    {}\n",
        r.about.made_at.full(),
        r.about.verifier,
        r.about.bundle_phrase()
    ));
    out.push_str("\nChecks:\n");
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
    verified_in(bundle, trust, identity, None, &[])
}

/// The TSA roots given with `--tsa-trust`: each file PEM certificates or one DER
/// certificate, read before the bundle is.
fn tsa_trust(files: &[PathBuf]) -> Result<Vec<Vec<u8>>, CliError> {
    let mut roots = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| {
            CliError::cannot(format!("--tsa-trust {}: {e}", f.display()))
                .hint("give the time-stamp authority's root certificate file (PEM or DER)")
        })?;
        let certs = custody_verifier::tsa::Roots::parse_file(&bytes).map_err(|e| {
            CliError::cannot(format!("--tsa-trust {}: {e}", f.display()))
                .hint("give the time-stamp authority's root certificate file (PEM or DER)")
        })?;
        roots.extend(certs);
    }
    Ok(roots)
}

/// [`verified`], with times also shown in `zone`'s local time. A `.tar` is named in the
/// report by its own SHA-256, hashed while the bundle is verified.
fn verified_in(
    bundle: &Path,
    trust: Option<&str>,
    identity: Option<&Path>,
    zone: Option<&dyn Zone>,
    tsa_roots: &[PathBuf],
) -> Result<(Report, Option<Vec<age::x25519::Identity>>), CliError> {
    let tsa_trust = tsa_trust(tsa_roots)?;
    let (trust, trust_fingerprint) = match trust.map(trust_anchor).transpose()? {
        Some(Anchor::Key(k)) => (Some(k), None),
        Some(Anchor::Fingerprint(f)) => (None, Some(f)),
        None => (saved_trust()?, None),
    };
    let identities = identity.map(crate::media::identities).transpose()?;
    let source = custody_verifier::source::open(bundle).map_err(|e| {
        CliError::cannot(e.to_string()).hint("give a bundle directory or its .tar file")
    })?;
    let opener = identities.clone().map(|ids| {
        let init = crate::media::mp4_init_segment(bundle, &ids);
        AgeOpener(ids, init)
    });
    let options = Options {
        trust,
        trust_fingerprint,
        opener: opener.as_ref().map(|o| o as &dyn Opener),
        zone,
        tsa_trust,
    };
    let (report, archive) = std::thread::scope(|s| {
        let archive =
            bundle.is_file().then(|| s.spawn(|| custody_verifier::facts::file_sha256(bundle)));
        let report = custody_verifier::verify(source.as_ref(), &options);
        (report, archive.and_then(|h| h.join().ok()))
    });
    let mut report = report.map_err(|e| CliError::cannot(e.to_string()))?;
    match archive {
        Some(Ok(sha)) => {
            let name = bundle
                .file_name()
                .map_or_else(|| bundle.display().to_string(), |n| n.to_string_lossy().into_owned());
            report.about.set_archive(&name, &sha);
        }
        Some(Err(e)) => {
            eprintln!("custody: {}: the archive's SHA-256 could not be read: {e}", bundle.display())
        }
        None => {}
    }
    Ok((report, identities))
}

pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let bundle = Path::new(&args.bundle);
    // Settled before anything is read: a zone that does not exist is an argument error.
    let zone = args.tz.as_deref().map(zone).transpose()?;
    let (report, identities) = verified_in(
        bundle,
        args.trust.as_deref(),
        args.identity.as_deref(),
        zone.as_ref().map(|z| z as &dyn Zone),
        &args.tsa_trust,
    )?;
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
            // Only segments that verified are shown (a damaged one may not even decrypt).
            let intact = |segs: Vec<custody_format::record::SegmentRecord>| -> Vec<_> {
                segs.into_iter().filter(|s| !report.failed_positions.contains(&s.seq)).collect()
            };
            match crate::media::segment_records(bundle)
                .map(intact)
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
        Verdict::SignerNotConfirmed { .. } => Err(CliError::cannot(
            "the bundle is not signed by the server key given to trust",
        )
        .hint("compare --trust with the fingerprint the legal team reads out to you; the report prints the one the bundle is signed by")),
        Verdict::CouldNotCheck => Err(CliError::cannot("the bundle could not be fully checked")),
    }
}

/// Writes the HTML report to `path`.
pub fn write_html(path: &Path, report: &Report, extras: &HtmlExtras) -> Result<(), CliError> {
    std::fs::write(path, custody_verifier::html::render(report, extras))
        .map_err(|e| CliError::cannot(format!("{}: {e}", path.display())))
}
