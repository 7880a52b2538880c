//! Matching another copy of the media (a file from the phone) against a recording, packet
//! by packet: which segments are in it unchanged, which differ, and which time ranges
//! exist in only one of the two.
//!
//! Both sides are lists of [`PacketHash`]es, so the containers do not matter. The two
//! copies may start at different points (a trimmed copy starts later), so the original's
//! timeline is first aligned to the recording's, stream by stream: for each stream, the
//! most common time difference between its packets with equal digests. A recording packet
//! matches when the original holds a packet with the same digest, of the same stream, at
//! the same aligned time (within [`TOLERANCE_US`], the coarsest time base a container
//! rounds to).
//!
//! Each stream is aligned on its own because containers and muxers move a stream's times
//! as a whole, against the other streams: FFmpeg's Matroska demuxer subtracts an Opus
//! track's CodecDelay (its pre-skip, 6.5 ms, rounded to 7 ms) from every block time, while
//! its Matroska muxer (FFmpeg 5.1) writes the CodecDelay without adding it to the blocks,
//! so every remux through FFmpeg moves Opus 7 ms earlier against the video; an MP4 edit
//! list shifts one track. One offset for all streams then leaves one stream's every
//! packet 7 ms off, beyond the tolerance.

use std::collections::{BTreeMap, HashMap};

use crate::replay::PacketHash;

/// How far apart two equal packets' aligned times may be: MPEG-TS rounds to 1/90000 s,
/// Matroska to 1 ms, MP4 to its track's timescale.
pub const TOLERANCE_US: i64 = 2_000;
/// How close to the edge of what the original covers a packet may be missing without the
/// segment counting as changed.
const EDGE_US: i64 = 100_000;
/// How far one segment's own alignment of a stream may lie from the stream's alignment over
/// the whole recording. A segment is placed on the recording's timeline by its record's
/// `media_start_us`, which a browser's segment measures from its first block in file order
/// and a segment capture cut (section 6.3) from its earliest packet, up to 10 ms of audio
/// lead before its opening keyframe: the recording's packets of one segment may so lie a
/// few milliseconds off from the next segment's. A segment's own packets are still
/// compared with one another at one alignment, so a frame taken out of the original in
/// the middle of a segment leaves those on one side of it out of line.
const SEGMENT_SLACK_US: i64 = 20_000;
/// Unmatched stretches closer than this are reported as one range.
const JOIN_US: i64 = 100_000;

/// A segment of the recording, as the matcher needs it.
#[derive(Clone, Copy, Debug)]
pub struct SegmentSpan {
    /// Chain position.
    pub seq: u64,
    /// Media time range `[start_us, end_us)` on the recording's timeline.
    pub start_us: i64,
    /// End of its media time.
    pub end_us: i64,
}

/// How one segment compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentMatch {
    /// Every packet of the segment is in the original, unchanged.
    Match,
    /// Some packets match; the rest lie outside the time the original covers.
    Partial,
    /// The original covers the segment's time, but with other packets.
    Differs,
    /// The original does not cover the segment's time at all.
    Absent,
}

/// One segment's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SegmentOutcome {
    /// Chain position.
    pub seq: u64,
    /// The outcome.
    pub outcome: SegmentMatch,
    /// Its packets that are in the original.
    pub matched: u64,
    /// Its packets.
    pub packets: u64,
}

/// The comparison.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Comparison {
    /// The original's time minus the recording's, for the same packet of the first stream
    /// (the video, if any) that has packets in common, µs (`None` if no packet is common to
    /// both, and then the two are compared as if both started at 0).
    pub offset_us: Option<i64>,
    /// The same, for each stream (0 the video, then the audio, as [`PacketHash::stream`]
    /// numbers them); `None` for a stream with no packet in common. A stream without one is
    /// compared at `offset_us`.
    pub stream_offsets_us: Vec<Option<i64>>,
    /// Per segment, in chain order.
    pub segments: Vec<SegmentOutcome>,
    /// Time ranges (recording timeline, µs) whose packets only the recording has.
    pub only_in_recording: Vec<(i64, i64)>,
    /// Time ranges (recording timeline, µs) whose packets only the original has.
    pub only_in_original: Vec<(i64, i64)>,
    /// Packets of the recording, and of them matched.
    pub recording_packets: (u64, u64),
    /// Packets of the original, and of them matched.
    pub original_packets: (u64, u64),
}

