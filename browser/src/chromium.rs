//! Debian's Chromium, headless, with a fake camera and microphone, driven over DevTools.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cdp::{self, Connection, Shared};
use crate::{Error, Tab};

/// The browser the tests drive (issue 14: Debian's Chromium 156).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long Chromium may take to start and open its debugging port (a loaded 2-core CI
/// machine starts it in a few seconds).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an ordinary DevTools command may take.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A Chromium user-data directory. It outlives the browsers launched on it, so a browser
/// killed mid-recording can be reopened on the same IndexedDB, as a phone reopens the tab.
pub struct Profile {
    dir: tempfile::TempDir,
}

impl Profile {
    /// A fresh, empty profile in a temporary directory (removed when dropped).
    pub fn new() -> Result<Profile, Error> {
        let dir = tempfile::Builder::new()
            .prefix("custody-chromium-")
            .tempdir()
            .map_err(Error::io("making a temporary profile directory"))?;
        Ok(Profile { dir })
    }

    /// The directory (Chromium's `--user-data-dir`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// How to start Chromium.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// Base64 SHA-256 of a server certificate's SubjectPublicKeyInfo, trusted despite
    /// being self-signed (`--ignore-certificate-errors-spki-list`; see [`crate::spki`]).
    pub trust_spki: Vec<String>,
    /// A `.y4m` file for the fake camera instead of Chromium's own pattern (the file's
    /// frame rate is then the camera's; the built-in one delivers 20 fps).
    pub fake_video: Option<PathBuf>,
    /// More command-line switches.
    pub extra_args: Vec<String>,
}

