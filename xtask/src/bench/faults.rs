//! `cargo xtask bench faults`: live upload while the server or the network hiccups (issue
//! 16, section 2). A real `custody record` (a synthetic camera at real time, 2 s segments)
//! uploads to a real `custody serve` on loopback while
//! - **kills**: the server is killed with SIGKILL 20 times, down 0–1.5 s each, and started
//!   again on the same data directory and port (TLS, as deployed);
//! - **proxy**: the fault proxy (client/tests/common/fault_proxy.rs, included here by path)
//!   stands between them (plain HTTP behind it) and, in 20 windows of 0–1.5 s, by turns
//!   resets every connection, drops (a black hole: bytes lost, nothing answered or closed),
//!   stalls (nothing moves until the window ends) and answers 5xx itself.
//!
//! The latency is `custody record --json`'s own: from the moment a record is saved on the
//! device to the moment its verified receipt is stored. Records lost are those still
//! waiting when `record` exits (after its upload wait); duplicated are receipts stored
//! twice for one position, or log entries beyond one per record (the server's log size,
//! as the device's head check sees it, before and after the recording).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{root, run};

#[path = "../../../client/tests/common/fault_proxy.rs"]
pub(super) mod fault_proxy;
use fault_proxy::{Fault, FaultProxy};

/// Faults per run, and the longest a fault lasts.
const FAULTS: usize = 20;
const LONGEST: f64 = 1.5;

/// A small deterministic generator (the same schedule every run: figures compare).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A fault schedule: (time up before it, how long it lasts), in seconds. The outages are
/// spread evenly over 0–1.5 s, in a shuffled order.
pub(super) fn schedule(seed: u64) -> Vec<(f64, f64)> {
    let mut rng = Lcg(seed);
    let mut downs: Vec<f64> =
        (0..FAULTS).map(|i| LONGEST * i as f64 / (FAULTS - 1) as f64).collect();
    for i in (1..downs.len()).rev() {
        let j = (rng.next() * (i + 1) as f64) as usize;
        downs.swap(i, j.min(i));
    }
    downs.into_iter().map(|d| (1.0 + 2.0 * rng.next(), d)).collect()
}

/// The proxy pattern's `i`-th window of the schedule: the fault it applies (reset, drop,
/// stall, 5xx by turns) held for `down` seconds, then everything passes again; how long
/// the window lasted. Shared with the phone's section (bench/phone.rs).
pub(super) fn proxy_window(proxy: &FaultProxy, i: usize, down: f64) -> f64 {
    const KINDS: [Fault; 4] = [Fault::Reset, Fault::Drop, Fault::Stall, Fault::Error];
    let t = Instant::now();
    proxy.set(KINDS[i % KINDS.len()]);
    std::thread::sleep(Duration::from_secs_f64(down));
    proxy.set(Fault::Pass);
    t.elapsed().as_secs_f64()
}

/// The directories of one run, and the `custody` binary.
struct Work {
    bin: PathBuf,
    dir: PathBuf,
}

