//! The real `custody serve` binary with TLS on loopback, and the legal team's CLI beside it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::{Error, Tab};

/// How long `custody serve` may take to say where it listens (first start makes its keys).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `custody` binary (default: [`custody_binary`]).
    pub bin: Option<PathBuf>,
    /// Where to listen (default `127.0.0.1:0`, any free port).
    pub listen: String,
    /// Serve plain HTTP on loopback (`custody serve --insecure-http`) instead of TLS: for a
    /// test that puts the fault proxy (client/tests/common/fault_proxy.rs, plain HTTP)
    /// between the page and the server. `http://127.0.0.1` is still a secure context in
    /// Chromium (loopback is potentially trustworthy), so the page works the same.
    pub insecure_http: bool,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions { bin: None, listen: "127.0.0.1:0".into(), insecure_http: false }
    }
}

/// A running `custody serve` in a temporary data directory, with a case key (whose
/// recipient devices seal to), and a lawyer's configuration for the CLI. Killed when dropped.
pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its URL and the page's origin, as it said: `https://127.0.0.1:PORT`
    /// (`http://` with [`ServerOptions::insecure_http`]).
    pub url: String,
    /// The server's data directory.
    pub data: PathBuf,
    /// The legal team's age identity file (the case key).
    pub case_key: PathBuf,
    /// The case key's recipient (`age1…`).
    pub recipient: String,
    /// The server key's fingerprint, as enrollment links carry it.
    pub fingerprint: String,
    /// Base64 SHA-256 of its TLS certificate's SubjectPublicKeyInfo, for
    /// [`crate::LaunchOptions::trust_spki`] (empty for plain HTTP).
    pub spki: String,
    insecure_http: bool,
    logged_in: Mutex<bool>,
}

/// The `custody` binary of this build profile (`target/debug/custody` for tests), built
/// first (once per process) with `cargo build -p custody-cli` when cargo runs us, so a
/// test never drives a stale binary. `CUSTODY_BIN` names another.
pub fn custody_binary() -> Result<PathBuf, Error> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("CUSTODY_BIN") {
                return Ok(PathBuf::from(bin));
            }
            let bin = crate::profile_dir().join("custody");
            if let Some(cargo) = std::env::var_os("CARGO") {
                let release = crate::profile_dir().ends_with("release");
                let mut c = Command::new(cargo);
                c.args(["build", "--quiet", "-p", "custody-cli", "--bin", "custody"]);
                if release {
                    c.arg("--release");
                }
                let out = c.output().map_err(|e| format!("running cargo build: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "cargo build -p custody-cli failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("{} is missing: run cargo build -p custody-cli", bin.display()))
            }
        })
        .clone()
        .map_err(Error::Unexpected)
}

