//! Project automation, run as `cargo xtask <command>`.
//!
//! `cargo xtask test` is the one test command: it installs what a fresh Debian machine is
//! missing (through apt, saying what and why), then runs formatting, lints, every test and
//! the fuzz-target build. CI runs exactly this (`.ci/run`).

mod bench;
mod demo;
mod fuzz;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// A Debian package the build or the tests need, and how to tell it is already there.
struct Requirement {
    package: &'static str,
    why: &'static str,
    present: fn() -> bool,
}

fn pkg_config(module: &'static str) -> bool {
    Command::new("pkg-config").args(["--exists", module]).status().is_ok_and(|s| s.success())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn libclang_present() -> bool {
    let roots = ["/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"];
    roots.iter().any(|root| {
        std::fs::read_dir(root).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                (name.starts_with("llvm-") && e.path().join("lib/libclang.so").exists())
                    || name.starts_with("libclang.so")
                    || name.starts_with("libclang-")
            })
        })
    })
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        package: "pkg-config",
        why: "locating the FFmpeg libraries",
        present: || on_path("pkg-config"),
    },
    Requirement {
        package: "clang",
        why: "bindgen (FFmpeg bindings)",
        present: || on_path("clang"),
    },
    Requirement {
        package: "libclang-dev",
        why: "bindgen (FFmpeg bindings)",
        present: libclang_present,
    },
    Requirement {
        package: "libavformat-dev",
        why: "capture: demuxing and muxing",
        present: || pkg_config("libavformat"),
    },
    Requirement {
        package: "libavcodec-dev",
        why: "capture: encoding and decoding",
        present: || pkg_config("libavcodec"),
    },
    Requirement {
        package: "libavdevice-dev",
        why: "capture: webcams and lavfi sources",
        present: || pkg_config("libavdevice"),
    },
    Requirement {
        package: "libavfilter-dev",
        why: "capture: lavfi and bitstream filters",
        present: || pkg_config("libavfilter"),
    },
    Requirement {
        package: "libavutil-dev",
        why: "capture: FFmpeg utilities",
        present: || pkg_config("libavutil"),
    },
    Requirement {
        package: "libswscale-dev",
        why: "capture: converting raw camera frames",
        present: || pkg_config("libswscale"),
    },
    Requirement {
        package: "libswresample-dev",
        why: "capture: converting raw audio",
        present: || pkg_config("libswresample"),
    },
    Requirement {
        package: "ffmpeg",
        why: "tests: generating media and playing a phone that streams",
        present: || on_path("ffmpeg"),
    },
    Requirement {
        package: "fonts-dejavu-core",
        why: "the demo's synthetic camera draws the clock with DejaVu Sans Mono",
        present: || Path::new(demo::CLOCK_FONT).exists(),
    },
    Requirement {
        package: "chromium",
        why: "tests: rendering the HTML court report headless and screenshotting it",
        present: || on_path("chromium"),
    },
    Requirement {
        package: "openssl",
        why: "tests: the test time-stamp authority (custody-testkit, `openssl ts -reply`); benchmarks: the SHA-256 peer of `custody verify`",
        present: || on_path("openssl"),
    },
    Requirement {
        package: "postgresql",
        why: "tests: the server's PostgreSQL stores (custody-testkit starts a cluster with initdb and pg_ctl per test binary)",
        present: || {
            std::fs::read_dir("/usr/lib/postgresql")
                .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").is_file()))
                .unwrap_or(false)
        },
    },
    Requirement {
        package: "time",
        why: "benchmarks: peak memory and CPU time of each tool (GNU time)",
        present: || Path::new("/usr/bin/time").exists(),
    },
    Requirement {
        package: "nodejs",
        why: "the capture page: its tests, lint and build (cargo xtask web)",
        present: || on_path("node"),
    },
    Requirement {
        package: "npm",
        why: "the capture page's npm packages, installed from web/package-lock.json",
        present: || on_path("npm"),
    },
    Requirement {
        package: "age",
        why: "tests: decrypting sealed segments with a stock age tool",
        present: || on_path("age"),
    },
];

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_in(&root(), program, args)
}

