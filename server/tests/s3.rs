//! Records and sealed segments in a real S3-compatible server (s3s-fs on loopback, started
//! once for this test binary, a fresh bucket per test): what `custody serve --store
//! s3://...` keeps there. The server's ingest, log and bundle suites run on these records
//! too (`Back::S3` in `common`); this file checks the store itself: reads, ranged reads and
//! listings, retries that are no-ops, refusals that overwrite nothing, and the start-up
//! probe refusing a store that ignores `If-None-Match`.

mod common;

use std::path::{Path, PathBuf};

use common::{s3_records, s3_server};
use custody_format::ids::RecordingId;
use custody_server::store::s3::S3Records;
use custody_server::store::{block_on, RecordStore, StoreError};
use custody_testkit::{IgnoresIfNoneMatch, S3Server};

fn id(n: u8) -> RecordingId {
    RecordingId([n; 16])
}

/// Bytes that differ from run to run of `n` and `salt`, long enough to span ranges.
fn bytes(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

/// Every file under `dir` (s3s-fs keeps an object as a file named by its key), relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The directory of the bucket behind `records` (its URL is `s3://<bucket>/custody`).
fn bucket_dir(records: &S3Records) -> PathBuf {
    let url = format!("{records:?}");
    let bucket = url.split("s3://").nth(1).unwrap().split('/').next().unwrap();
    s3_server().root().join(bucket).join("custody")
}

#[tokio::test]
async fn records_and_segments_read_back_whole_in_ranges_and_listed() {
    let s3 = s3_records().await;
    let seg = bytes(300_000, 1);
    for (rec, seq) in [(id(2), 0), (id(2), 1), (id(2), 7), (id(1), 0)] {
        s3.put_segment(rec, seq, &bytes(1000 + seq as usize, seq as u8)).await.unwrap();
        s3.put_record(rec, seq, format!("record {rec} {seq}").as_bytes()).await.unwrap();
    }
    s3.put_segment(id(3), 4, &seg).await.unwrap();

    assert_eq!(
        s3.record(id(2), 7).await.unwrap().unwrap(),
        format!("record {} 7", id(2)).as_bytes()
    );
    assert_eq!(s3.segment(id(2), 1).await.unwrap().unwrap(), bytes(1001, 1));
    assert_eq!(s3.segment(id(3), 4).await.unwrap().unwrap(), seg);
    assert_eq!(s3.record(id(2), 2).await.unwrap(), None);
    assert_eq!(s3.segment(id(2), 2).await.unwrap(), None);
    assert_eq!(s3.segment_range(id(9), 0, 0, 10).await.unwrap(), None);

    // Ranged reads: inside, across the end (fewer bytes), at and past the end (none).
    let range = |o: u64, l: usize| s3.segment_range(id(3), 4, o, l);
    assert_eq!(range(1000, 5000).await.unwrap().unwrap(), seg[1000..6000]);
    assert_eq!(range(299_990, 100).await.unwrap().unwrap(), seg[299_990..]);
    assert_eq!(range(300_000, 100).await.unwrap().unwrap(), b"");
    assert_eq!(range(400_000, 100).await.unwrap().unwrap(), b"");
    assert_eq!(range(0, 0).await.unwrap().unwrap(), b"");

    // Only recordings with a record are listed (id(3) has a segment only), ascending.
    assert_eq!(s3.recordings().await.unwrap(), vec![id(1), id(2)]);
    assert_eq!(s3.record_positions(id(2)).await.unwrap(), vec![0, 1, 7]);
    assert_eq!(s3.record_positions(id(3)).await.unwrap(), Vec::<u64>::new());
}

#[tokio::test]
async fn the_same_bytes_again_is_a_no_op_that_writes_nothing() {
    let s3 = s3_records().await;
    let seg = bytes(5000, 9);
    s3.put_segment(id(5), 3, &seg).await.unwrap();
    s3.put_record(id(5), 3, b"the record").await.unwrap();
    let before = files_under(&bucket_dir(&s3));
    for _ in 0..3 {
        s3.put_segment(id(5), 3, &seg).await.unwrap();
        s3.put_record(id(5), 3, b"the record").await.unwrap();
    }
    assert_eq!(files_under(&bucket_dir(&s3)), before, "a retry wrote something");
    assert_eq!(s3.segment(id(5), 3).await.unwrap().unwrap(), seg);
    // The same segment at another position shares its bytes (content-addressed).
    s3.put_segment(id(5), 4, &seg).await.unwrap();
    let segments = |files: &[PathBuf]| files.iter().filter(|f| f.starts_with("segments")).count();
    assert_eq!(segments(&files_under(&bucket_dir(&s3))), 1);
    assert_eq!(s3.segment(id(5), 4).await.unwrap().unwrap(), seg);
}

#[tokio::test]
async fn a_different_record_is_a_conflict_and_a_different_segment_keeps_the_old_aside() {
    let s3 = s3_records().await;
    s3.put_record(id(6), 0, b"first").await.unwrap();
    let e = s3.put_record(id(6), 0, b"second").await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict { id: i, seq: 0 } if i == id(6)), "{e}");
    assert_eq!(s3.record(id(6), 0).await.unwrap().unwrap(), b"first");

    let (old, new) = (bytes(4000, 1), bytes(4000, 2));
    s3.put_segment(id(6), 0, &old).await.unwrap();
    s3.put_segment(id(6), 0, &new).await.unwrap();
    assert_eq!(s3.segment(id(6), 0).await.unwrap().unwrap(), new, "the newer one is in place");
    assert_eq!(s3.segment_range(id(6), 0, 10, 5).await.unwrap().unwrap(), new[10..15]);
    // The old bytes and both positions' pointers are still in the bucket.
    let files = files_under(&bucket_dir(&s3));
    let hex = |b: &[u8]| hex::encode(custody_format::primitives::sha256(&[b]));
    for kept in [hex(&old), hex(&new)] {
        assert!(files.contains(&Path::new("segments").join(&kept)), "{kept} in {files:?}");
    }
    let pointers: Vec<_> = files.iter().filter(|f| f.starts_with("positions")).collect();
    assert_eq!(pointers.len(), 2, "{pointers:?}");
    // Back to the old bytes: a third generation, nothing overwritten.
    s3.put_segment(id(6), 0, &old).await.unwrap();
    assert_eq!(s3.segment(id(6), 0).await.unwrap().unwrap(), old);
    let files = files_under(&bucket_dir(&s3));
    assert_eq!(files.iter().filter(|f| f.starts_with("positions")).count(), 3);
}

