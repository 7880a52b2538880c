//! Property tests: every record and server object survives encode → parse unchanged, and
//! no single-byte change to a signed object leaves a valid signature on different content.

use custody_format::chain::verify_chain;
use custody_format::digest::MediaKind;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::log::{EntryType, LogEntry, TreeHead};
use custody_format::receipt::Receipt;
use custody_format::record::{
    Container, CutReason, EndReason, EndRecord, Follows, Gap, ImportedFile, Origin, Record,
    RecordingHeader, SegmentRecord, SignedRecord, StreamInfo,
};
use custody_format::signed::Signed;
use custody_format::testkit;
use proptest::prelude::*;

fn hash() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn key() -> impl Strategy<Value = PublicKey> {
    "[a-z]{1,8}".prop_map(|l| testkit::public(&l))
}

fn stream() -> impl Strategy<Value = StreamInfo> {
    (
        prop_oneof![Just(MediaKind::Video), Just(MediaKind::Audio), Just(MediaKind::Other)],
        "[a-z0-9_]{1,12}",
        any::<(u32, u32, u32, u32, u32, u32, u32, u32)>(),
    )
        .prop_map(|(kind, codec, (w, h, fn_, fd, sr, ch, tn, td))| StreamInfo {
            kind,
            codec,
            width: w,
            height: h,
            frame_rate: (fn_, fd),
            sample_rate: sr,
            channels: ch,
            time_base: (tn, td),
        })
}

fn header() -> impl Strategy<Value = Record> {
    (
        any::<[u8; 16]>(),
        key(),
        any::<i64>(),
        any::<bool>(),
        "\\PC{0,60}",
        proptest::option::of((hash(), any::<u64>())),
        any::<(bool, u32, u32)>(),
        proptest::collection::vec(stream(), 0..4),
        proptest::collection::vec("age1[a-z0-9]{10,60}", 0..3),
        "\\PC{0,30}",
        proptest::option::of((any::<[u8; 16]>(), hash())),
    )
        .prop_map(
            |(
                id,
                device_key,
                t,
                live,
                input,
                imp,
                (ts, target, max),
                streams,
                recipients,
                sw,
                fo,
            )| {
                Record::Header(RecordingHeader {
                    recording_id: RecordingId(id),
                    device_key,
                    started_at_us: t,
                    origin: if live { Origin::Live } else { Origin::Imported },
                    input,
                    imported_file: imp.map(|(sha256, len)| ImportedFile { sha256, len }),
                    container: if ts { Container::MpegTs } else { Container::FragmentedMp4 },
                    target_segment_ms: target,
                    max_segment_ms: max,
                    streams,
                    recipients,
                    software: sw,
                    rotation: None,
                    dropped_streams: Vec::new(),
                    follows: fo.map(|(r, end)| Follows { recording: RecordingId(r), end }),
                })
            },
        )
}

fn segment() -> impl Strategy<Value = Record> {
    (
        any::<[u8; 16]>(),
        1..u64::MAX,
        (hash(), hash(), hash(), hash()),
        any::<(i64, i64, i64, i64)>(),
        proptest::collection::vec(any::<u64>(), 0..4),
        any::<(u64, u64, u64)>(),
        prop_oneof![
            Just(CutReason::Keyframe),
            Just(CutReason::ForcedCap),
            Just(CutReason::Final),
            Just(CutReason::InputLost)
        ],
        proptest::option::of(any::<(i64, i64, i64)>()),
    )
        .prop_map(
            |(id, seq, (prev, ps, cs, pd), (wf, wl, ms, me), packets, (vf, pl, cl), cut, gap)| {
                Record::Segment(SegmentRecord {
                    recording_id: RecordingId(id),
                    seq,
                    prev,
                    wall_first_us: wf,
                    wall_last_us: wl,
                    media_start_us: ms,
                    media_end_us: me,
                    stream_packets: packets,
                    video_frames: vf,
                    plaintext_len: pl,
                    plaintext_sha256: ps,
                    ciphertext_len: cl,
                    ciphertext_sha256: cs,
                    packet_digest: pd,
                    cut,
                    gap: gap.map(|(wall_from_us, wall_to_us, media_offset_us)| Gap {
                        wall_from_us,
                        wall_to_us,
                        media_offset_us,
                    }),
                })
            },
        )
}

