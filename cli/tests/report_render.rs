//! The HTML court report rendered by a real browser (headless Chromium): the verdict is
//! in the DOM and visible on the page, the timeline has one mark per segment, and the
//! screenshot is a real, non-blank picture; for a live recording, an import, a cut-off one
//! and a tampered one (whose failed segment is marked and whose intact ones keep their
//! thumbnails). `CUSTODY_KEEP_SCREENSHOTS=DIR` keeps them (docs/screens/report-*.png).
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

const GREEN: (u8, u8, u8) = (0x1e, 0x6b, 0x3a);
const AMBER: (u8, u8, u8) = (0x8a, 0x5a, 0x00);
const RED: (u8, u8, u8) = (0xa1, 0x1d, 0x1d);

/// What a rendered report must show.
struct Expect<'a> {
    verdict: &'a str,
    border: (u8, u8, u8),
    exit: i32,
    /// Segments that failed a check: marked, and without a thumbnail.
    failed: &'a [u64],
    /// Text the page must hold.
    shows: &'a [&'a str],
}

/// Renders the report and checks it; returns the screenshot's path.
fn render_and_check(real: &Real, bundle: &Path, name: &str, expect: &Expect<'_>) -> PathBuf {
    let Expect { verdict, border, exit, failed, shows } = *expect;
    let html = real.dir().join(format!("{name}.html"));
    let out = real.run_with_keys(&[
        "verify",
        bundle.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--tz",
        "America/Chicago",
    ]);
    assert_eq!(out.status.code(), Some(exit), "{}", String::from_utf8_lossy(&out.stderr));
    let profile = real.dir().join("chromium-profile");

    let dom = String::from_utf8(run_chromium(&html, &profile, &["--dump-dom"])).unwrap();
    let section = dom.find("<section id=\"verdict\"").expect("no verdict section in the DOM");
    let text = dom.find(verdict).expect("verdict text missing from the DOM");
    assert!(section < text && text < dom.find("<svg").unwrap(), "the verdict must come first");
    assert_eq!(
        dom.matches("<rect class=\"segment").count(),
        real.segments.len(),
        "one mark per segment"
    );
    assert_eq!(dom.matches("<rect class=\"segment failed\"").count(), failed.len());
    for seq in failed {
        assert!(
            dom.contains(&format!("<tr class=\"failed\" data-seq=\"{seq}\">")),
            "{seq} not marked"
        );
    }
    assert_eq!(dom.matches("<img class=\"thumb\"").count(), real.segments.len() - failed.len());
    for text in shows {
        assert!(dom.contains(text), "the page does not show {text:?}");
    }

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

    let live = Real::record(6);
    let whole = live.write(&live.bundle, "bundle");
    let complete = render_and_check(
        &live,
        &whole,
        "complete",
        &Expect {
            verdict: "Intact and complete",
            border: GREEN,
            exit: 0,
            failed: &[],
            shows: &["Live, captured by", "America/Chicago", "Report made"],
        },
    );
    let cut = live.write(&live.cut_off(), "cut");
    let cut_off = render_and_check(
        &live,
        &cut,
        "cut",
        &Expect {
            verdict: "Intact but cut off",
            border: AMBER,
            exit: 0,
            failed: &[],
            shows: &["Last proven second"],
        },
    );
    // Damaged in transit: one byte of segment 2, the manifest left as it was.
    let mut damaged = live.bundle.clone();
    damaged.files.get_mut(&custody_format::bundle::segment_path(2)).unwrap()[200] ^= 1;
    let bad = live.write(&damaged, "tampered");
    let tampered = render_and_check(
        &live,
        &bad,
        "tampered",
        &Expect {
            verdict: "Tampered: segment 2",
            border: RED,
            exit: 1,
            failed: &[2],
            shows: &["sha256sum -c MANIFEST.sha256"],
        },
    );

    let clip = tmp.path().join("phone-video.mp4");
    make_clip(&clip, 8, 1);
    let import = Real::import(&clip);
    let imported_bundle = import.write(&import.bundle, "imported");
    let imported = render_and_check(
        &import,
        &imported_bundle,
        "imported",
        &Expect {
            verdict: "Intact and complete",
            border: GREEN,
            exit: 0,
            failed: &[],
            shows: &[
                "<strong>Imported</strong> from a file",
                "phone-video.mp4",
                "Sealed at import",
            ],
        },
    );
    // Kept for a person to look at when asked to.
    if let Ok(dir) = std::env::var("CUSTODY_KEEP_SCREENSHOTS") {
        for (real, shot, name, html) in [
            (&live, &complete, "report-complete", "complete"),
            (&live, &cut_off, "report-cut-off", "cut"),
            (&live, &tampered, "report-tampered", "tampered"),
            (&import, &imported, "report-imported", "imported"),
        ] {
            std::fs::copy(shot, Path::new(&dir).join(format!("{name}.png"))).unwrap();
            std::fs::copy(
                real.dir().join(format!("{html}.html")),
                Path::new(&dir).join(format!("{name}.html")),
            )
            .unwrap();
        }
    }
}
