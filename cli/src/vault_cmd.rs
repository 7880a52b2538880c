//! `custody vault check | rebuild-index | recipients`.

use std::path::Path;

use custody_format::chain::verify_chain;
use custody_format::record::Record;
use custody_format::report::{CheckState, Verdict};
use custody_vault::keys;
use custody_vault::recorder::hash_file;

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
    let mut problems = 0usize;
    let mut results = Vec::new();
    for id in vault.recording_ids()? {
        let records = vault.records(&id)?;
        let bytes: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
        let report = verify_chain(&bytes, None);
        let mut findings: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.state == CheckState::Failure)
            .map(|c| format!("{}: {}", c.code, c.message))
            .collect();
        let mut listed = std::collections::BTreeSet::new();
        for r in &records {
            if let Record::Segment(s) = r.record() {
                let path = vault.segment_path(&id, s.seq);
                listed.insert(path.clone());
                match hash_file(&path) {
                    Ok(f) if f.len == s.ciphertext_len && f.sha256 == s.ciphertext_sha256 => {}
                    Ok(_) => findings.push(format!(
                        "segment {}: the sealed file does not match its record",
                        s.seq
                    )),
                    Err(e) => findings.push(format!("segment {}: {e}", s.seq)),
                }
            }
        }
        let mut extra = Vec::new();
        if let Ok(entries) = std::fs::read_dir(vault.recording_dir(&id).join("segments")) {
            for e in entries.flatten() {
                if !listed.contains(&e.path()) {
                    extra.push(e.path().display().to_string());
                }
            }
        }
        let verdict = Verdict::from_checks(&report.checks, report.cut_off);
        let state = match (&verdict, vault.is_recording(&id)) {
            (_, true) => "recording".to_string(),
            (Verdict::IntactComplete, _) => "complete".to_string(),
            (Verdict::IntactCutOff { last_seq, .. }, _) => {
                format!("cut off after record {last_seq}")
            }
            (Verdict::Tampered, _) => "damaged".to_string(),
            (Verdict::CouldNotCheck, _) => "unreadable".to_string(),
        };
        problems += findings.len();
        results.push(serde_json::json!({
            "recording": id.to_string(),
            "records": records.len(),
            "state": state,
            "problems": findings,
            "files_without_record": extra,
        }));
        if !json {
            let status = if findings.is_empty() { "ok" } else { "PROBLEMS" };
            print(&format!("{id}  {status}  {} records, {state}\n", records.len()));
            for f in &findings {
                print(&format!("    {f}\n"));
            }
            for x in &extra {
                print(&format!("    kept, not part of the chain: {x}\n"));
            }
        }
    }
    if json {
        print(&format!("{}\n", serde_json::json!({ "recordings": results, "problems": problems })));
    } else {
        print(&format!("{} recordings checked, {problems} problems.\n", results.len()));
    }
    if problems > 0 {
        return Err(CliError::failed(format!("the vault check found {problems} problems")));
    }
    Ok(())
}
