//! The court report: one self-contained HTML page rendered from a [`Report`].
//!
//! The page needs nothing else: no scripts, no fonts, no images from elsewhere; the
//! timeline is inline SVG and thumbnails are `data:` URIs. Everything that comes from the
//! bundle (labels, messages, log details) is hostile input and is escaped.

mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use custody_format::log::{EntryType, LogEntry};
use custody_format::report::{Check, CheckState, Verdict};

use crate::facts::{seconds, RecordingFacts};
use crate::{Photo, Report, SegmentRow, Trust};

/// A further part of the report, for what the caller checked beyond the bundle (an
/// exported file, an original from the phone): a title, a sentence and its checks.
#[derive(Clone, Debug)]
pub struct Section {
    /// Its heading.
    pub title: String,
    /// What it found, in a sentence.
    pub summary: String,
    /// Its checks, each with a stable code.
    pub checks: Vec<Check>,
}

/// What the page shows besides the report.
#[derive(Clone, Debug, Default)]
pub struct HtmlExtras {
    /// A small JPEG or PNG of each segment's first frame, by chain position.
    pub thumbnails: BTreeMap<u64, Vec<u8>>,
    /// Further sections, shown after the verdict and keys.
    pub sections: Vec<Section>,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text in which `backquoted` parts (commands to run) are set as code.
fn prose(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{}</code>", escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

/// A UTC date and time, `2026-11-27 06:10:03.250 UTC`.
pub fn utc(us: i64) -> String {
    let c = custody_format::time::civil(us);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond
    )
}

/// A photo recording in a sentence: "Photo, 1920×1080, taken … by the device clock,
/// received … by the server" (the device clock is a claim; the receipt's time is the
/// server's).
pub fn photo_line(p: &Photo) -> String {
    let received = match p.received_at_us {
        Some(t) => format!("received {} by the server", utc(t)),
        None => "no receipt from the server".to_string(),
    };
    format!(
        "Photo, {}×{}, taken {} by the device clock, {received}",
        p.width,
        p.height,
        utc(p.taken_at_us)
    )
}

/// Standard base64 (RFC 4648 §4), for `data:` URIs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The image type of a thumbnail, from its first bytes; `None` for anything else, which
/// is then not shown.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else {
        None
    }
}

fn verdict_words(v: &Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::IntactComplete => ("Intact and complete", "intact"),
        Verdict::IntactCutOff { .. } => ("Intact but cut off", "cutoff"),
        Verdict::Tampered => ("Tampered or invalid", "tampered"),
        Verdict::SignerNotConfirmed { .. } => ("Signer not confirmed", "signer"),
        Verdict::CouldNotCheck => ("Could not check", "unchecked"),
    }
}

fn state_words(s: CheckState) -> (&'static str, &'static str) {
    match s {
        CheckState::Ok => ("passed", "ok"),
        CheckState::Warning => ("warning", "warning"),
        CheckState::Failure => ("FAILED", "failure"),
        CheckState::NotChecked => ("not checked", "not-checked"),
    }
}

fn entry_words(t: EntryType) -> &'static str {
    match t {
        EntryType::DeviceEnrolled => "Device enrolled by the legal team's server",
        EntryType::RecordingOpened => "Recording opened on the server",
        EntryType::SegmentReceived => "Segment received and stored by the server",
        EntryType::RecordingEnded => "Recording closed on the server",
        EntryType::EquivocationRefused => "A conflicting record was refused",
        EntryType::DeviceRevoked => "Device key revoked",
        EntryType::MemberAdded => "Legal-team member added",
        EntryType::Access => "Evidence accessed by a legal-team member",
        EntryType::EnrollmentRefused => "An enrollment was refused",
        EntryType::TimeStampToken => "Log time-stamped by an independent authority",
    }
}