impl Work {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("CUSTODY_VAULT", self.dir.join("vault"))
            .env("CUSTODY_CONFIG_DIR", self.dir.join("config"))
            .env_remove("CUSTODY_PASSPHRASE")
            .current_dir(&self.dir);
        c
    }

    /// `custody ARGS`' stdout; it must succeed unless `any_status`.
    fn custody(&self, args: &[&str], any_status: bool) -> Result<String, String> {
        let out = self.cmd().args(args).output().map_err(|e| format!("custody: {e}"))?;
        if !any_status && !out.status.success() {
            return Err(format!(
                "custody {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str], any_status: bool) -> Result<Value, String> {
        let text = self.custody(args, any_status)?;
        serde_json::from_str(&text).map_err(|e| format!("custody {}: {e}: {text}", args[0]))
    }

    /// The server's log size as the device's head check last saw it.
    fn log_size(&self) -> Result<u64, String> {
        self.custody(&["upload", "--json", "--timeout", "30"], true)?;
        let st = self.json(&["status", "--json"], true)?;
        st["log_head"]["tree_size"].as_u64().ok_or_else(|| format!("no log head held: {st}"))
    }
}

/// A running `custody serve`, killed (SIGKILL) when dropped.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `custody serve` at `listen` and waits until it says where it listens.
fn serve(w: &Work, listen: &str, recipient: &str, plain: bool) -> Result<Served, String> {
    let mut c = w.cmd();
    c.args(["serve", "--listen", listen, "--recipient", recipient, "--data"])
        .arg(w.dir.join("server"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if plain {
        c.arg("--insecure-http");
    }
    let mut child = c.spawn().map_err(|e| format!("custody serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    // Read on a thread so that the wait is bounded and the pipe never fills.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut served = Served { child, url: String::new() };
    while served.url.is_empty() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "custody serve did not say where it listens")?;
        if let Some(u) = line.strip_prefix("Listening on ") {
            served.url = u.trim().to_string();
        }
    }
    Ok(served)
}

/// What one run measured.
struct Measured {
    latencies_ms: Vec<f64>,
    records: u64,
    lost: u64,
    duplicated: u64,
    outages: Vec<f64>,
    notes: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Kills,
    Proxy,
}

/// Records while `pattern`'s faults run; what it measured.
fn measure(bin: &Path, pattern: Pattern, seed: u64) -> Result<Measured, String> {
    let dir = root().join(format!("target/bench-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let w = Work { bin: bin.to_path_buf(), dir: dir.clone() };
    w.custody(&["keygen"], false)?;
    let case = dir.join("case.agekey").display().to_string();
    let recipient = w.json(&["keygen", "--recipient-key", "--json", "-o", &case], false)?
        ["recipient"]
        .as_str()
        .ok_or("keygen printed no recipient")?
        .to_string();
    let plain = pattern == Pattern::Proxy;
    let mut server = serve(&w, "127.0.0.1:0", &recipient, plain)?;
    let listen = server.url.rsplit("//").next().unwrap_or_default().to_string();
    let proxy = if plain {
        let addr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
        Some(FaultProxy::start(addr).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let data = dir.join("server").display().to_string();
    let token = w
        .json(&["admin", "enroll-token", "--json", "--label", "bench", "--data", &data], false)?
        ["token"]
        .as_str()
        .ok_or("no token")?
        .to_string();
    match &proxy {
        Some(p) => {
            let url = format!("http://{}", p.addr);
            w.custody(&["enroll", &url, &token, "--insecure-http"], false)?
        }
        None => w.custody(&["enroll", &server.url, &token], false)?,
    };
    let log_before = w.log_size()?;

    let plan = schedule(seed);
    let planned: f64 = plan.iter().map(|(up, down)| up + down + 0.3).sum();
    let seconds = (planned + 6.0).ceil() as u64;
    let graph = format!(
        "testsrc2=size=1280x720:rate=25:duration={seconds},realtime[out0];\
         sine=frequency=440:sample_rate=48000:duration={seconds},arealtime[out1]"
    );
    let mut rec = w
        .cmd()
        .args(["record", "--json", "--format", "lavfi", "--input", &graph, "-r", &recipient])
        .args(["--upload-wait", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("custody record: {e}"))?;
    let stdout = rec.stdout.take().ok_or("no stdout")?;
    let events = Arc::new(Mutex::new(Vec::<Value>::new()));
    let started = Arc::new(AtomicBool::new(false));
    let (ev, st) = (events.clone(), started.clone());
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["event"] == "started" {
                    st.store(true, Ordering::Relaxed);
                }
                ev.lock().unwrap_or_else(|p| p.into_inner()).push(v);
            }
        }
    });
    let begin = Instant::now();
    while !started.load(Ordering::Relaxed) {
        if begin.elapsed() > Duration::from_secs(60) {
            let _ = rec.kill();
            return Err("custody record did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first receipts come with the network whole.
    std::thread::sleep(Duration::from_secs(3));
    let mut outages = Vec::new();
    for (i, (up, down)) in plan.iter().enumerate() {
        std::thread::sleep(Duration::from_secs_f64(*up));
        match &proxy {
            Some(p) => outages.push(proxy_window(p, i, *down)),
            None => {
                let t = Instant::now();
                drop(server);
                std::thread::sleep(Duration::from_secs_f64(*down));
                server = serve(&w, &listen, &recipient, false)?;
                outages.push(t.elapsed().as_secs_f64());
            }
        }
    }
    let status = rec.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let events = events.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if !status.success() {
        eprintln!("xtask: custody record exited with {status}");
    }
    let log_after = w.log_size()?;

    let id = events.iter().find(|e| e["event"] == "started").map(|e| e["recording"].clone());
    let receipted: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "receipted" && Some(&e["recording"]) == id.as_ref())
        .collect();
    let mut seqs: Vec<u64> = receipted.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let receipted_events = seqs.len() as u64;
    seqs.sort_unstable();
    seqs.dedup();
    let upload = events.iter().find(|e| e["event"] == "upload").cloned().unwrap_or(Value::Null);
    let lost = upload["waiting"].as_u64().unwrap_or(u64::MAX);
    let records = seqs.len() as u64 + lost;
    let twice = receipted_events - seqs.len() as u64;
    let extra_entries = (log_after - log_before).saturating_sub(seqs.len() as u64);
    let mut latencies_ms: Vec<f64> =
        receipted.iter().filter_map(|e| e["latency_ms"].as_f64()).collect();
    latencies_ms.sort_by(f64::total_cmp);
    let notes = match &proxy {
        Some(p) => {
            let c = p.counts();
            format!(
                "the proxy passed {} requests ({} of them probes), reset {} connections, \
                 black-holed {}, answered {} with 5xx",
                c.requests, c.probes, c.resets, c.black_holed, c.errors
            )
        }
        None => format!("{} restarts on port {}", outages.len(), listen),
    };
    drop(proxy);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Measured { latencies_ms, records, lost, duplicated: twice + extra_entries, outages, notes })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// The section's body.
pub fn section(runs: usize) -> Result<String, String> {
    // CUSTODY_BIN names a binary already built (while the tree does not build, say).
    let bin = match std::env::var_os("CUSTODY_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            run("cargo", &["build", "--release", "-p", "custody-cli"])?;
            root().join("target/release/custody")
        }
    };
    let mut rows = String::from(
        "| pattern | run | records | outages | longest outage | sealed → receipt p50 | p99 | max | over 5 s | lost | duplicated | target p99 ≤ longest outage + 3 s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut notes = String::new();
    let mut all_met = true;
    for (name, pattern) in [("server killed", Pattern::Kills), ("fault proxy", Pattern::Proxy)] {
        for i in 0..runs.clamp(1, 3) {
            eprintln!("xtask: bench faults: {name}, run {}", i + 1);
            let m = measure(&bin, pattern, 16 + i as u64)?;
            let longest = m.outages.iter().copied().fold(0.0, f64::max);
            let p99 = pct(&m.latencies_ms, 0.99);
            let met = p99 <= (longest + 3.0) * 1000.0 && m.lost == 0 && m.duplicated == 0;
            all_met &= met;
            rows.push_str(&format!(
                "| {name} | {} | {} | {} | {longest:.2} s | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} | {} | {} |\n",
                i + 1,
                m.records,
                m.outages.len(),
                pct(&m.latencies_ms, 0.5),
                p99,
                m.latencies_ms.last().copied().unwrap_or(f64::NAN),
                m.latencies_ms.iter().filter(|l| **l > 5000.0).count(),
                m.lost,
                m.duplicated,
                if met { "met" } else { "**missed**" },
            ));
            notes.push_str(&format!("- {name}, run {}: {}.\n", i + 1, m.notes));
        }
    }
    Ok(format!(
        "Command: `cargo xtask bench faults` (release build; `CUSTODY_BIN` names another binary). `custody record` records live from a \
         synthetic camera (1280×720 test pattern at real time, and a tone; 2 s segments) and uploads \
         to `custody serve` on loopback while {FAULTS} faults of 0–{LONGEST} s each (spread evenly, \
         shuffled, 1–3 s apart) hit it: **server killed**: SIGKILL, then `custody serve` started \
         again on the same data directory and port (TLS); the outage runs from the kill to the \
         restarted server saying it listens; **fault proxy**: the device reaches a plain-HTTP server \
         through client/tests/common/fault_proxy.rs, which by turns resets every connection, drops \
         (bytes lost: nothing answered, nothing closed, a connection that lost bytes stays dead), \
         stalls (nothing moves until the window ends) and answers 5xx itself; the outage is the \
         window. Latency: from the record saved on the device to its verified receipt stored \
         (`record --json`'s `latency_ms`). Lost: records still waiting when `record` exits after its \
         upload wait; duplicated: a position receipted twice, or log entries beyond one per record. \
         The uploader's rules: docs/api.md, \"What the device does\". The machine is shared with \
         other work while this runs (load average {} at the end), so these figures are on a busy \
         machine.\n\n{rows}\nAll targets (p99 ≤ longest outage + 3 s, 0 lost, 0 duplicated): **{}**.\n\n{notes}",
        load_average(),
        if all_met { "met" } else { "missed" }
    ))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
