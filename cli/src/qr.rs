//! The enrollment link as a QR code in the terminal (`custody admin enroll-token --qr`).
//!
//! Two modules share one character cell, one above the other, drawn with the Unicode half
//! blocks (`▀ ▄ █` and a space), so the code is square on a terminal whose cells are twice
//! as tall as they are wide. A phone's camera needs dark modules on a light ground and a
//! quiet zone of four light modules around the code (ISO/IEC 18004, 7.3.8): on a terminal
//! the text is drawn black on bright white with explicit colours, so the code reads the
//! same on a dark theme as on a light one. Piped to a file there are no colour codes, and
//! the blocks stand for the dark modules.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the code on every side.
const QUIET: usize = 4;

/// Black text on a bright white ground (SGR 30 and 107), then back to the defaults.
const ON: &str = "\x1b[30;107m";
const OFF: &str = "\x1b[0m";

/// The QR code of `text` as lines of half blocks, each ending in a newline; with `colour`,
/// every line is drawn black on bright white. Error correction level M (15 %) leaves a
/// link of ~150 characters a code a phone reads from a laptop screen at arm's length.
pub fn render(text: &str, colour: bool) -> Result<String, String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| format!("the link cannot be a QR code: {e}"))?;
    let width = code.width();
    let colors = code.to_colors();
    let size = width + 2 * QUIET;
    // Whether the module at (x, y) of the code with its quiet zone is dark.
    let dark = |x: usize, y: usize| -> bool {
        if x < QUIET || y < QUIET || x >= width + QUIET || y >= width + QUIET {
            return false;
        }
        colors[(y - QUIET) * width + (x - QUIET)] == Color::Dark
    };
    let mut out = String::new();
    for y in (0..size).step_by(2) {
        if colour {
            out.push_str(ON);
        }
        for x in 0..size {
            // The last row of an odd-sized code has only quiet zone below it.
            let (top, bottom) = (dark(x, y), y + 1 < size && dark(x, y + 1));
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if colour {
            out.push_str(OFF);
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The module matrix read back from the half blocks (dark = true), quiet zone included.
    fn modules(text: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in text.lines() {
            let line = line.trim_start_matches(ON).trim_end_matches(OFF);
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn the_half_blocks_are_the_encoders_modules_inside_a_quiet_zone() {
        let link = "https://legal.example:8443/enroll#token=ab&fp=7Q2MX-0K4RT-9ZB1C-XW3HN";
        let code = QrCode::with_error_correction_level(link, EcLevel::M).unwrap();
        let w = code.width();
        for colour in [false, true] {
            let m = modules(&render(link, colour).unwrap());
            assert_eq!(m[0].len(), w + 2 * QUIET);
            // An odd size leaves one extra light row at the bottom, nothing else.
            assert_eq!(m.len(), (w + 2 * QUIET).div_ceil(2) * 2);
            for (y, row) in m.iter().enumerate() {
                for (x, &d) in row.iter().enumerate() {
                    let inside = (QUIET..QUIET + w).contains(&x) && (QUIET..QUIET + w).contains(&y);
                    let want = inside && code[(x - QUIET, y - QUIET)] == Color::Dark;
                    assert_eq!(d, want, "module ({x}, {y}), colour {colour}");
                }
            }
        }
    }
}
