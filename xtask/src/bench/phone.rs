//! `cargo xtask bench phone`: the capture page in Debian's headless Chromium (fake camera)
//! against `custody serve` on loopback with TLS, driven through custody-browser.
//!
//! What it measures, each from the page's own statistics (`window.custodyStats`, the
//! read-only hook web/src/app/main.js keeps) and from /proc:
//! - a segment's data leaving the MediaRecorder → its receipt verified and stored on the
//!   phone (p50, p99), and the same with the page's CPU throttled 4× through DevTools;
//! - the browser's CPU time (every Chromium process: page, camera, encoder) per second of
//!   video recorded;
//! - the outbox while the network is away for 60 s (largest count and bytes), and how long
//!   it takes to drain once it is back;
//! - frames lost at segment boundaries: frames the page's MediaRecorder produced (tapped
//!   in the page) that the lawyer's verified export lacks, and presentation-time gaps above
//!   1.5 frame durations at a boundary that the recorder's own output does not have;
//! - tap on Record → the recorder's start and its first data;
//! - the page's size, gzip-compressed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use custody_browser::{Fixture, Phone};
use serde_json::Value;

use crate::root;

/// The receipt times of recording `id`'s segments, by polling the device's status every
/// 10 ms in the page (receipts come oldest first: the k-th receipted is segment k).
const RECEIPT_POLLER: &str = "(() => { window.__receipts = {}; setInterval(() => {
    const st = window.custodyStats.status(); if (!st) return;
    for (const r of st.recordings) { const a = (window.__receipts[r.id] ??= []);
      while (a.length < r.receipted) a.push(performance.now()); } }, 10); return true; })()";

/// What the page's status said went wrong, as it changed (polled every 50 ms): each error
/// code with how many times it appeared, so a slow run says which path held its records.
const ERROR_POLLER: &str = "(() => { window.__errors = {}; let last = null; setInterval(() => {
    const st = window.custodyStats.status(); const c = st && st.lastError ? st.lastError.code : null;
    if (c && c !== last) window.__errors[c] = (window.__errors[c] || 0) + 1; last = c; }, 50);
    return true; })()";

fn err(e: custody_browser::Error) -> String {
    format!("phone bench: {e}")
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Recorded {
    id: String,
    latencies: Vec<f64>,
    media_s: f64,
    cpu_s: f64,
    stats: Value,
}

/// Records `seconds` on `phone` (throttled by `cpu_rate`), waits for every receipt.
fn record(f: &Fixture, phone: &Phone, seconds: u64, cpu_rate: f64) -> Result<Recorded, String> {
    phone.tab.set_cpu_throttling(cpu_rate).map_err(err)?;
    let cpu0 = f.chromium.cpu_time();
    let id = phone.start_recording().map_err(err)?;
    std::thread::sleep(Duration::from_secs(seconds));
    phone.stop_recording(&id).map_err(err)?;
    let cpu_s = (f.chromium.cpu_time() - cpu0).as_secs_f64();
    phone.wait_drained(Duration::from_secs(120)).map_err(err)?;
    phone.tab.set_cpu_throttling(1.0).map_err(err)?;
    let (stats, latencies) = receipt_latencies(phone, &id)?;
    let segs = stats["current"]["segments"].as_array().cloned().unwrap_or_default();
    let media_s = segs
        .last()
        .and_then(|s| s["mediaEndUs"].as_f64())
        .zip(segs.first().and_then(|s| s["mediaStartUs"].as_f64()))
        .map_or(0.0, |(e, s)| (e - s) / 1e6);
    Ok(Recorded { id, latencies, media_s, cpu_s, stats })
}

fn frame_times(file: &Path) -> Result<Vec<f64>, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "csv=p=0", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time"])
        .arg(file)
        .output()
        .map_err(|e| format!("ffprobe: {e}"))?;
    let mut t: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    t.sort_by(f64::total_cmp);
    Ok(t)
}

