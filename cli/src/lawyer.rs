//! The lawyer's side of the legal team's server: `custody login`, `custody recordings
//! --server`, `custody fetch`, `custody admin revoke` and `custody admin member add`.
//!
//! `login` pins the server's TLS certificate and signing key in `lawyer.json` (mode 0600);
//! every later request uses the pinned client and the saved token.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_format::ids::PublicKey;
use custody_verifier::Source;
use serde::{Deserialize, Serialize};

use crate::cli::{FetchArgs, LoginArgs, MemberCommand, RecordingsArgs, RevokeArgs};
use crate::common::{print, CliError};
use crate::enroll::runtime;
use crate::recordings::{size, utc};

/// What `custody login` saves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LawyerConfig {
    /// The server's URL.
    pub url: String,
    /// The member's API token.
    pub token: String,
    /// The member's name.
    pub name: String,
    /// The member's role.
    pub role: String,
    /// The server's signing key, `ed25519:…` (the trust anchor for `custody verify`).
    pub server_key: String,
    /// SHA-256 of its TLS certificate, hex; `None` for plain HTTP (loopback tests).
    pub tls_sha256: Option<String>,
}

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
    let path = config_path()?;
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            CliError::cannot(format!("{}: {e}", path.display()))
                .hint("run `custody login URL --token TOKEN` again")
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::cannot(format!("{}: {e}", path.display()))),
    }
}

