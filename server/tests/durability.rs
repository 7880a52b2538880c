//! The server killed (SIGKILL) at arbitrary moments during uploads, and restarted: every
//! receipt handed out before a kill is honoured afterwards (the same bytes for the same
//! record), every record ends up stored and logged exactly once.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use custody_format::ids::PublicKey;

struct Proc {
    child: Child,
    base: String,
    key: PublicKey,
}

fn spawn_server(dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody-server"))
        .args(["--data", dir.to_str().unwrap(), "--insecure-http"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.first(), Some(&"listening"), "{line}");
    Proc { child, base: format!("http://{}", parts[1]), key: PublicKey::parse(parts[2]).unwrap() }
}

/// A small deterministic generator for the kill moments (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_survive_sigkill_and_every_record_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = client();
    let d = Device::new("device");
    let token = custody_server::issue_token(dir.path(), "obs", Duration::from_secs(600)).unwrap();
    let chain = Arc::new(Chain::new(1, &d, 80, true, b"a"));
    let total = chain.records.len() as u64;
    let receipts: Arc<Mutex<BTreeMap<u64, Vec<u8>>>> = Arc::default();

    let mut p = spawn_server(dir.path());
    assert_eq!(d.enroll(&c, &p.base, &token).await.status, 200);
    let mut rng = 0x5eed_u64;
    let rounds = 20;
    for round in 0..rounds {
        // Upload from the first unreceipted record on, until the kill breaks it.
        let (base, key, c2, d2, chain2, rec2) =
            (p.base.clone(), p.key, c.clone(), d.clone(), chain.clone(), receipts.clone());
        let uploader = tokio::spawn(async move {
            let start = rec2.lock().unwrap().len() as u64;
            for seq in start..total {
                let path = format!("/v1/recordings/{}/records/{seq}", chain2.id);
                let body = chain2.body(seq as usize);
                let h = d2.headers(&d2.key, &key, "PUT", &path, now_us(), fresh_nonce(), &body);
                let mut req = c2.put(format!("{base}{path}")).body(body);
                for (k, v) in h {
                    req = req.header(k, v);
                }
                let Ok(r) = req.send().await else { return };
                if r.status() != 200 {
                    return;
                }
                let Ok(b) = r.bytes().await else { return };
                rec2.lock().unwrap().insert(seq, b.to_vec());
            }
        });
        let delay = next(&mut rng) % 60;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        p.child.kill().unwrap(); // SIGKILL
        p.child.wait().unwrap();
        uploader.await.unwrap();
        eprintln!(
            "round {round}: killed after {delay} ms, {} receipted",
            receipts.lock().unwrap().len()
        );
        p = spawn_server(dir.path());
    }

    // Finish the upload: every record, including those receipted before a kill.
    for seq in 0..total {
        let s = d.put(&c, &p.base, &p.key, chain.id, seq, chain.body(seq as usize)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
        let mut held = receipts.lock().unwrap();
        match held.get(&seq) {
            Some(before) => assert_eq!(&s.body, before, "receipt for {seq} not honoured"),
            None => {
                held.insert(seq, s.body);
            }
        }
    }
    let state = d.state(&c, &p.base, &p.key, chain.id).await;
    assert_eq!(state["complete"], true);
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    // Exactly once: one enrollment plus one log entry per record, one file per record.
    let (server, _) =
        custody_server::Server::open(custody_server::Config::new(dir.path())).unwrap();
    assert_eq!(server.log_len(), 1 + total);
    for seq in 0..total {
        assert_eq!(
            server.storage().record(&chain.id, seq).unwrap().unwrap(),
            chain.records[seq as usize].to_bytes()
        );
    }
}
