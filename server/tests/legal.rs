//! The legal team's side over real HTTP on loopback: members and their tokens, listing,
//! evidence bundles that the offline verifier accepts (in both forms), resumed downloads,
//! refusals with their codes, rate-limited logins, revocation, and the log of every access.

mod common;

use std::path::Path;

use common::*;
use custody_format::log::{EntryType, LogEntry};
use custody_format::report::{code, Verdict};
use custody_server::Role;
use custody_verifier::{Options, Report, Source};

fn member(ts: &TestServer, name: &str, role: Role) -> String {
    custody_server::add_member(ts.dir.path(), name, role).unwrap()
}

async fn upload(
    ts: &TestServer,
    c: &reqwest::Client,
    d: &Device,
    chain: &Chain,
    seqs: std::ops::Range<usize>,
) {
    let key = ts.server.public_key();
    for seq in seqs {
        let s = d.put(c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn code(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)));
        v["error"]["code"].as_str().unwrap().to_string()
    }
    fn json(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_string()
    }
}

async fn get(c: &reqwest::Client, url: String, headers: &[(&str, String)]) -> Got {
    let mut req = c.get(url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn fetch(ts: &TestServer, c: &reqwest::Client, token: &str, chain: &Chain) -> Got {
    let g =
        get(c, format!("{}/v1/recordings/{}/bundle", ts.base, chain.id), &[bearer(token)]).await;
    assert_eq!(g.status, 200, "{}", String::from_utf8_lossy(&g.body));
    assert_eq!(g.header("content-length"), g.body.len().to_string());
    assert_eq!(g.header("content-type"), "application/x-tar");
    g
}

fn verify(path: &Path, trust: &custody_format::ids::PublicKey) -> Report {
    let source = custody_verifier::source::open(path).unwrap();
    custody_verifier::verify(
        source.as_ref(),
        &Options { trust: Some(*trust), ..Default::default() },
    )
    .unwrap()
}

fn unpack(tar: &Path, dir: &Path) {
    let t = custody_verifier::Tar::open(tar).unwrap();
    for path in t.files().keys() {
        let out = dir.join(path);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let mut r = t.open(path).unwrap();
        std::io::copy(&mut r, &mut std::fs::File::create(out).unwrap()).unwrap();
    }
}

fn log_entries(dir: &Path) -> Vec<LogEntry> {
    custody_durable::journal::read(&dir.join("log/entries.bin"))
        .unwrap()
        .payloads
        .iter()
        .map(|p| LogEntry::decode(p).unwrap())
        .collect()
}

fn assert_intact(r: &Report, complete: bool) {
    let failures: Vec<_> =
        r.checks.iter().filter(|c| c.state != custody_format::report::CheckState::Ok).collect();
    match (&r.verdict, complete) {
        (Verdict::IntactComplete, true) | (Verdict::IntactCutOff { .. }, false) => {}
        (v, _) => panic!("verdict {v:?}; checks not ok: {failures:#?}"),
    }
    assert!(matches!(r.trust, custody_verifier::Trust::Trusted { .. }), "{:?}", r.trust);
}

#[tokio::test]
async fn a_member_fetches_a_bundle_that_verifies_in_both_forms_with_its_own_access() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-3").await;
    let chain = Chain::new(1, &d, 4, true, b"a");
    upload(&ts, &c, &d, &chain, 0..chain.records.len()).await;
    let token = member(&ts, "Ana Ruiz", Role::Member);

    let who = get(&c, format!("{}/v1/whoami", ts.base), &[bearer(&token)]).await.json();
    assert_eq!(who["name"], "Ana Ruiz");
    assert_eq!(who["role"], "member");
    assert_eq!(who["server_key"], ts.server.public_key().to_string());

    let g = fetch(&ts, &c, &token, &chain).await;
    let access: u64 = g.header("custody-bundle-access").parse().unwrap();
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("bundle.tar");
    std::fs::write(&tar, &g.body).unwrap();
    let key = ts.server.public_key();
    let report = verify(&tar, &key);
    assert_intact(&report, true);
    assert_eq!(report.segments.len(), 4);
    // The bundle proves its own retrieval: the access entry is the last one, at the head.
    let (i, e) = report.custody_log.last().unwrap();
    assert_eq!(*i, access);
    assert_eq!(e.entry_type, EntryType::Access);
    assert_eq!(e.actor.as_deref(), Some("Ana Ruiz"));
    assert_eq!(e.recording_id, Some(chain.id));
    assert_eq!(report.tree_head.as_ref().unwrap().tree_size, access + 1);
    assert!(report.checks.iter().any(|c| c.code == code::LOG_INCLUSION_VALID));
    let types: Vec<EntryType> = report.custody_log.iter().map(|(_, e)| e.entry_type).collect();
    assert_eq!(types[0], EntryType::DeviceEnrolled);
    assert_eq!(types.iter().filter(|t| **t == EntryType::SegmentReceived).count(), 4);

    // The directory form, unpacked from the archive, verifies the same; the manifest is
    // in sha256sum's format and the README says how to verify.
    let top = work.path().join(format!("custody-bundle-{}", chain.id));
    unpack(&tar, &top);
    assert_intact(&verify(&top, &key), true);
    let readme = std::fs::read_to_string(top.join("README.txt")).unwrap();
    assert!(readme.contains(&format!("custody verify --trust {key}")), "{readme}");
    assert!(readme.contains("sha256sum -c MANIFEST.sha256"));

    // The same access again gives the very same bytes; a new retrieval is a new access.
    let again = get(
        &c,
        format!("{}/v1/recordings/{}/bundle", ts.base, chain.id),
        &[bearer(&token), ("custody-bundle-access", access.to_string())],
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, g.body);
    let second = fetch(&ts, &c, &token, &chain).await;
    assert!(second.header("custody-bundle-access").parse::<u64>().unwrap() > access);
}

#[tokio::test]
async fn a_broken_download_resumes_with_range_to_identical_bytes_while_the_recording_grows() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-4").await;
    let chain = Chain::new(2, &d, 6, false, b"b");
    upload(&ts, &c, &d, &chain, 0..4).await;
    let token = member(&ts, "lead", Role::Member);

    // Cut the stream after some 30 kB.
    let resp = c
        .get(format!("{}/v1/recordings/{}/bundle", ts.base, chain.id))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let access = resp.headers()["custody-bundle-access"].to_str().unwrap().to_string();
    let total: u64 = resp.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let mut resp = resp;
    let mut part = Vec::new();
    while part.len() < 30_000 {
        part.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
    }
    drop(resp);
    assert!((part.len() as u64) < total);

    // Meanwhile the recording grows.
    upload(&ts, &c, &d, &chain, 4..7).await;

    let rest = get(
        &c,
        format!("{}/v1/recordings/{}/bundle", ts.base, chain.id),
        &[
            bearer(&token),
            ("custody-bundle-access", access.clone()),
            ("range", format!("bytes={}-", part.len())),
        ],
    )
    .await;
    assert_eq!(rest.status, 206, "{}", String::from_utf8_lossy(&rest.body));
    assert_eq!(rest.header("content-range"), format!("bytes {}-{}/{total}", part.len(), total - 1));
    part.extend_from_slice(&rest.body);
    let whole = get(
        &c,
        format!("{}/v1/recordings/{}/bundle", ts.base, chain.id),
        &[bearer(&token), ("custody-bundle-access", access.clone())],
    )
    .await;
    assert_eq!(part, whole.body, "resumed bytes differ from the whole");
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("b.tar");
    std::fs::write(&tar, &part).unwrap();
    let report = verify(&tar, &ts.server.public_key());
    assert_intact(&report, false);
    assert_eq!(report.segments.len(), 3, "only what was receipted before the access");

    // A range outside the bundle, and an access that is not this member's bundle, are refused.
    let bad = get(
        &c,
        format!("{}/v1/recordings/{}/bundle", ts.base, chain.id),
        &[
            bearer(&token),
            ("custody-bundle-access", access.clone()),
            ("range", format!("bytes={total}-")),
        ],
    )
    .await;
    assert_eq!((bad.status, bad.code().as_str()), (416, "range.invalid"));
    let other = member(&ts, "other", Role::Member);
    let bad = get(
        &c,
        format!("{}/v1/recordings/{}/bundle", ts.base, chain.id),
        &[bearer(&other), ("custody-bundle-access", access)],
    )
    .await;
    assert_eq!((bad.status, bad.code().as_str()), (404, "bundle.access"));
}

