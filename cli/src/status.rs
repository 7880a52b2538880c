//! `custody status`: what has reached the legal team's server and what still waits.

use std::path::Path;

use custody_vault::status::{status, Status};
use custody_vault::store::State;

use crate::cli::StatusArgs;
use crate::common::{open_vault, print, CliError};
use crate::enroll::upload_error;
use crate::recordings::utc;

use custody_format::time::now_us;

/// Records counted in the words a user knows: "5 segments", "5 segments and 2 header/end
/// records". Every segment is a record too, but a recording's header and end record are
/// not segments, so the two are counted apart.
pub fn counted(segments: u64, records: u64) -> String {
    let others = records.saturating_sub(segments);
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let segs = plural(segments, "segment", "segments");
    let rest = plural(others, "header/end record", "header/end records");
    match (segments, others) {
        (_, 0) => segs,
        (0, _) => rest,
        _ => format!("{segs} and {rest}"),
    }
}

/// What waits for a receipt: "5 segments wait", "1 segment waits", "5 segments and 2
/// header/end records wait".
pub fn waiting_phrase(segments: u64, records: u64) -> String {
    let one = records.max(segments) == 1;
    format!("{} {}", counted(segments, records), if one { "waits" } else { "wait" })
}

/// Segments (not header or end records) of `s` that wait for a receipt.
fn segments_waiting(s: &Status) -> u64 {
    s.recordings.iter().map(|r| r.segments.saturating_sub(r.segments_receipted)).sum()
}

