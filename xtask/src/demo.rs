//! `cargo xtask demo`: the whole mission on one machine, in a temporary directory.
//!
//! A legal team's server on loopback, a case key, a lawyer's account, an observer's device
//! enrolled with it, twenty seconds recorded live from a synthetic camera (a test pattern
//! with the wall clock burnt in, and a tone) while every segment is uploaded and receipted;
//! the lawyer fetches the evidence bundle, verifies it against the server key, writes the
//! court report and exports one playable MP4. Then a second recording is killed mid-way, as
//! a seizure would, and verifies as "intact but cut off". Every step drives the real
//! `custody` binary, the way a user would.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{install_missing, root, run};

/// How long the demo records, and whether it builds first.
pub struct Options {
    /// Seconds of the first, complete recording (20 by default).
    pub seconds: u32,
    /// Build `custody` first (off when `cargo xtask test` has just built it).
    pub build: bool,
}

impl Options {
    /// Parses `--seconds N`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options { seconds: 20, build: true };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--seconds" => {
                    o.seconds = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|s| (4..=600).contains(s))
                        .ok_or("--seconds takes a number of seconds from 4 to 600")?;
                }
                other => {
                    return Err(format!("unknown demo option `{other}` (there is: --seconds N)"))
                }
            }
        }
        Ok(o)
    }

    /// Segments the second recording saves before it is killed.
    fn seized_after(&self) -> u64 {
        u64::from(self.seconds / 6).clamp(1, 3)
    }
}
/// The font the burnt-in clock is drawn with (Debian's fonts-dejavu-core).
pub(crate) const CLOCK_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

/// The synthetic camera: a 1280×720 test pattern at 25 fps with the wall clock drawn on
/// it, and a 440 Hz tone, both paced to real time as a camera would be.
fn camera() -> String {
    format!(
        "testsrc2=size=1280x720:rate=25,\
         drawtext=fontfile={CLOCK_FONT}:text='%{{localtime\\:%Y-%m-%d %T}}':fontsize=44:\
         fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=12:x=24:y=24,realtime[out0];\
         sine=frequency=440:sample_rate=48000,arealtime[out1]"
    )
}

/// A running `custody serve`, killed when dropped.
struct ServerProcess {
    child: Child,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Demo {
    seconds: u32,
    bin: PathBuf,
    dir: PathBuf,
    started: Instant,
    step: u32,
}

impl Demo {
    fn say(&mut self, title: &str, proves: &str) {
        self.step += 1;
        println!();
        println!("[{:>5.1}s] {}. {title}", self.started.elapsed().as_secs_f64(), self.step);
        for line in wrap(proves, 84) {
            println!("          {line}");
        }
    }

    /// A `custody` command with the demo's lawyer configuration and no stray environment.
    fn custody(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("CUSTODY_CONFIG_DIR", self.dir.join("lawyer/config"))
            .env_remove("CUSTODY_VAULT")
            .env_remove("CUSTODY_PASSPHRASE")
            .current_dir(&self.dir);
        c
    }

