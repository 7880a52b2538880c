//! Building a recording's hash chain, and checking one.
//!
//! [`ChainBuilder`] is how a device makes a chain: it numbers, links and signs each record.
//! [`verify_chain`] is how anybody checks one, from the stored bytes alone, and reports
//! every finding as a [`Check`] with a stable code rather than stopping at the first.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use thiserror::Error;

use crate::ids::{PublicKey, RecordingId};
use crate::record::{
    CutReason, EndReason, EndRecord, Gap, Hash, Record, RecordingHeader, SegmentRecord,
    SignedRecord,
};
use crate::report::{code, Check};

/// Largest distance between one segment's media end and the next one's start that still
/// counts as continuous, µs.
pub const MEDIA_CONTINUITY_TOLERANCE_US: i64 = 100_000;

/// Why a chain could not be started or extended.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainError {
    /// The header names a device key other than the signing key's.
    #[error("the header's device key is not the public half of the signing key")]
    KeyMismatch,
}

/// The fields of a segment record that the capture and the sealing provide; the builder
/// adds the recording id, the position and the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFields {
    /// Device time of the first packet, µs since the epoch.
    pub wall_first_us: i64,
    /// Device time of the last packet, µs since the epoch.
    pub wall_last_us: i64,
    /// Media time of the first packet, µs.
    pub media_start_us: i64,
    /// Media time at which the segment ends, µs.
    pub media_end_us: i64,
    /// Packets per stream, in header order.
    pub stream_packets: Vec<u64>,
    /// Video frames.
    pub video_frames: u64,
    /// Plaintext length.
    pub plaintext_len: u64,
    /// Plaintext SHA-256.
    pub plaintext_sha256: Hash,
    /// Sealed length.
    pub ciphertext_len: u64,
    /// Sealed SHA-256.
    pub ciphertext_sha256: Hash,
    /// Packet digest.
    pub packet_digest: Hash,
    /// Why it was cut there.
    pub cut: CutReason,
}

/// Makes a chain: header, then segments, then the end record, each numbered, linked to the
/// one before and signed. Cloning it lets a caller keep the state of the last record
/// it managed to save, should saving the next one fail.
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    key: SigningKey,
    recording_id: RecordingId,
    next_seq: u64,
    last_hash: Hash,
    first_media_start: Option<i64>,
    last_media_end: i64,
    plaintext_bytes: u64,
    ciphertext_bytes: u64,
    pending_gap: Option<Gap>,
}

impl ChainBuilder {
    /// Signs the header and returns the builder for what follows.
    pub fn start(
        header: RecordingHeader,
        key: SigningKey,
    ) -> Result<(Self, SignedRecord), ChainError> {
        if header.device_key != PublicKey::from(key.verifying_key()) {
            return Err(ChainError::KeyMismatch);
        }
        let recording_id = header.recording_id;
        let signed = SignedRecord::sign(Record::Header(header), &key);
        let builder = ChainBuilder {
            key,
            recording_id,
            next_seq: 1,
            last_hash: signed.hash(),
            first_media_start: None,
            last_media_end: 0,
            plaintext_bytes: 0,
            ciphertext_bytes: 0,
            pending_gap: None,
        };
        Ok((builder, signed))
    }

    /// The position the next record will take.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Makes the next segment record the first after a gap in a live input (segment tags
    /// 16–18): the sender was lost and a sender with the same streams connected again. The
    /// gap is part of the builder's state, so a caller that restores a clone after a failed
    /// save keeps it for the segment that is saved.
    pub fn gap_before_next(&mut self, gap: Gap) {
        self.pending_gap = Some(gap);
    }

