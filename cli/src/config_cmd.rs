//! `custody config show`: where each role's configuration lives, what it holds and the
//! defaults that apply, without changing anything (it opens no vault and no server).

use std::path::{Path, PathBuf};

use custody_format::ids::PublicKey;
use serde_json::{json, Value};

use crate::cli::ConfigShowArgs;
use crate::common::{print, CliError};

fn read_json(path: &Path) -> Option<Value> {
    std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

fn fingerprint(key: Option<&str>) -> Value {
    key.and_then(|k| PublicKey::parse(k).ok())
        .map_or(Value::Null, |k| json!(k.fingerprint().to_string()))
}

fn observer(vault: &Path, source: &str) -> Value {
    let key = vault.join(custody_vault::keys::DEVICE_KEY_FILE);
    let key_state = match std::fs::read(&key) {
        Ok(b) if b.starts_with(b"age-encryption.org/") => "present, passphrase-protected",
        Ok(_) => "present, not passphrase-protected",
        Err(_) => "missing (run `custody keygen`)",
    };
    let config = read_json(&vault.join("config.json"));
    let enrollment = read_json(&vault.join("enrollment.json"));
    json!({
        "file": vault.join("config.json"),
        "vault": vault,
        "vault_from": source,
        "device_key": key_state,
        "recipients": config.as_ref().map_or(json!([]), |c| c["recipients"].clone()),
        "enrollment": enrollment.as_ref().map(|e| json!({
            "file": vault.join("enrollment.json"),
            "server": e["url"],
            "label": e["label"],
            "server_fingerprint": fingerprint(e["server_key"].as_str()),
            "tls_sha256": e["tls_sha256"],
            "tls_pin": e["tls_pin"],
            "recipients": e["recipients"],
        })),
        "defaults": {
            "segment_seconds": 2.0,
            "max_segment_seconds": 10.0,
            "upload": "live while recording, when enrolled (--no-upload to keep it local)",
            "upload_wait_seconds": 5.0,
            "self_recipient": false,
        },
    })
}

fn lawyer() -> Value {
    let path = crate::lawyer::config_path().ok();
    let saved = path.as_deref().and_then(read_json);
    json!({
        "file": path,
        "logged_in": saved.as_ref().map(|c| json!({
            "server": c["url"],
            "member": c["name"],
            "role": c["role"],
            "trusted_server_fingerprint": fingerprint(c["server_key"].as_str()),
            "tls_sha256": c["tls_sha256"],
            "tls_pin": c["tls_pin"],
        })),
        "defaults": {
            "trust": "the server key saved by `custody login`, unless --trust is given",
        },
    })
}

fn legal_team(data: Option<&PathBuf>) -> Value {
    let server = data.map(|d| {
        let key = d.join("server.pub");
        let recipients = std::fs::read_to_string(d.join("recipients.txt")).unwrap_or_default();
        let count = |sub: &str| std::fs::read_dir(d.join(sub)).map_or(0, |r| r.flatten().count());
        json!({
            "data": d,
            "server_fingerprint": fingerprint(std::fs::read_to_string(&key).ok().as_deref().map(str::trim)),
            "recipients": recipients.lines().map(str::trim).filter(|l| l.starts_with("age1")).collect::<Vec<_>>(),
            "members": count("members"),
            "enrollment_tokens_issued": count("tokens"),
        })
    });
    json!({
        "server": server,
        "defaults": {
            "listen": "127.0.0.1:8443",
            "tls": "on: a self-signed certificate made on first start (plain HTTP only with --insecure-http, on loopback)",
            "enrollment_token_hours": 24,
        },
    })
}

pub fn show(
    vault_flag: Option<&Path>,
    vault: &Path,
    args: &ConfigShowArgs,
) -> Result<(), CliError> {
    let source = if vault_flag.is_some() {
        if std::env::var_os("CUSTODY_VAULT").is_some() {
            "--vault or CUSTODY_VAULT"
        } else {
            "--vault"
        }
    } else {
        "default ($XDG_DATA_HOME/custody/vault or ~/.local/share/custody/vault)"
    };
    let all = json!({
        "observer": observer(vault, source),
        "lawyer": lawyer(),
        "legal_team": legal_team(args.data.as_ref()),
    });
    if args.json {
        print(&format!("{}\n", serde_json::to_string_pretty(&all).unwrap_or_default()));
        return Ok(());
    }
    let s = |v: &Value| match v {
        Value::String(t) => t.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let o = &all["observer"];
    let mut out = format!(
        "Observer (this device)\n  vault            {} ({})\n  settings file    {}\n  device key       {}\n  recipients       {}\n",
        s(&o["vault"]),
        s(&o["vault_from"]),
        s(&o["file"]),
        s(&o["device_key"]),
        o["recipients"].as_array().filter(|a| !a.is_empty()).map_or("none set here".into(), |a| a.iter().map(s).collect::<Vec<_>>().join(", ")),
    );
    match o["enrollment"].as_object() {
        Some(e) => out.push_str(&format!(
            "  enrolled with    {} as \"{}\" (server fingerprint {}; {})\n  recordings go to {}\n",
            s(&e["server"]),
            s(&e["label"]),
            s(&e["server_fingerprint"]),
            s(&e["file"]),
            e["recipients"].as_array().map_or("-".into(), |a| a
                .iter()
                .map(s)
                .collect::<Vec<_>>()
                .join(", ")),
        )),
        None => out.push_str("  enrolled with    nobody yet (run `custody enroll URL TOKEN`)\n"),
    }
    out.push_str(
        "  defaults         2 s segments (--segment-seconds), at most 10 s without a keyframe;\n\
         \x20                  uploads live while recording when enrolled (--no-upload), then waits\n\
         \x20                  up to 5 s for receipts (--upload-wait); not a recipient of your own\n\
         \x20                  recordings (--self-recipient)\n\n",
    );
    let l = &all["lawyer"];
    out.push_str(&format!("Lawyer\n  settings file    {}\n", s(&l["file"])));
    match l["logged_in"].as_object() {
        Some(c) => out.push_str(&format!(
            "  logged in to     {} as {} ({})\n  trust anchor     server key {} (used by verify and export without --trust)\n\n",
            s(&c["server"]),
            s(&c["member"]),
            s(&c["role"]),
            s(&c["trusted_server_fingerprint"]),
        )),
        None => out.push_str("  logged in to     nobody yet (run `custody login URL --token TOKEN`)\n\n"),
    }
    let t = &all["legal_team"];
    out.push_str("Legal team (server)\n");
    match t["server"].as_object() {
        Some(d) => out.push_str(&format!(
            "  data directory   {}\n  server key       {}\n  case recipients  {}\n  members          {}\n  tokens issued    {}\n",
            s(&d["data"]),
            s(&d["server_fingerprint"]),
            d["recipients"].as_array().filter(|a| !a.is_empty()).map_or("none in recipients.txt".into(), |a| a.iter().map(s).collect::<Vec<_>>().join(", ")),
            s(&d["members"]),
            s(&d["enrollment_tokens_issued"]),
        )),
        None => out.push_str("  data directory   give --data DIR to show a server's\n"),
    }
    out.push_str(
        "  defaults         listens on 127.0.0.1:8443 (--listen) with TLS, a self-signed certificate\n\
         \x20                  made on first start; enrollment tokens last 24 h (--ttl-hours)\n",
    );
    print(&out);
    Ok(())
}
