//! The test vectors in `tests/vectors/`: made by `generate()` below from fixed seeds, and
//! checked by one driver, `every_vector_holds`, that reads only the files.
//!
//! Regenerate after a deliberate format change with:
//!
//! ```text
//! CUSTODY_REGENERATE_VECTORS=1 cargo test -p custody-format --test vectors
//! ```
//!
//! File format (`docs/format.md`, "Test vectors"): UTF-8 lines `key: value`. `comment:`
//! lines say what the vector is for; `kind:` says what to check; `expect:` says the
//! outcome; the remaining keys are the inputs, all binary values in lowercase hex (long
//! values continue on further lines with the same key, to be concatenated).

use std::collections::BTreeMap;
use std::path::PathBuf;

use custody_format::chain::verify_chain;
use custody_format::digest::{DigestStream, Framing, MediaKind, PacketDigester};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::TreeHead;
use custody_format::merkle::{self, MerkleError};
use custody_format::primitives::{self, DOMAIN_RECEIPT_SIGNATURE, DOMAIN_RECORD_SIGNATURE};
use custody_format::receipt::Receipt;
use custody_format::record::{
    CutReason, DroppedStream, EndReason, Follows, Gap, Record, SignedRecord,
};
use custody_format::report::{CheckState, Verdict};
use custody_format::signed::Signed;
use custody_format::testkit;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

struct Vector {
    comment: &'static str,
    kind: &'static str,
    expect: String,
    fields: Vec<(&'static str, String)>,
}

impl Vector {
    fn new(kind: &'static str, comment: &'static str, expect: impl Into<String>) -> Self {
        Vector { comment, kind, expect: expect.into(), fields: Vec::new() }
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.push((key, value.into()));
        self
    }

