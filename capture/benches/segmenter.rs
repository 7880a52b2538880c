//! Segmenting and hashing throughput against `ffmpeg -c copy -f segment`, side by side.
//!
//! `cargo bench -p custody-capture` generates a ~1 GB 1080p H.264/AAC file once (into
//! `$CARGO_TARGET_DIR/bench-cache`, a few minutes on two cores), reads it into the page
//! cache, then alternates runs of FFmpeg's segment muxer writing MPEG-TS segments to
//! /dev/shm and of custody's segmenter (MPEG-TS into memory, SHA-256 and packet digest of
//! every segment), and prints a markdown table: best and median MB/s, median CPU time,
//! peak RSS, and the per-run throughput ratio. Set `CUSTODY_BENCH_RUNS` to change the
//! number of runs (default 5). On a shared machine wall times swing with other load; the
//! per-run ratio of back-to-back runs and the CPU times are the steadier figures.
//!
//! The bench also prints a fingerprint of custody's output (a SHA-256 over every segment's
//! length, SHA-256 and packet digest, in order), so that a change to the segmenter can be
//! shown to leave the segments byte for byte as they were. `CUSTODY_BENCH_ONLY=custody`
//! runs custody alone (for a profiler), without FFmpeg's runs and the ratios.
//!
//! FFmpeg's output goes to fresh /dev/shm pages. On a virtual machine whose host backs
//! guest memory lazily, the first write to such a page is several times slower (FFmpeg's
//! system time measured here swings from 0.7 s to 4 s per run for that alone). Before
//! each FFmpeg run the bench therefore writes and deletes a /dev/shm file larger than
//! FFmpeg's output, so FFmpeg writes to pages the host already backs: the comparison
//! gives FFmpeg its best conditions, not custody.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use custody_capture::{Capture, Event, Settings, Source};

fn cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-cache")
}

