//! `custody serve --database` and the admin commands on the database: one replica on a
//! real PostgreSQL (custody_testkit::pg), with its records in the data directory
//! (`--single-replica`), and the refusal of `--database` alone.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn database() -> String {
    custody_testkit::pg::fresh_database().unwrap()
}

/// `custody serve` on the database, once it says where it listens.
fn serve_on(env: &Env, data: &Path, url: &str) -> (Killed, String) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--recipient", &env.recipient, "--data"])
        .arg(data)
        .args(["--database", url, "--single-replica"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let first = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let listening = first.strip_prefix("Listening on ").unwrap_or_else(|| panic!("{first}"));
    (child, listening.to_string())
}

fn admin_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin()).arg("admin").args(args).output().unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

#[test]
fn database_without_store_is_refused_unless_single_replica() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--recipient", &env.recipient, "--data"])
        .arg(data.path())
        .args(["--database", "postgres://custody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database without --store"), "{err}");
    assert!(err.contains("--single-replica"), "the hint names the way out: {err}");
    assert!(!err.contains("127.0.0.1:1"), "the URL (which may hold a password) is not printed");
}

/// A device enrolls with a token that `admin enroll-token --database` issued into the
/// database, through a server whose data directory holds no token at all; a member added
/// with `admin member add --database` is refused a second time by name.
#[test]
fn admin_commands_issue_into_the_database_the_server_reads() {
    let env = Env::new();
    let data = tempfile::tempdir().unwrap();
    let url = database();
    let (_server, listening) = serve_on(&env, data.path(), &url);
    let d = data.path().to_str().unwrap();
    let token = admin_json(&[
        "enroll-token",
        "--data",
        d,
        "--database",
        &url,
        "--label",
        "phone-1",
        "--json",
    ]);
    let token = token["token"].as_str().unwrap();
    assert!(!data.path().join("tokens").exists(), "nothing was written to the data directory");
    ok(&env.run(&["enroll", &listening, token]));

    let member = ["member", "add", "--data", d, "--database", &url, "Ana Ruiz", "--role", "member"];
    let first = admin_json(&[&member[..], &["--json"]].concat());
    assert_eq!(first["token"].as_str().unwrap().len(), 64);
    let again = Command::new(bin()).arg("admin").args(member).output().unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("already a member named"), "{err}");
}
