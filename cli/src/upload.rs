//! `custody upload`: send everything waiting in the outbox, then exit.

use std::path::Path;
use std::time::Duration;

use custody_client::{Options, Uploader};

use crate::cli::UploadArgs;
use crate::common::{device_key, open_vault, print, CliError};
use crate::enroll::{runtime, upload_error};

pub fn run(vault_dir: &Path, args: &UploadArgs) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let key = device_key(vault_dir)?;
    let uploader = Uploader::new(&vault, key, Options::default()).map_err(upload_error)?;
    let f = runtime()?
        .block_on(uploader.flush(Duration::from_secs(args.timeout)))
        .map_err(upload_error)?;
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
        print(&format!("{} records receipted; {} still waiting.\n", f.receipted, f.pending));
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
        let err =
            CliError::failed(format!("{} records are still waiting for a receipt", f.pending));
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
