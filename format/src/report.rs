//! Verification reports: every check with a stable code, a state and a plain sentence,
//! and an overall verdict.
//!
//! A verification outcome is a report, not an error: `Err` is kept for "could not run".
//! The codes are stable identifiers that scripts and courts can rely on; every one is
//! listed in [`CODES`] and documented in `docs/verification-codes.md` (a test keeps the two
//! in step).

use serde::Serialize;

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckState {
    /// Passed.
    Ok,
    /// Not tampering, but something a reader must know (a cut-off recording, a clock that
    /// stepped back).
    Warning,
    /// Failed: the evidence is not what it claims to be.
    Failure,
    /// Could not be checked, for the reason given.
    NotChecked,
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable code, e.g. `record.signature.invalid`.
    pub code: &'static str,
    /// Outcome.
    pub state: CheckState,
    /// What was found, in a plain sentence.
    pub message: String,
    /// The chain position it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl Check {
    /// A check whose state is the one its code is catalogued with.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        let state = code_info(code).map_or(CheckState::Failure, |c| c.state);
        Check { code, state, message: message.into(), seq: None }
    }

    /// The same check, about chain position `seq`.
    pub fn at(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }
}

/// The overall verdict, in the words the report uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// Every check passed and the recording has its end record.
    IntactComplete,
    /// Every check passed up to the last record, and there is no end record: the recording
    /// was cut off (a seized or dead device looks like this). Everything up to there is
    /// proven; this is not tampering.
    IntactCutOff {
        /// The last chain position present.
        last_seq: u64,
        /// Device time of the last packet of the last segment, µs since the epoch.
        last_wall_us: i64,
    },
    /// At least one check failed.
    Tampered,
    /// Nothing failed, but the bundle is signed by another server key than the one the
    /// verifier was told to trust: a mistyped trust anchor looks like this, and so does a
    /// bundle made or re-signed by another server. Not tampering, and nothing proven.
    SignerNotConfirmed {
        /// The fingerprint of the server key the bundle is signed by.
        found_fingerprint: String,
        /// The fingerprint of the key the verifier was told to trust.
        expected_fingerprint: String,
    },
    /// Something needed for verification was missing.
    CouldNotCheck,
}

impl Verdict {
    /// The verdict that `checks` lead to. `cut_off` carries the last position and time of a
    /// chain without an end record. (Whether the signer is the trusted key is the caller's
    /// to add: a verifier turns a verdict other than tampered into
    /// [`Verdict::SignerNotConfirmed`] when it is not.)
    pub fn from_checks(checks: &[Check], cut_off: Option<(u64, i64)>) -> Verdict {
        if checks.iter().any(|c| c.state == CheckState::Failure) {
            Verdict::Tampered
        } else if checks.iter().any(|c| c.state == CheckState::NotChecked) {
            Verdict::CouldNotCheck
        } else if let Some((last_seq, last_wall_us)) = cut_off {
            Verdict::IntactCutOff { last_seq, last_wall_us }
        } else {
            Verdict::IntactComplete
        }
    }

    /// The verdict in one plain sentence.
    pub fn sentence(&self) -> String {
        match self {
            Verdict::IntactComplete => {
                "Intact and complete: every record is signed, every segment is present and \
                 unaltered, and the recording ends with its end record."
                    .into()
            }
            Verdict::IntactCutOff { last_seq, .. } => format!(
                "Intact but cut off after record {last_seq}: everything up to there is proven \
                 unaltered; there is no end record, and the server's own statement shows it \
                 held no more than this when the bundle was made, as when a device is seized \
                 or dies while recording."
            ),
            Verdict::Tampered => {
                "Tampered or invalid: at least one check failed; the failures below say what \
                 and where. Damage in transit is possible: fetch the bundle again and run \
                 `sha256sum -c MANIFEST.sha256` in it."
                    .into()
            }
            Verdict::SignerNotConfirmed { found_fingerprint, expected_fingerprint } => format!(
                "Signer not confirmed: the bundle is signed by server key {found_fingerprint}, \
                 not by the key given to trust ({expected_fingerprint}); nothing in it is \
                 proven until its signer is confirmed."
            ),
            Verdict::CouldNotCheck => {
                "Could not check: something needed for verification is missing; see the \
                 checks marked not-checked."
                    .into()
            }
        }
    }
}

/// A documented code: its stable name, the state it reports and what it means.
#[derive(Clone, Copy, Debug)]
pub struct CodeInfo {
    /// The code.
    pub code: &'static str,
    /// The state a check with this code has.
    pub state: CheckState,
    /// What it means.
    pub meaning: &'static str,
}