/// The store's futures complete when driven by the server's `block_on` bridge from the
/// very thread of a single-threaded runtime (the S3 client runs on its own threads).
#[tokio::test]
async fn the_store_works_through_block_on_on_the_runtime_thread() {
    let s3 = s3_records().await;
    block_on(s3.put_record(id(7), 0, b"r")).unwrap();
    assert_eq!(block_on(s3.record(id(7), 0)).unwrap().unwrap(), b"r");
}

#[tokio::test]
async fn the_probe_refuses_a_store_that_ignores_if_none_match() {
    let back = S3Server::start_unauthenticated().unwrap();
    let front = IgnoresIfNoneMatch::start(&back).unwrap();
    let bucket = back.bucket().unwrap();
    let e = S3Records::connect_with(&format!("s3://{bucket}"), front.config()).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("accepted a second create-only write"), "{msg}");
    assert!(msg.contains("overwrites existing objects silently"), "{msg}");
    assert!(front.dropped() >= 2, "both probe writes went through the front");
    // It really is such a store: the probe key holds the second write's bytes.
    let probes = files_under(&back.root().join(&bucket));
    let probe: Vec<_> = probes.iter().filter(|p| p.starts_with("probe")).collect();
    assert_eq!(probe.len(), 1, "{probes:?}");
    let stored = std::fs::read(back.root().join(&bucket).join(probe[0])).unwrap();
    assert_eq!(stored, b"second", "the second create overwrote the first");

    // The same store straight, which honours the header, passes the probe.
    let honest = back.config();
    let bucket = back.bucket().unwrap();
    S3Records::connect_with(&format!("s3://{bucket}"), honest).await.unwrap();
}

#[tokio::test]
async fn a_url_that_is_not_s3_bucket_prefix_is_refused_at_connect() {
    let s3 = s3_server();
    for bad in ["evidence", "s3://", "s3:///x", "https://x/y", "s3://b/a//c"] {
        let e = S3Records::connect_with(bad, s3.config()).await.unwrap_err();
        assert!(e.to_string().contains("s3://BUCKET"), "{bad}: {e}");
    }
}