#[tokio::test]
async fn devices_strangers_and_members_doing_admin_work_are_refused_with_their_codes() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-5").await;
    let chain = Chain::new(3, &d, 2, true, b"c");
    upload(&ts, &c, &d, &chain, 0..chain.records.len()).await;
    let token = member(&ts, "paralegal", Role::Member);
    let key = ts.server.public_key();
    let before = ts.server.log_len();

    // A device, signing its requests properly, can neither list nor read nor revoke.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/recordings".to_string()),
        (reqwest::Method::GET, format!("/v1/recordings/{}/bundle", chain.id)),
        (reqwest::Method::POST, "/v1/devices/revoke".to_string()),
    ] {
        let h = d.headers(&d.key, &key, method.as_str(), &path, now_us(), fresh_nonce(), b"");
        let s = d.send(&c, &ts.base, method, &path, h, Vec::new()).await;
        assert_eq!((s.status, s.code().as_str()), (403, "auth.device_key"), "{path}");
    }
    // Nor delete: there is no such route.
    let path = format!("/v1/recordings/{}", chain.id);
    let h = d.headers(&d.key, &key, "DELETE", &path, now_us(), fresh_nonce(), b"");
    let s = d.send(&c, &ts.base, reqwest::Method::DELETE, &path, h, Vec::new()).await;
    assert!(s.status == 404 || s.status == 405, "{}", s.status);
    assert!(ts.server.storage().record(&chain.id, 0).unwrap().is_some());
    // A device's key is no token either.
    let g =
        get(&c, format!("{}/v1/recordings", ts.base), &[bearer(&hex::encode(d.public.to_bytes()))])
            .await;
    assert_eq!((g.status, g.code().as_str()), (401, "auth.token"));

    let g = get(&c, format!("{}/v1/recordings", ts.base), &[]).await;
    assert_eq!((g.status, g.code().as_str()), (401, "auth.missing"));
    let g = get(&c, format!("{}/v1/recordings", ts.base), &[bearer(&"ab".repeat(32))]).await;
    assert_eq!((g.status, g.code().as_str()), (401, "auth.token"));
    let g = get(&c, format!("{}/v1/recordings", ts.base), &[bearer("not-hex")]).await;
    assert_eq!((g.status, g.code().as_str()), (401, "auth.malformed"));

    let r = c
        .post(format!("{}/v1/devices/revoke", ts.base))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "device": d.public.to_string(), "reason": "seized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "auth.role");
    assert!(!ts.server.device(&d.public).unwrap().revoked);
    // Refusals read nothing and log no access (the member was logged once, when admitted).
    let logged: Vec<_> = log_entries(ts.dir.path()).into_iter().skip(before as usize).collect();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].entry_type, EntryType::MemberAdded);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_address() {
    let ts = start(test_limits()).await;
    let c = client();
    let token = member(&ts, "admin", Role::Admin);
    let url = format!("{}/v1/whoami", ts.base);
    for i in 0..custody_server::members::MAX_FAILURES {
        let g = get(&c, url.clone(), &[bearer(&format!("{i:064x}"))]).await;
        assert_eq!((g.status, g.code().as_str()), (401, "auth.token"), "attempt {i}");
    }
    let g = get(&c, url.clone(), &[bearer(&"cd".repeat(32))]).await;
    assert_eq!((g.status, g.code().as_str()), (429, "auth.rate_limited"));
    // The right token is still taken (issue 16: a shared address must not lock the legal
    // team out; a 256-bit token cannot be guessed at any rate).
    let g = get(&c, url, &[bearer(&token)]).await;
    assert_eq!(g.status, 200, "{}", String::from_utf8_lossy(&g.body));
}