fn end() -> impl Strategy<Value = Record> {
    (
        any::<[u8; 16]>(),
        1..u64::MAX,
        hash(),
        any::<i64>(),
        prop_oneof![
            Just(EndReason::Stopped),
            Just(EndReason::InputEnded),
            Just(EndReason::Error),
            Just(EndReason::SenderChanged)
        ],
        proptest::option::of("\\PC{0,80}"),
        any::<(u64, u64, u64, u64)>(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<[u8; 16]>()),
    )
        .prop_map(|(id, seq, prev, at, reason, message, (n, d, p, c), source, next)| {
            Record::End(EndRecord {
                recording_id: RecordingId(id),
                seq,
                prev,
                ended_at_us: at,
                reason,
                message,
                segments: n,
                media_duration_us: d,
                plaintext_bytes: p,
                ciphertext_bytes: c,
                source_duration_us: source,
                continued_in: next.map(RecordingId),
            })
        })
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![header(), segment(), end()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn records_round_trip(rec in record()) {
        let bytes = rec.encode();
        prop_assert_eq!(Record::decode(&bytes).unwrap(), rec.clone());
        let signed = SignedRecord::sign(rec, &testkit::key("device"));
        let stored = signed.to_bytes();
        let parsed = SignedRecord::parse(&stored).unwrap();
        prop_assert_eq!(parsed.bytes(), &bytes[..]);
        prop_assert!(parsed.verify(&testkit::public("device")));
    }

    #[test]
    fn no_single_byte_change_keeps_a_valid_signature(rec in record(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let signed = SignedRecord::sign(rec, &testkit::key("device"));
        let mut stored = signed.to_bytes();
        let i = pos.index(stored.len());
        stored[i] ^= flip;
        if let Ok(changed) = SignedRecord::parse(&stored) {
            prop_assert!(!changed.verify(&testkit::public("device")));
        }
    }

    #[test]
    fn chain_checking_never_panics_on_mutated_chains(segments in 0u64..6, ended: bool, pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = testkit::concat(&testkit::recording(1, "device", segments, ended).unwrap());
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        let report = verify_chain(&bytes, Some(&testkit::public("device")));
        prop_assert!(report.checks.iter().any(|c| c.state == custody_format::report::CheckState::Failure));
    }

    #[test]
    fn server_objects_round_trip(id in any::<[u8; 16]>(), seq: u64, h in hash(), c in proptest::option::of(hash()), at: i64, idx in 0u64..1000, extra in 1u64..1000, actor in proptest::option::of("\\PC{0,20}")) {
        let server = testkit::key("server");
        let receipt = Receipt {
            recording_id: RecordingId(id), seq, record_hash: h, ciphertext_sha256: c,
            device_key: testkit::public("device"), received_at_us: at, log_index: idx,
            tree_size: idx + extra, tree_root: h,
        };
        let signed = Signed::sign(receipt.clone(), &server);
        let parsed = Signed::<Receipt>::parse(&signed.to_bytes()).unwrap();
        prop_assert_eq!(parsed.value(), &receipt);
        prop_assert!(parsed.verify(&testkit::public("server")));

        let head = TreeHead { tree_size: idx, root_hash: h, timestamp_us: at };
        let parsed = Signed::<TreeHead>::parse(&Signed::sign(head.clone(), &server).to_bytes()).unwrap();
        prop_assert_eq!(parsed.value(), &head);

        let mut entry = LogEntry::new(EntryType::Access, at);
        entry.actor = Some(actor.unwrap_or_default());
        entry.detail = Some("export".into());
        entry.recording_id = Some(RecordingId(id));
        prop_assert_eq!(LogEntry::decode(&entry.encode()).unwrap(), entry);
    }
}

#[test]
fn a_log_entry_missing_a_required_field_is_refused() {
    let mut entry = LogEntry::new(EntryType::SegmentReceived, 1);
    entry.device_key = Some(testkit::public("device"));
    entry.recording_id = Some(RecordingId([1; 16]));
    entry.seq = Some(1);
    entry.record_hash = Some([2; 32]);
    let err = LogEntry::decode(&entry.encode()).unwrap_err();
    assert_eq!(err.to_string(), "missing field `ciphertext_sha256`");
    entry.ciphertext_sha256 = Some([3; 32]);
    assert_eq!(LogEntry::decode(&entry.encode()).unwrap(), entry);
}