fn lag(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match s {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Imports whose end record says their file was damaged, by recording id.
type Damage = std::collections::BTreeMap<String, String>;

fn text(s: &Status, damage: &Damage) -> String {
    let mut out = String::new();
    match &s.enrollment {
        Some(e) => {
            out.push_str(&format!("Server:    {} (enrolled as \"{}\")\n", e.url, e.label));
            out.push_str(&format!("           key fingerprint {}\n", e.server_fingerprint));
            let tls = custody_client::tls::enrollment_pin(
                &e.url,
                e.tls_pin.as_deref(),
                e.tls_sha256.as_deref(),
            );
            out.push_str(&format!(
                "           TLS {}\n",
                match tls {
                    Ok(Some(pin)) => pin.describe(),
                    Ok(None) => "none (plain HTTP)".to_string(),
                    Err(why) => why,
                }
            ));
        }
        None => out.push_str(
            "Server:    not enrolled: recordings stay on this device (`custody enroll URL TOKEN`)\n",
        ),
    }
    match &s.log_head {
        Some(h) => out.push_str(&format!(
            "Log head:  {} entries, root {} (from a {}, held since {})\n",
            h.tree_size,
            h.root_hash,
            h.source,
            utc(h.stored_at_us)
        )),
        None => out.push_str("Log head:  none held yet\n"),
    }
    if let Some(i) = &s.log_inconsistent {
        out.push_str(&format!(
            "\nLOG INCONSISTENT ({}), detected {}: {}\n  held {} entries, root {}; offered {} entries, root {}.\n  \
             Nothing more is sent to this server. Keep this vault as it is and tell the legal team.\n",
            i.code,
            utc(i.detected_at_us),
            i.message,
            i.held.tree_size,
            i.held.root_hash,
            i.offered.tree_size,
            i.offered.root_hash
        ));
    }
    if s.recordings.is_empty() {
        out.push_str("\nNo recordings.\n");
        return out;
    }
    out.push_str(&format!(
        "\n{:<32}  {:<9}  {:>8}  {:>9}  {:>7}  {:>8}  {}\n",
        "RECORDING", "STATE", "SEGMENTS", "RECEIPTED", "WAITING", "LAG", "LAST RECEIPT (server)"
    ));
    for r in &s.recordings {
        let state = match r.state {
            State::Recording => "recording",
            State::Complete if damage.contains_key(&r.id) => "partial",
            State::Complete => "complete",
            State::CutOff => "cut off",
            State::Damaged => "DAMAGED",
        };
        out.push_str(&format!(
            "{:<32}  {:<9}  {:>8}  {:>9}  {:>7}  {:>8}  {}\n",
            r.id,
            state,
            r.segments,
            r.segments_receipted,
            r.waiting,
            r.oldest_waiting_age_us.map(lag).unwrap_or_else(|| "-".into()),
            r.last_receipt_at_us.map(utc).unwrap_or_else(|| "-".into()),
        ));
    }
    out.push('\n');
    if s.waiting > 0 {
        out.push_str(&format!(
            "{} for a receipt (`custody upload` sends them).\n",
            waiting_phrase(segments_waiting(s), s.waiting)
        ));
    }
    if s.segment_files_without_record > 0 {
        out.push_str(&format!(
            "{} sealed segment files have no record in their journal and cannot be receipted \
             (`custody vault check` lists them).\n",
            s.segment_files_without_record
        ));
    }
    for (id, d) in damage {
        out.push_str(&format!("Recording {id}: {d}.\n"));
    }
    for r in s.recordings.iter().filter(|r| r.damaged) {
        out.push_str(&format!(
            "Recording {}: its journal was damaged; {} records are lost, the intact ones are kept \
             (`custody vault check` says which).\n",
            r.id, r.records_lost
        ));
    }
    if all_receipted(s) {
        out.push_str("Every record is receipted by the server.\n");
    }
    out
}

/// Whether every record and every sealed segment file in the vault is receipted: nothing
/// waits, no segment file lacks a record, and no journal lost records to damage.
fn all_receipted(s: &Status) -> bool {
    s.waiting == 0 && s.segment_files_without_record == 0 && s.damaged == 0
}

/// Exit codes: 0 every record receipted; 1 something waits, cannot be receipted (a segment
/// file without a record, a damaged journal), or the server's log failed a consistency
/// check; 2 the status could not be read.
pub fn run(vault_dir: &Path, args: &StatusArgs) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let s = status(&vault, now_us()).map_err(|e| {
        let mut e = upload_error(e.into());
        e.code = 2;
        e
    })?;
    let listings = vault.listings().unwrap_or_default();
    let damage: Damage = listings
        .iter()
        .filter_map(|l| {
            let m = &l.summary;
            let d =
                crate::recordings::import_damage(&vault, &m.id, m.imported, m.ended.as_deref())?;
            Some((m.id.clone(), d))
        })
        .collect();
    if args.json {
        let mut out = serde_json::to_value(&s).unwrap_or_default();
        if let Some(items) = out.get_mut("recordings").and_then(|r| r.as_array_mut()) {
            for item in items {
                let id = item.get("id").and_then(|i| i.as_str()).unwrap_or_default().to_string();
                if let (Some(o), Some(d)) = (item.as_object_mut(), damage.get(&id)) {
                    o.insert("import_damage".into(), d.clone().into());
                }
            }
        }
        print(&format!("{}\n", serde_json::to_string_pretty(&out).unwrap_or_default()));
    } else {
        print(&text(&s, &damage));
    }
    if let Some(i) = &s.log_inconsistent {
        return Err(CliError::failed(format!("{}: {}", i.code, i.message)));
    }
    if s.waiting > 0 {
        return Err(CliError::failed(format!(
            "{} for a receipt",
            waiting_phrase(segments_waiting(&s), s.waiting)
        ))
        .hint("run `custody upload` when the server is reachable"));
    }
    if !all_receipted(&s) {
        return Err(CliError::failed(format!(
            "{} recordings have damaged journals and {} segment files cannot be receipted",
            s.damaged, s.segment_files_without_record
        ))
        .hint("`custody vault check` says what was lost and what was kept"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lag_is_short_and_readable() {
        assert_eq!(super::lag(1_500_000), "1s");
        assert_eq!(super::lag(61_000_000), "1m01s");
        assert_eq!(super::lag(3_720_000_000), "1h02m");
        assert_eq!(super::lag(-5), "0s");
    }

    #[test]
    fn what_waits_is_said_in_segments() {
        use super::waiting_phrase as says;
        assert_eq!(says(5, 5), "5 segments wait");
        assert_eq!(says(1, 1), "1 segment waits");
        assert_eq!(says(5, 7), "5 segments and 2 header/end records wait");
        assert_eq!(says(1, 2), "1 segment and 1 header/end record wait");
        assert_eq!(says(0, 1), "1 header/end record waits");
        assert_eq!(says(0, 0), "0 segments wait");
    }

    #[test]
    fn every_record_is_receipted_is_said_only_when_nothing_else_waits() {
        use custody_vault::status::{RecordingStatus, Status};
        let s = |waiting: u64, without: u64, damaged: u64| Status {
            enrollment: None,
            log_head: None,
            log_inconsistent: None,
            recordings: vec![RecordingStatus {
                id: "00".repeat(16),
                state: custody_vault::store::State::Complete,
                started_at_us: 0,
                records: 9,
                segments: 7,
                records_receipted: 9 - waiting,
                segments_receipted: 7,
                waiting,
                oldest_waiting_seq: None,
                oldest_waiting_age_us: None,
                last_receipt_at_us: None,
                segment_files_without_record: without,
                damaged: damaged > 0,
                records_lost: damaged,
            }],
            waiting,
            segment_files_without_record: without,
            damaged,
        };
        let all = "Every record is receipted by the server.";
        assert!(super::text(&s(0, 0, 0), &Default::default()).contains(all));
        for (w, f, d) in [(1, 0, 0), (0, 2, 0), (0, 0, 1)] {
            assert!(!super::all_receipted(&s(w, f, d)), "{w} {f} {d}");
            let text = super::text(&s(w, f, d), &Default::default());
            assert!(!text.contains(all), "{text}");
        }
        assert!(super::text(&s(0, 2, 1), &Default::default())
            .contains("2 sealed segment files have no record"));
    }
}
