//! `custody enroll LINK` or `custody enroll URL TOKEN`: enroll this device with the legal
//! team's server.

use std::path::Path;

use custody_client::UploadError;
use custody_format::ids::{Fingerprint, PublicKey};
use custody_protocol::{Code, EnrollLink};

use crate::cli::EnrollArgs;
use crate::common::{device_key, open_vault, print, CliError};

pub fn upload_error(e: UploadError) -> CliError {
    let hint = match (&e, e.code()) {
        (UploadError::Network(_), _) => Some("check the URL and that the server is running"),
        (UploadError::NotEnrolled, _) => Some("ask the legal team for an enrollment token"),
        (UploadError::WrongServer { .. }, _) => Some(
            "this is not the legal team's server (or someone is in between): do not enroll; \
             ask the legal team for a new link",
        ),
        (_, Some(Code::EnrollTokenUnknown | Code::EnrollTokenUsed | Code::EnrollTokenExpired)) => {
            Some("ask the legal team for a new token (`custody admin enroll-token`)")
        }
        (_, Some(Code::AuthStale)) => {
            Some("this computer's clock is more than 5 minutes off; correct it")
        }
        _ => None,
    };
    let err = CliError::failed(e.to_string());
    match hint {
        Some(h) => err.hint(h),
        None => err,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::cannot(format!("starting the runtime: {e}")))
}

/// What the arguments name: a link, or a URL and a token.
enum Target {
    Link(EnrollLink),
    UrlToken(String, String),
}

fn target(args: &EnrollArgs) -> Result<Target, CliError> {
    let Some(token) = &args.token else {
        return EnrollLink::parse(&args.url).map(Target::Link).map_err(|e| {
            CliError::cannot(format!("`{}` is not an enrollment link: {e}", short(&args.url)))
                .hint("give the whole link the legal team sent, or the server's URL and the token")
        });
    };
    let token = token.trim();
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::cannot(format!(
            "`{}` is not an enrollment token: a token is 64 hex digits",
            short(token)
        ))
        .hint("copy the whole token the legal team's `custody admin enroll-token` printed"));
    }
    Ok(Target::UrlToken(args.url.clone(), token.to_string()))
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Holds the target to `--expect-fingerprint`: a URL and token become a link naming it
/// (so the server's key is asked for and compared before the token is sent or anything
/// pinned); a link must name the same fingerprint.
fn expecting(target: Target, expect: Option<&str>) -> Result<Target, CliError> {
    let Some(fp) = expect else { return Ok(target) };
    let fp = Fingerprint::parse(fp).map_err(|e| {
        CliError::cannot(format!("`{}` is not a key fingerprint: {e}", short(fp)))
            .hint("copy the fingerprint the legal team gave (20 characters, as 7Q2MX-0K4RT-…)")
    })?;
    match target {
        Target::Link(l) if l.fingerprint != fp => Err(CliError::cannot(format!(
            "the link names the server key {}, not {fp}",
            l.fingerprint
        ))
        .hint("do not enroll: ask the legal team which is right, and for a new link")),
        Target::Link(l) => Ok(Target::Link(l)),
        Target::UrlToken(url, token) => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&token, &mut bytes)
                .map_err(|_| CliError::cannot("a token is 64 hex digits"))?;
            Ok(Target::Link(EnrollLink {
                server: url.trim_end_matches('/').to_string(),
                token: bytes,
                fingerprint: fp,
            }))
        }
    }
}

pub fn run(vault_dir: &Path, args: &EnrollArgs) -> Result<(), CliError> {
    let target = expecting(target(args)?, args.expect_fingerprint.as_deref())?;
    let url = match &target {
        Target::Link(l) => l.server.as_str(),
        Target::UrlToken(u, _) => u.as_str(),
    };
    if url.starts_with("http://") && !args.insecure_http {
        return Err(CliError::cannot("a plain http:// URL has no TLS certificate to pin").hint(
            "use the https:// URL the legal team gave you (or --insecure-http for a loopback test)",
        ));
    }
    let vault = open_vault(vault_dir)?;
    let key = device_key(vault_dir)?;
    let e = runtime()?
        .block_on(async {
            match &target {
                Target::Link(l) => custody_client::enroll_link(&vault, &key, l).await,
                Target::UrlToken(u, t) => custody_client::enroll(&vault, &key, u, t).await,
            }
        })
        .map_err(upload_error)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string(&e).unwrap_or_default()));
    } else {
        let fp = PublicKey::parse(&e.server_key)
            .map(|k| k.fingerprint().to_string())
            .unwrap_or_default();
        print(&format!(
            "Enrolled as \"{}\" with {}.\nServer key fingerprint: {fp} (compare it with the legal team's)\n\
             TLS: {}\nRecordings are now sealed to: {}\n",
            e.label,
            e.url,
            tls_line(&e),
            if e.recipients.is_empty() {
                "(the server names none; the vault's recipients are unchanged)".to_string()
            } else {
                e.recipients.join(", ")
            },
        ));
    }
    Ok(())
}

/// What the enrollment trusts of the server's TLS, for people.
fn tls_line(e: &custody_client::Enrollment) -> String {
    match custody_client::tls::enrollment_pin(&e.url, e.tls_pin.as_deref(), e.tls_sha256.as_deref())
    {
        Ok(Some(pin)) => pin.describe(),
        Ok(None) => "none (plain HTTP)".to_string(),
        Err(why) => why,
    }
}