fn gaps(times: &[f64]) -> (f64, Vec<(f64, f64)>) {
    let mut d: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    d.sort_by(f64::total_cmp);
    let frame = d.get(d.len() / 2).copied().unwrap_or(0.0);
    (
        frame,
        times
            .windows(2)
            .filter(|w| w[1] - w[0] > 1.5 * frame)
            .map(|w| (w[0], w[1] - w[0]))
            .collect(),
    )
}

/// (frames the recorder made that the export lacks, gaps at boundaries the recorder's
/// output lacks, boundaries, frames) for recording `r`.
fn boundary_losses(
    f: &Fixture,
    phone: &Phone,
    r: &Recorded,
) -> Result<(usize, usize, usize, usize), String> {
    let raw = phone.recorder_output().map_err(err)?;
    let bundle = f.server.fetch(&r.id, "bench-bundle").map_err(err)?;
    let video = f.server.scratch().join("bench.webm");
    f.server.export(&bundle, &video).map_err(err)?;
    let times = frame_times(&video)?;
    let raw_file = f.server.scratch().join("bench-raw.webm");
    std::fs::write(&raw_file, raw.last().cloned().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let raw_times = frame_times(&raw_file)?;
    let _ = std::fs::remove_file(&raw_file);
    let (Some(first), Some(raw_first)) = (times.first(), raw_times.first()) else {
        return Err("no video frames in the export or the recorder's output".into());
    };
    let shift = first - raw_first;
    let lost = raw_times
        .iter()
        .filter(|&&t| !times.iter().any(|e| (e - shift - t).abs() < 0.0015))
        .count();
    let segs = r.stats["current"]["segments"].as_array().cloned().unwrap_or_default();
    let t0 = segs.first().and_then(|s| s["mediaStartUs"].as_f64()).unwrap_or(0.0) / 1e6;
    let boundaries: Vec<f64> = segs
        .iter()
        .skip(1)
        .filter_map(|s| s["mediaStartUs"].as_f64())
        .map(|m| m / 1e6 - t0 + first)
        .collect();
    let (frame, export_gaps) = gaps(&times);
    let (_, raw_gaps) = gaps(&raw_times);
    let by_page = export_gaps
        .iter()
        .filter(|(t, g)| boundaries.iter().any(|b| *b >= t - frame && *b <= t + g + frame))
        .filter(|(t, g)| {
            !raw_gaps
                .iter()
                .any(|(rt, rg)| (rt + shift - t).abs() < 0.0015 && (rg - g).abs() < 0.0015)
        })
        .count();
    Ok((lost, by_page, boundaries.len(), times.len()))
}

/// The built page's files under web/dist, gzip -9 each: (raw bytes, compressed bytes).
/// The page's statistics, and each segment of the current recording's time from leaving
/// the recorder to its receipt (ms, sorted), from the receipt poller's times.
fn receipt_latencies(phone: &Phone, id: &str) -> Result<(Value, Vec<f64>), String> {
    let stats = phone.stats().map_err(err)?;
    let receipts = phone
        .tab
        .eval(&format!("window.__receipts[{}] || []", Value::from(id)), Duration::from_secs(10))
        .map_err(err)?;
    let segs = stats["current"]["segments"].as_array().cloned().unwrap_or_default();
    let mut latencies: Vec<f64> = segs
        .iter()
        .zip(receipts.as_array().cloned().unwrap_or_default())
        .filter_map(|(s, r)| Some(r.as_f64()? - s["leftRecorderAtMs"].as_f64()?))
        .collect();
    latencies.sort_by(f64::total_cmp);
    Ok((stats, latencies))
}

/// The page as the server embeds it: installed from the lockfile and built first, so a
/// fresh clone measures the page rather than the server's "not built" answer.
fn page_size() -> Result<(u64, u64), String> {
    crate::web::install()?;
    crate::web::build()?;
    let mut stack = vec![root().join("web/dist")];
    let (mut raw, mut gz) = (0u64, 0u64);
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|_| "web/dist is missing: run cargo xtask web")?;
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            raw += e.metadata().map_or(0, |m| m.len());
            let out = Command::new("gzip")
                .args(["-9", "-c"])
                .arg(&path)
                .output()
                .map_err(|e| format!("gzip: {e}"))?;
            gz += out.stdout.len() as u64;
        }
    }
    if raw == 0 {
        return Err("web/dist is empty: run cargo xtask web".into());
    }
    Ok((raw, gz))
}

