//! The loop that joins capture to vault: capture → seal → sign → store, one segment at a
//! time.
//!
//! `custody-capture` (the only crate that links FFmpeg) cuts the input into segments;
//! `custody-vault` seals, signs and keeps them and builds without FFmpeg. This crate is the
//! one place that names both, so the vault's signer, sealer and store can be built, audited
//! and reused (by the uploader, by a phone page's server-side twin) without the media stack.
//!
//! The capture runs on its own thread and hands over segments through a bounded channel;
//! this loop seals, signs and fsyncs each as it arrives, so capture and sealing use both
//! cores. If a segment cannot be saved (a full disk), recording stops and the end record
//! says why, if it can still be written; every segment saved before stays valid.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::path::Path;

use custody_capture::{Capture, Event, Segment, Started, StopHandle};
use custody_format::chain::SegmentFields;
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::{
    DroppedStream, EndReason, ImportedFile, Origin, RecordingHeader, StreamInfo,
};
use custody_format::time::now_us;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use thiserror::Error;

use custody_vault::seal::Sealer;
use custody_vault::store::{RecordingWriter, SegmentInput, Vault, VaultError};

/// Why a recording failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The input never produced a recording (it could not be opened, or ended at once).
    #[error("nothing was recorded: {0}")]
    NothingRecorded(String),
    /// The vault could not save; the recording was ended with an error record if possible.
    #[error("{error} (segments saved before this remain valid; recording {id})")]
    Save {
        /// The recording.
        id: RecordingId,
        /// What failed.
        error: VaultError,
    },
    /// Reading the file to import failed.
    #[error("reading {path}: {source}")]
    Import {
        /// The file.
        path: String,
        /// What happened.
        source: std::io::Error,
    },
    /// The vault failed before recording started.
    #[error("{0}")]
    Vault(#[from] VaultError),
}

/// What the recording loop reports as it goes.
#[derive(Clone, Debug)]
pub enum Progress {
    /// The header is saved.
    Started {
        /// The recording.
        id: RecordingId,
        /// Its streams, for display.
        streams: Vec<StreamInfo>,
        /// Notes from capture (encoder used, streams left out).
        notes: Vec<String>,
    },
    /// A segment is sealed, signed and durable.
    Saved {
        /// Its position.
        seq: u64,
        /// Plaintext bytes.
        plaintext_len: u64,
        /// Sealed bytes.
        ciphertext_len: u64,
        /// Media time covered so far, µs.
        media_end_us: i64,
        /// Device time from the segment's last packet to its record being durable, µs.
        seal_latency_us: i64,
    },
}

/// How a recording ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The recording.
    pub id: RecordingId,
    /// Segments saved.
    pub segments: u64,
    /// Why it ended.
    pub reason: EndReason,
    /// The error message, for [`EndReason::Error`].
    pub message: Option<String>,
}

/// Where the media comes from, for the header.
#[derive(Clone, Debug)]
pub struct Provenance {
    /// Live or imported.
    pub origin: Origin,
    /// The input as the header should name it (credentials already removed).
    pub input: String,
    /// For an import, the file's hash and length.
    pub imported_file: Option<ImportedFile>,
    /// Target segment duration, ms.
    pub target_segment_ms: u32,
    /// Forced-cut cap, ms.
    pub max_segment_ms: u32,
}

/// Removes `user:password@` from a URL, so no credential reaches a record.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://{host}{tail}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// SHA-256 and length of a file to import, for its header.
pub fn hash_file(path: &Path) -> Result<ImportedFile, RecordError> {
    custody_vault::check::hash_file(path)
        .map_err(|source| RecordError::Import { path: path.display().to_string(), source })
}

fn header(
    started: &Started,
    device: &SigningKey,
    recipients: &[String],
    provenance: &Provenance,
) -> RecordingHeader {
    let streams = started
        .streams
        .iter()
        .map(|s| StreamInfo {
            kind: s.kind,
            codec: s.codec.clone(),
            width: s.width,
            height: s.height,
            frame_rate: (s.frame_rate.0.max(0) as u32, s.frame_rate.1.max(0) as u32),
            sample_rate: s.sample_rate,
            channels: s.channels,
            time_base: (s.time_base.0.max(0) as u32, s.time_base.1.max(0) as u32),
        })
        .collect();
    RecordingHeader {
        recording_id: RecordingId::random(&mut OsRng),
        device_key: PublicKey::from(device.verifying_key()),
        started_at_us: started.start_utc_us,
        origin: provenance.origin,
        input: provenance.input.clone(),
        imported_file: provenance.imported_file.clone(),
        container: started.container,
        target_segment_ms: provenance.target_segment_ms,
        max_segment_ms: provenance.max_segment_ms,
        streams,
        recipients: recipients.to_vec(),
        software: concat!("custody ", env!("CARGO_PKG_VERSION")).to_string(),
        rotation: started.rotation,
        dropped_streams: started
            .dropped_streams
            .iter()
            .map(|(kind, codec)| DroppedStream { kind: *kind, codec: codec.clone() })
            .collect(),
    }
}