fn save(cfg: &LawyerConfig) -> Result<PathBuf, CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path()?;
    let err = |e: std::io::Error| CliError::cannot(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    // Created 0600 from the start: the token is a password.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(serde_json::to_string_pretty(cfg).unwrap_or_default().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(path)
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

fn pin_of(cfg: &LawyerConfig) -> Result<Option<[u8; 32]>, CliError> {
    match &cfg.tls_sha256 {
        None => Ok(None),
        Some(h) => hex::decode(h)
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(Some)
            .ok_or_else(|| CliError::cannot("lawyer.json: tls_sha256 is not 64 hex digits")),
    }
}

fn client(cfg: &LawyerConfig, timeout: Duration) -> Result<reqwest::Client, CliError> {
    let pin = pin_of(cfg)?;
    if pin.is_none() && cfg.url.starts_with("https://") {
        return Err(CliError::cannot("lawyer.json has no TLS pin for an https:// server")
            .hint("run `custody login` again"));
    }
    custody_client::pinned_client(pin, timeout)
        .map(|(c, _)| c)
        .map_err(|e| CliError::cannot(format!("making the HTTPS client: {e}")))
}

fn network(e: reqwest::Error) -> CliError {
    CliError::cannot(format!(
        "the server could not be reached: {}",
        custody_client::with_causes(&e)
    ))
    .hint("check the URL and that the server is running")
}

/// Sends a member request and reads its JSON answer; a refusal or an unreachable server
/// becomes the error that explains it.
async fn json_answer(req: reqwest::RequestBuilder) -> Result<serde_json::Value, CliError> {
    let resp = req.send().await.map_err(network)?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    resp.json().await.map_err(|e| CliError::cannot(format!("the server's answer: {e}")))
}

/// The refusal a server answered with, as an error with a hint.
async fn refusal(resp: reqwest::Response) -> CliError {
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("unknown").to_string();
    let message = v["error"]["message"].as_str().unwrap_or("").to_string();
    let err = CliError::failed(format!("the server refused ({status} {code}): {message}"));
    match code.as_str() {
        "auth.token" | "auth.missing" | "auth.malformed" => {
            err.hint("check the token, or ask an admin for a new one (`custody admin member add`)")
        }
        "auth.rate_limited" => err.hint("too many failed logins from here; wait a minute"),
        "auth.role" => err.hint("this needs an admin's token"),
        "device.unknown" => err.hint("give the device's key (ed25519:…) or its fingerprint"),
        _ => err,
    }
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
    let token = args.token.trim().to_string();
    let (c, seen) = custody_client::pinned_client(None, Duration::from_secs(30))
        .map_err(|e| CliError::cannot(format!("making the HTTPS client: {e}")))?;
    let v =
        runtime()?.block_on(json_answer(c.get(format!("{url}/v1/whoami")).bearer_auth(&token)))?;
    let text = |k: &str| v[k].as_str().map(String::from);
    let bad = |what: &str| CliError::cannot(format!("the server's answer: {what}"));
    let server_key = PublicKey::parse(&text("server_key").ok_or_else(|| bad("no server_key"))?)
        .map_err(|_| bad("server_key is not a key"))?;
    let tls_sha256 = text("tls_sha256");
    let seen = seen.lock().ok().and_then(|s| *s).map(hex::encode);
    match (https, &tls_sha256) {
        // The pin the server names must be the certificate it actually presented.
        (true, Some(pin)) if Some(pin) == seen.as_ref() => {}
        (true, _) => return Err(bad("tls_sha256 is not the certificate the server presented")),
        (false, None) => {}
        (false, Some(_)) => return Err(bad("a TLS pin from a plain-HTTP server")),
    }
    let cfg = LawyerConfig {
        url: url.clone(),
        token,
        name: text("name").ok_or_else(|| bad("no name"))?,
        role: text("role").ok_or_else(|| bad("no role"))?,
        server_key: server_key.to_string(),
        tls_sha256,
    };
    let path = save(&cfg)?;
    if args.json {
        let out = serde_json::json!({
            "url": cfg.url, "name": cfg.name, "role": cfg.role, "server_key": cfg.server_key,
            "server_fingerprint": server_key.fingerprint().to_string(),
            "tls_sha256": cfg.tls_sha256, "config": path.display().to_string(),
        });
        print(&format!("{out}\n"));
    } else {
        print(&format!(
            "Logged in to {} as {} ({}).\nServer key fingerprint: {} (compare it with the legal team's)\n\
             TLS certificate pinned: {}\nSaved in {} (readable by you only).\n",
            cfg.url,
            cfg.name,
            cfg.role,
            server_key.fingerprint(),
            cfg.tls_sha256.as_deref().unwrap_or("none (plain HTTP)"),
            path.display()
        ));
    }
    Ok(())
}

pub fn recordings(args: &RecordingsArgs) -> Result<(), CliError> {
    let cfg = logged_in(args.server.as_deref())?;
    let c = client(&cfg, Duration::from_secs(60))?;
    let v = runtime()?.block_on(json_answer(
        c.get(format!("{}/v1/recordings", cfg.url)).bearer_auth(&cfg.token),
    ))?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
        return Ok(());
    }
    let rows = v["recordings"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        print(&format!("No recordings on {}.\n", cfg.url));
        return Ok(());
    }
    let mut out = format!(
        "{:<32}  {:<16}  {:<20}  {:>9}  {:<8}  {:>8}  {}\n",
        "RECORDING", "DEVICE", "STARTED (device)", "DURATION", "STATE", "SEGMENTS", "LAST RECEIPT"
    );
    for r in &rows {
        let when = |k: &str| r[k].as_i64().map(utc).unwrap_or_else(|| "-".into());
        let mut device = r["device_label"].as_str().unwrap_or("?").to_string();
        if r["device_revoked"].as_bool() == Some(true) {
            device.push_str(" (revoked)");
        }
        out.push_str(&format!(
            "{:<32}  {:<16}  {:<20}  {:>8.1}s  {:<8}  {:>8}  {}\n",
            r["recording_id"].as_str().unwrap_or("?"),
            device,
            when("started_at_us"),
            r["duration_us"].as_i64().unwrap_or(0) as f64 / 1e6,
            r["state"].as_str().unwrap_or("?"),
            r["segments"].as_u64().unwrap_or(0),
            when("last_receipt_at_us"),
        ));
    }
    print(&out);
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Where a download in progress is kept, and the file naming its access (log index).
pub fn part_paths(output: &Path, tar: bool) -> (PathBuf, PathBuf) {
    let part = with_suffix(output, if tar { ".part" } else { ".tar.part" });
    let access = with_suffix(&part, ".access");
    (part, access)
}

struct Downloaded {
    access: u64,
    total: u64,
    resumed_from: u64,
}

/// Downloads the bundle into `part`, resuming a previous partial download of the same
/// access if `access_file` names one.
async fn download(
    c: &reqwest::Client,
    cfg: &LawyerConfig,
    id: &str,
    part: &Path,
    access_file: &Path,
    progress: bool,
) -> Result<Downloaded, CliError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| CliError::cannot(format!("{}: {e}", p.display()))
    };
    let previous: Option<u64> =
        std::fs::read_to_string(access_file).ok().and_then(|t| t.trim().parse().ok());
    let have = match (previous, std::fs::metadata(part)) {
        (Some(_), Ok(m)) => m.len(),
        _ => 0,
    };
    let url = format!("{}/v1/recordings/{id}/bundle", cfg.url);
    let mut req = c.get(&url).bearer_auth(&cfg.token);
    if let (Some(a), true) = (previous, have > 0) {
        req = req
            .header("custody-bundle-access", a.to_string())
            .header("range", format!("bytes={have}-"));
    }
    let resp = req.send().await.map_err(network)?;
    let status = resp.status().as_u16();
    let (start, total) = match status {
        200 => (0, resp.content_length().unwrap_or(0)),
        206 => {
            let range = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let parsed = range.strip_prefix("bytes ").and_then(|r| r.split_once('/')).and_then(
                |(span, total)| {
                    Some((span.split_once('-')?.0.parse::<u64>().ok()?, total.parse::<u64>().ok()?))
                },
            );
            match parsed {
                Some((s, t)) if s == have => (s, t),
                _ => {
                    return Err(CliError::cannot(format!(
                        "the server resumed at another place ({range})"
                    )))
                }
            }
        }
        _ => return Err(refusal(resp).await),
    };
    let access: u64 = resp
        .headers()
        .get("custody-bundle-access")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            CliError::cannot("the server's answer names no access (custody-bundle-access)")
        })?;
    // Noted before any byte is kept, so that a break anywhere can be resumed.
    std::fs::write(access_file, format!("{access}\n")).map_err(io(access_file))?;
    let mut file =
        std::fs::OpenOptions::new().create(true).append(true).open(part).map_err(io(part))?;
    if start == 0 {
        file.set_len(0).map_err(io(part))?;
    }
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_position(start);
        b
    });
    let mut resp = resp;
    let mut got = start;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                file.write_all(&chunk).map_err(io(part))?;
                got += chunk.len() as u64;
                if let Some(b) = &bar {
                    b.set_position(got);
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = file.sync_all();
                return Err(CliError::cannot(format!(
                    "the download broke after {got} of {total} bytes: {e}"
                ))
                .hint("run the same command again to resume where it stopped"));
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    file.sync_all().map_err(io(part))?;
    if got != total {
        return Err(CliError::cannot(format!("the download ended after {got} of {total} bytes"))
            .hint("run the same command again to resume where it stopped"));
    }
    Ok(Downloaded { access, total, resumed_from: start })
}