    fn hex(self, key: &'static str, bytes: &[u8]) -> Self {
        self.with(key, hex::encode(bytes))
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for line in self.comment.lines() {
            out.push_str(&format!("comment: {}\n", line.trim()));
        }
        out.push_str(&format!("kind: {}\nexpect: {}\n", self.kind, self.expect));
        for (k, v) in &self.fields {
            // Hex values are wrapped at 128 characters; the driver concatenates.
            if v.len() > 128 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                for chunk in v.as_bytes().chunks(128) {
                    out.push_str(&format!("{k}: {}\n", std::str::from_utf8(chunk).unwrap()));
                }
            } else {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out
    }
}

fn concat(recs: &[SignedRecord]) -> Vec<u8> {
    testkit::concat(recs)
}

/// Re-signs `record` with the testkit key `signer`.
fn resign(record: Record, signer: &str) -> SignedRecord {
    SignedRecord::sign(record, &testkit::key(signer))
}

fn raw_object(kind: u8, fields: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in fields {
        body.push(*t);
        body.extend_from_slice(&(v.len() as u32).to_be_bytes());
        body.extend_from_slice(v);
    }
    let mut out = b"CSTD\x01".to_vec();
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn signed_raw(object: &[u8], signer: &str) -> Vec<u8> {
    let mut out = object.to_vec();
    out.extend_from_slice(&primitives::sign(
        &testkit::key(signer),
        DOMAIN_RECORD_SIGNATURE,
        object,
    ));
    out
}

/// How a vector names a stream kind (`dropped-stream: other mov_text`).
fn kind_name(k: &MediaKind) -> &'static str {
    match k {
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Other => "other",
    }
}

fn generate() -> Vec<(String, Vector)> {
    let mut v: Vec<(String, Vector)> = Vec::new();
    let device = testkit::public("device").to_string();
    let full = testkit::recording(1, "device", 3, true).unwrap();

    // --- single records ---
    for (name, rec, what) in [
        ("record-header-valid", &full[0], "A recording header, validly signed."),
        ("record-segment-valid", &full[1], "The first segment record, validly signed."),
        ("record-end-valid", &full[4], "An end record (reason: stopped), validly signed."),
    ] {
        v.push((
            name.into(),
            Vector::new("record", what, "ok")
                .with("device-key", &device)
                .hex("data", &rec.to_bytes())
                .hex("record-hash", &rec.hash()),
        ));
    }
    let seg = full[1].to_bytes();
    let mut bad_sig = seg.clone();
    let n = bad_sig.len();
    bad_sig[n - 1] ^= 0x01;
    v.push((
        "record-bad-signature".into(),
        Vector::new(
            "record",
            "A segment record whose signature has one bit flipped.",
            "failure: record.signature.invalid",
        )
        .with("device-key", &device)
        .hex("data", &bad_sig),
    ));
    let mut wrong_domain = full[1].bytes().to_vec();
    wrong_domain.extend_from_slice(&primitives::sign(
        &testkit::key("device"),
        DOMAIN_RECEIPT_SIGNATURE,
        full[1].bytes(),
    ));
    v.push(("record-wrong-domain".into(), Vector::new("record",
        "A segment record signed by the right key but under the receipt domain string:\nthe signature must not verify as a record signature.",
        "failure: record.signature.invalid").with("device-key", &device).hex("data", &wrong_domain)));
    let other_key = testkit::public("other").to_string();
    v.push((
        "record-wrong-key".into(),
        Vector::new(
            "record",
            "A valid segment record checked against a key that did not sign it.",
            "failure: record.signature.invalid",
        )
        .with("device-key", &other_key)
        .hex("data", &seg),
    ));
    let mut version2 = seg.clone();
    version2[4] = 2;
    v.push((
        "record-unknown-version".into(),
        Vector::new(
            "record",
            "Format version byte set to 2: unknown versions are refused, not guessed at.",
            "error: unsupported-version",
        )
        .with("device-key", &device)
        .hex("data", &version2),
    ));
    let mut bad_magic = seg.clone();
    bad_magic[0] = b'X';
    v.push((
        "record-bad-magic".into(),
        Vector::new("record", "The magic is not CSTD.", "error: bad-magic")
            .with("device-key", &device)
            .hex("data", &bad_magic),
    ));
    let mut trailing = seg.clone();
    trailing.push(0);
    v.push((
        "record-trailing-bytes".into(),
        Vector::new(
            "record",
            "A valid signed record followed by one extra byte.",
            "error: trailing-bytes",
        )
        .with("device-key", &device)
        .hex("data", &trailing),
    ));
    v.push((
        "record-truncated".into(),
        Vector::new(
            "record",
            "A signed record cut short inside its signature.",
            "error: truncated",
        )
        .with("device-key", &device)
        .hex("data", &seg[..seg.len() - 20]),
    ));
    let mut oversized = raw_object(2, &[]);
    oversized[6..10].copy_from_slice(&(70_000u32).to_be_bytes());
    v.push(("record-oversized".into(), Vector::new("record",
        "An object header declaring a 70000-byte body, over the 65536-byte object limit;\nrefused before reading the body.",
        "error: too-large").with("device-key", &device).hex("data", &oversized)));
    let id = [1u8; 16];
    let dup = raw_object(2, &[(1, &id), (1, &id)]);
    v.push((
        "record-duplicate-field".into(),
        Vector::new(
            "record",
            "A segment record whose recording_id field (tag 1) appears twice.",
            "error: duplicate-field",
        )
        .with("device-key", &device)
        .hex("data", &signed_raw(&dup, "device")),
    ));
    let disorder = raw_object(2, &[(2, &1u64.to_be_bytes()), (1, &id)]);
    v.push((
        "record-field-out-of-order".into(),
        Vector::new(
            "record",
            "Fields must appear in increasing tag order; here tag 2 comes before tag 1.",
            "error: field-out-of-order",
        )
        .with("device-key", &device)
        .hex("data", &signed_raw(&disorder, "device")),
    ));
    let mut unknown = full[1].bytes().to_vec();
    let extra = [99u8, 0, 0, 0, 1, 0xaa];
    unknown.extend_from_slice(&extra);
    let body_len = u32::from_be_bytes(unknown[6..10].try_into().unwrap()) + extra.len() as u32;
    unknown[6..10].copy_from_slice(&body_len.to_be_bytes());
    v.push(("record-unknown-field".into(), Vector::new("record",
        "A segment record with an extra field of unknown tag 99, validly signed:\nunknown fields are refused, not skipped.",
        "error: unknown-field").with("device-key", &device).hex("data", &signed_raw(&unknown, "device"))));
    let short_seq = raw_object(2, &[(1, &id), (2, &[0, 1])]);
    v.push((
        "record-wrong-field-length".into(),
        Vector::new(
            "record",
            "The seq field (a u64) holds 2 bytes instead of 8.",
            "error: field-length",
        )
        .with("device-key", &device)
        .hex("data", &signed_raw(&short_seq, "device")),
    ));
    let missing = raw_object(3, &[(1, &id), (2, &5u64.to_be_bytes())]);
    v.push((
        "record-missing-field".into(),
        Vector::new(
            "record",
            "An end record that stops after recording_id and seq.",
            "error: missing-field",
        )
        .with("device-key", &device)
        .hex("data", &signed_raw(&missing, "device")),
    ));

    // --- the optional fields of docs/format.md 4.1 (rotation, dropped_streams) and 4.3
    // (source_duration_us); the page's record.js must read them as this crate does ---
    if let Record::Header(mut h) = full[0].record().clone() {
        h.rotation = Some(90);
        h.dropped_streams = vec![
            DroppedStream { kind: MediaKind::Other, codec: "mov_text".into() },
            DroppedStream { kind: MediaKind::Audio, codec: "opus".into() },
        ];
        let mut vector = Vector::new(
            "record",
            "A recording header turned 90 degrees (tag 16) that dropped a subtitle and a second\naudio stream (tag 17), validly signed.",
            "ok",
        )
        .with("device-key", &device);
        let rec = resign(Record::Header(h.clone()), "device");
        vector = vector
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash())
            .with("rotation", "90");
        for d in &h.dropped_streams {
            vector = vector.with("dropped-stream", format!("{} {}", kind_name(&d.kind), d.codec));
        }
        v.push(("record-header-rotation-dropped".into(), vector));
        h.rotation = Some(45);
        h.dropped_streams = Vec::new();
        v.push((
            "record-header-rotation-invalid".into(),
            Vector::new(
                "record",
                "A recording header whose rotation (tag 16) is 45 degrees, validly signed:\nonly 0, 90, 180 and 270 are rotations.",
                "error: invalid-value",
            )
            .with("device-key", &device)
            .hex("data", &resign(Record::Header(h), "device").to_bytes()),
        ));
    }
    if let Record::End(mut e) = full[4].record().clone() {
        e.source_duration_us = Some(12_000_000);
        let rec = resign(Record::End(e), "device");
        v.push((
            "record-end-source-duration".into(),
            Vector::new(
                "record",
                "An end record carrying source_duration_us (tag 11), the duration an imported source\ndeclares: 12 s. Validly signed.",
                "ok",
            )
            .with("device-key", &device)
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash())
            .with("source-duration-us", "12000000"),
        ));
    }

