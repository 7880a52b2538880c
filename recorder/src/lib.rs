//! The loop that joins capture to vault: capture → seal → sign → store, one segment at a
//! time.
//!
//! `custody-capture` (the only crate that links FFmpeg) cuts the input into segments;
//! `custody-vault` seals, signs and keeps them and builds without FFmpeg. This crate is the
//! one place that names both, so the vault's signer, sealer and store can be built, audited
//! and reused (by the uploader, by a phone page's server-side twin) without the media stack.
//!
//! The capture runs on its own threads and hands over segments through a bounded channel.
//! A live recording seals, signs and fsyncs each segment as it arrives (the next one is
//! seconds away). An import, whose segments come as fast as the file is read, seals two at
//! once, each on a thread of its own, while the capture goes on, and this loop signs and
//! saves their records in order (the `sealing` module), so that sealing and capture share
//! both cores. If a segment cannot be saved (a full disk), recording stops and the end
//! record says why, if it can still be written; every segment saved before stays valid.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::path::Path;

use custody_capture::{Capture, Event, Started, StopHandle};
use custody_format::ids::{PublicKey, RecordingId};
use custody_format::record::{
    DroppedStream, EndReason, Follows, ImportedFile, Origin, RecordingHeader, StreamInfo,
};
use custody_format::time::now_us;
use ed25519_dalek::SigningKey;
use rand_core::OsRng;
use thiserror::Error;

use custody_vault::seal::Sealer;
use custody_vault::store::{RecordingWriter, Vault, VaultError};

mod sealing;

use sealing::{save_now, Sealing, Tally};
pub use sealing::{IMPORT_QUEUE, IN_FLIGHT, SEALING_AT_ONCE};

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
    /// A live input's sender was lost; the capture listens again for up to `wait`.
    InputLost {
        /// Media time the recording had reached, µs.
        at_media_us: i64,
        /// How long it waits for a sender.
        wait: std::time::Duration,
    },
    /// A sender with the same streams connected again; the gap goes on record.
    Reconnected {
        /// How long the input was lost.
        after: std::time::Duration,
    },
    /// A sender came back with other streams: this recording ended (end reason
    /// `sender-changed`) and `next` continues it, its header linked to this end record.
    Continued {
        /// How the recording that ended ended.
        ended: Outcome,
        /// The recording that follows it.
        next: RecordingId,
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
        follows: None,
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
    // A live recording may be continued by another (a sender that came back with other
    // streams), made with the same key and recipients.
    let spare_key = (provenance.origin == Origin::Live).then(|| device.clone());
    let spare_sealer = (provenance.origin == Origin::Live).then(|| sealer.clone());
    let mut writer: Option<RecordingWriter<'_>> = None;
    let mut sealer = Some(sealer);
    let mut device = Some(device);
    let mut tally = Tally::default();
    let mut source_duration_us = None;
    // An import seals two segments at once on their own threads (see `Sealing`); a live
    // recording saves each segment at once, as its next one is seconds away.
    let mut sealing = (provenance.origin == Origin::Imported).then(Sealing::new);
    // After a sender-changed end: the next recording's id (named in that end record), the
    // link its header carries, and the key and sealer it is made with.
    let mut next: Option<(RecordingId, Follows, SigningKey, Sealer)> = None;
    for event in capture {
        match event {
            Event::Started(started) => {
                source_duration_us = started.source_duration_us;
                if let Some((_, _, key, s)) = &next {
                    device = Some(key.clone());
                    sealer = Some(s.clone());
                }
                let (Some(key), Some(s)) = (device.take(), sealer.take()) else { continue };
                let mut h = header(&started, &key, recipients, provenance);
                if let Some((id, follows, ..)) = next.take() {
                    h.recording_id = id;
                    h.follows = Some(follows);
                }
                let streams = h.streams.clone();
                let w = vault.begin(h, key, s)?;
                progress(&Progress::Started { id: w.id(), streams, notes: started.notes.clone() });
                writer = Some(w);
            }
            Event::Segment(seg) => {
                let Some(w) = writer.as_mut() else { continue };
                let result = match sealing.as_mut() {
                    Some(sealing) => sealing.add(w, seg, &mut tally, &mut progress),
                    None => save_now(w, seg, &mut tally, &mut progress),
                };
                if let Err(error) = result {
                    return Err(fail(&mut writer, &mut sealing, &stop, error));
                }
            }
            Event::End(end) => {
                let reason = end.reason;
                let message = match reason {
                    EndReason::Stopped => None,
                    EndReason::InputEnded | EndReason::SenderChanged => end.detail,
                    EndReason::Error => {
                        Some(end.detail.unwrap_or_else(|| "the capture failed".to_string()))
                    }
                };
                if let (Some(w), Some(s)) = (writer.as_mut(), sealing.as_mut()) {
                    if let Err(error) = s.land_all(w, &mut tally, &mut progress) {
                        return Err(fail(&mut writer, &mut sealing, &stop, error));
                    }
                }
                let Some(w) = writer.take() else {
                    return Err(RecordError::NothingRecorded(
                        message.unwrap_or_else(|| "the input ended before any media".into()),
                    ));
                };
                let id = w.id();
                if reason == EndReason::SenderChanged {
                    let (Some(key), Some(s)) = (spare_key.clone(), spare_sealer.clone()) else {
                        continue;
                    };
                    let next_id = RecordingId::random(&mut OsRng);
                    let end_record = w
                        .end_sender_changed(end.end_utc_us.max(0), message.clone(), next_id)
                        .map_err(|error| RecordError::Save { id, error })?;
                    let follows = Follows { recording: id, end: end_record.hash() };
                    let ended = Outcome { id, segments: tally.segments, reason, message };
                    progress(&Progress::Continued { ended, next: next_id });
                    next = Some((next_id, follows, key, s));
                    tally = Tally::default();
                    continue;
                }
                let (reason, message, declared) = match provenance.origin {
                    Origin::Imported => {
                        let file_len = provenance.imported_file.as_ref().map(|f| f.len);
                        let declared = source_duration_us.and_then(|d| u64::try_from(d).ok());
                        let (r, m) =
                            import_end(reason, message, tally.covered.us(), declared, file_len);
                        (r, m, declared)
                    }
                    Origin::Live => (reason, message, None),
                };
                w.end_import(end.end_utc_us.max(0), reason, message.clone(), declared)
                    .map_err(|error| RecordError::Save { id, error })?;
                return Ok(Outcome { id, segments: tally.segments, reason, message });
            }
            Event::InputLost { at_media_us, wait, .. } => {
                progress(&Progress::InputLost { at_media_us, wait });
            }
            Event::Reconnected { after } => progress(&Progress::Reconnected { after }),
            _ => {}
        }
    }
    // The capture thread went away without an end event.
    if let (Some(w), Some(s)) = (writer.as_mut(), sealing.as_mut()) {
        if let Err(error) = s.land_all(w, &mut tally, &mut progress) {
            return Err(fail(&mut writer, &mut sealing, &stop, error));
        }
    }
    match writer.take() {
        Some(w) => {
            let id = w.id();
            let message = "the capture stopped unexpectedly".to_string();
            w.end(now_us(), EndReason::Error, Some(message.clone()))
                .map_err(|error| RecordError::Save { id, error })?;
            Ok(Outcome {
                id,
                segments: tally.segments,
                reason: EndReason::Error,
                message: Some(message),
            })
        }
        None => Err(RecordError::NothingRecorded("the capture stopped before any media".into())),
    }
}

