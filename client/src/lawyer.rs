//! The legal team's side of the server: log in (pinning the server's TLS certificate and
//! signing key), list recordings, fetch an evidence bundle (resuming a broken download),
//! unpack it, and revoke a device.
//!
//! [`login`] is first contact: it trusts the certificate the server presents if it is
//! publicly trusted for the server's name, or else only if the server's own answer names
//! it, and saves the pins in a [`LawyerConfig`] (readable by its owner only: the token is a
//! password). Every later request goes through a [`Session`], which accepts the server's
//! TLS as the pin says ([`tls::TlsPin`]: the authorities, or the certificate's key; a login
//! saved before key pins, exactly its certificate). Nothing here prints; `custody-cli` says
//! what happened.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_durable::fsutil::replace_durable;
use custody_format::ids::PublicKey;
use custody_protocol::body::{RecordingList, RevokeAnswer, RevokeRequest, WhoAmI};
use custody_protocol::request::H_BUNDLE_ACCESS;
use custody_protocol::{Code, Refusal};
use custody_verifier::Source;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::with_causes;
use crate::tls;

/// What the legal team's tools can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LawyerError {
    /// The server could not be reached or the connection broke.
    #[error("the server could not be reached: {0}")]
    Network(String),
    /// The server refused, with its stable code ([`LawyerError::code`]).
    #[error("the server refused ({status} {}): {}", refusal.code, refusal.message)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The refusal body.
        refusal: Refusal,
    },
    /// The server's answer is not what the API promises.
    #[error("the server's answer: {0}")]
    BadAnswer(String),
    /// The saved login cannot be used as it is (damaged, or no pin for an https:// URL).
    #[error("{0}")]
    Config(String),
    /// A download stopped before its end; running it again resumes it.
    #[error("the download {0}")]
    Incomplete(String),
    /// The output path cannot take a bundle (its directory is missing or not writable, or
    /// something is already there); found before the server is asked anything.
    #[error("{0}")]
    Output(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl LawyerError {
    /// The server's refusal code, when it refused with one this protocol version knows.
    pub fn code(&self) -> Option<Code> {
        match self {
            LawyerError::Refused { refusal, .. } => refusal.code(),
            _ => None,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LawyerError + '_ {
    move |source| LawyerError::Io { path: path.to_path_buf(), source }
}

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
    /// SHA-256 of its TLS certificate at login, hex, as the server named it; `None` for
    /// plain HTTP (loopback tests) or behind a reverse proxy. Logins saved before
    /// `tls_pin` pinned exactly this certificate.
    pub tls_sha256: Option<String>,
    /// What is accepted as the server's TLS certificate: `webpki` or `spki-sha256:<hex>`
    /// ([`tls::TlsPin`]), so that a renewal does not break the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_pin: Option<String>,
}

impl LawyerConfig {
    /// Reads a saved login, if there is one at `path`.
    pub fn load(path: &Path) -> Result<Option<LawyerConfig>, LawyerError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| LawyerError::Config(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// Saves the login at `path`, replacing an earlier one durably, readable by its owner
    /// only from the moment it exists (the token is a password).
    pub fn save(&self, path: &Path) -> Result<(), LawyerError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| LawyerError::Config(format!("{}: {e}", path.display())))?;
        replace_durable(path, &bytes, true).map_err(io(path))
    }
}

async fn refusal(resp: reqwest::Response) -> LawyerError {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let refusal = Refusal::from_body(&body)
        .unwrap_or_else(|| Refusal { code: "unknown".into(), message: String::new() });
    LawyerError::Refused { status, refusal }
}

fn network(e: &reqwest::Error) -> LawyerError {
    LawyerError::Network(with_causes(e))
}

async fn json_answer<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, LawyerError> {
    let resp = req.send().await.map_err(|e| network(&e))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let bytes = resp.bytes().await.map_err(|e| network(&e))?;
    serde_json::from_slice(&bytes).map_err(|e| LawyerError::BadAnswer(e.to_string()))
}

/// Logs in to the server at `url` with a member's `token` (first contact): asks who the
/// token belongs to, and pins the server's key and the TLS certificate it presented,
/// which its answer must name. The caller saves the result ([`LawyerConfig::save`]).
pub async fn login(url: &str, token: &str) -> Result<(LawyerConfig, PublicKey), LawyerError> {
    let url = url.trim_end_matches('/').to_string();
    let token = token.trim().to_string();
    let (c, seen) =
        tls::pinned_client(None, Duration::from_secs(30)).map_err(LawyerError::Network)?;
    let who: WhoAmI = json_answer(c.get(format!("{url}/v1/whoami")).bearer_auth(&token)).await?;
    let server_key =
        who.server_key().map_err(|_| LawyerError::BadAnswer("server_key is not a key".into()))?;
    let pin = tls::first_contact_pin(&url, who.tls_sha256.as_deref(), &seen)
        .map_err(|e| LawyerError::BadAnswer(e.into()))?;
    let cfg = LawyerConfig {
        url,
        token,
        name: who.name,
        role: who.role.as_str().to_string(),
        server_key: server_key.to_string(),
        tls_sha256: who.tls_sha256,
        tls_pin: pin.and_then(|p| p.to_stored()),
    };
    Ok((cfg, server_key))
}

/// A logged-in member's connection: every request checks the server's TLS by the pin
/// and carries the saved token.
#[derive(Clone, Debug)]
pub struct Session {
    cfg: LawyerConfig,
    client: reqwest::Client,
}

/// How a bundle download went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// The custody log entry of this retrieval.
    pub access: u64,
    /// The bundle's length in bytes.
    pub total: u64,
    /// Where this download took up a partial one (0: from the start).
    pub resumed_from: u64,
}