/// The catalogue entry for `code`.
pub fn code_info(code: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.code == code)
}

macro_rules! codes {
    ($($name:ident = $code:literal, $state:ident, $meaning:literal;)+) => {
        /// Constants for every stable code.
        pub mod code {
            $(#[doc = $meaning] pub const $name: &str = $code;)+
        }
        /// Every code this crate can report, with its state and meaning.
        pub const CODES: &[CodeInfo] = &[
            $(CodeInfo { code: $code, state: CheckState::$state, meaning: $meaning },)+
        ];
    };
}

codes! {
    BUNDLE_MANIFEST_VALID = "bundle.manifest.valid", Ok,
        "Every file of the bundle is listed in its manifest with a matching SHA-256.";
    BUNDLE_MANIFEST_INVALID = "bundle.manifest.invalid", Failure,
        "The manifest cannot be read (not UTF-8 or over 4 MiB, a malformed line, an unsafe path, wrong order, listing itself).";
    BUNDLE_FILE_MISSING = "bundle.file.missing", Failure,
        "A file listed in the manifest is absent.";
    BUNDLE_FILE_MISMATCH = "bundle.file.mismatch", Failure,
        "A file's SHA-256 differs from the manifest's.";
    BUNDLE_FILE_UNLISTED = "bundle.file.unlisted", Failure,
        "The bundle holds a file the manifest does not list.";
    BUNDLE_SERVER_KEY_TRUSTED = "trust.server_key.trusted", Ok,
        "The bundle's server key is the key the verifier was told to trust.";
    BUNDLE_SERVER_KEY_UNCONFIRMED = "trust.server_key.unconfirmed", Warning,
        "No trusted server key was given: the bundle is consistent with itself, but who signed it is unconfirmed; compare the printed fingerprint out of band.";
    BUNDLE_SERVER_KEY_UNTRUSTED = "trust.server_key.untrusted", NotChecked,
        "The bundle is signed by a server key other than the trusted one: who signed it is not confirmed (a mistyped trust anchor, or another server). With no failure besides, the verdict is \"signer not confirmed\".";
    BUNDLE_PART_MISSING = "bundle.part.missing", NotChecked,
        "A file the bundle must hold (marker, manifest, server key, certificate, tree head, records, receipts, log proofs, receipt proofs) is absent, or cannot be read from its disk; the checks that need it are not made.";
    BUNDLE_PART_INVALID = "bundle.part.invalid", Failure,
        "A file the bundle must hold is present but cannot be read as what it must be (the BUNDLE marker, server key, certificate, receipts, log proofs, receipt proofs); of a file of several objects, those before the unreadable one are still checked.";
    BUNDLE_FILE_UNEXPECTED = "bundle.file.unexpected", Failure,
        "The bundle holds a file outside its layout (format.md 10.1), whether or not the manifest lists it.";
    BUNDLE_TAR_NAME_MISMATCH = "bundle.tar.name.mismatch", Failure,
        "The bundle's archive does not keep its files under `custody-bundle-<recording id>/` for the recording it holds.";
    BUNDLE_STATEMENT_OK = "bundle.statement.ok", Ok,
        "The bundle holds exactly the records the server held for the recording when it made the bundle, and exactly the log entries it stated, as the retrieval entry under the signed head says.";
    BUNDLE_STATEMENT_ABSENT = "bundle.statement.absent", NotChecked,
        "The bundle (custody-bundle 1) was made by a server before completeness statements: records or log entries may have been left out of it without trace.";
    BUNDLE_STATEMENT_MISSING = "bundle.statement.missing", Failure,
        "The head's last log entry is not this recording's bundle retrieval with its statement of the chain and entries (custody-bundle 2).";
    BUNDLE_STATEMENT_CHAIN = "bundle.statement.chain", Failure,
        "The bundle's records are not the ones the server stated it held when it made the bundle: records were left out (the last ones, a run, the end record) or changed.";
    BUNDLE_STATEMENT_ENTRIES = "bundle.statement.entries", Failure,
        "The bundle's log entries are not the ones the server stated it must carry: one left out (a revocation, say), added, repeated or reordered.";
    CERT_SIGNATURE_VALID = "cert.signature.valid", Ok,
        "The device certificate is signed by the server key and names the device key that signed the recording.";
    CERT_SIGNATURE_INVALID = "cert.signature.invalid", Failure,
        "The device certificate's signature does not verify with the server key.";
    CERT_DEVICE_MISMATCH = "cert.device.mismatch", Failure,
        "The device certificate names a different device key, or a different server, from the recording's.";
    SEGMENT_HASH_MATCH = "segment.hash.match", Ok,
        "Every sealed segment has the length and SHA-256 its signed record states.";
    SEGMENT_HASH_MISMATCH = "segment.hash.mismatch", Failure,
        "A sealed segment's length or SHA-256 differs from its signed record.";
    SEGMENT_MISSING = "segment.missing", Failure,
        "A segment record has no sealed segment file in the bundle.";
    SEGMENT_UNEXPECTED = "segment.unexpected", Failure,
        "The bundle holds a sealed segment no record names.";
    SEGMENT_PLAINTEXT_MATCH = "segment.plaintext.match", Ok,
        "Every segment decrypts with the given identity to the length and SHA-256 its record states.";
    SEGMENT_PLAINTEXT_MISMATCH = "segment.plaintext.mismatch", Failure,
        "A segment decrypts to bytes whose length or SHA-256 differs from its record.";
    SEGMENT_DECRYPT_FAILED = "segment.decrypt.failed", NotChecked,
        "A segment could not be decrypted with the given identity (wrong key, or damaged ciphertext).";
    SEGMENT_MEDIA_MATCH = "segment.media.match", Ok,
        "Every segment, demuxed from its decrypted, hash-checked plaintext alone (a fragmented MP4 segment after segment 1's initialisation segment), has the packets per stream, video frames and packet digest its record states: a browser's (WebM, MP4, photo) and, with `custody verify --identity`, one capture cut (MPEG-TS, fragmented MP4).";
    SEGMENT_MEDIA_MISMATCH = "segment.media.mismatch", Failure,
        "A segment's plaintext, demuxed, has other packet counts, video frames or packet digest than its signed record states, or is not a file of its header's container at all; the check names the segment.";
    SEGMENT_MEDIA_NOT_CHECKED = "segment.media.not_checked", NotChecked,
        "A browser segment's packets could not be recomputed from its plaintext (the verifier was given no demuxer; `custody verify --identity` has one).";
    RECEIPT_VALID = "receipt.valid", Ok,
        "Every record has a receipt signed by the server key that matches it.";
    RECEIPT_SIGNATURE_INVALID = "receipt.signature.invalid", Failure,
        "A receipt's signature does not verify with the server key (forged, altered, or from another server).";
    RECEIPT_MISMATCH = "receipt.mismatch", Failure,
        "A receipt names a different record hash, ciphertext hash, recording or device key from the record it is for.";
    RECEIPT_MISSING = "receipt.missing", Warning,
        "A record has no receipt: the server does not vouch for having received it, so nothing proves when it existed.";
    RECEIPT_UNMATCHED = "receipt.unmatched", Failure,
        "A receipt is for a record the bundle does not hold.";
    RECEIPT_DUPLICATE = "receipt.duplicate", Failure,
        "A record has more than one receipt in the bundle.";
    RECEIPT_REORDERED = "receipt.reordered", Failure,
        "The receipts are not in chain order.";
    RECEIPT_CONSISTENCY_OK = "receipt.consistency.ok", Ok,
        "The log tree every receipt was signed under, and in a custody-bundle 3 every head a carried time-stamp token stamped, is a prefix of the bundle's signed head (RFC 9162 consistency proofs).";
    RECEIPT_CONSISTENCY_FAILED = "receipt.consistency.failed", Failure,
        "A receipt's log tree (or a carried time-stamp token's stamped head) is not a prefix of the bundle's head: the server's log forked between the receipt and the retrieval, or the token is over another log.";
    RECEIPT_CONSISTENCY_MISSING = "receipt.consistency.missing", Failure,
        "A receipt's tree size, or a carried time-stamp token's stamped tree size, has no consistency proof in the bundle.";
    RECEIPT_CONSISTENCY_EXTRA = "receipt.consistency.extra", Failure,
        "The bundle carries a consistency proof that no receipt or stamped head needs, or one repeated or out of order.";
    LOG_TREE_HEAD_VALID = "log.tree_head.valid", Ok,
        "The custody log's tree head is signed by the server key.";
    LOG_TREE_HEAD_INVALID = "log.tree_head.invalid", Failure,
        "The custody log's tree head signature does not verify, or it cannot be read.";
    LOG_INCLUSION_VALID = "log.inclusion.valid", Ok,
        "Every log entry in the bundle is proven included in the signed log head.";
    LOG_INCLUSION_INVALID = "log.inclusion.invalid", Failure,
        "A log entry's inclusion proof does not lead to the signed log head.";
    LOG_ENTRY_MISSING = "log.entry.missing", Failure,
        "A receipt's log entry is not among the bundle's proven entries, or differs from the receipt in a field both carry (type, time, device key, recording, position, record or ciphertext hash).";
    LOG_PROOF_DUPLICATE = "log.proof.duplicate", Failure,
        "A log entry is carried more than once.";
    LOG_PROOF_REORDERED = "log.proof.reordered", Failure,
        "The log entries are not carried in log order.";
    LOG_PROOF_UNRELATED = "log.proof.unrelated", Failure,
        "The bundle carries a log entry that concerns neither its recording nor its device.";
    DEVICE_REVOKED = "device.revoked", Warning,
        "The device key was revoked; what it uploaded before the revocation remains valid evidence.";
    SEGMENT_AFTER_REVOCATION = "segment.after_revocation", Failure,
        "A record was logged after the entry revoking its device key (log order).";
    TIME_RECEIPT_CONSISTENT = "time.receipt.consistent", Ok,
        "Every record was received by the server after the device says it was captured.";
    TIME_CLOCK_SKEW = "time.clock.skew", Warning,
        "The device clock is ahead of the server's: some records are receipted before the device time of their capture. The estimated skew is stated.";
    TIME_TSA_OK = "time.tsa.ok", Ok,
        "An RFC 3161 time-stamp token in the custody log is valid: over the SHA-256 of the signed head it is logged with, signed (CMS signature, ESS signing-certificate) by a certificate with the timeStamping key usage that chains to a TSA root given with `--tsa-trust` and was valid at genTime. Every log entry under that head existed by genTime, by the word of that authority.";
    TIME_TSA_BUNDLE_ROOTS = "time.tsa.bundle_roots", Warning,
        "A time-stamp token is valid as for time.tsa.ok, but its certificate chains only to roots the legal team shipped with the bundle (`custody/tsa-roots.pem`), one side of the case: give `--tsa-trust` a root obtained independently to confirm it.";
    TIME_TSA_NO_ROOTS = "time.tsa.no_roots", NotChecked,
        "A time-stamp token's imprint and signature were checked, but no TSA root was given and the bundle ships none, so who signed it is not confirmed. (A time-stamp check does not change the verdict on the recording.)";
    TIME_TSA_PARSE = "time.tsa.parse", Failure,
        "A time-stamp token entry cannot be read: not a CMS SignedData holding a version-1 TSTInfo (RFC 3161 §2.4.2), or without its head or token.";
    TIME_TSA_HEAD = "time.tsa.head", Failure,
        "The signed head a time-stamp token is logged with cannot be read, is not signed by the server key, or is larger than the log was when the token was logged.";
    TIME_TSA_IMPRINT = "time.tsa.imprint", Failure,
        "A time-stamp token's messageImprint is not the SHA-256 of the signed head it is logged with: it stamps something else.";
    TIME_TSA_SIGNATURE = "time.tsa.signature", Failure,
        "A time-stamp token's CMS signature does not verify: the signed attributes are missing, their content-type is not TSTInfo, their message-digest does not match the TSTInfo (altered), the signer's certificate is not in the token, or the signature is wrong.";
    TIME_TSA_ESS = "time.tsa.ess", Failure,
        "A time-stamp token's ESS signing-certificate attribute (v1 or v2) is missing or names another certificate than the one its signature verifies with (a substituted certificate).";
    TIME_TSA_EKU = "time.tsa.eku", Failure,
        "A time-stamp token is signed by a certificate without the timeStamping extended key usage, alone and critical (RFC 3161 §2.3): not a time-stamping authority's.";
    TIME_TSA_CHAIN = "time.tsa.chain", Failure,
        "A time-stamp token's certificate path to the TSA roots does not validate (a bad certificate signature, a malformed or unusable certificate, a broken constraint).";
    TIME_TSA_UNTRUSTED = "time.tsa.untrusted", Warning,
        "A time-stamp token's certificate does not chain to any TSA root given (or shipped): its time is not vouched for by an authority the verifier trusts. Nothing is claimed from it.";
    TIME_TSA_NOT_VALID_AT_GENTIME = "time.tsa.not_valid_at_gentime", Failure,
        "A time-stamp token's certificate, or one in its path, was not valid (expired or not yet valid) at the token's genTime.";
    TIME_TSA_EXPIRED_SINCE = "time.tsa.expired_since", Ok,
        "A time-stamp token's certificate was valid at genTime and has expired since: the token stands (that is what a time-stamp is for).";
    TIME_TSA_REVOCATION = "time.tsa.revocation", NotChecked,
        "Whether a time-stamp authority's certificate was revoked (CRL, OCSP) cannot be checked offline; reported whenever the bundle carries a token. (A time-stamp check does not change the verdict on the recording.)";
    TIME_TSA_CLOCK_DISAGREES = "time.tsa.clock_disagrees", Warning,
        "The server's clock and a time-stamp authority's genTime disagree by more than the token's accuracy and 5 s: the server signed the stamped head after genTime, or logged the token before it. The TSA's time is the independent one; the server's times are suspect by that much.";
    CHAIN_EMPTY = "chain.empty", NotChecked,
        "There are no records to check.";
    RECORD_PARSE_FAILED = "record.parse.failed", Failure,
        "A record could not be read; the message gives the position and the decoding error.";
    RECORD_SIGNATURE_VALID = "record.signature.valid", Ok,
        "Every record carries a valid Ed25519 signature by the recording's device key.";
    RECORD_SIGNATURE_INVALID = "record.signature.invalid", Failure,
        "A record's signature does not verify with the device key over its exact bytes.";
    RECORD_DEVICE_KEY_MISMATCH = "record.device_key.mismatch", Failure,
        "The header names a different device key from the one the recording must be signed by.";
    RECORD_RECORDING_ID_MISMATCH = "record.recording_id.mismatch", Failure,
        "A record names a different recording from the header's (spliced from another recording).";
    CHAIN_HEADER_MISSING = "chain.header.missing", Failure,
        "The chain does not begin with a recording header.";
    CHAIN_HEADER_MISPLACED = "chain.header.misplaced", Failure,
        "A recording header appears after the first position.";
    CHAIN_LINK_VALID = "chain.link.valid", Ok,
        "Every record links to the hash of the record before it.";
    CHAIN_LINK_BROKEN = "chain.link.broken", Failure,
        "A record's previous-record hash does not match the record before it.";
    CHAIN_GAP = "chain.gap", Failure,
        "One or more chain positions are missing between the header and the last record.";
    CHAIN_DUPLICATE = "chain.duplicate", Failure,
        "A chain position occurs more than once.";
    CHAIN_REORDERED = "chain.reordered", Failure,
        "Records are not in chain order.";
    CHAIN_AFTER_END = "chain.after_end", Failure,
        "Records follow the end record.";
    CHAIN_STREAMS_MISMATCH = "chain.streams.mismatch", Failure,
        "A segment record counts packets for a different number of streams than the header lists.";
    RECORD_CUT_FINAL_NOT_LAST = "record.cut.final_not_last", Failure,
        "A segment is cut as the final one (cut 3), but segments follow it.";
    RECORD_ORIGIN_MISMATCH = "record.origin.mismatch", Failure,
        "The header says the recording was imported (origin 2) but names no imported file, or says it is live but names one.";
    RECORD_RECIPIENTS_EMPTY = "record.recipients.empty", Failure,
        "The header lists no recipient: the segments are sealed to no one who could open them.";
    CHAIN_END_PRESENT = "chain.end.present", Ok,
        "The recording ends with an end record whose totals match its segments.";
    CHAIN_END_MISSING = "chain.end.missing", Warning,
        "There is no end record: the recording was cut off. Everything before the cut is still proven.";
    CHAIN_END_TOTALS_MISMATCH = "chain.end.totals.mismatch", Failure,
        "The end record's totals differ from the segment records.";
    TIME_DEVICE_MONOTONIC = "time.device.monotonic", Ok,
        "The device's clock never runs backwards across the records.";
    TIME_DEVICE_BACKWARDS = "time.device.backwards", Warning,
        "The device clock runs backwards between records (the device clock is untrusted; receipts time the evidence).";
    MEDIA_CONTINUOUS = "media.continuous", Ok,
        "Each segment's media time starts where the previous one ended (within 100 ms).";
    MEDIA_DISCONTINUITY = "media.discontinuity", Warning,
        "A segment's media time does not continue from the previous segment's (more than 100 ms apart).";
    MEDIA_GAP = "media.gap", Warning,
        "A live recording's input was lost and a sender connected again (segment tags 16-18): the message names the gap's span in device time from the recording's start. Not damage: the chain is unbroken and the media timeline continues; but stream senders are not authenticated, so only the matching streams say it is the same sender.";
    MEDIA_GAP_INVALID = "media.gap.invalid", Failure,
        "A segment's gap fields are inconsistent: the gap ends before it starts, lies outside the walls of the segments around it, follows a segment not cut as input-lost (cut 4), or is the first segment's.";
    CHAIN_FOLLOWS = "chain.follows", Ok,
        "The header says this recording continues another (header tags 18, 19), which ended because a sender came back with other streams; the message names it and its end record's hash, which that recording's bundle must show.";
    CHAIN_CONTINUED_IN = "chain.continued_in", Ok,
        "The recording ended because a sender came back with other streams or codec parameters (end reason 4, sender-changed); the message names the recording that continues it (tag 12), if the end record does.";
    MEDIA_ROTATION = "media.rotation", Ok,
        "The header records that the picture is shown turned 90, 180 or 270 degrees clockwise (the source's display matrix, header tag 16): segments in MPEG-TS cannot carry it, and an export writes it back. It says how the footage is displayed, not that it was changed.";
    MEDIA_STREAMS_DROPPED = "media.streams.dropped", Warning,
        "The source held streams that were not recorded (subtitles, data, timecode, another track; header tag 17), named in the message. Not tampering: what was recorded is proven, and the original file still holds the rest.";
    EXPORT_DIGEST_MATCH = "export.digest.match", Ok,
        "An exported file, cut where the recording's segments were cut, has each segment's signed packet digest: it holds the same media packets. (Reported beside the bundle's checks; it does not change the verdict.)";
    EXPORT_DIGEST_MISMATCH = "export.digest.mismatch", Failure,
        "An exported file's packets differ from a segment's signed packet digest. (Reported beside the bundle's checks; it does not change the verdict.)";
    ORIGINAL_SEGMENT_MATCH = "original.segment.match", Ok,
        "Every packet of a segment is in the original file, unchanged, at the same time. (Matching an original is reported beside the bundle's checks; it does not change the verdict.)";
    ORIGINAL_SEGMENT_PARTIAL = "original.segment.partial", Warning,
        "Some packets of a segment are in the original file unchanged; the rest lie outside the time the original covers (a trimmed copy).";
    ORIGINAL_SEGMENT_DIFFERS = "original.segment.differs", Failure,
        "The original file covers a segment's time with other packets (edited or re-encoded).";
    ORIGINAL_SEGMENT_ABSENT = "original.segment.absent", Warning,
        "The original file does not cover a segment's time at all.";
    ORIGINAL_RANGE_ONLY_ORIGINAL = "original.range.only_original", Warning,
        "The original file holds packets, in the time range stated, that the recording does not.";
    IMPORT_DAMAGED = "import.damaged", Warning,
        "An imported file stopped on damaged input: the chain holds the file up to the media time stated, of the duration the file declares, and its end record (reason error) says what was damaged and where. Not tampering: the imported part is proven, the rest was never sealed.";
    CLIP_SPAN = "clip.span", Ok,
        "An export of part of a recording (`custody export --from --to`) holds the whole sealed segments covering the asked span, at contiguous chain positions, and says where in the recording they sit. (Reported beside the bundle's checks; it does not change the verdict.)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        for (i, c) in CODES.iter().enumerate() {
            assert!(CODES[..i].iter().all(|o| o.code != c.code), "duplicate {}", c.code);
            assert!(c.code.chars().all(|ch| ch.is_ascii_lowercase() || ch == '.' || ch == '_'));
            assert!(c.code.contains('.'));
        }
    }

    #[test]
    fn verdict_order_failure_then_not_checked_then_cut_off() {
        let ok = Check::new(code::CHAIN_LINK_VALID, "");
        let fail = Check::new(code::CHAIN_GAP, "");
        let missing = Check::new(code::CHAIN_EMPTY, "");
        assert_eq!(Verdict::from_checks(std::slice::from_ref(&ok), None), Verdict::IntactComplete);
        assert_eq!(
            Verdict::from_checks(std::slice::from_ref(&ok), Some((4, 9))),
            Verdict::IntactCutOff { last_seq: 4, last_wall_us: 9 }
        );
        assert_eq!(
            Verdict::from_checks(&[ok.clone(), missing.clone()], None),
            Verdict::CouldNotCheck
        );
        assert_eq!(Verdict::from_checks(&[missing, fail, ok], Some((1, 1))), Verdict::Tampered);
    }
}
