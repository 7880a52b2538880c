//! The HTML court report rendered by a real browser (headless Chromium): the verdict is
//! in the DOM and visible on the page, the timeline has one mark per segment, and the
//! screenshot is a real, non-blank picture.
//!
//! Needs the Debian package `chromium` (`apt-get install -y chromium`). Without it this
//! test fails and says so: a report nobody has seen rendered is not a tested report.

#[path = "../../verifier/tests/common/mod.rs"]
mod bundles;
mod common;
mod real;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::make_clip;
use real::Real;

const WIDTH: usize = 1100;
const HEIGHT: usize = 1500;

fn chromium() -> PathBuf {
    let name = std::env::var("CUSTODY_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found =
        Command::new(&name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    match found {
        Ok(s) if s.success() => PathBuf::from(name),
        _ => panic!(
            "headless Chromium is needed to render the HTML report and was not found as `{name}`: \
             install the Debian package with `apt-get install -y chromium` (or set CUSTODY_CHROMIUM)"
        ),
    }
}

/// Runs Chromium headless on `html` with `args`, killing it after 90 s.
fn run_chromium(html: &Path, profile: &Path, args: &[&str]) -> Vec<u8> {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .args(args)
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut { stdout }, &mut out).unwrap();
        out
    });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish rendering within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// The screenshot's pixels, RGB, decoded with the ffmpeg tool.
fn pixels(png: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout.len(), WIDTH * HEIGHT * 3, "screenshot size");
    out.stdout
}

fn near(p: &[u8], rgb: (u8, u8, u8)) -> bool {
    p[0].abs_diff(rgb.0) < 12 && p[1].abs_diff(rgb.1) < 12 && p[2].abs_diff(rgb.2) < 12
}

/// Renders the report and checks it; returns the screenshot's path.
fn render_and_check(
    real: &Real,
    bundle: &Path,
    name: &str,
    verdict: &str,
    border: (u8, u8, u8),
) -> PathBuf {
    let html = real.dir().join(format!("{name}.html"));
    let out =
        real.run_with_keys(&["verify", bundle.to_str().unwrap(), "--html", html.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let profile = real.dir().join("chromium-profile");

    let dom = String::from_utf8(run_chromium(&html, &profile, &["--dump-dom"])).unwrap();
    let section = dom.find("<section id=\"verdict\"").expect("no verdict section in the DOM");
    let text = dom.find(verdict).expect("verdict text missing from the DOM");
    assert!(section < text && text < dom.find("<svg").unwrap(), "the verdict must come first");
    assert_eq!(
        dom.matches("class=\"segment\"").count(),
        real.segments.len(),
        "one mark per segment"
    );
    assert_eq!(dom.matches("<img class=\"thumb\"").count(), real.segments.len());

    let shot = real.dir().join(format!("{name}.png"));
    run_chromium(&html, &profile, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let px = pixels(&shot);
    let all: Vec<&[u8]> = px.chunks(3).collect();
    let inked = all.iter().filter(|p| !near(p, (255, 255, 255))).count();
    assert!(inked > all.len() / 20, "the screenshot is nearly blank ({inked} inked pixels)");
    let mut colours: Vec<[u8; 3]> = all.iter().map(|p| [p[0], p[1], p[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 200, "only {} colours: nothing rendered", colours.len());
    // The verdict box is drawn, in its colour, near the top of the page.
    let top = &all[..WIDTH * 500];
    let verdict_px = top.iter().filter(|p| near(p, border)).count();
    assert!(verdict_px > 2000, "the verdict box is not visible at the top ({verdict_px} pixels)");
    // The thumbnails are pictures (testsrc2 is colourful), not empty boxes.
    let saturated =
        all.iter().filter(|p| p.iter().max().unwrap() - p.iter().min().unwrap() > 120).count();
    assert!(saturated > 2000, "no colourful thumbnails ({saturated} pixels)");
    shot
}

#[test]
fn the_report_renders_in_chromium() {
    chromium();
    let tmp = tempfile::tempdir().unwrap();
    let clip = tmp.path().join("clip.mp4");
    make_clip(&clip, 8, 1);
    let real = Real::import(&clip);
    let whole = real.write(&real.bundle, "bundle");
    let shot =
        render_and_check(&real, &whole, "complete", "Intact and complete", (0x1e, 0x6b, 0x3a));
    let cut = real.write(&real.cut_off(), "cut");
    let shot_cut = render_and_check(&real, &cut, "cut", "Intact but cut off", (0x8a, 0x5a, 0x00));
    // Kept for a person to look at when asked to.
    if let Ok(dir) = std::env::var("CUSTODY_KEEP_SCREENSHOTS") {
        std::fs::copy(&shot, Path::new(&dir).join("report-complete.png")).unwrap();
        std::fs::copy(&shot_cut, Path::new(&dir).join("report-cut-off.png")).unwrap();
        std::fs::copy(
            real.dir().join("complete.html"),
            Path::new(&dir).join("report-complete.html"),
        )
        .unwrap();
    }
}
