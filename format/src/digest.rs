//! The packet digest: a container-independent SHA-256 over a segment's media packets.
//!
//! The same coded media can be carried in many containers. MP4 stores H.264 and HEVC with
//! length prefixes and the parameter sets in the sample description; MPEG-TS frames them
//! with start codes and repeats the parameter sets at every keyframe; AAC is raw in MP4 and
//! behind an ADTS header in TS; timestamps are rounded to each container's time base. The
//! packet digest hashes what stays the same through a remux — the coded payload of every
//! packet, stream by stream, in decode order — so that a file from the phone can be matched
//! to a sealed recording packet by packet. Timestamps are deliberately not part of it: they
//! are compared separately, within the coarser time base (`docs/format.md`, "Packet
//! digest").
//!
//! Normalisation, per codec:
//! - **H.264**: split into NAL units by the stream's framing; keep only the VCL NAL units
//!   (types 1–5), trailing zero bytes removed. A packet is a keyframe if it holds an IDR
//!   slice (type 5).
//! - **HEVC**: likewise, keeping VCL types 0–31; a keyframe holds an IRAP (types 16–23).
//! - **AAC**: the raw frame, with any ADTS header removed.
//! - **Anything else**: the whole packet; the container's key flag for video, always key
//!   for audio.
//!
//! A packet that cannot be split as its framing says is hashed whole, marked as opaque, so
//! the digest is defined for every input and never fails.

use sha2::{Digest, Sha256};

use crate::primitives::{DOMAIN_PACKET_DIGEST, DOMAIN_PACKET_DIGEST_STREAM};

/// What kind of media a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
    /// Subtitles, data, anything else.
    Other,
}

impl MediaKind {
    /// The byte that stands for this kind in the digest and in records.
    pub fn code(self) -> u8 {
        match self {
            MediaKind::Video => 1,
            MediaKind::Audio => 2,
            MediaKind::Other => 3,
        }
    }

    /// The kind a byte stands for, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(MediaKind::Video),
            2 => Some(MediaKind::Audio),
            3 => Some(MediaKind::Other),
            _ => None,
        }
    }
}

/// How a stream's packets frame their coded units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// H.264/HEVC units separated by `00 00 01` / `00 00 00 01` start codes (MPEG-TS, raw).
    AnnexB,
    /// H.264/HEVC units each behind a big-endian length of this many bytes (1, 2 or 4), as in
    /// MP4 and Matroska (`avcC` / `hvcC`).
    LengthPrefixed(u8),
    /// The packet is one unit as it stands (AAC, with or without an ADTS header, and every
    /// other codec).
    Whole,
}

impl Framing {
    /// The framing of an H.264 or HEVC stream, from its codec extradata: an `avcC`/`hvcC`
    /// configuration record (first byte 1) means length-prefixed units of the size it
    /// states; anything else (empty, or Annex B parameter sets) means start codes.
    pub fn from_extradata(codec: &str, extradata: &[u8]) -> Framing {
        let size_byte = match codec {
            "h264" if extradata.len() >= 7 && extradata[0] == 1 => extradata[4],
            "hevc" if extradata.len() >= 23 && extradata[0] == 1 => extradata[21],
            "h264" | "hevc" => return Framing::AnnexB,
            _ => return Framing::Whole,
        };
        Framing::LengthPrefixed((size_byte & 0b11) + 1)
    }
}

/// One stream as the digest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestStream {
    /// What it carries.
    pub kind: MediaKind,
    /// FFmpeg's short codec name (`h264`, `hevc`, `aac`, …); it selects the normalisation
    /// and is itself part of the digest.
    pub codec: String,
    /// How its packets frame their units.
    pub framing: Framing,
}

/// A finished packet digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketDigest(pub [u8; 32]);

impl std::fmt::Debug for PacketDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PacketDigest({})", hex::encode(self.0))
    }
}

struct StreamState {
    info: DigestStream,
    hasher: Sha256,
    packets: u64,
}

/// Computes a packet digest incrementally, one packet at a time, in the order the packets
/// are read; memory use does not grow with the number of packets.
pub struct PacketDigester {
    streams: Vec<StreamState>,
}