    // --- the reconnect fields of docs/format.md 4.1 (follows_*, tags 18-19), 4.2 (gap,
    // tags 16-18, cut 4) and 4.3 (reason 4 sender-changed, continued_in tag 12) ---
    if let Record::Segment(mut g) = full[2].record().clone() {
        g.gap = Some(Gap {
            wall_from_us: g.wall_first_us - 2_100_000,
            wall_to_us: g.wall_first_us,
            media_offset_us: -1_234_567,
        });
        let rec = resign(Record::Segment(g.clone()), "device");
        v.push((
            "record-segment-gap".into(),
            Vector::new(
                "record",
                "A segment record that is the first after a gap in a live input (tags 16-18: 2.1 s\nwithout input, timestamps moved by -1234567 us), validly signed.",
                "ok",
            )
            .with("device-key", &device)
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash())
            .with("gap", "present"),
        ));
        g.cut = CutReason::InputLost;
        g.gap = None;
        let rec = resign(Record::Segment(g), "device");
        v.push((
            "record-segment-cut-input-lost".into(),
            Vector::new(
                "record",
                "A segment record cut because the input was lost (cut 4), validly signed.",
                "ok",
            )
            .with("device-key", &device)
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash()),
        ));
    }
    if let Record::Header(mut h) = full[0].record().clone() {
        h.follows = Some(Follows { recording: RecordingId([0x42; 16]), end: [0x17; 32] });
        let rec = resign(Record::Header(h), "device");
        v.push((
            "record-header-follows".into(),
            Vector::new(
                "record",
                "A recording header that continues another recording (tags 18-19: its id and its\nend record's hash), validly signed.",
                "ok",
            )
            .with("device-key", &device)
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash())
            .with("follows", "present"),
        ));
    }
    if let Record::End(mut e) = full[4].record().clone() {
        e.reason = EndReason::SenderChanged;
        e.continued_in = Some(RecordingId([0x43; 16]));
        let rec = resign(Record::End(e), "device");
        v.push((
            "record-end-sender-changed".into(),
            Vector::new(
                "record",
                "An end record with reason 4 (sender-changed) naming the recording that continues it\n(tag 12), validly signed.",
                "ok",
            )
            .with("device-key", &device)
            .hex("data", &rec.to_bytes())
            .hex("record-hash", &rec.hash())
            .with("continued-in", "present"),
        ));
    }

    // --- chains ---
    let chain = |name: &str, comment: &'static str, expect: &str, bytes: &[u8]| {
        (
            name.to_string(),
            Vector::new("chain", comment, expect).with("device-key", &device).hex("data", bytes),
        )
    };
    v.push(chain(
        "chain-complete",
        "Header, three segments and an end record: intact and complete.",
        "intact-complete",
        &concat(&full),
    ));
    let cut = testkit::recording(1, "device", 3, false).unwrap();
    v.push(chain("chain-cut-off", "Header and three segments, no end record: cut off after record 3,\nwhich is not tampering.",
        "intact-cut-off 3", &concat(&cut)));
    let mut gap = full.clone();
    gap.remove(2);
    v.push(chain(
        "chain-gap",
        "Segment 2 removed: a gap, and the end record's totals no longer add up.",
        "tampered: chain.end.totals.mismatch chain.gap",
        &concat(&gap),
    ));
    let mut dup = full.clone();
    dup.insert(2, full[2].clone());
    v.push(chain(
        "chain-duplicate",
        "Segment 2 stored twice.",
        "tampered: chain.duplicate",
        &concat(&dup),
    ));
    let mut swapped = full.clone();
    swapped.swap(2, 3);
    v.push(chain(
        "chain-reordered",
        "Segments 2 and 3 swapped.",
        "tampered: chain.reordered",
        &concat(&swapped),
    ));
    let mut relinked = full.clone();
    if let Record::Segment(mut s) = full[2].record().clone() {
        s.prev = [0u8; 32];
        relinked[2] = resign(Record::Segment(s), "device");
    }
    v.push(chain("chain-broken-link",
        "Segment 2's prev hash replaced and the record re-signed by the device key:\nthe signature is valid but the link is not.",
        "tampered: chain.link.broken", &concat(&relinked)));
    let other = testkit::recording(2, "device", 3, true).unwrap();
    let mut spliced = full.clone();
    spliced[2] = other[2].clone();
    v.push(chain(
        "chain-spliced",
        "Segment 2 replaced by segment 2 of another recording by the same device.",
        "tampered: chain.link.broken record.recording_id.mismatch",
        &concat(&spliced),
    ));
    let all = concat(&full);
    v.push(chain(
        "chain-truncated",
        "The stored chain cut 10 bytes short of its end.",
        "tampered: record.parse.failed",
        &all[..all.len() - 10],
    ));
    let mut forged_end = full.clone();
    if let Record::End(mut e) = full[4].record().clone() {
        e.segments = 2;
        e.reason = EndReason::InputEnded;
        forged_end[4] = resign(Record::End(e), "device");
    }
    v.push(chain(
        "chain-end-totals-forged",
        "The end record rewritten to claim two segments, re-signed by the device key.",
        "tampered: chain.end.totals.mismatch",
        &concat(&forged_end),
    ));
    let mut after_end = full.clone();
    let mut extra_seg = testkit::recording(1, "device", 4, false).unwrap();
    if let Record::Segment(mut s) = extra_seg.remove(4).record().clone() {
        s.seq = 5;
        s.prev = full[4].hash();
        after_end.push(resign(Record::Segment(s), "device"));
    }
    v.push(chain(
        "chain-after-end",
        "A segment appended after the end record, correctly linked and signed.",
        "tampered: chain.after_end",
        &concat(&after_end),
    ));
    let impostor = testkit::recording(1, "impostor", 3, true).unwrap();
    v.push(chain(
        "chain-other-device",
        "A well-formed chain signed throughout by a different device key from the one expected.",
        "tampered: record.device_key.mismatch record.signature.invalid",
        &concat(&impostor),
    ));
    v.push(chain(
        "chain-no-header",
        "The header removed; the chain starts at segment 1.",
        "tampered: chain.header.missing",
        &concat(&full[1..]),
    ));
    v.push(chain(
        "chain-empty",
        "No records at all: nothing can be checked.",
        "could-not-check",
        &[],
    ));

    // --- Merkle proofs (RFC 9162) over 7 leaves "leaf-0" .. "leaf-6" ---
    let leaves: Vec<[u8; 32]> =
        (0..7).map(|i| merkle::leaf_hash(format!("leaf-{i}").as_bytes())).collect();
    let root7 = merkle::root(&leaves);
    let proof = merkle::inclusion_proof(&leaves, 3).unwrap();
    let join = |p: &[[u8; 32]]| p.iter().map(hex::encode).collect::<Vec<_>>().join(" ");
    let incl = |comment, expect: &str, index: u64, proof: &[[u8; 32]]| {
        Vector::new("merkle-inclusion", comment, expect)
            .hex("leaf-data", b"leaf-3")
            .with("index", index.to_string())
            .with("tree-size", "7")
            .hex("root", &root7)
            .with("proof", join(proof))
    };
    v.push((
        "merkle-inclusion-valid".into(),
        incl("Inclusion of leaf 3 (data \"leaf-3\") in a tree of 7 leaves.", "ok", 3, &proof),
    ));
    let mut bad = proof.clone();
    bad[1][0] ^= 0x80;
    v.push((
        "merkle-inclusion-bad-proof".into(),
        incl(
            "The same proof with one bit of its second hash flipped.",
            "error: root-mismatch",
            3,
            &bad,
        ),
    ));
    v.push((
        "merkle-inclusion-wrong-index".into(),
        incl("The valid proof presented for index 2.", "error: root-mismatch", 2, &proof),
    ));
    v.push((
        "merkle-inclusion-short-proof".into(),
        incl(
            "The valid proof with its last hash dropped.",
            "error: proof-wrong-length",
            3,
            &proof[..proof.len() - 1],
        ),
    ));
    let root3 = merkle::root(&leaves[..3]);
    let cons = merkle::consistency_proof(&leaves, 3, 7).unwrap();
    let consv = |comment, expect: &str, proof: &[[u8; 32]]| {
        Vector::new("merkle-consistency", comment, expect)
            .with("old-size", "3")
            .with("new-size", "7")
            .hex("old-root", &root3)
            .hex("new-root", &root7)
            .with("proof", join(proof))
    };
    v.push((
        "merkle-consistency-valid".into(),
        consv("Consistency of the tree of the first 3 leaves with the tree of 7.", "ok", &cons),
    ));
    let mut bad = cons.clone();
    bad[0][31] ^= 1;
    v.push((
        "merkle-consistency-bad-proof".into(),
        consv(
            "The same proof with one bit flipped: a forked history.",
            "error: root-mismatch",
            &bad,
        ),
    ));

    // --- packet digest ---
    let sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
    let idr: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x21];
    let slice: &[u8] = &[0x41, 0x9a, 0x21, 0x6c];
    let aac: &[u8] = &[0x21, 0x10, 0x04, 0x60, 0x8c];
    let annexb = |units: &[&[u8]]| {
        units.iter().flat_map(|u| [&[0u8, 0, 0, 1][..], u].concat()).collect::<Vec<u8>>()
    };
    let avcc = |units: &[&[u8]]| {
        units
            .iter()
            .flat_map(|u| [&(u.len() as u32).to_be_bytes()[..], u].concat())
            .collect::<Vec<u8>>()
    };
    let mut adts = vec![0xff, 0xf1, 0x50, 0x80, 0, 0, 0xfc];
    let len = aac.len() + 7;
    adts[4] = ((len >> 3) & 0xff) as u8;
    adts[5] = (((len & 7) << 5) as u8) | 0x1f;
    adts.extend_from_slice(aac);
    let streams_ts = [
        DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing: Framing::AnnexB },
        DigestStream { kind: MediaKind::Audio, codec: "aac".into(), framing: Framing::Whole },
    ];
    let mut d = PacketDigester::new(&streams_ts);
    let ts_packets: Vec<(usize, bool, Vec<u8>)> =
        vec![(0, true, annexb(&[sps, idr])), (1, true, adts.clone()), (0, false, annexb(&[slice]))];
    for (s, k, p) in &ts_packets {
        d.push(*s, *k, p);
    }
    let digest = d.finish();
    let mp4_packets: Vec<(usize, bool, Vec<u8>)> =
        vec![(1, true, aac.to_vec()), (0, true, avcc(&[idr])), (0, false, avcc(&[slice]))];
    let pd = |comment, framing: &str, packets: &[(usize, bool, Vec<u8>)]| {
        let mut vec =
            Vector::new("packet-digest", comment, format!("digest {}", hex::encode(digest.0)))
                .with("stream", format!("video h264 {framing}"))
                .with("stream", "audio aac whole");
        for (s, k, p) in packets {
            vec = vec.with(
                "packet",
                format!("{s} {} {}", if *k { "key" } else { "delta" }, hex::encode(p)),
            );
        }
        vec
    };
    v.push(("packet-digest-mpegts-framing".into(), pd(
        "H.264 with start codes and a repeated SPS, AAC behind ADTS headers, as MPEG-TS carries them.", "annexb", &ts_packets)));
    v.push(("packet-digest-mp4-framing".into(), pd(
        "The same media as packet-digest-mpegts-framing, framed as MP4 carries it (4-byte lengths,\nno in-band SPS, raw AAC, different interleaving): the same digest.", "length4", &mp4_packets)));

    // --- server objects ---
    let server = testkit::key("server");
    let receipt = Signed::sign(
        Receipt {
            recording_id: full[1].record().recording_id(),
            seq: 1,
            record_hash: full[1].hash(),
            ciphertext_sha256: match full[1].record() {
                Record::Segment(s) => Some(s.ciphertext_sha256),
                _ => None,
            },
            device_key: testkit::public("device"),
            received_at_us: testkit::T0_US + 2_300_000,
            log_index: 4,
            tree_size: 5,
            tree_root: [0x11; 32],
        },
        &server,
    );
    v.push((
        "receipt-valid".into(),
        Vector::new("receipt", "A server receipt for segment 1.", "ok")
            .with("server-key", testkit::public("server").to_string())
            .hex("data", &receipt.to_bytes()),
    ));
    v.push(("receipt-other-server".into(), Vector::new("receipt",
        "The same receipt checked against a different server key: a receipt from another\nserver proves nothing here.",
        "failure: receipt.signature.invalid").with("server-key", testkit::public("other-server").to_string())
        .hex("data", &receipt.to_bytes())));
    let head = Signed::sign(
        TreeHead { tree_size: 7, root_hash: root7, timestamp_us: testkit::T0_US + 9_000_000 },
        &server,
    );
    v.push((
        "tree-head-valid".into(),
        Vector::new("tree-head", "A signed head of the 7-leaf tree above.", "ok")
            .with("server-key", testkit::public("server").to_string())
            .hex("data", &head.to_bytes()),
    ));
    let pk = testkit::public("device");
    v.push((
        "key-fingerprint".into(),
        Vector::new(
            "fingerprint",
            "The fingerprint of the testkit device key.",
            format!("fingerprint {}", pk.fingerprint()),
        )
        .with("key", pk.to_string()),
    ));
    v
}

