//! The timeline: an inline SVG of when each segment was captured (device clock) and when
//! the server received it (server clock), with gaps and the cut-off point marked.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use custody_format::report::Verdict;

use super::escape;
use crate::SegmentRow;

/// Width and height of the drawing, in SVG units (the page scales it to fit).
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const CAPTURE_Y: f64 = 40.0;
const RECEIPT_Y: f64 = 120.0;
const BAR_H: f64 = 26.0;
/// A pause in device time between consecutive segments longer than this is drawn as a gap.
pub(crate) const GAP_US: i64 = 1_000_000;

/// The SVG for `segments`; `verdict` places the cut-off mark, `failed` are the positions
/// drawn as failed, and `imported` names the first lane for what it is (the time a file was
/// sealed, not when it was filmed).
pub(crate) fn svg(
    segments: &[SegmentRow],
    verdict: &Verdict,
    failed: &BTreeSet<u64>,
    imported: bool,
) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Timeline of capture and receipt times per segment">"#
    );
    if segments.is_empty() {
        out.push_str(r#"<text x="20" y="40" class="axis">No segments.</text></svg>"#);
        return out;
    }
    let start = segments.iter().map(|s| s.wall_first_us).min().unwrap_or(0);
    let end = segments
        .iter()
        .map(|s| {
            s.wall_last_us
                .max(s.received_at_us.unwrap_or(i64::MIN))
                .max(s.existed_by_us.unwrap_or(i64::MIN))
        })
        .max()
        .unwrap_or(start)
        .max(start + 1);
    let span = (end - start) as f64;
    let x = |t: i64| LEFT + (t - start) as f64 / span * (WIDTH - LEFT - RIGHT);

    // Lanes and their labels.
    let (lane, sub) =
        if imported { ("Sealed", "at import, device clock") } else { ("Captured", "device clock") };
    let _ = write!(
        out,
        r#"<text x="8" y="{}" class="lane">{lane}</text><text x="8" y="{}" class="lane-sub">{sub}</text><text x="8" y="{}" class="lane">Received</text><text x="8" y="{}" class="lane-sub">server clock, signed</text>"#,
        CAPTURE_Y + 12.0,
        CAPTURE_Y + 26.0,
        RECEIPT_Y + 12.0,
        RECEIPT_Y + 26.0
    );
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" y1="{y1}" x2="{x2}" y2="{y1}" class="baseline"/><line x1="{LEFT}" y1="{y2}" x2="{x2}" y2="{y2}" class="baseline"/>"#,
        y1 = CAPTURE_Y + BAR_H,
        y2 = RECEIPT_Y + BAR_H,
        x2 = WIDTH - RIGHT
    );

    // Gaps in device time between consecutive segments.
    for w in segments.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if b.wall_first_us - a.wall_last_us > GAP_US {
            let (x1, x2) = (x(a.wall_last_us), x(b.wall_first_us));
            let _ = write!(
                out,
                r#"<rect class="gap" data-after="{}" x="{x1:.1}" y="{}" width="{:.1}" height="{}"><title>Gap of {:.1} s in device time after segment {}</title></rect><text x="{:.1}" y="{}" class="gap-label">gap</text>"#,
                a.seq,
                CAPTURE_Y - 6.0,
                (x2 - x1).max(2.0),
                BAR_H + 12.0,
                (b.wall_first_us - a.wall_last_us) as f64 / 1e6,
                a.seq,
                (x1 + x2) / 2.0 - 10.0,
                CAPTURE_Y - 10.0
            );
        }
    }

    // One mark per segment, with its receipt and the line between them.
    for s in segments {
        let (x1, x2) = (x(s.wall_first_us), x(s.wall_last_us));
        let w = (x2 - x1 - 1.0).max(1.5);
        if let Some(r) = s.received_at_us {
            let rx = x(r);
            let _ = write!(
                out,
                r#"<line class="lag" x1="{:.1}" y1="{}" x2="{rx:.1}" y2="{RECEIPT_Y}"/><circle class="receipt" data-seq="{}" cx="{rx:.1}" cy="{}" r="4"><title>Segment {} received {:.3} s after capture</title></circle>"#,
                x2,
                CAPTURE_Y + BAR_H,
                s.seq,
                RECEIPT_Y + BAR_H / 2.0,
                s.seq,
                s.upload_lag_us.unwrap_or(0) as f64 / 1e6
            );
        }
        let bad = failed.contains(&s.seq);
        let class = match (bad, s.received_at_us.is_some()) {
            (true, _) => "segment failed",
            (false, true) => "segment",
            (false, false) => "segment unreceipted",
        };
        let what = if bad { " — FAILED a check" } else { "" };
        let _ = write!(
            out,
            r#"<rect class="{class}" data-seq="{}" x="{x1:.1}" y="{CAPTURE_Y}" width="{w:.1}" height="{BAR_H}"><title>Segment {}: {} {:.1} s after the start{what}</title></rect>"#,
            s.seq,
            s.seq,
            if imported { "sealed" } else { "captured" },
            (s.wall_first_us - start) as f64 / 1e6
        );
        if bad {
            let _ = write!(
                out,
                r#"<text class="failed-label" x="{:.1}" y="{}" text-anchor="middle">✗ {}</text>"#,
                (x1 + x2) / 2.0,
                CAPTURE_Y + BAR_H + 14.0,
                s.seq
            );
        }
    }

    // The times by which a time-stamp authority says the segments existed: one line per
    // token, naming the last segment it covers.
    let mut bounds: std::collections::BTreeMap<i64, (u64, &str)> = Default::default();
    for s in segments {
        if let (Some(t), Some(tsa)) = (s.existed_by_us, s.existed_by_tsa.as_deref()) {
            let e = bounds.entry(t).or_insert((s.seq, tsa));
            e.0 = e.0.max(s.seq);
        }
    }
    for (t, (seq, tsa)) in &bounds {
        let bx = x(*t);
        let _ = write!(
            out,
            r#"<line class="tsa-bound" data-last-seq="{seq}" x1="{bx:.1}" y1="{}" x2="{bx:.1}" y2="{}"><title>Segments up to {seq} existed by {}, according to time-stamp authority {}</title></line><text class="tsa-label" x="{:.1}" y="{}" text-anchor="end">time-stamped</text>"#,
            CAPTURE_Y - 14.0,
            RECEIPT_Y + BAR_H + 8.0,
            escape(&crate::facts::Moment::new(*t, None).text()),
            escape(tsa),
            bx - 3.0,
            RECEIPT_Y + BAR_H + 18.0
        );
    }

    // Where the recording was cut off.
    if let Verdict::IntactCutOff { last_seq, last_wall_us } = verdict {
        let cx = x(*last_wall_us);
        let _ = write!(
            out,
            r#"<line class="cutoff" x1="{cx:.1}" y1="{}" x2="{cx:.1}" y2="{}"/><text class="cutoff-label" x="{:.1}" y="{}" text-anchor="end">cut off after segment {}</text>"#,
            CAPTURE_Y - 14.0,
            RECEIPT_Y + BAR_H + 8.0,
            cx - 4.0,
            CAPTURE_Y - 18.0,
            escape(&last_seq.to_string())
        );
    }

    // Time axis: seconds since the first capture.
    let ticks = 6;
    for i in 0..=ticks {
        let t = start + (span * f64::from(i) / f64::from(ticks)) as i64;
        let _ = write!(
            out,
            r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">+{}</text>"#,
            x(t),
            HEIGHT - 8.0,
            axis_label(t - start, span as i64)
        );
    }
    out.push_str("</svg>");
    out
}

/// A duration for an axis label, as precise as the whole span needs: seconds (with
/// decimals under 10 s), minutes or hours.
fn axis_label(us: i64, span_us: i64) -> String {
    let s = us as f64 / 1e6;
    match span_us {
        x if x < 2_000_000 => format!("{s:.2} s"),
        x if x < 10_000_000 => format!("{s:.1} s"),
        x if x < 120_000_000 => format!("{s:.0} s"),
        x if x < 7_200_000_000 => format!("{:.1} min", s / 60.0),
        _ => format!("{:.1} h", s / 3600.0),
    }
}