/// What a download reports while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Bytes are coming: from `start`, of `total`.
    Started {
        /// Where the download took up.
        start: u64,
        /// The bundle's length.
        total: u64,
    },
    /// Bytes kept so far.
    Got(u64),
    /// The partial download could not be resumed (the server no longer knows it): why;
    /// the download starts again from scratch, as a new retrieval.
    Restarting(String),
}

/// Where a download in progress is kept, and the file naming its access (log index):
/// beside `output`, named after it (`bundle/` and `bundle` alike give `bundle.tar.part`).
pub fn part_paths(output: &Path, tar: bool) -> (PathBuf, PathBuf) {
    let part = with_suffix(&plain(output), if tar { ".part" } else { ".tar.part" });
    let access = with_suffix(&part, ".access");
    (part, access)
}

/// `path` without a trailing `/` (or `/.`): `bundle/` names the directory `bundle`.
fn plain(path: &Path) -> PathBuf {
    path.components().collect()
}

/// Checks, before anything is asked of the server (every retrieval is logged), that a
/// bundle can be written at `output`: a new `.tar` file with `tar`, else a new directory
/// (or an empty one); its parent directory must exist and take new files. Returns the path
/// to write, without a trailing `/`.
pub fn check_output(output: &Path, tar: bool) -> Result<PathBuf, LawyerError> {
    let out = plain(output);
    let bad = |why: String| Err(LawyerError::Output(why));
    let Some(name) = out.file_name() else {
        return bad(format!("{} names no new file or directory", output.display()));
    };
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match std::fs::metadata(&parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return bad(format!("{} is not a directory", parent.display())),
        Err(e) => return bad(format!("the directory {} cannot be used: {e}", parent.display())),
    }
    match std::fs::symlink_metadata(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return bad(format!("{}: {e}", out.display())),
        Ok(m) if m.is_dir() && !tar => {
            let mut entries = std::fs::read_dir(&out)
                .map_err(|e| LawyerError::Output(format!("{}: {e}", out.display())))?;
            if entries.next().is_some() {
                let what = if out.join(custody_format::bundle::MARKER).exists() {
                    "already holds an evidence bundle"
                } else {
                    "is a directory that is not empty"
                };
                return bad(format!("{} {what}", out.display()));
            }
        }
        Ok(_) => return bad(format!("{} already exists", out.display())),
    }
    // A file that is made and removed again: the one sure test that the directory takes
    // new files (permissions, a read-only mount, another user's directory).
    let mut probe = name.to_os_string();
    probe.push(format!(".probe-{}", std::process::id()));
    let probe = parent.join(probe);
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(out)
        }
        Err(e) => bad(format!("cannot write in {}: {e}", parent.display())),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `bytes START-END/TOTAL` → `(START, TOTAL)` (RFC 9110 §14.4).
