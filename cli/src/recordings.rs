//! `custody recordings`.

use std::path::Path;

use custody_format::ids::RecordingId;
use custody_format::record::Record;
use custody_vault::store::{State, Vault};

use crate::cli::RecordingsArgs;
use crate::common::{open_vault, print, CliError};

pub use custody_format::time::utc_seconds as utc;

/// Bytes in a human unit.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// For an import whose end record says its file was damaged, "imported up to 0:06 of 0:12:
/// the rest of the file is damaged" (the verifier's words, from the end record itself).
pub fn import_damage(
    vault: &Vault,
    id: &str,
    imported: bool,
    ended: Option<&str>,
) -> Option<String> {
    if !imported || ended != Some("error") {
        return None;
    }
    let id = RecordingId::parse(id).ok()?;
    let (records, _) = vault.records_from(&id, 0).ok()?;
    records.iter().rev().find_map(|r| match r.record() {
        Record::End(e) => custody_verifier::imported::sentence(true, e),
        _ => None,
    })
}

pub fn run(vault_dir: &Path, args: &RecordingsArgs) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let listings = vault.listings()?;
    let damage: Vec<Option<String>> = listings
        .iter()
        .map(|l| {
            let s = &l.summary;
            import_damage(&vault, &s.id, s.imported, s.ended.as_deref())
        })
        .collect();
    if args.json {
        let mut out = serde_json::to_value(&listings).unwrap_or_default();
        if let Some(items) = out.as_array_mut() {
            for (item, d) in items.iter_mut().zip(&damage) {
                if let (Some(o), Some(d)) = (item.as_object_mut(), d) {
                    o.insert("import_damage".into(), d.clone().into());
                }
            }
        }
        print(&format!("{}\n", serde_json::to_string_pretty(&out).unwrap_or_default()));
        return Ok(());
    }
    if listings.is_empty() {
        print(&format!("No recordings in {}.\n", vault_dir.display()));
        return Ok(());
    }
    let mut out = format!(
        "{:<32}  {:<20}  {:>9}  {:>8}  {:>10}  {:<10}  {}\n",
        "RECORDING", "STARTED (device)", "DURATION", "SEGMENTS", "SIZE", "STATE", "UPLOAD"
    );
    for (l, damage) in listings.iter().zip(&damage) {
        let s = &l.summary;
        let state = match l.state {
            State::Recording => "recording",
            State::Complete if damage.is_some() => "partial",
            State::Complete => "complete",
            State::CutOff => "cut off",
            State::Damaged => "DAMAGED",
        };
        let upload = if l.pending_upload == 0 {
            "uploaded".to_string()
        } else {
            format!("{} pending", l.pending_upload)
        };
        out.push_str(&format!(
            "{:<32}  {:<20}  {:>8.1}s  {:>8}  {:>10}  {:<10}  {upload}{}\n",
            s.id,
            utc(s.started_at_us),
            s.media_duration_us as f64 / 1e6,
            s.segments,
            size(s.ciphertext_bytes),
            state,
            match (s.imported, damage) {
                (true, Some(d)) => format!("  ({d})"),
                (true, None) => "  (imported)".into(),
                _ => String::new(),
            },
        ));
    }
    print(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::utc(1_714_564_800_000_000), "2024-05-01 12:00:00Z");
        assert_eq!(super::utc(951_782_400_000_000), "2000-02-29 00:00:00Z");
    }
}