#[tokio::test]
async fn a_revoked_device_is_refused_and_its_earlier_recording_verifies_showing_the_revocation() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-6").await;
    let chain = Chain::new(4, &d, 3, true, b"d");
    upload(&ts, &c, &d, &chain, 0..chain.records.len()).await;
    let admin = member(&ts, "counsel", Role::Admin);

    let revoke = |device: String| {
        let c = c.clone();
        let url = format!("{}/v1/devices/revoke", ts.base);
        let admin = admin.clone();
        async move {
            let r = c
                .post(url)
                .header("authorization", format!("Bearer {admin}"))
                .json(&serde_json::json!({ "device": device, "reason": "phone seized at the border" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let v = revoke(d.public.fingerprint().to_string()).await;
    assert_eq!(v["device_key"], d.public.to_string());
    assert_eq!(v["already_revoked"], false);
    assert_eq!(revoke(d.public.to_string()).await["already_revoked"], true);

    let later = Chain::new(5, &d, 1, false, b"e");
    let s = d.put(&c, &ts.base, &ts.server.public_key(), later.id, 0, later.body(0)).await;
    assert_eq!((s.status, s.code().as_str()), (403, "auth.revoked"));

    let g = fetch(&ts, &c, &admin, &chain).await;
    let work = tempfile::tempdir().unwrap();
    let tar = work.path().join("r.tar");
    std::fs::write(&tar, &g.body).unwrap();
    let report = verify(&tar, &ts.server.public_key());
    assert_intact(&report, true);
    assert!(report.checks.iter().any(|c| c.code == code::DEVICE_REVOKED));
    let revoked: Vec<_> = report
        .custody_log
        .iter()
        .filter(|(_, e)| e.entry_type == EntryType::DeviceRevoked)
        .collect();
    assert_eq!(revoked.len(), 1, "revoked once, logged once");
    assert_eq!(revoked[0].1.actor.as_deref(), Some("counsel"));
    assert_eq!(revoked[0].1.detail.as_deref(), Some("phone seized at the border"));
}

#[tokio::test]
async fn every_access_is_logged_and_a_member_is_logged_once_across_restarts() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-8").await;
    let done = Chain::new(6, &d, 2, true, b"f");
    upload(&ts, &c, &d, &done, 0..done.records.len()).await;
    let token = member(&ts, "Bea", Role::Member);

    let list = get(&c, format!("{}/v1/recordings", ts.base), &[bearer(&token)]).await.json();
    let rows = list["recordings"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["recording_id"], done.id.to_string());
    assert_eq!(rows[0]["state"], "complete");
    assert_eq!(rows[0]["segments"], 2);
    assert_eq!(rows[0]["device_label"], "observer-8");
    assert!(rows[0]["last_receipt_at_us"].as_i64().unwrap() > 0);
    fetch(&ts, &c, &token, &done).await;
    fetch(&ts, &c, &token, &done).await;

    let ts = ts.restart(|_| {}).await;
    let c = client();
    fetch(&ts, &c, &token, &done).await;
    let entries = log_entries(ts.dir.path());
    let accesses: Vec<_> = entries
        .iter()
        .filter(|e| e.entry_type == EntryType::Access && e.actor.as_deref() == Some("Bea"))
        // Each transfer's delivery entry is logged as it ends (bundle_statement.rs tests it).
        .filter(|e| !e.detail.as_deref().is_some_and(|d| d.starts_with("delivered ")))
        .collect();
    assert_eq!(accesses.len(), 4, "one listing and three retrievals");
    assert_eq!(accesses[0].detail.as_deref(), Some("listed recordings"));
    assert!(accesses[1..].iter().all(|e| e.recording_id == Some(done.id)));
    let added = entries.iter().filter(|e| e.entry_type == EntryType::MemberAdded).count();
    assert_eq!(added, 1);
}

#[tokio::test]
async fn a_segment_damaged_in_storage_breaks_the_stream_instead_of_serving_other_bytes() {
    let ts = start(test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "observer-10").await;
    let chain = Chain::new(7, &d, 3, true, b"g");
    upload(&ts, &c, &d, &chain, 0..chain.records.len()).await;
    let token = member(&ts, "Cy", Role::Member);
    let seg = ts.dir.path().join(format!("recordings/{}/00000002.age", chain.id));
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len / 2).unwrap();

    let resp = c
        .get(format!("{}/v1/recordings/{}/bundle", ts.base, chain.id))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let promised = resp.content_length().unwrap();
    match resp.bytes().await {
        Err(_) => {}
        Ok(b) => panic!("a whole body of {} bytes of {promised} promised", b.len()),
    }
}