fn fields(seg: &Segment) -> SegmentFields {
    SegmentFields {
        wall_first_us: seg.first_packet_utc_us,
        wall_last_us: seg.last_packet_utc_us,
        media_start_us: seg.media_start_us,
        media_end_us: seg.media_end_us,
        stream_packets: seg.packet_counts.clone(),
        video_frames: seg.video_frames,
        plaintext_len: 0,
        plaintext_sha256: [0; 32],
        ciphertext_len: 0,
        ciphertext_sha256: [0; 32],
        packet_digest: seg.packet_digest.0,
        cut: seg.cut,
    }
}

/// Records everything `capture` produces into the vault until it ends.
pub fn record(
    vault: &Vault,
    capture: Capture,
    device: SigningKey,
    recipients: &[String],
    sealer: Sealer,
    provenance: &Provenance,
    mut progress: impl FnMut(&Progress),
) -> Result<Outcome, RecordError> {
    let stop: StopHandle = capture.stop_handle();
    let mut writer: Option<RecordingWriter<'_>> = None;
    let mut sealer = Some(sealer);
    let mut device = Some(device);
    let mut segments = 0u64;
    let mut covered = Covered::default();
    let mut source_duration_us = None;
    for event in capture {
        match event {
            Event::Started(started) => {
                source_duration_us = started.source_duration_us;
                let (Some(key), Some(s)) = (device.take(), sealer.take()) else { continue };
                let h = header(&started, &key, recipients, provenance);
                let streams = h.streams.clone();
                let w = vault.begin(h, key, s)?;
                progress(&Progress::Started { id: w.id(), streams, notes: started.notes.clone() });
                writer = Some(w);
            }
            Event::Segment(seg) => {
                let Some(w) = writer.as_mut() else { continue };
                let input = SegmentInput {
                    plaintext: &seg.bytes,
                    plaintext_sha256: seg.sha256,
                    fields: fields(&seg),
                };
                match w.add_segment(input) {
                    Ok(saved) => {
                        segments += 1;
                        covered.add(seg.media_start_us, seg.media_end_us);
                        progress(&Progress::Saved {
                            seq: saved.record.record().seq(),
                            plaintext_len: seg.len(),
                            ciphertext_len: saved.sealed.len,
                            media_end_us: seg.media_end_us,
                            seal_latency_us: now_us() - seg.last_packet_utc_us,
                        });
                    }
                    Err(error) => {
                        stop.stop();
                        let id = w.id();
                        if let Some(w) = writer.take() {
                            let _ = w.end(now_us(), EndReason::Error, Some(error.to_string()));
                        }
                        return Err(RecordError::Save { id, error });
                    }
                }
            }
            Event::End(end) => {
                let reason = end.reason;
                let message = match reason {
                    EndReason::Stopped => None,
                    EndReason::InputEnded => end.detail,
                    EndReason::Error => {
                        Some(end.detail.unwrap_or_else(|| "the capture failed".to_string()))
                    }
                };
                let Some(w) = writer.take() else {
                    return Err(RecordError::NothingRecorded(
                        message.unwrap_or_else(|| "the input ended before any media".into()),
                    ));
                };
                let id = w.id();
                let (reason, message, declared) = match provenance.origin {
                    Origin::Imported => {
                        let file_len = provenance.imported_file.as_ref().map(|f| f.len);
                        let declared = source_duration_us.and_then(|d| u64::try_from(d).ok());
                        let (r, m) = import_end(reason, message, covered.us(), declared, file_len);
                        (r, m, declared)
                    }
                    Origin::Live => (reason, message, None),
                };
                w.end_import(end.end_utc_us.max(0), reason, message.clone(), declared)
                    .map_err(|error| RecordError::Save { id, error })?;
                return Ok(Outcome { id, segments, reason, message });
            }
            _ => {}
        }
    }
    // The capture thread went away without an end event.
    match writer.take() {
        Some(w) => {
            let id = w.id();
            let message = "the capture stopped unexpectedly".to_string();
            w.end(now_us(), EndReason::Error, Some(message.clone()))
                .map_err(|error| RecordError::Save { id, error })?;
            Ok(Outcome { id, segments, reason: EndReason::Error, message: Some(message) })
        }
        None => Err(RecordError::NothingRecorded("the capture stopped before any media".into())),
    }
}

