//! What a reader of a report needs besides the checks: what the recording is and when it
//! was made, when and by which verifier the report was made and over which bundle, which
//! segments failed, and the verdict in sentences built from those facts.
//!
//! Nothing here is a check of its own: everything is derived from what the checks read.
//! The device clock's times are claims and are said to be; the server's (receipts) are
//! signed. Nothing about place is added: a [`Zone`] given to the verifier only changes how
//! times are shown (a time zone in the evidence would tell where the observer was).

use std::collections::BTreeSet;

use custody_format::record::{Origin, Record, RecordingHeader, SignedRecord};
use custody_format::report::{code, Check, CheckState, Verdict};
use serde::Serialize;

use crate::tsa::{RootOrigin, Stamp};
use crate::{SegmentRow, Trust};

/// The verifier's name and version, as a report states it.
pub const VERIFIER: &str = concat!("custody-verifier ", env!("CARGO_PKG_VERSION"));

/// A time zone to show times in besides UTC. The verifier carries no time-zone database:
/// the caller supplies the zone (`custody verify --tz` looks it up in an IANA database).
pub trait Zone: Sync {
    /// Its IANA name, e.g. `America/Chicago`.
    fn name(&self) -> &str;
    /// Its offset from UTC in seconds at `us` µs since the epoch, and the abbreviation in
    /// use then (`CDT`; empty or numeric where the zone has none).
    fn offset_at(&self, us: i64) -> (i32, String);
}

/// An instant as a report shows it: in UTC, and in the zone the verifier was given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moment {
    /// µs since the Unix epoch.
    pub us: i64,
    /// `2024-05-01 12:00:00 UTC`.
    pub utc: String,
    /// `2024-05-01 07:00:00 -05:00 CDT, America/Chicago`, with a zone only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    /// The pieces the short forms of sentences are made of.
    #[serde(skip)]
    parts: Parts,
}

/// A moment's date and time of day in UTC and in the local zone.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Parts {
    date: String,
    time: String,
    /// Local date, time of day, and `CDT, America/Chicago` (or `-03:00, America/Sao_Paulo`
    /// where the zone has no abbreviation).
    local: Option<(String, String, String)>,
}

impl Moment {
    /// `us` in UTC and, given a zone, in its local time.
    pub fn new(us: i64, zone: Option<&dyn Zone>) -> Moment {
        let (date, time) = civil_text(us);
        let local = zone.map(|z| {
            let (offset, abbreviation) = z.offset_at(us);
            let sign = if offset < 0 { '-' } else { '+' };
            let abs = offset.unsigned_abs();
            let numeric = format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60);
            let (d, t) = civil_text(us.saturating_add(i64::from(offset) * 1_000_000));
            // A numeric "abbreviation" (`-03`) only repeats the offset.
            let named = match abbreviation.trim() {
                a if a.is_empty() || a.starts_with(['+', '-']) => None,
                a => Some(a.to_string()),
            };
            let full = match &named {
                Some(a) => format!("{d} {t} {numeric} {a}, {}", z.name()),
                None => format!("{d} {t} {numeric}, {}", z.name()),
            };
            (full, (d, t, format!("{}, {}", named.unwrap_or(numeric), z.name())))
        });
        Moment {
            us,
            utc: format!("{date} {time} UTC"),
            local: local.as_ref().map(|(full, _)| full.clone()),
            parts: Parts { date, time, local: local.map(|(_, p)| p) },
        }
    }

    /// Both forms in one phrase, the local one short:
    /// `2024-05-01 12:00:00 UTC (07:00:00 CDT, America/Chicago)`.
    pub fn text(&self) -> String {
        match &self.parts.local {
            Some((d, t, zone)) if *d == self.parts.date => format!("{} ({t} {zone})", self.utc),
            Some((d, t, zone)) => format!("{} ({d} {t} {zone})", self.utc),
            None => self.utc.clone(),
        }
    }

    /// Both forms in full: `2024-05-01 12:00:00 UTC = 2024-05-01 07:00:00 -05:00 CDT,
    /// America/Chicago`.
    pub fn full(&self) -> String {
        match &self.local {
            Some(l) => format!("{} = {l}", self.utc),
            None => self.utc.clone(),
        }
    }

    /// From this moment to `end`, without repeating the date:
    /// `2024-05-01 12:00:00 to 12:00:14 UTC (07:00:00 to 07:00:14 CDT, America/Chicago)`.
    pub fn until(&self, end: &Moment) -> String {
        let (a, b) = (&self.parts, &end.parts);
        let utc_end =
            if b.date == a.date { b.time.clone() } else { format!("{} {}", b.date, b.time) };
        let utc = format!("{} {} to {utc_end} UTC", a.date, a.time);
        match (&a.local, &b.local) {
            (Some((ad, at, az)), Some((bd, bt, bz))) => {
                let start = if *ad == a.date { at.clone() } else { format!("{ad} {at}") };
                let start = if az == bz { start } else { format!("{start} {az}") };
                let end = if bd == ad { bt.clone() } else { format!("{bd} {bt}") };
                format!("{utc} ({start} to {end} {bz})")
            }
            _ => utc,
        }
    }
}