/// The whole page.
pub fn render(report: &Report, extras: &HtmlExtras) -> String {
    let mut o = String::with_capacity(64 << 10);
    let (headline, mut class) = verdict_words(&report.verdict);
    // An intact bundle whose signer is not confirmed is not shown as settled.
    if class == "intact" && !matches!(report.trust, Trust::Trusted { .. }) {
        class = "cutoff";
    }
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    o.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        o,
        "<title>Evidence verification report — {}</title><style>{STYLE}</style></head><body>",
        escape(report.recording_id.as_deref().unwrap_or("unknown recording"))
    );
    o.push_str("<header><p class=\"kicker\">custody · evidence verification report</p>");
    let _ = write!(
        o,
        "<h1>Recording {}</h1></header>",
        escape(report.recording_id.as_deref().unwrap_or("(unreadable)"))
    );

    // 1. The verdict, first, in a sentence.
    let _ = write!(
        o,
        "<section id=\"verdict\" class=\"verdict {class}\"><p class=\"verdict-head\">Verdict: <strong>{}</strong></p><p class=\"verdict-text\">{}</p><p class=\"counts\">{} checks passed · {} warnings · {} failed · {} not checked</p></section>",
        escape(headline),
        prose(&report.summary),
        report.count(CheckState::Ok),
        report.count(CheckState::Warning),
        report.count(CheckState::Failure),
        report.count(CheckState::NotChecked),
    );

    // 2. What the recording is and when, and what this report is.
    what_and_when(&mut o, report);

    // 3. Keys and trust.
    o.push_str("<section><h2>Keys and trust</h2><table class=\"facts\">");
    if let Some(p) = &report.photo {
        let _ = write!(o, "<tr><th>Recording</th><td>{}</td></tr>", escape(&photo_line(p)));
    }
    let (server, trust) = match &report.trust {
        Trust::Trusted { fingerprint } => (
            fingerprint.clone(),
            "trusted: it is the key the verifier was told to trust".to_string(),
        ),
        Trust::Unconfirmed { fingerprint } => (
            fingerprint.clone(),
            "UNCONFIRMED: no trusted key was given; confirm this fingerprint with the legal team"
                .to_string(),
        ),
        Trust::Untrusted { fingerprint, trusted } => {
            (fingerprint.clone(), format!("NOT TRUSTED: the trusted key is {trusted}"))
        }
        Trust::Unknown => ("none readable".to_string(), "unknown".to_string()),
    };
    let _ = write!(
        o,
        "<tr><th>Server key</th><td><code class=\"fp\">{}</code><br><span class=\"note\">{}</span></td></tr>",
        escape(&server),
        escape(&trust)
    );
    if let Some((fp, label)) = &report.device {
        let _ = write!(
            o,
            "<tr><th>Device key</th><td><code class=\"fp\">{}</code><br><span class=\"note\">enrolled as “{}”</span></td></tr>",
            escape(fp),
            escape(label)
        );
    }
    if let Some(h) = &report.tree_head {
        let _ = write!(
            o,
            "<tr><th>Custody log</th><td>{} entries, head signed at {}</td></tr>",
            h.tree_size,
            utc(h.timestamp_us)
        );
    }
    if let Some(skew) = report.clock_skew_us.filter(|s| *s > 0) {
        let _ = write!(
            o,
            "<tr><th>Device clock</th><td>ahead of the server's by at least {:.3} s</td></tr>",
            skew as f64 / 1e6
        );
    }
    o.push_str("</table></section>");

    // What the caller checked beyond the bundle (an export, an original), right after
    // the verdict and keys it depends on.
    for s in &extras.sections {
        let _ = write!(
            o,
            "<section class=\"extra\"><h2>{}</h2><p>{}</p>",
            escape(&s.title),
            escape(&s.summary)
        );
        checks_table(&mut o, &s.checks);
        o.push_str("</section>");
    }

    // 4. The timeline.
    let failed: BTreeSet<u64> = report.failed_positions.iter().copied().collect();
    let imported = report.recording.as_ref().is_some_and(|r| r.imported.is_some());
    let intro = if imported {
        "Each bar is one segment as it was sealed from the imported file (the device clock at import: the file's own times are claims); each dot is the server's signed receipt for it."
    } else {
        "Each bar is one segment as the device captured it; each dot is the server's signed receipt for it. A slanted line is the upload delay."
    };
    let _ = write!(o, "<section><h2>Timeline</h2><p class=\"note\">{intro}");
    if !failed.is_empty() {
        o.push_str(" Segments drawn in red failed a check.");
    }
    o.push_str("</p>");
    // Independent time (RFC 3161 tokens in the custody log), or that there is none.
    let _ = write!(
        o,
        "<p class=\"independent-time\"><strong>Independent time.</strong> {}</p>",
        escape(&report.independent_time)
    );
    o.push_str(&timeline::svg(&report.segments, &report.verdict, &failed, imported));
    o.push_str("</section>");

    // 5. The segments.
    segments_table(&mut o, report, &failed, &extras.thumbnails);

    // 6. The custody log.
    custody_log(&mut o, &report.custody_log);

    // 7. Every check.
    o.push_str("<section><h2>Every check</h2>");
    checks_table(&mut o, &report.checks);
    o.push_str("</section>");

    let about = &report.about;
    let _ = writeln!(
        o,
        "<footer><p id=\"about\">This report was made {} by {}, over {}.</p><p>Produced by <code>custody verify</code> from the evidence bundle alone, offline, with public keys only. Anyone can repeat this check with the same bundle and the legal team's server key; the codes are documented in <code>docs/verification-codes.md</code>.</p></footer></body></html>",
        escape(&about.made_at.text()),
        escape(&about.verifier),
        escape(&about.bundle_phrase())
    );
    o
}

