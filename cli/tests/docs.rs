//! Completions and man pages come from the same definitions as `--help`.

use std::process::Command;

fn custody(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_custody")).args(args).output().unwrap()
}

#[test]
fn completions_know_every_subcommand() {
    let help = String::from_utf8(custody(&["--help"]).stdout).unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = custody(&["completions", shell]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in ["record", "verify", "serve", "enroll", "upload"] {
            assert!(help.contains(sub), "--help does not list {sub}");
            assert!(script.contains(sub), "{shell} completions miss {sub}");
        }
    }
    let out = custody(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_carry_the_help_text_and_its_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = custody(&["man", "-o", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(dir.path().join("custody-record.1")).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "not roff: {}", &page[..80]);
    assert!(page.contains("Example"), "the record page lost its examples");
    let top = std::fs::read_to_string(dir.path().join("custody.1")).unwrap();
    assert!(top.contains("custody\\-verify(1)") || top.contains("custody-verify"), "{top}");
}

mod common;

#[test]
fn config_show_names_each_roles_file_and_no_secret() {
    let env = common::Env::new();
    let out = env.run(&["config", "show", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["observer"]["vault"].as_str(), env.vault.to_str());
    assert_eq!(v["observer"]["device_key"], "present, not passphrase-protected");
    assert!(v["observer"]["enrollment"].is_null());
    assert!(v["lawyer"]["file"].as_str().unwrap().ends_with("config/lawyer.json"), "{v}");
    assert!(v["lawyer"]["logged_in"].is_null());
    assert_eq!(v["observer"]["defaults"]["segment_seconds"], 2.0);
    // The device key itself never appears.
    let key = std::fs::read_to_string(env.vault.join("device.key")).unwrap();
    let secret = key.split_whitespace().last().unwrap();
    let text = env.run(&["config", "show"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("nobody yet (run `custody enroll URL TOKEN`)"), "{text}");
    assert!(!text.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret));
}