impl PacketDigester {
    /// A digester for these streams; packets are pushed with their index into this list.
    pub fn new(streams: &[DigestStream]) -> Self {
        let streams = streams
            .iter()
            .map(|info| {
                let mut hasher = Sha256::new();
                hasher.update(DOMAIN_PACKET_DIGEST_STREAM);
                StreamState { info: info.clone(), hasher, packets: 0 }
            })
            .collect();
        PacketDigester { streams }
    }

    /// Adds one packet of stream `stream` (an index into the list given to [`Self::new`]).
    /// `container_key` is the container's keyframe flag; it is used only for codecs whose
    /// key frames the digest cannot see in the payload. Packets of a stream index that is
    /// out of range are ignored and reported with `false`.
    pub fn push(&mut self, stream: usize, container_key: bool, data: &[u8]) -> bool {
        let Some(state) = self.streams.get_mut(stream) else {
            return false;
        };
        state.packets += 1;
        let entry = normalise(&state.info, container_key, data);
        hash_entry(&mut state.hasher, &entry);
        true
    }

    /// Packets pushed so far, per stream.
    pub fn packet_counts(&self) -> Vec<u64> {
        self.streams.iter().map(|s| s.packets).collect()
    }

    /// The digest of everything pushed.
    pub fn finish(self) -> PacketDigest {
        let mut outer = Sha256::new();
        outer.update(DOMAIN_PACKET_DIGEST);
        outer.update((self.streams.len() as u32).to_be_bytes());
        for s in self.streams {
            outer.update([s.info.kind.code()]);
            let codec = s.info.codec.as_bytes();
            // Codec names are short ASCII; anything longer is cut, deterministically.
            let codec = &codec[..codec.len().min(255)];
            outer.update([codec.len() as u8]);
            outer.update(codec);
            outer.update(s.packets.to_be_bytes());
            outer.update(s.hasher.finalize());
        }
        PacketDigest(outer.finalize().into())
    }
}

/// A packet reduced to what the digest covers.
struct Entry<'a> {
    /// 0: the units below are the normalised payload; 1: the packet could not be split as
    /// its framing says and `units` is the whole packet.
    form: u8,
    key: bool,
    units: Vec<&'a [u8]>,
}

fn hash_entry(hasher: &mut Sha256, entry: &Entry<'_>) {
    hasher.update([entry.form, u8::from(entry.key)]);
    hasher.update((entry.units.len() as u32).to_be_bytes());
    for unit in &entry.units {
        hasher.update((unit.len() as u32).to_be_bytes());
        hasher.update(unit);
    }
}

fn normalise<'a>(info: &DigestStream, container_key: bool, data: &'a [u8]) -> Entry<'a> {
    let opaque = |key| Entry { form: 1, key, units: vec![data] };
    match info.codec.as_str() {
        codec @ ("h264" | "hevc") => {
            let Some(units) = split_units(info.framing, data) else {
                return opaque(container_key);
            };
            let mut key = false;
            let mut kept = Vec::with_capacity(units.len());
            for unit in units {
                let Some(&first) = unit.first() else { continue };
                let (is_vcl, is_key) = if codec == "h264" {
                    let t = first & 0x1f;
                    ((1..=5).contains(&t), t == 5)
                } else {
                    let t = (first >> 1) & 0x3f;
                    (t <= 31, (16..=23).contains(&t))
                };
                if is_vcl {
                    key |= is_key;
                    kept.push(unit);
                }
            }
            Entry { form: 0, key, units: kept }
        }
        "aac" => match strip_adts(data) {
            Some(raw) => Entry { form: 0, key: true, units: vec![raw] },
            None => opaque(true),
        },
        _ => {
            let key = match info.kind {
                MediaKind::Video => container_key,
                MediaKind::Audio | MediaKind::Other => true,
            };
            Entry { form: 0, key, units: vec![data] }
        }
    }
}

/// Splits a packet into NAL units, or `None` if it is not framed as `framing` says.
fn split_units(framing: Framing, data: &[u8]) -> Option<Vec<&[u8]>> {
    match framing {
        Framing::AnnexB => split_annex_b(data),
        Framing::LengthPrefixed(size) => split_length_prefixed(data, size),
        Framing::Whole => Some(vec![data]),
    }
}