/// A running headless Chromium: killed, with every process it started, when dropped.
pub struct Chromium {
    child: Option<Child>,
    // Set once the port is known; `launch` returns only with it.
    conn: Option<Shared>,
    port: u16,
    log: PathBuf,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Chromium {
    /// Starts Chromium on `profile` and connects to its DevTools port.
    ///
    /// The switches are issue 14's: `--headless=new`, the fake camera and microphone with
    /// the permission prompt answered yes, `--remote-debugging-port=0` (the port is read
    /// back from `DevToolsActivePort`), and the server's certificate trusted by key.
    pub fn launch(profile: &Profile, options: &LaunchOptions) -> Result<Chromium, Error> {
        let dir = profile.path();
        let port_file = dir.join("DevToolsActivePort");
        // A port file left by a browser killed earlier names a dead port.
        let _ = std::fs::remove_file(&port_file);
        let mut args: Vec<String> = vec![
            "--headless=new".into(),
            format!("--user-data-dir={}", dir.display()),
            "--remote-debugging-port=0".into(),
            "--remote-debugging-address=127.0.0.1".into(),
            "--use-fake-device-for-media-stream".into(),
            "--use-fake-ui-for-media-stream".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            "--disable-component-update".into(),
            "--disable-background-networking".into(),
            "--metrics-recording-only".into(),
            "--password-store=basic".into(),
            "--window-size=412,915".into(),
            "about:blank".into(),
        ];
        if !options.trust_spki.is_empty() {
            args.push(format!(
                "--ignore-certificate-errors-spki-list={}",
                options.trust_spki.join(",")
            ));
        }
        if let Some(y4m) = &options.fake_video {
            args.push(format!("--use-file-for-fake-video-capture={}", y4m.display()));
        }
        // Chromium refuses to run as root inside its sandbox (CI runs as root).
        if is_root() {
            args.push("--no-sandbox".into());
        }
        args.extend(options.extra_args.iter().cloned());
        let log = dir.with_extension("log");
        let log_file =
            std::fs::File::create(&log).map_err(Error::io("creating the browser log"))?;
        let mut command = Command::new(CHROMIUM);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            // Its own process group, so that drop kills the renderers and utilities too.
            .process_group(0);
        let child = spawn_tied(command)
            .map_err(|source| Error::Spawn { program: CHROMIUM.into(), source })?;
        let mut chromium = Chromium { child: Some(child), conn: None, port: 0, log };
        let (port, path) = chromium.wait_port_file(&port_file)?;
        chromium.port = port;
        chromium.conn = Some(Arc::new(Mutex::new(Connection::connect(port, &path, CALL_TIMEOUT)?)));
        Ok(chromium)
    }

    fn wait_port_file(&mut self, port_file: &Path) -> Result<(u16, String), Error> {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(port) = port.trim().parse::<u16>() {
                        return Ok((port, path.trim().to_string()));
                    }
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Error::Unexpected(format!(
                        "chromium exited ({status}) before opening its DevTools port:\n{}",
                        self.log_tail()
                    )));
                }
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Error::Timeout {
                    what: format!("{} (chromium's DevTools port)", port_file.display()),
                    seconds: START_TIMEOUT.as_secs_f64(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines Chromium wrote to stderr (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The browser process's id (the leader of its process group).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The DevTools port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared DevTools connection.
    pub fn connection(&self) -> Result<&Shared, Error> {
        self.conn.as_ref().ok_or_else(|| Error::Unexpected("chromium is not connected".into()))
    }

    /// A browser-level DevTools command (no page session).
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        cdp::call(self.connection()?, None, method, params, CALL_TIMEOUT)
    }

    /// Opens a new page (in the default browser context: the on-disk profile) at `url`.
    pub fn open(&self, url: &str) -> Result<Tab, Error> {
        Tab::open(self.connection()?, url, None)
    }

    /// Opens a new page in a new, isolated browser context: its own cookies, IndexedDB and
    /// quota, kept in memory (Chromium's contexts made over DevTools are off the record).
    /// For tests that run beside others in the same browser; a test that searches the
    /// profile directory or reopens the browser uses [`Chromium::open`].
    pub fn open_isolated(&self, url: &str) -> Result<Tab, Error> {
        let ctx = self.call("Target.createBrowserContext", json!({ "disposeOnDetach": true }))?;
        let id = ctx["browserContextId"]
            .as_str()
            .ok_or_else(|| Error::Unexpected(format!("createBrowserContext answered {ctx}")))?
            .to_string();
        Tab::open(self.connection()?, url, Some(id))
    }

    /// CPU time (user + system) of the browser and every process under it so far, from
    /// /proc: what the page, its camera and its encoder cost the machine.
    pub fn cpu_time(&self) -> Duration {
        self.pid().map(crate::proc::tree_cpu_time).unwrap_or_default()
    }

    /// Asks the browser to close (`Browser.close`), as a user quitting it would, and waits
    /// (bounded) for it to exit; kills it if it does not.
    pub fn close(mut self) -> Result<(), Error> {
        let _ = self.call("Browser.close", json!({}));
        self.reap(Duration::from_secs(20))
    }

    /// Kills the browser outright (SIGKILL to its whole process group), as a phone's OS
    /// killing the browser or a seized phone switched off would, and reaps it.
    pub fn kill(mut self) -> Result<(), Error> {
        self.signal_group(libc::SIGKILL);
        self.reap(Duration::from_secs(20))
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on the process group we created at spawn (its id is the
            // child's pid); no memory is involved.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    fn reap(&mut self, timeout: Duration) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    self.child = Some(child);
                    self.signal_group(libc::SIGKILL);
                    if let Some(mut c) = self.child.take() {
                        let _ = c.wait();
                    }
                    break;
                }
            }
        }
        // The renderers and utilities go with the group; a straggler is killed too.
        self.child = None;
        Ok(())
    }
}

/// Spawns `command` so that it is killed if this process dies without dropping it (a test
/// binary killed by a timeout, a panic that aborts): the child asks the kernel for SIGKILL
/// when its parent *thread* exits (prctl(2) `PR_SET_DEATHSIG`), so it is spawned from one
/// thread that lives as long as the process.
fn spawn_tied(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut command, reply) in rx {
                // SAFETY: the closure runs in the forked child before exec and only calls
                // prctl(2), which is async-signal-safe.
                unsafe {
                    command.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let _ = reply.send(command.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((command, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: as in signal_group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}
