//! `cargo xtask fuzz [TARGET...] [--seconds N]`: runs the fuzz targets of fuzz/ one after
//! another, each for a bounded time, with cargo-fuzz on the installed nightly toolchain.
//!
//! Each target keeps a corpus under target/fuzz-corpus/<target>/ (not committed), seeded
//! on every run from fuzz/seeds/<target>/, from the test vectors of the kinds it parses and
//! from the inputs that once crashed it (tests/fuzz-regressions/<target>/). A crash leaves
//! its input under target/fuzz-artifacts/<target>/; fixed, it belongs in
//! tests/fuzz-regressions/<target>/, which the parser's crate replays in `cargo test`.
//!
//! The targets run one at a time in one process each (libFuzzer's default; `-jobs=1`
//! would only move the output into a log file), because the machines this runs on are
//! shared and small.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::root;

/// How long each target runs unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// An input that takes longer than this is a failure (a hang), not a slow case.
const TIMEOUT_PER_INPUT_SECONDS: u64 = 10;

/// Which test-vector kinds (tests/vectors, `kind:` line) seed which target; how a vector
/// becomes a seed is [`seed_bytes`].
const VECTOR_SEEDS: &[(&str, &[&str])] = &[
    ("record", &["record"]),
    ("chain", &["chain", "record"]),
    ("server_objects", &["receipt", "tree-head", "case-recipients"]),
    ("packet_digest", &["packet-digest"]),
    ("protocol", &["request-signature", "enroll-link", "enroll-request", "enroll-answer"]),
];

/// The settled command line.
struct Options {
    targets: Vec<String>,
    seconds: u64,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options { targets: Vec::new(), seconds: DEFAULT_SECONDS };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    let n = args.next().ok_or("--seconds needs a number of seconds")?;
                    options.seconds = n
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("--seconds {n}: give a whole number above 0"))?;
                }
                flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
                target => options.targets.push(target.to_string()),
            }
        }
        Ok(options)
    }
}

fn cargo_nightly(args: &[&str]) -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly").args(args).current_dir(root());
    c
}

fn nightly_installed() -> bool {
    Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("nightly")))
}

/// Installs cargo-fuzz from crates.io when it is missing: it builds the targets with the
/// sanitizer and coverage flags libFuzzer needs and drives the runs.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = cargo_nightly(&["fuzz", "--version"]).output().is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!(
        "xtask: installing cargo-fuzz from crates.io, for building and running the fuzz targets"
    );
    crate::run("cargo", &["install", "cargo-fuzz", "--locked"])
}

fn list_targets() -> Result<Vec<String>, String> {
    let out = cargo_nightly(&["fuzz", "list", "--fuzz-dir", "fuzz"])
        .output()
        .map_err(|e| format!("could not start cargo fuzz list: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo +nightly fuzz list` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect())
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// A test vector's `key: value` lines, in order.
struct Vector(Vec<(String, String)>);

impl Vector {
    fn parse(text: &str) -> Vector {
        let lines = text
            .lines()
            .filter_map(|l| l.split_once(": ").or(l.strip_suffix(':').map(|k| (k, ""))));
        Vector(lines.map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn values<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn first<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.values(key).next()
    }
}

/// The bytes a vector gives `target` to start from: a binary object's `data:` lines; the
/// payloads of a packet-digest vector's `packet:` lines; for the protocol target, which
/// reads its first byte as the choice of parser (fuzz/checks/protocol.rs), that byte and
/// then the signature headers, the link or the JSON body.
fn seed_bytes(target: &str, v: &Vector) -> Option<Vec<u8>> {
    let kind = v.first("kind")?;
    let bytes = match (target, kind) {
        ("packet_digest", _) => {
            let packets = v.values("packet").map(|p| hex(p.rsplit(' ').next()?));
            packets.collect::<Option<Vec<_>>>()?.concat()
        }
        ("protocol", "request-signature") => {
            let names =
                ["custody-device", "custody-timestamp", "custody-nonce", "custody-signature"];
            let values = names.map(|n| v.first(n));
            if values.iter().any(Option::is_none) {
                return None;
            }
            [&[0u8][..], values.map(Option::unwrap_or_default).join("\n").as_bytes()].concat()
        }
        ("protocol", "enroll-link") => [&[1u8][..], v.first("link")?.as_bytes()].concat(),
        ("protocol", "enroll-request") => [&[4u8][..], v.first("json")?.as_bytes()].concat(),
        ("protocol", "enroll-answer") => [&[5u8][..], v.first("json")?.as_bytes()].concat(),
        ("protocol", _) => return None,
        _ => v.values("data").map(hex).collect::<Option<Vec<_>>>()?.concat(),
    };
    (!bytes.is_empty()).then_some(bytes)
}

/// Every test vector file (`*.txt`), in tests/vectors and its subdirectories, except the
/// bundle-level vectors in tests/vectors/bundles/: each of those is a whole bundle (binary
/// files and all) with its expected verdict, not one `key: value` vector.
fn vector_files() -> Result<Vec<PathBuf>, String> {
    let vectors = root().join("tests/vectors");
    let bundles = vectors.join("bundles");
    let mut files = Vec::new();
    let mut dirs = vec![vectors];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() && path != bundles => dirs.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "txt") => {
                    files.push(path)
                }
                _ => {}
            }
        }
    }
    Ok(files)
}