/// Positions just past each `00 00 01`, found left to right without overlap. This scan is
/// the digest's hot loop: `memmem` looks for the three bytes many at a time, and in coded
/// slice data (where emulation prevention keeps `00 00` rare) it almost never has to stop
/// before a real start code.
fn start_codes(data: &[u8]) -> Vec<usize> {
    static START_CODE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\x00\x00\x01"));
    START_CODE.find_iter(data).map(|p| p + 3).collect()
}

fn split_annex_b(data: &[u8]) -> Option<Vec<&[u8]>> {
    let starts = start_codes(data);
    let first = *starts.first()?;
    // Only zero bytes may precede the first start code.
    if data[..first - 3].iter().any(|&b| b != 0) {
        return None;
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        units.push(trim_trailing_zeros(&data[start..end]));
    }
    Some(units)
}

fn split_length_prefixed(data: &[u8], size: u8) -> Option<Vec<&[u8]>> {
    let size = usize::from(size);
    if !(1..=4).contains(&size) {
        return None;
    }
    let mut units = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (len_bytes, tail) = rest.split_at_checked(size)?;
        let len = len_bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let (unit, tail) = tail.split_at_checked(len)?;
        units.push(trim_trailing_zeros(unit));
        rest = tail;
    }
    Some(units)
}

fn trim_trailing_zeros(unit: &[u8]) -> &[u8] {
    let end = unit.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &unit[..end]
}