/// The media time the saved segments cover, as the end record's `media_duration_us` counts
/// it (the first segment's start to the last one's end).
#[derive(Default)]
struct Covered {
    first_start_us: Option<i64>,
    last_end_us: i64,
}

impl Covered {
    fn add(&mut self, start_us: i64, end_us: i64) {
        self.first_start_us.get_or_insert(start_us);
        self.last_end_us = end_us;
    }

    fn us(&self) -> u64 {
        self.first_start_us
            .map_or(0, |s| u64::try_from(self.last_end_us.saturating_sub(s)).unwrap_or(0))
    }
}

/// How much shorter than its declared duration an import may end and still have read the
/// whole file: a container's duration counts what the recording leaves out (audio before
/// the first keyframe, edit lists), which is well under a second.
const DECLARED_SLACK_US: u64 = 1_000_000;

/// Seconds with centiseconds, for an end record's message.
fn secs(us: u64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

/// How an import ends: a file whose data fails part-way, or that ends well before the
/// duration it declares, is damaged there, and its end record says so (reason error, with
/// what and where) rather than that the input simply ended. The words "the file is
/// damaged" open every such message: readers (the verifier's `import.damaged`) rely on it.
fn import_end(
    reason: EndReason,
    message: Option<String>,
    covered_us: u64,
    declared_us: Option<u64>,
    file_len: Option<u64>,
) -> (EndReason, Option<String>) {
    let of = declared_us.map(|d| format!(" of the {} it declares", secs(d))).unwrap_or_default();
    match reason {
        EndReason::Error => {
            let what = message.unwrap_or_else(|| "the capture failed".into());
            // Capture names the byte offset (`CaptureError::Damaged`) only when the file's
            // data failed; any other fault (a thread that died) is not the file's.
            let opening = if what.contains(", at byte ") {
                "the file is damaged"
            } else {
                "the import failed"
            };
            (
                EndReason::Error,
                Some(format!(
                    "{opening}: {what}; imported up to media time {}{of}",
                    secs(covered_us)
                )),
            )
        }
        EndReason::InputEnded
            if declared_us.is_some_and(|d| covered_us.saturating_add(DECLARED_SLACK_US) < d) =>
        {
            let at = file_len.map(|l| format!(" at byte {l}")).unwrap_or_default();
            (
                EndReason::Error,
                Some(format!(
                    "the file is damaged: its data ends{at} (its whole length) at media time {}{of}, \
                     as a truncated file does",
                    secs(covered_us)
                )),
            )
        }
        other => (other, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_that_ends_short_of_its_declared_duration_ends_damaged() {
        let (r, m) = import_end(EndReason::InputEnded, None, 5_960_000, Some(12_000_000), Some(9));
        assert_eq!(r, EndReason::Error);
        let m = m.unwrap();
        assert!(m.starts_with("the file is damaged: its data ends at byte 9"), "{m}");
        assert!(m.contains("5.96 s of the 12.00 s it declares"), "{m}");
        // Within the slack it is the whole file.
        let (r, m) = import_end(EndReason::InputEnded, None, 11_500_000, Some(12_000_000), None);
        assert_eq!((r, m), (EndReason::InputEnded, None));
        let (r, m) = import_end(
            EndReason::Error,
            Some("reading the input failed: x, at byte 7 of the file".into()),
            2_000_000,
            None,
            None,
        );
        assert_eq!(r, EndReason::Error);
        assert_eq!(
            m.unwrap(),
            "the file is damaged: reading the input failed: x, at byte 7 of the file; imported up to media time 2.00 s"
        );
    }

    #[test]
    fn credentials_never_reach_the_header() {
        assert_eq!(redact_url("rtsp://user:secret@10.0.0.2:554/cam"), "rtsp://10.0.0.2:554/cam");
        assert_eq!(redact_url("srt://:9000?mode=listener"), "srt://:9000?mode=listener");
        assert_eq!(redact_url("/home/me/clip.mp4"), "/home/me/clip.mp4");
    }
}
