//! What a user sees when something is wrong: the exact message and exit code of the CLI's
//! error paths, checked as snapshots (paths and ports normalised), against a real server on
//! loopback where one is involved.

mod common;

use std::process::Output;

use common::Env;

/// `custody serve` on a kernel-chosen loopback port, with its data beside the vault.
fn serve(env: &Env) -> common::Served {
    common::serve(env, &env.dir.path().join("server"), "127.0.0.1:0")
}

/// stderr with the temporary directory and any port number replaced by placeholders.
fn normalised(env: &Env, out: &Output) -> String {
    let text =
        String::from_utf8_lossy(&out.stderr).replace(env.dir.path().to_str().unwrap(), "$TMP");
    let mut s = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("127.0.0.1:") {
        s.push_str(&rest[..i + "127.0.0.1:".len()]);
        rest = rest[i + "127.0.0.1:".len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        s.push_str("$PORT");
    }
    s.push_str(rest);
    s
}

#[track_caller]
fn snapshot(env: &Env, out: &Output, code: i32, expected: &str) {
    assert_eq!(normalised(env, out), expected, "stdout: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(code), "{}", normalised(env, out));
}

const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn a_token_that_is_not_one_is_refused_before_anything_is_sent() {
    let env = Env::new();
    let out = env.run(&["enroll", "https://127.0.0.1:9", "3f9c-not-a-token"]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: `3f9c-not-a-token` is not an enrollment token: a token is 64 hex digits\n\
         custody: hint: copy the whole token the legal team's `custody admin enroll-token` printed\n",
    );
}

#[test]
fn an_unreachable_server_says_so_and_what_to_check() {
    let env = Env::new();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = env.run(&["enroll", &format!("https://127.0.0.1:{port}"), ZEROS]);
    snapshot(
        &env,
        &out,
        1,
        "custody: error: could not reach the server: error sending request for url \
         (https://127.0.0.1:$PORT/v1/enroll): client error (Connect): tcp connect error: \
         Connection refused (os error 111)\n\
         custody: hint: check the URL and that the server is running\n",
    );
}

#[test]
fn a_wrong_token_is_refused_by_the_server_and_the_vault_stays_unenrolled() {
    let env = Env::new();
    let server = serve(&env);
    let url = server.url.as_str();
    let out = env.run(&["enroll", url, ZEROS]);
    let text = normalised(&env, &out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("custody: error: the server refused "), "{text}");
    assert!(text.contains("enroll.token"), "the refusal names its code: {text}");
    assert!(
        text.ends_with(
            "custody: hint: ask the legal team for a new token (`custody admin enroll-token`)\n"
        ),
        "{text}"
    );
    // Nothing was enrolled: uploading says so and what to do.
    let out = env.run(&["upload"]);
    snapshot(
        &env,
        &out,
        1,
        "custody: error: this vault is not enrolled with a server; run `custody enroll URL TOKEN` first\n\
         custody: hint: ask the legal team for an enrollment token\n",
    );
}

#[test]
fn a_bad_bundle_path_says_what_a_bundle_is() {
    let env = Env::new();
    let missing = env.dir.path().join("no-such-bundle");
    let out = env.run(&["verify", missing.to_str().unwrap()]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: $TMP/no-such-bundle: No such file or directory (os error 2)\n\
         custody: hint: give a bundle directory or its .tar file\n",
    );

    let not_tar = env.dir.path().join("notes.txt");
    std::fs::write(&not_tar, "not a bundle").unwrap();
    let out = env.run(&["verify", not_tar.to_str().unwrap()]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: $TMP/notes.txt is not a readable bundle archive: it ends without the \
         two empty blocks that close an archive\n\
         custody: hint: give a bundle directory or its .tar file\n",
    );

    let empty = env.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = env.run(&["verify", empty.to_str().unwrap()]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: this is not a custody bundle (it holds no `BUNDLE`, `MANIFEST.sha256` or \
         `recording/records.bin`)\n",
    );
}

#[test]
fn a_lawyer_who_has_not_logged_in_is_told_how() {
    let env = Env::new();
    let out = env.run(&["fetch", "0123456789abcdef0123456789abcdef", "-o", "bundle"]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: not logged in to a legal-team server\n\
         custody: hint: run `custody login URL --token TOKEN` with the token an admin gave you\n",
    );
    let out = env.run(&["fetch", "4e1a", "-o", "bundle"]);
    snapshot(
        &env,
        &out,
        2,
        "custody: error: \"4e1a\" is not a recording id (32 lower-case hex digits)\n\
         custody: hint: `custody recordings --server` lists them\n",
    );
}

#[test]
fn a_wrong_member_token_is_refused_and_nothing_is_saved() {
    let env = Env::new();
    let server = serve(&env);
    let url = server.url.as_str();
    let out = env.run(&["login", url, "--token", ZEROS]);
    let text = normalised(&env, &out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("auth.token"), "the refusal names its code: {text}");
    let out = env.run(&["recordings", "--server"]);
    assert_eq!(out.status.code(), Some(2), "{}", normalised(&env, &out));
    assert!(normalised(&env, &out).contains("not logged in"));
}