    fn run(&self, args: &[&str]) -> Result<Output, String> {
        let out = self
            .custody()
            .args(args)
            .output()
            .map_err(|e| format!("could not start {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`custody {}` failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(out)
    }

    /// Runs a command and shows its output indented, as the user would see it.
    fn show(&self, args: &[&str]) -> Result<Output, String> {
        println!("          $ custody {}", shown(args, &self.dir));
        let out = self.run(args)?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("          | {line}");
        }
        Ok(out)
    }

    fn json(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = self.run(args)?;
        serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "`custody {}` printed no JSON ({e}): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }
}

/// The argument list as a user would type it, with the demo directory shortened.
fn shown(args: &[&str], dir: &Path) -> String {
    let dir = dir.display().to_string();
    args.iter()
        .map(|a| {
            let a = a.replace(&dir, "$DEMO");
            if a.contains([' ', ';', '\'', '[']) {
                format!("'{a}'")
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

fn field<'a>(v: &'a serde_json::Value, key: &str) -> Result<&'a str, String> {
    v[key].as_str().ok_or_else(|| format!("no `{key}` in {v}"))
}

/// Reads lines from `stream` on a thread, so a caller can wait for one with a timeout.
fn lines_of(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

pub fn demo(options: &Options) -> Result<(), String> {
    install_missing()?;
    // The same profile as the tests, so `cargo xtask test` and the demo share one build.
    if options.build {
        // The capture page first: the server embeds it, and the demo's phone records from it.
        crate::web::install()?;
        crate::web::build()?;
        run("cargo", &["build", "-p", "custody-cli"])?;
    }
    let bin = target_dir().join("debug/custody");
    let dir = std::env::temp_dir().join(format!(
        "custody-demo-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut d = Demo { bin, dir, started: Instant::now(), step: 0, seconds: options.seconds };
    println!("custody demo in {} (called $DEMO below)", d.dir.display());
    let result = scenario(&mut d, options);
    match &result {
        Ok(()) => println!(
            "\nThe demo finished in {:.0} s. Everything it made stays in {}.",
            d.started.elapsed().as_secs_f64(),
            d.dir.display()
        ),
        Err(_) => println!("\nThe demo stopped; what it made so far is in {}.", d.dir.display()),
    }
    result
}

fn scenario(d: &mut Demo, options: &Options) -> Result<(), String> {
    // --- the legal team ---
    d.say(
        "The legal team makes a case key.",
        "Footage is encrypted to this age key on the observer's device, segment by segment; \
         only its holder can ever watch it. The server stores ciphertext it cannot read.",
    );
    let case_key = d.path("legal/case.agekey");
    std::fs::create_dir_all(d.dir.join("legal")).map_err(|e| e.to_string())?;
    let key = d.json(&["keygen", "--recipient-key", "--json", "-o", &case_key])?;
    let recipient = field(&key, "recipient")?.to_string();
    println!("          case recipient: {recipient}");

    d.say(
        "The legal team starts its server on loopback.",
        "It makes its Ed25519 signing key and TLS certificate on first start. Every receipt, \
         device certificate and custody-log head it issues is signed with that key, which a \
         lawyer later trusts by its fingerprint.",
    );
    let data = d.path("legal/server");
    let mut child = d
        .custody()
        .args(["serve", "--data", &data, "--listen", "127.0.0.1:0", "--recipient", &recipient])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(d.dir.join("legal/server.log")).map_err(|e| e.to_string())?,
        ))
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no server stdout")?;
    let _server = ServerProcess { child };
    let server_lines = lines_of(stdout);
    let (mut url, mut fingerprint) = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while url.is_empty() || fingerprint.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server_lines
            .recv_timeout(left)
            .map_err(|_| "the server did not start within 30 s (see $DEMO/legal/server.log)")?;
        println!("          | {line}");
        if let Some(u) = line.strip_prefix("Listening on ") {
            url = u.trim().to_string();
        } else if let Some(f) = line.strip_prefix("Fingerprint:") {
            fingerprint = f.trim().to_string();
        }
    }

    d.say(
        "The legal team adds a lawyer, who logs in.",
        "Members authenticate every read with a token the server keeps only as a hash. Logging \
         in pins the server's TLS certificate and saves its public key as the lawyer's trust \
         anchor for verification.",
    );
    let member = d.json(&[
        "admin", "member", "add", "--data", &data, "lawyer-a", "--role", "member", "--json",
    ])?;
    let member_token = field(&member, "token")?.to_string();
    d.show(&["login", &url, "--token", &member_token])?;

    // --- the observer ---
    let vault = d.path("observer/vault");
    d.say(
        "The observer's device makes its signing key and enrolls with a one-time token.",
        "The server certifies the device key; the device pins the server's TLS certificate and \
         receives the case key's recipient, so everything it records is sealed to the legal team.",
    );
    d.run(&["--vault", &vault, "keygen"])?;
    let token =
        d.json(&["admin", "enroll-token", "--data", &data, "--label", "observer-7", "--json"])?;
    let token = field(&token, "token")?.to_string();
    d.show(&["--vault", &vault, "enroll", &url, &token])?;

    d.say(
        &format!(
            "The observer records {} s live from a synthetic camera, uploading as it goes.",
            d.seconds
        ),
        "Each 2-second segment is hashed, signed, chained to the one before, encrypted and \
         fsynced the moment it is cut, then uploaded; the server stores it durably, logs it and \
         answers with a signed receipt. A phone seized now would lose nothing already receipted.",
    );
    // A phone records beside the laptop, from the capture page the server serves.
    let link = d.json(&[
        "admin",
        "enroll-token",
        "--data",
        &data,
        "--label",
        "phone-1",
        "--link",
        &url,
        "--json",
    ])?;
    let link = field(&link, "link")?.to_string();
    let cert = std::fs::read(Path::new(&data).join("tls-cert.der")).map_err(|e| e.to_string())?;
    let spki = custody_browser::spki::spki_sha256_base64(&cert).map_err(|e| e.to_string())?;
    let phone_seconds = d.seconds.min(10);
    println!(
        "          A phone (headless Chromium, fake camera) opens the enrollment link and records \
         {phone_seconds} s from the capture page meanwhile:"
    );
    let phone = {
        let url = url.clone();
        std::thread::spawn(move || phone_records(&url, &link, &spki, phone_seconds))
    };
    let id = record(d, &vault, &["--duration", &d.seconds.to_string()], None)?;
    let phone_id = phone.join().map_err(|_| "the phone's thread panicked".to_string())??;
    d.show(&["--vault", &vault, "status"])?;

    // --- the lawyer ---
    let bundle = d.path(&format!("lawyer/bundle-{id}"));
    d.say(
        "The lawyer fetches the evidence bundle.",
        "A bundle is self-contained: signed records, sealed segments, receipts, the device \
         certificate and the custody-log entries with inclusion proofs against one signed log \
         head. The fetch itself is logged, and its log entry is in the bundle.",
    );
    d.show(&["fetch", &id, "-o", &bundle])?;

    let report = d.path("lawyer/report.html");
    d.say(
        "The lawyer verifies it offline, with the server key as trust anchor, and writes the report.",
        "Every signature, hash, chain link, receipt and log proof is checked; with the case key \
         every segment is also decrypted in memory and its content checked against what the \
         device signed.",
    );
    d.show(&["verify", "--identity", &case_key, "--html", &report, &bundle])?;

    let mp4 = d.path("lawyer/recording.mp4");
    d.say(
        "The lawyer exports one playable MP4.",
        "The segments are decrypted and joined without re-encoding; the MP4's packet digest is \
         checked against the signed recording, so the video shown in court is provably the same \
         media.",
    );
    d.show(&["export", &bundle, "--identity", &case_key, "-o", &mp4])?;

    d.say(
        "The lawyer fetches and verifies the phone's recording the same way.",
        "Each segment was sealed on the phone itself: hashed, signed with a key the page made \
         non-extractable in WebCrypto, encrypted with age to the case key and uploaded from the \
         browser. With the case key, the verifier decrypts every segment and demuxes the WebM to \
         check its packets against what the phone signed.",
    );
    let phone_bundle = d.path(&format!("lawyer/bundle-{phone_id}"));
    d.show(&["fetch", &phone_id, "-o", &phone_bundle])?;
    let out = d.show(&["verify", "--identity", &case_key, &phone_bundle])?;
    if !String::from_utf8_lossy(&out.stdout).contains("INTACT AND COMPLETE") {
        return Err("the phone's recording should verify as intact and complete".into());
    }
    println!("          Both recordings verify: the laptop's and the phone's.");

    // --- a seizure ---
    d.say(
        "A second recording is killed mid-way, as a seizure would.",
        "The recorder is killed with SIGKILL after a few segments: no end record, no clean \
         shutdown, and the device is gone. What reached the server before the kill is still \
         proven, and the verdict says where the recording was cut off.",
    );
    let seized = record(d, &vault, &[], Some(options.seized_after()))?;
    let seized_bundle = d.path(&format!("lawyer/bundle-{seized}"));
    d.show(&["fetch", &seized, "-o", &seized_bundle])?;
    let out = d.custody().args(["verify", &seized_bundle]).output().map_err(|e| e.to_string())?;
    println!("          $ custody verify $DEMO/lawyer/bundle-{seized}");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        println!("          | {line}");
    }
    if !out.status.success() || !text.contains("cut off") {
        return Err(format!(
            "the seized recording should verify as intact but cut off ({}):\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    println!();
    println!("What the demo made:");
    println!("  the evidence bundle:    {bundle}");
    println!("  the court report:       {report}");
    println!("  the exported video:     {mp4}");
    println!("  the export's report:    {mp4}.report.html");
    println!("  the seized recording:   {seized_bundle}");
    println!("  the phone's bundle:     {phone_bundle}");
    println!("  the server key to trust: {fingerprint}");
    Ok(())
}

/// Records from the synthetic camera, printing each segment as it is saved. With
/// `kill_after`, the recorder is killed (SIGKILL) once that many segments are saved: the
/// server keeps what the device had uploaded by then. Returns the recording id.
fn record(
    d: &Demo,
    vault: &str,
    extra: &[&str],
    kill_after: Option<u64>,
) -> Result<String, String> {
    let camera = camera();
    let mut args =
        vec!["--vault", vault, "record", "--json", "--format", "lavfi", "--input", &camera];
    args.extend_from_slice(extra);
    println!("          $ custody {}", shown(&args, &d.dir));
    let mut child = d
        .custody()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(d.dir.join(format!("observer/record-{}.log", d.step)))
                .map_err(|e| e.to_string())?,
        ))
        .spawn()
        .map_err(|e| format!("starting the recorder: {e}"))?;
    let events = lines_of(child.stdout.take().ok_or("no recorder stdout")?);
    let mut id = String::new();
    // Positions 1..=segments are segments (0 is the header, the one after the last segment
    // the end record): the receipts are named and counted as what they are.
    let mut segments: Option<u64> = None;
    let mut segments_receipted = 0u64;
    let deadline = Instant::now() + Duration::from_secs(u64::from(d.seconds) + 60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = events.recv_timeout(left) else { break };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            println!("          | {line}");
            continue;
        };
        match event["event"].as_str() {
            Some("started") => {
                id = event["recording"].as_str().unwrap_or_default().to_string();
                println!("          | recording {id} started");
            }
            Some("saved") => {
                let seq = event["seq"].as_u64().unwrap_or(0);
                println!(
                    "          | segment {seq:>2} sealed and saved: {:>7} bytes, media to {:>5.1} s, sealed in {:.0} ms",
                    event["ciphertext_len"].as_u64().unwrap_or(0),
                    event["media_end_us"].as_f64().unwrap_or(0.0) / 1e6,
                    event["seal_latency_us"].as_f64().unwrap_or(0.0) / 1e3,
                );
                if kill_after.is_some_and(|n| seq >= n) {
                    child.kill().map_err(|e| format!("killing the recorder: {e}"))?;
                    println!("          | SIGKILL: the recorder is gone, mid-recording");
                    break;
                }
            }
            Some("receipted") => {
                let seq = event["seq"].as_u64().unwrap_or(0);
                let what = match seq {
                    0 => "the header".to_string(),
                    s if segments.is_some_and(|n| s > n) => "the end record".to_string(),
                    s => {
                        segments_receipted += 1;
                        format!("segment {s:>2}")
                    }
                };
                println!(
                    "          |     {what} receipted by the server: signed receipt verified and stored {:.0} ms after it was saved",
                    event["latency_ms"].as_f64().unwrap_or(0.0),
                );
            }
            Some("upload") => {
                let records = event["receipted"].as_u64().unwrap_or(0);
                println!(
                    "          | upload: {}, {} waiting",
                    counted_segments(segments_receipted, records),
                    event["waiting"].as_u64().unwrap_or(0),
                );
            }
            Some("ended") => {
                segments = event["segments"].as_u64();
                println!(
                    "          | ended ({}): {} segments",
                    event["ended"].as_str().unwrap_or("?"),
                    event["segments"].as_u64().unwrap_or(0)
                );
            }
            _ => println!("          | {line}"),
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if kill_after.is_none() && !status.success() {
        return Err(format!(
            "the recorder failed ({status}); see $DEMO/observer/record-{}.log",
            d.step
        ));
    }
    if id.is_empty() {
        return Err("the recorder never started a recording".into());
    }
    Ok(id)
}

/// "5 segments receipted", or "5 segments and 2 header/end records receipted": what the
/// upload summary's record count holds, named as the recorder names it.
fn counted_segments(segments: u64, records: u64) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let others = records.saturating_sub(segments);
    let segs = plural(segments, "segment", "segments");
    if others == 0 {
        format!("{segs} receipted")
    } else {
        format!(
            "{segs} and {} receipted",
            plural(others, "header/end record", "header/end records")
        )
    }
}

/// The demo's phone: headless Chromium (fake camera and microphone) trusting the server's
/// TLS key, enrolled from `link` through the capture page's own button, recording
/// `seconds` with the big button and stopping; returns once every record is receipted.
/// Its screenshots go to target/browser-screens/demo-phone-*.png.
fn phone_records(url: &str, link: &str, spki: &str, seconds: u32) -> Result<String, String> {
    use custody_browser::{Chromium, LaunchOptions, Phone, Profile};
    let e = |e: custody_browser::Error| format!("the phone: {e}");
    let profile = Profile::new().map_err(e)?;
    let launch = LaunchOptions { trust_spki: vec![spki.to_string()], ..Default::default() };
    let chromium = Chromium::launch(&profile, &launch).map_err(e)?;
    let phone = Phone::open(&chromium, url, link, "demo-phone", false).map_err(e)?;
    phone.enroll().map_err(e)?;
    println!("          | phone: enrolled from the link; the server key matched its fingerprint");
    let id = phone.start_recording().map_err(e)?;
    println!("          | phone: recording {id} started in the browser");
    std::thread::sleep(Duration::from_secs(u64::from(seconds)));
    let _ = phone.shot("recording");
    phone.stop_recording(&id).map_err(e)?;
    let status = phone.wait_drained(Duration::from_secs(90)).map_err(e)?;
    let segments = status["recordings"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["id"] == id.as_str()))
        .and_then(|r| r["segments"].as_u64())
        .unwrap_or(0);
    println!(
        "          | phone: stopped; {segments} segments sealed on the phone, every segment receipted"
    );
    let _ = phone.shot("drained");
    drop(phone);
    chromium.close().map_err(e)?;
    Ok(id)
}
