//! The lawyer's side of the legal team's server: `custody login`, `custody recordings
//! --server`, `custody fetch`, `custody admin revoke` and `custody admin member add`.
//!
//! `login` pins the server's TLS certificate and signing key in `lawyer.json` (mode 0600);
//! every later request uses the pinned client and the saved token. The HTTP side is
//! `custody_client::lawyer`; this module reads arguments and says what happened.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use custody_client::lawyer::{self as api, LawyerConfig, LawyerError, Progress, Session};
use custody_protocol::Code;

use crate::cli::{FetchArgs, LoginArgs, MemberCommand, RecordingsArgs, RevokeArgs};
use crate::common::{print, CliError};
use crate::enroll::runtime;
use crate::recordings::{size, utc};

/// Where lawyer.json lives: `$CUSTODY_CONFIG_DIR`, else `$XDG_CONFIG_HOME/custody`, else
/// `~/.config/custody`.
pub fn config_path() -> Result<PathBuf, CliError> {
    let dir = std::env::var_os("CUSTODY_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("custody")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/custody")))
        .ok_or_else(|| CliError::cannot("no configuration directory: set CUSTODY_CONFIG_DIR"))?;
    Ok(dir.join("lawyer.json"))
}

/// The saved login, if any.
pub fn load() -> Result<Option<LawyerConfig>, CliError> {
    LawyerConfig::load(&config_path()?)
        .map_err(|e| lawyer_error(e).hint("run `custody login URL --token TOKEN` again"))
}

/// A client error as the CLI reports it: refusals exit 1 with a hint for their code,
/// everything else (unreachable, a bad answer, a local file) exits 2.
fn lawyer_error(e: LawyerError) -> CliError {
    let code = e.code();
    let err = match &e {
        LawyerError::Refused { .. } => CliError::failed(e.to_string()),
        _ => CliError::cannot(e.to_string()),
    };
    match (&e, code) {
        (LawyerError::Network(_), _) => err.hint("check the URL and that the server is running"),
        (LawyerError::Incomplete(_), _) => {
            err.hint("run the same command again to resume where it stopped")
        }
        (LawyerError::Output(_), _) => err.hint("choose another -o PATH (nothing was fetched)"),
        (_, Some(Code::AuthToken | Code::AuthMissing | Code::AuthMalformed)) => {
            err.hint("check the token, or ask an admin for a new one (`custody admin member add`)")
        }
        (_, Some(Code::AuthRateLimited)) => {
            err.hint("too many failed logins from here; wait a minute")
        }
        (_, Some(Code::AuthRole)) => err.hint("this needs an admin's token"),
        (_, Some(Code::DeviceUnknown)) => {
            err.hint("give the device's key (ed25519:…) or its fingerprint")
        }
        _ => err,
    }
}

fn logged_in(url: Option<&str>) -> Result<LawyerConfig, CliError> {
    let cfg = load()?.ok_or_else(|| {
        CliError::cannot("not logged in to a legal-team server")
            .hint("run `custody login URL --token TOKEN` with the token an admin gave you")
    })?;
    if let Some(url) = url.filter(|u| !u.is_empty()) {
        if url.trim_end_matches('/') != cfg.url {
            return Err(CliError::cannot(format!("logged in to {}, not to {url}", cfg.url))
                .hint(format!("run `custody login {url} --token TOKEN` first")));
        }
    }
    Ok(cfg)
}

fn session(cfg: LawyerConfig, timeout: Duration) -> Result<Session, CliError> {
    Session::new(cfg, timeout).map_err(lawyer_error)
}