/// `2024-05-01` and `12:00:00`.
fn civil_text(us: i64) -> (String, String) {
    let c = custody_format::time::civil(us);
    (
        format!("{:04}-{:02}-{:02}", c.year, c.month, c.day),
        format!("{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
    )
}

/// The file an imported recording was sealed from, as its signed header names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportedFile {
    /// The file's name when it was imported.
    pub name: String,
    /// SHA-256 of the whole file as it was read, hex.
    pub sha256: String,
    /// Its length in bytes.
    pub len: u64,
}

/// The last second a cut-off recording proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastProven {
    /// The last chain position present.
    pub seq: u64,
    /// The device time of its last packet.
    pub device: Moment,
    /// When the server received it (signed), if it has a receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<Moment>,
}

/// What the recording is and when it was made, from its signed header and records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordingFacts {
    /// The device's label from its certificate: the legal team's pseudonym for the observer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_label: Option<String>,
    /// Live or imported.
    pub origin: Origin,
    /// For an import, the file it was sealed from. Its times are claims: an import proves
    /// what the file held when it was sealed, not when it was filmed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<ImportedFile>,
    /// The header's device time: when recording started; for an import, when the file was
    /// sealed (never when it was filmed).
    pub started: Moment,
    /// The end record's device time, else the last segment's last packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Moment>,
    /// The media time the segments cover, µs (from the first segment's start to the last
    /// one's end): the recording's length, live or imported.
    pub duration_us: i64,
    /// How many segment records it has.
    pub segments: u64,
    /// For a cut-off recording, its last proven second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_proven: Option<LastProven>,
    /// The age recipients (case keys) its segments are sealed to.
    pub recipients: Vec<String>,
}

impl RecordingFacts {
    /// The facts of the chain whose header is `header`.
    pub(crate) fn of(
        header: &RecordingHeader,
        records: &[&SignedRecord],
        rows: &[SegmentRow],
        device_label: Option<&str>,
        verdict: &Verdict,
        zone: Option<&dyn Zone>,
    ) -> RecordingFacts {
        let end = records.iter().find_map(|r| match r.record() {
            Record::End(e) => Some(e.ended_at_us),
            _ => None,
        });
        let ended = end.or_else(|| rows.last().map(|s| s.wall_last_us));
        let duration_us = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (b.media_end_us - a.media_start_us).max(0),
            _ => 0,
        };
        let last_proven = match verdict {
            Verdict::IntactCutOff { last_seq, last_wall_us } => Some(LastProven {
                seq: *last_seq,
                device: Moment::new(*last_wall_us, zone),
                received: rows
                    .iter()
                    .rev()
                    .find(|s| s.seq <= *last_seq)
                    .and_then(|s| s.received_at_us)
                    .map(|t| Moment::new(t, zone)),
            }),
            _ => None,
        };
        let imported = (header.origin == Origin::Imported).then(|| ImportedFile {
            name: header.input.clone(),
            sha256: header.imported_file.as_ref().map(|f| hex(&f.sha256)).unwrap_or_default(),
            len: header.imported_file.as_ref().map_or(0, |f| f.len),
        });
        RecordingFacts {
            device_label: device_label.map(str::to_string),
            origin: header.origin,
            imported,
            started: Moment::new(header.started_at_us, zone),
            ended: ended.map(|t| Moment::new(t, zone)),
            duration_us,
            segments: rows.len() as u64,
            last_proven,
            recipients: header.recipients.clone(),
        }
    }

    /// The recording in a phrase: "the live recording by “observer-7”, … to … UTC by the
    /// device clock (20.0 s)", or for an import, the file it was sealed from and when.
    /// Without `with_end`, a live recording is named by its start alone (a cut-off one's
    /// end is its last proven second, said on its own).
    pub fn phrase(&self, with_end: bool) -> String {
        let by = match &self.device_label {
            Some(l) => format!("by “{l}”"),
            None => "by a device with no readable certificate".into(),
        };
        let length = seconds(self.duration_us);
        match &self.imported {
            Some(f) => format!(
                "the recording imported {by} from the file “{}” (SHA-256 {}, {} bytes; {length} of media), sealed {} by the device clock",
                f.name,
                f.sha256,
                f.len,
                self.started.text()
            ),
            None => match self.ended.as_ref().filter(|_| with_end) {
                Some(end) => format!(
                    "the live recording {by}, {} by the device clock ({length})",
                    self.started.until(end)
                ),
                None => format!(
                    "the live recording {by}, started {} by the device clock ({length})",
                    self.started.text()
                ),
            },
        }
    }
}