/// The facts table: the recording (live or imported, by which device), its times in UTC
/// and the local zone asked for, its length, a cut-off's last proven second, and when,
/// by what and over which bundle this report was made.
fn what_and_when(o: &mut String, report: &Report) {
    o.push_str("<section id=\"what-and-when\"><h2>What and when</h2><table class=\"facts\">");
    let row = |o: &mut String, th: &str, td: &str| {
        let _ = write!(o, "<tr><th>{}</th><td>{td}</td></tr>", escape(th));
    };
    let moment = |m: &crate::facts::Moment| match &m.local {
        Some(l) => format!("{}<br><span class=\"note\">{}</span>", escape(&m.utc), escape(l)),
        None => escape(&m.utc),
    };
    if let Some(r) = &report.recording {
        let who = r
            .device_label
            .as_deref()
            .map_or("an unknown device".to_string(), |l| format!("“{}”", escape(l)));
        match &r.imported {
            Some(f) => {
                row(
                    o,
                    "Recording",
                    &format!("<strong>Imported</strong> from a file by {who}, not captured live"),
                );
                row(
                    o,
                    "Imported file",
                    &format!(
                        "{}<br><span class=\"note\">SHA-256 <code>{}</code>, {} bytes</span>",
                        escape(&f.name),
                        escape(&f.sha256),
                        f.len
                    ),
                );
                row(o, "Sealed at import", &format!("{}<br><span class=\"note\">by the device clock; when the file was filmed is not proven: its own times are claims</span>", moment(&r.started)));
            }
            None => {
                row(o, "Recording", &format!("Live, captured by {who}"));
                row(
                    o,
                    "Started",
                    &format!(
                        "{}<br><span class=\"note\">by the device clock</span>",
                        moment(&r.started)
                    ),
                );
                // A cut-off recording's end is its last proven second, shown below.
                if let Some(e) = r.ended.as_ref().filter(|_| r.last_proven.is_none()) {
                    row(
                        o,
                        "Ended",
                        &format!(
                            "{}<br><span class=\"note\">by the device clock</span>",
                            moment(e)
                        ),
                    );
                }
            }
        }
        row(
            o,
            "Duration",
            &format!("{} of media in {} segments", seconds(r.duration_us), r.segments),
        );
        if let Some(l) = &r.last_proven {
            let received = l
                .received
                .as_ref()
                .map(|m| {
                    format!(
                        "<br><span class=\"note\">received by the server {}</span>",
                        escape(&m.text())
                    )
                })
                .unwrap_or_default();
            row(
                o,
                "Last proven second",
                &format!(
                    "{}<br><span class=\"note\">record {}, by the device clock</span>{received}",
                    moment(&l.device),
                    l.seq
                ),
            );
        }
    }
    let about = &report.about;
    if let Some(z) = &about.time_zone {
        row(o, "Local time", &format!("shown in {} as well as UTC (the zone was given to the verifier; the recording holds none)", escape(z)));
    }
    row(o, "Report made", &format!("by {}<br>{}", escape(&about.verifier), moment(&about.made_at)));
    row(o, "Bundle", &escape(&about.bundle_phrase()));
    o.push_str("</table></section>");
}