/// The raw AAC frame inside `data`: `data` itself when it has no ADTS header, the payload
/// when it has exactly one well-formed ADTS frame, `None` when the header is inconsistent.
fn strip_adts(data: &[u8]) -> Option<&[u8]> {
    let is_adts = data.len() >= 2 && data[0] == 0xff && data[1] & 0xf6 == 0xf0;
    if !is_adts {
        return Some(data);
    }
    if data.len() < 7 {
        return None;
    }
    let protection_absent = data[1] & 1 == 1;
    let header_len = if protection_absent { 7 } else { 9 };
    let frame_len = (usize::from(data[3] & 0b11) << 11)
        | (usize::from(data[4]) << 3)
        | usize::from(data[5] >> 5);
    if frame_len != data.len() || frame_len < header_len {
        return None;
    }
    Some(&data[header_len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264(framing: Framing) -> DigestStream {
        DigestStream { kind: MediaKind::Video, codec: "h264".into(), framing }
    }

    fn aac() -> DigestStream {
        DigestStream { kind: MediaKind::Audio, codec: "aac".into(), framing: Framing::Whole }
    }

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
    const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x21];
    const SLICE: &[u8] = &[0x41, 0x9a, 0x21, 0x6c];

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(u);
        }
        out
    }

    fn avcc(units: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for u in units {
            out.extend_from_slice(&(u.len() as u32).to_be_bytes());
            out.extend_from_slice(u);
        }
        out
    }

    fn adts(raw: &[u8]) -> Vec<u8> {
        let len = raw.len() + 7;
        let mut h = vec![0xff, 0xf1, 0x50, 0x80, 0, 0, 0xfc];
        h[3] |= ((len >> 11) & 0b11) as u8;
        h[4] = ((len >> 3) & 0xff) as u8;
        h[5] = (((len & 0b111) << 5) as u8) | 0x1f;
        h.extend_from_slice(raw);
        h
    }

    #[test]
    fn ts_framing_and_mp4_framing_digest_alike() {
        let raw_audio = [0x21u8, 0x10, 0x04, 0x60, 0x8c];

        let mut ts = PacketDigester::new(&[h264(Framing::AnnexB), aac()]);
        // TS repeats parameter sets before the keyframe and uses ADTS; interleaving differs.
        ts.push(1, true, &adts(&raw_audio));
        ts.push(0, true, &annex_b(&[SPS, PPS, IDR]));
        ts.push(0, false, &annex_b(&[SLICE]));

        let mut mp4 = PacketDigester::new(&[h264(Framing::LengthPrefixed(4)), aac()]);
        mp4.push(0, true, &avcc(&[IDR]));
        mp4.push(0, false, &avcc(&[SLICE]));
        mp4.push(1, true, &raw_audio);

        assert_eq!(ts.finish(), mp4.finish());
    }

    #[test]
    fn a_changed_slice_changes_the_digest() {
        let mut a = PacketDigester::new(&[h264(Framing::AnnexB)]);
        a.push(0, true, &annex_b(&[IDR]));
        let mut b = PacketDigester::new(&[h264(Framing::AnnexB)]);
        let mut idr = IDR.to_vec();
        idr[3] ^= 1;
        b.push(0, true, &annex_b(&[&idr]));
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn reordered_packets_within_a_stream_change_the_digest() {
        let mut a = PacketDigester::new(&[h264(Framing::AnnexB)]);
        a.push(0, true, &annex_b(&[IDR]));
        a.push(0, false, &annex_b(&[SLICE]));
        let mut b = PacketDigester::new(&[h264(Framing::AnnexB)]);
        b.push(0, false, &annex_b(&[SLICE]));
        b.push(0, true, &annex_b(&[IDR]));
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn keyframe_comes_from_the_bitstream_not_the_container() {
        let mut a = PacketDigester::new(&[h264(Framing::AnnexB)]);
        a.push(0, true, &annex_b(&[IDR]));
        let mut b = PacketDigester::new(&[h264(Framing::AnnexB)]);
        b.push(0, false, &annex_b(&[IDR]));
        assert_eq!(a.finish(), b.finish());
    }

    #[test]
    fn a_dropped_packet_changes_the_digest() {
        let mut a = PacketDigester::new(&[h264(Framing::AnnexB)]);
        a.push(0, true, &annex_b(&[IDR]));
        a.push(0, false, &annex_b(&[SLICE]));
        let mut b = PacketDigester::new(&[h264(Framing::AnnexB)]);
        b.push(0, true, &annex_b(&[IDR]));
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn unsplittable_packets_are_hashed_whole_and_marked() {
        // A length prefix that runs past the end of the packet.
        let bad = [0u8, 0, 0, 9, 0x65, 0x88];
        assert!(split_length_prefixed(&bad, 4).is_none());
        let mut a = PacketDigester::new(&[h264(Framing::LengthPrefixed(4))]);
        a.push(0, true, &bad);
        let mut b = PacketDigester::new(&[h264(Framing::LengthPrefixed(4))]);
        b.push(0, true, &bad[..5]);
        assert_ne!(a.finish(), b.finish());
    }

    #[test]
    fn framing_is_read_from_extradata() {
        let avcc_config = [1u8, 0x64, 0, 0x1f, 0xff, 0xe1, 0];
        assert_eq!(Framing::from_extradata("h264", &avcc_config), Framing::LengthPrefixed(4));
        assert_eq!(Framing::from_extradata("h264", &[0, 0, 0, 1, 0x67]), Framing::AnnexB);
        assert_eq!(Framing::from_extradata("h264", &[]), Framing::AnnexB);
        assert_eq!(Framing::from_extradata("aac", &[0x12, 0x10]), Framing::Whole);
    }

    #[test]
    fn adts_header_with_wrong_length_is_opaque() {
        let mut frame = adts(&[1, 2, 3]);
        frame.push(0); // one byte more than the header says
        assert!(strip_adts(&frame).is_none());
        assert_eq!(strip_adts(&adts(&[1, 2, 3])), Some(&[1u8, 2, 3][..]));
    }

    /// The start-code scan, one byte at a time, as the specification states it.
    fn naive_starts(data: &[u8]) -> Vec<usize> {
        let (mut starts, mut i) = (Vec::new(), 0);
        while i + 3 <= data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                starts.push(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        starts
    }

    proptest::proptest! {
        #[test]
        fn the_fast_start_code_scan_equals_the_naive_one(data in proptest::collection::vec(proptest::sample::select(vec![0u8, 0, 0, 1, 1, 2, 0x65]), 0..400)) {
            proptest::prop_assert_eq!(start_codes(&data), naive_starts(&data));
        }
    }

    #[test]
    fn out_of_range_stream_is_refused() {
        let mut d = PacketDigester::new(&[aac()]);
        assert!(!d.push(3, true, &[1, 2]));
        assert_eq!(d.packet_counts(), vec![0]);
    }
}
