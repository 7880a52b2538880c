//! `custody vault check | rebuild-index | recipients`.

use std::path::Path;

use custody_vault::keys;

use crate::cli::VaultCommand;
use crate::common::{open_vault, print, CliError};

pub fn run(vault_dir: &Path, cmd: &VaultCommand) -> Result<(), CliError> {
    match cmd {
        VaultCommand::Check { json } => check(vault_dir, *json),
        VaultCommand::RebuildIndex => {
            let vault = open_vault(vault_dir)?;
            let n = vault.rebuild_index()?;
            print(&format!("Index rebuilt from {n} recordings.\n"));
            Ok(())
        }
        VaultCommand::Recipients { add, remove } => {
            let vault = open_vault(vault_dir)?;
            let mut config = vault.config()?;
            if !add.is_empty() || !remove.is_empty() {
                keys::parse_recipients(add)?;
                config.recipients.extend(add.iter().map(|r| r.trim().to_string()));
                config.recipients.retain(|r| !remove.contains(r));
                config.recipients.sort();
                config.recipients.dedup();
                vault.set_config(&config)?;
            }
            if config.recipients.is_empty() {
                print("No recipients configured; give --recipient when recording.\n");
            }
            for r in &config.recipients {
                print(&format!("{r}\n"));
            }
            Ok(())
        }
    }
}

fn check(vault_dir: &Path, json: bool) -> Result<(), CliError> {
    let vault = open_vault(vault_dir)?;
    let checks = custody_vault::check::check(&vault)?;
    let problems: usize = checks.iter().map(|c| c.problems.len()).sum();
    if json {
        let results: Vec<_> = checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "recording": c.id.to_string(),
                    "records": c.records,
                    "state": c.condition.to_string(),
                    "problems": c.problems,
                    "files_without_record": c
                        .files_without_record
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>(),
                    "damage": c.damage.iter().map(|d| serde_json::json!({
                        "file": d.file.display().to_string(),
                        "file_len": d.file_len,
                        "ranges": d.ranges.iter().map(|r| [r.offset, r.end()]).collect::<Vec<_>>(),
                        "lost": d.lost,
                        "lost_after_last": d.lost_after_last,
                        "kept": d.kept,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        print(&format!("{}\n", serde_json::json!({ "recordings": results, "problems": problems })));
    } else {
        for c in &checks {
            let status = if c.problems.is_empty() { "ok" } else { "PROBLEMS" };
            print(&format!("{}  {status}  {} records, {}\n", c.id, c.records, c.condition));
            for f in &c.problems {
                print(&format!("    {f}\n"));
            }
            for x in &c.files_without_record {
                print(&format!("    kept, not part of the chain: {}\n", x.display()));
            }
        }
        print(&format!("{} recordings checked, {problems} problems.\n", checks.len()));
    }
    if problems > 0 {
        return Err(CliError::failed(format!("the vault check found {problems} problems")));
    }
    Ok(())
}