fn segments_table(
    o: &mut String,
    report: &Report,
    failed: &BTreeSet<u64>,
    thumbs: &BTreeMap<u64, Vec<u8>>,
) {
    let rows = &report.segments;
    let imported = report.recording.as_ref().is_some_and(|r: &RecordingFacts| r.imported.is_some());
    o.push_str("<section><h2>Segments</h2>");
    if !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(u64::to_string).collect();
        let _ = write!(
            o,
            "<p class=\"note\">Failed a check: position {}. Every other segment below verified.</p>",
            list.join(", ")
        );
    }
    o.push_str("<table class=\"grid\"><thead><tr>");
    if !thumbs.is_empty() {
        o.push_str("<th>First frame</th>");
    }
    let captured =
        if imported { "Sealed at import (device clock)" } else { "Captured (device clock)" };
    let _ = write!(o, "<th>#</th><th>Result</th><th>{captured}</th><th>Media time</th><th>Size</th><th>Received (server clock)</th><th>Upload delay</th>");
    // The time-stamp bound, only when the bundle proves one.
    let stamped = rows.iter().any(|s| s.existed_by_us.is_some());
    if stamped {
        o.push_str("<th>Existed by (time-stamp authority)</th>");
    }
    o.push_str("</tr></thead><tbody>");
    let mut prev: Option<&SegmentRow> = None;
    for s in rows {
        let gap = prev.is_some_and(|p| s.wall_first_us - p.wall_last_us > timeline::GAP_US);
        let bad = failed.contains(&s.seq);
        let class = match (bad, gap) {
            (true, true) => "failed after-gap",
            (true, false) => "failed",
            (false, true) => "after-gap",
            (false, false) => "",
        };
        let _ = write!(o, "<tr class=\"{class}\" data-seq=\"{}\">", s.seq);
        if !thumbs.is_empty() {
            match thumbs.get(&s.seq).and_then(|b| image_type(b).map(|t| (t, b))) {
                Some((t, b)) => {
                    let _ = write!(
                        o,
                        "<td><img class=\"thumb\" alt=\"first frame of segment {}\" src=\"data:{t};base64,{}\"></td>",
                        s.seq,
                        base64(b)
                    );
                }
                None => o.push_str("<td class=\"note\">—</td>"),
            }
        }
        let result = if bad {
            let codes: BTreeSet<&str> = report
                .checks
                .iter()
                .filter(|c| c.state == CheckState::Failure && c.seq == Some(s.seq))
                .map(|c| c.code)
                .collect();
            let codes: Vec<String> =
                codes.into_iter().map(|c| format!("<code>{}</code>", escape(c))).collect();
            format!("<span class=\"badge failure\">FAILED</span><br>{}", codes.join("<br>"))
        } else {
            "<span class=\"badge ok\">verified</span>".to_string()
        };
        let received = s.received_at_us.map_or("no receipt".to_string(), utc);
        let lag = s.upload_lag_us.map_or("—".to_string(), |l| format!("{:.3} s", l as f64 / 1e6));
        let _ = write!(
            o,
            "<td>{}</td><td>{result}</td><td>{}<br><span class=\"note\">to {}</span></td><td>{:.3}–{:.3} s</td><td>{}</td><td>{}</td><td>{}</td>",
            s.seq,
            utc(s.wall_first_us),
            utc(s.wall_last_us),
            s.media_start_us as f64 / 1e6,
            s.media_end_us as f64 / 1e6,
            bytes(s.ciphertext_len),
            received,
            lag
        );
        if stamped {
            match (s.existed_by_us, &s.existed_by_tsa) {
                (Some(t), Some(tsa)) => {
                    let _ = write!(
                        o,
                        "<td>{}<br><span class=\"note\">{}</span></td>",
                        utc(t),
                        escape(tsa)
                    );
                }
                _ => o.push_str("<td class=\"note\">not covered</td>"),
            }
        }
        o.push_str("</tr>");
        prev = Some(s);
    }
    o.push_str("</tbody></table></section>");
}

