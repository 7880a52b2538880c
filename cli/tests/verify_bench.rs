//! Verification throughput on a ~1 GB bundle of a real recording, against `openssl dgst
//! -sha256` over the same bytes and `age -d` over the same segments, in the same run; and
//! the verifier's peak memory. Ignored by default (it imports 1 GB first):
//!
//! ```text
//! cargo test --release -p custody-cli --test verify_bench -- --ignored --nocapture
//! ```
//!
//! `openssl` and `custody verify` run in interleaved pairs (5, or `CUSTODY_BENCH_PAIRS`);
//! the ratio is the median of the pairs' ratios, reported with its range. When the range is
//! wide (the largest ratio more than 1.25× the smallest: the shared machine's load changed
//! under the pairs), as many pairs again are run, at most twice, and the median and range
//! are of all of them; the line says how many rounds were run and whether the range stayed
//! wide. Each pair also times both programs' start-up alone (`custody --version`, `openssl
//! version`): the fixed cost that weighs on a mid-size bundle. The media is
//! `CUSTODY_BENCH_MEDIA`, else `target/bench-cache/1080p-h264-aac.mp4` (the 1 GB H.264 + AAC
//! file `cargo xtask bench` caches). Prints one line `VERIFY_BENCH_JSON {...}` for the
//! benchmark tooling. The page cache is warmed before each timed run, so what is compared is
//! the work done on bytes in memory.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use real::Real;