    /// Signs the next segment record (with the gap [`ChainBuilder::gap_before_next`] set).
    pub fn segment(&mut self, s: SegmentFields) -> SignedRecord {
        let gap = self.pending_gap.take();
        self.first_media_start.get_or_insert(s.media_start_us);
        self.last_media_end = s.media_end_us;
        self.plaintext_bytes += s.plaintext_len;
        self.ciphertext_bytes += s.ciphertext_len;
        let record = Record::Segment(SegmentRecord {
            recording_id: self.recording_id,
            seq: self.next_seq,
            prev: self.last_hash,
            wall_first_us: s.wall_first_us,
            wall_last_us: s.wall_last_us,
            media_start_us: s.media_start_us,
            media_end_us: s.media_end_us,
            stream_packets: s.stream_packets,
            video_frames: s.video_frames,
            plaintext_len: s.plaintext_len,
            plaintext_sha256: s.plaintext_sha256,
            ciphertext_len: s.ciphertext_len,
            ciphertext_sha256: s.ciphertext_sha256,
            packet_digest: s.packet_digest,
            cut: s.cut,
            gap,
        });
        self.push(record)
    }

    /// Signs the end record, which closes the chain.
    pub fn end(self, ended_at_us: i64, reason: EndReason, message: Option<String>) -> SignedRecord {
        self.end_import(ended_at_us, reason, message, None)
    }

    /// Signs the end record of an import, with the duration its source file declares
    /// (tag 11), so that a reader can tell how much of the file the chain holds.
    pub fn end_import(
        self,
        ended_at_us: i64,
        reason: EndReason,
        message: Option<String>,
        source_duration_us: Option<u64>,
    ) -> SignedRecord {
        self.end_with(ended_at_us, reason, message, source_duration_us, None)
    }

    /// Signs the end record of a live recording whose sender came back with other streams
    /// (end reason `sender-changed`), naming the recording that continues it (tag 12).
    pub fn end_sender_changed(
        self,
        ended_at_us: i64,
        message: Option<String>,
        continued_in: RecordingId,
    ) -> SignedRecord {
        self.end_with(ended_at_us, EndReason::SenderChanged, message, None, Some(continued_in))
    }

    fn end_with(
        mut self,
        ended_at_us: i64,
        reason: EndReason,
        message: Option<String>,
        source_duration_us: Option<u64>,
        continued_in: Option<RecordingId>,
    ) -> SignedRecord {
        let record = Record::End(EndRecord {
            recording_id: self.recording_id,
            seq: self.next_seq,
            prev: self.last_hash,
            ended_at_us,
            reason,
            message,
            segments: self.next_seq - 1,
            media_duration_us: media_duration(self.first_media_start, self.last_media_end),
            plaintext_bytes: self.plaintext_bytes,
            ciphertext_bytes: self.ciphertext_bytes,
            source_duration_us,
            continued_in,
        });
        self.push(record)
    }

    fn push(&mut self, record: Record) -> SignedRecord {
        let signed = SignedRecord::sign(record, &self.key);
        self.last_hash = signed.hash();
        self.next_seq += 1;
        signed
    }
}

fn media_duration(first_start: Option<i64>, last_end: i64) -> u64 {
    first_start.map_or(0, |s| u64::try_from(last_end.saturating_sub(s)).unwrap_or(0))
}

/// What [`verify_chain`] found.
#[derive(Debug)]
pub struct ChainReport {
    /// Every check, in the order made.
    pub checks: Vec<Check>,
    /// The records that could be read, in stored order.
    pub records: Vec<SignedRecord>,
    /// The header, if the chain starts with one.
    pub header: Option<RecordingHeader>,
    /// For a chain without an end record: its last position and the device time of its
    /// last packet.
    pub cut_off: Option<(u64, i64)>,
}

/// Checks a stored chain (a concatenation of signed records, as in a bundle's
/// `records.bin`). If `device_key` is given the chain must be signed by it; otherwise by
/// the key its own header names.
pub fn verify_chain(bytes: &[u8], device_key: Option<&PublicKey>) -> ChainReport {
    let mut checks = Vec::new();
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match SignedRecord::read(rest) {
            Ok((rec, tail)) => {
                records.push(rec);
                rest = tail;
            }
            Err(e) => {
                checks.push(Check::new(
                    code::RECORD_PARSE_FAILED,
                    format!(
                        "record at position {} (byte {}) could not be read: {e}",
                        records.len(),
                        bytes.len() - rest.len()
                    ),
                ));
                break;
            }
        }
    }
    let mut report = ChainReport { checks, records, header: None, cut_off: None };
    if report.records.is_empty() {
        report.checks.push(Check::new(code::CHAIN_EMPTY, "the chain holds no readable record"));
        return report;
    }
    check_records(&mut report, device_key);
    report
}