fn stdout_of(what: &str, out: std::io::Result<Output>) -> Result<String, Error> {
    let out = out.map_err(Error::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(Error::Unexpected(format!(
            "`{what}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json_of(what: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .map_err(|e| Error::Unexpected(format!("`{what}` printed no JSON ({e}): {text}")))
}

impl Server {
    /// Makes a case key, starts `custody serve` on a fresh data directory and waits
    /// (bounded) until it says where it listens.
    pub fn start(options: &ServerOptions) -> Result<Server, Error> {
        let bin = match &options.bin {
            Some(b) => b.clone(),
            None => custody_binary()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("custody-server-")
            .tempdir()
            .map_err(Error::io("making the server's temporary directory"))?;
        let data = dir.path().join("server");
        let case_key = dir.path().join("case.agekey");
        let mut server = Server {
            child: None,
            bin,
            url: String::new(),
            data,
            case_key,
            recipient: String::new(),
            fingerprint: String::new(),
            spki: String::new(),
            insecure_http: options.insecure_http,
            logged_in: Mutex::new(false),
            dir,
        };
        let key = server.custody_ok(&[
            "keygen",
            "--recipient-key",
            "--json",
            "-o",
            &server.case_key.display().to_string(),
        ])?;
        server.recipient = json_of("custody keygen", &key)?["recipient"]
            .as_str()
            .ok_or_else(|| Error::Unexpected(format!("keygen printed no recipient: {key}")))?
            .to_string();
        server.spawn(&options.listen)?;
        if !server.insecure_http {
            let cert = std::fs::read(server.data.join("tls-cert.der"))
                .map_err(Error::io("reading the server's TLS certificate"))?;
            server.spki = crate::spki::spki_sha256_base64(&cert)?;
        }
        Ok(server)
    }

    fn spawn(&mut self, listen: &str) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .map_err(Error::io("creating the server log"))?;
        let mut serve = self.command();
        serve
            .args(["serve", "--listen", listen, "--recipient", &self.recipient, "--data"])
            .arg(&self.data);
        if self.insecure_http {
            serve.arg("--insecure-http");
        }
        let mut child = serve
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|source| Error::Spawn { program: self.bin.clone(), source })?;
        let stdout = child.stdout.take();
        self.child = Some(child);
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = stdout {
            // Read on a thread so a wait is bounded, and so the pipe never fills.
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let (mut url, mut fingerprint) = (String::new(), String::new());
        while url.is_empty() || fingerprint.is_empty() {
            let line = rx.recv_timeout(START_TIMEOUT).map_err(|_| Error::Timeout {
                what: format!(
                    "custody serve to say where it listens (log: {})",
                    self.log_path().display()
                ),
                seconds: START_TIMEOUT.as_secs_f64(),
            })?;
            if let Some(u) = line.strip_prefix("Listening on ") {
                url = u.trim().to_string();
            } else if let Some(f) = line.strip_prefix("Fingerprint:") {
                fingerprint = f.trim().to_string();
            }
        }
        let scheme = if self.insecure_http { "http://" } else { "https://" };
        if !url.starts_with(scheme) {
            return Err(Error::Unexpected(format!("custody serve listens on {url}, not {scheme}")));
        }
        self.url = url;
        self.fingerprint = fingerprint;
        Ok(())
    }

    /// Stops the server (SIGKILL, as a crash would) and starts it again on the same port
    /// and data: what it had acknowledged must still be there.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        let listen = self.listen_addr();
        self.spawn(&listen)
    }

    /// The `host:port` it listens on.
    fn listen_addr(&self) -> String {
        self.url.rsplit("//").next().unwrap_or_default().to_string()
    }

    /// Kills the server (SIGKILL, as a crash would), leaves it down for `down`, and starts
    /// it again on the same port and data; how long it was away, from the kill until it
    /// listened again (the outage a device saw).
    pub fn kill_for(&mut self, down: Duration) -> Result<Duration, Error> {
        let killed = std::time::Instant::now();
        self.kill();
        std::thread::sleep(down);
        let listen = self.listen_addr();
        self.spawn(&listen)?;
        Ok(killed.elapsed())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's stderr, kept in its temporary directory.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// A scratch directory that lives as long as the server (bundles, exports).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The page's origin (`https://127.0.0.1:PORT`), as Chromium names it for quotas.
    pub fn origin(&self) -> &str {
        &self.url
    }

    /// A `custody` command with the lawyer's configuration in the scratch directory and
    /// no stray environment (a login or vault on the machine running the tests is not used).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("CUSTODY_CONFIG_DIR", self.dir.path().join("lawyer-config"))
            .env("CUSTODY_VAULT", self.dir.path().join("unused-vault"))
            .env_remove("CUSTODY_PASSPHRASE")
            .current_dir(self.dir.path());
        c
    }

    /// Runs `custody ARGS` and returns its output, whatever its exit status.
    pub fn custody(&self, args: &[&str]) -> Result<Output, Error> {
        self.command()
            .args(args)
            .output()
            .map_err(Error::io(format!("running custody {}", args.join(" "))))
    }

    /// Runs `custody ARGS`, which must succeed, and returns its stdout.
    pub fn custody_ok(&self, args: &[&str]) -> Result<String, Error> {
        stdout_of(&format!("custody {}", args.join(" ")), self.command().args(args).output())
    }

    /// A one-time enrollment link for a device labelled `label`
    /// (`custody admin enroll-token --link`): `https://127.0.0.1:PORT/enroll#token=…&fp=…`.
    pub fn enroll_link(&self, label: &str) -> Result<String, Error> {
        let data = self.data.display().to_string();
        let out = self.custody_ok(&[
            "admin",
            "enroll-token",
            "--json",
            "--label",
            label,
            "--link",
            &self.url,
            "--data",
            &data,
        ])?;
        json_of("custody admin enroll-token", &out)?["link"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| Error::Unexpected(format!("enroll-token printed no link: {out}")))
    }

    /// Adds a lawyer (once) and logs the CLI in, pinning the server.
    pub fn login(&self) -> Result<(), Error> {
        let mut done = self.logged_in.lock().unwrap_or_else(|p| p.into_inner());
        if *done {
            return Ok(());
        }
        let data = self.data.display().to_string();
        let out = self.custody_ok(&[
            "admin", "member", "add", "--json", "--role", "member", "--data", &data, "lawyer",
        ])?;
        let token = json_of("custody admin member add", &out)?["token"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| Error::Unexpected(format!("member add printed no token: {out}")))?;
        let mut login = vec!["login", &self.url, "--token", &token];
        if self.insecure_http {
            login.push("--insecure-http");
        }
        self.custody_ok(&login)?;
        *done = true;
        Ok(())
    }

    /// The recordings the server holds (`custody recordings --server --json`).
    pub fn recordings(&self) -> Result<Vec<Value>, Error> {
        self.login()?;
        let out = self.custody_ok(&["recordings", "--server", "--json"])?;
        Ok(json_of("custody recordings", &out)?["recordings"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Fetches recording `id`'s evidence bundle as a directory under the scratch directory.
    pub fn fetch(&self, id: &str, name: &str) -> Result<PathBuf, Error> {
        self.login()?;
        let dir = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        self.custody_ok(&["fetch", id, "-o", &dir.display().to_string()])?;
        Ok(dir)
    }

    /// `custody verify BUNDLE --identity CASE-KEY --json` (trusting the key saved at
    /// login): its exit code and its JSON report.
    pub fn verify(&self, bundle: &Path) -> Result<(Option<i32>, Value), Error> {
        self.login()?;
        let out = self.custody(&[
            "verify",
            &bundle.display().to_string(),
            "--identity",
            &self.case_key.display().to_string(),
            "--json",
        ])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(&text).map_err(|e| {
            Error::Unexpected(format!(
                "custody verify printed no JSON ({e}): {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
        Ok((out.status.code(), v))
    }

    /// `custody verify BUNDLE --identity CASE-KEY` as a person reads it.
    pub fn verify_text(&self, bundle: &Path) -> Result<(Option<i32>, String), Error> {
        self.login()?;
        let out = self.custody(&[
            "verify",
            &bundle.display().to_string(),
            "--identity",
            &self.case_key.display().to_string(),
        ])?;
        Ok((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// `custody export BUNDLE --identity CASE-KEY -o OUT`: the playable file.
    pub fn export(&self, bundle: &Path, out: &Path) -> Result<String, Error> {
        self.custody_ok(&[
            "export",
            &bundle.display().to_string(),
            "--identity",
            &self.case_key.display().to_string(),
            "-o",
            &out.display().to_string(),
        ])
    }

    /// Checks that the server has the capture page built in (see [`check_page`]).
    pub fn check_page(&self, tab: &Tab) -> Result<(), Error> {
        check_page(tab, &self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Checks that the server at `origin` has the capture page built in: [`Error::PageMissing`]
/// (saying to run `cargo xtask web`) when `/capture/` does not answer 200. Asked from
/// `tab`, so it is the browser's own view of the server.
pub fn check_page(tab: &Tab, origin: &str) -> Result<(), Error> {
    let url = serde_json::to_string(&format!("{origin}/capture/")).unwrap_or_default();
    let status = tab.eval(
        &format!("fetch({url}, {{cache: 'no-store'}}).then(r => r.status)"),
        Duration::from_secs(30),
    )?;
    match status.as_u64() {
        Some(200) => Ok(()),
        Some(s) => Err(Error::PageMissing { status: u16::try_from(s).unwrap_or(0) }),
        None => Err(Error::Unexpected(format!("fetching /capture/ answered {status}"))),
    }
}
