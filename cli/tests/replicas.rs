//! Three `custody serve` replicas on one PostgreSQL database and one S3-compatible bucket,
//! behind a round-robin TCP front (TLS passed through), with devices uploading through the
//! front at once while replicas are killed (SIGKILL) and restarted ten times (issue 19).
//!
//! What must hold: every device's uploads end receipted and its consistency checks pass
//! (the real uploader checks every receipt and the log's growth); the log is one tree (the
//! heads of all three replicas are consistent with each other by RFC 9162 proofs, and every
//! receipt's entry sits at its own position, under the root the receipt names, so no position
//! was used twice); nothing receipted is lost (every receipted record and segment is in the
//! bucket after the kills); and every recording, fetched by a member through the front,
//! verifies as intact and complete.
//!
//! The services are real and started here: PostgreSQL from Debian's packages
//! (`custody_testkit::pg`), `s3s-fs` (`custody_testkit::S3Server`), the replicas as processes
//! of the `custody` binary, and [`custody_testkit::Front`].

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_client::{Options, Uploader};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::LogEntry;
use custody_format::merkle;
use custody_format::primitives::sha256;
use custody_format::record::EndReason;
use custody_format::signed::Signed;
use custody_format::testkit;
use custody_server::store::{s3::S3Records, Backend};
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::SegmentInput;
use custody_vault::Vault;
use ed25519_dalek::SigningKey;

const REPLICAS: usize = 3;
const DEVICES: usize = 3;
const KILLS: usize = 10;

type Runner = tokio::task::JoinHandle<Result<custody_client::Flushed, custody_client::UploadError>>;

/// A replica: a `custody serve` process, killed when dropped.
struct Replica {
    child: Option<Child>,
    port: u16,
}

struct Services {
    database: String,
    store: String,
    env: Vec<(String, String)>,
    recipient: String,
}