pub fn login(args: &LoginArgs) -> Result<(), CliError> {
    let url = args.url.trim_end_matches('/').to_string();
    let https = url.starts_with("https://");
    let plain_ok = url.starts_with("http://") && args.insecure_http;
    if !(https || plain_ok) {
        return Err(CliError::cannot("the URL must be https:// (the server's TLS is pinned)")
            .hint(
            "use the https:// URL the legal team gave you (or --insecure-http for a loopback test)",
        ));
    }
    let (cfg, server_key) =
        runtime()?.block_on(api::login(&url, &args.token)).map_err(lawyer_error)?;
    let path = config_path()?;
    cfg.save(&path).map_err(lawyer_error)?;
    if args.json {
        let out = serde_json::json!({
            "url": cfg.url, "name": cfg.name, "role": cfg.role, "server_key": cfg.server_key,
            "server_fingerprint": server_key.fingerprint().to_string(),
            "tls_sha256": cfg.tls_sha256, "tls_pin": cfg.tls_pin,
            "config": path.display().to_string(),
        });
        print(&format!("{out}\n"));
    } else {
        print(&format!(
            "Logged in to {} as {} ({}).\nServer key fingerprint: {} (compare it with the legal team's)\n\
             TLS: {}\nSaved in {} (readable by you only).\n",
            cfg.url,
            cfg.name,
            cfg.role,
            server_key.fingerprint(),
            match custody_client::tls::enrollment_pin(
                &cfg.url,
                cfg.tls_pin.as_deref(),
                cfg.tls_sha256.as_deref()
            ) {
                Ok(Some(pin)) => pin.describe(),
                Ok(None) => "none (plain HTTP)".to_string(),
                Err(why) => why,
            },
            path.display()
        ));
    }
    Ok(())
}

pub fn recordings(args: &RecordingsArgs) -> Result<(), CliError> {
    let cfg = logged_in(args.server.as_deref())?;
    let url = cfg.url.clone();
    let list = runtime()?
        .block_on(session(cfg, Duration::from_secs(60))?.recordings())
        .map_err(lawyer_error)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&list).unwrap_or_default()));
        return Ok(());
    }
    if list.recordings.is_empty() {
        print(&format!("No recordings on {url}.\n"));
        return Ok(());
    }
    let mut out = format!(
        "{:<32}  {:<16}  {:<20}  {:>9}  {:<8}  {:>8}  {}\n",
        "RECORDING", "DEVICE", "STARTED (device)", "DURATION", "STATE", "SEGMENTS", "LAST RECEIPT"
    );
    for r in &list.recordings {
        let when = |t: Option<i64>| t.map(utc).unwrap_or_else(|| "-".into());
        let mut device = r.device_label.clone().unwrap_or_else(|| "?".into());
        if r.device_revoked {
            device.push_str(" (revoked)");
        }
        // An import's "started" is when it was sealed, not when it was filmed.
        let imported = r
            .imported
            .as_ref()
            .map(|f| match &f.damaged {
                Some(d) => format!("  imported from {} (its times are claims): {d}", f.file_name),
                None => format!("  imported from {} (its times are claims)", f.file_name),
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<32}  {:<16}  {:<20}  {:>8.1}s  {:<8}  {:>8}  {}{imported}\n",
            r.recording_id,
            device,
            when(r.started_at_us),
            r.duration_us.unwrap_or(0) as f64 / 1e6,
            state_words(r),
            r.segments,
            when(r.last_receipt_at_us),
        ));
    }
    print(&out);
    Ok(())
}

/// A recording's state as the listing says it: for one that stopped arriving, for how long
/// ("stalled (no segment for 12 s)").
fn state_words(r: &custody_protocol::body::RecordingSummary) -> String {
    use custody_protocol::body::RecordingStatus;
    match (r.state, r.silent_for_us) {
        (RecordingStatus::Stalled | RecordingStatus::CutOff, Some(us)) => {
            format!("{} (no segment for {})", r.state.as_str(), silence(us))
        }
        _ => r.state.as_str().to_string(),
    }
}