/// Runs `program` in `dir` (the workspace root or a directory under it), printing the
/// command and what it cost.
pub(crate) fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let place = match dir.strip_prefix(root()) {
        Ok(rel) if !rel.as_os_str().is_empty() => format!("({}/) ", rel.display()),
        _ => String::new(),
    };
    eprintln!("xtask: {place}$ {program} {}", args.join(" "));
    let started = std::time::Instant::now();
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    // Each step's cost, so the README's table of what the test command spends stays true.
    eprintln!("xtask: ({:.0} s)", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        let place = place.trim_end().trim_start_matches('(').trim_end_matches(')');
        let place = if place.is_empty() { String::new() } else { format!(" in {place}") };
        Err(format!("`{program} {}`{place} failed ({status})", args.join(" ")))
    }
}

/// Installs the Debian packages that are missing, through apt.
pub(crate) fn install_missing() -> Result<(), String> {
    let missing: Vec<&Requirement> = REQUIREMENTS.iter().filter(|r| !(r.present)()).collect();
    if missing.is_empty() {
        eprintln!("xtask: system packages: all present");
        return Ok(());
    }
    eprintln!("xtask: installing missing Debian packages:");
    for r in &missing {
        eprintln!("xtask:   {:<20} for {}", r.package, r.why);
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let (program, mut prefix): (&str, Vec<&str>) =
        if is_root { ("apt-get", vec![]) } else { ("sudo", vec!["apt-get"]) };
    if !on_path("apt-get") {
        return Err(format!(
            "these packages are missing and apt-get is not available: {}; install them by hand",
            missing.iter().map(|r| r.package).collect::<Vec<_>>().join(" ")
        ));
    }
    let mut update = prefix.clone();
    update.extend(["update", "-qq"]);
    run(program, &update)?;
    prefix.extend(["install", "-y", "-qq", "--no-install-recommends"]);
    prefix.extend(missing.iter().map(|r| r.package));
    // Non-interactive: no debconf questions on a CI machine.
    std::env::set_var("DEBIAN_FRONTEND", "noninteractive");
    run(program, &prefix)
}

/// The release of `s3s-fs` that custody-testkit's S3 server is (keep in step with
/// `custody_testkit::S3S_FS_VERSION`, testkit/src/s3.rs).
const S3S_FS_VERSION: &str = "0.14.1";

/// Installs `s3s-fs`, the S3-compatible server the server's object-storage tests start
/// (server/tests/s3.rs and `Back::S3`), from crates.io into ~/.cargo/bin where that exact
/// version is missing. No Debian package provides an S3 server; s3s-fs is the lightest
/// that answers `If-None-Match: *` on an existing key with 412, as the start-up probe
/// needs. Built unoptimised (`--debug`): a test server on loopback needs no more (the S3
/// tests take 0.5 s instead of 0.4 s), and the install took 190 s of CPU (+32 s system),
/// against 433 s for a release build and 363 s at opt-level 1 (measured on the shared,
/// busy 2-core machine): about two minutes on two idle cores.
fn install_s3s_fs() -> Result<(), String> {
    let bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/s3s-fs"));
    let installed = bin
        .and_then(|b| Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let wanted = format!("s3s-fs {S3S_FS_VERSION}");
    if installed.as_deref() == Some(wanted.as_str()) {
        eprintln!("xtask: s3s-fs {S3S_FS_VERSION}: present");
        return Ok(());
    }
    eprintln!(
        "xtask: installing s3s-fs {S3S_FS_VERSION} (crates.io, into ~/.cargo/bin) for the \
         server's S3 object-storage tests"
    );
    run(
        "cargo",
        &[
            "install",
            "s3s-fs",
            "--version",
            S3S_FS_VERSION,
            "--features",
            "binary",
            "--locked",
            "--debug",
        ],
    )
}

fn test() -> Result<(), String> {
    check_disk_space();
    install_missing()?;
    install_s3s_fs()?;
    // First, so that web/dist exists when the server (which embeds it) and the browser
    // tests are built.
    web::install()?;
    web::build()?;
    run("cargo", &["fmt", "--all", "--check"])?;
    // The vault (keys, sealing, signing, the store) builds on its own and links no FFmpeg:
    // only capture, and the recorder that joins it to the vault, may name the media stack.
    run("cargo", &["build", "-p", "custody-vault"])?;
    let tree = Command::new("cargo")
        .args(["tree", "-p", "custody-vault", "--prefix", "none"])
        .current_dir(root())
        .output()
        .map_err(|e| format!("could not start cargo tree: {e}"))?;
    let tree = String::from_utf8_lossy(&tree.stdout).to_lowercase();
    if !tree.contains("custody-vault") {
        return Err("`cargo tree -p custody-vault` printed no tree".into());
    }
    if let Some(line) = tree.lines().find(|l| l.contains("ffmpeg")) {
        return Err(format!("custody-vault depends on FFmpeg again: {line}"));
    }
    run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // The fuzz targets are their own workspace; building them proves they still compile.
    run("cargo", &["build", "--manifest-path", "fuzz/Cargo.toml", "--target-dir", "target/fuzz"])?;
    // Broken intra-doc links and missing docs fail the build too.
    std::env::set_var("RUSTDOCFLAGS", "-D warnings");
    run("cargo", &["doc", "--workspace", "--no-deps", "--exclude", "xtask"])?;
    // The browser tests drive the `custody` binary this very build makes; without this
    // they would build it again with `-p custody-cli`'s features (custody_browser::custody_binary).
    std::env::set_var("CUSTODY_BIN", root().join("target/debug/custody"));
    run("cargo", &["test", "--workspace"])?;
    // The page's lint and node tests, some of which drive the binary just built: here
    // nothing they need may be missing (a skipped test proves nothing).
    std::env::set_var("CUSTODY_REQUIRE_ALL", "1");
    web::check()?;
    // The main job itself, shortened, on the binary the tests just built.
    demo::demo(&demo::Options { seconds: 6, build: false })
}

/// What a clean `cargo xtask test` leaves in target/: about 4.5 GiB (debug build with line
/// tables only, clippy's metadata, the fuzz build, docs), plus temporary files of the tests.
const TEST_DISK_GIB: u64 = 6;

/// Says, before anything is built, when the disk holding target/ has less room than the
/// test command needs: a build that fills the disk fails much later, with a linker's
/// "Bus error" or "No space left on device" far from the cause.
fn check_disk_space() {
    let out = Command::new("df").args(["-Pk"]).arg(root()).output();
    let Ok(out) = out else { return };
    let text = String::from_utf8_lossy(&out.stdout);
    let avail_kib = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(kib) = avail_kib {
        let gib = kib / (1024 * 1024);
        println!("xtask: {gib} GiB free on the disk holding target/ (the tests need about {TEST_DISK_GIB} GiB)");
        if gib < TEST_DISK_GIB {
            eprintln!(
                "xtask: warning: less than {TEST_DISK_GIB} GiB free; the build may fail with \"No space left on device\""
            );
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>

commands:
  demo    install missing system packages (apt), build, then run the whole mission in a
          temporary directory: a server on loopback, a lawyer, an enrolled device recording
          20 s live from a synthetic camera while uploading, fetch, verify, report, export,
          and a recording killed mid-way that verifies as cut off (about a minute);
          --seconds N records N seconds instead of 20
  web     the capture page: npm ci (only when web/node_modules is missing or differs from
          web/package-lock.json), eslint, tsc --checkJs, its node tests, and the build
          into web/dist (which the server embeds)
  test    install missing system packages (apt) and the capture page's npm packages,
          build the page, then run cargo fmt --check, clippy with warnings denied, the
          fuzz-target build, cargo doc, every test in the workspace, the page's lint and
          node tests (none may skip), and the demo with a 6-second recording
  bench [SECTION...]
          run the benchmarks against their peer tools and rewrite docs/benchmarks.md;
          sections: capture, import, server, upload, verify, scale, phone (default: all; a section not
          rerun keeps its last figures); CUSTODY_BENCH_RUNS sets the runs per figure (5)
  fuzz [TARGET...] [--seconds N]
          run each fuzz target (default: all) for N seconds (60) with cargo-fuzz on the
          nightly toolchain, installing cargo-fuzz from crates.io if it is missing; corpora
          in target/fuzz-corpus/, crashing inputs in target/fuzz-artifacts/ (keep each, once
          fixed, in tests/fuzz-regressions/<target>/: `cargo test` replays them)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("bench") => bench::bench(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("web") => web::web(),
        Some("demo") => demo::Options::parse(&args[1..]).and_then(|o| demo::demo(&o)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