fn check_records(report: &mut ChainReport, device_key: Option<&PublicKey>) {
    let checks = &mut report.checks;
    let records = &report.records;

    // The header and the key.
    let header = match records[0].record() {
        Record::Header(h) => Some(h.clone()),
        _ => None,
    };
    let Some(header) = header else {
        checks.push(Check::new(code::CHAIN_HEADER_MISSING, "the first record is not a header"));
        return;
    };
    let key = match device_key {
        Some(k) if *k != header.device_key => {
            checks.push(Check::new(
                code::RECORD_DEVICE_KEY_MISMATCH,
                format!(
                    "the header names device key {} but the recording must be signed by {}",
                    header.device_key.fingerprint(),
                    k.fingerprint()
                ),
            ));
            *k
        }
        Some(k) => *k,
        None => header.device_key,
    };

    // Signatures and recording ids, record by record.
    let mut signatures_ok = true;
    for rec in records {
        let seq = rec.record().seq();
        if !rec.verify(&key) {
            signatures_ok = false;
            checks.push(
                Check::new(
                    code::RECORD_SIGNATURE_INVALID,
                    format!("record {seq}'s signature does not verify with the device key"),
                )
                .at(seq),
            );
        }
        if rec.record().recording_id() != header.recording_id {
            checks.push(
                Check::new(
                    code::RECORD_RECORDING_ID_MISMATCH,
                    format!(
                        "record {seq} belongs to recording {}, not {}",
                        rec.record().recording_id(),
                        header.recording_id
                    ),
                )
                .at(seq),
            );
        }
        if seq == 0 && !std::ptr::eq(rec, &records[0]) {
            checks.push(
                Check::new(code::CHAIN_HEADER_MISPLACED, "a second header appears in the chain")
                    .at(0),
            );
        }
        if let Record::Segment(s) = rec.record() {
            if s.stream_packets.len() != header.streams.len() {
                checks.push(
                    Check::new(
                        code::CHAIN_STREAMS_MISMATCH,
                        format!(
                            "segment {seq} counts {} streams; the header lists {}",
                            s.stream_packets.len(),
                            header.streams.len()
                        ),
                    )
                    .at(seq),
                );
            }
        }
    }
    if signatures_ok {
        checks.push(Check::new(
            code::RECORD_SIGNATURE_VALID,
            format!("all {} records are signed by device key {}", records.len(), key.fingerprint()),
        ));
    }

    // Order: stored positions against chain positions.
    let seqs: Vec<u64> = records.iter().map(|r| r.record().seq()).collect();
    let mut by_seq: BTreeMap<u64, &SignedRecord> = BTreeMap::new();
    for rec in records {
        if by_seq.insert(rec.record().seq(), rec).is_some() {
            let seq = rec.record().seq();
            checks.push(
                Check::new(code::CHAIN_DUPLICATE, format!("position {seq} occurs more than once"))
                    .at(seq),
            );
        }
    }
    if let Some(w) = seqs.windows(2).find(|w| w[1] < w[0]) {
        checks.push(
            Check::new(
                code::CHAIN_REORDERED,
                format!("record {} is stored after record {}", w[1], w[0]),
            )
            .at(w[1]),
        );
    }
    let mut expected = 0u64;
    for &seq in by_seq.keys() {
        if seq > expected {
            let what = if seq - expected == 1 {
                format!("record {expected} is missing")
            } else {
                format!("records {expected} to {} are missing", seq - 1)
            };
            checks.push(Check::new(code::CHAIN_GAP, what).at(expected));
        }
        expected = seq.saturating_add(1);
    }

    // Links, between consecutive positions present.
    let mut links_ok = true;
    let ordered: Vec<&SignedRecord> = by_seq.values().copied().collect();
    for pair in ordered.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (sa, sb) = (a.record().seq(), b.record().seq());
        if sb != sa + 1 {
            continue;
        }
        if b.record().prev() != Some(&a.hash()) {
            links_ok = false;
            checks.push(
                Check::new(
                    code::CHAIN_LINK_BROKEN,
                    format!("record {sb} does not link to the hash of record {sa}"),
                )
                .at(sb),
            );
        }
    }
    if links_ok {
        checks.push(Check::new(code::CHAIN_LINK_VALID, "every record links to the one before"));
    }

    // The end.
    let end_pos = ordered.iter().position(|r| matches!(r.record(), Record::End(_)));
    let segments: Vec<&SegmentRecord> = ordered
        .iter()
        .filter_map(|r| match r.record() {
            Record::Segment(s) => Some(s),
            _ => None,
        })
        .collect();
    match end_pos {
        Some(pos) => {
            if pos + 1 != ordered.len() {
                checks.push(
                    Check::new(code::CHAIN_AFTER_END, "records follow the end record")
                        .at(ordered[pos].record().seq()),
                );
            }
            if let Record::End(end) = ordered[pos].record() {
                // Only what the end record closes counts towards its totals.
                let closed: Vec<&SegmentRecord> =
                    segments.iter().copied().filter(|s| s.seq < end.seq).collect();
                check_totals(checks, end, &closed);
            }
        }
        None => {
            let last = ordered[ordered.len() - 1].record().seq();
            let last_wall = segments.last().map_or(header.started_at_us, |s| s.wall_last_us);
            checks.push(Check::new(
                code::CHAIN_END_MISSING,
                format!(
                    "there is no end record: the recording was cut off after record {last}; \
                     records 0 to {last} are checked above"
                ),
            ));
            report.cut_off = Some((last, last_wall));
        }
    }

    check_times(checks, &header, &ordered);
    report.header = Some(header);
}