fn custody_log(o: &mut String, entries: &[(u64, LogEntry)]) {
    o.push_str("<section><h2>Custody log</h2><p class=\"note\">Every entry below is proven to be in the server's append-only, signed log. Who held the evidence, and when:</p><ol class=\"custody\">");
    let mut sorted: Vec<&(u64, LogEntry)> = entries.iter().collect();
    sorted.sort_by_key(|(i, e)| (e.at_us, *i));
    for (index, e) in sorted {
        let mut who = Vec::new();
        if let Some(a) = &e.actor {
            who.push(format!("by {}", escape(a)));
        }
        if let Some(l) = &e.label {
            who.push(format!("“{}”", escape(l)));
        }
        if let Some(k) = &e.device_key {
            who.push(format!("device <code>{}</code>", escape(&k.fingerprint().to_string())));
        }
        if let Some(s) = e.seq {
            who.push(format!("record {s}"));
        }
        if let Some(d) = &e.detail {
            who.push(escape(d));
        }
        let _ = write!(
            o,
            "<li><span class=\"when\">{}</span> <span class=\"what\">{}</span> <span class=\"who\">{}</span> <span class=\"note\">(log entry {index})</span></li>",
            utc(e.at_us),
            entry_words(e.entry_type),
            who.join(" · ")
        );
    }
    o.push_str("</ol></section>");
}

fn checks_table(o: &mut String, checks: &[Check]) {
    o.push_str("<table class=\"grid checks\"><thead><tr><th>Result</th><th>Code</th><th>Finding</th></tr></thead><tbody>");
    for c in checks {
        let (word, class) = state_words(c.state);
        let _ = write!(
            o,
            "<tr class=\"check {class}\" data-code=\"{}\"><td><span class=\"badge {class}\">{word}</span></td><td><code>{}</code></td><td>{}</td></tr>",
            escape(c.code),
            escape(c.code),
            escape(&c.message)
        );
    }
    o.push_str("</tbody></table>");
}

