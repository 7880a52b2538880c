//! A damaged vault loses only what is damaged (issue 16, section 1): every intact record
//! after a bad journal frame reaches a real server on loopback, a zeroed journal keeps its
//! recording listed, and receipts lost with a cut-short `receipts.bin` are fetched again
//! from the server rather than the records sent again.

use std::path::Path;
use std::time::Duration;

use custody_client::{Options, Uploader};
use custody_format::ids::RecordingId;
use custody_format::primitives::sha256;
use custody_format::record::{EndReason, RecordingHeader};
use custody_format::testkit;
use custody_vault::keys::{new_recipient_identity, parse_recipients};
use custody_vault::seal::Sealer;
use custody_vault::store::{SegmentInput, State};
use custody_vault::{journal, Vault};
use custody_verifier::Source;
use ed25519_dalek::SigningKey;

struct Server {
    server: custody_server::Server,
    url: String,
    dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn server(recipient: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = custody_server::Config::new(dir.path());
    config.recipients = vec![recipient.to_string()];
    let (server, _) = custody_server::Server::open(config).unwrap();
    let (addr, task) =
        custody_server::serve::spawn(server.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    Server { server, url: format!("https://{addr}"), dir, _task: task }
}

async fn enrolled_vault(srv: &Server) -> (tempfile::TempDir, SigningKey) {
    let vdir = tempfile::tempdir().unwrap();
    let (vault, _) = Vault::open(vdir.path()).unwrap();
    let key = SigningKey::from_bytes(&[16; 32]);
    let token = custody_server::issue_token(srv.dir.path(), "o", Duration::from_secs(60)).unwrap();
    custody_client::enroll(&vault, &key, &srv.url, &token).await.unwrap();
    (vdir, key)
}

fn opts() -> Options {
    Options {
        poll: Duration::from_millis(20),
        base_backoff: Duration::from_millis(20),
        ..Options::default()
    }
}

/// Seals a recording of 7 segments and an end record (9 records) into `vault`, as
/// `--no-upload` leaves it; its id.
fn record(vault: &Vault, key: &SigningKey, recipient: &str) -> RecordingId {
    let sealer = Sealer::new(parse_recipients(&[recipient.to_string()]).unwrap()).unwrap();
    let mut h: RecordingHeader = testkit::header(1, key);
    h.recording_id = RecordingId::random(&mut rand_core::OsRng);
    h.recipients = vec![recipient.to_string()];
    let id = h.recording_id;
    let mut w = vault.begin(h, key.clone(), sealer).unwrap();
    for n in 1..=7u64 {
        let p: Vec<u8> = (0..3000u32).map(|i| (i as u64 * 31 + n) as u8).collect();
        let input = SegmentInput {
            plaintext: &p,
            plaintext_sha256: sha256(&[&p]),
            fields: testkit::segment(1, n),
        };
        w.add_segment(input).unwrap();
    }
    w.end(testkit::T0_US + 20_000_000, EndReason::Stopped, None).unwrap();
    id
}

/// Flips one bit in the middle of the payload of frame `n` of the journal at `path`.
fn flip_bit_in_frame(path: &Path, n: usize) {
    let frames: Vec<journal::Frame> =
        journal::frames_from(path, 0).unwrap().map(Result::unwrap).collect();
    assert_eq!(frames.len(), 9);
    let f = &frames[n];
    let mut bytes = std::fs::read(path).unwrap();
    let at = (f.payload_offset() + f.payload.len() as u64 / 2) as usize;
    bytes[at] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
}

/// The sealed segments in the legal team's bundle of recording `id`, as a member fetches it.
async fn segments_in_bundle(
    srv: &Server,
    session: &custody_client::lawyer::Session,
    id: &RecordingId,
) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join("bundle.tar");
    let access = dir.path().join("bundle.access");
    session.fetch(&id.to_string(), &part, &access, &mut |_| {}).await.unwrap();
    let _ = srv;
    let tar = custody_verifier::Tar::open(&part).unwrap();
    tar.files().keys().filter(|p| p.contains("recording/segments/") && p.ends_with(".age")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bit_flip_in_any_frame_loses_only_that_record() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let (vdir, key) = enrolled_vault(&srv).await;
    // Nine recordings of nine records; recording n has one bit flipped in frame n.
    let ids: Vec<RecordingId> = {
        let (vault, _) = Vault::open(vdir.path()).unwrap();
        (0..9).map(|_| record(&vault, &key, &recipient)).collect()
    };
    for (n, id) in ids.iter().enumerate() {
        flip_bit_in_frame(
            &vdir.path().join("recordings").join(id.to_string()).join("journal.bin"),
            n,
        );
    }

    let (vault, notices) = Vault::open(vdir.path()).unwrap();
    assert_eq!(
        notices.iter().filter(|n| n.0.contains("journal damaged")).count(),
        8,
        "{notices:?}"
    );
    assert_eq!(
        notices.iter().filter(|n| n.0.contains("unfinished record")).count(),
        1,
        "{notices:?}"
    );
    let uploader = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let f = uploader.flush(Duration::from_secs(60)).await.unwrap();
    assert_eq!((f.receipted, f.pending), (72, 0), "{f:?}");

    let member =
        custody_server::add_member(srv.dir.path(), "Ana", custody_server::Role::Member).unwrap();
    let (login, _) = custody_client::lawyer::login(&srv.url, &member).await.unwrap();
    let session = custody_client::lawyer::Session::new(login, Duration::from_secs(30)).unwrap();
    let mut receipted = Vec::new();
    let mut in_bundle = Vec::new();
    for id in &ids {
        receipted.push(uploader.receipts(id).unwrap().len());
        in_bundle.push(segments_in_bundle(&srv, &session, id).await);
    }
    // Every record but the damaged one; every segment but the damaged record's (the header
    // and the end record carry none).
    assert_eq!(receipted, vec![8; 9]);
    assert_eq!(in_bundle, vec![7, 6, 6, 6, 6, 6, 6, 6, 7]);
    assert_eq!(in_bundle.iter().sum::<usize>(), 56);

    // Status never says all is well while a segment file cannot be receipted.
    let s = custody_vault::status::status(&vault, testkit::T0_US).unwrap();
    assert_eq!(s.waiting, 0);
    assert_eq!(s.segment_files_without_record, 7, "the damaged records' segment files");
    assert_eq!(s.damaged, 8);
    // The check says what was lost, and where.
    let checks = custody_vault::check::check(&vault).unwrap();
    for (n, id) in ids.iter().enumerate() {
        let c = checks.iter().find(|c| c.id == *id).unwrap();
        if n == 8 {
            assert!(c.damage.is_empty(), "a bad last frame is a torn tail: {c:?}");
            continue;
        }
        assert_eq!(c.damage.len(), 1, "{c:?}");
        assert_eq!(c.damage[0].lost, vec![n as u64], "{c:?}");
        assert_eq!(c.damage[0].kept.len(), 8);
        assert!(c.problems.iter().any(|p| p.contains(&format!("positions {n}"))), "{c:?}");
    }
    drop(srv.server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zeroed_journal_stays_listed_and_lost_receipts_are_fetched_again() {
    let (_identity, recipient) = new_recipient_identity();
    let srv = server(&recipient).await;
    let (vdir, key) = enrolled_vault(&srv).await;
    let rec_dir = |id: &RecordingId| vdir.path().join("recordings").join(id.to_string());
    let (zeroed, cut) = {
        let (vault, _) = Vault::open(vdir.path()).unwrap();
        let ids = (record(&vault, &key, &recipient), record(&vault, &key, &recipient));
        let f = Uploader::new(&vault, key.clone(), opts())
            .unwrap()
            .flush(Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!((f.receipted, f.pending), (18, 0), "{f:?}");
        // After an index rebuild (or a kill before the index was written), what has a
        // receipt does not wait again.
        vault.rebuild_index().unwrap();
        assert_eq!(vault.index().pending().unwrap(), vec![]);
        let s = custody_vault::status::status(&vault, testkit::T0_US).unwrap();
        assert_eq!((s.waiting, s.recordings.len()), (0, 2));
        ids
    };
    let logged = srv.server.log_len();

    // A zeroed journal, and a receipts.bin cut short in its fifth receipt.
    let journal_path = rec_dir(&zeroed).join("journal.bin");
    let len = std::fs::metadata(&journal_path).unwrap().len() as usize;
    std::fs::write(&journal_path, vec![0u8; len]).unwrap();
    let receipts = rec_dir(&cut).join("receipts.bin");
    let frames: Vec<journal::Frame> =
        journal::frames_from(&receipts, 0).unwrap().map(Result::unwrap).collect();
    assert_eq!(frames.len(), 9);
    let file = std::fs::OpenOptions::new().write(true).open(&receipts).unwrap();
    file.set_len(frames[4].offset + 20).unwrap();
    drop(file);

    let (vault, notices) = Vault::open(vdir.path()).unwrap();
    let said = |what: &str| notices.iter().any(|n| n.0.contains(what));
    assert!(said("holds no readable record"), "{notices:?}");
    assert!(said("5 records had neither a stored receipt"), "{notices:?}");
    let listed = vault.listings().unwrap();
    let z = listed.iter().find(|l| l.summary.id == zeroed.to_string()).expect("still listed");
    assert_eq!(z.state, State::Damaged);
    let c = custody_vault::check::check_recording(&vault, zeroed).unwrap();
    assert_eq!(c.condition, custody_vault::check::Condition::Damaged);
    assert!(c.problems.iter().any(|p| p.contains(&format!("bytes 0..{len}"))), "{c:?}");
    let s = custody_vault::status::status(&vault, testkit::T0_US).unwrap();
    assert_eq!((s.waiting, s.damaged, s.segment_files_without_record), (5, 1, 7), "{s:?}");

    // The lost receipts come back from the server, checked; nothing is sent again.
    let uploader = Uploader::new(&vault, key.clone(), opts()).unwrap();
    let f = uploader.flush(Duration::from_secs(60)).await.unwrap();
    assert_eq!((f.recovered, f.receipted, f.pending), (5, 0, 0), "{f:?}");
    assert_eq!(srv.server.log_len(), logged, "no record was logged again");
    assert_eq!(uploader.receipts(&cut).unwrap().len(), 9);
    let seqs: Vec<u64> = uploader.receipts(&cut).unwrap().iter().map(|r| r.value().seq).collect();
    assert_eq!(
        seqs.iter().copied().collect::<std::collections::BTreeSet<_>>().len(),
        9,
        "{seqs:?}"
    );
    let s = custody_vault::status::status(&vault, testkit::T0_US).unwrap();
    assert_eq!((s.waiting, s.damaged), (0, 1));
    // The zeroed recording's own receipts are still on the server (it had been uploaded).
    assert!(srv.server.log_len() > 18);
}
