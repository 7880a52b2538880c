//! Orders packets across streams before they reach the muxer, so that a cut falls at one
//! media time for every stream.
//!
//! Demuxers deliver audio and video only roughly interleaved (MPEG-TS by whole PES
//! packets, MP4 by chunks), and a keyframe's decode time precedes its presentation time
//! when B-frames are used. A segment is defined by presentation time: it holds the video
//! packets from its opening keyframe up to the next cut in decode order, and the other
//! streams' packets whose presentation time is at or after its start and before the next
//! one (`docs/format.md`; [`crate::digest_file`] cuts another copy of the media the same
//! way). To put each audio packet on the right side of a cut, a video packet (any of which
//! may open a segment: a keyframe, or any packet when the cap forces a cut) is held until
//! every other stream has caught up with its presentation time: packets are released in
//! the order of a sort key that is the presentation time for video (whose queue stays in
//! decode order) and the decode time for everything else, video first on a tie.
//!
//! Other streams' packets are cut [`AUDIO_LEAD_US`] early: a packet belongs to the next
//! segment if it is presented no more than that before the video keyframe that opens it.
//! Encoders start audio and video at the same instant, so an exact tie at a cut is common,
//! and remuxing rounds timestamps (to 1/90000 s in MPEG-TS, 1 ms in Matroska and FLV)
//! differently per stream; with the tie moved half an audio frame away, a remuxed copy of
//! the same media is cut the same way.

use std::collections::VecDeque;

/// A packet waiting to be released, with what the segmenter needs to know about it.
pub(crate) struct Queued<P> {
    pub(crate) packet: P,
    pub(crate) lane: usize,
    pub(crate) is_video: bool,
    pub(crate) is_key: bool,
    pub(crate) pts_us: i64,
    pub(crate) dts_us: i64,
    pub(crate) end_us: i64,
    pub(crate) wall_us: i64,
    pub(crate) size: usize,
}

impl<P> Queued<P> {
    fn sort_key(&self) -> (i64, u8) {
        let t = if self.is_video { self.pts_us } else { self.dts_us.saturating_add(AUDIO_LEAD_US) };
        (t, u8::from(!self.is_video))
    }
}

/// How far before a cut a non-video packet may be presented and still open the next
/// segment: half an AAC frame at 48 kHz, more than any container's rounding.
pub(crate) const AUDIO_LEAD_US: i64 = 10_000;

/// Per-stream FIFOs, released in sort-key order once every stream has something queued.
pub(crate) struct Interleaver<P> {
    queues: Vec<VecDeque<Queued<P>>>,
    queued_bytes: usize,
    queued_packets: usize,
}

/// Beyond these, a stream that has gone quiet no longer holds the others back (a live
/// input that lost its audio must keep recording its video, within bounded memory).
const MAX_QUEUED_PACKETS: usize = 600;
const MAX_QUEUED_BYTES: usize = 24 << 20;
const MAX_QUEUED_SPAN_US: i64 = 5_000_000;

impl<P> Interleaver<P> {
    pub(crate) fn new(lanes: usize) -> Self {
        Interleaver {
            queues: (0..lanes).map(|_| VecDeque::new()).collect(),
            queued_bytes: 0,
            queued_packets: 0,
        }
    }

    pub(crate) fn push(&mut self, q: Queued<P>) {
        self.queued_bytes += q.size;
        self.queued_packets += 1;
        if let Some(queue) = self.queues.get_mut(q.lane) {
            queue.push_back(q);
        }
    }

    fn span_us(&self) -> i64 {
        let mut lo = i64::MAX;
        let mut hi = i64::MIN;
        for q in self.queues.iter().flat_map(|q| q.iter()) {
            lo = lo.min(q.dts_us);
            hi = hi.max(q.dts_us);
        }
        hi.saturating_sub(lo)
    }

    /// The next packet that may go to the muxer, if any. With `drain`, every queued packet
    /// is released (the input has ended).
    pub(crate) fn pop(&mut self, drain: bool) -> Option<Queued<P>> {
        let all_have = self.queues.iter().all(|q| !q.is_empty());
        let over = self.queued_packets > MAX_QUEUED_PACKETS
            || self.queued_bytes > MAX_QUEUED_BYTES
            || self.span_us() > MAX_QUEUED_SPAN_US;
        if !(drain || all_have || over) {
            return None;
        }
        let lane = self
            .queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|h| (h.sort_key(), i)))
            .min()
            .map(|(_, i)| i)?;
        let q = self.queues.get_mut(lane)?.pop_front()?;
        self.queued_bytes -= q.size;
        self.queued_packets -= 1;
        Some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(lane: usize, is_video: bool, is_key: bool, pts: i64, dts: i64) -> Queued<u32> {
        Queued {
            packet: 0,
            lane,
            is_video,
            is_key,
            pts_us: pts,
            dts_us: dts,
            end_us: pts + 1,
            wall_us: 0,
            size: 1,
        }
    }

    #[test]
    fn audio_before_a_keyframes_presentation_time_goes_first() {
        let mut il = Interleaver::new(2);
        // Keyframe decoded at 1.9 s, shown at 2.0 s; audio at 1.95 s arrives after it.
        il.push(q(0, true, true, 2_000_000, 1_900_000));
        assert!(il.pop(false).is_none(), "waits for the audio stream");
        il.push(q(1, false, true, 1_950_000, 1_950_000));
        il.push(q(1, false, true, 1_990_000, 1_990_000));
        let first = il.pop(false).unwrap();
        assert_eq!((first.lane, first.pts_us), (1, 1_950_000));
        let second = il.pop(false).unwrap();
        assert_eq!(second.lane, 0, "audio within the lead goes after the keyframe");
        assert!(il.pop(false).is_none(), "video queue is empty again");
        assert_eq!(il.pop(true).unwrap().pts_us, 1_990_000);
    }

    #[test]
    fn a_silent_stream_does_not_hold_the_others_forever() {
        let mut il = Interleaver::new(2);
        for i in 0..=MAX_QUEUED_PACKETS as i64 {
            il.push(q(0, true, false, i * 1000, i * 1000));
        }
        assert!(il.pop(false).is_some());
    }
}
