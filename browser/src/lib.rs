//! A test harness that drives custody's capture page in a real browser.
//!
//! The phone's side of custody is a web page (web/, served by `custody serve` at
//! `/capture/`): it records with MediaRecorder, seals every segment on the phone and uploads
//! it. The only honest test of that path is the real thing, so this crate starts Debian's
//! headless Chromium with a fake camera ([`Chromium`]), drives it over the DevTools
//! protocol ([`cdp::Connection`], one WebSocket on loopback; [`Tab`] for a page), and
//! starts the real `custody serve` binary with TLS on loopback ([`Server`]), whose
//! certificate Chromium is told to trust by its key's SHA-256 ([`spki`]). The tests in
//! `browser/tests/` and the phone parts of `cargo xtask demo` and `cargo xtask bench phone`
//! are built on it.
//!
//! Every wait is bounded: a call, a navigation or a condition polled on the page takes a
//! timeout and fails with [`Error::Timeout`] saying what it waited for. Every process the
//! harness starts is killed and reaped when its owner is dropped.

#![warn(missing_docs)]

pub mod cdp;
mod chromium;
mod error;
pub mod fixture;
pub mod phone;
pub mod proc;
mod server;
pub mod spki;
mod tab;

pub use chromium::{Chromium, LaunchOptions, Profile};
pub use error::Error;
pub use fixture::Fixture;
pub use phone::Phone;
pub use server::{check_page, custody_binary, Server, ServerOptions};
pub use tab::Tab;

use std::path::PathBuf;

/// The workspace's `target/` directory (where the `custody` binary and the screenshots
/// live), found from the running executable: tests run as `target/<profile>/deps/<name>`,
/// xtask as `target/<profile>/xtask`. `CARGO_TARGET_DIR` wins when set.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    // target/<profile> → target
    dir.parent().map(PathBuf::from).unwrap_or(dir)
}

/// The directory of the running executable's build profile (`target/debug` for tests),
/// where cargo puts the `custody` binary.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Where screenshots of each step go: `target/browser-screens/`.
pub fn screens_dir() -> PathBuf {
    target_dir().join("browser-screens")
}
