//! Embeds the built capture page (`web/dist`, made by `cargo xtask web`) in the server, so
//! that one binary serves both the API and the page a phone records from.
//!
//! Every file under `web/dist` becomes an `include_bytes!` entry of a generated table,
//! sorted by path so that the same tree gives the same binary. Where node was absent and
//! the page was never built, the table is empty and `/capture/` answers 503 with a page
//! saying how to build it (`src/web.rs`): `cargo build` still works without node.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../web/dist");
    println!("cargo:rerun-if-changed=build.rs");
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        // Cargo scans a directory named here for any change inside it.
        println!("cargo:rerun-if-changed=../web/dist");
        collect(&dist, &dist, &mut files);
    } else {
        // Naming a path that does not exist would rerun this script on every build; the
        // web/ directory exists, and its dist/ appearing inside it reruns the script.
        println!("cargo:rerun-if-changed=../web");
    }
    files.sort();
    let mut out = String::from(
        "/// The capture page's files (path under `/capture/`, bytes), sorted by path.\n\
         pub(crate) static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        out.push_str(&format!("    ({rel:?}, include_bytes!({abs:?})),\n"));
    }
    out.push_str("];\n");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out_dir.join("web_assets.rs"), out) {
        println!("cargo:warning=could not write the capture page's asset table: {e}");
        std::process::exit(1);
    }
}

/// Every regular file under `dir`, as (path relative to `root` with `/` separators,
/// absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let rel: Vec<String> =
                rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            let abs = path.canonicalize().unwrap_or(path.clone());
            files.push((rel.join("/"), abs.to_string_lossy().into_owned()));
        }
    }
}
