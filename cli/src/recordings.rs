//! `custody recordings`.

use std::path::Path;

use custody_vault::store::State;

use crate::cli::RecordingsArgs;
use crate::common::{open_vault, print, CliError};

/// UTC time of `us` µs since the epoch, to the second.
pub fn utc(us: i64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm), no time-zone data.
    let secs = us.div_euclid(1_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Bytes in a human unit.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

pub fn run(vault_dir: &Path, args: &RecordingsArgs) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let listings = vault.listings()?;
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&listings).unwrap_or_default()));
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
    for l in &listings {
        let s = &l.summary;
        let state = match l.state {
            State::Recording => "recording",
            State::Complete => "complete",
            State::CutOff => "cut off",
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
            if s.imported { "  (imported)" } else { "" },
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