fn ensure_media(path: &Path) {
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    eprintln!("generating {} (~1 GB, once)...", path.display());
    let tmp = path.with_extension("tmp.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "360"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-qp", "14", "-g", "60"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(status.success(), "generating the benchmark media failed");
    std::fs::rename(&tmp, path).unwrap();
}

fn usage() -> libc::rusage {
    // SAFETY: `usage` is a valid, writable rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage
}

/// Peak resident set size of this process in KiB.
fn max_rss_kib() -> i64 {
    usage().ru_maxrss
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_seconds() -> f64 {
    let u = usage();
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

struct Run {
    wall: Duration,
    cpu: f64,
}

/// Writes `bytes` of zeros to a /dev/shm file and deletes it, so the pages FFmpeg's
/// output gets next have been touched (see the module comment).
fn warm_shm(bytes: u64) {
    let path = PathBuf::from(format!("/dev/shm/custody-bench-warm-{}", std::process::id()));
    let zeros = vec![0u8; 1 << 20];
    if let Ok(mut f) = std::fs::File::create(&path) {
        use std::io::Write;
        for _ in 0..bytes.div_ceil(zeros.len() as u64) {
            if f.write_all(&zeros).is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Runs FFmpeg's segment muxer; returns its wall and CPU time and peak RSS in KiB
/// (measured by `/usr/bin/time`: `getrusage(RUSAGE_CHILDREN)` would report this process's
/// own size, which a spawned child shares until it execs).
fn run_ffmpeg(input: &Path) -> (Run, i64) {
    let out = PathBuf::from(format!("/dev/shm/custody-bench-{}", std::process::id()));
    warm_shm(std::fs::metadata(input).map_or(0, |m| m.len()) * 5 / 4);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let rss_file = out.with_extension("rss");
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M %U %S", "-o"])
        .arg(&rss_file)
        .args(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(["-c", "copy", "-f", "segment", "-segment_time", "2", "-segment_format", "mpegts"])
        .arg(out.join("seg%05d.ts"))
        .status()
        .unwrap();
    let took = start.elapsed();
    assert!(status.success());
    std::fs::remove_dir_all(&out).unwrap();
    let stats = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = std::fs::remove_file(&rss_file);
    let fields: Vec<f64> = stats.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let rss = fields.first().copied().unwrap_or(0.0) as i64;
    let cpu = fields.get(1).copied().unwrap_or(0.0) + fields.get(2).copied().unwrap_or(0.0);
    (Run { wall: took, cpu }, rss)
}

fn run_custody(input: &Path) -> (Run, u64, u64, String) {
    use sha2::Digest as _;
    let cpu = cpu_seconds();
    let start = Instant::now();
    let capture = Capture::start(Source::file(input), Settings::default());
    let (mut segments, mut bytes) = (0, 0);
    let mut fingerprint = sha2::Sha256::new();
    for event in capture {
        match event {
            Event::Segment(s) => {
                segments += 1;
                bytes += s.len();
                fingerprint.update(s.len().to_be_bytes());
                fingerprint.update(s.sha256);
                fingerprint.update(s.packet_digest.0);
                // As the recorder does once a segment is sealed.
                custody_capture::recycle(s.bytes);
            }
            Event::End(e) => {
                assert!(matches!(e.reason, custody_capture::EndReason::InputEnded), "{e:?}");
                break;
            }
            _ => {}
        }
    }
    let fingerprint = hex::encode(fingerprint.finalize());
    (Run { wall: start.elapsed(), cpu: cpu_seconds() - cpu }, segments, bytes, fingerprint)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: only then skip.
    if std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench") {
        println!("segmenter bench: run with `cargo bench -p custody-capture`");
        return;
    }
    let input = cache_dir().join("1080p-h264-aac.mp4");
    ensure_media(&input);
    let size = std::fs::metadata(&input).unwrap().len();
    // Into the page cache.
    std::io::copy(&mut std::fs::File::open(&input).unwrap(), &mut std::io::sink()).unwrap();
    let runs: usize =
        std::env::var("CUSTODY_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);

    if std::env::var("CUSTODY_BENCH_ONLY").is_ok_and(|v| v == "custody") {
        for run in 0..runs {
            let (ours, s, b, fingerprint) = run_custody(&input);
            println!(
                "run {}: custody {:.2?} ({:.2} s CPU), {s} segments, {:.0} MB, output {fingerprint}",
                run + 1,
                ours.wall,
                ours.cpu,
                b as f64 / 1e6
            );
        }
        println!("peak RSS {:.1} MiB", max_rss_kib() as f64 / 1024.0);
        return;
    }
    let rss_before = max_rss_kib();
    let (mut ffmpeg_runs, mut our_runs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut segs, mut seg_bytes, mut ffmpeg_rss) = (0, 0, 0);
    let mut fingerprints = Vec::new();
    for run in 0..runs {
        let (ffmpeg, rss) = run_ffmpeg(&input);
        let (ours, s, b, fingerprint) = run_custody(&input);
        fingerprints.push(fingerprint);
        eprintln!(
            "run {}: ffmpeg {:.2?} ({:.2} s CPU), custody {:.2?} ({:.2} s CPU, {s} segments)",
            run + 1,
            ffmpeg.wall,
            ffmpeg.cpu,
            ours.wall,
            ours.cpu
        );
        ratios.push(ffmpeg.wall.as_secs_f64() / ours.wall.as_secs_f64());
        ffmpeg_rss = ffmpeg_rss.max(rss);
        ffmpeg_runs.push(ffmpeg);
        our_runs.push(ours);
        (segs, seg_bytes) = (s, b);
    }
    let ours_rss = max_rss_kib();
    let mb = size as f64 / 1e6;
    let row = |name: &str, runs: &[Run], rss: String| {
        let best = runs.iter().map(|r| r.wall.as_secs_f64()).fold(f64::MAX, f64::min);
        let med = median(runs.iter().map(|r| r.wall.as_secs_f64()).collect());
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        println!("| {name} | {:.0} MB/s | {:.0} MB/s | {cpu:.2} s | {rss} |", mb / best, mb / med);
    };
    println!(
        "Input: {} ({mb:.0} MB, 1080p30 H.264 + AAC, 6 min), {runs} alternating runs, {} cores",
        input.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| segmenter | throughput (best) | throughput (median) | CPU time (median) | peak RSS |"
    );
    println!("|---|---|---|---|---|");
    row(
        "`ffmpeg -c copy -f segment -segment_time 2 -segment_format mpegts` to /dev/shm",
        &ffmpeg_runs,
        format!("{:.1} MiB", ffmpeg_rss as f64 / 1024.0),
    );
    row(
        "custody-capture: MPEG-TS in memory + SHA-256 + packet digest",
        &our_runs,
        format!(
            "{:.1} MiB ({:.1} MiB before)",
            ours_rss as f64 / 1024.0,
            rss_before as f64 / 1024.0
        ),
    );
    println!();
    let r: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let (lo, hi) = ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r)));
    println!(
        "Throughput ratio custody/ffmpeg per run (same run, back to back): {}; median {:.2} \
         (range {lo:.2}–{hi:.2}).",
        r.join(", "),
        median(ratios.clone())
    );
    let ffmpeg_best = ffmpeg_runs.iter().map(|r| r.wall.as_secs_f64()).fold(f64::MAX, f64::min);
    let ours_median = median(our_runs.iter().map(|r| r.wall.as_secs_f64()).collect());
    println!(
        "Against FFmpeg's fastest run (the stricter comparison): custody's median run reaches \
         {:.2}× its throughput.",
        ffmpeg_best / ours_median
    );
    println!("custody emitted {segs} segments, {:.0} MB of MPEG-TS.", seg_bytes as f64 / 1e6);
    fingerprints.dedup();
    println!(
        "Fingerprint of custody's output (SHA-256 over each segment's length, SHA-256 and \
         packet digest): {}.",
        fingerprints.join(", ")
    );
    println!(
        "Before each FFmpeg run the bench writes and deletes a /dev/shm file larger than \
         FFmpeg's output, so FFmpeg writes to memory the virtual machine's host already backs \
         (without it, FFmpeg's system time here swings from 0.7 s to 4 s a run)."
    );
}