pub fn section(_runs: usize) -> Result<String, String> {
    let seconds: u64 = std::env::var("CUSTODY_BENCH_PHONE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let offline_s: u64 = std::env::var("CUSTODY_BENCH_PHONE_OFFLINE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (raw, gz) = page_size()?;
    let f = Fixture::start().map_err(err)?;
    let link = f.server.enroll_link("bench-phone").map_err(err)?;
    let phone =
        Phone::open(&f.chromium, f.server.origin(), &link, "bench-phone", false).map_err(err)?;
    phone.enroll().map_err(err)?;
    phone.tab.eval(RECEIPT_POLLER, Duration::from_secs(10)).map_err(err)?;
    phone.tap_recorder().map_err(err)?;

    let plain = record(&f, &phone, seconds, 1.0)?;
    let (lost, gaps_by_page, boundaries, frames) = boundary_losses(&f, &phone, &plain)?;
    let tap = &plain.stats["recordings"][0];
    let tap_to_start = tap["recorderStartedAtMs"].as_f64().unwrap_or(f64::NAN)
        - tap["tapAtMs"].as_f64().unwrap_or(f64::NAN);
    let tap_to_data = tap["firstChunkAtMs"].as_f64().unwrap_or(f64::NAN)
        - tap["tapAtMs"].as_f64().unwrap_or(f64::NAN);
    let mime = tap["mimeType"].as_str().unwrap_or("?").to_string();
    let throttled = record(&f, &phone, seconds, 4.0)?;

    // Offline: the outbox grows while recording goes on; then the network comes back.
    phone.tab.set_offline(true).map_err(err)?;
    let id = phone.start_recording().map_err(err)?;
    let (mut max_count, mut max_bytes) = (0u64, 0u64);
    for _ in 0..offline_s {
        std::thread::sleep(Duration::from_secs(1));
        let st = phone.status().map_err(err)?;
        max_count = max_count.max(st["outbox"]["count"].as_u64().unwrap_or(0));
        max_bytes = max_bytes.max(st["outbox"]["bytes"].as_u64().unwrap_or(0));
    }
    let still = phone.is_recording().map_err(err)?;
    if still {
        phone.stop_recording(&id).map_err(err)?;
    }
    let line = phone.status_line().map_err(err)?;
    phone.tab.set_offline(false).map_err(err)?;
    let back = std::time::Instant::now();
    phone.wait_drained(Duration::from_secs(180)).map_err(err)?;
    let drained_s = back.elapsed().as_secs_f64();
    let _ = phone.shot("offline-drained");

    let row = |name: &str, r: &Recorded| {
        format!(
            "| {name} | {} | {:.1} s | {:.0} ms | {:.0} ms | {:.0} ms | {:.2} s |\n",
            r.latencies.len(),
            r.media_s,
            pct(&r.latencies, 0.5),
            pct(&r.latencies, 0.99),
            r.latencies.last().copied().unwrap_or(f64::NAN),
            r.cpu_s / r.media_s.max(0.001),
        )
    };
    let mut out = format!(
        "Command: `cargo xtask bench phone` (custody-browser: Debian's Chromium headless with its fake \
         camera, 20 fps, and microphone; the capture page from `custody serve` on loopback with TLS; \
         {seconds} s per recording; one run per figure). The page chose `{mime}`. Latency runs from the \
         moment a MediaRecorder chunk that completed a segment left the recorder (the page's \
         `leftRecorderAtMs`) to the moment the device's status counts that segment's receipt as \
         verified and stored (polled in the page every 10 ms). CPU is the user + system time of every \
         Chromium process (page, camera, encoder, network) from /proc, per second of media.\n\n\
         | run | segments | media | leaves recorder → receipt p50 | p99 | max | browser CPU per s of video |\n\
         |---|---|---|---|---|---|---|\n"
    );
    out.push_str(&row("CPU 1×", &plain));
    out.push_str(&row("CPU 4× throttled (DevTools)", &throttled));
    out.push_str(&format!(
        "\np99 target < 500 ms on loopback: **{}** (1×: {:.0} ms; 4×: {:.0} ms).\n\n\
         | measure | value |\n|---|---|\n\
         | frames the recorder produced missing from the verified export | **{lost}** of {frames} (target 0) |\n\
         | gaps > 1.5 frame durations at the {boundaries} segment boundaries not in the recorder's own output | **{gaps_by_page}** (target 0) |\n\
         | tap on Record → recorder started | {tap_to_start:.0} ms |\n\
         | tap on Record → first recorder data (1 s timeslice) | {tap_to_data:.0} ms |\n\
         | outbox during {offline_s} s offline: largest | {max_count} records, {:.2} MB |\n\
         | still recording at the end of the offline spell | {} |\n\
         | drained after the network came back | {drained_s:.1} s |\n\
         | the page (web/dist), gzip -9 | {:.0} KB ({:.0} KB uncompressed; target < 300 KB) |\n",
        if pct(&plain.latencies, 0.99) < 500.0 && pct(&throttled.latencies, 0.99) < 500.0 { "met" } else { "missed" },
        pct(&plain.latencies, 0.99),
        pct(&throttled.latencies, 0.99),
        max_bytes as f64 / 1e6,
        if still { "yes".to_string() } else { format!("no: the page said \"{line}\"") },
        gz as f64 / 1e3,
        raw as f64 / 1e3,
    ));
    drop(phone);
    Ok(out)
}

/// What one phone-faults pattern measured.
struct FaultRun {
    latencies: Vec<f64>,
    outages: Vec<f64>,
    /// Records still in the page's outbox at the end, and whether it drained in time.
    waiting: u64,
    drained: bool,
    /// Segments the page sealed (its own count) that the server does not hold, and
    /// records the server holds beyond the page's (header + segments + end).
    lost: u64,
    duplicated: u64,
    verdict: String,
    exit: String,
    /// The page's error codes during the run, with how often each appeared.
    errors: String,
}

/// Records on `phone` while `fault(i, down)` applies the `i`-th outage of the `faults`
/// section's schedule (it returns how long the outage lasted), then stops, waits for the
/// outbox to drain (bounded), and measures it against the server's view and the lawyer's.
fn fault_run(
    server: &mut custody_browser::Server,
    phone: &Phone,
    fault: &mut dyn FnMut(&mut custody_browser::Server, usize, f64) -> Result<f64, String>,
) -> Result<FaultRun, String> {
    phone.tab.eval(RECEIPT_POLLER, Duration::from_secs(10)).map_err(err)?;
    phone.tab.eval(ERROR_POLLER, Duration::from_secs(10)).map_err(err)?;
    let plan = super::faults::schedule(16);
    let id = phone.start_recording().map_err(err)?;
    // The first receipts come with the network whole.
    std::thread::sleep(Duration::from_secs(3));
    let mut outages = Vec::new();
    for (i, (up, down)) in plan.iter().enumerate() {
        std::thread::sleep(Duration::from_secs_f64(*up));
        outages.push(fault(server, i, *down)?);
    }
    std::thread::sleep(Duration::from_secs(4));
    phone.stop_recording(&id).map_err(err)?;
    let drained = phone.wait_drained(Duration::from_secs(120)).is_ok();
    let (stats, latencies) = receipt_latencies(phone, &id)?;
    let waiting = stats["status"]["outbox"]["count"].as_u64().unwrap_or(u64::MAX);
    let sealed = stats["current"]["segments"].as_array().map_or(0, |a| a.len() as u64);
    let listed = server.recordings().map_err(err)?;
    let row = listed.iter().find(|r| r["recording_id"] == id.as_str()).cloned();
    let row = row.unwrap_or(Value::Null);
    let stored = row["segments"].as_u64().unwrap_or(0);
    let records = row["records"].as_u64().unwrap_or(0);
    // The lawyer's view: the bundle fetched and verified with the case key.
    let bundle = server.fetch(&id, &format!("bench-faults-bundle-{}", plan.len())).map_err(err)?;
    let (code, report) = server.verify(&bundle).map_err(err)?;
    let _ = std::fs::remove_dir_all(&bundle);
    let seen = phone.tab.eval("window.__errors", Duration::from_secs(10)).map_err(err)?;
    let errors = seen.as_object().map_or_else(String::new, |m| {
        m.iter().map(|(c, n)| format!("`{c}` ×{n}")).collect::<Vec<_>>().join(", ")
    });
    Ok(FaultRun {
        latencies,
        outages,
        waiting,
        drained,
        lost: sealed.saturating_sub(stored),
        duplicated: records.saturating_sub(sealed + 2),
        verdict: report["verdict"]
            .as_str()
            .map_or_else(|| report["verdict"].to_string(), str::to_string),
        exit: code.map_or_else(|| "?".to_string(), |c| c.to_string()),
        errors: if errors.is_empty() { "none".into() } else { errors },
    })
}

/// `cargo xtask bench phone-faults`: the page records through the patterns of the CLI's
/// `faults` section, with its schedule (20 outages of 0–1.5 s, shuffled, 1–3 s apart):
/// - **server killed**: SIGKILL, and `custody serve` started again on the same data and
///   port (TLS, as deployed); the outage from the kill until the restarted server listens;
/// - **fault proxy**: the page is served by `custody serve --insecure-http` through the
///   fault proxy (client/tests/common/fault_proxy.rs, via bench/faults.rs), whose origin
///   `http://127.0.0.1:PORT` Chromium counts as a secure context, so every request of the
///   page crosses it; it resets, drops, stalls and answers 5xx by turns; the outage is
///   the window.
///
/// Each segment's latency runs from leaving the recorder to its receipt stored (the k-th
/// receipt counted in the page is taken for segment k: receipts come oldest first).
pub fn faults_section(_runs: usize) -> Result<String, String> {
    page_size()?;
    let mut runs = Vec::new();

    let mut f = Fixture::start().map_err(err)?;
    let link = f.server.enroll_link("bench-phone-faults").map_err(err)?;
    let phone = Phone::open(&f.chromium, f.server.origin(), &link, "bench-phone-faults", false)
        .map_err(err)?;
    phone.enroll().map_err(err)?;
    let killed = fault_run(&mut f.server, &phone, &mut |server, _, down| {
        Ok(server.kill_for(Duration::from_secs_f64(down)).map_err(err)?.as_secs_f64())
    })?;
    let note = format!("{} restarts on the same port", killed.outages.len());
    runs.push(("server killed", killed, note));
    drop(phone);
    drop(f);

    let options = custody_browser::ServerOptions { insecure_http: true, ..Default::default() };
    let mut server = custody_browser::Server::start(&options).map_err(err)?;
    let upstream = server
        .url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("{}: {e}", server.url))?;
    let proxy =
        super::faults::fault_proxy::FaultProxy::start(upstream).map_err(|e| e.to_string())?;
    let origin = format!("http://{}", proxy.addr);
    let profile = custody_browser::Profile::new().map_err(err)?;
    let chromium = custody_browser::Chromium::launch(&profile, &Default::default()).map_err(err)?;
    let link =
        server.enroll_link("bench-phone-proxy").map_err(err)?.replacen(&server.url, &origin, 1);
    let phone = Phone::open(&chromium, &origin, &link, "bench-phone-proxy", false).map_err(err)?;
    phone.enroll().map_err(err)?;
    let through = fault_run(&mut server, &phone, &mut |_, i, down| {
        Ok(super::faults::proxy_window(&proxy, i, down))
    })?;
    let c = proxy.counts();
    runs.push((
        "fault proxy",
        through,
        format!(
            "the proxy passed {} requests ({} of them probes), reset {} connections, black-holed {}, \
             held {} reads in stalls, answered {} with 5xx",
            c.requests, c.probes, c.resets, c.black_holed, c.stalled, c.errors
        ),
    ));
    drop(phone);
    drop(chromium);

    let mut rows = String::new();
    let mut notes = String::new();
    let mut all_met = true;
    for (name, r, note) in &runs {
        let longest = r.outages.iter().copied().fold(0.0, f64::max);
        let p99 = pct(&r.latencies, 0.99);
        let met = r.drained
            && p99 <= (longest + 3.0) * 1000.0
            && r.waiting == 0
            && r.lost == 0
            && r.duplicated == 0;
        all_met &= met;
        rows.push_str(&format!(
            "| {name} | {} | {} | {longest:.2} s | {:.0} ms | {p99:.0} ms | {:.0} ms | {} | {}{} | {} | {} | {} (exit {}) | {} |\n",
            r.latencies.len(),
            r.outages.len(),
            pct(&r.latencies, 0.5),
            r.latencies.last().copied().unwrap_or(f64::NAN),
            r.latencies.iter().filter(|l| **l > 5000.0).count(),
            r.waiting,
            if r.drained { "" } else { " (did not drain within 120 s)" },
            r.lost,
            r.duplicated,
            r.verdict,
            r.exit,
            if met { "met" } else { "**missed**" },
        ));
        notes.push_str(&format!("- {name}: {note}; the page's errors: {}.\n", r.errors));
    }
    Ok(format!(
        "Command: `cargo xtask bench phone-faults` (custody-browser: Debian's Chromium headless, fake \
         camera, the capture page from `custody serve` on loopback). The page records through the two \
         patterns of the `faults` section, with its schedule: 20 outages, down 0–1.5 s each (spread \
         evenly, shuffled, 1–3 s apart). **server killed**: SIGKILL, then `custody serve` started again \
         on the same data and port (TLS, as deployed); the outage runs from the kill until the restarted \
         server listens. **fault proxy**: the page is served by `custody serve --insecure-http` through \
         client/tests/common/fault_proxy.rs, which by turns resets every connection, drops (bytes lost: \
         nothing answered, nothing closed), stalls (nothing moves until the window ends) and answers 5xx \
         itself; the outage is the window. The page's origin is then the proxy's `http://127.0.0.1:PORT`, \
         which Chromium counts as a secure context (loopback is potentially trustworthy), so WebCrypto, \
         IndexedDB and the camera work as over TLS and every request of the page (enrollment, probes, \
         uploads, receipts, proofs) crosses the proxy; what TLS adds (the certificate) is not what this \
         measures, and the uploader's code path is the same. Latency: from a segment's data leaving the \
         MediaRecorder to its receipt verified and stored on the phone (the k-th receipt the page counts \
         is taken for segment k). Lost: segments the page sealed (its own count) that the server does not \
         hold; duplicated: records the server holds beyond the page's header, segments and end. Measured \
         on a shared, busy 2-core machine (load average {} at the end).\n\n\
         | pattern | segments | outages | longest outage | leaves recorder → receipt p50 | p99 | max | over 5 s | left in the outbox | lost | duplicated | the lawyer's `custody verify` | target p99 ≤ longest outage + 3 s, 0 lost, 0 duplicated |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
         {rows}\nAll targets: **{}**.\n\n{notes}",
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "unknown".into()),
        if all_met { "met" } else { "missed" },
    ))
}