fn check_totals(checks: &mut Vec<Check>, end: &EndRecord, segments: &[&SegmentRecord]) {
    // Summed in u128: the stated lengths are the device's, and need not add up in a u64.
    let plaintext: u128 = segments.iter().map(|s| u128::from(s.plaintext_len)).sum();
    let ciphertext: u128 = segments.iter().map(|s| u128::from(s.ciphertext_len)).sum();
    let duration = media_duration(
        segments.first().map(|s| s.media_start_us),
        segments.last().map_or(0, |s| s.media_end_us),
    );
    let mut wrong = Vec::new();
    if end.segments != segments.len() as u64 {
        wrong.push(format!("segments {} (counted {})", end.segments, segments.len()));
    }
    if u128::from(end.plaintext_bytes) != plaintext {
        wrong.push(format!("plaintext bytes {} (counted {plaintext})", end.plaintext_bytes));
    }
    if u128::from(end.ciphertext_bytes) != ciphertext {
        wrong.push(format!("ciphertext bytes {} (counted {ciphertext})", end.ciphertext_bytes));
    }
    if end.media_duration_us != duration {
        wrong.push(format!("media duration {} µs (counted {duration})", end.media_duration_us));
    }
    if wrong.is_empty() {
        checks.push(Check::new(
            code::CHAIN_END_PRESENT,
            format!("the recording ends ({:?}) after {} segments", end.reason, end.segments),
        ));
    } else {
        checks.push(
            Check::new(
                code::CHAIN_END_TOTALS_MISMATCH,
                format!("the end record states {}", wrong.join(", ")),
            )
            .at(end.seq),
        );
    }
}