fn media() -> PathBuf {
    let path = std::env::var_os("CUSTODY_BENCH_MEDIA").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-cache/1080p-h264-aac.mp4")
    });
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask bench` once, or set CUSTODY_BENCH_MEDIA to a ~1 GB H.264 file",
        path.display()
    );
    path
}

/// The best of three runs of `cmd` (the machine is shared: the fastest run is the one
/// least disturbed): wall seconds, CPU seconds (user + system) and peak RSS in KiB (the
/// largest of the three).
fn timed(cmd: &mut Command) -> (f64, f64, i64) {
    let runs: Vec<(f64, f64, i64)> = (0..3).map(|_| timed_once(cmd)).collect();
    let best = runs.iter().copied().fold((f64::MAX, 0.0, 0), |b, r| if r.0 < b.0 { r } else { b });
    (best.0, best.1, runs.iter().map(|r| r.2).max().unwrap_or(0))
}

fn timed_once(cmd: &mut Command) -> (f64, f64, i64) {
    // GNU time forks the program from its own small process: a child spawned directly
    // from this one would count this process's peak RSS as its own (Linux carries the
    // spawning memory's high-water mark across exec).
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.arg("-f").arg("%M").arg("-o").arg(rss_file.path());
    wrapped.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let cmd = &mut wrapped;
    let start = Instant::now();
    // Reaped by `wait4` below, which also gives its peak RSS (`Child::wait` cannot).
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; the pointers are to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{cmd:?} failed: {status}");
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let rss: i64 = std::fs::read_to_string(rss_file.path()).unwrap().trim().parse().unwrap();
    (secs, cpu(usage.ru_utime) + cpu(usage.ru_stime), rss)
}

/// Pairs of `openssl` and `custody verify` runs per round: `CUSTODY_BENCH_PAIRS`, else 5.
fn pairs() -> usize {
    std::env::var("CUSTODY_BENCH_PAIRS").ok().and_then(|n| n.parse().ok()).unwrap_or(5).max(1)
}

/// Rounds of pairs run when the ratios' range stays wide: the first and at most two more.
const MAX_ROUNDS: usize = 3;

/// A range of ratios is wide when its largest is more than this times its smallest.
const WIDE: f64 = 1.25;

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn wide(ratios: &[f64]) -> bool {
    let lo = ratios.iter().copied().fold(f64::MAX, f64::min);
    let hi = ratios.iter().copied().fold(f64::MIN, f64::max);
    hi > lo * WIDE
}

/// The median wall time of some runs, with that run's CPU time.
fn median_run(runs: &[(f64, f64, i64)]) -> (f64, f64) {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let m = sorted[sorted.len() / 2];
    (m.0, m.1)
}

fn warm(files: &[PathBuf]) {
    for f in files {
        let _ = std::fs::read(f).unwrap();
    }
}

#[test]
#[ignore = "imports a large file (1 GB by default); run explicitly, in release mode"]
fn verify_throughput_against_openssl_and_age() {
    let mut real = Real::import(&media());
    // CUSTODY_BENCH_KEEP=DIR keeps the bundle (and the case key) there, to look at.
    let bundle = match std::env::var_os("CUSTODY_BENCH_KEEP") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            real.bundle.write(&dir.join("bundle"));
            std::fs::copy(&real.env.case_key, dir.join("case.agekey")).unwrap();
            dir.join("bundle")
        }
        None => real.write(&real.bundle, "bundle"),
    };
    // Free the 1 GB held in memory: a child's peak RSS counts what it shared with this
    // process before it started the program.
    real.bundle.files.clear();
    let segment_files: Vec<PathBuf> = real
        .segments
        .iter()
        .map(|s| bundle.join(custody_format::bundle::segment_path(s.seq)))
        .collect();
    let all_files: Vec<PathBuf> =
        common::files_under(&bundle).into_iter().filter(|p| p.is_file()).collect();
    let bytes: u64 = all_files.iter().map(|p| p.metadata().unwrap().len()).sum();
    let segment_bytes: u64 = segment_files.iter().map(|p| p.metadata().unwrap().len()).sum();
    let mb = |b: u64, s: f64| b as f64 / 1e6 / s;
    let server = Real::server();

    // Interleaved pairs, so that both tools of a pair meet the same load on a shared
    // machine: the figure is the median of the pairs' ratios, with their spread.
    let (mut openssl_runs, mut verify_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut custody_start, mut openssl_start) = (Vec::new(), Vec::new());
    let mut rounds = 0;
    while rounds < MAX_ROUNDS && (rounds == 0 || wide(&ratios)) {
        rounds += 1;
        for _ in 0..pairs() {
            custody_start.push(timed_once(real.env.cmd().arg("--version")));
            openssl_start.push(timed_once(Command::new("openssl").arg("version")));
            warm(&all_files);
            let o = timed_once(Command::new("openssl").args(["dgst", "-sha256"]).args(&all_files));
            warm(&all_files);
            let v = timed_once(
                real.env.cmd().args(["verify", "--trust", &server, "--json"]).arg(&bundle),
            );
            ratios.push(o.0 / v.0);
            openssl_runs.push(o);
            verify_runs.push(v);
        }
    }
    let (openssl_s, openssl_cpu) = median_run(&openssl_runs);
    let (verify_s, verify_cpu) = median_run(&verify_runs);
    let verify_rss = verify_runs.iter().map(|r| r.2).max().unwrap_or(0);
    let spread_wide = wide(&ratios);
    let ratio = median(&ratios);
    let (lo, hi) = (
        ratios.iter().copied().fold(f64::MAX, f64::min),
        ratios.iter().copied().fold(f64::MIN, f64::max),
    );
    let field = |runs: &[(f64, f64, i64)], i: usize| -> Vec<f64> {
        runs.iter().map(|r| if i == 0 { r.0 } else { r.1 }).collect()
    };

    warm(&segment_files);
    let script = "key=$1; shift; for f in \"$@\"; do age -d -i \"$key\" \"$f\" || exit 1; done";
    let (age_s, age_cpu, _) = timed(
        Command::new("bash")
            .args(["-c", script, "age-loop"])
            .arg(&real.env.case_key)
            .args(&segment_files),
    );
    warm(&all_files);
    let key = real.env.case_key.to_str().unwrap().to_string();
    let (ident_s, ident_cpu, ident_rss) = timed(
        real.env
            .cmd()
            .args(["verify", "--trust", &server, "--identity", &key, "--json"])
            .arg(&bundle),
    );

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let line = serde_json::json!({
        "load_average_1m": load.split_whitespace().next().and_then(|l| l.parse::<f64>().ok()),
        "verify_cpu_s": verify_cpu,
        "openssl_cpu_s": openssl_cpu,
        "verify_identity_cpu_s": ident_cpu,
        "age_cpu_s": age_cpu,
        "bundle_bytes": bytes,
        "segments": real.segments.len(),
        "verify_mb_s": mb(bytes, verify_s),
        "openssl_sha256_mb_s": mb(bytes, openssl_s),
        "verify_vs_openssl": ratio,
        "verify_vs_openssl_min": lo,
        "verify_vs_openssl_max": hi,
        "pairs": ratios.len(),
        "rounds": rounds,
        "spread_wide": spread_wide,
        "verify_s": verify_s,
        "openssl_s": openssl_s,
        "custody_start_s": median(&field(&custody_start, 0)),
        "custody_start_cpu_s": median(&field(&custody_start, 1)),
        "custody_start_rss_kib": custody_start.iter().map(|r| r.2).max().unwrap_or(0),
        "openssl_start_s": median(&field(&openssl_start, 0)),
        "openssl_start_cpu_s": median(&field(&openssl_start, 1)),
        "verify_peak_rss_kib": verify_rss,
        "verify_identity_mb_s": mb(segment_bytes, ident_s),
        "age_decrypt_mb_s": mb(segment_bytes, age_s),
        "verify_identity_peak_rss_kib": ident_rss,
    });
    println!("VERIFY_BENCH_JSON {line}");
    let media_len = media().metadata().unwrap().len();
    assert!(bytes > media_len / 10 * 9, "the bundle is only {bytes} bytes of {media_len}");
    assert!(verify_rss < 128 * 1024 && ident_rss < 128 * 1024, "{line}");
    assert!(ratio >= 1.5, "verify is not 1.5x openssl: {line}");
}

/// The fixed cost the ratios above pay for: the binary must not load FFmpeg's libraries
/// (libavformat, libavcodec, libswscale, libavutil, libavdevice and the ~210 libraries
/// behind them) at start, only when FFmpeg is first used (cli/src/ffmpeg_lazy.rs,
/// cli/src/avdevice.rs). The dynamic loader lists what it loads when asked to trace
/// (`LD_TRACE_LOADED_OBJECTS`, what `ldd` does) without running the program. Elsewhere than
/// x86-64 Linux only libavdevice is loaded late.
#[test]
fn custody_starts_without_ffmpeg() {
    let out = Command::new(common::bin()).env("LD_TRACE_LOADED_OBJECTS", "1").output().unwrap();
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && libs.contains("libc.so"), "{libs}");
    let late: &[&str] = if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        &["libavdevice", "libavfilter", "libavformat", "libavcodec", "libswscale", "libavutil"]
    } else {
        &["libavdevice", "libavfilter"]
    };
    for lib in late {
        assert!(
            !libs.contains(lib),
            "{lib} is loaded at start: a new FFmpeg function is called directly; add what \
             `nm -D --undefined-only target/debug/custody | grep @LIB` lists to \
             FFMPEG_FUNCTIONS in cli/build.rs\n{libs}"
        );
    }
}
