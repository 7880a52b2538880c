//! `cargo xtask web`: the capture page's checks and build.
//!
//! Installs the page's npm packages from its lockfile (`npm ci`, only when they are
//! missing or the lockfile changed), lints (`eslint`, `tsc --checkJs`), runs its node
//! tests (`web/test/*.test.js`), and builds it into `web/dist`, which the server embeds
//! (`server/build.rs`). `cargo xtask test` runs this before the cargo steps so that the
//! server and the browser tests are built with the page.

use std::path::{Path, PathBuf};

fn web_dir() -> PathBuf {
    crate::root().join("web")
}

/// Runs `program args` in web/, saying so and what it took, as `crate::run` does.
fn run_in_web(program: &str, args: &[&str]) -> Result<(), String> {
    crate::run_in(&web_dir(), program, args)
}

/// Why `npm ci` must run, or `None` when node_modules already holds what the lockfile
/// pins. npm keeps a copy of what it installed in `node_modules/.package-lock.json`; every
/// package the lockfile requires (optional ones, such as esbuild's binaries for other
/// platforms, may be absent) must be there at the version the lockfile names.
fn install_needed(web: &Path) -> Result<Option<String>, String> {
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let lock = read(&web.join("package-lock.json"))?;
    let installed_path = web.join("node_modules/.package-lock.json");
    if !installed_path.exists() {
        return Ok(Some("web/node_modules is missing".into()));
    }
    let Ok(installed) = read(&installed_path) else {
        return Ok(Some("web/node_modules/.package-lock.json is unreadable".into()));
    };
    let empty = serde_json::Map::new();
    let wanted = lock["packages"].as_object().unwrap_or(&empty);
    let have = installed["packages"].as_object().unwrap_or(&empty);
    for (path, want) in wanted {
        if path.is_empty() {
            continue; // the page itself
        }
        let optional = want["optional"].as_bool().unwrap_or(false);
        match have.get(path) {
            None if optional => {}
            None => return Ok(Some(format!("{path} is not installed"))),
            Some(got) if got["version"] != want["version"] => {
                return Ok(Some(format!(
                    "the lockfile changed: {path} {} is installed, the lockfile says {}",
                    got["version"], want["version"]
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = have.keys().find(|k| !wanted.contains_key(*k)) {
        return Ok(Some(format!("the lockfile changed: {extra} is no longer in it")));
    }
    Ok(None)
}

/// `cargo xtask web`: everything, in the order a developer wants it (checks, then the build).
pub(crate) fn web() -> Result<(), String> {
    install()?;
    check()?;
    build()
}

/// Installs the page's npm packages when web/node_modules is not what the lockfile pins.
pub(crate) fn install() -> Result<(), String> {
    if !crate::on_path("node") || !crate::on_path("npm") {
        crate::install_missing()?;
    }
    match install_needed(&web_dir())? {
        Some(why) => {
            // What it installs: the packages web/package-lock.json pins, nothing else
            // (age-encryption for sealing; esbuild, eslint, typescript and globals to build
            // and check the page), with their integrity hashes checked by npm.
            eprintln!("xtask: installing the capture page's npm packages from web/package-lock.json ({why})");
            run_in_web("npm", &["ci", "--no-audit", "--no-fund"])
        }
        None => {
            eprintln!("xtask: web/node_modules matches web/package-lock.json");
            Ok(())
        }
    }
}

/// Builds the page into web/dist (which the server embeds).
pub(crate) fn build() -> Result<(), String> {
    run_in_web("node", &["build.mjs"])
}

/// Lints, type-checks and runs the page's node tests. Some of them drive the real
/// `custody` binary (`CUSTODY_BIN`) or Chromium; `cargo xtask test` runs this after the
/// workspace is built and sets `CUSTODY_REQUIRE_ALL`, so that a missing binary fails them
/// instead of skipping them.
pub(crate) fn check() -> Result<(), String> {
    let dir = web_dir();
    run_in_web("npx", &["--no-install", "eslint", "."])?;
    run_in_web("npx", &["--no-install", "tsc", "-p", "jsconfig.json"])?;
    // The test files by name: node 20's `--test DIR` also runs every helper module under
    // DIR as if it were a test, and it has no globs.
    let mut tests: Vec<String> = std::fs::read_dir(dir.join("test"))
        .map_err(|e| format!("web/test: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.js") || n.ends_with(".test.mjs"))
        .map(|n| format!("test/{n}"))
        .collect();
    tests.sort();
    let mut args = vec!["--test"];
    args.extend(tests.iter().map(String::as_str));
    run_in_web("node", &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A web/ directory with this lockfile and (if given) what npm recorded installing.
    fn web_with(lock: &str, installed: Option<&str>) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xtask-web-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("node_modules")).unwrap();
        std::fs::write(dir.join("package-lock.json"), lock).unwrap();
        if let Some(i) = installed {
            std::fs::write(dir.join("node_modules/.package-lock.json"), i).unwrap();
        }
        dir
    }

    const LOCK: &str = r#"{"packages": {
        "": {"name": "page"},
        "node_modules/a": {"version": "1.0.0"},
        "node_modules/b": {"version": "2.0.0"},
        "node_modules/@x/other-os": {"version": "3.0.0", "optional": true}
    }}"#;

    #[test]
    fn npm_ci_runs_only_when_node_modules_differs_from_the_lockfile() {
        let same = r#"{"packages": {"node_modules/a": {"version": "1.0.0"},
            "node_modules/b": {"version": "2.0.0"}}}"#;
        let dir = web_with(LOCK, Some(same));
        assert_eq!(install_needed(&dir).unwrap(), None, "optional packages may be absent");

        let dir = web_with(LOCK, None);
        assert!(install_needed(&dir).unwrap().unwrap().contains("missing"));

        let older = r#"{"packages": {"node_modules/a": {"version": "0.9.0"},
            "node_modules/b": {"version": "2.0.0"}}}"#;
        let why = install_needed(&web_with(LOCK, Some(older))).unwrap().unwrap();
        assert!(why.contains("node_modules/a") && why.contains("1.0.0"), "{why}");

        let lacking = r#"{"packages": {"node_modules/a": {"version": "1.0.0"}}}"#;
        let why = install_needed(&web_with(LOCK, Some(lacking))).unwrap().unwrap();
        assert!(why.contains("node_modules/b is not installed"), "{why}");

        let extra = r#"{"packages": {"node_modules/a": {"version": "1.0.0"},
            "node_modules/b": {"version": "2.0.0"}, "node_modules/gone": {"version": "1.0.0"}}}"#;
        let why = install_needed(&web_with(LOCK, Some(extra))).unwrap().unwrap();
        assert!(why.contains("node_modules/gone"), "{why}");

        let why = install_needed(&web_with(LOCK, Some("not json"))).unwrap().unwrap();
        assert!(why.contains("unreadable"), "{why}");
        assert!(install_needed(&web_with("not json", Some(same))).is_err());

        let prefix = format!("xtask-web-{}-", std::process::id());
        for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    #[test]
    fn the_real_lockfile_is_read() {
        // Whatever is installed here, the project's own lockfile parses and is judged.
        assert!(install_needed(&web_dir()).is_ok());
    }
}