fn bytes(n: u64) -> String {
    match n {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

const STYLE: &str = r#"
:root{--ink:#1b1f24;--muted:#5b6470;--rule:#d6d9de;--ok:#1e6b3a;--warn:#8a5a00;--bad:#a11d1d;--na:#4a4f57}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1000px;padding:32px 40px 48px;font:15px/1.5 Georgia,"Times New Roman",serif;color:var(--ink);background:#fff}
header{border-bottom:2px solid var(--ink);margin-bottom:20px}
.kicker{font:600 12px/1 system-ui,sans-serif;letter-spacing:.12em;text-transform:uppercase;color:var(--muted);margin:0 0 6px}
h1{font-size:22px;margin:0 0 12px;font-weight:600;word-break:break-all}
h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--rule)}
.verdict{border:2px solid;border-left-width:10px;padding:14px 18px;margin:8px 0 16px}
.verdict.intact{border-color:var(--ok);background:#f1f8f3}.verdict.cutoff{border-color:var(--warn);background:#fdf7ea}
.verdict.tampered{border-color:var(--bad);background:#fbefef}.verdict.unchecked{border-color:var(--na);background:#f3f4f6}
.verdict.signer{border-color:var(--warn);background:#fdf7ea}
.verdict-head{font-size:20px;margin:0 0 6px}.verdict-text{font-size:16px;margin:0 0 6px}
.counts{font:13px system-ui,sans-serif;color:var(--muted);margin:0}
table{border-collapse:collapse;width:100%;font-size:14px}
.facts th{text-align:left;width:150px;vertical-align:top;padding:6px 8px 6px 0;color:var(--muted);font-weight:normal}
.facts td{padding:6px 0}
.grid th{text-align:left;font:600 12px system-ui,sans-serif;color:var(--muted);border-bottom:1px solid var(--ink);padding:4px 6px}
.grid td{border-bottom:1px solid var(--rule);padding:5px 6px;vertical-align:top}
tr.after-gap td{border-top:3px double var(--warn)}
tr.failed td{background:#fbefef}tr.failed td:first-child{box-shadow:inset 4px 0 0 var(--bad)}
code{font:13px ui-monospace,"DejaVu Sans Mono",monospace}.fp{font-size:14px;letter-spacing:.04em}
.note{color:var(--muted);font-size:13px}
.badge{font:600 11px system-ui,sans-serif;text-transform:uppercase;padding:2px 6px;border-radius:3px;color:#fff;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.warning{background:var(--warn)}.badge.failure{background:var(--bad)}.badge.not-checked{background:var(--na)}
tr.check.failure td{background:#fbefef}
img.thumb{width:120px;height:auto;border:1px solid var(--rule);display:block}
svg.timeline{width:100%;height:auto;border:1px solid var(--rule);background:#fcfcfd}
svg .lane{font:600 13px system-ui,sans-serif;fill:var(--ink)}svg .lane-sub{font:11px system-ui,sans-serif;fill:var(--muted)}
svg .axis{font:11px system-ui,sans-serif;fill:var(--muted)}
svg .baseline{stroke:var(--rule);stroke-width:1}
svg .segment{fill:#2f5d8a}svg .segment.unreceipted{fill:#b7c3cf}svg .segment.failed{fill:var(--bad)}
svg .failed-label{font:600 11px system-ui,sans-serif;fill:var(--bad)}
svg .receipt{fill:var(--ok)}svg .lag{stroke:#9aa4ae;stroke-width:.8}
svg .gap{fill:#f3e3bf;stroke:var(--warn);stroke-dasharray:3 2}svg .gap-label{font:11px system-ui,sans-serif;fill:var(--warn)}
svg .cutoff{stroke:var(--bad);stroke-width:2;stroke-dasharray:5 3}svg .cutoff-label{font:600 11px system-ui,sans-serif;fill:var(--bad)}
svg .tsa-bound{stroke:#2d5fa8;stroke-width:2;stroke-dasharray:2 2}svg .tsa-label{font:600 11px system-ui,sans-serif;fill:#2d5fa8}
ol.custody{padding-left:22px}ol.custody li{margin:4px 0}.when{font:13px ui-monospace,monospace;color:var(--muted)}.what{font-weight:600}
footer{margin-top:32px;border-top:1px solid var(--rule);font-size:13px;color:var(--muted)}
@media print{body{padding:0;max-width:none}section{break-inside:avoid-page}.grid{break-inside:auto}}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>a&b</script>\"'"),
            "&lt;script&gt;a&amp;b&lt;/script&gt;&quot;&#39;"
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_000_000 + 1_500), "2000-02-29 00:00:00.001 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59.999 UTC");
    }
}