/// Unpacks the bundle archive `tar` into the new directory `dir`.
fn unpack(tar: &Path, dir: &Path) -> Result<(), CliError> {
    let t = custody_verifier::Tar::open(tar).map_err(|e| CliError::cannot(e.to_string()))?;
    let io = |p: &Path, e: std::io::Error| CliError::cannot(format!("{}: {e}", p.display()));
    for path in t.files().keys() {
        // Tar::open admits only safe bundle paths, so each stays inside `dir`.
        let out = dir.join(path);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let mut r = t.open(path).map_err(|e| io(&out, e))?;
        let mut f = std::fs::File::create(&out).map_err(|e| io(&out, e))?;
        std::io::copy(&mut r, &mut f).and_then(|_| f.sync_all()).map_err(|e| io(&out, e))?;
    }
    Ok(())
}

pub fn fetch(args: &FetchArgs) -> Result<(), CliError> {
    let (url, id) = match args.targets.as_slice() {
        [id] => (None, id.as_str()),
        [url, id] => (Some(url.as_str()), id.as_str()),
        _ => return Err(CliError::cannot("give [URL] RECORDING")),
    };
    if custody_format::ids::RecordingId::parse(id).is_err() {
        return Err(CliError::cannot(format!("{id:?} is not a recording id (32 hex digits)"))
            .hint("`custody recordings --server` lists them"));
    }
    let cfg = logged_in(url)?;
    let out = &args.output;
    if out.exists() {
        return Err(CliError::cannot(format!("{} already exists", out.display()))
            .hint("choose another -o PATH, or remove it"));
    }
    let (part, access_file) = part_paths(out, args.tar);
    let c = client(&cfg, Duration::from_secs(24 * 3600))?;
    let progress = !args.json && std::io::stderr().is_terminal();
    let got = runtime()?.block_on(async {
        match download(&c, &cfg, id, &part, &access_file, progress).await {
            // A partial download the server no longer recognises (another login, a range
            // past its end): start again from scratch, as a new retrieval.
            Err(e)
                if access_file.exists()
                    && (e.message.contains("bundle.access")
                        || e.message.contains("range.invalid")) =>
            {
                eprintln!(
                    "custody: the partial download could not be resumed ({}); starting again",
                    e.message
                );
                let _ = std::fs::remove_file(&part);
                let _ = std::fs::remove_file(&access_file);
                download(&c, &cfg, id, &part, &access_file, progress).await
            }
            other => other,
        }
    })?;
    if args.tar {
        std::fs::rename(&part, out)
            .map_err(|e| CliError::cannot(format!("{}: {e}", out.display())))?;
    } else {
        unpack(&part, out)?;
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
    let c = client(&cfg, Duration::from_secs(60))?;
    let v = runtime()?.block_on(json_answer(
        c.post(format!("{}/v1/devices/revoke", cfg.url))
            .bearer_auth(&cfg.token)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "device": args.device, "reason": args.reason }).to_string()),
    ))?;
    if args.json {
        print(&format!("{v}\n"));
    } else if v["already_revoked"].as_bool() == Some(true) {
        print(&format!(
            "Device {} (\"{}\") was already revoked; nothing changed.\n",
            v["fingerprint"].as_str().unwrap_or("?"),
            v["label"].as_str().unwrap_or("?")
        ));
    } else {
        print(&format!(
            "Revoked device {} (\"{}\"). Its later uploads are refused; what it uploaded before\n\
             stays valid evidence, and bundles of its recordings show the revocation.\n",
            v["fingerprint"].as_str().unwrap_or("?"),
            v["label"].as_str().unwrap_or("?")
        ));
    }
    Ok(())
}

pub fn member(cmd: &MemberCommand) -> Result<(), CliError> {
    match cmd {
        MemberCommand::Add(a) => {
            let role = custody_server::Role::parse(&a.role)
                .ok_or_else(|| CliError::cannot("--role must be admin or member"))?;
            let token = custody_server::add_member(&a.data, &a.name, role)
                .map_err(|e| CliError::cannot(e.to_string()))?;
            if a.json {
                print(&format!(
                    "{}\n",
                    serde_json::json!({ "name": a.name, "role": role.as_str(), "token": token })
                ));
            } else {
                print(&format!(
                    "API token for {} ({}) — shown only now, stored only hashed:\n{token}\n\
                     On their computer: custody login https://SERVER:PORT --token {token}\n",
                    a.name,
                    role.as_str()
                ));
            }
            Ok(())
        }
    }
}