/// A silence in whole seconds, minutes or hours, as people say it.
fn silence(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

pub fn fetch(args: &FetchArgs) -> Result<(), CliError> {
    let (url, id) = match args.targets.as_slice() {
        [id] => (None, id.as_str()),
        [url, id] => (Some(url.as_str()), id.as_str()),
        _ => return Err(CliError::cannot("give [URL] RECORDING")),
    };
    if custody_format::ids::RecordingId::parse(id).is_err() {
        return Err(CliError::cannot(format!(
            "{id:?} is not a recording id (32 lower-case hex digits)"
        ))
        .hint("`custody recordings --server` lists them"));
    }
    // Checked before the server is asked anything: every retrieval is logged as evidence
    // accessed, so a typo in -o must not cost one.
    let out = &api::check_output(&args.output, args.tar).map_err(lawyer_error)?;
    let cfg = logged_in(url)?;
    let (part, access_file) = api::part_paths(out, args.tar);
    let s = session(cfg, Duration::from_secs(24 * 3600))?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut report = |p: Progress| match p {
        Progress::Started { start, total } if progress => {
            let b = indicatif::ProgressBar::new(total);
            b.set_position(start);
            bar = Some(b);
        }
        Progress::Got(n) => {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        }
        Progress::Restarting(why) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("custody: the partial download could not be resumed ({why}); starting again");
        }
        _ => {}
    };
    let got =
        runtime()?.block_on(s.fetch(id, &part, &access_file, &mut report)).map_err(lawyer_error)?;
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    if args.tar {
        std::fs::rename(&part, out)
            .map_err(|e| CliError::cannot(format!("{}: {e}", out.display())))?;
    } else {
        api::unpack(&part, out).map_err(lawyer_error)?;
        let _ = std::fs::remove_file(&part);
    }
    let _ = std::fs::remove_file(&access_file);
    if args.json {
        print(&format!(
            "{}\n",
            serde_json::json!({
                "path": out.display().to_string(),
                "form": if args.tar { "tar" } else { "directory" },
                "recording_id": id,
                "bytes": got.total,
                "access_log_index": got.access,
                "resumed_from": got.resumed_from,
            })
        ));
    } else {
        let resumed = if got.resumed_from > 0 {
            format!(", resumed at byte {}", got.resumed_from)
        } else {
            String::new()
        };
        print(&format!(
            "Wrote the evidence bundle {} ({}{resumed}).\n\
             This retrieval is custody log entry {}, and the bundle proves it.\n\
             Verify it: custody verify {}\n",
            out.display(),
            size(got.total),
            got.access,
            out.display()
        ));
    }
    Ok(())
}

pub fn revoke(args: &RevokeArgs) -> Result<(), CliError> {
    let cfg = logged_in(None)?;
    let v = runtime()?
        .block_on(session(cfg, Duration::from_secs(60))?.revoke(&args.device, &args.reason))
        .map_err(lawyer_error)?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string(&v).unwrap_or_default()));
    } else if v.already_revoked {
        print(&format!(
            "Device {} (\"{}\") was already revoked; nothing changed.\n",
            v.fingerprint, v.label
        ));
    } else {
        print(&format!(
            "Revoked device {} (\"{}\"). Its later uploads are refused; what it uploaded before\n\
             stays valid evidence, and bundles of its recordings show the revocation.\n",
            v.fingerprint, v.label
        ));
    }
    Ok(())
}

pub fn member(cmd: &MemberCommand) -> Result<(), CliError> {
    match cmd {
        MemberCommand::Add(a) => {
            let role = custody_server::Role::parse(&a.role)
                .ok_or_else(|| CliError::cannot("--role must be admin or member"))?;
            let token = match &a.database {
                Some(url) => {
                    crate::serve::check_identity_dir(&a.data)?;
                    let db = custody_server::store::block_on(crate::serve::connect_database(url))?;
                    custody_server::members::add_to(&db.members(), &a.name, role)
                }
                None => {
                    crate::serve::check_data_dir(&a.data)?;
                    custody_server::add_member(&a.data, &a.name, role)
                }
            }
            .map_err(|e| CliError::cannot(e.to_string()))?;
            if a.json {
                print(&format!(
                    "{}\n",
                    serde_json::json!({ "name": a.name, "role": role.as_str(), "token": token })
                ));
            } else {
                print(&format!(
                    "API token for {} ({}) — shown only now, stored only hashed:\n{token}\n\
                     On their computer: custody login {} --token {token}\n",
                    a.name,
                    role.as_str(),
                    crate::serve::server_url(&a.data, None)
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_recording_says_for_how_long() {
        let v = serde_json::json!({
            "recording_id": "00", "device_key": "k", "device_fingerprint": "f",
            "device_label": null, "device_revoked": false, "started_at_us": null,
            "duration_us": null, "state": "stalled", "segments": 2, "records": 3, "gaps": [],
            "last_receipt_at_us": null, "silent_for_us": 12_400_000,
        });
        let mut r: custody_protocol::body::RecordingSummary = serde_json::from_value(v).unwrap();
        assert_eq!(state_words(&r), "stalled (no segment for 12 s)");
        r.state = custody_protocol::body::RecordingStatus::CutOff;
        r.silent_for_us = Some(900_000_000);
        assert_eq!(state_words(&r), "cut off (no segment for 15 min)");
        r.silent_for_us = None;
        assert_eq!(state_words(&r), "cut off", "a server before silent_for_us");
    }
}
