//! `custody upload`: send everything waiting in the outbox, then exit.

use std::path::Path;
use std::time::Duration;

use custody_client::{Options, Uploader};

use crate::cli::UploadArgs;
use crate::common::{device_key, open_vault, print, CliError};
use crate::enroll::{runtime, upload_error};
use crate::status::{counted, waiting_phrase};
use custody_format::time::now_us;

pub fn run(vault_dir: &Path, args: &UploadArgs) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let key = device_key(vault_dir)?;
    let uploader = Uploader::new(&vault, key, Options::default()).map_err(upload_error)?;
    // Segments receipted and waiting, before and after, so that what is said counts
    // segments, as a user thinks of them, apart from header and end records.
    let segments = |receipted: bool| {
        custody_vault::status::status(&vault, now_us()).map_or(0, |s| {
            s.recordings
                .iter()
                .map(|r| {
                    if receipted {
                        r.segments_receipted
                    } else {
                        r.segments.saturating_sub(r.segments_receipted)
                    }
                })
                .sum::<u64>()
        })
    };
    let before = segments(true);
    let f = runtime()?
        .block_on(uploader.flush(Duration::from_secs(args.timeout)))
        .map_err(upload_error)?;
    let receipted_segments = segments(true).saturating_sub(before).min(f.receipted);
    let waiting_segments = segments(false).min(f.pending);
    if args.json {
        let refused = refused_json(&f.refused);
        print(&format!(
            "{}\n",
            serde_json::json!({
                "receipted": f.receipted, "pending": f.pending, "refused": refused,
                "last_error": f.last_error, "log_inconsistent": f.log_inconsistent,
            })
        ));
    } else {
        print(&format!(
            "{} receipted; {} for a receipt.\n",
            counted(receipted_segments, f.receipted),
            waiting_phrase(waiting_segments, f.pending)
        ));
        for (id, seq, why) in &f.refused {
            print(&format!("refused: recording {id} position {seq}: {why}\n"));
        }
    }
    if let Some(why) = f.log_inconsistent {
        return Err(CliError::failed(format!("{}: {why}", custody_client::log_check::CODE)).hint(
            "the server's custody log does not extend the one this device saw before; nothing more is sent to it. \
             Keep this device's vault as it is and tell the legal team (`custody status` shows the evidence)",
        ));
    }
    if f.pending > 0 {
        let err = CliError::failed(format!(
            "{} for a receipt",
            waiting_phrase(waiting_segments, f.pending)
        ));
        return Err(match f.last_error {
            Some(why) => err.hint(format!("last failure: {why}; run `custody upload` again later")),
            None => err.hint("run `custody upload` again later"),
        });
    }
    Ok(())
}

/// Records the server refused for good, as the JSON events list them.
pub(crate) fn refused_json(
    refused: &[(custody_format::ids::RecordingId, u64, String)],
) -> Vec<serde_json::Value> {
    refused
        .iter()
        .map(|(id, seq, why)| {
            serde_json::json!({ "recording": id.to_string(), "seq": seq, "refusal": why })
        })
        .collect()
}