/// `20.0 s`, or `1 h 02 min 03 s` for long recordings.
pub fn seconds(us: i64) -> String {
    let s = us as f64 / 1e6;
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let whole = us / 1_000_000;
    let (h, m, sec) = (whole / 3600, whole % 3600 / 60, whole % 60);
    if h > 0 {
        format!("{h} h {m:02} min {sec:02} s")
    } else {
        format!("{m} min {sec:02} s")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tar archive the bundle was read from, by its own SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Archive {
    /// The archive's file name as given.
    pub name: String,
    /// SHA-256 of the whole archive, hex.
    pub sha256: String,
}

/// When the report was made, by what, over which bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct About {
    /// When the verification ran, by the verifying machine's clock.
    pub made_at: Moment,
    /// The verifier's name and version.
    pub verifier: String,
    /// SHA-256 of the bundle's `MANIFEST.sha256`, hex: it lists every file's SHA-256, so it
    /// names the whole bundle (and a directory has no other single hash).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// When the bundle was read from one `.tar`, that archive's own SHA-256.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archive>,
    /// The IANA name of the zone local times are shown in, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl About {
    pub(crate) fn new(manifest: Option<&[u8; 32]>, zone: Option<&dyn Zone>) -> About {
        About {
            made_at: Moment::new(custody_format::time::now_us(), zone),
            verifier: VERIFIER.into(),
            manifest_sha256: manifest.map(|h| hex(h.as_slice())),
            archive: None,
            time_zone: zone.map(|z| z.name().to_string()),
        }
    }

    /// Records that the bundle was read from the archive `name` whose SHA-256 is `sha256`.
    pub fn set_archive(&mut self, name: &str, sha256: &[u8; 32]) {
        self.archive = Some(Archive { name: name.into(), sha256: hex(sha256) });
    }

    /// Which bundle, in a phrase: the archive's hash, else the manifest's (saying which).
    pub fn bundle_phrase(&self) -> String {
        match (&self.archive, &self.manifest_sha256) {
            (Some(a), _) => format!("the archive “{}”, SHA-256 {}", a.name, a.sha256),
            (None, Some(m)) => format!(
                "the bundle directory whose MANIFEST.sha256 (the SHA-256 of every file) has SHA-256 {m}"
            ),
            (None, None) => "a bundle with no readable MANIFEST.sha256".into(),
        }
    }
}

/// SHA-256 of a whole file (a bundle's `.tar`, as a report names it), read in 64 KiB pieces.
pub fn file_sha256(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hash.finalize().into());
        }
        hash.update(&buf[..n]);
    }
}

/// The chain positions that a failed check names, in order: the segments (and records) a
/// report marks.
pub fn failed_positions(checks: &[Check]) -> Vec<u64> {
    let set: BTreeSet<u64> =
        checks.iter().filter(|c| c.state == CheckState::Failure).filter_map(|c| c.seq).collect();
    set.into_iter().collect()
}