fn write_or_compare(regenerate: bool) {
    let generated = generate();
    let mut names = std::collections::BTreeSet::new();
    for (name, vector) in &generated {
        assert!(names.insert(name.clone()), "vector name {name} used twice");
        let path = dir().join(format!("{name}.txt"));
        let text = vector.render();
        if regenerate {
            std::fs::write(&path, text).unwrap();
        } else {
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; regenerate the vectors", path.display()));
            assert_eq!(on_disk, text, "{name} differs from what this crate generates");
        }
    }
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".txt") {
            assert!(names.contains(stem), "{name} is not generated any more");
        }
    }
}

#[test]
fn the_vector_files_are_what_this_crate_generates() {
    write_or_compare(std::env::var_os("CUSTODY_REGENERATE_VECTORS").is_some());
}

/// A parsed vector file.
struct File {
    kind: String,
    expect: String,
    values: BTreeMap<String, Vec<String>>,
}

impl File {
    fn parse(text: &str) -> File {
        let mut f = File { kind: String::new(), expect: String::new(), values: BTreeMap::new() };
        for line in text.lines() {
            let (k, v) = line.split_once(": ").unwrap_or_else(|| panic!("bad line {line:?}"));
            match k {
                "comment" => {}
                "kind" => f.kind = v.into(),
                "expect" => f.expect = v.into(),
                _ => f.values.entry(k.into()).or_default().push(v.into()),
            }
        }
        f
    }