/// Stops the capture and ends the recording with an error record, if it can still be
/// written; every segment saved before stays valid.
fn fail(
    writer: &mut Option<RecordingWriter<'_>>,
    sealing: &mut Option<Sealing>,
    stop: &StopHandle,
    error: VaultError,
) -> RecordError {
    stop.stop();
    end_with_error(writer, sealing.as_mut(), error)
}

/// Ends the recording with an error record saying what failed, after the last segment
/// recorded, if it can still be written. The segments sealed after it are not recorded:
/// their files are removed first.
fn end_with_error(
    writer: &mut Option<RecordingWriter<'_>>,
    sealing: Option<&mut Sealing>,
    error: VaultError,
) -> RecordError {
    if let Some(s) = sealing {
        s.discard();
    }
    match writer.take() {
        Some(w) => {
            let id = w.id();
            let _ = w.end(now_us(), EndReason::Error, Some(error.to_string()));
            RecordError::Save { id, error }
        }
        None => RecordError::Vault(error),
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

    /// The import path seals two segments at once, each on its own thread, and fsyncs
    /// them there while the next ones are encrypted: whenever a segment is reported saved, its sealed file is under its final name (renamed only
    /// after its fsync) and its record is the journal's last, so nothing is reported saved
    /// before it is durable, and records stay in order.
    #[test]
    fn an_import_reports_each_segment_saved_only_once_its_file_and_record_are_durable() {
        use custody_capture::{Settings, Source};
        let dir =
            std::env::temp_dir().join(format!("custody-recorder-order-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let media = dir.join("clip.ts");
        let status = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "9"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-f", "mpegts"])
            .arg(&media)
            .status()
            .unwrap();
        assert!(status.success());
        let (vault, _) = Vault::open(&dir.join("vault")).unwrap();
        let (_, recipient) = custody_vault::keys::new_recipient_identity();
        let recipients = vec![recipient];
        let sealer =
            Sealer::new(custody_vault::keys::parse_recipients(&recipients).unwrap()).unwrap();
        let provenance = Provenance {
            origin: Origin::Imported,
            input: "clip.ts".into(),
            imported_file: Some(hash_file(&media).unwrap()),
            target_segment_ms: 2000,
            max_segment_ms: 10_000,
        };
        let capture = Capture::start(Source::file(&media), Settings::default());
        let device = SigningKey::from_bytes(&[7; 32]);
        let mut id = None;
        let mut saved = Vec::new();
        let outcome =
            record(&vault, capture, device, &recipients, sealer, &provenance, |p| match p {
                Progress::Started { id: started, .. } => id = Some(*started),
                Progress::Saved { seq, .. } => {
                    let id = id.unwrap();
                    assert!(vault.segment_path(&id, *seq).is_file(), "segment {seq} not durable");
                    let records = vault.records(&id).unwrap();
                    assert_eq!(records.last().map(|r| r.record().seq()), Some(*seq));
                    saved.push(*seq);
                }
                _ => {}
            })
            .unwrap();
        assert_eq!(outcome.reason, EndReason::InputEnded, "{:?}", outcome.message);
        assert!(saved.len() >= 3, "{saved:?}");
        assert_eq!(saved, (1..=outcome.segments).collect::<Vec<_>>());
        let records = vault.records(&outcome.id).unwrap();
        assert_eq!(records.len() as u64, outcome.segments + 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn credentials_never_reach_the_header() {
        assert_eq!(redact_url("rtsp://user:secret@10.0.0.2:554/cam"), "rtsp://10.0.0.2:554/cam");
        assert_eq!(redact_url("srt://:9000?mode=listener"), "srt://:9000?mode=listener");
        assert_eq!(redact_url("/home/me/clip.mp4"), "/home/me/clip.mp4");
    }
}