fn content_range(text: &str) -> Option<(u64, u64)> {
    let (span, total) = text.strip_prefix("bytes ")?.split_once('/')?;
    Some((span.split_once('-')?.0.parse().ok()?, total.parse().ok()?))
}

impl Session {
    /// A session for the saved login `cfg`, each request bounded by `timeout`.
    pub fn new(cfg: LawyerConfig, timeout: Duration) -> Result<Session, LawyerError> {
        let pin = tls::enrollment_pin(&cfg.url, cfg.tls_pin.as_deref(), cfg.tls_sha256.as_deref())
            .map_err(|e| {
                LawyerError::Config(format!("lawyer.json: {e}; run `custody login` again"))
            })?;
        let (client, _) = tls::client(pin, timeout, None)
            .map_err(|e| LawyerError::Config(format!("making the HTTPS client: {e}")))?;
        Ok(Session { cfg, client })
    }

    /// The saved login it uses.
    pub fn config(&self) -> &LawyerConfig {
        &self.cfg
    }

    /// Every recording on the server (`GET /v1/recordings`).
    pub async fn recordings(&self) -> Result<RecordingList, LawyerError> {
        let req = self.client.get(format!("{}/v1/recordings", self.cfg.url));
        json_answer(req.bearer_auth(&self.cfg.token)).await
    }

    /// Revokes a device, by key or fingerprint (`POST /v1/devices/revoke`, admins only).
    pub async fn revoke(&self, device: &str, reason: &str) -> Result<RevokeAnswer, LawyerError> {
        let body = RevokeRequest { device: device.to_string(), reason: reason.to_string() };
        let req = self.client.post(format!("{}/v1/devices/revoke", self.cfg.url));
        json_answer(req.bearer_auth(&self.cfg.token).json(&body)).await
    }

    /// Downloads the bundle of recording `id` into `part`, resuming a partial download of
    /// the same retrieval if `access_file` names one; if the server no longer knows that
    /// retrieval (`bundle.access`, `range.invalid`), starts again from scratch.
    pub async fn fetch(
        &self,
        id: &str,
        part: &Path,
        access_file: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Downloaded, LawyerError> {
        match self.download(id, part, access_file, progress).await {
            Err(e)
                if access_file.exists()
                    && matches!(e.code(), Some(Code::BundleAccess | Code::RangeInvalid)) =>
            {
                progress(Progress::Restarting(e.to_string()));
                let _ = std::fs::remove_file(part);
                let _ = std::fs::remove_file(access_file);
                self.download(id, part, access_file, progress).await
            }
            other => other,
        }
    }

    async fn download(
        &self,
        id: &str,
        part: &Path,
        access_file: &Path,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Downloaded, LawyerError> {
        let previous: Option<u64> =
            std::fs::read_to_string(access_file).ok().and_then(|t| t.trim().parse().ok());
        let have = match (previous, std::fs::metadata(part)) {
            (Some(_), Ok(m)) => m.len(),
            _ => 0,
        };
        let url = format!("{}/v1/recordings/{id}/bundle", self.cfg.url);
        let mut req = self.client.get(&url).bearer_auth(&self.cfg.token);
        if let (Some(a), true) = (previous, have > 0) {
            req = req
                .header(H_BUNDLE_ACCESS, a.to_string())
                .header("range", format!("bytes={have}-"));
        }
        let mut resp = req.send().await.map_err(|e| network(&e))?;
        let (start, total) = match resp.status().as_u16() {
            200 => (0, resp.content_length().unwrap_or(0)),
            206 => {
                let range = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                match content_range(&range) {
                    Some((s, t)) if s == have => (s, t),
                    _ => {
                        return Err(LawyerError::BadAnswer(format!(
                            "the server resumed at another place ({range})"
                        )))
                    }
                }
            }
            _ => return Err(refusal(resp).await),
        };
        let access: u64 = resp
            .headers()
            .get(H_BUNDLE_ACCESS)
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                LawyerError::BadAnswer("it names no access (custody-bundle-access)".into())
            })?;
        // Noted before any byte is kept, so that a break anywhere can be resumed.
        std::fs::write(access_file, format!("{access}\n")).map_err(io(access_file))?;
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(part).map_err(io(part))?;
        if start == 0 {
            file.set_len(0).map_err(io(part))?;
        }
        progress(Progress::Started { start, total });
        let mut got = start;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    file.write_all(&chunk).map_err(io(part))?;
                    got += chunk.len() as u64;
                    progress(Progress::Got(got));
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = file.sync_all();
                    return Err(LawyerError::Incomplete(format!(
                        "broke after {got} of {total} bytes: {e}"
                    )));
                }
            }
        }
        file.sync_all().map_err(io(part))?;
        if got != total {
            return Err(LawyerError::Incomplete(format!("ended after {got} of {total} bytes")));
        }
        Ok(Downloaded { access, total, resumed_from: start })
    }
}