    fn all(&self, k: &str) -> &[String] {
        self.values.get(k).map_or(&[], |v| v.as_slice())
    }

    fn one(&self, k: &str) -> &str {
        &self.all(k)[0]
    }

    fn bytes(&self, k: &str) -> Vec<u8> {
        hex::decode(self.all(k).concat()).unwrap()
    }

    fn key(&self, k: &str) -> PublicKey {
        PublicKey::parse(self.one(k)).unwrap()
    }

    fn hashes(&self, k: &str) -> Vec<[u8; 32]> {
        self.one(k)
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect()
    }
}

/// The optional record fields a vector names (`rotation`, `dropped-stream`,
/// `source-duration-us`) are what the record holds; a vector that names none holds none.
fn check_optional_fields(f: &File, record: &Record) {
    let (rotation, dropped, source) = match record {
        Record::Header(h) => (
            h.rotation.map(|r| r.to_string()),
            h.dropped_streams
                .iter()
                .map(|d| format!("{} {}", kind_name(&d.kind), d.codec))
                .collect(),
            None,
        ),
        Record::End(e) => (None, Vec::new(), e.source_duration_us.map(|d| d.to_string())),
        Record::Segment(_) => (None, Vec::new(), None),
    };
    assert_eq!(f.values.get("rotation").map(|v| v[0].clone()), rotation, "rotation");
    assert_eq!(f.all("dropped-stream"), dropped.as_slice(), "dropped streams");
    assert_eq!(f.values.get("source-duration-us").map(|v| v[0].clone()), source, "source duration");
    let present = |b: bool| b.then(|| "present".to_string());
    let (gap, follows, continued) = match record {
        Record::Header(h) => (None, present(h.follows.is_some()), None),
        Record::Segment(g) => (present(g.gap.is_some()), None, None),
        Record::End(e) => (None, None, present(e.continued_in.is_some())),
    };
    assert_eq!(f.values.get("gap").map(|v| v[0].clone()), gap, "gap");
    assert_eq!(f.values.get("follows").map(|v| v[0].clone()), follows, "follows");
    assert_eq!(f.values.get("continued-in").map(|v| v[0].clone()), continued, "continued in");
}