impl Replica {
    /// Starts `custody serve` on `data` and `port` (0: any), once it says where it listens.
    fn start(s: &Services, data: &Path, port: u16) -> Replica {
        let mut cmd = Command::new(common::bin());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--recipient"])
            .arg(&s.recipient)
            .arg("--data")
            .arg(data)
            .args(["--database", &s.database, "--store", &s.store])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &s.env {
            cmd.env(k.to_ascii_uppercase(), v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().unwrap_or_else(|| Ok(String::new())).unwrap();
        let url = first.strip_prefix("Listening on ").unwrap_or_else(|| panic!("{first:?}"));
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        // Keep reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Replica { child: Some(child), port }
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A small deterministic generator for the kill moments (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Copies the identity (key, certificate) and recipients.txt of `from` into a new `to`.
fn copy_identity(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A signed device GET to one replica directly, answered as JSON.
async fn signed_get(
    client: &reqwest::Client,
    base: &str,
    key: &SigningKey,
    server: &PublicKey,
    path: &str,
) -> serde_json::Value {
    let h = custody_protocol::request::SignedHeaders::sign(
        key,
        server,
        "GET",
        path,
        custody_server::now_us(),
        rand::random(),
        b"",
    );
    let mut req = client.get(format!("{base}{path}"));
    for (k, v) in h.to_pairs() {
        req = req.header(k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{base}{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The same stores opened in this process, for the legal team's side (tokens, a member)
/// and for reading back what was stored.
async fn open_admin(
    s: &Services,
    dir: &Path,
) -> (custody_server::Server, custody_server::store::Stores) {
    let records = S3Records::connect_with(&s.store, s.env.clone()).await.unwrap();
    let pg = custody_server::store::pg::PgStores::connect(&s.database).await.unwrap();
    let stores = pg.stores(Arc::new(records));
    let mut config = custody_server::Config::new(dir);
    config.recipients = vec![s.recipient.clone()];
    config.backend = Backend::Custom(stores.clone());
    let server = tokio::task::spawn_blocking(move || custody_server::Server::open(config))
        .await
        .unwrap()
        .unwrap()
        .0;
    (server, stores)
}

fn plaintext(seed: u64) -> Vec<u8> {
    (0..128u64).flat_map(|i| sha256(&[&seed.to_be_bytes(), &i.to_be_bytes()])).collect()
}

#[test]
fn three_replicas_on_one_database_and_bucket_lose_nothing_receipted_through_ten_kills() {
    let started = Instant::now();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _entered = rt.enter();
    let s3 = custody_testkit::S3Server::start().unwrap();
    let (_case_identity, recipient) = new_recipient_identity();
    let services = Services {
        database: custody_testkit::pg::fresh_database().unwrap(),
        store: format!("s3://{}/custody", s3.bucket().unwrap()),
        env: s3.config(),
        recipient,
    };
    let work = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..REPLICAS).map(|i| work.path().join(format!("r{i}"))).collect();
    // The first replica makes the identity; the others get copies of it.
    let mut replicas = vec![Replica::start(&services, &dirs[0], 0)];
    for d in &dirs[1..] {
        copy_identity(&dirs[0], d);
        replicas.push(Replica::start(&services, d, 0));
    }
    let front =
        custody_testkit::Front::start(replicas.iter().map(Replica::addr).collect()).unwrap();
    let url = format!("https://{}", front.addr());
    let admin_dir = work.path().join("admin");
    copy_identity(&dirs[0], &admin_dir);
    let (admin, stores) = rt.block_on(open_admin(&services, &admin_dir));
    let server_key = admin.public_key();
    eprintln!("replicas: services and {REPLICAS} replicas up after {:?}", started.elapsed());

    // Devices enroll through the front and record; their uploaders run beside them.
    struct Dev<'v> {
        key: SigningKey,
        uploader: Uploader,
        runner: Option<Runner>,
        writer: Option<custody_vault::store::RecordingWriter<'v>>,
        id: RecordingId,
        segments: u64,
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let vaults: Vec<(tempfile::TempDir, Vault)> = (0..DEVICES)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let vault = Vault::open(dir.path()).unwrap().0;
            (dir, vault)
        })
        .collect();
    let mut devs: Vec<Dev<'_>> = (0..DEVICES)
        .map(|i| {
            let vault = &vaults[i].1;
            let key = SigningKey::from_bytes(&sha256(&[b"replica test device", &[i as u8]]));
            let token =
                admin.issue_token(&format!("observer-{i}"), Duration::from_secs(600)).unwrap();
            rt.block_on(custody_client::enroll(vault, &key, &url, &token)).unwrap();
            let uploader = Uploader::new(vault, key.clone(), Options::default()).unwrap();
            let runner = {
                let (u, stop) = (uploader.clone(), stop_rx.clone());
                rt.spawn(async move { u.run(stop).await })
            };
            let sealer =
                Sealer::new(parse_recipients(&vault.config().unwrap().recipients).unwrap())
                    .unwrap();
            let mut h = testkit::header(i as u8 + 1, &key);
            h.recording_id = RecordingId::random(&mut rand::rngs::OsRng);
            h.recipients = vec![services.recipient.clone()];
            let id = h.recording_id;
            let writer = vault.begin(h, key.clone(), sealer).unwrap();
            uploader.nudge();
            Dev { key, uploader, runner: Some(runner), writer: Some(writer), id, segments: 0 }
        })
        .collect();

    // Segments keep coming while a replica is killed and restarted, ten times; then a few
    // more with every replica up, and the end records.
    let mut rng = 0x5eed_u64;
    let add_round = |devs: &mut Vec<Dev<'_>>| {
        for d in devs.iter_mut() {
            d.segments += 1;
            let p = plaintext(d.segments);
            let input = SegmentInput {
                plaintext: &p,
                plaintext_sha256: sha256(&[&p]),
                fields: testkit::segment(1, d.segments),
            };
            d.writer.as_mut().unwrap().add_segment(input).unwrap();
            d.uploader.nudge();
        }
    };
    for kill in 0..KILLS {
        let until = Instant::now() + Duration::from_millis(300 + next(&mut rng) % 500);
        while Instant::now() < until {
            add_round(&mut devs);
            std::thread::sleep(Duration::from_millis(40));
        }
        let r = kill % REPLICAS;
        replicas[r].kill();
        add_round(&mut devs);
        let port = replicas[r].port;
        replicas[r] = Replica::start(&services, &dirs[r], port);
        eprintln!(
            "replicas: kill {kill}: replica {r} killed and restarted at {:?}",
            started.elapsed()
        );
    }
    for _ in 0..5 {
        add_round(&mut devs);
        std::thread::sleep(Duration::from_millis(40));
    }
    for d in &mut devs {
        let end = testkit::T0_US + (d.segments as i64 + 1) * 2_000_000;
        d.writer.take().unwrap().end(end, EndReason::Stopped, None).unwrap();
        d.uploader.nudge();
    }
    stop_tx.send(true).unwrap();
    let mut receipts = Vec::new();
    for d in &mut devs {
        let ran = rt.block_on(d.runner.take().unwrap()).unwrap().unwrap();
        assert!(ran.refused.is_empty(), "{:?}", ran.refused);
        let flushed = rt.block_on(d.uploader.flush(Duration::from_secs(60))).unwrap();
        assert_eq!(flushed.pending, 0, "{flushed:?}");
        assert!(flushed.refused.is_empty() && flushed.log_inconsistent.is_none(), "{flushed:?}");
        assert!(d.uploader.distrusted().is_none());
        let got = d.uploader.receipts(&d.id).unwrap();
        let seqs: BTreeSet<u64> = got.iter().map(|r| r.value().seq).collect();
        assert_eq!(seqs, (0..d.segments + 2).collect(), "every record of {} receipted", d.id);
        receipts.extend(got);
    }
    let passed = front.passed();
    eprintln!(
        "replicas: {} receipts, connections per replica {passed:?}, after {:?}",
        receipts.len(),
        started.elapsed()
    );
    assert!(passed.iter().all(|&n| n > 0), "every replica took connections: {passed:?}");

    // One tree: every replica's head is signed by the one key, and each larger head
    // extends each smaller one (proved by the replica that signed the larger).
    let (client, _) = custody_client::pinned_client(None, Duration::from_secs(20)).unwrap();
    let mut heads = Vec::new();
    for r in &replicas {
        let base = format!("https://127.0.0.1:{}", r.port);
        let v = rt.block_on(signed_get(&client, &base, &devs[0].key, &server_key, "/v1/log/head"));
        let bytes = hex::decode(v["tree_head"].as_str().unwrap()).unwrap();
        let head = Signed::<custody_format::log::TreeHead>::parse(&bytes).unwrap();
        assert!(head.verify(&server_key), "the head is signed with the server key");
        heads.push((head.value().tree_size, head.value().root_hash, base));
    }
    heads.sort();
    for w in heads.windows(2) {
        let ((a, ra, _), (b, rb, base)) = (&w[0], &w[1]);
        let path = format!("/v1/log/consistency?from={a}&to={b}");
        let v = rt.block_on(signed_get(&client, base, &devs[0].key, &server_key, &path));
        let proof: Vec<[u8; 32]> = v["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
            .collect();
        merkle::verify_consistency(*a, *b, ra, rb, &proof)
            .unwrap_or_else(|e| panic!("head of {b} does not extend head of {a}: {e}"));
    }

    // No position used twice: every receipt's entry is at its own position, names exactly
    // that record, and the tree of the entries up to it has the root the receipt names.
    let logged: Vec<Vec<u8>> = rt.block_on(stores.log.entries_after(0)).unwrap();
    let mut tree = merkle::Tree::new();
    for bytes in &logged {
        tree.push(merkle::leaf_hash(bytes));
    }
    let mut at: BTreeMap<u64, (RecordingId, u64)> = BTreeMap::new();
    for r in &receipts {
        let r = r.value();
        let e = LogEntry::decode(&logged[r.log_index as usize]).unwrap();
        assert_eq!(
            (e.recording_id, e.seq, e.record_hash),
            (Some(r.recording_id), Some(r.seq), Some(r.record_hash)),
            "entry {} is the receipted record's",
            r.log_index
        );
        assert_eq!(tree.root_at(r.tree_size).unwrap(), r.tree_root, "receipt {}", r.log_index);
        assert!(at.insert(r.log_index, (r.recording_id, r.seq)).is_none(), "position reused");
    }
    // Nothing receipted is lost: every receipted record and segment is in the bucket. Read
    // on a few threads at once: each read is a round trip to the object store.
    let storage = admin.storage();
    let handle = rt.handle();
    std::thread::scope(|scope| {
        for part in receipts.chunks(receipts.len().div_ceil(8).max(1)) {
            let storage = &storage;
            scope.spawn(move || {
                let _entered = handle.enter();
                for r in part {
                    let r = r.value();
                    let record = storage.record(&r.recording_id, r.seq).unwrap();
                    let record =
                        record.unwrap_or_else(|| panic!("record {} of {}", r.seq, r.recording_id));
                    assert_eq!(
                        custody_format::record::SignedRecord::parse(&record).unwrap().hash(),
                        r.record_hash
                    );
                    if let Some(c) = r.ciphertext_sha256 {
                        let seg = storage.segment(&r.recording_id, r.seq).unwrap().unwrap();
                        assert_eq!(sha256(&[&seg]), c, "segment {} of {}", r.seq, r.recording_id);
                    }
                }
            });
        }
    });
    eprintln!("replicas: the bucket holds every receipted record after {:?}", started.elapsed());

    // Every recording, fetched by a member through the front, verifies.
    let member = admin.add_member("Ana Ruiz", custody_server::Role::Member).unwrap();
    let config = work.path().join("lawyer");
    let lawyer = |args: &[&str]| {
        Command::new(common::bin()).env("CUSTODY_CONFIG_DIR", &config).args(args).output().unwrap()
    };
    common::ok(&lawyer(&["login", &url, "--token", &member]));
    for d in &devs {
        let out = work.path().join(format!("bundle-{}", d.id));
        common::ok(&lawyer(&["fetch", &d.id.to_string(), "-o", out.to_str().unwrap()]));
        let report = common::json(&lawyer(&["verify", out.to_str().unwrap(), "--json"]));
        eprintln!(
            "replicas: bundle of {} fetched and verified after {:?}",
            d.id,
            started.elapsed()
        );
        assert_eq!(report["verdict"], "intact-complete", "{}", d.id);
    }
    eprintln!("replicas: done after {:?}", started.elapsed());
}
