//! `cargo xtask bench`: runs every benchmark and writes `docs/benchmarks.md` from what
//! they measured. Nothing on that page is typed by hand.
//!
//! - The segmenter (`cargo bench -p custody-capture`): custody's capture against FFmpeg's
//!   segment muxer on the same ~1 GB file, back to back.
//! - `custody import` of that file end to end (remux, hash, encrypt, hash ciphertext, sign,
//!   fsync) against the naive peer chain (`ffmpeg -c copy -f segment` to disk, then
//!   `sha256sum` and `age -r` on every segment) and against `ffmpeg -c copy -f segment`
//!   alone, in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{root, run};

mod faults;
mod phone;
mod replicas;

/// The benchmark media: 1080p30 H.264 + AAC, ~1 GB (shared with the capture bench).
pub fn media() -> PathBuf {
    root().join("target/bench-cache/1080p-h264-aac.mp4")
}

/// The mid-size benchmark media (~300 MB, a typical encounter): the first 106 s of
/// [`media`], copied without re-encoding.
pub fn mid_media() -> Result<PathBuf, String> {
    let full = media();
    ensure_media(&full)?;
    let mid = root().join("target/bench-cache/1080p-h264-aac-300mb.mp4");
    if !mid.exists() {
        let tmp = mid.with_extension("tmp.mp4");
        let (f, t) = (full.to_string_lossy().into_owned(), tmp.to_string_lossy().into_owned());
        run(
            "ffmpeg",
            &[
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "error",
                "-y",
                "-i",
                &f,
                "-t",
                "106",
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                &t,
            ],
        )?;
        std::fs::rename(&tmp, &mid).map_err(|e| e.to_string())?;
    }
    Ok(mid)
}

fn ensure_media(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let dir = path.parent().ok_or("bad media path")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    eprintln!("xtask: generating {} (~1 GB, once; a few minutes on two cores)", path.display());
    let tmp = path.with_extension("tmp.mp4");
    let tmp_s = tmp.to_string_lossy().into_owned();
    run(
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1920x1080:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "360",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "14",
            "-g",
            "60",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            &tmp_s,
        ],
    )?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Wall time, peak RSS (KiB) and CPU seconds of a shell command, by `/usr/bin/time`.
struct Timed {
    wall: f64,
    rss_kib: u64,
    cpu: f64,
}

fn timed(script: &str) -> Result<Timed, String> {
    let stats = std::env::temp_dir().join(format!("custody-bench-time-{}", std::process::id()));
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(&stats)
        .args(["bash", "-c", script])
        .status()
        .map_err(|e| format!("/usr/bin/time: {e}"))?;
    let wall = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("benchmark command failed: {script}"));
    }
    let text = std::fs::read_to_string(&stats).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&stats);
    let f: Vec<f64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    Ok(Timed {
        wall,
        rss_kib: f.first().copied().unwrap_or(0.0) as u64,
        cpu: f.get(1).copied().unwrap_or(0.0) + f.get(2).copied().unwrap_or(0.0),
    })
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb as f64 / 1048576.0));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let sha_ni = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|t| t.contains(" sha_ni"));
    format!("{cpu}, {cores} cores, {mem} RAM, SHA-NI {}", if sha_ni { "yes" } else { "no" })
}

/// Starts a timed run from a settled machine: writes back every dirty page (so no chain is
/// throttled by, or pays for, the writeback of the one before it; the peer chain alone
/// leaves ~2 GB dirty), then touches `bytes` of fresh memory and frees it, so the
/// page-cache pages the run writes into are ones this virtual machine's host already
/// backs. Without both, FFmpeg alone measured anywhere from 1.5 s to 5 s for the same work.
fn settle(bytes: usize) -> Result<(), String> {
    run("sync", &[])?;
    let mut pages = vec![0u8; bytes];
    for page in pages.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&pages);
    Ok(())
}