fn copy_dir_into(from: &Path, to: &Path, prefix: &str) -> Result<usize, String> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(0) };
    let mut n = 0;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            std::fs::copy(entry.path(), to.join(name))
                .map_err(|e| format!("seeding {}: {e}", to.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

/// Seeds target/fuzz-corpus/<target>/ and returns it.
fn seed(target: &str) -> Result<PathBuf, String> {
    let root = root();
    let corpus = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    let mut n = copy_dir_into(&root.join("fuzz/seeds").join(target), &corpus, "seed-")?;
    n += copy_dir_into(&root.join("tests/fuzz-regressions").join(target), &corpus, "regression-")?;
    let kinds = VECTOR_SEEDS.iter().find(|(t, _)| *t == target).map_or(&[][..], |(_, k)| *k);
    if !kinds.is_empty() {
        for path in vector_files()? {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let v = Vector::parse(&text);
            if !v.first("kind").is_some_and(|k| kinds.contains(&k)) {
                continue;
            }
            let Some(bytes) = seed_bytes(target, &v) else { continue };
            let name = path.strip_prefix(root.join("tests/vectors")).unwrap_or(&path);
            let name = format!("vector-{}", name.to_string_lossy().replace('/', "-"));
            std::fs::write(corpus.join(name), bytes)
                .map_err(|e| format!("seeding {}: {e}", corpus.display()))?;
            n += 1;
        }
    }
    eprintln!("xtask: fuzz {target}: {n} seed inputs, corpus in {}", corpus.display());
    Ok(corpus)
}

/// Runs the fuzz targets named in `args` (all of them when none is named).
pub fn fuzz(args: &[String]) -> Result<(), String> {
    let options = Options::parse(args)?;
    if !nightly_installed() {
        return Err("fuzzing needs the nightly toolchain (for the sanitizers): install it with \
                    `rustup toolchain install nightly`"
            .into());
    }
    ensure_cargo_fuzz()?;
    let all = list_targets()?;
    let targets = if options.targets.is_empty() { all.clone() } else { options.targets.clone() };
    if let Some(unknown) = targets.iter().find(|t| !all.contains(t)) {
        return Err(format!("no fuzz target `{unknown}`; the targets are: {}", all.join(" ")));
    }
    let target_dir = root().join("target/fuzz-nightly");
    let target_dir = target_dir.to_string_lossy();
    crate::run(
        "cargo",
        &["+nightly", "fuzz", "build", "--fuzz-dir", "fuzz", "--target-dir", &target_dir],
    )?;
    let mut crashed = Vec::new();
    for target in &targets {
        let corpus = seed(target)?;
        let artifacts = root().join("target/fuzz-artifacts").join(target);
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
        let corpus = corpus.to_string_lossy();
        let max_total_time = format!("-max_total_time={}", options.seconds);
        let timeout = format!("-timeout={TIMEOUT_PER_INPUT_SECONDS}");
        let artifact_prefix = format!("-artifact_prefix={}/", artifacts.display());
        let run = crate::run(
            "cargo",
            &[
                "+nightly",
                "fuzz",
                "run",
                "--fuzz-dir",
                "fuzz",
                "--target-dir",
                &target_dir,
                target,
                &corpus,
                "--",
                &max_total_time,
                &timeout,
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
                &artifact_prefix,
            ],
        );
        if let Err(e) = run {
            eprintln!("xtask: fuzz {target}: {e}");
            crashed.push(format!("{target} (inputs in {})", artifacts.display()));
        }
    }
    if crashed.is_empty() {
        eprintln!(
            "xtask: fuzz: {} targets ran {} s each without a failure",
            targets.len(),
            options.seconds
        );
        Ok(())
    } else {
        Err(format!(
            "fuzzing found failures in: {}\nfix them, then keep each input as \
             tests/fuzz-regressions/<target>/<what-broke> so that `cargo test` replays it",
            crashed.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_targets_and_seconds() {
        let args: Vec<String> = ["tar", "--seconds", "5", "bundle"].map(String::from).to_vec();
        let o = Options::parse(&args).unwrap();
        assert_eq!((o.targets, o.seconds), (vec!["tar".to_string(), "bundle".to_string()], 5));
        assert_eq!(Options::parse(&[]).unwrap().seconds, DEFAULT_SECONDS);
        assert!(Options::parse(&["--seconds".into(), "0".into()]).is_err());
        assert!(Options::parse(&["--minutes".into()]).is_err());
    }

    #[test]
    fn vectors_give_their_bytes() {
        let v = Vector::parse("comment: x\nkind: record\nexpect: ok\ndata: 0102\ndata: ff\n");
        assert_eq!(seed_bytes("record", &v), Some(vec![1, 2, 0xff]));
        let v =
            Vector::parse("kind: packet-digest\nstream: video h264 length4\npacket: 1 key 21ab\n");
        assert_eq!(seed_bytes("packet_digest", &v), Some(vec![0x21, 0xab]));
        assert_eq!(seed_bytes("record", &Vector::parse("kind: record\ndata: 0g\n")), None);
        let v = Vector::parse("kind: enroll-link\nlink: https://x/enroll#a\n");
        assert_eq!(seed_bytes("protocol", &v), Some(b"\x01https://x/enroll#a".to_vec()));
        let v = Vector::parse(
            "kind: request-signature\nbody:\ncustody-device: d\ncustody-timestamp: 1\n\
             custody-nonce: n\ncustody-signature: s\n",
        );
        assert_eq!(seed_bytes("protocol", &v), Some(b"\x00d\n1\nn\ns".to_vec()));
    }

    #[test]
    fn every_target_with_vectors_gets_a_seed_from_them() {
        let files = vector_files().unwrap();
        for (target, kinds) in VECTOR_SEEDS {
            let seeds = files
                .iter()
                .map(|p| Vector::parse(&std::fs::read_to_string(p).unwrap()))
                .filter(|v| v.first("kind").is_some_and(|k| kinds.contains(&k)))
                .filter_map(|v| seed_bytes(target, &v))
                .count();
            assert!(seeds > 0, "no vector seeds {target}");
        }
    }
}
