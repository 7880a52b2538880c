//! Ingest over real HTTP on loopback: receipts, idempotency, equivocation, out-of-order.
//! Every test runs on each back-end (files, memory).

mod common;

use common::*;
use custody_format::log::EntryType;
use custody_format::receipt::Receipt;
use custody_format::record::Record;
use custody_format::signed::Signed;

fn check_receipt(
    bytes: &[u8],
    chain: &Chain,
    seq: usize,
    server: &custody_server::Server,
) -> Receipt {
    let r = Signed::<Receipt>::parse(bytes).unwrap();
    assert!(r.verify(&server.public_key()), "receipt signature");
    let v = r.value().clone();
    let rec = &chain.records[seq];
    assert_eq!(v.recording_id, chain.id);
    assert_eq!(v.seq, rec.record().seq());
    assert_eq!(v.record_hash, rec.hash());
    match rec.record() {
        Record::Segment(s) => assert_eq!(v.ciphertext_sha256, Some(s.ciphertext_sha256)),
        _ => assert_eq!(v.ciphertext_sha256, None),
    }
    assert!(v.tree_size > v.log_index);
    v
}

async fn a_whole_chain_is_receipted_and_every_receipt_verifies(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "laptop").await;
    let key = ts.server.public_key();
    let chain = Chain::new(1, &d, 6, true, b"a");
    let mut receipts = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
        let r = check_receipt(&s.body, &chain, seq, &ts.server);
        // Each receipt's root is the log's root at its size.
        let leaves = ts.server.log_len();
        assert!(r.tree_size <= leaves);
        receipts.push((r, s.body));
    }
    for w in receipts.windows(2) {
        assert!(w[0].0.log_index < w[1].0.log_index);
    }
    // Stored exactly as sent.
    for seq in 0..chain.records.len() {
        let stored = ts.server.storage().record(&chain.id, seq as u64).unwrap().unwrap();
        assert_eq!(stored, chain.records[seq].to_bytes());
    }
    assert_eq!(ts.server.storage().segment(&chain.id, 3).unwrap().unwrap(), chain.ciphertexts[3]);
    let state = d.state(&c, &ts.base, &key, chain.id).await;
    assert_eq!(state["complete"], true);
    assert_eq!(state["receipted"], 8);

    // Idempotent: the same upload again gets the same receipt, and the log does not grow.
    let before = ts.server.log_len();
    for seq in [0usize, 3, 7] {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
        assert_eq!(s.body, receipts[seq].1, "seq {seq}");
    }
    assert_eq!(ts.server.log_len(), before);
}

async fn a_different_record_at_a_stored_position_is_refused_as_equivocation_and_logged(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "laptop").await;
    let key = ts.server.public_key();
    let chain = Chain::new(2, &d, 3, false, b"a");
    let other = Chain::new(2, &d, 3, false, b"b"); // same header, different segments
    for seq in 0..3 {
        assert_eq!(
            d.put(&c, &ts.base, &key, chain.id, seq, chain.body(seq as usize)).await.status,
            200
        );
    }
    let before = ts.server.log_len();
    let s = d.put(&c, &ts.base, &key, chain.id, 2, other.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (409, "equivocation"));
    assert_eq!(ts.server.log_len(), before + 1, "the equivocation is logged");
    // The stored record is untouched.
    assert_eq!(
        ts.server.storage().record(&chain.id, 2).unwrap().unwrap(),
        chain.records[2].to_bytes()
    );
    assert_eq!(ts.server.storage().segment(&chain.id, 2).unwrap().unwrap(), chain.ciphertexts[2]);

    // The entry, read back from the log's store (for files, the journal on disk): typed,
    // naming the device, the position, the refused record and the stored one it conflicts
    // with.
    let entries = ts.logged_entries();
    let e = entries.last().unwrap();
    assert_eq!(e.entry_type, EntryType::EquivocationRefused);
    assert_eq!(e.device_key, Some(d.public));
    assert_eq!(e.recording_id, Some(chain.id));
    assert_eq!(e.seq, Some(2));
    assert_eq!(e.record_hash, Some(other.records[2].hash()));
    assert_eq!(e.conflicting_hash, Some(chain.records[2].hash()));
}