fn import_bench(media: &Path, runs: usize) -> Result<String, String> {
    let bin = root().join("target/release/custody");
    let work = root().join("target/bench-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let w = work.display();
    let m = media.display();
    let c = bin.display();
    // A case key for both custody and the peer chain.
    run("bash", &["-c", &format!("CUSTODY_VAULT={w}/v {c} keygen >/dev/null && {c} keygen --recipient-key -o {w}/case.key >/dev/null")])?;
    let recipient = std::fs::read_to_string(work.join("case.key"))
        .map_err(|e| e.to_string())?
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .ok_or("no recipient in the case key")?;
    let size = std::fs::metadata(media).map_err(|e| e.to_string())?.len() as f64;
    run("bash", &["-c", &format!("cat {m} > /dev/null")])?;

    let mut rows: Vec<(String, Vec<Timed>)> = vec![
        ("`custody import` (remux, SHA-256, age encryption, SHA-256 of ciphertext, Ed25519, fsync per segment)".into(), vec![]),
        ("peer chain: `ffmpeg -c copy -f segment` to disk, then `sha256sum` and `age -r` per segment".into(), vec![]),
        ("`ffmpeg -c copy -f segment -segment_time 2 -segment_format mpegts` to disk alone".into(), vec![]),
    ];
    for i in 0..runs {
        eprintln!("xtask: import bench run {}/{runs}", i + 1);
        settle(size as usize * 5 / 4)?;
        let ours = timed(&format!(
            "rm -rf {w}/v/recordings {w}/v/index && CUSTODY_VAULT={w}/v {c} import --json -r {recipient} {m} > {w}/import.json"
        ))?;
        settle(size as usize * 5 / 4)?;
        let peer = timed(&format!(
            "rm -rf {w}/peer && mkdir {w}/peer && ffmpeg -hide_banner -nostdin -loglevel error -i {m} -c copy -f segment \
             -segment_time 2 -segment_format mpegts {w}/peer/seg%05d.ts && sha256sum {w}/peer/*.ts > {w}/peer/SHA256SUMS \
             && for f in {w}/peer/*.ts; do age -r {recipient} -o \"$f.age\" \"$f\" || exit 1; done"
        ))?;
        settle(size as usize * 5 / 4)?;
        let alone = timed(&format!(
            "rm -rf {w}/alone && mkdir {w}/alone && ffmpeg -hide_banner -nostdin -loglevel error -i {m} -c copy -f segment \
             -segment_time 2 -segment_format mpegts {w}/alone/seg%05d.ts"
        ))?;
        rows[0].1.push(ours);
        rows[1].1.push(peer);
        rows[2].1.push(alone);
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let walls = |r: &[Timed]| r.iter().map(|t| t.wall).collect::<Vec<_>>();
    let mut out = String::from(
        "| chain | median time | throughput | CPU time (median) | peak RSS |\n|---|---|---|---|---|\n",
    );
    for (name, r) in &rows {
        let t = median(&walls(r));
        out.push_str(&format!(
            "| {name} | {t:.2} s | {:.0} MB/s | {:.2} s | {:.1} MiB |\n",
            size / 1e6 / t,
            median(&r.iter().map(|x| x.cpu).collect::<Vec<_>>()),
            r.iter().map(|x| x.rss_kib).max().unwrap_or(0) as f64 / 1024.0
        ));
    }
    let per_run = |a: usize, b: usize| {
        rows[a].1.iter().zip(&rows[b].1).map(|(x, y)| x.wall / y.wall).collect::<Vec<f64>>()
    };
    let speedup = per_run(1, 0);
    let overhead = per_run(0, 2);
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::MAX, f64::min);
        let hi = v.iter().copied().fold(f64::MIN, f64::max);
        format!("{lo:.2}–{hi:.2}")
    };
    out.push_str(&format!(
        "\nRatios from the same runs (median of per-run ratios, with their range): custody is **{:.2}×** \
         ({}) the peer chain's throughput (target ≥ 3×); custody takes **{:.2}×** ({}) the time of \
         `ffmpeg -c copy -f segment` alone (target ≤ 1.5×). Peak memory of `custody import`: **{:.1} MiB** \
         (target < 128 MiB).\n",
        median(&speedup),
        spread(&speedup),
        median(&overhead),
        spread(&overhead),
        rows[0].1.iter().map(|x| x.rss_kib).max().unwrap_or(0) as f64 / 1024.0
    ));
    out.push_str(&format!(
        "\nThe peer chain does not fsync; custody fsyncs every sealed segment and record before \
         reporting it saved. Input: {:.0} MB, {runs} runs each, interleaved; before each run the \
         bench writes back all dirty pages (`sync`) and touches and frees 1.25× the input's size \
         of memory, so that no chain pays for the one before it or for this virtual machine's \
         host backing fresh pages.\n",
        size / 1e6
    ));
    let _ = std::fs::remove_dir_all(&work);
    Ok(out)
}

/// A section of `docs/benchmarks.md`: its name on the command line, its title, and how to
/// measure it (returning the section's body).
struct Section {
    name: &'static str,
    title: &'static str,
    measure: fn(runs: usize) -> Result<String, String>,
}

const SECTIONS: &[Section] = &[
    Section {
        name: "capture",
        title: "Segmenting and hashing (`custody-capture`)",
        measure: capture_section,
    },
    Section {
        name: "import",
        title: "Sealing an import end to end (`custody import`)",
        measure: import_section,
    },
    Section {
        name: "server",
        title: "Server ingest under load (`custody-server`)",
        measure: server_section,
    },
    Section {
        name: "replicas",
        title: "Receipts through three replicas on one database against one (`custody-server`)",
        measure: replicas::section,
    },
    Section {
        name: "upload",
        title: "Live upload: sealed to receipted (`custody record`)",
        measure: upload_section,
    },
    Section {
        name: "verify",
        title: "Verifying a bundle offline (`custody verify`)",
        measure: verify_section,
    },
    Section {
        name: "hostile",
        title: "Hostile enrolled devices: the server's memory and an honest device's receipts (`custody-server`)",
        measure: hostile_section,
    },
    Section {
        name: "scale",
        title: "Per-segment server cost as the recording and the log grow (`custody-server`)",
        measure: scale_section,
    },
    Section {
        name: "phone",
        title: "The phone: the capture page in Chromium (`custody-browser`)",
        measure: phone::section,
    },
    Section {
        name: "faults",
        title: "Uploads through faults: the server killed, a proxy that breaks connections (`custody record`)",
        measure: faults::section,
    },
    Section {
        name: "phone-faults",
        title: "The phone's outbox through server kills and network faults (`custody-browser`)",
        measure: phone::faults_section,
    },
];