fn span(p: &PacketHash) -> (i64, i64) {
    (p.pts_us, p.pts_us + p.duration_us.max(1))
}

fn ranges(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 + JOIN_US => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Compares `original` against `recording` (both from [`crate::packet_hashes`]), the
/// recording cut into `segments`.
pub fn compare(
    recording: &[PacketHash],
    segments: &[SegmentSpan],
    original: &[PacketHash],
) -> Comparison {
    // Where each digest occurs in the original.
    let mut at: HashMap<(usize, [u8; 32]), Vec<usize>> = HashMap::new();
    for (i, p) in original.iter().enumerate() {
        at.entry((p.stream, p.digest)).or_default().push(i);
    }
    // The alignment, per stream: the most common time difference between equal packets (a
    // packet that occurs many times, like silent audio, says little and is skipped).
    let mut votes: BTreeMap<usize, HashMap<i64, u64>> = BTreeMap::new();
    for p in recording {
        if let Some(idx) = at.get(&(p.stream, p.digest)).filter(|v| v.len() <= 4) {
            for &i in idx {
                let d = original[i].pts_us - p.pts_us;
                *votes
                    .entry(p.stream)
                    .or_default()
                    .entry((d + 500).div_euclid(1000))
                    .or_default() += 1;
            }
        }
    }
    let stream_offsets: BTreeMap<usize, i64> = votes
        .into_iter()
        .filter_map(|(stream, v)| {
            let best = v.into_iter().max_by_key(|&(d, n)| (n, -d.abs()));
            best.map(|(d, _)| (stream, d * 1000))
        })
        .collect();
    let main_offset = stream_offsets.values().next().copied();
    let offset = main_offset.unwrap_or(0);
    let offset_of = |stream: usize| stream_offsets.get(&stream).copied().unwrap_or(offset);

    let in_segment = |s: &SegmentSpan, p: &PacketHash| {
        let last = segments.last().is_some_and(|l| l.seq == s.seq);
        p.pts_us >= s.start_us - crate::interleave::AUDIO_LEAD_US
            && (p.pts_us < s.end_us - crate::interleave::AUDIO_LEAD_US || last)
    };
    // Each recording packet's segment (by position in `segments`), if any: the one it was
    // read from, else the one its time falls in.
    let position: HashMap<u64, usize> =
        segments.iter().enumerate().map(|(k, s)| (s.seq, k)).collect();
    let seg_of: Vec<Option<usize>> = recording
        .iter()
        .map(|p| match p.segment {
            Some(seq) => position.get(&seq).copied(),
            None => segments.iter().position(|s| in_segment(s, p)),
        })
        .collect();
    // Each segment's own alignment of each stream, within SEGMENT_SLACK_US of the stream's.
    let mut local_votes: HashMap<(usize, usize), HashMap<i64, u64>> = HashMap::new();
    for (p, seg) in recording.iter().zip(&seg_of) {
        let Some(seg) = *seg else { continue };
        let Some(idx) = at.get(&(p.stream, p.digest)).filter(|v| v.len() <= 4) else { continue };
        for &i in idx {
            let d = (original[i].pts_us - p.pts_us + 500).div_euclid(1000);
            if (d * 1000 - offset_of(p.stream)).abs() <= SEGMENT_SLACK_US {
                *local_votes.entry((seg, p.stream)).or_default().entry(d).or_default() += 1;
            }
        }
    }
    let local: HashMap<(usize, usize), i64> = local_votes
        .into_iter()
        .filter_map(|(key, v)| {
            let global = offset_of(key.1);
            let best = v.into_iter().max_by_key(|&(d, n)| (n, -(d * 1000 - global).abs()));
            best.map(|(d, _)| (key, d * 1000))
        })
        .collect();
    let offset_at = |seg: Option<usize>, stream: usize| {
        seg.and_then(|seg| local.get(&(seg, stream)).copied()).unwrap_or(offset_of(stream))
    };

    let mut used = vec![false; original.len()];
    let mut matched = vec![false; recording.len()];
    for (r, p) in recording.iter().enumerate() {
        let Some(idx) = at.get(&(p.stream, p.digest)) else { continue };
        let o = offset_at(seg_of[r], p.stream);
        let hit = idx.iter().copied().find(|&i| {
            !used[i] && (original[i].pts_us - o - p.pts_us).abs() <= TOLERANCE_US + 1000
        });
        if let Some(i) = hit {
            used[i] = true;
            matched[r] = true;
        }
    }

    // The time the original covers, on the recording's timeline.
    let aligned = |p: &PacketHash| {
        let o = offset_of(p.stream);
        (span(p).0 - o, span(p).1 - o)
    };
    let covered = ranges(original.iter().map(aligned).collect::<Vec<_>>());
    let overlaps = |a: i64, b: i64| covered.iter().any(|&(x, y)| x < b && a < y);
    // Well inside what the original covers: a packet missing there was changed, not cut
    // off by a trim (whose edges fall within a frame or two of a packet boundary).
    let inside = |p: &PacketHash| {
        let (a, b) = span(p);
        covered.iter().any(|&(x, y)| x + EDGE_US <= a && b <= y - EDGE_US)
    };
    let mut outcomes = Vec::new();
    for (k, s) in segments.iter().enumerate() {
        let mine: Vec<usize> = (0..recording.len()).filter(|&i| seg_of[i] == Some(k)).collect();
        let hits = mine.iter().filter(|&&i| matched[i]).count();
        let unmatched_covered =
            mine.iter().filter(|&&i| !matched[i]).any(|&i| inside(&recording[i]));
        let outcome = if !mine.is_empty() && hits == mine.len() {
            SegmentMatch::Match
        } else if unmatched_covered {
            SegmentMatch::Differs
        } else if hits > 0 {
            SegmentMatch::Partial
        } else if overlaps(s.start_us + EDGE_US, s.end_us - EDGE_US) {
            SegmentMatch::Differs
        } else {
            SegmentMatch::Absent
        };
        outcomes.push(SegmentOutcome {
            seq: s.seq,
            outcome,
            matched: hits as u64,
            packets: mine.len() as u64,
        });
    }
    let only_rec = recording.iter().zip(&matched).filter(|(_, m)| !**m).map(|(p, _)| span(p));
    let only_orig = original.iter().zip(&used).filter(|(_, u)| !**u).map(|(p, _)| aligned(p));
    let count = |v: &[bool]| v.iter().filter(|m| **m).count() as u64;
    let streams = recording.iter().chain(original).map(|p| p.stream + 1).max().unwrap_or(0);
    Comparison {
        offset_us: main_offset,
        stream_offsets_us: (0..streams)
            .map(|stream| stream_offsets.get(&stream).copied())
            .collect(),
        segments: outcomes,
        only_in_recording: ranges(only_rec.collect()),
        only_in_original: ranges(only_orig.collect()),
        recording_packets: (recording.len() as u64, count(&matched)),
        original_packets: (original.len() as u64, count(&used)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custody_format::digest::MediaKind;

    fn p(stream: usize, pts_ms: i64, tag: u8) -> PacketHash {
        PacketHash {
            stream,
            kind: if stream == 0 { MediaKind::Video } else { MediaKind::Audio },
            pts_us: pts_ms * 1000,
            duration_us: 40_000,
            digest: [tag; 32],
            segment: None,
        }
    }

    fn clip(from: i64, to: i64, shift: i64) -> Vec<PacketHash> {
        (from..to).map(|i| p(0, i * 40 - shift, i as u8)).collect()
    }

    fn segs() -> Vec<SegmentSpan> {
        (0..4)
            .map(|i| SegmentSpan {
                seq: i + 1,
                start_us: i as i64 * 2_000_000,
                end_us: (i as i64 + 1) * 2_000_000,
            })
            .collect()
    }

    #[test]
    fn identical_copies_match_everywhere() {
        let c = compare(&clip(0, 200, 0), &segs(), &clip(0, 200, 0));
        assert!(c.segments.iter().all(|s| s.outcome == SegmentMatch::Match));
        assert!(c.only_in_original.is_empty() && c.only_in_recording.is_empty());
        assert_eq!(c.offset_us, Some(0));
    }

    #[test]
    fn a_trimmed_copy_is_aligned_and_the_rest_is_only_in_the_recording() {
        // The copy holds packets 50..150 (2 s to 6 s), its times starting at 0.
        let c = compare(&clip(0, 200, 0), &segs(), &clip(50, 150, 2000));
        assert_eq!(c.offset_us, Some(-2_000_000));
        let o: Vec<_> = c.segments.iter().map(|s| s.outcome).collect();
        assert_eq!(
            o,
            [SegmentMatch::Absent, SegmentMatch::Match, SegmentMatch::Match, SegmentMatch::Absent]
        );
        assert_eq!(c.only_in_recording, [(0, 2_000_000), (6_000_000, 8_000_000)]);
        assert!(c.only_in_original.is_empty());
    }

    #[test]
    fn a_stream_moved_against_the_others_is_aligned_on_its_own() {
        // Video every 40 ms, audio every 20 ms; in the original the audio lies 7 ms earlier
        // against the video (what an FFmpeg remux of Opus does), and both 2 s later.
        let both = |audio_shift: i64| -> Vec<PacketHash> {
            let mut v = clip(0, 200, 0);
            v.extend((0..400).map(|i| PacketHash {
                duration_us: 20_000,
                ..p(1, i * 20 - audio_shift, 100 + (i % 150) as u8)
            }));
            for x in &mut v {
                x.pts_us += 2_000_000;
            }
            v
        };
        let recording: Vec<PacketHash> = both(0)
            .into_iter()
            .map(|mut x| {
                x.pts_us -= 2_000_000;
                x
            })
            .collect();
        let c = compare(&recording, &segs(), &both(7));
        assert!(c.segments.iter().all(|s| s.outcome == SegmentMatch::Match), "{c:?}");
        assert_eq!(c.offset_us, Some(2_000_000));
        assert_eq!(c.stream_offsets_us, [Some(2_000_000), Some(1_993_000)]);
        assert!(c.only_in_original.is_empty() && c.only_in_recording.is_empty(), "{c:?}");
    }

    #[test]
    fn a_segment_placed_a_few_ms_off_still_matches_but_not_one_placed_a_frame_off() {
        // Segment 2 (2 s to 4 s) of the recording placed 6 ms late, as a segment whose
        // media time was measured from an audio packet ahead of its keyframe would be.
        let shifted = |by: i64| -> Vec<PacketHash> {
            clip(0, 200, 0)
                .into_iter()
                .map(|mut x| {
                    if (2_000_000..4_000_000).contains(&x.pts_us) {
                        x.pts_us += by;
                    }
                    x
                })
                .collect()
        };
        let c = compare(&shifted(6_000), &segs(), &clip(0, 200, 0));
        assert!(c.segments.iter().all(|s| s.outcome == SegmentMatch::Match), "{c:?}");
        // 40 ms (a frame) off is not an anchor's rounding: that segment differs.
        let c = compare(&shifted(40_000), &segs(), &clip(0, 200, 0));
        // (Its last packet, moved past 4 s, counts in segment 3 and is out of line there.)
        let o: Vec<_> = c.segments.iter().map(|s| s.outcome).collect();
        assert_eq!(o[1], SegmentMatch::Differs, "{c:?}");
        assert_eq!((o[0], o[3]), (SegmentMatch::Match, SegmentMatch::Match), "{c:?}");
    }

    #[test]
    fn other_packets_differ() {
        let other: Vec<_> = (0..200).map(|i| p(0, i * 40, 255 - (i % 50) as u8)).collect();
        let c = compare(&clip(0, 200, 0), &segs(), &other);
        assert!(c.segments.iter().all(|s| s.outcome == SegmentMatch::Differs), "{c:?}");
        assert_eq!(c.only_in_original, [(0, 8_000_000)]);
    }
}