fn merkle_outcome(r: Result<(), MerkleError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(MerkleError::RootMismatch) => "error: root-mismatch".into(),
        Err(MerkleError::ProofWrongLength { .. }) => "error: proof-wrong-length".into(),
        Err(MerkleError::ProofTooLong { .. }) => "error: proof-too-long".into(),
        Err(MerkleError::IndexOutOfRange { .. }) => "error: index-out-of-range".into(),
        Err(e) => format!("error: {e:?}"),
    }
}

fn run(f: &File) -> String {
    match f.kind.as_str() {
        "record" => match SignedRecord::parse(&f.bytes("data")) {
            Err(e) => format!("error: {}", e.code()),
            Ok(r) if !r.verify(&f.key("device-key")) => "failure: record.signature.invalid".into(),
            Ok(r) => {
                if let Some(h) = f.values.get("record-hash") {
                    assert_eq!(hex::encode(r.hash()), h[0], "record hash");
                }
                check_optional_fields(f, r.record());
                "ok".into()
            }
        },
        "chain" => {
            let report = verify_chain(&f.bytes("data"), Some(&f.key("device-key")));
            let mut fails: Vec<&str> = report
                .checks
                .iter()
                .filter(|c| c.state == CheckState::Failure)
                .map(|c| c.code)
                .collect();
            fails.sort();
            fails.dedup();
            match Verdict::from_checks(&report.checks, report.cut_off) {
                Verdict::IntactComplete => "intact-complete".into(),
                Verdict::IntactCutOff { last_seq, .. } => format!("intact-cut-off {last_seq}"),
                Verdict::Tampered => format!("tampered: {}", fails.join(" ")),
                Verdict::SignerNotConfirmed { .. } => "signer-not-confirmed".into(),
                Verdict::CouldNotCheck => "could-not-check".into(),
            }
        }
        "merkle-inclusion" => merkle_outcome(merkle::verify_inclusion(
            &merkle::leaf_hash(&f.bytes("leaf-data")),
            f.one("index").parse().unwrap(),
            f.one("tree-size").parse().unwrap(),
            &f.hashes("proof"),
            &f.bytes("root").try_into().unwrap(),
        )),
        "merkle-consistency" => merkle_outcome(merkle::verify_consistency(
            f.one("old-size").parse().unwrap(),
            f.one("new-size").parse().unwrap(),
            &f.bytes("old-root").try_into().unwrap(),
            &f.bytes("new-root").try_into().unwrap(),
            &f.hashes("proof"),
        )),
        "packet-digest" => {
            let streams: Vec<DigestStream> = f
                .all("stream")
                .iter()
                .map(|s| {
                    let parts: Vec<&str> = s.split(' ').collect();
                    DigestStream {
                        kind: match parts[0] {
                            "video" => MediaKind::Video,
                            "audio" => MediaKind::Audio,
                            _ => MediaKind::Other,
                        },
                        codec: parts[1].into(),
                        framing: match parts[2] {
                            "annexb" => Framing::AnnexB,
                            "whole" => Framing::Whole,
                            l => Framing::LengthPrefixed(
                                l.trim_start_matches("length").parse().unwrap(),
                            ),
                        },
                    }
                })
                .collect();
            let mut d = PacketDigester::new(&streams);
            for p in f.all("packet") {
                let parts: Vec<&str> = p.split(' ').collect();
                assert!(d.push(
                    parts[0].parse().unwrap(),
                    parts[1] == "key",
                    &hex::decode(parts[2]).unwrap()
                ));
            }
            format!("digest {}", hex::encode(d.finish().0))
        }
        "receipt" => match Signed::<Receipt>::parse(&f.bytes("data")) {
            Err(e) => format!("error: {}", e.code()),
            Ok(r) if r.verify(&f.key("server-key")) => "ok".into(),
            Ok(_) => "failure: receipt.signature.invalid".into(),
        },
        "tree-head" => match Signed::<TreeHead>::parse(&f.bytes("data")) {
            Err(e) => format!("error: {}", e.code()),
            Ok(r) if r.verify(&f.key("server-key")) => "ok".into(),
            Ok(_) => "failure: tree-head.signature.invalid".into(),
        },
        "fingerprint" => format!("fingerprint {}", f.key("key").fingerprint()),
        other => panic!("unknown vector kind {other}"),
    }
}

#[test]
fn every_vector_holds() {
    let mut count = 0;
    let mut entries: Vec<_> =
        std::fs::read_dir(dir()).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let file = File::parse(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(run(&file), file.expect, "{}", path.display());
        count += 1;
    }
    assert!(count >= 25, "only {count} vectors");
}