/// Unpacks the bundle archive `tar` into the new directory `dir`, every file fsynced.
pub fn unpack(tar: &Path, dir: &Path) -> Result<(), LawyerError> {
    let t = custody_verifier::Tar::open(tar).map_err(|e| LawyerError::Io {
        path: tar.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    for path in t.files().keys() {
        // Tar::open admits only safe bundle paths, so each stays inside `dir`.
        let out = dir.join(path);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut r = t.open(path).map_err(io(&out))?;
        let mut f = std::fs::File::create(&out).map_err(io(&out))?;
        std::io::copy(&mut r, &mut f).and_then(|_| f.sync_all()).map_err(io(&out))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_named_with_a_slash_is_kept_beside_it() {
        let (part, access) = part_paths(Path::new("out/bundle/"), false);
        assert_eq!(part, Path::new("out/bundle.tar.part"));
        assert_eq!(access, Path::new("out/bundle.tar.part.access"));
        assert_eq!(part_paths(Path::new("b.tar"), true).0, Path::new("b.tar.part"));
    }

    #[test]
    fn an_output_path_is_checked_before_anything_is_fetched() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let why = |p: &Path, tar: bool| match check_output(p, tar) {
            Err(LawyerError::Output(why)) => why,
            other => panic!("{p:?}: {other:?}"),
        };
        assert_eq!(check_output(&d.join("new/"), false).unwrap(), d.join("new"));
        assert_eq!(check_output(&d.join("new.tar"), true).unwrap(), d.join("new.tar"));
        assert!(why(&d.join("missing/bundle"), false).contains("cannot be used"));
        std::fs::write(d.join("file"), b"x").unwrap();
        assert!(why(&d.join("file/bundle"), false).contains("not a directory"));
        assert!(why(&d.join("file"), true).contains("already exists"));
        assert!(why(&d.join("file"), false).contains("already exists"));
        std::fs::create_dir(d.join("empty")).unwrap();
        assert_eq!(check_output(&d.join("empty/"), false).unwrap(), d.join("empty"));
        assert!(why(&d.join("empty"), true).contains("already exists"));
        std::fs::create_dir(d.join("held")).unwrap();
        std::fs::write(d.join("held/BUNDLE"), b"custody-bundle 2\n").unwrap();
        assert!(why(&d.join("held/"), false).contains("already holds an evidence bundle"));
        std::fs::create_dir(d.join("other")).unwrap();
        std::fs::write(d.join("other/x"), b"x").unwrap();
        assert!(why(&d.join("other"), false).contains("not empty"));
        // Nothing was left behind by the checks.
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["empty", "file", "held", "other"]);
    }

    #[test]
    fn a_content_range_gives_its_start_and_total() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(content_range("bytes */200"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn a_saved_login_is_readable_by_its_owner_only_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("lawyer.json");
        assert!(LawyerConfig::load(&path).unwrap().is_none());
        let cfg = LawyerConfig {
            url: "https://x:1".into(),
            token: "t".into(),
            name: "n".into(),
            role: "member".into(),
            server_key: "k".into(),
            tls_sha256: Some("00".repeat(32)),
            tls_pin: None,
        };
        cfg.save(&path).unwrap();
        cfg.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(LawyerConfig::load(&path).unwrap().unwrap().token, "t");
    }
}