async fn segments_arriving_out_of_order_are_accepted_and_linked_when_the_gap_fills(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "phone").await;
    let key = ts.server.public_key();
    let chain = Chain::new(3, &d, 4, true, b"a");
    for seq in [0usize, 3, 1] {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
    let state = d.state(&c, &ts.base, &key, chain.id).await;
    assert_eq!(state["gaps"], serde_json::json!([[2, 2]]));
    assert_eq!(state["complete"], false);
    // A record for the gap that links to neither neighbour is refused…
    let wrong = Chain::new(3, &d, 4, true, b"z");
    let s = d.put(&c, &ts.base, &key, chain.id, 2, wrong.body(2)).await;
    assert_eq!((s.status, s.code().as_str()), (422, "chain.link"));
    // …the right one fills it.
    for seq in [2usize, 5, 4] {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200, "seq {seq}: {}", String::from_utf8_lossy(&s.body));
    }
    let state = d.state(&c, &ts.base, &key, chain.id).await;
    assert_eq!(state["gaps"], serde_json::json!([]));
    assert_eq!(state["complete"], true);
}

async fn a_lost_index_is_rebuilt_with_the_very_same_receipts(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "laptop").await;
    let key = ts.server.public_key();
    let chain = Chain::new(7, &d, 3, false, b"a");
    let mut before = Vec::new();
    for seq in 0..chain.records.len() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
        before.push(s.body);
    }
    let ts = ts.lose_index().await;
    let c = client();
    let log_len = ts.server.log_len();
    for (seq, expected) in before.iter().enumerate() {
        let s = d.put(&c, &ts.base, &key, chain.id, seq as u64, chain.body(seq)).await;
        assert_eq!(s.status, 200);
        assert_eq!(&s.body, expected, "seq {seq}");
    }
    assert_eq!(ts.server.log_len(), log_len, "nothing logged twice");
}

/// An end record closes a recording on the server: a record placed after a stored end is
/// refused (`chain.after_end`), and so is an end record placed before a stored record;
/// neither is stored.
async fn nothing_is_accepted_after_an_end_record(back: Back) {
    let ts = start_on(back, test_limits()).await;
    let c = client();
    let d = enrolled(&ts, &c, "laptop").await;
    let key = ts.server.public_key();
    // Records 0..=3 with the end at 3; the same recording carried on to 5 segments.
    let ended = Chain::new(4, &d, 2, true, b"a");
    let longer = Chain::new(4, &d, 5, false, b"a");
    assert_eq!(ended.id, longer.id);
    for seq in 0..=3 {
        let s = d.put(&c, &ts.base, &key, ended.id, seq, ended.body(seq as usize)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    let s = d.put(&c, &ts.base, &key, longer.id, 5, longer.body(5)).await;
    assert_eq!((s.status, s.code().as_str()), (422, "chain.after_end"));
    assert!(ts.server.storage().record(&longer.id, 5).unwrap().is_none());

    // The other way round: a later record is stored first, then an end before it.
    let longer = Chain::new(5, &d, 5, false, b"b");
    let ended = Chain::new(5, &d, 2, true, b"b");
    for seq in [0, 1, 2, 5] {
        let s = d.put(&c, &ts.base, &key, longer.id, seq, longer.body(seq as usize)).await;
        assert_eq!(s.status, 200, "{}", String::from_utf8_lossy(&s.body));
    }
    let s = d.put(&c, &ts.base, &key, ended.id, 3, ended.body(3)).await;
    assert_eq!((s.status, s.code().as_str()), (422, "chain.after_end"));
    assert!(ts.server.storage().record(&ended.id, 3).unwrap().is_none());
}

on_every_backend!(
    a_whole_chain_is_receipted_and_every_receipt_verifies,
    a_different_record_at_a_stored_position_is_refused_as_equivocation_and_logged,
    segments_arriving_out_of_order_are_accepted_and_linked_when_the_gap_fills,
    a_lost_index_is_rebuilt_with_the_very_same_receipts,
    nothing_is_accepted_after_an_end_record,
);