/// The section names, for `cargo xtask bench --help`.
pub fn section_names() -> String {
    SECTIONS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

fn capture_section(runs: usize) -> Result<String, String> {
    ensure_media(&media())?;
    let seg = Command::new("cargo")
        .args(["bench", "-p", "custody-capture", "--bench", "segmenter"])
        .env("CUSTODY_BENCH_RUNS", runs.to_string())
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    if !seg.status.success() {
        return Err(format!("segmenter bench failed:\n{}", String::from_utf8_lossy(&seg.stderr)));
    }
    Ok(format!(
        "Command: `cargo bench -p custody-capture --bench segmenter` (run by `cargo xtask bench capture`).\n\n{}",
        String::from_utf8_lossy(&seg.stdout)
    ))
}

fn import_section(runs: usize) -> Result<String, String> {
    let media = media();
    ensure_media(&media)?;
    let mid = mid_media()?;
    run("cargo", &["build", "--release", "-p", "custody-cli"])?;
    Ok(format!(
        "Command: `cargo xtask bench import` (release build of `custody`; the same media file, and \
         its first 106 s as a mid-size one).\n\n{}\nThe mid-size file:\n\n{}\n{IMPORT_PROFILE}",
        import_bench(&media, runs)?,
        import_bench(&mid, runs)?
    ))
}

/// Where an import's CPU time goes, from a profile (not measured by this bench: profiling
/// needs `perf`, and its figures are kept here with how they were taken).
const IMPORT_PROFILE: &str = include_str!("bench/import_profile.md");

/// Devices each sending a 2 MB segment every 2 s: the largest count the server holds with
/// a p99 receipt latency under 1 s, found by stepping up the count.
fn server_section(_runs: usize) -> Result<String, String> {
    let mut rows = String::from(
        "| devices | segments each | refused | receipt p50 | receipt p99 | max | ingest | disk's own fsync'd write |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut held = 0;
    for devices in [50u64, 100, 200, 300, 400] {
        eprintln!("xtask: server load bench, {devices} devices");
        let out = Command::new("cargo")
            .args([
                "test",
                "--release",
                "-p",
                "custody-server",
                "--test",
                "load",
                "--",
                "--ignored",
                "--nocapture",
                "--exact",
                "load",
            ])
            .env("CUSTODY_LOAD_DEVICES", devices.to_string())
            .env("CUSTODY_LOAD_SEGMENTS", "5")
            .current_dir(root())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("LOAD_BENCH_JSON ")) else {
            return Err(format!(
                "the load bench printed no figures ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        rows.push_str(&format!(
            "| {devices} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MB/s | {:.1} MB/s |\n",
            f("segments"),
            f("refused"),
            f("p50_ms"),
            f("p99_ms"),
            f("max_ms"),
            f("ingest_mb_s"),
            f("disk_mb_s")
        ));
        if f("p99_ms") >= 1000.0 || f("refused") > 0.0 {
            break;
        }
        held = devices;
    }
    Ok(format!(
        "Command: `cargo xtask bench server` (runs `cargo test --release -p custody-server --test load -- --ignored` \
         with `CUSTODY_LOAD_DEVICES` stepped up). Each simulated device enrolls, then uploads one 2 MB sealed \
         segment every 2 s over HTTP on loopback with signed requests; the server verifies, fsyncs, logs and \
         receipts each. The disk's own figure is 2 MB files written and fsynced one after another in the same run.\n\n\
         {rows}\n\
         Largest count measured with nothing refused and p99 receipt latency under 1 s: **{held} devices** (target: at least 200).\n\n{}\n\n{}",
        target_rows()?,
        tsa_overhead()?
    ))
}

/// Runs the `target` load test (`server/tests/load.rs`) with `settings` and returns its
/// figures. `CUSTODY_TARGET_SECS` in xtask's environment shortens every run (60 s when
/// unset), to check the section end to end on a busy machine.
fn target_run(settings: &[(&str, String)]) -> Result<serde_json::Value, String> {
    let args = [
        "test",
        "--release",
        "-p",
        "custody-server",
        "--test",
        "load",
        "--",
        "--ignored",
        "--nocapture",
        "--exact",
        "target",
    ];
    eprintln!("xtask: $ cargo {} with {settings:?}", args.join(" "));
    let secs = std::env::var("CUSTODY_TARGET_SECS").unwrap_or_else(|_| "60".into());
    let out = Command::new("cargo")
        .args(args)
        .env("CUSTODY_TARGET_SECS", secs)
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find_map(|l| l.strip_prefix("TARGET_BENCH_JSON ")).ok_or_else(|| {
            format!(
                "the target load printed no figures ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}

/// Issue 19's targets on the embedded store: 400 devices at 1 MB/s each, and the
/// raid-shaped load of 1,000 devices at 2 Mbit/s starting within 30 s, each over TLS on a
/// log of 10⁶ entries, beside the disk's own fsync'd write rate in the same run.
fn target_rows() -> Result<String, String> {
    let t = std::time::Instant::now();
    let steady = target_run(&[])?;
    // A failed raid run does not take the steady run's figures with it: it is reported.
    let raid = target_run(&[
        ("CUSTODY_TARGET_DEVICES", "1000".into()),
        ("CUSTODY_TARGET_RATE", "250000".into()),
        ("CUSTODY_TARGET_START_SECS", "30".into()),
    ]);
    let row = |name: &str, v: &serde_json::Value| {
        let offered = num(v, "offered_mb_s");
        let disk = num(v, "disk_mb_s");
        let goal = offered.min(0.9 * disk);
        let met = num(v, "refused") == 0.0
            && num(v, "p99_ms") < 1000.0
            && num(v, "ingest_mb_s") >= 0.95 * goal;
        format!(
            "| {name} | {:.0} | {:.0} s (every device's first receipt by {:.0} s) | {:.0} | {:.0} ({:.0} sent again) | {:.0} ms | {:.0} ms | {:.0} ms | {:.1} MB/s of {:.1} offered | {:.1} MB/s | {:.0}% | {:.0}% | {} |\n",
            num(v, "devices"),
            num(v, "secs"),
            num(v, "all_started_s"),
            num(v, "receipts"),
            num(v, "refused"),
            num(v, "resent"),
            num(v, "p50_ms"),
            num(v, "p99_ms"),
            num(v, "max_ms"),
            num(v, "ingest_mb_s"),
            offered,
            disk,
            100.0 * num(v, "cpu_server_s") / num(v, "cpu_core_s"),
            100.0 * num(v, "cpu_generator_s") / num(v, "cpu_core_s"),
            if met { "met" } else { "**missed**" }
        )
    };
    Ok(format!(
        "Issue 19's targets (`cargo test --release -p custody-server --test load -- --ignored --exact \
         target`, {:.0} s for both runs): TLS on loopback, the server on the embedded store (files, sled) \
         with the custody log's group commit, its log first holding {:.0} entries (a journal written once \
         and cached under `target/bench-cache`, opened in {:.1} s). Each simulated device signs its \
         records and requests as the vault does, checks every receipt's signature and fields and \
         verifies the consistency proof from its previous receipt's tree; a receipted segment's file is \
         then deleted so that the run fits the disk. A request that fails before any answer (a \
         connection closed as it was reused) is sent again, as the vault's uploader does, and counted. Latency is from the segment being sealed (the \
         record signed) to its receipt checked. The server and the load generator run in one process \
         on separate runtimes; their CPU shares are of the {} cores' time over the run. The target: \
         nothing refused, p99 under 1 s, and the offered rate ingested — or 90% of the disk's own \
         fsync'd write rate (segment-sized files written and fsynced one after another, in the same \
         data directory, just before), if that is lower.\n\n\
         | load | devices | duration | receipts | refused | p50 | p99 | max | ingest | disk's own fsync'd write | server CPU | generator CPU | target |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n{}{}",
        t.elapsed().as_secs_f64(),
        num(&steady, "prefill"),
        num(&steady, "open_s"),
        num(&steady, "cpu_core_s") / num(&steady, "secs"),
        row("400 devices at 1 MB/s (2 MB every 2 s)", &steady),
        match &raid {
            Ok(raid) => row(
                "raid: 1,000 devices at 2 Mbit/s (0.5 MB every 2 s), starting within 30 s",
                raid,
            ),
            Err(e) => format!(
                "\nThe raid-shaped run (1,000 devices at 2 Mbit/s, starting within 30 s) **failed**: {}\n",
                e.lines().find(|l| l.contains("panicked") || l.contains("Error")).unwrap_or(e)
            ),
        },
    ))
}

/// Receipt latency with RFC 3161 time-stamping configured against without (issue 18).
fn tsa_overhead() -> Result<String, String> {
    let v = bench_test("custody-server", "tsa", "tsa_ingest_benchmark", "TSA_BENCH_JSON")?;
    Ok(format!(
        "With a time-stamp authority (`cargo test --release -p custody-server --test tsa -- --ignored \
         tsa_ingest_benchmark`): one device uploads segments of 20 KB one after another over loopback \
         ({} in all: {} without a TSA, {} with), in pairs of passes, one on a server without `--tsa` and one on \
         a server asking the test TSA (`openssl ts -reply` behind HTTP on loopback, a process per token, on the \
         same two cores) every {} ms, the pairs alternating which pass comes first; each pass runs for at least \
         2.5 intervals ({} tokens logged among the segments). \
         Receipt latency over all passes without: p50 {:.1} ms, p99 {:.1} ms; with: p50 {:.1} ms, p99 {:.1} ms. \
         Per pair of passes ({} pairs), with ÷ without, median (range): p50 **{}**, p99 **{}**, \
         throughput **{}** (target: latency ratios at most 1.05, throughput at least 0.95); \
         this process's CPU time per segment (server and client, not the TSA's `openssl`; \
         little changed by the machine's other load) **{}**. \
         Load average (1 min) at the end: {}.\n",
        num(&v, "segments"),
        num(&v, "segments_without"),
        num(&v, "segments_with"),
        num(&v, "interval_ms"),
        num(&v, "tokens_logged"),
        num(&v, "p50_without_ms"),
        num(&v, "p99_without_ms"),
        num(&v, "p50_with_ms"),
        num(&v, "p99_with_ms"),
        num(&v, "pairs"),
        ratio_spread(&v["pair_p50_ratio"]),
        ratio_spread(&v["pair_p99_ratio"]),
        ratio_spread(&v["pair_throughput_ratio"]),
        ratio_spread(&v["pair_cpu_ratio"]),
        load_average()
    ))
}

/// `{"median": m, "min": a, "max": b}` as `m× (a–b)`.
fn ratio_spread(v: &serde_json::Value) -> String {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    format!("{:.2}× ({:.2}–{:.2})", f("median"), f("min"), f("max"))
}

/// Hostile enrolled devices (issue 16 §4): the server's memory and an honest device's
/// receipt latency while 50 devices flood it with oversized uploads.
fn hostile_section(_runs: usize) -> Result<String, String> {
    let v =
        bench_test("custody-server", "limits", "hostile_devices_benchmark", "HOSTILE_BENCH_JSON")?;
    let answers = v["answers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| {
                    let what = match k.as_str() {
                        "0" => "connection closed before an answer was read",
                        "413" => "body.too_large",
                        "422" => "segment.length",
                        "429" => "device.busy",
                        "503" => "server.busy",
                        other => other,
                    };
                    format!("{n} × {k} ({what})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Ok(format!(
        "Command: `cargo xtask bench hostile` (runs `cargo test --release -p custody-server --test limits -- \
         --ignored hostile_devices_benchmark`). `custody-server` runs in its own process with the default limits \
         (64 MiB body maximum, 512 MiB of uploads in flight), plain HTTP on loopback. {} enrolled devices each keep \
         {} oversized uploads going at once for {} s — half declaring 1 GiB, half declaring 32 MiB behind a signed \
         record whose segment is 1 MiB — sending body bytes as fast as the server takes them; meanwhile an honest \
         device uploads a 2 MB segment every 500 ms. Memory is the server process's resident set, read from \
         `/proc/<pid>/status`. Measured on a shared 2-core machine with other work running.\n\n\
         | server RSS idle | peak (sampled) | peak (VmHWM) | honest receipts | p50 | p99 | max | hostile requests |\n\
         |---|---|---|---|---|---|---|---|\n\
         | {:.0} MiB | {:.0} MiB | {:.0} MiB | {} | {:.0} ms | {:.0} ms | {:.0} ms | {} |\n\n\
         Answers to the hostile requests: {answers}.\n\n\
         Targets: RSS under 256 MiB, the honest device's receipt p99 under 1 s.\n",
        v["devices"],
        v["per_device"],
        v["seconds"],
        num(&v, "rss_idle_mib"),
        num(&v, "rss_peak_mib"),
        num(&v, "hwm_mib"),
        v["honest_receipts"],
        num(&v, "p50_ms"),
        num(&v, "p99_ms"),
        num(&v, "max_ms"),
        v["hostile_requests"],
    ))
}

/// The sections of the current `docs/benchmarks.md`, by title, each with its body.
fn current_sections(doc: &str) -> Vec<(String, String)> {
    doc.split("\n## ")
        .skip(1)
        .filter_map(|part| {
            let (title, body) = part.split_once('\n')?;
            Some((title.trim().to_string(), body.trim().to_string()))
        })
        .collect()
}

/// Runs the named benchmark sections (all when none is named) and rewrites
/// `docs/benchmarks.md`; a section not rerun keeps the figures it had.
pub fn bench(only: &[String]) -> Result<(), String> {
    crate::install_missing()?;
    for name in only {
        if !SECTIONS.iter().any(|s| s.name == name) {
            return Err(format!("no benchmark section `{name}` (there are: {})", section_names()));
        }
    }
    let runs: usize =
        std::env::var("CUSTODY_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let path = root().join("docs/benchmarks.md");
    let mut sections = current_sections(&std::fs::read_to_string(&path).unwrap_or_default());
    let machine = machine();
    // The page is rewritten after every section, and a section that fails does not stop
    // the others: what was measured is kept, and the failures are reported at the end.
    let mut failed = Vec::new();
    for section in SECTIONS.iter().filter(|s| only.is_empty() || only.iter().any(|n| n == s.name)) {
        eprintln!("xtask: bench {}", section.name);
        let measured = match (section.measure)(runs) {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "xtask: bench {} failed (its figures are left as they were): {e}",
                    section.name
                );
                failed.push(section.name);
                continue;
            }
        };
        let body = format!("Measured on {} on {machine}.\n\n{measured}", now_utc());
        sections.retain(|(t, _)| t != section.title);
        sections.push((section.title.to_string(), body.trim().to_string()));
        write_page(&path, &sections)?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("these sections failed and were not rewritten: {}", failed.join(", ")))
    }
}

/// Writes `docs/benchmarks.md` from its sections, in the order of [`SECTIONS`].
fn write_page(path: &std::path::Path, sections: &[(String, String)]) -> Result<(), String> {
    let mut doc = String::from(
        "# Benchmarks\n\n\
         Generated by `cargo xtask bench` from what each benchmark measured; do not edit by hand.\n\
         Every figure is measured beside the peer it is compared with, in the same run. \
         `cargo xtask bench SECTION` reruns one section; the others keep their figures and dates.\n",
    );
    for section in SECTIONS {
        doc.push_str(&format!("\n## {}\n\n", section.title));
        match sections.iter().find(|(t, _)| t == section.title) {
            Some((_, body)) => doc.push_str(body),
            None => doc
                .push_str(&format!("Not measured yet: run `cargo xtask bench {}`.", section.name)),
        }
        doc.push('\n');
    }
    std::fs::write(path, doc).map_err(|e| e.to_string())?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Runs one ignored benchmark test in release mode and returns the JSON it printed after
/// `marker`.
fn bench_test(
    package: &str,
    test: &str,
    filter: &str,
    marker: &str,
) -> Result<serde_json::Value, String> {
    bench_test_on(package, test, filter, marker, &media())
}

/// [`bench_test`] with another media file as `CUSTODY_BENCH_MEDIA`.
fn bench_test_on(
    package: &str,
    test: &str,
    filter: &str,
    marker: &str,
    media: &Path,
) -> Result<serde_json::Value, String> {
    let mut args =
        vec!["test", "--release", "-p", package, "--test", test, "--", "--ignored", "--nocapture"];
    if !filter.is_empty() {
        args.push(filter);
    }
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let out = Command::new("cargo")
        .args(&args)
        .env("CUSTODY_BENCH_MEDIA", media)
        .current_dir(root())
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().find_map(|l| l.strip_prefix(marker).map(str::trim)).ok_or_else(|| {
            format!(
                "{test} printed no `{marker}` line ({}):\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{marker}: {e}"))?;
    if !out.status.success() {
        eprintln!("xtask: {test} measured but missed a target ({}): {line}", out.status);
    }
    Ok(v)
}

fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn upload_section(runs: usize) -> Result<String, String> {
    let mut rows = String::from(
        "| run | segments | mean segment | sealed → receipt p50 | p99 | max |\n|---|---|---|---|---|---|\n",
    );
    let mut p99s = Vec::new();
    for i in 0..runs.max(1) {
        let v = bench_test(
            "custody-cli",
            "live_upload",
            "upload_latency_benchmark",
            "UPLOAD_LATENCY_JSON",
        )?;
        rows.push_str(&format!(
            "| {} | {} | {:.2} MB | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            i + 1,
            num(&v, "segments"),
            num(&v, "mean_segment_bytes") / 1e6,
            num(&v, "p50_ms"),
            num(&v, "p99_ms"),
            num(&v, "max_ms")
        ));
        p99s.push(num(&v, "p99_ms"));
    }
    p99s.sort_by(f64::total_cmp);
    Ok(format!(
        "Command: `cargo xtask bench upload` (runs `cargo test --release -p custody-cli --test live_upload -- \
         --ignored upload_latency_benchmark`). `custody record` records 30 s live from a synthetic camera \
         (1280×720 test pattern at real time, and a tone; 2 s segments) while `custody serve` runs on loopback \
         with TLS; each segment's latency runs from the moment it is sealed and saved on the device to the \
         moment its verified receipt is stored in the vault.\n\n{rows}\n\
         Median p99 over {} runs: **{:.1} ms** (target: p99 < 100 ms).\n",
        p99s.len(),
        p99s[p99s.len() / 2]
    ))
}

fn verify_section(_runs: usize) -> Result<String, String> {
    ensure_media(&media())?;
    let v = bench_test("custody-cli", "verify_bench", "", "VERIFY_BENCH_JSON")?;
    let mid = bench_test_on("custody-cli", "verify_bench", "", "VERIFY_BENCH_JSON", &mid_media()?)?;
    let ratio = |v: &serde_json::Value| {
        format!(
            "**{:.2}×** ({:.2}–{:.2} over {} pairs)",
            num(v, "verify_vs_openssl"),
            num(v, "verify_vs_openssl_min"),
            num(v, "verify_vs_openssl_max"),
            num(v, "pairs")
        )
    };
    Ok(format!(
        "Command: `cargo xtask bench verify` (runs `cargo test --release -p custody-cli --test verify_bench -- \
         --ignored`, once on the ~1 GB file and once on its first 106 s, ~300 MB). The recording is sealed \
         into a bundle; then, with the page cache warm, each tool reads the same bytes; `openssl` and \
         `custody verify` run in interleaved pairs, and the ratio is the median of the pairs' ratios with \
         their range. Each pair also times both programs' start-up alone.\n\n\
         | what | throughput | time (median) | CPU time | peak RSS |\n|---|---|---|---|---|\n\
         | `custody verify` (every signature, hash, receipt and log proof; SHA-256 of every file) | {:.0} MB/s | {:.3} s | {:.2} s | {:.1} MiB |\n\
         | `openssl dgst -sha256` over the same files | {:.0} MB/s | {:.3} s | {:.2} s | — |\n\
         | `custody verify --identity` (also decrypts every segment in memory and checks it) | {:.0} MB/s | — | {:.2} s | {:.1} MiB |\n\
         | `age -d` over the same segments | {:.0} MB/s | — | {:.2} s | — |\n\
         | `custody verify`, mid-size bundle ({:.0} MB) | {:.0} MB/s | {:.3} s | {:.2} s | {:.1} MiB |\n\
         | `openssl dgst -sha256`, mid-size bundle | {:.0} MB/s | {:.3} s | {:.2} s | — |\n\
         | start-up alone: `custody --version` | — | {:.3} s | {:.3} s | {:.1} MiB |\n\
         | start-up alone: `openssl version` | — | {:.3} s | {:.3} s | — |\n\n\
         Ratios: `custody verify` is {} `openssl dgst -sha256` on the {:.0} MB bundle{} and {} on the \
         {:.0} MB one{} (target ≥ 1.5× on both); `--identity` is **{:.2}×** `age -d`. Bundle: {:.0} MB in \
         {} segments. Load average (1 min) at the end: {}.\n\n{VERIFY_PROFILE}",
        num(&v, "verify_mb_s"),
        num(&v, "verify_s"),
        num(&v, "verify_cpu_s"),
        num(&v, "verify_peak_rss_kib") / 1024.0,
        num(&v, "openssl_sha256_mb_s"),
        num(&v, "openssl_s"),
        num(&v, "openssl_cpu_s"),
        num(&v, "verify_identity_mb_s"),
        num(&v, "verify_identity_cpu_s"),
        num(&v, "verify_identity_peak_rss_kib") / 1024.0,
        num(&v, "age_decrypt_mb_s"),
        num(&v, "age_cpu_s"),
        num(&mid, "bundle_bytes") / 1e6,
        num(&mid, "verify_mb_s"),
        num(&mid, "verify_s"),
        num(&mid, "verify_cpu_s"),
        num(&mid, "verify_peak_rss_kib") / 1024.0,
        num(&mid, "openssl_sha256_mb_s"),
        num(&mid, "openssl_s"),
        num(&mid, "openssl_cpu_s"),
        num(&mid, "custody_start_s"),
        num(&mid, "custody_start_cpu_s"),
        num(&mid, "custody_start_rss_kib") / 1024.0,
        num(&mid, "openssl_start_s"),
        num(&mid, "openssl_start_cpu_s"),
        ratio(&v),
        num(&v, "bundle_bytes") / 1e6,
        spread_note(&v),
        ratio(&mid),
        num(&mid, "bundle_bytes") / 1e6,
        spread_note(&mid),
        num(&v, "verify_identity_mb_s") / num(&v, "age_decrypt_mb_s"),
        num(&v, "bundle_bytes") / 1e6,
        num(&v, "segments"),
        v["load_average_1m"]
    ))
}

/// What the verify bench's JSON says of its ratios' range: nothing when one round of pairs
/// kept it narrow; the rounds when more were needed; a warning when it stayed wide, so that
/// the figure is read as what it is.
fn spread_note(v: &serde_json::Value) -> String {
    let rounds = num(v, "rounds");
    match (v["spread_wide"].as_bool(), rounds > 1.0) {
        (Some(true), _) => format!(
            " (the range stayed wide — its largest ratio more than 1.25× its smallest — after {rounds} rounds of \
             pairs: the machine's load changed under them, and this figure is not a reproducible one)"
        ),
        (_, true) => format!(" (the range was wide after the first round of pairs; {rounds} rounds were run)"),
        _ => String::new(),
    }
}

/// Where `custody verify`'s time goes, from a profile (not measured by this bench: profiling
/// needs `perf`, and its figures are kept here with how they were taken).
const VERIFY_PROFILE: &str = include_str!("bench/verify_profile.md");

/// The server's CPU time per segment at segment ~5,000 of one recording against segment
/// ~10, on a custody log already holding 10⁶ entries from other devices.
fn scale_section(runs: usize) -> Result<String, String> {
    let mut rows = String::from(
        "| run | segments 1–20: ingest | proofs | total | total, lower quartile | last 20 segments: ingest | proofs | total | total, lower quartile | ratio of quartiles | ratio of medians |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut ratios = Vec::new();
    let mut last = serde_json::Value::Null;
    for i in 0..runs.clamp(1, 3) {
        let v = bench_test("custody-server", "scale", "", "SCALE_BENCH_JSON")?;
        rows.push_str(&format!(
            "| {} | {:.0} µs | {:.1} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.1} µs | {:.0} µs | {:.0} µs | {:.2}× | {:.2}× |\n",
            i + 1,
            num(&v, "early_ingest_us"),
            num(&v, "early_proofs_us"),
            num(&v, "early_total_us"),
            num(&v, "early_q1_us"),
            num(&v, "late_ingest_us"),
            num(&v, "late_proofs_us"),
            num(&v, "late_total_us"),
            num(&v, "late_q1_us"),
            num(&v, "ratio"),
            num(&v, "ratio_median"),
        ));
        ratios.push(num(&v, "ratio"));
        last = v;
    }
    ratios.sort_by(f64::total_cmp);
    let device = device_scale(runs)?;
    let bundle = bundle_scale()?;
    Ok(format!(
        "Command: `cargo xtask bench scale` (runs `cargo test --release -p custody-server --test scale -- \
         --ignored`). The custody log first holds {:.0} entries from 1,000 other devices (appended to the \
         in-memory log store, then loaded by `Server::open` in {:.1} s, which rebuilds the subtree hashes and \
         the catalog); then one device uploads a recording of {} segments (4 KiB sealed segments, so that \
         hashing them does not hide the rest). For each segment the figure is the thread CPU time \
         (`CLOCK_THREAD_CPUTIME_ID`, not wall time; the in-memory stores keep fsync out) of the server's \
         ingest (checks, the neighbour-only link check, storing, log append, signed head, receipt) and of \
         the consistency proof from the previous receipt's tree plus the inclusion proof of the new entry. \
         Per-segment medians (and lower quartiles) of {}-segment windows: segments {}–{} (around segment \
         10) and {}–{} (around segment 5,000); the log ends at {:.0} entries. The target is judged on the \
         lower quartiles: the two cores are shared (load average {} at the end), and another thread on a \
         core raises this thread's CPU time too, by up to a quarter in these runs, but never lowers it.\n\n{rows}\n\
         Median ratio of quartiles, late window to early, over {} runs: **{:.2}×** (target ≤ 1.2×).\n\n\
         {device}\n\n{bundle}",
        num(&last, "log_prefill"),
        num(&last, "open_s"),
        num(&last, "segments"),
        num(&last, "window"),
        num(&last, "early_first"),
        num(&last, "early_last"),
        num(&last, "late_first"),
        num(&last, "late_last"),
        num(&last, "final_log_size"),
        load_average(),
        ratios.len(),
        ratios[ratios.len() / 2]
    ))
}

/// The device's CPU time per segment (seal and save, then the uploader's work for it) at
/// segment ~5,000 of one recording against segment ~10, uploading to a real server on
/// loopback whose log already holds 10⁶ entries.
/// A long recording's bundle (issue 15): its size, its receipt consistency proofs, and how
/// long it takes to build and send.
fn bundle_scale() -> Result<String, String> {
    let v = bench_test("custody-server", "bundle_scale", "", "BUNDLE_SCALE_JSON")?;
    Ok(format!(
        "A long recording's bundle: `cargo test --release -p custody-server --test bundle_scale -- \
         --ignored`. A server on the filesystem back-end ingests a recording of {:.0} segments (4 KiB \
         sealed segments; the log ends at {:.0} entries), then a member fetches its bundle over loopback \
         HTTP three times. The bundle is {:.1} MB, {:.2} MB of it the {:.0} receipt consistency proofs \
         (`custody/receipt-proofs.bin`, one per receipt tree size, from the log's subtree hashes). Median \
         time to the response's headers (the retrieval statement under the log's lock, the access entry's \
         append, and the plan: every record read, every proof made): {:.2} s; to the last byte: {:.2} s. \
         `custody verify` of the bundle took {:.1} s.\n",
        num(&v, "segments"),
        num(&v, "log_size"),
        num(&v, "bundle_bytes") / 1e6,
        num(&v, "receipt_proofs_bytes") / 1e6,
        num(&v, "receipt_proofs"),
        num(&v, "headers_s_median"),
        num(&v, "total_s_median"),
        num(&v, "verify_s"),
    ))
}

fn device_scale(runs: usize) -> Result<String, String> {
    let mut rows = String::from(
        "| run | segments 1–20: seal and save | upload | total | total, lower quartile | last 20 segments: seal and save | upload | total | total, lower quartile | ratio of quartiles | ratio of medians |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut ratios = Vec::new();
    let mut last = serde_json::Value::Null;
    for i in 0..runs.clamp(1, 3) {
        let v = bench_test("custody-client", "scale", "", "DEVICE_SCALE_BENCH_JSON")?;
        rows.push_str(&format!(
            "| {} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.2}× | {:.2}× |\n",
            i + 1,
            num(&v, "early_seal_us"),
            num(&v, "early_upload_us"),
            num(&v, "early_total_us"),
            num(&v, "early_q1_us"),
            num(&v, "late_seal_us"),
            num(&v, "late_upload_us"),
            num(&v, "late_total_us"),
            num(&v, "late_q1_us"),
            num(&v, "ratio"),
            num(&v, "ratio_median"),
        ));
        ratios.push(num(&v, "ratio"));
        last = v;
    }
    ratios.sort_by(f64::total_cmp);
    Ok(format!(
        "The device side: `cargo test --release -p custody-client --test scale -- --ignored`. A real \
         server serves on loopback over TLS from the in-memory stores, its log first filled with {:.0} \
         entries; one enrolled device records {} segments of {} bytes into its vault while the real \
         `Uploader` sends them. Per segment, the CPU time of seal and save (`add_segment`: encrypt, sign \
         the record, append it to the journal, write the sealed file, queue it; this thread's \
         `CLOCK_THREAD_CPUTIME_ID`) and of the upload, from the nudge until the receipt is stored (reading \
         the record from the journal, signing the request, checking the receipt, fetching and verifying \
         the log consistency proof, storing the receipt; the CPU clocks of this thread and of every \
         thread of the device's runtime, not the server's). fsync waits are not CPU time. Same windows \
         and summaries as above.\n\n{rows}\n\
         Median ratio of quartiles, late window to early, over {} runs: **{:.2}×** (target ≤ 1.2×).\n",
        num(&last, "log_prefill"),
        num(&last, "segments"),
        num(&last, "segment_bytes"),
        ratios.len(),
        ratios[ratios.len() / 2]
    ))
}

/// The 1-minute load average, from `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}