/// The verdict: [`Verdict::from_checks`], except that a bundle signed by another server key
/// than the trusted one, with nothing else failed, is "signer not confirmed" rather than
/// tampered or unchecked (a mistyped `--trust` looks exactly like this).
pub(crate) fn verdict(checks: &[Check], cut_off: Option<(u64, i64)>, trust: &Trust) -> Verdict {
    // What cannot be checked about an independent time (revocation offline, a token without
    // roots to check it against) leaves the recording's own proof as it is: those lines are
    // reported, and the verdict is the recording's.
    let counted: Vec<Check> = checks
        .iter()
        .filter(|c| !(c.state == CheckState::NotChecked && c.code.starts_with("time.tsa.")))
        .cloned()
        .collect();
    let verdict = Verdict::from_checks(&counted, cut_off);
    match (verdict, trust) {
        (Verdict::Tampered, _) => Verdict::Tampered,
        (_, Trust::Untrusted { fingerprint, trusted }) => Verdict::SignerNotConfirmed {
            found_fingerprint: fingerprint.clone(),
            expected_fingerprint: trusted.clone(),
        },
        (v, _) => v,
    }
}

/// What the report says about independent time (issue 18): for each run of consecutive
/// segments covered by the same verified time-stamp token, "Segments 1–37 existed by …,
/// according to time-stamp authority …"; what no token covers; or that no independent time
/// was obtained. `had_tokens` says whether the log carried any token at all, so that a
/// bundle whose tokens all failed is not described as one without tokens.
pub(crate) fn independent_time(
    segments: &[SegmentRow],
    stamps: &[Stamp],
    had_tokens: bool,
    zone: Option<&dyn Zone>,
) -> String {
    if stamps.is_empty() {
        return if had_tokens {
            "No independent time was proven: the time-stamp tokens in the custody log did not \
             verify (see the time.tsa checks); times come from the device and the legal \
             team's server."
                .into()
        } else {
            "No independent time was obtained: times come from the device and the legal \
             team's server."
                .into()
        };
    }
    let range = |a: u64, b: u64| {
        if a == b {
            format!("Segment {a}")
        } else {
            format!("Segments {a}\u{2013}{b}")
        }
    };
    // Runs of consecutive segments with the same bound.
    // (first, last, bound: genTime and authority)
    type Run = (u64, u64, Option<(i64, String)>);
    let mut runs: Vec<Run> = Vec::new();
    for s in segments {
        let bound = s.existed_by_us.zip(s.existed_by_tsa.clone());
        match runs.last_mut() {
            Some((_, last, b)) if *b == bound && *last + 1 == s.seq => *last = s.seq,
            _ => runs.push((s.seq, s.seq, bound)),
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut uncovered: Vec<String> = Vec::new();
    for (a, b, bound) in &runs {
        match bound {
            Some((us, tsa)) => {
                let shipped = stamps.iter().any(|st| {
                    st.gen_time_us == *us && st.tsa == *tsa && st.roots == RootOrigin::Bundle
                });
                let whose = if shipped {
                    " (independent of the device and of the legal team, though its certificate \
                     was checked only against roots the legal team shipped with the bundle)"
                } else {
                    " (independent of the device and of the legal team)"
                };
                out.push(format!(
                    "{} existed by {}, according to time-stamp authority {tsa}{whose}.",
                    range(*a, *b),
                    Moment::new(*us, zone).text()
                ));
            }
            None => uncovered.push(range(*a, *b).to_lowercase()),
        }
    }
    if !uncovered.is_empty() {
        out.push(format!(
            "No verified time-stamp covers {}: their times come from the device and the legal \
             team's server.",
            uncovered.join(", ")
        ));
    }
    if out.is_empty() {
        out.push(
            "No segment is covered by a verified time-stamp: times come from the device and \
             the legal team's server."
                .into(),
        );
    }
    out.join(" ")
}

/// When every one of the `attempted` segments failed to decrypt alike (the identity given is
/// not a case key of this recording), one check says so, naming the recipients the
/// recording is sealed to, instead of one line per segment. Segments that fail among others
/// that decrypt (damage) keep a check each.
pub(crate) fn collapse_decrypt_failures(
    checks: &mut Vec<Check>,
    attempted: usize,
    recipients: &[String],
    identity: &[String],
) {
    let failed: Vec<(usize, &Check)> =
        checks.iter().enumerate().filter(|(_, c)| c.code == code::SEGMENT_DECRYPT_FAILED).collect();
    let Some(&(first, _)) = failed.first() else { return };
    // The message after "segment N: " is the decryption error.
    let reason = |c: &Check| c.message.split_once(": ").map(|(_, r)| r.to_string());
    let reasons: BTreeSet<Option<String>> = failed.iter().map(|(_, c)| reason(c)).collect();
    if failed.len() != attempted || reasons.len() != 1 {
        return;
    }
    let reason = reasons.into_iter().next().flatten().unwrap_or_default();
    let sealed_to = if recipients.is_empty() {
        "no recipient the header names".to_string()
    } else {
        recipients.join(", ")
    };
    let given = if identity.is_empty() {
        String::new()
    } else {
        format!("; the identity given is for {}", identity.join(", "))
    };
    let n = failed.len();
    let segments = if n == 1 {
        "the recording's one segment does not decrypt".to_string()
    } else {
        format!("none of the {n} segments decrypts")
    };
    let message = format!(
        "{segments} with the given identity ({reason}): the recording is sealed to {sealed_to}{given}; give the case key of one of those recipients with --identity"
    );
    checks.retain(|c| c.code != code::SEGMENT_DECRYPT_FAILED);
    checks.insert(first.min(checks.len()), Check::new(code::SEGMENT_DECRYPT_FAILED, message));
}

/// The verdict in sentences, the facts of what and when included. The first sentence is the
/// verdict; a tampered one names what failed and where; nothing reassuring about the signer
/// comes first.
pub(crate) fn summary(
    verdict: &Verdict,
    trust: &Trust,
    facts: Option<&RecordingFacts>,
    checks: &[Check],
) -> String {
    let what = facts.map(|f| f.phrase(true));
    let signer = match trust {
        Trust::Trusted { fingerprint } => {
            format!("It is signed by the trusted server key {fingerprint}.")
        }
        Trust::Unconfirmed { fingerprint } => format!(
            "It is consistent with itself, but no trusted server key was given: confirm the server key fingerprint {fingerprint} with the legal team before relying on it."
        ),
        Trust::Untrusted { fingerprint, trusted } => {
            format!("It is signed by server key {fingerprint}, not by the trusted key {trusted}.")
        }
        Trust::Unknown => "The bundle carries no readable server key.".into(),
    };
    let claims = facts.filter(|f| f.imported.is_some()).map(|_| {
        "Its times are claims: an import proves what the file held when it was sealed, not when it was filmed.".to_string()
    });
    let mut out: Vec<String> = Vec::new();
    match verdict {
        Verdict::IntactComplete => {
            out.push(match &what {
                Some(w) => format!(
                    "Intact and complete: {w}, is proven present and unaltered: every record is signed, every segment matches its record, and it ends with its end record."
                ),
                None => verdict.sentence(),
            });
            out.extend(claims);
            out.push(signer);
        }
        Verdict::IntactCutOff { last_seq, .. } => {
            let last = facts.and_then(|f| f.last_proven.as_ref());
            let first = match (facts.map(|f| f.phrase(false)), last) {
                (Some(w), Some(l)) => {
                    let received = l
                        .received
                        .as_ref()
                        .map(|r| format!(", received by the server {}", r.text()))
                        .unwrap_or_default();
                    format!(
                        "Intact but cut off after record {last_seq}: {w}, is proven unaltered up to there; its last proven second is {} by the device clock{received}.",
                        l.device.text()
                    )
                }
                _ => format!(
                    "Intact but cut off after record {last_seq}: everything up to there is proven unaltered."
                ),
            };
            out.push(first);
            out.push(
                "There is no end record, and the server's own statement in its signed log shows it held no more than this when the bundle was made: as when a device is seized or dies while recording."
                    .into(),
            );
            out.extend(claims);
            out.push(signer);
        }
        Verdict::Tampered => {
            out.push(tampered_first_sentence(checks));
            out.push(
                "The failed segments and records are marked below; everything that did verify is shown as it is."
                    .into(),
            );
            out.push(
                "Damage in transit is possible: fetch the bundle again (custody fetch) and run `sha256sum -c MANIFEST.sha256` in its directory; if every file checks out and this verdict stays, the damage did not happen on the way."
                    .into(),
            );
            if let Some(w) = &what {
                out.push(format!("It claims to hold {w}."));
            }
            if matches!(trust, Trust::Untrusted { .. }) {
                out.push(signer);
            }
        }
        Verdict::SignerNotConfirmed { found_fingerprint, expected_fingerprint } => {
            out.push(format!(
                "Signer not confirmed: the bundle is signed by server key {found_fingerprint}, not by the key given to trust ({expected_fingerprint})."
            ));
            out.push(
                "A mistyped --trust looks like this, and so does a bundle made or re-signed by another server: confirm the fingerprint with the legal team. No other check failed, but nothing in this bundle is proven until its signer is confirmed."
                    .into(),
            );
            if let Some(w) = &what {
                out.push(format!("It claims to hold {w}."));
            }
        }
        Verdict::CouldNotCheck => {
            // A bundle from before completeness statements is said first: it is why nothing
            // here can be called complete.
            let mut missing: Vec<&Check> = checks
                .iter()
                .filter(|c| c.state == CheckState::NotChecked && !c.code.starts_with("time.tsa."))
                .collect();
            missing.sort_by_key(|c| c.code != code::BUNDLE_STATEMENT_ABSENT);
            out.push(match missing.first() {
                Some(c) => format!(
                    "Could not check: {} ({}){}.",
                    c.message,
                    c.code,
                    more(missing.len() - 1, "could not be checked")
                ),
                None => verdict.sentence(),
            });
            if let Some(w) = &what {
                out.push(format!("It holds {w}."));
            }
            out.extend(claims);
            out.push(signer);
        }
    }
    out.join(" ")
}

/// ", and 2 more could not be checked", or nothing.
fn more(n: usize, rest: &str) -> String {
    match n {
        0 => String::new(),
        n => format!(", and {n} more {rest}"),
    }
}

/// "Tampered: segment 2's sealed file differs from its record (segment.hash.mismatch), and 2
/// more checks failed." The failure named is the first that names a chain position, else
/// the first.
fn tampered_first_sentence(checks: &[Check]) -> String {
    let failed: Vec<&Check> = checks.iter().filter(|c| c.state == CheckState::Failure).collect();
    let Some(first) = failed.iter().find(|c| c.seq.is_some()).or(failed.first()) else {
        return Verdict::Tampered.sentence();
    };
    let rest = match failed.len() - 1 {
        1 => ", and 1 more check failed".into(),
        n => more(n, "checks failed"),
    };
    format!("Tampered: {} ({}){rest}.", first.message, first.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Chicago;
    impl Zone for Chicago {
        fn name(&self) -> &str {
            "America/Chicago"
        }
        fn offset_at(&self, _us: i64) -> (i32, String) {
            (-5 * 3600, "CDT".into())
        }
    }

    #[test]
    fn moments_in_utc_and_local_time() {
        let m = Moment::new(1_714_564_800_000_000, Some(&Chicago));
        assert_eq!(m.utc, "2024-05-01 12:00:00 UTC");
        assert_eq!(m.local.as_deref(), Some("2024-05-01 07:00:00 -05:00 CDT, America/Chicago"));
        assert_eq!(m.text(), "2024-05-01 12:00:00 UTC (07:00:00 CDT, America/Chicago)");
        assert_eq!(
            m.full(),
            "2024-05-01 12:00:00 UTC = 2024-05-01 07:00:00 -05:00 CDT, America/Chicago"
        );
        // Late in the evening in Chicago is the next day in UTC: the local date is given.
        let late = Moment::new(1_714_564_800_000_000 + 12 * 3_600_000_000, Some(&Chicago));
        assert_eq!(
            late.text(),
            "2024-05-02 00:00:00 UTC (2024-05-01 19:00:00 CDT, America/Chicago)"
        );
        assert_eq!(
            m.until(&late),
            "2024-05-01 12:00:00 to 2024-05-02 00:00:00 UTC (07:00:00 to 19:00:00 CDT, America/Chicago)"
        );
        let utc = Moment::new(0, None);
        assert_eq!(
            utc.until(&Moment::new(61_000_000, None)),
            "1970-01-01 00:00:00 to 00:01:01 UTC"
        );
        assert_eq!(Moment::new(0, None).text(), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(seconds(20_000_000), "20.0 s");
        assert_eq!(seconds(0), "0.0 s");
        assert_eq!(seconds(125_000_000), "2 min 05 s");
        assert_eq!(seconds(3_723_000_000), "1 h 02 min 03 s");
    }
}
