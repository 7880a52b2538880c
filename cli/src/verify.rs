//! `custody verify`: the lawyer's check of an evidence bundle, offline.

use std::path::Path;

use custody_format::ids::PublicKey;
use custody_format::report::{CheckState, Verdict};
use custody_verifier::{Opener, Options, Report, Trust};

use crate::cli::VerifyArgs;
use crate::common::{print, CliError};

/// Decrypts with the legal team's age identities, in memory.
struct AgeOpener(Vec<age::x25519::Identity>);

impl Opener for AgeOpener {
    fn open(&self, ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        custody_vault::seal::open(ciphertext, &self.0).map_err(|e| e.to_string())
    }
}

fn trust_key(arg: Option<&str>) -> Result<Option<PublicKey>, CliError> {
    let Some(text) = arg else { return Ok(None) };
    let text = match std::fs::read_to_string(text) {
        Ok(file) => file,
        Err(_) => text.to_string(),
    };
    PublicKey::parse(text.trim()).map(Some).map_err(|e| {
        CliError::cannot(format!("--trust: {e}"))
            .hint("give the legal team's server key (ed25519:…) or a file holding it")
    })
}

fn text_report(r: &Report) -> String {
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
        let state = match c.state {
            CheckState::Ok => "ok",
            CheckState::Warning => "WARNING",
            CheckState::Failure => "FAILURE",
            CheckState::NotChecked => "not checked",
        };
        out.push_str(&format!("  [{state}] {} — {}\n", c.code, c.message));
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

pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    let trust = match args.trust.as_deref() {
        Some(t) => trust_key(Some(t))?,
        None => saved_trust()?,
    };
    let identities = match &args.identity {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::cannot(format!("{}: {e}", path.display())))?;
            let ids = custody_vault::keys::parse_identities(&text);
            if ids.is_empty() {
                return Err(CliError::cannot(format!(
                    "{} holds no age identity (AGE-SECRET-KEY-1…)",
                    path.display()
                )));
            }
            Some(AgeOpener(ids))
        }
        None => None,
    };
    let source = custody_verifier::source::open(Path::new(&args.bundle)).map_err(|e| {
        CliError::cannot(e.to_string()).hint("give a bundle directory or its .tar file")
    })?;
    let options = Options { trust, opener: identities.as_ref().map(|o| o as &dyn Opener) };
    let report = custody_verifier::verify(source.as_ref(), &options)
        .map_err(|e| CliError::cannot(e.to_string()))?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()));
    } else {
        print(&text_report(&report));
    }
    match report.verdict {
        Verdict::IntactComplete | Verdict::IntactCutOff { .. } => Ok(()),
        Verdict::Tampered => Err(CliError::failed("the bundle failed verification")),
        Verdict::CouldNotCheck => Err(CliError::cannot("the bundle could not be fully checked")),
    }
}