/// `media.gap` for a consistent gap, `media.gap.invalid` for one that is not: from ≤ to,
/// within the walls of the segments on either side, after a segment cut as input-lost.
fn gap_check(
    started_at_us: i64,
    prev: Option<&SegmentRecord>,
    s: &SegmentRecord,
    gap: &Gap,
) -> Check {
    let wrong = match prev {
        None => Some("the first segment cannot follow a gap".to_string()),
        Some(_) if gap.wall_to_us < gap.wall_from_us => {
            Some("the gap ends before it starts".into())
        }
        Some(p) if gap.wall_from_us < p.wall_last_us => {
            Some(format!("the gap starts before segment {}'s last packet", p.seq))
        }
        Some(_) if gap.wall_to_us > s.wall_first_us => {
            Some("the gap ends after this segment's first packet".into())
        }
        Some(p) if p.cut != CutReason::InputLost => {
            Some(format!("segment {} before it is not cut as input-lost (cut 4)", p.seq))
        }
        Some(_) => None,
    };
    if let Some(why) = wrong {
        return Check::new(
            code::MEDIA_GAP_INVALID,
            format!("segment {}'s gap fields: {why}", s.seq),
        )
        .at(s.seq);
    }
    let rel = |t: i64| clock_time(t.saturating_sub(started_at_us));
    Check::new(
        code::MEDIA_GAP,
        format!(
            "gap {}-{} ({:.1} s, before segment {}): the stream's sender disconnected and a sender \
             connected again — stream senders are not authenticated",
            rel(gap.wall_from_us),
            rel(gap.wall_to_us),
            gap.wall_to_us.saturating_sub(gap.wall_from_us) as f64 / 1e6,
            s.seq
        ),
    )
    .at(s.seq)
}

/// Device time from the recording's start as "0:14".
fn clock_time(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    format!("{}:{:02}", s / 60, s % 60)
}

fn check_times(checks: &mut Vec<Check>, header: &RecordingHeader, ordered: &[&SignedRecord]) {
    let mut clock_ok = true;
    let mut media_ok = true;
    let mut last_wall = header.started_at_us;
    let mut last_media_end: Option<i64> = None;
    let mut prev_segment: Option<&SegmentRecord> = None;
    if let Some(f) = &header.follows {
        checks.push(
            Check::new(
                code::CHAIN_FOLLOWS,
                format!(
                    "this recording continues recording {}, which ended because a sender came back \
                     with other streams (its end record's hash is {}; that recording's bundle shows it)",
                    f.recording,
                    hex::encode(f.end)
                ),
            )
            .at(0),
        );
    }
    for rec in ordered {
        if let Record::End(e) = rec.record() {
            if e.reason == EndReason::SenderChanged {
                let next = match &e.continued_in {
                    Some(id) => format!("; recording {id} continues it"),
                    None => String::new(),
                };
                checks.push(
                    Check::new(
                        code::CHAIN_CONTINUED_IN,
                        format!(
                            "the recording ended because a sender came back with other streams or \
                             codec parameters{next}"
                        ),
                    )
                    .at(e.seq),
                );
            }
        }
        if let Record::Segment(s) = rec.record() {
            if let Some(gap) = &s.gap {
                checks.push(gap_check(header.started_at_us, prev_segment, s, gap));
            }
            prev_segment = Some(s);
        }
        let (seq, first, last) = match rec.record() {
            Record::Header(_) => continue,
            Record::Segment(s) => (s.seq, s.wall_first_us, s.wall_last_us),
            Record::End(e) => (e.seq, e.ended_at_us, e.ended_at_us),
        };
        if first < last_wall || last < first {
            clock_ok = false;
            checks.push(
                Check::new(
                    code::TIME_DEVICE_BACKWARDS,
                    format!("the device clock runs backwards at record {seq}"),
                )
                .at(seq),
            );
        }
        last_wall = last_wall.max(last);
        if let Record::Segment(s) = rec.record() {
            if let Some(prev_end) = last_media_end {
                // abs_diff: a difference of two i64 times need not fit in an i64.
                if s.media_start_us.abs_diff(prev_end)
                    > MEDIA_CONTINUITY_TOLERANCE_US.unsigned_abs()
                {
                    media_ok = false;
                    checks.push(
                        Check::new(
                            code::MEDIA_DISCONTINUITY,
                            format!(
                                "segment {seq} starts at media time {} µs; the previous one \
                                 ended at {prev_end} µs",
                                s.media_start_us
                            ),
                        )
                        .at(seq),
                    );
                }
            }
            last_media_end = Some(s.media_end_us);
        }
    }
    if clock_ok {
        checks
            .push(Check::new(code::TIME_DEVICE_MONOTONIC, "the device clock never runs backwards"));
    }
    if media_ok && last_media_end.is_some() {
        checks.push(Check::new(code::MEDIA_CONTINUOUS, "the segments' media times are contiguous"));
    }
}
